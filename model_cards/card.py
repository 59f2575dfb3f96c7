"""Model card (README.md with YAML metadata) of a trained SVU repo, from its training config and metrics.

    write_model_card(repo_dir, config=cfg.to_dict(), metrics=metrics, meta=svu_meta, widget=[("samples/x.wav", "belt")])

The `model-index` holds the run's test metrics exactly as in `metrics.json` (fractions in [0, 1]); the body's
table shows them in percent next to the paper's numbers for the same task and backbone family.
"""

from pathlib import Path

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from modeling_svu.tasks import get_task

from .paper_results import METRIC_NAMES, PAPER_RESULTS
from .plot import plot_layer_weights

METRIC_TYPES = {"macro_f1": "f1", "accuracy": "accuracy", "balanced_accuracy": "accuracy",
                "top2_accuracy": "accuracy", "top3_accuracy": "accuracy"}
LAYER_WEIGHTS_PNG = "layer_weights.png"

RECIPES = {
    "two_stage": "stage 1: backbone frozen, layer weights + head, Adam lr {lr_stage1} for {stage1_epochs} epochs; "
                 "stage 2: transformer unfrozen (CNN feature encoder frozen), new Adam lr {lr_stage2} for the rest",
    "lora": "stage 1 as in the paper (Adam lr {lr_stage1}, {stage1_epochs} epochs); stage 2: LoRA (r={lora_r}, "
            "alpha={lora_alpha}) on the backbone + layer weights + head, Adam lr {lr_peft}; LoRA merged into the weights",
    "adapter": "stage 1 as in the paper (Adam lr {lr_stage1}, {stage1_epochs} epochs); stage 2: {adapter_method} "
               "adapter on the backbone + layer weights + head, Adam lr {lr_peft}; adapter merged into the weights",
    "frozen": "backbone frozen throughout: layer weights + head only, Adam lr {lr_stage1}",
}


def eval_results(task: str, metrics: dict, dataset_name: str, dataset_type: str) -> list:
    """One `EvalResult` per test metric of `task` present in `metrics["test"]`."""
    spec = get_task(task)
    results = []
    for key in spec.card_metrics:
        if key not in metrics["test"]:
            continue
        results.append(EvalResult(
            task_type=spec.pipeline_tag, task_name=spec.title,
            dataset_type=dataset_type, dataset_name=dataset_name, dataset_split="test",
            metric_type=METRIC_TYPES.get(key, key),
            metric_name=f"{METRIC_NAMES[key]} (chunk)" if spec.pooled else METRIC_NAMES[key],
            metric_value=metrics["test"][key],
        ))
    return results


def results_table(task: str, family: str, metrics: dict) -> str:
    spec = get_task(task)
    paper = PAPER_RESULTS[spec.paper_corpus].get(family, {})
    lines = ["| metric | this model (test) | paper, same backbone |", "|---|---|---|"]
    for key in spec.card_metrics:
        name = METRIC_NAMES[key]
        if key in metrics["test"] or key in paper:
            ours = f"{100 * metrics['test'][key]:.1f}" if key in metrics["test"] else "-"
            lines.append(f"| {name} | {ours} | {paper.get(key, '-')} |")
    extras = [k for k in sorted(metrics["test"]) if k.startswith("clip_") and k != "num_clips"]
    for key in extras:
        lines.append(f"| {key} (extra: clip-level aggregation, not in the paper) | {100 * metrics['test'][key]:.1f} | - |")
    return "\n".join(lines)


def model_card(config: dict, metrics: dict, meta: dict, family: str, repo_id=None, widget=()) -> ModelCard:
    task = config["task"]
    spec = get_task(task)
    corpus = meta.get("corpus", config["dataset"]["corpus"])
    dataset_name = spec.paper_corpus if corpus != "synthetic" else f"SVU synthetic ({task})"
    model_name = repo_id.split("/")[-1] if repo_id else f"svu-{task}-{config['backbone']}"
    base = f"https://huggingface.co/{repo_id}/resolve/main/" if repo_id else ""
    data = ModelCardData(
        library_name="transformers",
        pipeline_tag=spec.pipeline_tag,
        tags=["svu", "singing-voice", *spec.card_tags, family, config["finetune"].replace("_", "-"), "custom_code"],
        datasets=[corpus],
        metrics=sorted({METRIC_TYPES.get(k, k) for k in spec.card_metrics if k in metrics["test"]}),
        model_name=model_name,
        eval_results=eval_results(task, metrics, dataset_name, corpus),
        widget=[{"src": base + path, "example_title": title} for path, title in widget],
        base_model=config["backbone"] if "/" in config["backbone"] else None,
    )
    recipe = RECIPES[config["finetune"]].format(**config)
    labels = ", ".join(meta.get("label_names") or []) or spec.outputs
    paper_note = (
        "The paper's numbers are for the real corpus and the pre-trained base backbone; "
        + ("this model was trained on the synthetic demo corpus with a tiny random backbone, so the columns are "
           "not comparable: it shows the pipeline works, not the paper's accuracy."
           if corpus == "synthetic" or config["backbone"].startswith("tiny-") else "they are given for reference.")
    )
    body = f"""
# {model_name}

{spec.title} with an SSL audio backbone ({family}), a softmax-weighted sum of all its hidden states and a
linear head, fine-tuned with SVU following Yamamoto, "Toward Leveraging Pre-Trained Self-Supervised Frontends for
Automatic Singing Voice Understanding Tasks: Three Case Studies" (APSIPA ASC 2023).

## Intended use

{spec.title} of 16 kHz mono singing (vocals, separated from the accompaniment when needed), in
{meta.get('chunk_seconds', config.get('chunk_seconds', 5.0))} s chunks. Classes: {labels}.

```python
from transformers import AutoModel
model = AutoModel.from_pretrained("{repo_id or 'path/to/this/repo'}", trust_remote_code=True)
```

## Training recipe

- Data: {dataset_name} (`{corpus}`), splits as prepared by `dataset_scripts` (fingerprint `{meta.get('fingerprint')}`).
- Backbone: `{config['backbone']}`; fine-tuning `{config['finetune']}`: {recipe}.
- {config['epochs']} epochs, batch size {config['batch_size']} per process
  ({metrics.get('effective_batch_size', config['batch_size'])} effective), seed {config['seed']}; the
  best validation epoch ({metrics.get('selection_metric')}) is kept: epoch {(metrics.get('best_epoch') or 0) + 1}.
- {spec.loss}

## Results (test split, percent)

{results_table(task, family, metrics)}

{paper_note}

## Learnt layer weights

![Learnt layer weights]({LAYER_WEIGHTS_PNG})

Index 0 is the CNN projection output, index i the output of transformer layer i.

## Limitations

- Trained and evaluated on {dataset_name} only; other genres, languages, recording conditions or singers outside the
  training set may behave differently.
- Chunk-level predictions; longer recordings must be chunked ({spec.long_audio}).
- Expects isolated vocals; accompaniment degrades the results.
"""
    return ModelCard(f"---\n{data.to_yaml()}\n---\n{body}")


def write_model_card(repo_dir, config: dict, metrics: dict, meta: dict, family: str, repo_id=None, widget=()) -> Path:
    """Write `README.md` and the layer-weight PNG into `repo_dir`; return the README path."""
    repo_dir = Path(repo_dir)
    plot_layer_weights(metrics["layer_weights"], repo_dir / LAYER_WEIGHTS_PNG,
                       title=f"{get_task(config['task']).title}: learnt layer weights ({family})")
    path = repo_dir / "README.md"
    model_card(config, metrics, meta, family, repo_id, widget).save(path)
    return path

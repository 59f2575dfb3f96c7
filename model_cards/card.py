"""Model card (README.md with YAML metadata) of a trained SVU repo, from its training config and metrics.

    write_model_card(repo_dir, config=cfg.to_dict(), metrics=metrics, meta=svu_meta, widget=[("samples/x.wav", "belt")])

The `model-index` holds the run's test metrics exactly as in `metrics.json` (fractions in [0, 1]), each with its
own metric type; the body's table shows them in percent next to the paper's numbers for the same task and
backbone family. `license` and `base_model` come from the published-checkpoint table of the loader
(`modeling_svu.checkpoints`): an alias such as `mert` becomes its real Hub id, and a non-commercial backbone
licence is carried and said in the card's first lines. Widget examples are audio files inside the repo: relative
paths until the repo id is known (`resolve_widget_urls` rewrites them at upload).
"""

import json
import re
from pathlib import Path

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from svu.dataset_scripts.corpora import find_corpus
from svu.modeling_svu.checkpoints import published_checkpoint
from svu.modeling_svu.tasks import get_task

from .citations import PAPER, backbone_bibtex
from .paper_results import PAPER_RESULTS
from .plot import plot_layer_weights

SPACE_HINT = "the SVU Space (`space/` in the SVU repository; run it locally with `svu space --model <this repo>`)"
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
    for metric in spec.card_metrics:
        if metric.key not in metrics["test"]:
            continue
        results.append(EvalResult(
            task_type=spec.pipeline_tag, task_name=spec.title,
            dataset_type=dataset_type, dataset_name=dataset_name, dataset_split="test",
            metric_type=metric.metric_type, metric_args=dict(metric.args) or None,
            metric_name=f"{metric.name} (chunk)" if spec.pooled else metric.name,
            metric_value=metrics["test"][metric.key],
        ))
    return results


def base_model_and_licence(backbone: str) -> tuple:
    """(base_model Hub id or None, licence, where the licence comes from) of a training config's `backbone`."""
    if backbone.startswith("tiny-"):
        return None, "apache-2.0", "a tiny randomly initialised backbone: no pre-trained base model"
    checkpoint = published_checkpoint(backbone)  # aliases and family names included
    if checkpoint is not None:
        return checkpoint.hub_id, checkpoint.licence, checkpoint.licence_source
    if "/" in backbone and not Path(backbone).exists():
        return backbone, "unknown", f"not in SVU's table: check https://huggingface.co/{backbone}"
    return None, "unknown", f"a local backbone folder ({backbone}): its licence is not known to SVU"


def training_data_lines(config: dict, meta: dict, corpus: str) -> str:
    """Split, validation and vocal separation used, from the prepared dataset's meta (defaults per corpus)."""
    options = {**config["dataset"].get("options", {}), **meta.get("options", {})}
    split = meta.get("split") or options.get("split")
    split_text = f"`{split}`: " if isinstance(split, str) else ""
    entry = find_corpus(corpus)
    default = entry.splits if entry else "as prepared by `dataset_scripts`"
    split_text += default if not isinstance(split, dict) else str(split)
    validation = meta.get("validation") or "the corpus' validation split, used to pick the best epoch"
    return "\n".join([
        f"- Split: {split_text}.",
        f"- Validation: {validation}.",
        f"- Vocal separation: {separation_used(corpus, meta, options)}.",
    ])


def separation_used(corpus: str, meta: dict, options: dict) -> str:
    """The vocal separation behind a prepared dataset, from its meta (the report's messages, the options)."""
    if meta.get("separation"):
        return str(meta["separation"])
    if options.get("separate"):
        return f"`{options['separate']}` (the builder's separation hook)"
    if any("separation hook" in message for message in meta.get("report", {}).get("messages", [])):
        return "none: the mixtures were used as they are (no separation hook given)"
    entry = find_corpus(corpus)
    note = entry.separation_note(options) if entry else None
    return note or "not recorded in the prepared dataset (see its svu_meta.json)"


def spec_augment_line(record) -> str:
    """The card's SpecAugment line, from metrics.json's `protocol.spec_augment` (None: not recorded)."""
    if record is None:
        return ""
    source = {"checkpoint": "the backbone config's own", "off": "`spec_augment: off`"}.get(
        record["setting"], "set in the training config")
    if not record["on"]:
        return f"\n- SpecAugment: off ({source})."
    masks = [f"{axis} masks of {record[f'mask_{axis}_length']} {unit} with probability {record[f'mask_{axis}_prob']:g}"
             for axis, unit in (("time", "frames"), ("feature", "channels"))
             if record[f"mask_{axis}_prob"] > 0]
    return f"\n- SpecAugment in stage 2 ({source}): {'; '.join(masks)}."


def resolve_widget_urls(readme_path, repo_id: str) -> None:
    """Point relative widget `src` paths of a card at the files of Hub repo `repo_id` (before an upload)."""
    path = Path(readme_path)
    base = f"https://huggingface.co/{repo_id}/resolve/main/"
    text = re.sub(r"(\n\s*-?\s*src: )(?!https?://)(\S+)", lambda m: m.group(1) + base + m.group(2), path.read_text())
    path.write_text(text)


def results_table(task: str, family: str, metrics: dict) -> str:
    spec = get_task(task)
    paper = PAPER_RESULTS.get(spec.paper_corpus, {}).get(family, {})  # none for a task beyond the paper
    lines = ["| metric | this model (test) | paper, same backbone |", "|---|---|---|"]
    for metric in spec.card_metrics:
        key = metric.key
        if key in metrics["test"] or key in paper:
            ours = f"{100 * metrics['test'][key]:.1f}" if key in metrics["test"] else "-"
            lines.append(f"| {metric.name} | {ours} | {paper.get(key, '-')} |")
    extras = [k for k in sorted(metrics["test"]) if k.startswith("clip_") and k != "num_clips"]
    for key in extras:
        lines.append(f"| {key} (extra: clip-level aggregation, not in the paper) | {100 * metrics['test'][key]:.1f} | - |")
    return "\n".join(lines)


# export form -> what each way of loading gives (columns of `EXPORT_FORMS_TABLE`), for tasks with a native form.
EXPORT_FORM_CALLS = {
    "native": ("the SVU task class ({svu_class})", "transformers' class", "transformers' class", "no: custom code"),
    "native_widget": ("transformers' headless backbone: head and layer weights dropped", "transformers' class",
                      "transformers' class", "yes"),
    "remote_code": ("the SVU task class ({svu_class})", "needs `trust_remote_code=True` (SVU's class)",
                    "needs `trust_remote_code=True` (SVU's class)", "no: custom code"),
}
EXPORT_FORMS_HEADER = """| export form | `AutoModel` + `trust_remote_code=True` | `AutoModelForAudioClassification` (no flag) | `pipeline("audio-classification")` (no flag) | Hub hosted widget |
|---|---|---|---|---|"""


def export_forms_table(svu_class: str, current: str) -> str:
    """Which call loads what, for each export form of a classifier; `current` (this repo's form) is marked.
    transformers' class is the backbone family's `*ForSequenceClassification`, loaded without remote code."""
    rows = [EXPORT_FORMS_HEADER]
    for form, calls in EXPORT_FORM_CALLS.items():
        name = f"`{form}`" + (" (default)" if form == "native" else "") + (" **this repo**" if form == current else "")
        rows.append("| " + " | ".join([name, *(call.format(svu_class=f"`{svu_class}`") for call in calls)]) + " |")
    return "\n".join(rows)


def usage_section(spec, where: str, export: str, native: bool) -> str:
    """The card's usage example of a repo of task `spec` at `where`, saved in the `export` form."""
    runner = spec.usage.split("(", 1)[0]  # the pipeline's variable in the usage example
    if spec.pipeline != spec.pipeline_tag:  # a custom pipeline, saved with the model
        usage = f"""```python
from transformers import pipeline
{runner} = pipeline(model="{where}", trust_remote_code=True)   # task: {spec.pipeline}
{spec.usage}
```

The Hub's hosted widget and Inference API cannot run this model ({spec.title.lower()} is custom code, not a
transformers task): try it in {SPACE_HINT}, or deploy it on Inference Endpoints with the repo's `handler.py`."""
    elif native:
        svu_model = "" if export == "native_widget" else f"""
model = AutoModel.from_pretrained("{where}", trust_remote_code=True)   # SVU's {spec.model_class}"""
        usage = f"""```python
from transformers import {"" if export == "native_widget" else "AutoModel, "}pipeline
{runner} = pipeline("{spec.pipeline}", model="{where}")   # no trust_remote_code: transformers' own class
{spec.usage}{svu_model}
```

The weights are the backbone family's `*ForSequenceClassification` with `use_weighted_layer_sum=True` and an
identity projector: the learnt layer weights and head of the SVU model, same logits.
Batching: the feature extractor returns the attention mask so pooling skips padding, but transformers' class
feeds a batch's zero padding to the backbone (group-norm CNN / data2vec positional convolutions); for exact
batched results of clips of different lengths, use `batch_size=1` or SVU's class (`trust_remote_code=True`).

{export_forms_table(spec.model_class, export)}"""
    else:
        usage = f"""```python
from transformers import pipeline
{runner} = pipeline("{spec.pipeline}", model="{where}", trust_remote_code=True)
{spec.usage}    # batch_size=... gives the same scores as one by one
```""" + (f"\n\n{export_forms_table(spec.model_class, export)}" if spec.native_unsupported is None else "")
    return usage


def model_card(
    config: dict, metrics: dict, meta: dict, family: str, repo_id=None, widget=(), export="remote_code",
    sampling_rate: int = 16000, head_init=None,
) -> ModelCard:
    """The card of a repo exported as `export` ("native": transformers' own class and an `auto_map` to SVU's;
    "native_widget": transformers' own class only; "remote_code": SVU's code)."""
    task = config["task"]
    spec = get_task(task)
    corpus = meta.get("corpus", config["dataset"]["corpus"])
    entry = find_corpus(corpus)  # None: a corpus this SVU does not know
    if entry and entry.card_name:
        dataset_name = entry.card_name.format(task=task)
    elif entry:
        dataset_name = spec.paper_corpus or entry.title
    else:  # e.g. a `--dataset_name` dataset: its own name, never the paper's corpus
        dataset_name = corpus
    model_name = repo_id.split("/")[-1] if repo_id else f"svu-{task}-{config['backbone']}"
    base = f"https://huggingface.co/{repo_id}/resolve/main/" if repo_id else ""
    base_model, licence, licence_source = base_model_and_licence(config["backbone"])
    native = export in ("native", "native_widget") and spec.native_unsupported is None
    tags = ["svu", "singing-voice", *spec.card_tags, family, config["finetune"].replace("_", "-")]
    data = ModelCardData(
        license=licence,
        library_name="transformers",
        pipeline_tag=spec.pipeline_tag,
        tags=tags + ([] if native and export == "native_widget" else ["custom_code"]),  # an auto_map is custom code
        datasets=[corpus],
        metrics=sorted({m.metric_type for m in spec.card_metrics if m.key in metrics["test"]}),
        model_name=model_name,
        eval_results=eval_results(task, metrics, dataset_name, corpus),
        widget=[{"src": base + path, "example_title": title} for path, title in widget],
        base_model=base_model,
    )
    recipe = RECIPES[config["finetune"]].format(**config)
    protocol = metrics.get("protocol") or {}
    labels = ", ".join(meta.get("label_names") or []) or spec.outputs
    paper_note = f"The paper has no {spec.title.lower()} results (a task beyond it): the paper column is empty." if spec.paper_corpus is None else (
        "The paper's numbers are for the real corpus and the pre-trained base backbone; "
        + ("this model was trained on the synthetic demo corpus with a tiny random backbone, so the columns are "
           "not comparable: it shows the pipeline works, not the paper's accuracy."
           if (entry and entry.generated) or config["backbone"].startswith("tiny-")
           else "this model was trained and tested on other data, so the columns are not comparable."
           if entry is None or entry.user_data else "they are given for reference.")
    )
    notice = ""
    if licence.startswith("cc-by-nc"):
        notice = (f"> **Non-commercial use only.** This model is fine-tuned from `{base_model}`, released under "
                  f"{licence.upper()} ({licence_source}); the fine-tuned weights carry that licence.\n\n")
    if base_model is None and config["backbone"].startswith("tiny-"):
        base_line = f"none: `{config['backbone']}` is {licence_source}"
    else:
        base_line = f"`{base_model or config['backbone']}` (licence `{licence}`: {licence_source})"
    where = repo_id or "path/to/this/repo"
    usage = usage_section(spec, where, export, native)
    citations = [PAPER, backbone_bibtex(family, base_model)] + ([entry.bibtex] if entry and entry.bibtex else [])
    data_licence = f" {entry.licence_note}" if entry else ""
    body = f"""
{notice}# {model_name}

{spec.title} with an SSL audio backbone ({family}), a softmax-weighted sum of all its hidden states and a
linear head, fine-tuned with SVU following Yamamoto, "Toward Leveraging Pre-Trained Self-Supervised Frontends for
Automatic Singing Voice Understanding Tasks: Three Case Studies" (APSIPA ASC 2023, [arXiv:2306.12714](https://arxiv.org/abs/2306.12714)).

- Base model: {base_line}.
- Licence of this repo: `{licence}`.{data_licence}

## Intended use

{spec.title} of {sampling_rate / 1000:g} kHz mono singing (the pipelines resample other rates; vocals,
separated from the accompaniment when needed), in
{meta.get('chunk_seconds', config.get('chunk_seconds', 5.0))} s chunks. Classes: {labels}.

{usage}

Example audio from the test split ships in the repo: {", ".join(f"`{path}` ({title})" for path, title in widget) or "none"}.
Inference Endpoints: `handler.py` takes `{{"inputs": <audio bytes or base64>, "parameters": {{...}}}}` and returns
what the pipeline returns.

## Training recipe

- Data: {dataset_name} (`{corpus}`), prepared by `dataset_scripts` (fingerprint `{meta.get('fingerprint')}`).
{training_data_lines(config, meta, corpus)}
- Backbone: `{config['backbone']}`; fine-tuning `{config['finetune']}`: {recipe}.{head_init_line(head_init)}
- {config['epochs']} epochs, batch size {config['batch_size']} per process
  ({metrics.get('effective_batch_size', config['batch_size'])} effective), seed {config['seed']}; kept:
  {protocol.get('model_selection', f"best validation epoch ({metrics.get('selection_metric')})")}, epoch {(metrics.get('best_epoch') or 0) + 1}.
- Validation: `{protocol.get('validation', config.get('validation', 'ours'))}`; vocal separation: `{protocol.get('separation', 'none')}`; test scoring: {protocol.get('test_scoring', 'chunk level')}.{spec_augment_line(protocol.get('spec_augment'))}
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

## Citation

The method (please cite), the backbone and the corpus:

""" + "\n\n".join(f"```bibtex\n{entry}\n```" for entry in citations) + "\n"
    return ModelCard(f"---\n{data.to_yaml()}\n---\n{body}")


def head_init_line(head_init) -> str:
    """The card's line on a head initialised from a published checkpoint's own head (lyrics: its CTC head)."""
    if not head_init:
        return ""
    return (f"\n- Head: initialised from the CTC head (`lm_head`) of `{head_init}` (same character vocabulary), with the "
            "layer weights starting on its last layer, the one that head was trained on: the speech-to-singing transfer "
            "of Ou et al. (\"Transfer Learning of wav2vec 2.0 for Automatic Lyric Transcription\", ISMIR 2022).")


def write_model_card(repo_dir, config: dict, metrics: dict, meta: dict, family: str, repo_id=None, widget=(),
                     export="remote_code") -> Path:
    """Write `README.md` and the layer-weight PNG into `repo_dir`; return the README path."""
    repo_dir = Path(repo_dir)
    plot_layer_weights(metrics["layer_weights"], repo_dir / LAYER_WEIGHTS_PNG,
                       title=f"{get_task(config['task']).title}: learnt layer weights ({family})")
    path = repo_dir / "README.md"
    preprocessor = repo_dir / "preprocessor_config.json"  # the saved model's input rate (16 kHz, 24 kHz for MERT-v1)
    rate = json.loads(preprocessor.read_text())["sampling_rate"] if preprocessor.is_file() else 16000
    saved = repo_dir / "config.json"
    head_init = json.loads(saved.read_text()).get("ctc_head_init") if saved.is_file() else None
    model_card(config, metrics, meta, family, repo_id, widget, export, sampling_rate=rate, head_init=head_init).save(path)
    return path


def agreement_lines(record: dict) -> str:
    """The card's table of the student's agreement with its teacher, before and after distillation."""
    after, before = record.get("agreement"), record.get("agreement_undistilled") or {}
    if not after:
        return "Not measured: no audio was held out (a single recording; give a folder of several)."
    lines = ["| agreement with the teacher (held-out audio) | distilled student | same student, undistilled |",
             "|---|---|---|"]
    for key, value in after.items():
        if isinstance(value, float) or value is None:
            shown = "-" if value is None else f"{100 * value:.1f}"
            old = before.get(key)
            lines.append(f"| {key} | {shown} | {'-' if old is None else f'{100 * old:.1f}'} |")
    return "\n".join(lines)


def distilled_card(record: dict, repo_id=None, widget=(), export="remote_code") -> ModelCard:
    """The card of a student distilled by `svu distill` (`train.distill`): its teacher is the `base_model`."""
    spec = get_task(record["task"])
    where = repo_id or "path/to/this/repo"
    model_name = repo_id.split("/")[-1] if repo_id else f"svu-{record['task']}-{record['student_size']}-distilled"
    base = f"https://huggingface.co/{repo_id}/resolve/main/" if repo_id else ""
    native = export in ("native", "native_widget") and spec.native_unsupported is None
    data = ModelCardData(
        license=record.get("teacher_licence") or "other", library_name="transformers", pipeline_tag=spec.pipeline_tag,
        model_name=model_name,
        tags=["svu", "singing-voice", *spec.card_tags, record["family"], "distillation", "custom_code"],
        widget=[{"src": base + path, "example_title": title} for path, title in widget],
        base_model=record["teacher"],
    )
    speed = record.get("speed")
    speed_line = (f"real-time factor {speed['student_rtf']:.4f} (teacher {speed['teacher_rtf']:.4f}: "
                  f"{speed['speedup']:.1f}x faster), chunk by chunk on {speed['device']} with {speed['threads']} "
                  f"thread(s), over the held-out audio" if speed else "not measured (no held-out audio)")
    failed = record.get("files_failed") or []
    audio = (f"`{record['audio']}` ({record['audio_kind']}; {record['training_chunks']} chunks, "
             f"{record['training_seconds']} s, trained on; {record['held_out_chunks']} chunks, "
             f"{record['held_out_seconds']} s, held out)" + (f"; {len(failed)} unreadable file(s) skipped" if failed else ""))
    body = f"""
# {model_name}

{spec.title}: a student distilled with `svu distill` from the teacher
**`{record['teacher']}`** (the `base_model`; this repo carries the teacher's licence, `{record.get('teacher_licence') or 'other'}`).

- Teacher: `{record['teacher']}` ({record['teacher_parameters']:,} parameters).
- Student size: `{record['student_size']}` ({record['student_shape']}, {record['family']};
  {record['student_parameters']:,} parameters).
- Distilled on: {audio}.
- Target: {record['target']}, T = {record['temperature']}{'; hidden states of teacher layers ' + str(record['hidden_state_layers']) + ' (DistilHuBERT)' if record['hidden_state_layers'] else ''}{'; task loss on the labels, weight ' + str(record['label_weight']) if record['label_weight'] else ''}; {record['epochs']} epochs.
- Speed: {speed_line}.

## Agreement with the teacher

On held-out audio the student never saw, with the teacher's outputs as the reference (percent):

{agreement_lines(record)}

## Usage

{usage_section(spec, where, export, native)}

## Limitations

- The student copies its teacher, errors included, on audio like the audio it was distilled on; its accuracy
  against human labels is at most the teacher's (see the teacher's card).
"""
    return ModelCard(f"---\n{data.to_yaml()}\n---\n{body}")


def write_distilled_card(repo_dir, record: dict, repo_id=None, widget=(), export="remote_code") -> Path:
    path = Path(repo_dir) / "README.md"
    distilled_card(record, repo_id, widget, export).save(path)
    return path

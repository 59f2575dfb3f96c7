"""The end of a run: the Hub-ready repo folder, the results table, and the upload."""

import copy
import json
import shutil
from pathlib import Path

import numpy as np
import soundfile as sf
import yaml
from peft import PeftModel

from svu.model_cards import write_model_card
from svu.model_cards.card import resolve_widget_urls
from svu.modeling_svu.backbones import family_of
from svu.modeling_svu.tasks import get_task
from svu.train.native_export import NATIVE_FORMS, native_unsupported_reason, save_native
from svu.train.peft_variants import merged_model

NUM_WIDGET_EXAMPLES = 2
ADAPTER_DIR = "peft_adapter"
HANDLER = Path(__file__).with_name("endpoint_handler.py")  # written into every repo as handler.py (`write_handler`)


def save_peft_adapter(cfg, model, adapter_dir: Path):
    """The adapter repo: `PeftModel.from_pretrained(base, adapter_dir)`. A tiny/random backbone has no Hub
    checkpoint to be the base, so its start weights are saved as `adapter_dir/base_model` (with remote code)."""
    model.save_pretrained(adapter_dir)
    if cfg.backbone.startswith("tiny-"):
        base = copy.deepcopy(model).unload()  # the backbone before the adapter; layer_sum/head come from the adapter
        base.save_pretrained(adapter_dir / "base_model")
        base_name = "base_model"
    else:
        base_name = cfg.backbone
    config_path = adapter_dir / "adapter_config.json"
    adapter_config = json.loads(config_path.read_text())
    adapter_config["base_model_name_or_path"] = base_name
    config_path.write_text(json.dumps(adapter_config, indent=2))


def write_widget_examples(repo_dir: Path, test_split, label_names) -> list:
    """A few test chunks as wav files for the Hub widget: [(relative path, title)]."""
    examples = []
    (repo_dir / "samples").mkdir(exist_ok=True)
    for i in range(min(NUM_WIDGET_EXAMPLES, len(test_split))):
        row = test_split[i]
        audio = row["audio"]
        title = label_names[row["label"]] if label_names and "label" in row else f"test chunk {i}"
        path = f"samples/test_{i}.wav"
        sf.write(repo_dir / path, np.asarray(audio["array"], dtype=np.float32), audio["sampling_rate"])
        examples.append((path, title))
    return examples


def export_form(cfg, svu_model) -> str:
    """`cfg.export`, except that a model with no native form (transcription, ...) is exported as remote code."""
    reason = native_unsupported_reason(svu_model) if cfg.export in NATIVE_FORMS else None
    if reason and not get_task(svu_model.config.task).native_unsupported:  # always remote code for the task: no note
        print(f"export: remote code instead of {cfg.export} ({reason}).")
    return "remote_code" if reason else cfg.export


def write_handler(path: Path, task: str) -> None:
    """The Inference Endpoints handler with the task's `endpoint_defaults` (it runs without SVU: no registry)."""
    defaults = f"DEFAULT_PARAMETERS = {dict(get_task(task).endpoint_defaults)!r}\n"
    path.write_text(HANDLER.read_text().replace("DEFAULT_PARAMETERS = {}\n", defaults, 1))


def save_model_files(svu_model, repo_dir: Path, form: str):
    if form in NATIVE_FORMS:
        save_native(svu_model, repo_dir, remote_code=form == "native")
    else:
        svu_model.save_pretrained(repo_dir)


def export_repo(cfg, model, meta: dict, metrics: dict, repo_dir, test_split) -> Path:
    """Write the Hub-ready repo: merged weights + config + feature extractor (transformers' own class, or SVU's
    remote code), the PEFT adapter (if any), `handler.py`, model card, layer-weight plot, widget samples,
    metrics.json and the training config."""
    repo_dir = Path(repo_dir)
    shutil.rmtree(repo_dir, ignore_errors=True)
    repo_dir.mkdir(parents=True)
    svu_model = merged_model(model)
    form = export_form(cfg, svu_model)
    save_model_files(svu_model, repo_dir, form)
    write_handler(repo_dir / "handler.py", svu_model.config.task)
    if isinstance(model, PeftModel):
        save_peft_adapter(cfg, model, repo_dir / ADAPTER_DIR)
    widget = write_widget_examples(repo_dir, test_split, meta.get("label_names"))
    (repo_dir / "metrics.json").write_text(json.dumps(metrics, indent=1))
    (repo_dir / "train_config.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    family = family_of(svu_model.config.backbone_config).model_type
    write_model_card(repo_dir, cfg.to_dict(), metrics, meta, family, repo_id=cfg.push_to_hub, widget=widget, export=form)
    return repo_dir


def results_table(metrics: dict) -> str:
    rows = [(k, v) for k, v in metrics["test"].items() if isinstance(v, float)]
    width = max(len(k) for k, _ in rows)
    lines = [f"{'test metric':<{width}}  value", f"{'-' * width}  ------"]
    lines += [f"{k:<{width}}  {100 * v:6.2f}" for k, v in rows]
    lines.append(f"{'examples':<{width}}  {metrics['test']['num_examples']} (test split: {metrics['test_split_size']})")
    return "\n".join(lines)


def print_results(metrics: dict, repo_dir: Path):
    if metrics.get("selection_metric"):
        print(f"\nbest epoch {metrics['best_epoch'] + 1} (validation {metrics['selection_metric']})")
    else:
        print(f"\nlast epoch {metrics['best_epoch'] + 1} kept (validation: none)")
    print(results_table(metrics))
    print(f"\nHub-ready model folder: {Path(repo_dir).resolve()}")


def push_repo(repo_dir: Path, repo_id: str, private: bool = False) -> str:
    """Upload the whole repo folder to the Hub model repo `repo_id` (created if needed)."""
    from huggingface_hub import HfApi

    resolve_widget_urls(Path(repo_dir) / "README.md", repo_id)
    api = HfApi()
    try:
        api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
        commit = api.upload_folder(folder_path=str(repo_dir), repo_id=repo_id, repo_type="model",
                                   commit_message="Upload SVU model trained with train/run.py")
    except Exception as err:  # network, auth, offline mode: the local repo is complete either way
        raise SystemExit(f"error: push to {repo_id} failed ({type(err).__name__}: {err}); the repo is at {repo_dir}.") from None
    print(f"pushed {repo_dir} to https://huggingface.co/{repo_id}")
    return commit

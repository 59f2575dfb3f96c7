"""The task registry (`modeling_svu/tasks.py`): an unknown task is one line listing the known ones at every entry
point, and each entry is complete: every part it names exists, and one real pass through them (prepare a tiny
synthetic corpus, check it, collate, forward with labels, score validation and test as a run does) yields its
selection and card metrics."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from svu.modeling_svu import TASK_MODELS, SVUConfig
from svu.modeling_svu.tasks import DEFAULT_TASK, TASK_NAMES, TASKS, get_task, tasks_of_verb

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "PYTHONPATH": str(REPO)}
KNOWN = f"expected one of {TASK_NAMES}"
UNKNOWN_LINE = f"Unknown task 'karaoke'; {KNOWN}."
SMALL = {  # tiny synthetic corpora, one per task (all three splits non-empty)
    "technique": dict(num_singers=3, clip_seconds=3.0, techniques=["straight", "vibrato"]),
    "singer_id": dict(num_singers=2, recordings_per_singer=3, clip_seconds=5.0),
    "transcription": dict(num_songs=3, song_seconds=5.0),
    "pitch": dict(num_songs=3, song_seconds=5.0),
    "lyrics": dict(num_songs=3, song_seconds=3.0),
}


def one_line_error(fn, *args, **kwargs) -> str:
    with pytest.raises(ValueError) as info:
        fn(*args, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    return message


# ---------------------------------------------------------------- an unknown task: one line, the known ones listed


def test_unknown_task_in_process_entry_points_is_one_line(tmp_path):
    from svu.dataset_scripts.prepare import prepare
    from svu.model_cards import model_card
    from svu.train.config import load_config
    from svu.train.data import AudioCollator

    assert one_line_error(get_task, "karaoke") == UNKNOWN_LINE
    assert one_line_error(SVUConfig, task="karaoke") == UNKNOWN_LINE
    assert one_line_error(load_config, None, ["--task", "karaoke"]) == UNKNOWN_LINE
    assert one_line_error(prepare, "synthetic", tmp_path / "p", task="karaoke") == UNKNOWN_LINE
    assert not (tmp_path / "p").exists()
    assert one_line_error(AudioCollator, None, "karaoke") == UNKNOWN_LINE
    config = load_config().to_dict()
    config["task"] = "karaoke"
    assert one_line_error(model_card, config, {"test": {}}, {"corpus": "synthetic"}, "wav2vec2") == UNKNOWN_LINE


def test_one_default_task_for_config_model_and_training():
    from svu.modeling_svu import SVUModel
    from svu.train.config import TrainConfig, load_config

    assert DEFAULT_TASK in TASKS
    assert SVUConfig().task == TrainConfig().task == load_config().task == DEFAULT_TASK  # the demo's task
    assert SVUModel.from_backbone("tiny-wav2vec2").config.task == DEFAULT_TASK


@pytest.mark.parametrize("verb", ["transcribe", "classify", "evaluate"])
def test_unknown_task_in_a_saved_model_is_one_line(verb, tmp_path):
    from svu.common import load_model

    SVUConfig(task=TASK_NAMES[0]).save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "task": "karaoke"}))
    with pytest.raises(SystemExit) as info:
        load_model(str(tmp_path), verb, TASK_NAMES if verb == "evaluate" else None)
    assert str(info.value).count("\n") == 0 and str(info.value).startswith(f"svu {verb}: ")
    assert UNKNOWN_LINE in str(info.value)


@pytest.mark.parametrize(
    "command",
    [
        [sys.executable, "train/run.py", "--task", "karaoke"],
        [sys.executable, "-m", "svu", "data", "prepare", "synthetic", "--task", "karaoke", "--output", "{out}"],
    ],
    ids=["train", "svu-data-prepare"],
)
def test_unknown_task_on_the_command_line_is_one_line(command, tmp_path):
    out = tmp_path / "out"
    command = [part.format(out=out) for part in command] + (["--output_dir", str(out)] if "train/run.py" in command else [])
    proc = subprocess.run(command, capture_output=True, text=True, env=ENV, cwd=REPO, timeout=300)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].endswith(UNKNOWN_LINE), proc.stderr
    assert not out.exists()


# ---------------------------------------------------------------- every entry is complete


@pytest.mark.parametrize("name", TASK_NAMES)
def test_every_part_an_entry_names_exists(name):
    import transformers

    from svu.model_cards.paper_results import PAPER_RESULTS
    from svu.train.data import columns_for
    from svu.train.evaluation import METRICS_DIR

    task = TASKS[name]
    assert task.name == name and TASK_MODELS[name].__name__ == task.model_class and TASK_MODELS[name].task == name
    assert all(hasattr(transformers, auto_class) for auto_class in task.auto_classes)
    assert task.describe_head(SVUConfig(task=name)).startswith(f"task={name}, ")
    assert columns_for(name) == ["audio", task.target_column, *task.target_companions]
    assert (METRICS_DIR / task.metric / f"{task.metric}.py").is_file()
    assert task.usage.startswith(task.usage.split("(")[0] + "(") and task.dataset_category
    assert task.paper_corpus in (None, *PAPER_RESULTS)
    # the entry's hooks: tests/test_task_dispatch.py
    demo = yaml.safe_load((REPO / "train" / "configs" / f"demo_{name}.yaml").read_text())
    assert demo["task"] == name and demo.get("selection_metric", task.default_selection_metric) in task.selection_metrics


@pytest.mark.parametrize("name", TASK_NAMES)
def test_every_cli_verb_has_its_command(name):
    from svu.cli import SUBCOMMANDS

    task = TASKS[name]
    if task.cli_verb is not None:
        assert task.cli_verb in SUBCOMMANDS and task in tasks_of_verb(task.cli_verb)


@pytest.mark.parametrize("name", TASK_NAMES)
def test_an_entry_drives_data_model_and_metrics(name, tmp_path):
    """Prepare -> check -> collate -> forward with labels -> evaluate, every step chosen by the entry alone."""
    from svu.dataset_scripts.prepare import leakage_groups
    from svu.train.config import load_config
    from svu.train.data import AudioCollator, check_dataset, columns_for, make_dataloader, prepare_dataset
    from svu.train.evaluation import evaluate_split, evaluate_test
    from svu.train.run import build_model

    task = get_task(name)
    cfg = load_config(None, [
        "--task", name, "--backbone", "tiny-wav2vec2", "--output_dir", str(tmp_path / "run"),
        "--dataset.options", json.dumps({"task": name, **SMALL[name]}), "--batch_size", "4",
    ])
    data, meta = prepare_dataset(cfg)
    check_dataset(data, meta, name, where="here")
    what, groups = leakage_groups(data, name)
    assert what == task.leakage and all(groups.values())
    assert bool(meta["label_names"]) == task.classes and (meta["class_weights"] is not None) == task.classes

    model = build_model(cfg, meta)
    assert type(model) is TASK_MODELS[name] and model.config.task == name
    assert (model.config.class_weights is not None) == task.class_weighted
    columns = columns_for(name)
    loader = make_dataloader(data["validation"], columns, AudioCollator(model.feature_extractor(), name, model.config), 4)
    batch = next(iter(loader))
    batch.pop("row_index")
    loss = model(**batch).loss
    assert loss.dim() == 0 and torch.isfinite(loss)

    model.eval()
    validation = evaluate_split(name, lambda batch: model(**batch), loader, data["validation"], model.config)
    assert validation["num_unique_examples"] == len(data["validation"])
    assert set(task.selection_metrics) <= set(validation), sorted(validation)
    test = evaluate_test(model, data["test"], meta, batch_size=4)
    assert set(task.card_metric_keys) <= set(test), sorted(test)

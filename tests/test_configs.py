"""The shipped training configs (`train/configs/*.yaml`): every file loads as a `TrainConfig` (no unknown or
misspelt field, every value valid), and they form the grid docs/training.md promises: one `<task>_<family>.yaml` per
task and published backbone, each naming its own task and backbone and a real corpus, and one `demo_<task>.yaml`
per task on a tiny backbone and the synthetic corpus (what runs without a download)."""

from pathlib import Path

import pytest

from svu.dataset_scripts.corpora import corpus_names
from svu.modeling_svu.checkpoints import published_checkpoint
from svu.modeling_svu.tasks import TASK_NAMES
from svu.train.config import load_config

CONFIGS = Path(__file__).resolve().parents[1] / "train" / "configs"
FAMILIES = ("wav2vec2", "wavlm", "mert", "music2vec")  # the paper's four backbones, by their aliases


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda path: path.stem)
def test_every_shipped_config_loads(path):
    cfg = load_config(str(path), [])
    assert cfg.task in TASK_NAMES and cfg.dataset.corpus in corpus_names()


@pytest.mark.parametrize("task", TASK_NAMES)
@pytest.mark.parametrize("family", FAMILIES)
def test_one_config_per_task_and_published_backbone(task, family):
    cfg = load_config(str(CONFIGS / f"{task}_{family}.yaml"), [])
    assert cfg.task == task
    assert published_checkpoint(cfg.backbone) is published_checkpoint(family) is not None
    assert cfg.dataset.corpus != "synthetic" and cfg.dataset.data_dir


@pytest.mark.parametrize("task", TASK_NAMES)
def test_one_demo_per_task_on_a_tiny_backbone_and_synthetic_data(task):
    cfg = load_config(str(CONFIGS / f"demo_{task}.yaml"), [])
    assert cfg.task == task and cfg.backbone.startswith("tiny-")
    assert cfg.dataset.corpus == "synthetic" and cfg.dataset.options.get("task", task) == task


def test_a_task_option_set_for_another_task_is_one_line():
    """`cache_stage1` (the pooled stage-1 cache) belongs to the classification tasks (their `options`)."""
    with pytest.raises(ValueError, match=r"^cache_stage1 is a singer_id / technique option; a pitch model does not use it\.$"):
        load_config(None, ["--task", "pitch", "--cache_stage1", "false"])
    assert load_config(None, ["--task", "technique", "--cache_stage1", "false"]).cache_stage1 is False

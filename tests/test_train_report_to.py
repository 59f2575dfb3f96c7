"""`report_to` through Accelerate's trackers, in real `train/run.py` runs (`in_process`; one stage-2 epoch of
the technique demo's synthetic corpus): `none` writes no tracker files, `tensorboard` writes event files, a tracker
whose package is missing is one error line. The two runs also set `spec_augment` (off / explicit), so they show
metrics.json and the model card recording it."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from svu.train.trackers import TRACKERS
from in_process import train

REPO = Path(__file__).resolve().parents[1]
RUN = str(REPO / "train" / "run.py")
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1",
       "PYTHONPATH": str(REPO)}
SHORT = ["--epochs", "1", "--stage1_epochs", "0"]  # stage 2 only: the backbone trains, SpecAugment applies
EXPLICIT = {"mask_time_prob": 0.3, "mask_time_length": 2, "mask_feature_prob": 0.0, "mask_feature_length": 10}

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    from svu.dataset_scripts.prepare import prepare

    root = tmp_path_factory.mktemp("data") / "technique"
    prepare("synthetic", root, seed=0, task="technique", clips_per_class=2)
    return root


def launch(out, prepared, *args):
    """The run, started from the run folder's parent (a tracker writing into the working directory would show)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    train("--output_dir", out, "--dataset.prepared_dir", prepared, *SHORT, *args, cwd=out.parent)
    return out


def event_files(folder: Path) -> list:
    return sorted(folder.rglob("events.out.tfevents.*"))


@pytest.fixture(scope="module")
def run_none(prepared, tmp_path_factory):
    return launch(tmp_path_factory.mktemp("none") / "run", prepared, "--report_to", "none", "--spec_augment", "off")


@pytest.fixture(scope="module")
def run_tensorboard(prepared, tmp_path_factory):
    return launch(tmp_path_factory.mktemp("tensorboard") / "run", prepared, "--report_to", "tensorboard",
                  "--spec_augment", json.dumps(EXPLICIT))


def test_report_to_none_writes_no_tracker_files(run_none):
    assert (run_none / "metrics.json").is_file()
    assert not (run_none / "logs").exists()
    written = {path.name for path in run_none.parent.rglob("*")}  # the run's folder and the launch directory
    assert not event_files(run_none.parent) and not written & {"wandb", "mlruns", "trackio"}


def test_report_to_tensorboard_writes_event_files(run_tensorboard):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    files = event_files(run_tensorboard)
    assert files and all(path.is_relative_to(run_tensorboard / "logs") for path in files)
    events = EventAccumulator(str(run_tensorboard / "logs")).Reload()  # the run's scalars (hparams: a sub-folder)
    assert "layer_weight/0" in events.Tags()["scalars"]


def test_metrics_and_card_record_spec_augment(run_none, run_tensorboard):
    for run, record, line in [
        (run_none, {"setting": "off", "on": False}, "- SpecAugment: off (`spec_augment: off`)."),
        (run_tensorboard, {"setting": "explicit", "on": True, **EXPLICIT},
         "- SpecAugment in stage 2 (set in the training config): time masks of 2 frames with probability 0.3."),
    ]:
        assert json.loads((run / "metrics.json").read_text())["protocol"]["spec_augment"] == record
        assert line in (run / "repo" / "README.md").read_text()


def test_a_tracker_that_is_not_installed_is_one_line(tmp_path):
    missing = [name for name, (_, available) in TRACKERS.items() if not available()]
    if not missing:
        pytest.skip("every tracker package is installed here")
    name = missing[0]
    proc = subprocess.run([sys.executable, RUN, "--output_dir", str(tmp_path / "out"), "--report_to", name],
                          capture_output=True, text=True, env=ENV, cwd=REPO)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert lines == [f"error: report_to {name} needs the {TRACKERS[name][0]} package: pip install {TRACKERS[name][0]}"]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("value, message", [("comet", "Unknown report_to tracker 'comet'"),
                                            ([], "report_to must be a tracker name, a list of them")])
def test_bad_report_to_is_one_line(value, message):
    from svu.train.config import TrainConfig

    with pytest.raises(ValueError, match=message) as err:
        TrainConfig(report_to=value)
    assert "\n" not in str(err.value)

"""Validation picks the kept epoch on deterministic (eval-mode) scores: the score `train/run.py` records for the
kept epoch is what `svu evaluate --split validation` gives for the kept weights, with dropout and SpecAugment on
in training (a real `train/run.py` run of the singer-ID demo, made short, in this process: `in_process`)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from svu.dataset_scripts.prepare import prepare
from in_process import train

REPO = Path(__file__).resolve().parents[1]
DATA_OPTIONS = dict(task="singer_id", num_singers=4, recordings_per_singer=3)
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
       "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1", "PYTHONPATH": str(REPO)}  # fmt: skip
# noisy in training mode: half the head's inputs dropped, most of the backbone's frames masked (stage 2)
NOISY_TRAINING = ["--classifier_dropout", "0.5", "--backbone_options", "{mask_time_prob: 0.65, mask_time_length: 3}"]


def run(*command):
    proc = subprocess.run(command, capture_output=True, text=True, env=ENV, cwd=REPO, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


@pytest.mark.timeout(300)
def test_kept_epochs_validation_score_is_the_eval_mode_score_of_the_kept_weights(tmp_path):
    data = tmp_path / "data"
    prepare("synthetic", data, **DATA_OPTIONS)
    out = tmp_path / "run"
    train("--config", str(REPO / "train" / "configs" / "demo_singer_id.yaml"), "--output_dir", str(out),
          "--dataset.prepared_dir", str(data), *[f"--dataset.options.{k}={v}" for k, v in DATA_OPTIONS.items()],
          "--epochs", "4", "--stage1_epochs", "2", "--lr_stage2", "1e-3", *NOISY_TRAINING)  # fmt: skip
    metrics = json.loads((out / "metrics.json").read_text())
    history = json.loads(sorted((out / "checkpoints").glob("checkpoint-*"))[-1].joinpath("training_state.json").read_text())["history"]
    assert [h["stage"] for h in history] == [1, 1, 2, 2]

    run(sys.executable, "-m", "svu", "evaluate", "--model", str(out / "repo"), "--data", str(data),
        "--split", "validation", "-o", str(tmp_path / "eval"), "-q")  # fmt: skip
    evaluated = json.loads((tmp_path / "eval" / "metrics.json").read_text())["metrics"]
    recorded = metrics["validation"]
    assert recorded == history[metrics["best_epoch"]]["validation"]
    assert set(recorded) == set(evaluated)
    for key, value in recorded.items():
        assert value == pytest.approx(evaluated[key], abs=1e-6), (key, metrics["best_epoch"])

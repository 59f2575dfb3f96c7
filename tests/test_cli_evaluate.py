"""`svu evaluate` (real `python -m svu` subprocesses) on demo models trained by the real `accelerate launch
train/run.py --config train/configs/demo_<task>.yaml`: it reproduces the run's test metrics exactly, for all three
tasks, from the repo folder and from a Hub id (offline cache), and writes valid pictures and CSVs.

One training run per task (module-scoped); the data is prepared once per task by `svu data prepare -q`.
"""

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from svu.cli import main as svu_main

REPO = Path(__file__).resolve().parents[1]
TASKS = ("technique", "singer_id", "transcription")
PREPARE_OPTIONS = {"technique": ["--option", "clips_per_class=2"], "singer_id": [], "transcription": []}
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
       "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}  # fmt: skip

pytestmark = pytest.mark.timeout(900)


def run(*command, env=ENV):
    return subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO, timeout=800)


def svu(*args, env=ENV):
    return run(sys.executable, "-m", "svu", *args, env=env)


def assert_no_progress_bars(stderr: str):
    assert "it/s]" not in stderr and "%|" not in stderr, stderr[-2000:]


@pytest.fixture(scope="module")
def demo_runs(tmp_path_factory):
    """{task: (prepared data folder, run folder)}: `svu data prepare -q`, then the demo config, per task."""
    root = tmp_path_factory.mktemp("demo_runs")
    runs = {}
    for task in TASKS:
        data = root / f"data_{task}"
        prepared = svu("data", "prepare", "synthetic", "--task", task, *PREPARE_OPTIONS[task], "--output", str(data), "-q")
        assert prepared.returncode == 0, prepared.stderr[-3000:]
        assert_no_progress_bars(prepared.stderr)
        out = root / f"run_{task}"
        trained = run("accelerate", "launch", "--cpu", "--num_processes", "1", "--num_machines", "1",
                      "--mixed_precision", "no", "--dynamo_backend", "no", str(REPO / "train" / "run.py"),
                      "--config", str(REPO / "train" / "configs" / f"demo_{task}.yaml"),
                      "--output_dir", str(out), "--dataset.prepared_dir", str(data), env={**ENV, "TQDM_DISABLE": "1"})  # fmt: skip
        assert trained.returncode == 0, trained.stderr[-5000:]
        runs[task] = (data, out)
    return runs


def assert_valid_png(path: Path):
    assert path.is_file() and path.stat().st_size < 200_000, path
    with Image.open(path) as image:
        image.verify()  # raises on a truncated or corrupt file
    with Image.open(path) as image:
        assert image.format == "PNG" and min(image.size) >= 100, (image.format, image.size)


@pytest.mark.parametrize("task", TASKS)
def test_evaluate_reproduces_the_runs_test_metrics(demo_runs, task, tmp_path):
    data, out = demo_runs[task]
    result = svu("evaluate", "--model", str(out / "repo"), "--data", str(data), "-o", str(tmp_path), "-q")
    assert result.returncode == 0, result.stderr[-3000:]
    assert_no_progress_bars(result.stderr)
    trained = json.loads((out / "metrics.json").read_text())["test"]
    evaluated = json.loads((tmp_path / "metrics.json").read_text())
    assert evaluated["metrics"] == trained  # every number and count, exactly
    assert evaluated["task"] == task and evaluated["split"] == "test"
    assert "macro_f1" in result.stdout or "COnPOff_f1" in result.stdout

    if task == "transcription":
        assert {"COnPOff_precision", "COnP_recall", "COn_f1"} <= set(trained)  # P/R/F of all three
        with open(tmp_path / "per_song.csv") as f:
            per_song = list(csv.DictReader(f))
        assert len(per_song) == trained["num_songs"] >= 2
        for metric in ("COnPOff", "COnP", "COn"):
            for part in ("precision", "recall", "f1"):
                key = f"{metric}_{part}"  # the macro mean over songs is the table's number
                assert np.mean([float(row[key]) for row in per_song]) == pytest.approx(trained[key], abs=1e-9)
        assert_valid_png(tmp_path / "per_song_f1.png")
    else:
        label_names = json.loads((data / "svu_meta.json").read_text())["label_names"]
        with open(tmp_path / "per_class.csv") as f:
            per_class = list(csv.DictReader(f))
        assert [row["class"] for row in per_class] == label_names
        confusion = np.asarray(evaluated["confusion_matrix"])
        assert confusion.sum() == trained["num_examples"]
        assert np.trace(confusion) / confusion.sum() == pytest.approx(trained["accuracy"], abs=1e-12)
        assert np.mean([float(row["recall"]) for row in per_class]) == pytest.approx(trained["balanced_accuracy"], abs=1e-9)
        assert np.mean([float(row["f1"]) for row in per_class]) == pytest.approx(trained["macro_f1"], abs=1e-9)
        assert {"top2_accuracy", "top3_accuracy", "clip_mean_logit_accuracy", "clip_majority_macro_f1"} <= set(trained)
        assert_valid_png(tmp_path / "confusion_matrix.png")


def test_evaluate_from_a_hub_id_in_the_offline_cache(demo_runs, tmp_path):
    data, out = demo_runs["singer_id"]
    repo_id = "svu-tests/demo-singer-id"
    snapshot = tmp_path / "hf" / "hub" / f"models--{repo_id.replace('/', '--')}" / "snapshots" / ("0" * 40)
    shutil.copytree(out / "repo", snapshot)
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text("0" * 40)
    result = svu("evaluate", "--model", repo_id, "--data", str(data), "-o", str(tmp_path / "eval"), "-q",
                 env={**ENV, "HF_HOME": str(tmp_path / "hf")})  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    evaluated = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert evaluated["metrics"] == json.loads((out / "metrics.json").read_text())["test"]


def test_evaluate_refuses_a_model_for_another_task_in_one_line(demo_runs, tmp_path):
    technique_data, _ = demo_runs["technique"]
    singer_data, singer_run = demo_runs["singer_id"]
    _, transcription_run = demo_runs["transcription"]
    with pytest.raises(SystemExit, match="is prepared for 'technique'; the model does 'transcription'"):
        svu_main(["evaluate", "--model", str(transcription_run / "repo"), "--data", str(technique_data), "-o", str(tmp_path)])
    with pytest.raises(SystemExit, match="is prepared for 'technique'; the model does 'singer_id'"):
        svu_main(["evaluate", "--model", str(singer_run / "repo"), "--data", str(technique_data), "-o", str(tmp_path)])
    with pytest.raises(SystemExit, match="has no \\(or an empty\\) 'dev' split"):
        svu_main(["evaluate", "--model", str(singer_run / "repo"), "--data", str(singer_data), "--split", "dev", "-o", str(tmp_path)])
    with pytest.raises(SystemExit, match="not a prepared SVU dataset"):
        svu_main(["evaluate", "--model", str(singer_run / "repo"), "--data", str(tmp_path), "-o", str(tmp_path)])

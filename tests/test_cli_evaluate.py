"""`svu evaluate` (real `python -m svu` subprocesses) on the demo models of every task in the registry, each
prepared by `svu data prepare -q` and trained by the real `accelerate launch train/run.py --config
train/configs/demo_<task>.yaml` (`demo_runs.demo_run`, shared with other test files): it reproduces the run's test
metrics exactly, from the repo folder and from a Hub id (offline cache), and writes valid pictures and CSVs.
"""

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from demo_runs import DEMO_GROUP, ENV, REPO, demo_run
from PIL import Image

from svu.dataset_scripts.prepare import load_prepared
from svu.modeling_svu.tasks import TASKS, get_task
from svu.cli import main as svu_main

pytestmark = [pytest.mark.timeout(1500), pytest.mark.xdist_group(DEMO_GROUP)]


def svu(*args, env=ENV):
    return subprocess.run([sys.executable, "-m", "svu", *args], capture_output=True, text=True, env=env, cwd=REPO, timeout=800)


def assert_no_progress_bars(stderr: str):
    assert "it/s]" not in stderr and "%|" not in stderr, stderr[-2000:]


@pytest.fixture(scope="module")
def demo_runs(tmp_path_factory):
    """{task: (prepared data folder, run folder)}, trained on first use."""

    class Runs(dict):
        def __missing__(self, task):
            run = demo_run(task, tmp_path_factory)
            assert_no_progress_bars(run.prepare_stderr)
            self[task] = (run.data, run.out)
            return self[task]

    return Runs()


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
    assert get_task(task).card_metric_keys[0] in result.stdout
    REPORT_CHECKS[get_task(task).metric](trained, evaluated, data, tmp_path)


def check_class_report(trained, evaluated, data, out):
    label_names = json.loads((data / "svu_meta.json").read_text())["label_names"]
    with open(out / "per_class.csv") as f:
        per_class = list(csv.DictReader(f))
    assert [row["class"] for row in per_class] == label_names
    confusion = np.asarray(evaluated["confusion_matrix"])
    assert confusion.sum() == trained["num_examples"]
    assert np.trace(confusion) / confusion.sum() == pytest.approx(trained["accuracy"], abs=1e-12)
    assert np.mean([float(row["recall"]) for row in per_class]) == pytest.approx(trained["balanced_accuracy"], abs=1e-9)
    assert np.mean([float(row["f1"]) for row in per_class]) == pytest.approx(trained["macro_f1"], abs=1e-9)
    assert {"top2_accuracy", "top3_accuracy", "clip_mean_logit_accuracy", "clip_majority_macro_f1"} <= set(trained)
    assert_valid_png(out / "confusion_matrix.png")


def per_song_rows(trained, out) -> list:
    with open(out / "per_song.csv") as f:
        per_song = list(csv.DictReader(f))
    assert len(per_song) == trained["num_songs"] >= 2
    return per_song


def check_note_report(trained, evaluated, data, out):
    assert {"COnPOff_precision", "COnP_recall", "COn_f1"} <= set(trained)  # P/R/F of all three
    per_song = per_song_rows(trained, out)
    for metric in ("COnPOff", "COnP", "COn"):
        for part in ("precision", "recall", "f1"):
            key = f"{metric}_{part}"  # the macro mean over songs is the table's number
            assert np.mean([float(row[key]) for row in per_song]) == pytest.approx(trained[key], abs=1e-9)
    assert_valid_png(out / "per_song_f1.png")


def check_pitch_report(trained, evaluated, data, out):
    per_song = per_song_rows(trained, out)
    for key in ("raw_pitch_accuracy", "raw_chroma_accuracy", "overall_accuracy", "voicing_recall"):
        assert np.mean([float(row[key]) for row in per_song]) == pytest.approx(trained[key], abs=1e-9), key
    assert_valid_png(out / "per_song_accuracy.png")


def check_lyrics_report(trained, evaluated, data, out):
    """Whole-song WER is corpus-level: each song's WER weighted by its reference words gives it back."""
    per_song = per_song_rows(trained, out)
    words = np.array([float(row["words"]) for row in per_song])
    assert words.sum() == trained["num_reference_words"]
    wer = np.array([float(row["wer"]) for row in per_song])
    assert (wer * words).sum() / words.sum() == pytest.approx(trained["wer"], abs=1e-9)
    assert {"cer", "chunk_wer", "chunk_cer"} <= set(trained)
    assert_valid_png(out / "per_song_error_rate.png")


REPORT_CHECKS = {"classification": check_class_report, "transcription": check_note_report, "pitch": check_pitch_report,
                 "lyrics": check_lyrics_report}


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
    transcription_data, _ = demo_runs["transcription"]
    earlier = tmp_path / "earlier_release"  # a folder of frame targets frozen at preparation: no notes_unclipped
    data, _ = load_prepared(transcription_data)
    data.remove_columns(["notes_unclipped"]).save_to_disk(str(earlier))
    shutil.copy(transcription_data / "svu_meta.json", earlier / "svu_meta.json")
    with pytest.raises(SystemExit, match="split 'test' has no 'notes_unclipped' column; prepare it again"):
        svu_main(["evaluate", "--model", str(transcription_run / "repo"), "--data", str(earlier), "-o", str(tmp_path)])

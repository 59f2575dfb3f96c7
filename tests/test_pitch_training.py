"""The demo pitch model, trained for real on the synthetic pitch corpus (`demo_runs.demo_run`):
raw pitch accuracy on the synthetic test split >= 0.9 where the untrained model stays far below, and sub-bin
decoding makes held notes accurate to a few cents."""

import json

import numpy as np
import pytest
import torch
from demo_runs import DEMO_GROUP, demo_run

from svu.dataset_scripts.audio import resample
from svu.dataset_scripts.prepare import load_prepared
from svu.modeling_svu import SVUForPitchEstimation
from svu.modeling_svu.long_audio import pitch_array
from svu.modeling_svu.pitch import f0_at
from svu.train.evaluation import evaluate_test

pytestmark = [pytest.mark.timeout(900), pytest.mark.xdist_group(DEMO_GROUP)]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    demo = demo_run("pitch", tmp_path_factory)
    data, meta = load_prepared(demo.data)
    model = SVUForPitchEstimation.from_pretrained(demo.repo).eval()
    return demo.out, data, meta, model



def test_run_scores_every_test_chunk_once_and_the_saved_repo_reproduces_them(run):
    out, data, meta, model = run
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["task"] == "pitch" and metrics["selection_metric"] == "raw_pitch_accuracy"
    test = metrics["test"]
    assert test["num_examples"] == len(data["test"]) == test["num_unique_examples"]
    assert test["num_songs"] == len(set(data["test"]["song_id"])) and test["songs_skipped_unvoiced"] == []
    again = evaluate_test(model, data["test"], meta, batch_size=4)
    for key in ("raw_pitch_accuracy", "raw_chroma_accuracy", "overall_accuracy", "voicing_recall", "voicing_false_alarm"):
        assert again[key] == pytest.approx(test[key], abs=1e-6), key


def test_untrained_model_stays_far_below(run):
    out, data, meta, model = run
    torch.manual_seed(0)
    untrained = SVUForPitchEstimation(model.config).eval()  # the same architecture, random weights
    assert evaluate_test(untrained, data["test"], meta, batch_size=4)["raw_pitch_accuracy"] < 0.3


def test_trained_demo_reaches_raw_pitch_accuracy_090(run):
    out, data, meta, model = run
    test = json.loads((out / "metrics.json").read_text())["test"]
    assert test["raw_pitch_accuracy"] >= 0.9, test


def test_held_notes_within_a_few_cents_through_long_audio(run):
    """Whole test songs through `long_audio.pitch_array` (any length): the median cent error on voiced frames of
    held notes (no glide or vibrato within +-30 ms) is a few cents."""
    out, data, meta, model = run
    errors = []
    for song in sorted(set(data["test"]["song_id"])):
        chunks = sorted((row for row in data["test"] if row["song_id"] == song), key=lambda row: row["chunk_start"])
        wave = np.concatenate([np.asarray(row["audio"]["array"], dtype=np.float32) for row in chunks])
        wave = resample(wave, chunks[0]["audio"]["sampling_rate"], model.config.sampling_rate)
        times = np.concatenate([np.asarray(row["f0_times"]) + row["chunk_start"] for row in chunks])
        f0 = np.concatenate([np.asarray(row["f0_hz"]) for row in chunks])
        decoded = pitch_array(model, wave, progress=False)
        assert len(decoded["times"]) == model.config.num_frames(len(wave))
        reference = f0_at(times, f0, decoded["times"])
        cents = 1200 * np.log2(np.where(f0 > 0, f0, 1.0))
        steady = np.array([np.ptp(cents[np.abs(times - t) <= 0.03]) < 5 if np.all(f0[np.abs(times - t) <= 0.03] > 0)
                           else False for t in decoded["times"]])
        voiced = (reference > 0) & steady
        errors.append(np.abs(1200 * np.log2(decoded["pitch_hz"][voiced] / reference[voiced])))
    errors = np.concatenate(errors)
    assert len(errors) > 200
    print(f"held-note frames: {len(errors)}, median cent error {np.median(errors):.1f}, "
          f"within 50 cents {np.mean(errors < 50):.3f}")
    assert np.median(errors) < 10

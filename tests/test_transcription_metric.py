"""The note-level scorer (`train/metrics/transcription`): mir_eval's regression data and MIR-ST500 conventions."""

import json
from pathlib import Path

import evaluate
import mir_eval
import numpy as np
import pytest

from data_fixtures import TEST_DATA

REGRESSION = TEST_DATA / "mir_eval_transcription"
MIR_ST500_JSON = TEST_DATA / "mir_st500" / "val_1005_55_icassp_ver.json"
METRIC = str(Path(__file__).resolve().parents[1] / "train" / "metrics" / "transcription")


@pytest.fixture(scope="module")
def metric():
    return evaluate.load(METRIC)


def load_notes(path):
    intervals, pitches = mir_eval.io.load_valued_intervals(str(path))  # skips est00.txt's comment line
    return np.column_stack([intervals, pitches]).tolist()


def test_reproduces_mir_eval_regression_outputs_exactly(metric):
    cases = [f"{i:02d}" for i in range(10)]
    references = [load_notes(REGRESSION / f"ref{c}.txt") for c in cases]
    estimates = [load_notes(REGRESSION / f"est{c}.txt") for c in cases]
    expected = [json.loads((REGRESSION / f"output{c}.json").read_text()) for c in cases]
    result = metric.compute(predictions=estimates, references=references, song_ids=cases, pitch_unit="hz")
    assert [row["song_id"] for row in result["per_song"]] == cases
    for row, want in zip(result["per_song"], expected):
        assert set(row["mir_eval"]) == set(want)
        for key, value in want.items():
            assert row["mir_eval"][key] == value, (row["song_id"], key)  # bit-exact
        assert row["COnPOff_f1"] == want["F-measure"]
        assert row["COnP_recall"] == want["Recall_no_offset"]
        assert row["COn_precision"] == want["Onset_Precision"]
    # reported scores are the plain means of the per-song values
    assert result["COnP_f1"] == pytest.approx(np.mean([w["F-measure_no_offset"] for w in expected]), abs=1e-15)
    assert result["COn_recall"] == pytest.approx(np.mean([w["Onset_Recall"] for w in expected]), abs=1e-15)
    assert result["num_songs"] == 10


def test_self_evaluation_of_mir_st500_transcription_is_perfect(metric):
    songs = json.loads(MIR_ST500_JSON.read_text())
    result = metric.compute(predictions=list(songs.values()), references=list(songs.values()), song_ids=list(songs))
    for name in ("COnPOff", "COnP", "COn"):
        assert result[f"{name}_f1"] == result[f"{name}_precision"] == result[f"{name}_recall"] == 1.0
        assert result[f"{name}_matched"] == 32403
    assert (result["num_songs"], result["num_reference_notes"], result["num_estimated_notes"]) == (100, 32403, 32403)


def test_macro_average_over_songs_not_pooled_notes(metric):
    big = [[i, i + 0.5, 60] for i in range(10)]
    small = [[0, 0.5, 60], [1, 1.5, 62]]
    wrong_pitch = [[0, 0.5, 70], [1, 1.5, 72]]
    result = metric.compute(predictions=[big, wrong_pitch], references=[big, small])
    assert result["COnP_f1"] == 0.5  # pooled over notes it would be 10/12
    assert result["COn_f1"] == 1.0  # onsets ignore pitch
    assert result["COnP_matched"] == 10


def test_mir_st500_note_filter_empty_prediction_and_empty_reference(metric):
    reference = [[0.0, 0.5, 60], [1.0, 1.5, 62], [2.0, 2.0, 64], [-0.1, 0.2, 65]]  # last two dropped
    noisy_estimate = [[0.01, 0.52, 60], [1.0, 1.45, 62], [3.0, 2.9, 64], [-1.0, 0.1, 50]]  # last two dropped
    result = metric.compute(
        predictions=[noisy_estimate, [[1.0, 0.5, 60]], []],
        references=[reference, reference, []],
        song_ids=["a", "b", "c"],
    )
    a, b = result["per_song"]
    assert (a["num_reference_notes"], a["num_estimated_notes"]) == (2, 2)
    assert a["COnPOff_f1"] == 1.0
    # "b": nothing valid predicted -> zeros, mir_eval not called, the song still counts in the mean
    assert b["num_estimated_notes"] == 0 and b["mir_eval"] is None and b["COn_f1"] == 0.0
    assert result["COn_f1"] == 0.5 and result["num_songs"] == 2
    # "c": no reference notes (mir_eval cannot score it): left out and reported
    assert result["songs_skipped_empty_reference"] == ["c"]


def test_tolerances_follow_mir_eval(metric):
    reference = [[1.0, 2.0, 60]]
    cases = {
        (1.049, 2.0, 60.49): (1.0, 1.0, 1.0),  # onset within 50 ms, pitch within 50 cents
        (1.06, 2.0, 60.0): (0.0, 0.0, 0.0),  # onset 60 ms late
        (1.0, 2.0, 60.6): (0.0, 0.0, 1.0),  # 60 cents sharp: onset only
        (1.0, 2.19, 60.0): (1.0, 1.0, 1.0),  # offset within 20 % of a 1 s note
        (1.0, 2.25, 60.0): (0.0, 1.0, 1.0),  # offset 250 ms late
    }
    for estimate, (conpoff, conp, con) in cases.items():
        result = metric.compute(predictions=[[list(estimate)]], references=[reference])
        assert (result["COnPOff_f1"], result["COnP_f1"], result["COn_f1"]) == (conpoff, conp, con), estimate


def test_bad_input_is_one_clear_error(metric):
    with pytest.raises(ValueError, match="song '0': predicted notes contain NaN"):
        metric.compute(predictions=[[[0.0, float("nan"), 60]]], references=[[[0.0, 1.0, 60]]])
    with pytest.raises(ValueError, match="pitch_unit"):
        metric.compute(predictions=[[[0.0, 1.0, 60]]], references=[[[0.0, 1.0, 60]]], pitch_unit="cents")

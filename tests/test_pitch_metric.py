"""The melody scorer (`train/metrics/pitch`): a reference that starts after 0 s is scored on its own rows."""

from pathlib import Path

import evaluate
import numpy as np
import pytest

METRIC = str(Path(__file__).resolve().parents[1] / "train" / "metrics" / "pitch")
HOP = 0.01
SCORES = ("raw_pitch_accuracy", "raw_chroma_accuracy", "overall_accuracy", "voicing_recall", "voicing_false_alarm")
VOICED_FRAME_SCORES = ("raw_pitch_accuracy", "raw_chroma_accuracy", "voicing_recall", "num_reference_voiced_frames")


@pytest.fixture(scope="module")
def metric():
    return evaluate.load(METRIC)


def rows(first, last, *values):
    """`[[time_s, *values], ...]` on the 10 ms grid, frames `first` to `last` inclusive."""
    return [[round(k * HOP, 10), *values] for k in range(first, last + 1)]


# Annotated from 0.50 s to 1.49 s: 220 Hz, a gap, 330 Hz.
LATE_REFERENCE = rows(50, 79, 220.0) + rows(80, 99, 0.0) + rows(100, 149, 330.0)
# From 0 s: singing at 440 Hz where nothing is annotated, then against the reference: 20 frames right, 10 an octave
# off, 10 voiced in the gap (false alarms), 10 unvoiced in it, 30 right, 20 with the right pitch but unvoiced.
ESTIMATE = (
    rows(0, 49, 440.0, 1) + rows(50, 69, 220.0, 1) + rows(70, 79, 440.0, 1) + rows(80, 89, 200.0, 1)
    + rows(90, 99, 0.0, 0) + rows(100, 129, 330.0, 1) + rows(130, 149, 330.0, 0)
)


def test_a_reference_starting_late_is_scored_on_its_own_rows(metric):
    late = metric.compute(predictions=[ESTIMATE], references=[LATE_REFERENCE])
    # the counts above, over the 100 annotated frames (80 voiced): nothing added at 0 s
    assert late["num_reference_voiced_frames"] == 80
    assert late["raw_pitch_accuracy"] == pytest.approx(70 / 80)
    assert late["raw_chroma_accuracy"] == pytest.approx(80 / 80)
    assert late["voicing_recall"] == pytest.approx(60 / 80)
    assert late["voicing_false_alarm"] == pytest.approx(10 / 20)
    assert late["overall_accuracy"] == pytest.approx((50 + 10) / 100)

    # the same reference padded with unvoiced rows from 0 s: its voiced frames score the same (the padding adds
    # unvoiced frames, which the other two scores count)
    padded = metric.compute(predictions=[ESTIMATE], references=[rows(0, 49, 0.0) + LATE_REFERENCE])
    assert {key: late[key] for key in VOICED_FRAME_SCORES} == pytest.approx({key: padded[key] for key in VOICED_FRAME_SCORES})

    # the same song moved to start at 0 s (reference and estimate): every score the same
    start = 50 * HOP
    moved = metric.compute(
        predictions=[[[round(t - start, 10), *rest] for t, *rest in ESTIMATE if t >= start]],
        references=[[[round(t - start, 10), f0] for t, f0 in LATE_REFERENCE]],
    )
    assert {key: late[key] for key in SCORES} == pytest.approx({key: moved[key] for key in SCORES})

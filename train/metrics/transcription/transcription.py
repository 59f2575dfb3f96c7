"""Note-level transcription scores (COnPOff, COnP, COn) per song with mir_eval, averaged over songs.

Load by path (offline): `evaluate.load("train/metrics/transcription")`.

    metric.compute(predictions=[song1_notes, song2_notes], references=[song1_ref, song2_ref], song_ids=["1", "2"])

Each song's notes are `[[onset_s, offset_s, midi_pitch], ...]`. Follows MIR-ST500's official `evaluate.py`:
notes with `offset - onset <= 0` or `onset < 0` are dropped (both sides); every song with an annotation is
scored with `mir_eval.transcription.evaluate` (onset 50 ms, pitch 50 cents, offset max(50 ms, 20 % of the
reference duration)); a song whose prediction is empty scores 0 and still counts; each reported P/R/F is the
mean of the per-song values (macro over songs).
"""

import datasets
import evaluate
import mir_eval
import numpy as np

_DESCRIPTION = """COnPOff / COnP / COn precision, recall and F1 (Molina et al. 2014) computed per song with
`mir_eval.transcription.evaluate` and averaged over songs, as MIR-ST500's evaluation script and Yamamoto
(APSIPA 2023) report them. Per-song rows keep all of mir_eval's 14 scores."""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `list` of `[onset, offset, pitch]`): estimated notes, one list per song.
    references (`list` of `list` of `[onset, offset, pitch]`): annotated notes, one list per song.
    song_ids (`list` of `str`, *optional*): names for the per-song rows (default "0", "1", ...).
    pitch_unit (`str`, *optional*, defaults to "midi"): "midi" (converted with mir_eval.util.midi_to_hz, as
        MIR-ST500 does) or "hz" (used as is, e.g. mir_eval's own note files).
    onset_tolerance (`float`, *optional*, defaults to 0.05): seconds.
    pitch_tolerance (`float`, *optional*, defaults to 50.0): cents.
    offset_ratio, offset_min_tolerance (`float`, *optional*, default 0.2 and 0.05): offset window
        max(offset_min_tolerance, offset_ratio * reference duration).
Returns:
    {COnPOff,COnP,COn}_{precision,recall,f1}: means over scored songs (fractions in [0, 1]);
    num_songs; num_reference_notes, num_estimated_notes (after filtering, summed); {COnPOff,COnP,COn}_matched
    (sum over songs of round(recall * reference notes)); songs_skipped_empty_reference (ids of songs without
    reference notes, which mir_eval cannot score; they are left out of the means); per_song (one dict per song:
    song_id, note counts, the nine scores and `mir_eval`, the full mir_eval output or None if nothing to match).
"""

# our metric name -> mir_eval.transcription.evaluate keys for precision, recall, F-measure
_MIR_EVAL_KEYS = {
    "COnPOff": ("Precision", "Recall", "F-measure"),
    "COnP": ("Precision_no_offset", "Recall_no_offset", "F-measure_no_offset"),
    "COn": ("Onset_Precision", "Onset_Recall", "Onset_F-measure"),
}


def valid_notes(notes, song_id, side):
    """(n, 3) float array of the notes MIR-ST500's evaluate.py keeps: onset >= 0 and offset > onset."""
    array = np.asarray([n for n in notes if n is not None], dtype=np.float64).reshape(-1, 3)
    if not np.isfinite(array).all():
        raise ValueError(f"song {song_id!r}: {side} notes contain NaN or infinite values.")
    keep = (array[:, 0] >= 0) & (array[:, 1] - array[:, 0] > 0)
    return array[keep]


def score_song(reference, estimate, pitch_unit="midi", **tolerances) -> dict:
    """One song's nine scores plus mir_eval's full output, from (n, 3) note arrays that passed `valid_notes`."""
    row = {f"{name}_{part}": 0.0 for name in _MIR_EVAL_KEYS for part in ("precision", "recall", "f1")}
    row["mir_eval"] = None
    if len(estimate) == 0:
        return row  # MIR-ST500: an empty prediction scores 0 without calling mir_eval
    to_hz = mir_eval.util.midi_to_hz if pitch_unit == "midi" else (lambda p: p)
    scores = mir_eval.transcription.evaluate(
        reference[:, :2], to_hz(reference[:, 2]), estimate[:, :2], to_hz(estimate[:, 2]), **tolerances
    )
    for name, keys in _MIR_EVAL_KEYS.items():
        for part, key in zip(("precision", "recall", "f1"), keys):
            row[f"{name}_{part}"] = float(scores[key])
    row["mir_eval"] = {key: float(value) for key, value in scores.items()}
    return row


class Transcription(evaluate.Metric):
    def _info(self):
        notes = datasets.List(datasets.List(datasets.Value("float64")))
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="R. Molina et al., ISMIR 2014; J.-Y. Wang and J.-S. R. Jang, ICASSP 2021 (MIR-ST500).",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": notes, "references": notes}),
        )

    def _compute(
        self,
        predictions,
        references,
        song_ids=None,
        pitch_unit="midi",
        onset_tolerance=0.05,
        pitch_tolerance=50.0,
        offset_ratio=0.2,
        offset_min_tolerance=0.05,
    ):
        if pitch_unit not in ("midi", "hz"):
            raise ValueError(f"pitch_unit must be 'midi' or 'hz', got {pitch_unit!r}.")
        song_ids = [str(i) for i in range(len(references))] if song_ids is None else [str(s) for s in song_ids]
        if len(song_ids) != len(references):
            raise ValueError(f"{len(song_ids)} song_ids for {len(references)} songs.")
        tolerances = dict(
            onset_tolerance=onset_tolerance,
            pitch_tolerance=pitch_tolerance,
            offset_ratio=offset_ratio,
            offset_min_tolerance=offset_min_tolerance,
        )
        rows, skipped = [], []
        for song_id, estimate, reference in zip(song_ids, predictions, references):
            reference = valid_notes(reference, song_id, "reference")
            estimate = valid_notes(estimate, song_id, "predicted")
            if len(reference) == 0:
                skipped.append(song_id)
                continue
            row = {"song_id": song_id, "num_reference_notes": len(reference), "num_estimated_notes": len(estimate)}
            row.update(score_song(reference, estimate, pitch_unit, **tolerances))
            rows.append(row)

        results = {}
        for name in _MIR_EVAL_KEYS:
            for part in ("precision", "recall", "f1"):
                key = f"{name}_{part}"
                results[key] = float(np.mean([row[key] for row in rows])) if rows else 0.0
        results["num_songs"] = len(rows)
        results["num_reference_notes"] = int(sum(row["num_reference_notes"] for row in rows))
        results["num_estimated_notes"] = int(sum(row["num_estimated_notes"] for row in rows))
        for name in _MIR_EVAL_KEYS:
            results[f"{name}_matched"] = int(
                sum(round(row[f"{name}_recall"] * row["num_reference_notes"]) for row in rows)
            )
        results["songs_skipped_empty_reference"] = skipped
        results["per_song"] = rows
        return results

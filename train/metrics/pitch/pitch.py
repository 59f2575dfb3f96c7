"""Frame-level melody (F0) scores per song with `mir_eval.melody`, averaged over songs.

Load by path (offline): `evaluate.load("train/metrics/pitch/pitch.py")`.

    metric.compute(predictions=[segment1_frames, ...], references=[segment1_f0, ...], song_ids=["a", "a", "b", ...])

Entries are segments (a whole song, a chunk, a clip): a segment's prediction is `[[time_s, pitch_hz, voiced], ...]`:
the estimated pitch of every frame (voiced or not, so raw pitch / chroma accuracy do not depend on the voicing
decision, mir_eval's convention) and the voicing decision (1 voiced, 0 unvoiced); its reference is
`[[time_s, f0_hz], ...]` with 0 Hz where unvoiced, on its own time axis. Each segment's estimate is resampled onto
its reference times (`mir_eval.melody.to_cent_voicing`); the frames of the segments of one song (same `song_ids`
value) are pooled and scored with mir_eval.melody's measures (pitch tolerance 50 cents), exactly as
`mir_eval.melody.evaluate` scores one song, except that a reference starting after 0 s is scored on its own rows
(mir_eval would add a voiced frame at 0 s; `cent_voicing`); the reported scores are the means over songs (macro).
"""

import warnings

import datasets
import evaluate
import mir_eval
import numpy as np

_DESCRIPTION = """Raw pitch accuracy, raw chroma accuracy, overall accuracy, voicing recall and voicing false alarm
(MIREX melody extraction; Salamon et al. 2014) computed per song with `mir_eval.melody.evaluate` (50 cents) and
averaged over songs."""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `list` of `[time_s, pitch_hz, voiced]`): estimated frames, one list per segment.
    references (`list` of `list` of `[time_s, f0_hz]`): annotated F0 (0 = unvoiced), one list per segment.
    song_ids (`list` of `str`, *optional*): the song of each segment (default "0", "1", ...: one song each);
        segments of one song are pooled.
    cent_tolerance (`float`, *optional*, defaults to 50.0): cents.
Returns:
    raw_pitch_accuracy, raw_chroma_accuracy, overall_accuracy, voicing_recall, voicing_false_alarm: means over the
    scored songs (fractions in [0, 1]); num_songs; num_reference_voiced_frames (summed); songs_skipped_unvoiced
    (ids of songs whose reference has no voiced frame: their pitch accuracies are undefined, so they are left out
    of the means); per_song (one dict per song: song_id, segments, voiced reference frames, the five scores).
"""

_MIR_EVAL_KEYS = {  # our metric name -> mir_eval.melody.evaluate's
    "raw_pitch_accuracy": "Raw Pitch Accuracy",
    "raw_chroma_accuracy": "Raw Chroma Accuracy",
    "overall_accuracy": "Overall Accuracy",
    "voicing_recall": "Voicing Recall",
    "voicing_false_alarm": "Voicing False Alarm",
}


def as_frames(rows, song_id, side, width) -> np.ndarray:
    """(n, width) float array of a song's rows, sorted by time; ValueError (one line) for bad values."""
    array = np.asarray(rows, dtype=np.float64).reshape(-1, width)
    if not np.isfinite(array).all():
        raise ValueError(f"song {song_id!r}: {side} rows contain NaN or infinite values.")
    if (array[:, 1] < 0).any():
        raise ValueError(f"song {song_id!r}: {side} frequencies must be >= 0 Hz (0 = unvoiced).")
    return array[np.argsort(array[:, 0], kind="stable")]


def cent_voicing(reference: np.ndarray, estimate: np.ndarray) -> tuple:
    """mir_eval's (ref_voicing, ref_cent, est_voicing, est_cent) of one segment, on the reference's own times.

    A reference that starts after 0 s (an annotation from the first sung frame, e.g. Dagstuhl ChoirSet's at 0.40 s)
    is scored on its own rows only: `mir_eval.melody.to_cent_voicing` would insert a frame at 0 s carrying the
    first row's F0, a voiced reference frame nobody annotated. An unvoiced row at 0 s is put there instead, so that
    mir_eval inserts nothing, and its frame is taken out after the estimate is resampled."""
    if len(estimate) == 0:  # nothing estimated: every reference frame unvoiced and without pitch
        estimate = np.array([[reference[0, 0], 0.0, 0.0]])
    starts_late = reference[0, 0] > 0
    if starts_late:
        reference = np.concatenate([[[0.0, 0.0]], reference])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # mir_eval warns about resampling; the counts say what was scored
        frames = mir_eval.melody.to_cent_voicing(
            reference[:, 0], reference[:, 1], estimate[:, 0], estimate[:, 1],
            est_voicing=(estimate[:, 2] > 0.5).astype(float),
        )
    return tuple(array[1:] for array in frames) if starts_late else frames


def score_frames(ref_voicing, ref_cent, est_voicing, est_cent, cent_tolerance: float) -> dict:
    """The five scores of pooled frames, by the measures `mir_eval.melody.evaluate` uses."""
    melody = mir_eval.melody
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {
            "raw_pitch_accuracy": float(melody.raw_pitch_accuracy(ref_voicing, ref_cent, est_voicing, est_cent, cent_tolerance)),
            "raw_chroma_accuracy": float(melody.raw_chroma_accuracy(ref_voicing, ref_cent, est_voicing, est_cent, cent_tolerance)),
            "overall_accuracy": float(melody.overall_accuracy(ref_voicing, ref_cent, est_voicing, est_cent, cent_tolerance)),
            "voicing_recall": float(melody.voicing_recall(ref_voicing, est_voicing)),
            "voicing_false_alarm": float(melody.voicing_false_alarm(ref_voicing, est_voicing)),
        }


class Pitch(evaluate.Metric):
    def _info(self):
        rows = datasets.List(datasets.List(datasets.Value("float64")))
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="J. Salamon, E. Gomez, D. P. W. Ellis and G. Richard, IEEE Signal Processing Magazine 2014; "
            "C. Raffel et al., mir_eval, ISMIR 2014.",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": rows, "references": rows}),
        )

    def _compute(self, predictions, references, song_ids=None, cent_tolerance=50.0):
        song_ids = [str(i) for i in range(len(references))] if song_ids is None else [str(s) for s in song_ids]
        if len(song_ids) != len(references):
            raise ValueError(f"{len(song_ids)} song_ids for {len(references)} segments.")
        songs = {}  # song -> the four frame arrays of each of its segments
        for song_id, estimate, reference in zip(song_ids, predictions, references):
            reference = as_frames(reference, song_id, "reference", 2)
            estimate = as_frames(estimate, song_id, "predicted", 3)
            songs.setdefault(song_id, []).append(cent_voicing(reference, estimate) if len(reference) else None)
        rows, skipped = [], []
        for song_id, segments in songs.items():
            frames = [np.concatenate(parts) for parts in zip(*[s for s in segments if s is not None])]
            voiced = int(np.sum(frames[0] > 0)) if frames else 0
            if voiced == 0:
                skipped.append(song_id)
                continue
            rows.append({"song_id": song_id, "num_segments": len(segments), "num_reference_voiced_frames": voiced,
                         **score_frames(*frames, cent_tolerance)})
        results = {name: float(np.mean([row[name] for row in rows])) if rows else 0.0 for name in _MIR_EVAL_KEYS}
        results["num_songs"] = len(rows)
        results["num_reference_voiced_frames"] = int(sum(row["num_reference_voiced_frames"] for row in rows))
        results["songs_skipped_unvoiced"] = skipped
        results["per_song"] = rows
        return results

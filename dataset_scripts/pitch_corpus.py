"""What the real F0-annotated singing corpora (vocadito, MIR-1K) share: finding the corpus, annotation checks,
semitones, singer splits, and how their songs are cut (`RECORDING_CHUNKING`).

Their rows are the pitch task's (`common.pitch_features`: ``audio``, ``song_id`` = the recording file, the leakage
key; ``singer``; ``f0_times`` seconds from the chunk start; ``f0_hz``, 0 = unvoiced; ``chunk_start``), cut by
`CorpusBuilder.pitch_song` with `RECORDING_CHUNKING`: nothing zero-padded and 50 ms of annotation past each chunk
edge (the policy and its reasons: `common`'s module docstring). Frame targets are not stored: the collator computes
them on the model's own frames (`modeling_svu.pitch.pitch_targets`).
"""

from pathlib import Path
from typing import Callable

import numpy as np

from .audio import SAMPLING_RATE

# `common.pitch_examples` options of a real recording (ours): no padded tail, the annotation 50 ms past each edge
RECORDING_CHUNKING = {"padded": False, "margin_seconds": 0.05}


def find_root(data_dir, corpus: str, holds: Callable[[Path], bool], missing: str, expected: str) -> Path:
    """``data_dir`` or the first of its subfolders (an archive's own top folder) that `holds` the corpus; else
    ValueError (one line): "``missing`` under <data_dir>; ``expected``"."""
    root = Path(data_dir)
    if not root.is_dir():
        raise ValueError(f"{corpus} data_dir {root} is not a folder; {expected}")
    for candidate in [root, *sorted(p for p in root.iterdir() if p.is_dir())]:
        if holds(candidate):
            return candidate
    raise ValueError(f"{missing} under {root}; {expected}")


def semitones_to_hz(semitones) -> np.ndarray:
    """MIDI-numbered semitones (69 = A4 = 440 Hz) to Hz; 0 (unvoiced) stays 0."""
    semitones = np.asarray(semitones, dtype=np.float64)
    return np.where(semitones > 0, 440.0 * 2.0 ** ((semitones - 69.0) / 12.0), 0.0)


def f0_problem(times: np.ndarray, f0_hz: np.ndarray) -> str | None:
    """Why an F0 track is unusable, or None: empty, NaN/infinite, negative F0, times not increasing."""
    if len(times) == 0:
        return "no annotated frames"
    if not (np.isfinite(times).all() and np.isfinite(f0_hz).all()):
        return "NaN or infinite value"
    if (f0_hz < 0).any():
        return f"negative F0 ({f0_hz.min():g} Hz at {times[int(np.argmin(f0_hz))]:.3f} s)"
    if (np.diff(times) <= 0).any():
        at = int(np.flatnonzero(np.diff(times) <= 0)[0]) + 1
        return f"times not increasing (row {at + 1}: {times[at]:g} s after {times[at - 1]:g} s)"
    return None


def span_mismatch(name: str, times, num_samples: int, tolerance: float = 0.5) -> str | None:
    """A report line when the annotation ends more than `tolerance` seconds before or after the audio (an
    annotation of another take, a cut file), else None; such a file is still used."""
    audio_seconds, last = num_samples / SAMPLING_RATE, float(times[-1])
    if abs(last - audio_seconds) <= tolerance:
        return None
    return f"{name}: the F0 annotation ends at {last:.2f} s but the audio at {audio_seconds:.2f} s; check that they belong together"


def singer_split(singer: str, test_singers, validation_singers) -> str:
    """test / validation / train of a singer from named lists (case-insensitive)."""
    name = singer.lower()
    if name in {s.lower() for s in test_singers}:
        return "test"
    if name in {s.lower() for s in validation_singers}:
        return "validation"
    return "train"

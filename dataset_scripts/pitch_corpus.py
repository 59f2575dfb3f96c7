"""What the real F0-annotated singing corpora (vocadito, MIR-1K) share: columns, chunking, annotation checks.

Rows of a pitch corpus (the pitch task's dataset contract)::

    audio        16 kHz mono chunk
    song_id      the recording it was cut from (the leakage key: never in two splits)
    singer       who sings it (our splits keep every singer in one split, so no song leaks either)
    f0_times     seconds from the chunk start of each annotated frame, float32
    f0_hz        the reference F0 there in Hz, 0 = unvoiced, float32
    chunk_start  seconds of the chunk start in its recording file (a file's chunks, in this order, are the file)

Frame targets are not stored: the collator computes them from ``f0_times`` / ``f0_hz`` on the model's own frame
rate (`modeling_svu.pitch.pitch_targets`), so one prepared dataset serves 16 kHz and 24 kHz backbones.

Chunking (ours): consecutive ``chunk_seconds`` chunks from 0; a remainder shorter than half a chunk joins the last
chunk (so a chunk is 0.5x to 1.5x ``chunk_seconds`` long, a recording shorter than that is one chunk), and nothing
is zero-padded: a padded tail would be scored as silence that no annotator heard. The annotation frames of a chunk
are those within ``F0_MARGIN_SECONDS`` of it, so times may run slightly below 0 or past the chunk's length (like
``notes_unclipped``): a model frame at a chunk edge still has an annotated frame on each side.
"""

from pathlib import Path
from typing import Callable

import datasets
import numpy as np

from .audio import SAMPLING_RATE, audio_cell

F0_MARGIN_SECONDS = 0.05


def pitch_features() -> datasets.Features:
    return datasets.Features(
        {
            "audio": datasets.Audio(sampling_rate=SAMPLING_RATE),
            "song_id": datasets.Value("string"),
            "singer": datasets.Value("string"),
            "f0_times": datasets.List(datasets.Value("float32")),
            "f0_hz": datasets.List(datasets.Value("float32")),
            "chunk_start": datasets.Value("float32"),
        }
    )


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


def chunk_bounds(num_samples: int, chunk_samples: int) -> list:
    """(start, end) samples of each chunk (module docstring: a short remainder joins the last chunk)."""
    starts = list(range(0, max(num_samples, 1), chunk_samples))
    if len(starts) > 1 and num_samples - starts[-1] < chunk_samples / 2:
        starts.pop()
    return [(start, starts[i + 1] if i + 1 < len(starts) else num_samples) for i, start in enumerate(starts)]


def pitch_examples(waveform: np.ndarray, times, f0_hz, *, song_id: str, singer: str, chunk_seconds: float,
                   recording: str | None = None) -> list:
    """The chunks of one recording file (`recording`, default the song) with the annotation frames of each, times
    relative to the chunk start."""
    times = np.asarray(times, dtype=np.float64)
    f0_hz = np.asarray(f0_hz, dtype=np.float64)
    examples = []
    for index, (start, end) in enumerate(chunk_bounds(len(waveform), int(round(chunk_seconds * SAMPLING_RATE)))):
        chunk_start, chunk_end = start / SAMPLING_RATE, end / SAMPLING_RATE
        inside = (times >= chunk_start - F0_MARGIN_SECONDS) & (times <= chunk_end + F0_MARGIN_SECONDS)
        examples.append(
            {
                "audio": audio_cell(waveform[start:end], f"{recording or song_id}#{index}.wav"),
                "song_id": song_id,
                "singer": singer,
                "f0_times": (times[inside] - chunk_start).astype(np.float32).tolist(),
                "f0_hz": f0_hz[inside].astype(np.float32).tolist(),
                "chunk_start": chunk_start,
            }
        )
    return examples


def singer_split(singer: str, test_singers, validation_singers) -> str:
    """test / validation / train of a singer from named lists (case-insensitive)."""
    name = singer.lower()
    if name in {s.lower() for s in test_singers}:
        return "test"
    if name in {s.lower() for s in validation_singers}:
        return "validation"
    return "train"

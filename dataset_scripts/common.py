"""What every corpus builder shares: features, the skip report, chunk -> example, checks.

Splits are always "train", "validation", "test". Classification examples are fixed-length chunks
(see `audio.py` for the chunking/RMS policies); transcription examples are 5 s chunks with the
notes cut at the chunk edges:

* a note is kept in every chunk it overlaps; in the ``notes`` column its onset/offset are
  clipped to ``[0, chunk_seconds]`` (seconds from the chunk start), so a note crossing an edge
  appears in both chunks, split at the edge;
* ``frame_targets`` are computed from the *unclipped* relative times, so the part after an edge
  (negative onset) marks voiced frames but **no onset** (``notes_to_frame_targets`` ignores a
  negative onset), and the part before the edge simply runs to the last frame.
  The ``notes`` column therefore holds an onset at 0.0 for such a continuation; evaluate
  transcription per song (or ignore onsets at 0.0) rather than trusting chunk-level onsets there.
"""

import dataclasses
import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Iterable

import datasets
import numpy as np

from modeling_svu.note_labels import notes_to_frame_targets

from .parallel import ordered_map
from .audio import SAMPLING_RATE, audio_cell, chunk_waveform, identity_separation, load_audio, passes_rms_filter

SPLITS = ("train", "validation", "test")
FRAME_HOP, FRAME_WINDOW = 320, 400  # backbone CNN: one frame per 320 samples, receptive field 400


def num_backbone_frames(num_samples: int) -> int:
    return (num_samples - FRAME_WINDOW) // FRAME_HOP + 1


def classification_features(label_names) -> datasets.Features:
    return datasets.Features(
        {
            "audio": datasets.Audio(sampling_rate=SAMPLING_RATE),
            "label": datasets.ClassLabel(names=list(label_names)),
            "clip_id": datasets.Value("string"),
            "singer": datasets.Value("string"),
            "chunk_index": datasets.Value("int32"),
        }
    )


def transcription_features(chunk_seconds: float) -> datasets.Features:
    num_frames = num_backbone_frames(int(round(chunk_seconds * SAMPLING_RATE)))
    note = {name: datasets.Value("float32") for name in ("onset", "offset", "pitch")}
    return datasets.Features(
        {
            "audio": datasets.Audio(sampling_rate=SAMPLING_RATE),
            "notes": datasets.List(note),
            "frame_targets": datasets.Array2D(shape=(num_frames, 4), dtype="float32"),
            "song_id": datasets.Value("string"),
            "chunk_start": datasets.Value("float32"),
        }
    )


@dataclass
class PrepareReport:
    """Files found / used / skipped (with reasons), filled while a builder generates examples."""

    files_found: int = 0
    files_used: int = 0
    skipped: dict = field(default_factory=lambda: defaultdict(list))  # reason -> [file names]
    chunks_dropped_rms: int = 0
    messages: list = field(default_factory=list)
    songs_total: int | None = None  # MIR-ST500: songs annotated, for "N of M songs have usable audio"

    def skip(self, name: str, reason: str) -> None:
        self.skipped[reason].append(str(name))

    def to_dict(self) -> dict:
        report = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        report["skipped"] = {reason: sorted(names) for reason, names in sorted(self.skipped.items())}
        report["files_skipped"] = sum(len(names) for names in self.skipped.values())
        if self.songs_total is not None:
            report["messages"] = [f"{self.files_used} of {self.songs_total} songs have usable audio", *self.messages]
        return report


class CorpusBuilder(datasets.GeneratorBasedBuilder):
    """Base of the corpus builders: a skip report, an optional vocal-separation hook, the chunk size."""

    DEFAULT_WRITER_BATCH_SIZE = 64

    def __init__(self, *args, separate=None, num_proc=1, **kwargs):
        super().__init__(*args, **kwargs)
        self.report = PrepareReport()
        self.separate = separate or identity_separation
        self.num_proc = num_proc  # processes decoding files (`parallel.ordered_map`); the rows do not depend on it

    @property
    def chunk_seconds(self) -> float:
        return self.config.chunk_seconds

    def decoded(self, entries, path, name):
        """``(entry, waveform)`` of each entry whose audio decodes, in order, decoded on `num_proc` processes;
        the others are counted as skipped, as `read_audio_or_skip` does. `path(entry)`, `name(entry)`: its
        audio file and its name in the report."""
        entries = list(entries)
        results = ordered_map(decode_or_error, [path(entry) for entry in entries], self.num_proc)
        for entry, (waveform, error) in zip(entries, results):
            if error is not None:
                self.report.skip(name(entry), skip_reason(ValueError(error)))
                self.report.messages.append(error)
                continue
            yield entry, waveform


def skip_reason(error: ValueError) -> str:
    """The report reason for a file `load_audio` refused (the full message goes to the report's messages)."""
    text = str(error)
    if "no such file" in text:
        return "missing file"
    if "empty file (0 bytes)" in text:
        return "empty file (0 bytes)"
    if "permission denied" in text:
        return "not readable (permission denied)"
    if "NaN or infinite" in text:
        return "NaN or infinite samples"
    return "unreadable audio"


def decode_or_error(path) -> tuple:
    """``(load_audio(path), None)``, or ``(None, the one-line error)`` (runs in `ordered_map` workers)."""
    try:
        return load_audio(path), None
    except ValueError as error:
        return None, str(error)


def read_audio_or_skip(path, name: str, report: "PrepareReport"):
    """`load_audio(path)`, or None after counting the file as skipped (reason + message naming it)."""
    try:
        return load_audio(path)
    except ValueError as error:
        report.skip(name, skip_reason(error))
        report.messages.append(str(error))
        return None


def classification_examples(
    waveform: np.ndarray,
    *,
    clip_id: str,
    label: str,
    singer: str,
    chunk_seconds: float,
    report: PrepareReport,
    rms_threshold: float | None = None,
) -> list:
    """Chunk one recording into examples; counts the file as used or skipped (with the reason)."""
    chunk_samples = int(round(chunk_seconds * SAMPLING_RATE))
    examples = []
    for index, (_, chunk) in enumerate(chunk_waveform(waveform, chunk_samples)):
        if rms_threshold is not None and not passes_rms_filter(chunk, rms_threshold):
            report.chunks_dropped_rms += 1
            continue
        examples.append(
            {
                "audio": audio_cell(chunk, f"{clip_id}#{index}.wav"),
                "label": label,
                "clip_id": clip_id,
                "singer": singer,
                "chunk_index": index,
            }
        )
    if examples:
        report.files_used += 1
    elif len(waveform) < chunk_samples / 2:
        report.skip(clip_id, f"shorter than half a chunk ({chunk_seconds / 2:g} s) after preprocessing")
    else:
        report.skip(clip_id, "every chunk below the RMS threshold")
    return examples


def chunk_notes(notes, chunk_start: float, chunk_seconds: float) -> list:
    """Notes overlapping ``[chunk_start, chunk_start + chunk_seconds)``, relative, *unclipped*."""
    chunk_end = chunk_start + chunk_seconds
    return [
        (onset - chunk_start, offset - chunk_start, pitch)
        for onset, offset, pitch in notes
        if offset > chunk_start and onset < chunk_end
    ]


def transcription_examples(waveform: np.ndarray, notes, *, song_id: str, chunk_seconds: float) -> list:
    """5 s chunks of one song with its notes cut at the chunk edges (module docstring)."""
    chunk_samples = int(round(chunk_seconds * SAMPLING_RATE))
    num_frames = num_backbone_frames(chunk_samples)
    examples = []
    for index, (start, chunk) in enumerate(chunk_waveform(waveform, chunk_samples)):
        chunk_start = start / SAMPLING_RATE
        relative = chunk_notes(notes, chunk_start, chunk_seconds)
        examples.append(
            {
                "audio": audio_cell(chunk, f"{song_id}#{index}.wav"),
                "notes": [
                    {"onset": max(onset, 0.0), "offset": min(offset, chunk_seconds), "pitch": pitch}
                    for onset, offset, pitch in relative
                ],
                "frame_targets": notes_to_frame_targets(relative, num_frames),
                "song_id": song_id,
                "chunk_start": chunk_start,
            }
        )
    return examples


def class_weights(train_labels: Iterable[int], num_classes: int) -> list:
    """The paper's w_c = 1 / n_c^0.2 from training chunk counts (1.0 for a class absent from train)."""
    counts = Counter(train_labels)
    return [float(counts[c] ** -0.2) if counts[c] else 1.0 for c in range(num_classes)]


def check_no_leakage(groups_by_split: dict, what: str) -> None:
    """Raise ``ValueError`` if one group (singer / album / song) sits in two splits."""
    seen = {}
    for split, groups in groups_by_split.items():
        for group in groups:
            if seen.setdefault(group, split) != split:
                raise ValueError(f"leakage: {what} {group!r} is in both {seen[group]!r} and {split!r}")


def write_json(path, payload) -> None:
    with open(path, "w") as f:
        json.dump(payload, f, indent=2, sort_keys=False)

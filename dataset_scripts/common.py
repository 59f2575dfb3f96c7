"""What every corpus builder shares: features, the skip report, chunk -> example, checks.

Splits are always "train", "validation", "test". Classification examples are fixed-length chunks
(see `audio.py` for the chunking/RMS policies); transcription examples are 5 s chunks with the
notes cut at the chunk edges:

* a note is kept in every chunk it overlaps; in the ``notes`` column its onset/offset are
  clipped to ``[0, chunk_seconds]`` (seconds from the chunk start), so a note crossing an edge
  appears in both chunks, split at the edge;
* ``notes_unclipped`` holds the same notes with *unclipped* relative times (a continuation from
  the previous chunk has a negative onset). Frame targets are computed from it when a batch is
  collated, for the model's frame rate and pitch range (`train.data.AudioCollator`), so one prepared
  dataset serves 16 kHz and 24 kHz backbones alike; a negative onset marks voiced frames but
  **no onset** (``notes_to_frame_targets`` ignores it).
  The ``notes`` column therefore holds an onset at 0.0 for such a continuation; evaluate
  transcription per song (or ignore onsets at 0.0) rather than trusting chunk-level onsets there.
* every tail is kept (zero-padded to a full chunk), however short, so a song's chunks in ``chunk_start``
  order, concatenated and cut at the song's length, are the whole song; each song's length and its
  **complete** notes (tails included) are recorded by `CorpusBuilder.transcription_song` and saved in
  ``svu_meta.json`` ``songs`` for whole-song scoring (``train/evaluation.py``).

Pitch examples (frame-level F0) are 5 s chunks too, every tail kept, each with the F0 annotation points of its
span: ``f0_times`` (seconds from the chunk start, in ``[0, chunk_seconds)``) and ``f0_hz`` (0 = unvoiced), so a
song's chunks in ``chunk_start`` order hold its complete annotation once; targets on the model's frames are
computed when a batch is collated (`train.data.AudioCollator`), and `CorpusBuilder.pitch_song` records each
song's length (``svu_meta.json`` ``songs``) for whole-song scoring. Real recordings (vocadito, MIR-1K) are cut with
`pitch_corpus.RECORDING_CHUNKING` instead (ours): ``padded=False``, nothing zero-padded (a padded tail would be
scored as silence no annotator heard; a rest shorter than half a chunk joins the last chunk), and
``margin_seconds=0.05``, the points within 50 ms of a chunk's edges kept too, so that a model frame at an edge still
has an annotated point on each side to interpolate from; times may then run a little below 0 or past the chunk's
end (scoring leaves those to the neighbouring chunk, `train.evaluation.chunk_f0_reference`).

Validation (every builder config's ``validation``): ``ours`` (default) holds out the corpus's validation
singers/songs/recordings; ``none`` puts them in train (``CorpusBuilder.assign``), leaving validation empty.
"""

import dataclasses
import json
import warnings
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from functools import cached_property
from typing import Iterable

import datasets
import numpy as np

from svu.modeling_svu.audio_io import TruncatedAudioWarning

from .audio import (
    SAMPLING_RATE,
    audio_cell,
    chunk_waveform,
    identity_separation,
    load_audio,
    padded_slice,
    passes_rms_filter,
    song_chunk_bounds,
)
from .parallel import ordered_map

SPLITS = ("train", "validation", "test")
VALIDATION_MODES = ("none", "ours")
# What svu_meta.json records of a transcription dataset's labels: no frame targets are stored, the collator
# computes them from `notes_unclipped` for the model's frame rate and pitch range.
LABEL_SCHEME_FROM_NOTES = {"frame_targets": "computed at collate time for the model", "notes": "notes_unclipped, seconds"}


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


def transcription_features() -> datasets.Features:
    note = {name: datasets.Value("float32") for name in ("onset", "offset", "pitch")}
    return datasets.Features(
        {
            "audio": datasets.Audio(sampling_rate=SAMPLING_RATE),
            "notes": datasets.List(note),
            "notes_unclipped": datasets.List(note),
            "song_id": datasets.Value("string"),
            "chunk_start": datasets.Value("float32"),
        }
    )


def pitch_features() -> datasets.Features:
    return datasets.Features(
        {
            "audio": datasets.Audio(sampling_rate=SAMPLING_RATE),
            "f0_times": datasets.List(datasets.Value("float32")),
            "f0_hz": datasets.List(datasets.Value("float32")),
            "song_id": datasets.Value("string"),
            "singer": datasets.Value("string"),
            "chunk_start": datasets.Value("float32"),
        }
    )


def lyrics_features() -> datasets.Features:
    return datasets.Features(
        {
            "audio": datasets.Audio(sampling_rate=SAMPLING_RATE),
            "text": datasets.Value("string"),
            "words": datasets.List(
                {"word": datasets.Value("string"), "start": datasets.Value("float32"), "end": datasets.Value("float32")}
            ),
            "song_id": datasets.Value("string"),
            "singer": datasets.Value("string"),
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

    def skip(self, name: str, reason: str, message: str | None = None) -> None:
        """Count file `name` as skipped for `reason`; `message` (a line naming the file and the problem) is kept."""
        self.skipped[reason].append(str(name))
        if message is not None:
            self.messages.append(message)

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

    def __init__(self, *args, separate=None, num_proc=1, separation_seed=0, **kwargs):
        super().__init__(*args, **kwargs)
        self.separation_seed = separation_seed  # HT-Demucs' random shifts (`separation.HTDemucsSeparator`)
        self.report = PrepareReport()
        self.separate = separate or identity_separation
        self.num_proc = num_proc  # processes decoding files (`parallel.ordered_map`); the rows do not depend on it
        self.songs = {}  # transcription: song_id -> {"seconds", "notes"} (complete annotation); pitch: {"seconds"}
        validation = getattr(self.config, "validation", "ours")
        if validation not in VALIDATION_MODES:
            raise ValueError(f"validation={validation!r} unknown; expected one of {VALIDATION_MODES}")

    @property
    def chunk_seconds(self) -> float:
        return self.config.chunk_seconds

    @cached_property
    def separation(self):
        """The config's ``separation`` option, parsed (`separation.py`); ``none`` for corpora without one."""
        from .separation import parse_separation

        return parse_separation(getattr(self.config, "separation", "none"))

    @cached_property
    def separator(self):
        """HT-Demucs, loaded now so a missing package or missing weights stop the preparation in one line."""
        from .separation import HTDemucsSeparator

        separator = HTDemucsSeparator(seed=self.separation_seed)
        separator.load()
        return separator

    def vocals(self, entries, source):
        """``(entry, mono vocals at SAMPLING_RATE)`` of each entry whose audio is usable, in order, under the ``separation``
        option (or the ``separate`` hook when it is ``none``); the others are counted as skipped (report).
        `source(entry)`: ``(path, relative_paths, name)``: its corpus file, the paths a stems folder may mirror,
        its name in the report. The files are decoded on `num_proc` processes; separation (the hook, HT-Demucs
        on the original-rate audio) runs here, in order."""
        from .separation import decode_job

        entries = list(entries)
        sources = [source(entry) for entry in entries]
        jobs = [decode_job(self.separation, path, relative_paths) for path, relative_paths, _ in sources]
        separator = self.separator if self.separation.kind == "htdemucs" else None
        for entry, (_, _, name), result in zip(entries, sources, ordered_map(decode_or_error, jobs, self.num_proc)):
            if result is None:  # stems:<dir> without this file's stem
                self.report.skip(name, f"no separated vocal stem under {self.separation.stems_dir}")
                continue
            audio = accept_decoded(result, name, self.report)
            if audio is None:
                continue
            if separator is not None:
                yield entry, separator(*audio, name=name)
            elif self.separation.kind == "none":
                yield entry, self.separate(audio, SAMPLING_RATE)
            else:
                yield entry, audio

    def decoded(self, entries, path, name, channel=None):
        """``(entry, mono waveform at SAMPLING_RATE)`` of each entry whose audio decodes, in order, decoded on `num_proc`
        processes; the others are counted as skipped, as `read_audio_or_skip` does. `path(entry)`, `name(entry)`:
        its audio file and its name in the report; `channel`: keep that channel instead of the mean (`load_audio`)."""
        entries = list(entries)
        results = ordered_map(decode_or_error, [(path(entry), False, channel) for entry in entries], self.num_proc)
        for entry, result in zip(entries, results):
            waveform = accept_decoded(result, name(entry), self.report)
            if waveform is not None:
                yield entry, waveform

    def separation_message(self, what: str) -> str:
        if self.separation.kind == "none" and self.separate is identity_separation:
            return f"no vocal separation (separation=none): the {what} are used as they are"
        if self.separation.kind == "none":
            return f"vocal separation: the separate hook {getattr(self.separate, '__qualname__', self.separate)}"
        return f"vocal separation: {self.separation}"

    def assign(self, split: str) -> str:
        """The split a corpus rule's ``split`` goes to: validation joins train when ``validation="none"``."""
        if split == "validation" and getattr(self.config, "validation", "ours") == "none":
            return "train"
        return split

    def transcription_song(self, waveform: np.ndarray, notes, song_id: str) -> list:
        """`transcription_examples` of one song; its length and complete notes are kept for whole-song scoring."""
        self.songs[song_id] = {
            "seconds": len(waveform) / SAMPLING_RATE,
            "notes": [[float(onset), float(offset), float(pitch)] for onset, offset, pitch in notes],
        }
        return transcription_examples(waveform, notes, song_id=song_id, chunk_seconds=self.chunk_seconds)


    def pitch_song(self, waveform: np.ndarray, f0_times, f0_hz, song_id: str, singer: str, **chunking) -> list:
        """`pitch_examples` of one song (wave at SAMPLING_RATE, its F0 annotation: times in seconds, Hz with 0 = unvoiced;
        `chunking`: its ``padded`` / ``margin_seconds``); its length is kept for whole-song scoring."""
        self.songs[song_id] = {"seconds": len(waveform) / SAMPLING_RATE}
        return pitch_examples(waveform, f0_times, f0_hz, song_id=song_id, singer=singer, chunk_seconds=self.chunk_seconds,
                              **chunking)


    def lyrics_song(self, waveform: np.ndarray, lines, song_id: str, singer: str = "") -> list:
        """`lyrics_examples` of one song; its length and whole lyrics are kept for whole-song scoring."""
        self.songs[song_id] = {"seconds": len(waveform) / SAMPLING_RATE,
                               "text": " ".join(line.text for line in lines if line.text)}
        return lyrics_examples(waveform, lines, song_id=song_id, singer=singer)


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


def decode_or_error(job):
    """Decode one file; runs in `ordered_map` workers, so warnings and errors come back as values.

    ``job``: ``(path, native, channel)``: native -> `separation.load_native`
    (``(channels, samples)``, rate) at the file's own rate, for HT-Demucs; else `load_audio` (mono at SAMPLING_RATE: the
    channel mean, or only ``channel``). Returns ``(audio, None, warnings)`` or
    ``(None, the one-line error, [])``; `warnings`: ``(category, message)`` of those raised while decoding (a
    truncated file), re-raised by `accept_decoded` in the main process. ``job`` None (no file) -> None.
    """
    if job is None:
        return None
    path, native, channel = job
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", TruncatedAudioWarning)
            if native:
                from .separation import load_native

                audio = load_native(path)
            else:
                audio = load_audio(path, channel=channel)
    except ValueError as error:
        return None, str(error), []
    return audio, None, [(warning.category, str(warning.message)) for warning in caught]


def accept_decoded(result, name: str, report: "PrepareReport"):
    """The audio of a `decode_or_error` result, or None after counting the file as skipped (reason + message
    naming it). A truncated file is used; its warning is shown and kept in the report's messages."""
    audio, error, caught = result
    if error is not None:
        report.skip(name, skip_reason(ValueError(error)), error)
        return None
    for category, message in caught:
        if issubclass(category, TruncatedAudioWarning):
            report.messages.append(f"warning: {message}")
        warnings.warn(message, category, stacklevel=2)
    return audio


def read_audio_or_skip(path, name: str, report: "PrepareReport"):
    """`load_audio(path)`, or None after counting the file as skipped (reason + message naming it). A truncated
    file is used; its warning is shown and kept in the report's messages."""
    return accept_decoded(decode_or_error((path, False, None)), name, report)


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
    """5 s chunks of one song with its notes cut at the chunk edges, every tail kept (module docstring)."""
    chunk_samples = int(round(chunk_seconds * SAMPLING_RATE))
    examples = []
    for index, (start, chunk) in enumerate(chunk_waveform(waveform, chunk_samples, min_last_fraction=0.0)):
        chunk_start = start / SAMPLING_RATE
        relative = chunk_notes(notes, chunk_start, chunk_seconds)
        examples.append(
            {
                "audio": audio_cell(chunk, f"{song_id}#{index}.wav"),
                "notes": [
                    {"onset": max(onset, 0.0), "offset": min(offset, chunk_seconds), "pitch": pitch}
                    for onset, offset, pitch in relative
                ],
                "notes_unclipped": [{"onset": onset, "offset": offset, "pitch": pitch} for onset, offset, pitch in relative],
                "song_id": song_id,
                "chunk_start": chunk_start,
            }
        )
    return examples


def pitch_examples(waveform: np.ndarray, f0_times, f0_hz, *, song_id: str, singer: str, chunk_seconds: float,
                   padded: bool = True, margin_seconds: float = 0.0) -> list:
    """Chunks of one song (`audio.song_chunk_bounds`: ``padded``, every tail kept and zero-padded; else no padding)
    with the F0 annotation points of each chunk's span and those within ``margin_seconds`` of its edges (module
    docstring). ValueError (one line) for an annotation that is not F0 over time (lengths
    differ, times not increasing, negative or non-finite values)."""
    times, f0 = np.asarray(f0_times, dtype=np.float64), np.asarray(f0_hz, dtype=np.float64)
    if times.shape != f0.shape or times.ndim != 1:
        raise ValueError(f"{song_id}: f0_times has {times.size} values but f0_hz has {f0.size}; they must pair up.")
    if not (np.isfinite(times).all() and np.isfinite(f0).all()) or (f0 < 0).any() or (np.diff(times) <= 0).any():
        raise ValueError(f"{song_id}: the F0 annotation must have increasing, finite times and finite F0 >= 0 Hz.")
    chunk_samples = int(round(chunk_seconds * SAMPLING_RATE))
    examples = []
    for index, (start, end) in enumerate(song_chunk_bounds(len(waveform), chunk_samples, padded)):
        chunk = padded_slice(waveform, start, end)
        chunk_start = start / SAMPLING_RATE
        chunk_end = chunk_start + (end - start) / SAMPLING_RATE
        inside = (times >= chunk_start - margin_seconds) & (times < chunk_end + margin_seconds)
        examples.append(
            {
                "audio": audio_cell(chunk, f"{song_id}#{index}.wav"),
                "f0_times": (times[inside] - chunk_start).tolist(),
                "f0_hz": f0[inside].tolist(),
                "song_id": song_id,
                "singer": singer,
                "chunk_start": chunk_start,
            }
        )
    return examples


@dataclass(frozen=True)
class LyricsLine:
    """A sung line of a song: its span in the song (seconds), its text, and its words with their times in the song
    (``(word, start_s, end_s)``; empty when the corpus times lines only)."""

    start: float
    end: float
    text: str
    words: tuple = ()


def lines_from_words(words, max_seconds: float, max_gap: float = 1.0) -> list:
    """`LyricsLine`s of words timed in a song (``(word, start_s, end_s)`` in time order): consecutive words join a
    line until it would last over `max_seconds` or a rest over `max_gap` seconds comes."""
    lines, current = [], []
    for word in words:
        if current and (word[2] - current[0][1] > max_seconds or word[1] - current[-1][2] > max_gap):
            lines.append(current)
            current = []
        current.append(word)
    if current:
        lines.append(current)
    return [LyricsLine(line[0][1], line[-1][2], " ".join(w[0] for w in line), tuple(line)) for line in lines]


def lyrics_examples(waveform: np.ndarray, lines, *, song_id: str, singer: str, margin_seconds: float = 0.1) -> list:
    """One row per `LyricsLine` with text, as the lyrics literature cuts songs (line-level chunks): the audio of the
    line's span widened by `margin_seconds` each side (inside the song), its text, and its words' times from the
    chunk's start. A line starting past the audio's end is dropped."""
    duration = len(waveform) / SAMPLING_RATE
    examples = []
    for index, line in enumerate(lines):
        if not line.text.strip() or line.start >= duration:
            continue
        start, end = max(0.0, line.start - margin_seconds), min(duration, line.end + margin_seconds)
        chunk = waveform[int(round(start * SAMPLING_RATE)) : int(round(end * SAMPLING_RATE))]
        examples.append({
            "audio": audio_cell(chunk, f"{song_id}#{index}.wav"),
            "text": line.text.strip(),
            "words": [{"word": word, "start": round(max(0.0, ws - start), 4), "end": round(max(0.0, we - start), 4)}
                      for word, ws, we in line.words],
            "song_id": song_id,
            "singer": singer,
            "chunk_start": start,
        })
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

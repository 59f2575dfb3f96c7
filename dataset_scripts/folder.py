"""Your own recordings, for every task whose targets a folder can hold: ``svu data prepare folder --task T``.

Layout under ``data_dir`` (the Hub's ``audiofolder`` conventions where they exist). Audio is any FFmpeg-readable
file (wav, flac, mp3, ogg, ...; any rate and channels), decoded to 24 kHz mono (`audio.load_audio`). What a task
reads depends on its target kind (`modeling_svu.tasks`), one reader each (`READERS`):

* chunk labels (singer ID, technique): class sub-folders, ``<label>/.../<file>`` (the first folder under the root
  is the label), or ``metadata.csv`` at the root with ``file_name,label`` (``file_name`` relative to the root) and
  optional grouping columns (``singer``, ``recording``, ``song``, any other); with a ``label`` column the folders
  are not read as labels;
* note events (transcription): each audio file beside a note list of the same stem: ``<stem>.csv`` with
  ``onset,offset,pitch`` rows (seconds, MIDI numbers, fractional allowed; a header line optional), or ``<stem>.mid``;
* frame contour (pitch): each audio file beside ``<stem>.csv`` with ``time,f0_hz`` rows (seconds, Hz, 0 = unvoiced;
  a header line optional);
* token sequence (lyrics): each audio file beside its lyrics: ``<stem>.csv`` with ``start,end,word`` rows (seconds,
  one word each, in time order; a header line optional), cut into line-level chunks of at most ``chunk_seconds``
  (a rest over 1 s also ends a line: `common.lines_from_words`), or ``<stem>.txt`` (plain text, no times), used as
  one chunk when the recording is at most `UNTIMED_LYRICS_SECONDS` long (longer ones cannot be cut and are skipped).

Every task may have a ``metadata.csv`` whose columns group files (``group_by``). Rows are the task's own
(`common.classification_features`, `transcription_features`, `pitch_features`), cut as the published corpora's are
(classification: ``chunk_seconds`` chunks, a tail of at least half a chunk kept; transcription: every tail kept;
pitch: `pitch_corpus.RECORDING_CHUNKING`); ``clip_id`` / ``song_id`` is the file's path under the root.

Splits (ours, seeded by the preparation's seed): the groups (a ``group_by`` column's values, else each file: the
chunks of one recording stay together) are shuffled and cut by ``split_ratios`` (train, validation, test), so no
group is in two splits; for chunk labels, when each group has one label, per label (stratified, train served first,
so every label trains). A chunk-label row carries its group in the task's leakage column (`Task.leakage_column`),
so `prepare`'s leakage check verifies the split; note and contour rows keep the file as ``song_id`` (whole-song
scoring reads it), which a ``group_by`` group only coarsens. ``validation="none"``: validation groups train.

Bad input is counted and named in the report (file, and line or note), never dropped silently: unreadable or empty
audio, a file without a label or annotation, a note list with a malformed line, overlapping notes, a note not after
its onset or a pitch outside MIDI 0-127, an F0 CSV with a malformed line, negative values or times not increasing,
a label in one group only (it cannot be both trained and tested). `prepare` fails only when nothing usable is left.
"""

import csv
import math
from collections import defaultdict
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path, PurePosixPath
from typing import Callable, Optional

import datasets
import numpy as np

from svu.modeling_svu.audio_io import AUDIO_SUFFIXES
from svu.modeling_svu.tasks import CHUNK_LABEL, DEFAULT_TASK, FRAME_CONTOUR, NOTE_EVENTS, TASKS, TOKEN_SEQUENCE, get_task

from .audio import SAMPLING_RATE
from .common import (
    SPLITS,
    CorpusBuilder,
    PrepareReport,
    LyricsLine,
    classification_examples,
    classification_features,
    lines_from_words,
    lyrics_features,
    pitch_features,
    transcription_features,
)
from .corpora import Corpus
from .pitch_corpus import RECORDING_CHUNKING, span_mismatch

METADATA_FILE = "metadata.csv"
MIDI_SUFFIXES = (".mid", ".midi")
DEFAULT_RATIOS = (0.8, 0.1, 0.1)
UNTIMED_LYRICS_SECONDS = 30.0  # the longest recording whose lyrics without times make one chunk


class BadAnnotation(ValueError):
    """An annotation file that cannot be used: ``reason`` (the report's) and the message naming file and line."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Recording:
    path: Path
    name: str  # its path under data_dir (the report's name, clip_id / song_id)
    group: str
    label: Optional[str] = None
    target: object = None  # notes [(onset, offset, pitch)] or (times, f0_hz) arrays
    singer: str = ""  # the metadata.csv `singer` column, if any


def numeric_rows(path: Path, name: str, columns: tuple, what: str) -> list:
    """``(line number, values)`` of a CSV of `columns` numbers (blank lines and a header line of names skipped);
    BadAnnotation naming the file and the first line that is not such numbers."""
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise BadAnnotation(f"{what}: unreadable", f"{name}: cannot read the {what}: {error}") from None
    rows = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        fields = [field.strip() for field in next(csv.reader([line]))]
        values = [as_number(field) for field in fields]
        if not rows and all(value is None for value in values) and number == first_content_line(lines):
            continue  # a header
        if len(values) != len(columns) or any(value is None for value in values):
            raise BadAnnotation(f"{what}: a line is not {','.join(columns)} numbers",
                                f"{name} line {number}: {line.strip()[:60]!r} is not {','.join(columns)} (numbers)")
        rows.append((number, values))
    return rows


def first_content_line(lines) -> int:
    return next((number for number, line in enumerate(lines, 1) if line.strip()), 0)


def as_number(text: str) -> Optional[float]:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def read_notes(path: Path, name: str) -> list:
    """``[(onset, offset, pitch)]`` sorted by onset, from a note CSV or a MIDI file; BadAnnotation naming the file
    and the line (CSV) or note (MIDI) of the first problem."""
    if path.suffix.lower() in MIDI_SUFFIXES:
        import mido

        from svu.modeling_svu.midi_io import midi_to_notes

        try:
            notes = midi_to_notes(mido.MidiFile(str(path)))
        except (OSError, EOFError, ValueError, KeyError, IndexError) as error:
            raise BadAnnotation("note list: unreadable MIDI file", f"{name}: not a readable MIDI file: {error}") from None
        located = [(f"note {index}", tuple(map(float, note))) for index, note in enumerate(notes, 1)]
    else:
        located = [(f"line {number}", tuple(values))
                   for number, values in numeric_rows(path, name, ("onset", "offset", "pitch"), "note list")]
    return checked_notes(located, name)


def checked_notes(located: list, name: str) -> list:
    """``[(onset, offset, pitch)]`` sorted by onset of ``located`` (``(where, note)`` pairs, ``where`` naming the
    line or note); BadAnnotation naming `name` and where the first problem is."""
    for where, (onset, offset, pitch) in located:
        if onset < 0:
            raise BadAnnotation("note list: negative onset", f"{name} {where}: onset {onset:g} s is negative")
        if offset <= onset:
            raise BadAnnotation("note list: offset not after onset (negative or zero duration)",
                                f"{name} {where}: offset {offset:g} s is not after onset {onset:g} s")
        if not 0 <= pitch <= 127:
            raise BadAnnotation("note list: pitch outside MIDI 0-127",
                                f"{name} {where}: pitch {pitch:g} is outside MIDI 0-127")
    located.sort(key=lambda item: item[1][:2])
    for (before, previous), (where, note) in zip(located, located[1:]):
        if note[0] < previous[1]:
            raise BadAnnotation("note list: overlapping notes",
                                f"{name} {where}: the note at {note[0]:g}-{note[1]:g} s overlaps {before} "
                                f"({previous[0]:g}-{previous[1]:g} s); a note list is one voice")
    return [note for _, note in located]


def read_f0(path: Path, name: str) -> tuple:
    """``(times, f0_hz)`` arrays of an F0 CSV; BadAnnotation naming the file and the line of the first problem."""
    rows = numeric_rows(path, name, ("time", "f0_hz"), "F0 CSV")
    if not rows:
        raise BadAnnotation("F0 CSV: no rows", f"{name}: no time,f0_hz rows")
    for number, (time, f0) in rows:
        if time < 0 or f0 < 0:
            raise BadAnnotation("F0 CSV: negative time or F0", f"{name} line {number}: time {time:g} s, F0 {f0:g} Hz")
    for (_, (before, _)), (number, (time, _)) in zip(rows, rows[1:]):
        if time <= before:
            raise BadAnnotation("F0 CSV: times not increasing",
                                f"{name} line {number}: time {time:g} s does not follow {before:g} s")
    times, f0_hz = np.array([values for _, values in rows], dtype=np.float64).T
    return times, f0_hz


def read_lyrics(path: Path, name: str) -> tuple:
    """``(text, words)`` of a lyrics file: a ``start,end,word`` CSV gives its words timed (``(word, start_s,
    end_s)``), a ``.txt`` its text (words None); BadAnnotation naming the file and the line of the first problem."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise BadAnnotation("lyrics: unreadable", f"{name}: cannot read the lyrics: {error}") from None
    if path.suffix.lower() != ".csv":
        if not text.split():
            raise BadAnnotation("lyrics: empty", f"{name}: no words")
        return " ".join(text.split()), None
    lines = text.splitlines()
    words = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        fields = [field.strip() for field in next(csv.reader([line]))]
        times = [as_number(field) for field in fields[:2]]
        if len(fields) == 3 and None in times and number == first_content_line(lines):
            continue  # a header
        if len(fields) != 3 or None in times or not fields[2] or times[1] < times[0] or times[0] < 0:
            raise BadAnnotation("lyrics: a line is not start,end,word",
                                f"{name} line {number}: {line.strip()[:60]!r} is not start,end,word (seconds, end not "
                                "before start)")
        if words and times[0] < words[-1][1]:
            raise BadAnnotation("lyrics: words not in time order",
                                f"{name} line {number}: {fields[2]!r} starts before the word above it")
        words.append((fields[2], *times))
    if not words:
        raise BadAnnotation("lyrics: empty", f"{name}: no words")
    return " ".join(word for word, _, _ in words), words


def lyrics_recording_examples(builder, recording: Recording, wave: np.ndarray) -> list:
    text, words = recording.target
    seconds = len(wave) / SAMPLING_RATE
    if words is None:
        if seconds > UNTIMED_LYRICS_SECONDS:
            builder.report.skip(recording.name, f"lyrics without times, recording over {UNTIMED_LYRICS_SECONDS:g} s",
                                f"{recording.name}: {seconds:.1f} s of audio with lyrics but no word times: it cannot "
                                "be cut into lines (give <stem>.csv of start,end,word)")
            return []
        lines = [LyricsLine(0.0, seconds, text)]
    else:
        lines = lines_from_words(words, builder.chunk_seconds)
    builder.report.files_used += 1
    return builder.lyrics_song(wave, lines, recording.name, recording.singer)


def label_examples(builder: "Folder", recording: Recording, wave: np.ndarray) -> list:
    examples = classification_examples(wave, clip_id=recording.name, label=recording.label, singer=recording.singer,
                                       chunk_seconds=builder.chunk_seconds, report=builder.report)
    column = builder.spec.leakage_column
    for example in examples:
        example[column] = leakage_value(builder.spec, recording.group)
    return examples


def note_examples(builder: "Folder", recording: Recording, wave: np.ndarray) -> list:
    builder.report.files_used += 1
    end = max((offset for _, offset, _ in recording.target), default=0.0)
    if end > len(wave) / SAMPLING_RATE + 0.5:
        builder.report.messages.append(f"{recording.name}: its notes end at {end:.2f} s but the audio at "
                                       f"{len(wave) / SAMPLING_RATE:.2f} s; check that they belong together")
    return builder.transcription_song(wave, recording.target, recording.name)


def contour_examples(builder: "Folder", recording: Recording, wave: np.ndarray) -> list:
    builder.report.files_used += 1
    times, f0_hz = recording.target
    if mismatch := span_mismatch(recording.name, times, len(wave)):
        builder.report.messages.append(mismatch)
    return builder.pitch_song(wave, times, f0_hz, recording.name, recording.singer, **RECORDING_CHUNKING)


@dataclass(frozen=True)
class Reader:
    """How a folder holds the targets of one target kind."""

    features: Callable[[list], datasets.Features]  # label names -> the rows' features
    examples: Callable  # (builder, Recording, wave at 24 kHz) -> rows
    annotation: Optional[Callable[[Path, str], object]] = None  # (file, name) -> target; None: a label
    suffixes: tuple = ()  # of the annotation file beside each audio file, in order of preference
    what: str = ""  # the annotation file, in words
    expected: str = ""  # ... and its form


READERS = {
    CHUNK_LABEL: Reader(features=classification_features, examples=label_examples),
    NOTE_EVENTS: Reader(features=lambda names: transcription_features(), examples=note_examples, annotation=read_notes,
                        suffixes=(".csv", *MIDI_SUFFIXES), what="note list",
                        expected="<stem>.csv of onset,offset,pitch or <stem>.mid"),
    FRAME_CONTOUR: Reader(features=lambda names: pitch_features(), examples=contour_examples, annotation=read_f0,
                          suffixes=(".csv",), what="F0 CSV",
                          expected="<stem>.csv of time,f0_hz"),
    TOKEN_SEQUENCE: Reader(features=lambda names: lyrics_features(), examples=lyrics_recording_examples,
                           annotation=read_lyrics, suffixes=(".csv", ".txt"), what="lyrics file",
                           expected="<stem>.csv of start,end,word or <stem>.txt"),
}
FOLDER_TASKS = tuple(name for name, task in TASKS.items() if task.target in READERS)


def leakage_value(spec, group: str) -> str:
    """A value of the task's leakage column whose group (`Task.leakage_group`) is the value itself, naming `group`:
    `group`, or with '/' read as path separators by the group function (a clip's album) replaced."""
    for value in (group, group.replace("/", "|")):
        if spec.leakage_group(value) == value:
            return value
    raise ValueError(f"task {spec.name}: its leakage column cannot hold the group {group!r}")


def parse_split_ratios(value) -> tuple:
    """(train, validation, test) fractions from "0.8,0.1,0.1" or a sequence; ValueError (one line) otherwise."""
    parts = value.split(",") if isinstance(value, str) else list(value)
    try:
        ratios = tuple(float(part) for part in parts)
    except (TypeError, ValueError):
        ratios = ()
    if len(ratios) != 3 or any(not math.isfinite(r) or r < 0 for r in ratios) or ratios[0] <= 0 \
            or abs(sum(ratios) - 1.0) > 1e-6:
        raise ValueError(f"split ratios {value!r}: expected three fractions train,validation,test summing to 1, "
                         "train above 0 (e.g. 0.8,0.1,0.1)")
    return ratios


def allocate(count: int, ratios) -> list:
    """Groups per split for `count` groups: the ratios' shares (largest remainders), then one group for each split
    with a share that has none, taken from the largest, train first."""
    exact = [count * ratio for ratio in ratios]
    counts = [int(share) for share in exact]
    for index in sorted(range(3), key=lambda i: counts[i] - exact[i])[: count - sum(counts)]:
        counts[index] += 1
    for index in (0, 2, 1):
        if ratios[index] > 0 and counts[index] == 0:
            donor = max(range(3), key=lambda i: counts[i])
            if counts[donor] > 1:
                counts[donor] -= 1
                counts[index] += 1
    return counts


def split_groups(groups, ratios, seed: int, labels: Optional[dict] = None) -> dict:
    """``{group: split}``: the groups (sorted) shuffled by a generator seeded with `seed` and cut by `ratios`;
    with `labels` ({group: label}), per label, so that each label trains (and is tested when it can be)."""
    rng = np.random.default_rng(seed)
    strata = defaultdict(list)
    for group in sorted(groups):
        strata[labels[group] if labels else ""].append(group)
    assigned = {}
    for key in sorted(strata):
        members = [strata[key][i] for i in rng.permutation(len(strata[key]))]
        start = 0
        for split, count in zip(SPLITS, allocate(len(members), ratios)):
            assigned.update((group, split) for group in members[start:start + count])
            start += count
    return assigned


def is_hidden(relative: PurePosixPath) -> bool:
    return any(part.startswith(".") or part == "__MACOSX" for part in relative.parts)


def read_metadata(root: Path, report: PrepareReport) -> tuple:
    """(columns, {file_name: (line, row)}) of ``metadata.csv`` at the root, or ((), {}) without one; a file listed
    twice keeps its first row (the other is named in `report`)."""
    path = root / METADATA_FILE
    if not path.is_file():
        return (), {}
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            rows = {}
            for row in reader:
                file_name = PurePosixPath((row.get("file_name") or "").strip().replace("\\", "/")).as_posix()
                if file_name == ".":
                    report.messages.append(f"{METADATA_FILE} line {reader.line_num}: no file_name; the row is not used")
                    continue
                if file_name in rows:
                    report.messages.append(f"{METADATA_FILE} line {reader.line_num}: {file_name} is listed again; "
                                           f"line {rows[file_name][0]} is used")
                    continue
                rows[file_name] = (reader.line_num, {k: (v or "").strip() for k, v in row.items() if k})
            columns = tuple(reader.fieldnames or ())
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise ValueError(f"{path}: cannot read it: {error}") from None
    if "file_name" not in columns:
        raise ValueError(f"{path} has no file_name column (columns: {', '.join(columns) or 'none'}); expected the "
                         "audiofolder header file_name,label[,singer,recording,song,...]")
    return columns, rows


def scan(root: Path, task: str, group_by: Optional[str], report: PrepareReport) -> list:
    """The usable recordings under `root` for `task`; every other file is counted and named in `report`."""
    spec = get_task(task)
    reader = READERS[spec.target]
    columns, metadata = read_metadata(root, report)
    if group_by is not None and group_by not in columns:
        where = f"{root / METADATA_FILE} (columns: {', '.join(columns)})" if columns else f"no {METADATA_FILE} in {root}"
        raise ValueError(f"group_by={group_by}: no such column, {where}; group by a {METADATA_FILE} column")
    labelled_by_metadata = "label" in columns
    files = sorted(PurePosixPath(path.relative_to(root).as_posix()) for path in root.rglob("*")
                   if path.is_file() or path.is_symlink())
    by_stem = {(relative.with_suffix(""), relative.suffix.lower()): relative for relative in files}
    audio = {relative for relative in files if relative.suffix.lower() in AUDIO_SUFFIXES and not is_hidden(relative)}
    used_annotations = set()
    recordings = []
    for relative in files:
        name = relative.as_posix()
        if name == METADATA_FILE:
            continue
        if relative not in audio:
            continue  # reported below, once the annotations in use are known
        report.files_found += 1
        line, row = metadata.get(name, (None, {}))
        label = None
        if spec.pooled:
            label = row.get("label") if labelled_by_metadata else (relative.parts[0] if len(relative.parts) > 1 else "")
            if not label:
                why = (f"{METADATA_FILE} line {line} has an empty label" if line else f"not in {METADATA_FILE}") \
                    if labelled_by_metadata else f"not in a class sub-folder and no {METADATA_FILE} label column"
                report.skip(name, "no label", f"{name}: no label ({why})")
                continue
        group = name
        if group_by is not None:
            group = row.get(group_by, "")
            if not group:
                why = f"line {line}: empty" if line else "not listed"
                report.skip(name, f"no {group_by} (group_by)", f"{name}: no {group_by} in {METADATA_FILE} ({why})")
                continue
        target = None
        if reader.annotation is not None:
            found = [by_stem[key] for key in ((relative.with_suffix(""), s) for s in reader.suffixes) if key in by_stem]
            if not found:
                report.skip(name, f"no {reader.what}", f"{name}: no {reader.what} beside it ({reader.expected})")
                continue
            annotation = found[0]
            used_annotations.add(annotation)
            try:
                target = reader.annotation(root / annotation, annotation.as_posix())
            except BadAnnotation as error:
                report.skip(name, error.reason, str(error))
                continue
        recordings.append(Recording(root / relative, name, group, label, target, row.get("singer", "")))
    for relative in files:
        name = relative.as_posix()
        if name == METADATA_FILE or relative in audio or relative in used_annotations:
            continue
        report.files_found += 1
        if is_hidden(relative):
            report.skip(name, "hidden or macOS metadata file")
        elif relative.suffix.lower() in reader.suffixes:
            report.skip(name, "annotation without an audio file of its stem")
        else:
            report.skip(name, "not an audio file", f"{name}: not an audio file ({', '.join(AUDIO_SUFFIXES)})")
    present = {relative.as_posix() for relative in files}
    for file_name, (line, _) in sorted(metadata.items()):
        if file_name not in present:
            report.files_found += 1
            report.skip(file_name, f"listed in {METADATA_FILE} but missing",
                        f"{METADATA_FILE} line {line}: {file_name}: no such file under {root}")
    return recordings if not spec.pooled else drop_unsplittable(recordings, group_by, report)


def drop_unsplittable(recordings: list, group_by: Optional[str], report: PrepareReport) -> list:
    """The recordings of labels found in two groups or more; a label of one group is reported (it would train or
    be tested, never both)."""
    groups = defaultdict(set)
    for recording in recordings:
        groups[recording.label].add(recording.group)
    kept = []
    for recording in recordings:
        if len(groups[recording.label]) > 1:
            kept.append(recording)
            continue
        what = f"{group_by} {recording.group!r}" if group_by else "recording"
        report.skip(recording.name, "label in one group only (cannot be split)",
                    f"{recording.name}: label {recording.label!r} is in one {what} only: it cannot be both "
                    "trained and tested")
    return kept


@dataclass
class FolderConfig(datasets.BuilderConfig):
    task: str = DEFAULT_TASK
    chunk_seconds: float = 5.0
    split_ratios: tuple = DEFAULT_RATIOS  # train, validation, test (fractions of the groups)
    group_by: Optional[str] = None  # a metadata.csv column; None: each recording is its own group
    seed: int = 0  # draws the split
    validation: str = "ours"  # "none": the validation groups train too

    def __post_init__(self):
        super().__post_init__()
        if get_task(self.task).target not in READERS:
            raise ValueError(f"folder: task {self.task} has {get_task(self.task).target} targets, which a folder "
                             f"does not hold; its tasks are {', '.join(FOLDER_TASKS)}")
        self.split_ratios = parse_split_ratios(self.split_ratios)
        if not self.chunk_seconds > 0:
            raise ValueError(f"folder: chunk_seconds must be above 0, got {self.chunk_seconds}")


class Folder(CorpusBuilder):
    """The user's own folder, for the task of the ``task`` option (module docstring)."""

    BUILDER_CONFIG_CLASS = FolderConfig
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.report = self.scan_report  # filled while `_info` read the folder

    @property
    def task(self) -> str:
        return self.config.task

    @property
    def spec(self):
        return get_task(self.task)

    @cached_property
    def scan_report(self) -> PrepareReport:
        return PrepareReport()

    @cached_property
    def recordings(self) -> list:
        return scan(Path(self.config.data_dir), self.task, self.config.group_by, self.scan_report)

    @property
    def label_names(self) -> list:
        return sorted({recording.label for recording in self.recordings}) if self.spec.pooled else []

    def _info(self):
        return datasets.DatasetInfo(description="your own singing recordings",
                                    features=READERS[self.spec.target].features(self.label_names))

    def _split_generators(self, dl_manager):
        config = self.config
        recordings = self.recordings
        labels = defaultdict(set)
        for recording in recordings:
            labels[recording.group].add(recording.label)
        stratified = self.spec.pooled and all(len(names) == 1 for names in labels.values())
        if self.spec.pooled and not stratified:
            self.report.messages.append(f"some {config.group_by} groups hold several labels: groups are split at "
                                        "random, not per label")
        if config.group_by is None:
            self.report.messages.append("no --group-by: the chunks of one recording stay together (the recording is "
                                        f"the group); --group-by COLUMN groups files by a {METADATA_FILE} column")
        splits = split_groups(labels, config.split_ratios, config.seed,
                              {group: next(iter(names)) for group, names in labels.items()} if stratified else None)
        by_split = {split: [] for split in SPLITS}
        for recording in recordings:
            by_split[self.assign(splits[recording.group])].append(recording)
        for split in SPLITS:
            if not by_split[split] and recordings and not (split == "validation" and config.validation == "none"):
                self.report.messages.append(
                    f"split {split} is empty: {len(labels)} groups are too few for the ratios {config.split_ratios}")
        return [datasets.SplitGenerator(name=split, gen_kwargs={"recordings": by_split[split]}) for split in SPLITS]

    def _generate_examples(self, recordings):
        examples = READERS[self.spec.target].examples
        for recording, wave in self.decoded(recordings, lambda r: r.path, lambda r: r.name):
            for index, example in enumerate(examples(self, recording, wave)):
                yield f"{recording.name}#{index}", example


CORPUS = Corpus(
    name="folder",
    builder=Folder,
    tasks=FOLDER_TASKS,  # the tasks whose target kind a folder holds (`READERS`)
    title="Your own data",
    homepage="your own folder of recordings",
    licence="other",
    licence_note="Your own recordings: their licence is yours to state (the dataset card says `other`).",
    bibtex="",
    user_data=True,
    splits="groups (each recording, or a --group-by column) shuffled from the seed and cut by --split-ratios "
           "(default 0.8/0.1/0.1), none in two splits; chunk labels per label",
    preprocessing="decoded from any rate and format to 24 kHz mono, {chunk:g} s chunks",
    card_name="your own data ({task})",
    option_help="chunk_seconds=5",
)

"""`--dataset_name`: train on any `datasets` dataset, prepared as SVU's own folder corpus would be.

    accelerate launch train/run.py --task technique --dataset_name ./takes --audio_column_name recording \\
        --label_column_name style
    accelerate launch train/run.py --config train/configs/pitch_mert.yaml --dataset_name user/sung-f0 \\
        --f0_column_name pitch_hz --f0_times_column_name pitch_times --dataset.options.group_by singer

`dataset_name` is a Hub dataset id (`dataset_config_name`: its configuration) or a local folder: a `save_to_disk`
folder (a Dataset or a DatasetDict), a folder of Parquet files, or an audiofolder folder (audio files with a
``metadata.csv`` of ``file_name`` and the other columns, or class sub-folders, which make a ``label`` column).
Each row is one recording. The columns read are ``audio_column_name`` and, following the task's target kind
(`modeling_svu.tasks`, `TARGET_COLUMNS`), ``label_column_name`` (chunk labels: a ClassLabel, or any values, whose
sorted strings are the classes), ``notes_column_name`` (note events: a list of ``{onset, offset, pitch}`` or
``[onset, offset, pitch]``, seconds and MIDI numbers) or ``f0_times_column_name`` + ``f0_column_name`` (a contour:
seconds, and Hz with 0 = unvoiced) or ``text_column_name`` (a token sequence: the lyrics of the recording, without
times, so a recording over `folder.UNTIMED_LYRICS_SECONDS` is skipped: line-level rows, as DSing's). A column the dataset lacks is one line listing the columns it has
(`ColumnError`; train/run.py exits 2).

Every recording is decoded through SVU's one decode path to 24 kHz mono and cut by the folder corpus's example
makers (`dataset_scripts.folder.READERS`: classification chunks, transcription and pitch songs), with the same
checks: an undecodable recording, a row without a label, a bad note list or F0 track is skipped and named in
svu_meta.json's report. Splits: the dataset's own train / validation / test when it has all three; with train and
test only, validation is cut from train's groups; else every row's group is split by ``split_ratios``, seeded by the
config's seed (`folder.split_groups`: per label when each group has one). A group is a ``group_by`` column's value,
else the recording. ``validation: none`` trains on the validation rows.

`dataset.options` of a `dataset_name` run: ``chunk_seconds`` (5), ``split_ratios`` (0.8,0.1,0.1), ``group_by``,
``force``. The prepared form (`dataset_scripts.prepare`: DatasetDict + svu_meta.json) goes to ``prepared_dir`` (default
``<output_dir>/data``) with a fingerprint of the folder's files (a Hub dataset: its cache's fingerprint), the
columns, options and seed, and is reused while they stay the same, so `svu evaluate --data` and the cards read it
as any prepared corpus.
"""

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from svu.modeling_svu.tasks import CHUNK_LABEL, FRAME_CONTOUR, NOTE_EVENTS, TOKEN_SEQUENCE, get_task

# the dataset block's keys naming an SVU corpus, which `dataset_name` replaces
CORPUS_KEYS = ("corpus", "data_dir", "options")
OPTIONS = {"chunk_seconds": 5.0, "split_ratios": None, "group_by": None, "force": False}
# per target kind: the TrainConfig fields naming the dataset's columns, and the prepared column each one fills
TARGET_COLUMNS = {
    CHUNK_LABEL: (("label_column_name", "label"),),
    NOTE_EVENTS: (("notes_column_name", "notes"),),
    FRAME_CONTOUR: (("f0_times_column_name", "f0_times"), ("f0_column_name", "f0_hz")),
    TOKEN_SEQUENCE: (("text_column_name", "text"),),
}


class ColumnError(ValueError):
    """A column flag naming no column of the dataset: a usage error."""


def replaced_dataset_source(values: dict, overrides: dict) -> dict:
    """The config file's `values` without the data source the command line `overrides` replace: a command-line
    dataset_name replaces the file's corpus block, a command-line dataset.corpus (or data_dir) the file's
    dataset_name. Both in one place is `external_dataset_block`'s error."""
    values = dict(values)
    block = values.get("dataset")
    if overrides.get("dataset_name") is not None and isinstance(block, dict):
        values["dataset"] = {key: value for key, value in block.items() if key not in CORPUS_KEYS}
    if isinstance(overrides.get("dataset"), dict) and {"corpus", "data_dir"} & set(overrides["dataset"]):
        values.pop("dataset_name", None)
    return values


def external_dataset_block(name: str, block):
    """The dataset block of a `dataset_name` config, its corpus None; ValueError (one line) if it names a corpus
    too or has options a `dataset_name` run does not take."""
    if not isinstance(block, dict):
        block.corpus = None
        return block
    given = next((key for key in ("corpus", "data_dir") if key in block), None)
    if given:
        raise ValueError(f"dataset_name {name} and dataset.{given} {block[given]}: give one data source "
                         "(dataset_name: any `datasets` dataset; dataset.corpus: an SVU corpus)")
    unknown = sorted(set(block.get("options") or {}) - set(OPTIONS))
    if unknown:
        raise ValueError(f"Unknown config key 'dataset.options.{unknown[0]}' for dataset_name; known keys: "
                         f"{', '.join(OPTIONS)}.")
    return {**block, "corpus": None}


def load_source(name: str, config_name: Optional[str] = None):
    """The DatasetDict of a save_to_disk, Parquet or audiofolder folder, or of a Hub id (a Dataset: its train
    split); ValueError (one line) if it cannot be loaded."""
    import datasets

    path = Path(name)
    try:
        if not path.is_dir():
            loaded = datasets.load_dataset(name, config_name)
        elif (path / "dataset_dict.json").is_file() or (path / "state.json").is_file():
            loaded = datasets.load_from_disk(str(path))
        elif next(path.rglob("*.parquet"), None) is not None:
            loaded = datasets.load_dataset("parquet", data_dir=str(path))
        else:
            loaded = datasets.load_dataset("audiofolder", data_dir=str(path))
    except (OSError, ValueError) as error:  # offline, no such dataset, no data files, ...
        raise ValueError(f"dataset_name {name}: cannot load it ({str(error).strip().splitlines()[0]})") from None
    return loaded if isinstance(loaded, datasets.DatasetDict) else datasets.DatasetDict({"train": loaded})


def column_flags(cfg, options: dict) -> dict:
    """{prepared column: (its flag, the dataset's column)} read for `cfg.task` (``group``: a group_by column)."""
    spec = get_task(cfg.task)
    if spec.target not in TARGET_COLUMNS:
        raise ValueError(f"dataset_name: task {cfg.task} has {spec.target} targets, which no dataset column maps to")
    flags = {ours: (flag, getattr(cfg, flag)) for flag, ours in (("audio_column_name", "audio"), *TARGET_COLUMNS[spec.target])}
    if options["group_by"]:
        flags["group"] = ("dataset.options.group_by", options["group_by"])
    return flags


def check_columns(source, flags: dict) -> None:
    """ColumnError (one line, the dataset's columns listed) for a column some split lacks."""
    for split, part in source.items():
        for flag, column in flags.values():
            if column not in part.column_names:
                elsewhere = any(column in other.column_names for other in source.values())
                raise ColumnError(f"--{flag} {column}: no such column{f' in its {split} split' if elsewhere else ''}; "
                                  f"the dataset has: {', '.join(sorted(part.column_names))}")


@dataclass(frozen=True)
class Row:
    source: str  # its split in the dataset
    index: int
    name: str  # clip_id / song_id and the report's name: "<split>/<index>"
    group: str
    label: Optional[str]


def class_names(source, column: str) -> tuple:
    """(label names, value -> name or None): a ClassLabel's names, else the sorted strings of the values."""
    import datasets

    feature = next(iter(source.values())).features[column]
    if isinstance(feature, datasets.ClassLabel):
        return list(feature.names), lambda value: feature.names[value] if value is not None and value >= 0 else None
    names = sorted({str(value) for part in source.values() for value in part[column] if value not in (None, "")})
    return names, lambda value: None if value in (None, "") else str(value)


def source_rows(source, columns: dict, label_of) -> list:
    rows = []
    for split, part in source.items():
        labels = part[columns["label"]] if label_of else [None] * len(part)
        groups = part[columns["group"]] if "group" in columns else [None] * len(part)
        for index, (label, group) in enumerate(zip(labels, groups)):
            name = f"{split}/{index}"
            rows.append(Row(split, index, name, name if group in (None, "") else str(group),
                            label_of(label) if label_of else None))
    return rows


def plan_splits(rows: list, own: set, ratios, seed: int, pooled: bool, report) -> dict:
    """{split: rows}: the dataset's own splits, or groups cut by `ratios` (module docstring)."""
    from svu.dataset_scripts.common import SPLITS
    from svu.dataset_scripts.folder import split_groups

    if {"train", "test"} <= own and "validation" not in own:
        kept = ratios[0] + ratios[1]
        ratios, cut = (ratios[0] / kept, ratios[1] / kept, 0.0), [row for row in rows if row.source == "train"]
    elif set(SPLITS) <= own:
        cut = []
    else:
        cut = rows
    labels = {}
    for row in cut:
        labels.setdefault(row.group, set()).add(row.label)
    stratified = pooled and all(len(names) == 1 for names in labels.values())
    assigned = split_groups(labels, ratios, seed, {g: next(iter(n)) for g, n in labels.items()} if stratified else None)
    planned = {split: [] for split in SPLITS}
    cut_rows = {id(row) for row in cut}
    for row in rows:
        split = assigned[row.group] if id(row) in cut_rows else row.source
        if split in planned:
            planned[split].append(row)
        else:
            report.skip(row.name, f"in split {row.source!r} (not train, validation or test)")
    return planned


def note_list(value, name: str) -> list:
    """Notes of a notes cell: ``{onset, offset, pitch}`` or ``[onset, offset, pitch]`` each, checked as a folder's
    note list is (`folder.checked_notes`)."""
    from svu.dataset_scripts.folder import BadAnnotation, checked_notes

    located = []
    for number, note in enumerate(value or [], 1):
        try:
            values = tuple(float(note[key]) for key in ("onset", "offset", "pitch")) if isinstance(note, dict) \
                else tuple(float(v) for v in note)
        except (KeyError, TypeError, ValueError):
            values = ()
        if len(values) != 3:
            raise BadAnnotation("note list: a note is not onset, offset, pitch",
                                f"{name} note {number}: {note!r} is not onset, offset, pitch")
        located.append((f"note {number}", values))
    return checked_notes(located, name)


def f0_track(times, f0_hz, name: str) -> tuple:
    """(times, f0_hz) arrays of a row's F0 cells; BadAnnotation for an empty or unusable track."""
    import numpy as np

    from svu.dataset_scripts.folder import BadAnnotation
    from svu.dataset_scripts.pitch_corpus import f0_problem

    times, f0_hz = np.asarray(times or [], dtype=np.float64), np.asarray(f0_hz or [], dtype=np.float64)
    if times.shape != f0_hz.shape:
        raise BadAnnotation("F0: times and values differ in number",
                            f"{name}: {times.size} F0 times but {f0_hz.size} F0 values")
    problem = f0_problem(times, f0_hz)
    if problem:
        raise BadAnnotation(f"F0: {problem.split(' (')[0]}", f"{name}: F0 {problem}")
    return times, f0_hz


def untimed_lyrics(text, name: str) -> tuple:
    """``(text, None)`` of a text cell (`folder.read_lyrics`'s form, no word times); BadAnnotation when it is empty."""
    from svu.dataset_scripts.folder import BadAnnotation

    words = str(text or "").split()
    if not words:
        raise BadAnnotation("lyrics: empty", f"{name}: no words")
    return " ".join(words), None


class Chunker:
    """What the folder corpus's example makers (`folder.READERS`) read of their builder."""

    def __init__(self, task: str, chunk_seconds: float):
        from svu.dataset_scripts.common import PrepareReport

        self.spec, self.chunk_seconds = get_task(task), chunk_seconds
        self.report, self.songs = PrepareReport(), {}

    def transcription_song(self, *args) -> list:
        from svu.dataset_scripts.common import CorpusBuilder

        return CorpusBuilder.transcription_song(self, *args)

    def pitch_song(self, *args, **chunking) -> list:
        from svu.dataset_scripts.common import CorpusBuilder

        return CorpusBuilder.pitch_song(self, *args, **chunking)

    def lyrics_song(self, *args) -> list:
        from svu.dataset_scripts.common import CorpusBuilder

        return CorpusBuilder.lyrics_song(self, *args)

    def examples(self, row: Row, record: dict, columns: dict) -> list:
        """The prepared rows of one recording (none, counted as skipped in the report, if it is unusable)."""
        from svu.dataset_scripts.common import accept_decoded, decode_or_error
        from svu.dataset_scripts.folder import READERS, BadAnnotation, Recording

        self.report.files_found += 1
        if self.spec.pooled and row.label is None:
            self.report.skip(row.name, "no label", f"{row.name}: no label ({columns['label']} is empty)")
            return []
        try:
            if self.spec.target == NOTE_EVENTS:
                target = note_list(record[columns["notes"]], row.name)
            elif self.spec.target == FRAME_CONTOUR:
                target = f0_track(record[columns["f0_times"]], record[columns["f0_hz"]], row.name)
            elif self.spec.target == TOKEN_SEQUENCE:
                target = untimed_lyrics(record[columns["text"]], row.name)
            else:
                target = None
        except BadAnnotation as error:
            self.report.skip(row.name, error.reason, str(error))
            return []
        audio = record[columns["audio"]] or {}
        encoded = audio.get("bytes") or audio.get("path")
        if not encoded:
            self.report.skip(row.name, "no audio", f"{row.name}: the {columns['audio']} cell holds no audio")
            return []
        wave = accept_decoded(decode_or_error((encoded, False, None)), row.name, self.report)
        if wave is None:
            return []
        singer = str(record.get("singer") or "")
        recording = Recording(None, row.name, row.group, row.label, target, singer)
        return READERS[self.spec.target].examples(self, recording, wave)


def write_split(path: Path, features, rows: list, parts: dict, columns: dict, chunker: Chunker):
    """The prepared rows of `rows` written to an Arrow file at `path` (none: an empty split)."""
    import datasets
    from datasets.arrow_writer import ArrowWriter

    with ArrowWriter(features=features, path=str(path)) as writer:
        for row in rows:
            for example in chunker.examples(row, parts[row.source][row.index], columns):
                writer.write(features.encode_example(example))
        writer.finalize()
    return datasets.Dataset.from_file(str(path))


def resolved_options(cfg) -> dict:
    from svu.dataset_scripts.folder import DEFAULT_RATIOS, parse_split_ratios

    options = {**OPTIONS, **cfg.dataset.options}
    options["split_ratios"] = parse_split_ratios(options["split_ratios"] or DEFAULT_RATIOS)
    if not (isinstance(options["chunk_seconds"], (int, float)) and options["chunk_seconds"] > 0):
        raise ValueError(f"dataset.options.chunk_seconds must be above 0, got {options['chunk_seconds']!r}")
    return options


def prepare_external(cfg):
    """Prepare (or reuse) `cfg.dataset_name` for `cfg.task` in `prepared_dir(cfg)` and check it: ->
    (DatasetDict, meta)."""
    import datasets

    from svu.dataset_scripts.common import SPLITS
    from svu.dataset_scripts.folder import READERS
    from svu.dataset_scripts.prepare import META_FILE, fingerprint, load_prepared, nothing_usable_message, save_prepared
    from svu.train.data import check_dataset, prepared_dir

    name, out = cfg.dataset_name, prepared_dir(cfg)
    options = resolved_options(cfg)
    flags = column_flags(cfg, options)
    columns = {ours: column for ours, (_, column) in flags.items()}
    local = Path(name).is_dir()
    source = None if local else load_source(name, cfg.dataset_config_name)
    identity = {"dataset_name": name, "dataset_config_name": cfg.dataset_config_name, "task": cfg.task,
                "columns": columns, "validation": cfg.validation,
                **{key: value for key, value in options.items() if key != "force"}}
    if source is not None:  # a Hub dataset: what its cache holds
        identity["source"] = {split: part._fingerprint for split, part in source.items()}
    key = fingerprint("dataset_name", name if local else None, cfg.seed, identity)
    if not options["force"] and (out / META_FILE).is_file():
        data, meta = load_prepared(out)
        if meta.get("fingerprint") == key:
            check_dataset(data, meta, cfg.task, where=str(out), validation=cfg.validation)
            return data, meta

    source = source if source is not None else load_source(name)
    check_columns(source, flags)
    spec = cfg.task_spec
    label_names, label_of = class_names(source, columns["label"]) if spec.pooled else ([], None)
    chunker = Chunker(cfg.task, float(options["chunk_seconds"]))
    planned = plan_splits(source_rows(source, columns, label_of), set(source), options["split_ratios"], cfg.seed,
                          spec.pooled, chunker.report)
    if cfg.validation == "none":
        planned = {**planned, "train": planned["train"] + planned["validation"], "validation": []}
    parts = {split: part.select_columns(list(dict.fromkeys(
                 [*columns.values(), *(["singer"] if "singer" in part.column_names else [])])))
             .cast_column(columns["audio"], datasets.Audio(decode=False)) for split, part in source.items()}
    features = READERS[spec.target].features(label_names)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".svu-build-", dir=out.parent) as scratch:
        dataset = datasets.DatasetDict({
            split: write_split(Path(scratch) / f"{split}.arrow", features, planned[split], parts, columns, chunker)
            for split in SPLITS})
        report = chunker.report.to_dict()
        if not any(len(part) for part in dataset.values()):
            raise ValueError(nothing_usable_message("dataset_name", name, report))
        save_prepared(dataset, out, scratch, task=cfg.task, label_names=label_names,
                      chunk_seconds=chunker.chunk_seconds, report=report, songs=chunker.songs, corpus=name,
                      fingerprint=key, options={"seed": cfg.seed, **identity}, validation=cfg.validation,
                      separation="none")
    data, meta = load_prepared(out)
    check_dataset(data, meta, cfg.task, where=str(out), validation=cfg.validation)
    return data, meta

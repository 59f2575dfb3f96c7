"""`prepare(corpus, output_dir, ...)`: build a corpus once, save it, and reload it when unchanged.

The output folder is a ``DatasetDict.save_to_disk`` folder (splits train/validation/test) plus
``svu_meta.json``::

    {"corpus", "task", "label_names", "class_weights" (1/n_c^0.2 from train; classification only),
     "sampling_rate" (Hz of the stored audio: `audio.SAMPLING_RATE`), "chunk_seconds",
     "label_scheme" (transcription: how frame targets are made, see below),
     "fingerprint", "report" (files found/used/skipped with reasons, chunks per split and class,
     hours per split, singers/albums/songs per split under "groups"), "options" (with "seed": it draws the
     synthetic corpus and seeds HT-Demucs's random shifts),
     "validation" ("ours" | "none"), "separation" ("none" | "stems:<dir>" | "htdemucs" | the hook),
     "songs" (transcription: {song_id: {"seconds", "notes": complete [[onset, offset, pitch], ...]}})}

Transcription datasets store no frame targets: ``label_scheme`` says they are computed at collate time
from ``notes_unclipped`` for the model (its sampling rate, hop, octaves, lowest MIDI note). Folders that record no ``sampling_rate``
store 16 kHz audio: a model at a higher rate is refused (`check_stored_rate`).

Re-running with the same corpus, data files (relative path, size, mtime), seed and options finds
the same fingerprint and loads the saved folder instead of rebuilding (``force=True`` rebuilds).
Before saving, a leakage check fails the preparation if one group of the task's `leakage` key (e.g. a singer,
an album, a song; `modeling_svu.tasks`) lands in two splits. Missing, empty, unreadable files and bad annotation
rows are skipped and reported; only when nothing usable remains does `prepare` fail (ValueError, one line
with the skip counts; the CLI exits 2) and nothing is saved.
"""

import hashlib
import json
import os
import shutil
import tempfile
from collections import Counter
from pathlib import Path

import datasets

from svu.modeling_svu.audio_io import DECODE_PATH
from svu.modeling_svu.tasks import get_task

from .audio import SAMPLING_RATE
from .common import LABEL_SCHEME_FROM_NOTES, SPLITS, check_no_leakage, class_weights, write_json
from .corpora import corpora, get_corpus
from .parallel import resolve_num_proc

META_FILE = "svu_meta.json"
SCHEMA_VERSION = 3  # 2: transcription keeps every tail and records "songs"; 3: audio at SAMPLING_RATE, recorded
# the rate of folders prepared before the stored rate was recorded
LEGACY_SAMPLING_RATE = 16000


def _describe(value):
    if callable(value):
        return f"{getattr(value, '__module__', '?')}.{getattr(value, '__qualname__', type(value).__name__)}"
    if isinstance(value, (list, tuple)):
        return [_describe(v) for v in value]
    return value


def data_listing(data_dir) -> list:
    """(relative path, size, mtime_ns) of every file under ``data_dir`` (the fingerprint's input)."""
    if data_dir is None:
        return []
    root = Path(data_dir)
    listing = []
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            path = Path(dirpath, name)
            stat = path.stat() if path.exists() else path.lstat()  # a broken link is listed, and reported later
            listing.append((str(path.relative_to(root)), stat.st_size, stat.st_mtime_ns))
    return sorted(listing)


def fingerprint(corpus: str, data_dir, seed: int, options: dict) -> str:
    payload = {
        "schema": SCHEMA_VERSION,
        "decode": DECODE_PATH,
        "corpus": corpus,
        "seed": seed,
        "options": {key: _describe(value) for key, value in sorted(options.items())},
        "data": data_listing(data_dir),
    }
    separation = str(options.get("separation", "none"))
    if separation.startswith("stems:") and Path(separation[len("stems:"):]).is_dir():  # new stems: rebuild
        payload["stems"] = data_listing(separation[len("stems:"):])
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def leakage_groups(dataset: datasets.DatasetDict, task: str) -> tuple:
    """(what, {split: set of groups}) that must not be shared between splits for ``task``."""
    spec = get_task(task)
    return spec.leakage, {
        split: {spec.leakage_group(value) for value in dataset[split][spec.leakage_column]} for split in dataset
    }


def summarize(dataset: datasets.DatasetDict, task: str, label_names, chunk_seconds: float) -> dict:
    """Chunks per split and class (a chunk-label task) or per leakage group (e.g. song), hours per split."""
    spec = get_task(task)
    summary = {"chunks": {}, "hours": {}}
    for split in dataset:
        counts = Counter(dataset[split][spec.target_column if spec.pooled else spec.leakage_column])
        if spec.pooled:
            counts = {label_names[label]: counts.get(label, 0) for label in range(len(label_names))}
        summary["chunks"][split] = dict(sorted(counts.items()))
        summary["hours"][split] = round(len(dataset[split]) * chunk_seconds / 3600.0, 4)
    return summary


def _split_or_empty(builder, split: str) -> datasets.Dataset:
    """The split, or an empty dataset with the same features (datasets refuses empty splits)."""
    if builder.info.splits[split].num_examples == 0:
        features = builder.info.features
        return datasets.Dataset.from_dict({name: [] for name in features}, features=features, split=split)
    return builder.as_dataset(split=split)


def nothing_usable_message(corpus: str, data_dir, report: dict) -> str:
    """One line: nothing usable remains, and the skip counts per reason."""
    reasons = "; ".join(f"{len(names)} {reason}" for reason, names in report["skipped"].items()) or "none"
    return (
        f"nothing usable in {corpus} corpus {data_dir}: {report['files_used']} of {report['files_found']} "
        f"files gave examples (skipped: {reasons}); nothing was saved"
    )


def prepare(corpus: str, output_dir, data_dir=None, seed: int = 0, force: bool = False, num_proc=1,
            **options) -> datasets.DatasetDict:
    """Build ``corpus`` into ``output_dir`` (or reload it if the fingerprint matches); see module doc.

    ``num_proc`` processes decode (or synthesise) the files (``"auto"``: every core this process may use); the
    rows, their order and the fingerprint are the same for every value.

    ``options`` go to the corpus builder's config (e.g. ``task=``, ``split=``, sizes), except
    ``separate`` (a vocal-separation callable) which goes to the builder itself.
    """
    entry = get_corpus(corpus)
    num_proc = resolve_num_proc(num_proc)
    separation = options.get("separation", "none")
    if separation != "none" and not entry.separable:
        separable = tuple(name for name, other in corpora().items() if other.separable)
        raise ValueError(f"separation={separation}: {corpus} holds solo voices; separation applies to {separable}")
    if separation != "none" and options.get("separate") is not None:
        raise ValueError(f"separation={separation} and a separate= hook: give one of them")
    if not entry.generated and data_dir is None:
        raise ValueError(f"corpus {corpus!r} needs data_dir (the folder holding the downloaded corpus)")
    if data_dir is not None and not Path(data_dir).is_dir():
        raise ValueError(f"data_dir {data_dir} is not a folder")
    output_dir = Path(output_dir)
    key = fingerprint(corpus, data_dir, seed, options)
    meta_path = output_dir / META_FILE
    if not force and meta_path.is_file():
        meta = json.loads(meta_path.read_text())
        if meta.get("fingerprint") == key:
            return datasets.load_from_disk(str(output_dir))

    builder_kwargs = {k: options.pop(k) for k in ("separate",) if k in options}
    builder_kwargs["num_proc"] = num_proc
    builder_kwargs["separation_seed"] = seed
    config_kwargs = dict(options)
    if entry.seeded:  # published corpora have fixed, documented splits: the seed changes nothing there
        config_kwargs["seed"] = seed
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".svu-build-", dir=output_dir.parent) as scratch:
        builder = entry.builder(data_dir=None if data_dir is None else str(data_dir),
                              cache_dir=os.path.join(scratch, "cache"), **builder_kwargs, **config_kwargs)
        builder.download_and_prepare(download_mode="force_redownload")
        dataset = datasets.DatasetDict({split: _split_or_empty(builder, split) for split in SPLITS})
        if not any(len(part) for part in dataset.values()):
            raise ValueError(nothing_usable_message(corpus, data_dir, builder.report.to_dict()))
        separate = builder_kwargs.get("separate")
        save_prepared(
            dataset, output_dir, scratch, task=builder.task, label_names=list(builder.label_names),
            chunk_seconds=builder.chunk_seconds, report=builder.report.to_dict(), songs=builder.songs,
            corpus=corpus, fingerprint=key, options={"seed": seed, **{k: _describe(v) for k, v in options.items()}},
            validation=options.get("validation", "ours"),
            separation=f"hook:{_describe(separate)}" if separate is not None else str(builder.separation),
        )
    return datasets.load_from_disk(str(output_dir))


def save_prepared(dataset: datasets.DatasetDict, output_dir, scratch, *, task: str, label_names: list,
                  chunk_seconds: float, report: dict, songs: dict, **meta) -> None:
    """Write ``dataset`` with its svu_meta.json to ``output_dir`` (replacing it) once no group of the task's
    leakage key is in two splits (ValueError, one line). The meta is ``meta`` (corpus, fingerprint, options,
    validation, separation) and what the rows give (module docstring); ``songs``: the builder's whole recordings."""
    what, groups = leakage_groups(dataset, task)
    check_no_leakage(groups, what)
    report = {**report, **summarize(dataset, task, label_names, chunk_seconds)}
    report["groups"] = {"what": what, **{split: len(groups[split]) for split in SPLITS}}
    meta = {
        "corpus": meta.pop("corpus"),
        "task": task,
        "label_names": label_names,
        "sampling_rate": SAMPLING_RATE,
        "class_weights": class_weights(dataset["train"]["label"], len(label_names)) if get_task(task).pooled else None,
        "chunk_seconds": chunk_seconds,
        # frame targets are computed from the stored notes for each model
        "label_scheme": LABEL_SCHEME_FROM_NOTES if "notes_unclipped" in dataset["train"].column_names else None,
        "fingerprint": meta.pop("fingerprint"),
        "report": report,
        **meta,
    }
    if songs:  # whole recordings with their complete annotation (whole-song test scoring)
        meta["songs"] = {song: songs[song] for song in sorted(songs)}
    staged = Path(scratch) / "dataset"
    # an empty split still needs one (empty) shard, or load_from_disk fails on it
    dataset.save_to_disk(str(staged), num_shards={s: 1 for s in dataset if len(dataset[s]) == 0} or None)
    write_json(staged / META_FILE, meta)
    output_dir = Path(output_dir)
    if output_dir.exists():
        shutil.rmtree(output_dir)
    shutil.move(str(staged), str(output_dir))


def load_prepared(path) -> tuple:
    """(DatasetDict, meta dict) of a folder written by `prepare`."""
    path = Path(path)
    if not (path / META_FILE).is_file():
        raise ValueError(f"{path} is not a prepared SVU dataset (no {META_FILE}); run `svu data prepare` first")
    return datasets.load_from_disk(str(path)), json.loads((path / META_FILE).read_text())


def stored_rate(meta: dict) -> int:
    """The sampling rate in Hz of a prepared folder's audio (16 kHz for folders that do not record it)."""
    return int(meta.get("sampling_rate", LEGACY_SAMPLING_RATE))


def check_stored_rate(meta: dict, model_rate: int, where) -> None:
    """ValueError (one line) when the model hears a wider band than the prepared folder stores."""
    rate = stored_rate(meta)
    if model_rate > rate:
        raise ValueError(
            f"Prepared dataset {where} stores audio at {rate} Hz, the model needs {model_rate} Hz (its audio would "
            f"be band-limited to {rate // 2} Hz): prepare it again (svu data prepare ... --force) to store "
            f"{SAMPLING_RATE} Hz."
        )

"""Prepared data -> checked splits -> DataLoaders whose shuffle order depends only on (seed, epoch)."""

import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from svu.dataset_scripts.audio import resample
from svu.modeling_svu.ctc import encode
from svu.modeling_svu.note_labels import IGNORE_INDEX, notes_to_frame_targets
from svu.modeling_svu.pitch import frame_times, pitch_targets
from svu.modeling_svu.tasks import get_task

SPLITS = ("train", "validation", "test")


def to_model_rate(wave, sampling_rate: int, model_rate: int) -> np.ndarray:
    """The one place training resamples decoded audio (prepared data: 24 kHz) to the model's rate."""
    return resample(np.asarray(wave, dtype=np.float32), sampling_rate, model_rate)


def prepared_dir(cfg) -> Path:
    return Path(cfg.dataset.prepared_dir or Path(cfg.output_dir) / "data")


def prepare_dataset(cfg):
    """Prepare (or reuse) the corpus of `cfg.dataset` (or `cfg.dataset_name`) and check it fits `cfg.task`: -> (DatasetDict, meta)."""
    if cfg.dataset_name is not None:
        from svu.train.external_dataset import prepare_external

        return prepare_external(cfg)
    from svu.dataset_scripts.corpora import get_corpus
    from svu.dataset_scripts.prepare import prepare, load_prepared

    options = dict(cfg.dataset.options)
    if len(get_corpus(cfg.dataset.corpus).tasks) > 1:  # the corpus makes the data of the task asked for
        options.setdefault("task", cfg.task)
    if options.get("validation", cfg.validation) != cfg.validation:
        raise ValueError(
            f"validation: {cfg.validation} but dataset.options.validation: {options['validation']}; set only `validation`."
        )
    if cfg.validation != "ours":  # the builders' default; passed only when changed, so prepared folders stay valid
        options["validation"] = cfg.validation
    prepare(cfg.dataset.corpus, str(prepared_dir(cfg)), data_dir=cfg.dataset.data_dir, seed=cfg.seed, **options)
    data, meta = load_prepared(str(prepared_dir(cfg)))
    check_dataset(data, meta, cfg.task, where=str(prepared_dir(cfg)), validation=cfg.validation)
    return data, meta


def check_dataset(data, meta: dict, task: str, where: str, validation: str = "ours"):
    """ValueError (one line) for a dataset that cannot train `task`: missing split/column, wrong task, labels,
    a validation split that `validation` does not expect (`none`: empty; `ours`: not empty)."""
    missing = [split for split in SPLITS if split not in data]
    if missing:
        raise ValueError(f"Prepared dataset {where} has no {missing[0]!r} split (found {sorted(data)}).")
    used = SPLITS if validation != "none" else ("train", "test")
    empty = [split for split in used if len(data[split]) == 0]
    if empty:
        raise ValueError(f"Prepared dataset {where}: split {empty[0]!r} is empty.")
    if validation == "none" and len(data["validation"]):
        raise ValueError(
            f"Prepared dataset {where} has {len(data['validation'])} validation rows but validation: none trains on "
            "them; prepare it with validation=none."
        )
    if meta.get("task") != task:
        raise ValueError(f"Prepared dataset {where} is for task {meta.get('task')!r}, the config asks for {task!r}.")
    for split in SPLITS:
        absent = absent_column(data[split], task)
        if absent:
            raise ValueError(
                f"Prepared dataset {where}: split {split!r} has no {absent!r} column; prepare it again "
                "(svu data prepare ... --force, or --dataset.options.force true)."
            )
    if get_task(task).pooled:
        for split in SPLITS:
            names = data[split].features["label"].names
            if names != list(meta["label_names"]):
                raise ValueError(
                    f"Prepared dataset {where}: split {split!r} labels {names} differ from svu_meta.json "
                    f"label_names {meta['label_names']}."
                )


def columns_for(task: str) -> list:
    """The dataset columns training reads: audio, the task's `target_column` (e.g. the label, or the notes) and
    the columns read along with it (`target_companions`, e.g. the times of an F0 annotation)."""
    spec = get_task(task)
    return ["audio", spec.target_column, *spec.target_companions]


def absent_column(dataset, task: str):
    """The first column training reads (`columns_for`) that a split lacks (e.g. a folder of an earlier release), or
    None."""
    return next((column for column in columns_for(task) if column not in dataset.column_names), None)


class IndexedRows(Dataset):
    """A `datasets.Dataset` (or cache) as a torch Dataset whose items also carry their row index."""

    def __init__(self, rows, columns):
        self.rows = rows.select_columns(list(columns))

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, i):
        return {**self.rows[int(i)], "row_index": int(i)}


class EpochShuffleSampler(Sampler):
    """A random permutation that depends only on (seed, epoch): the same order with or without feature
    caches, in a resumed run, and whatever else used the global RNG before."""

    def __init__(self, num_rows: int, seed: int):
        self.num_rows, self.seed, self.epoch = num_rows, seed, 0

    def set_epoch(self, epoch: int):
        self.epoch = epoch

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        return iter(torch.randperm(self.num_rows, generator=generator).tolist())

    def __len__(self):
        return self.num_rows


class AudioCollator:
    """Decoded chunks -> `input_values` (+ `attention_mask`) at the model's rate, `labels`, `row_index`.

    Audio at another rate than the feature extractor's is resampled (`to_model_rate`). Transcription labels
    are frame targets computed here from `notes_unclipped` for the model's frame count, frame rate and pitch
    range (`config`, an `SVUConfig`).
    """

    def __init__(self, feature_extractor, task: str, config=None):
        self.collate_target = get_task(task).hook("collate")
        if not get_task(task).pooled and config is None:
            raise ValueError(f"AudioCollator for {task} needs the model config (frame rate and pitch range).")
        self.feature_extractor, self.task, self.config = feature_extractor, task, config

    def __call__(self, items):
        sampling_rate = self.feature_extractor.sampling_rate
        waves = [to_model_rate(item["audio"]["array"], item["audio"]["sampling_rate"], sampling_rate) for item in items]
        batch = dict(self.feature_extractor(waves, sampling_rate=sampling_rate, padding=True, return_tensors="pt"))
        batch["labels"] = self.collate_target(self, items, waves)
        batch["row_index"] = torch.tensor([item["row_index"] for item in items])
        return batch

    def class_indices(self, items, waves) -> torch.Tensor:
        """One class index per chunk -> (batch,)."""
        return torch.tensor([item["label"] for item in items])

    def padded_frame_targets(self, items, waves) -> torch.Tensor:
        """Frame targets of each chunk -> (batch, frames, 4), frames past a chunk's end = IGNORE_INDEX."""
        targets = [torch.as_tensor(self.frame_targets(item, len(wave))) for item, wave in zip(items, waves)]
        return torch.nn.utils.rnn.pad_sequence(targets, batch_first=True, padding_value=IGNORE_INDEX)

    def padded_pitch_targets(self, items, waves) -> torch.Tensor:
        """Pitch targets of each chunk from its F0 annotation (`f0_times`, `f0_hz`) at the model's frame times ->
        (batch, frames, num_pitch_bins + 1), frames past a chunk's end = IGNORE_INDEX."""
        targets = []
        for item, wave in zip(items, waves):
            times = frame_times(self.config.num_frames(len(wave)), self.config)
            targets.append(torch.as_tensor(pitch_targets(item["f0_times"], item["f0_hz"], times, self.config)))
        return torch.nn.utils.rnn.pad_sequence(targets, batch_first=True, padding_value=IGNORE_INDEX)

    def padded_token_ids(self, items, waves) -> torch.Tensor:
        """Token ids of each chunk's lyrics (`text`, spelt as the model's `ctc_vocab` spells it: `ctc.encode`) ->
        (batch, longest), padded with IGNORE_INDEX."""
        ids = [torch.tensor(encode(item["text"], self.config.ctc_vocab), dtype=torch.long) for item in items]
        return torch.nn.utils.rnn.pad_sequence(ids, batch_first=True, padding_value=IGNORE_INDEX)

    def frame_targets(self, item, num_samples: int) -> np.ndarray:
        """(frames, 4) targets of one chunk of `num_samples` samples at the model's rate."""
        notes = [(n["onset"], n["offset"], n["pitch"]) for n in item["notes_unclipped"]]
        config = self.config
        return notes_to_frame_targets(
            notes, config.num_frames(num_samples), config.frame_seconds, config.lowest_midi, config.num_octaves
        )



def pooled_collate(items):
    """Stage-1 cache rows -> `pooled_layer_states` (B, L, H), `labels`, `row_index`."""
    return {
        "pooled_layer_states": torch.as_tensor(np.stack([np.asarray(i["pooled_layer_states"], dtype=np.float32) for i in items])),
        "labels": torch.tensor([i["label"] for i in items]),
        "row_index": torch.tensor([i["row_index"] for i in items]),
    }


# `num_workers: auto`: below this many training rows (or with a tiny backbone) the loader stays in-process.
AUTO_WORKERS_MIN_ROWS = 2000
AUTO_WORKERS_MAX = 8


def resolve_num_workers(num_workers, backbone: str, num_rows: int, num_processes: int = 1) -> int:
    """`num_workers` itself, or for `"auto"`: 0 on tiny demo runs (tiny backbone or < AUTO_WORKERS_MIN_ROWS
    rows, where spawning workers costs more than decoding), else this process's share of the cores minus one
    for the training loop itself, between 1 and AUTO_WORKERS_MAX."""
    if num_workers != "auto":
        return num_workers
    if backbone.startswith("tiny-") or num_rows < AUTO_WORKERS_MIN_ROWS:
        return 0
    cores = len(os.sched_getaffinity(0)) // max(num_processes, 1)
    return max(1, min(AUTO_WORKERS_MAX, cores - 1))


def make_dataloader(rows, columns, collate_fn, batch_size, seed=None, num_workers=0):
    """Shuffled by `EpochShuffleSampler(seed)` when `seed` is given, else in row order."""
    sampler = EpochShuffleSampler(len(rows), seed) if seed is not None else None
    return DataLoader(
        IndexedRows(rows, columns), batch_size=batch_size, sampler=sampler, collate_fn=collate_fn,
        num_workers=num_workers,
        # Its own generator: otherwise every new iterator draws a worker seed from the global RNG, and a
        # resumed epoch (one more iterator) would shift the dropout stream against the uninterrupted run.
        generator=torch.Generator().manual_seed(0),
    )

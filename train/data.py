"""Prepared data -> checked splits -> DataLoaders whose shuffle order depends only on (seed, epoch)."""

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from modeling_svu.note_labels import IGNORE_INDEX
from modeling_svu.tasks import get_task

SPLITS = ("train", "validation", "test")


def prepared_dir(cfg) -> Path:
    return Path(cfg.dataset.prepared_dir or Path(cfg.output_dir) / "data")


def prepare_dataset(cfg):
    """Prepare (or reuse) the corpus of `cfg.dataset` and check it fits `cfg.task`: -> (DatasetDict, meta)."""
    from dataset_scripts.prepare import prepare, load_prepared

    options = dict(cfg.dataset.options)
    if cfg.dataset.corpus == "synthetic":
        options.setdefault("task", cfg.task)
    prepare(cfg.dataset.corpus, str(prepared_dir(cfg)), data_dir=cfg.dataset.data_dir, seed=cfg.seed, **options)
    data, meta = load_prepared(str(prepared_dir(cfg)))
    check_dataset(data, meta, cfg.task, where=str(prepared_dir(cfg)))
    return data, meta


def check_dataset(data, meta: dict, task: str, where: str):
    """ValueError (one line) for a dataset that cannot train `task`: missing split/column, wrong task, labels."""
    missing = [split for split in SPLITS if split not in data]
    if missing:
        raise ValueError(f"Prepared dataset {where} has no {missing[0]!r} split (found {sorted(data)}).")
    empty = [split for split in SPLITS if len(data[split]) == 0]
    if empty:
        raise ValueError(f"Prepared dataset {where}: split {empty[0]!r} is empty.")
    if meta.get("task") != task:
        raise ValueError(f"Prepared dataset {where} is for task {meta.get('task')!r}, the config asks for {task!r}.")
    spec = get_task(task)
    for split in SPLITS:
        absent = [c for c in spec.columns if c not in data[split].column_names]
        if absent:
            raise ValueError(f"Prepared dataset {where}: split {split!r} has no {absent[0]!r} column.")
    if spec.classes:
        for split in SPLITS:
            names = data[split].features["label"].names
            if names != list(meta["label_names"]):
                raise ValueError(
                    f"Prepared dataset {where}: split {split!r} labels {names} differ from svu_meta.json "
                    f"label_names {meta['label_names']}."
                )


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


def class_indices(values) -> torch.Tensor:
    """One class index per chunk -> (batch,)."""
    return torch.tensor(values)


def padded_frame_targets(values) -> torch.Tensor:
    """Per-frame targets of each chunk -> (batch, frames, ...) float, frames past a chunk's end = IGNORE_INDEX."""
    targets = [torch.as_tensor(np.asarray(value, dtype=np.float32)) for value in values]
    return torch.nn.utils.rnn.pad_sequence(targets, batch_first=True, padding_value=IGNORE_INDEX)


# a task's `target_column` -> how a batch of its values becomes `labels`
TARGET_COLLATES = {"label": class_indices, "frame_targets": padded_frame_targets}


class AudioCollator:
    """Decoded chunks -> `input_values` (+ `attention_mask`), `labels` (the task's target column), `row_index`."""

    def __init__(self, feature_extractor, task: str):
        self.feature_extractor, self.task = feature_extractor, task
        self.target_column = get_task(task).target_column
        self.collate_targets = TARGET_COLLATES[self.target_column]

    def __call__(self, items):
        sampling_rate = self.feature_extractor.sampling_rate
        waves = []
        for item in items:
            audio = item["audio"]
            if audio["sampling_rate"] != sampling_rate:
                raise ValueError(f"Audio at {audio['sampling_rate']} Hz; the model takes {sampling_rate} Hz.")
            waves.append(np.asarray(audio["array"], dtype=np.float32))
        batch = dict(self.feature_extractor(waves, sampling_rate=sampling_rate, padding=True, return_tensors="pt"))
        batch["labels"] = self.collate_targets([item[self.target_column] for item in items])
        batch["row_index"] = torch.tensor([item["row_index"] for item in items])
        return batch


def pooled_collate(items):
    """Stage-1 cache rows -> `pooled_layer_states` (B, L, H), `labels`, `row_index`."""
    return {
        "pooled_layer_states": torch.as_tensor(np.stack([np.asarray(i["pooled_layer_states"], dtype=np.float32) for i in items])),
        "labels": class_indices([i["label"] for i in items]),
        "row_index": torch.tensor([i["row_index"] for i in items]),
    }


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

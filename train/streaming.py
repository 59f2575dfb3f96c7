"""`streaming: true`: train from Parquet shards read as a stream, for corpora past one disk.

    svu data prepare vocalset --data-dir /data/VocalSet --output data/vocalset --parquet data/vocalset_parquet
    accelerate launch train/run.py --config train/configs/technique_wav2vec2.yaml \
        --streaming true --streaming_path data/vocalset_parquet     # or a Hub dataset repo (--push-to-hub)

The training split is a `datasets.IterableDataset`, shuffled with `seed` through a buffer of `shuffle_buffer`
examples (the shard order too) and split between the processes by `split_dataset_by_node`: whole shards each when
their number is a multiple of the number of processes (`dataset_scripts/hub.py` writes 24 x k), else every process
reads every shard and keeps one example in world_size. `set_epoch(epoch)` reseeds both shuffles, so an epoch's
order depends only on (seed, epoch, number of processes): a run resumed at an epoch boundary trains on what an
unbroken run does. Validation and test are loaded whole (map-style, through the datasets cache): evaluation needs
their rows at hand (whole songs, `gather_for_metrics`), and they are the small splits. Audio is decoded and
resampled by the map-style path's `AudioCollator`.
"""

import json
from pathlib import Path

import torch
from accelerate.data_loader import DataLoaderStateMixin
from accelerate.state import GradientState
from accelerate.utils import send_to_device
from torch.utils.data import DataLoader, IterableDataset

from svu.dataset_scripts.prepare import META_FILE
from svu.train.data import AUTO_WORKERS_MIN_ROWS, SPLITS, check_dataset, resolve_num_workers

EVAL_SPLITS = ("validation", "test")


def data_files(path) -> tuple:
    """(`load_dataset` path, {split: data files}) of a Parquet folder or a Hub dataset repo, both laid out as
    `stage_for_hub` / `push_prepared` write them (`data/<split>-*.parquet`)."""
    folder = Path(path)
    if not folder.is_dir():
        return str(path), {split: f"data/{split}-*.parquet" for split in SPLITS}
    files = {split: sorted(str(f) for f in (folder / "data").glob(f"{split}-*.parquet")) for split in SPLITS}
    missing = next((split for split, found in files.items() if not found), None)
    if missing:
        raise ValueError(f"streaming_path {path} has no data/{missing}-*.parquet; write it with svu data prepare "
                         "... --parquet DIR.")
    return "parquet", files


def read_meta(path) -> dict:
    """The `svu_meta.json` stored with the shards (local folder, or fetched from the Hub dataset repo)."""
    meta_file = Path(path) / META_FILE
    if not Path(path).is_dir():
        from huggingface_hub import hf_hub_download

        try:
            meta_file = hf_hub_download(str(path), META_FILE, repo_type="dataset")
        except Exception as err:  # offline, no such repo, no meta: one line
            raise ValueError(f"streaming_path {path} is no folder, and its {META_FILE} could not be read from the Hub "
                             f"({type(err).__name__}).") from None
    if not Path(meta_file).is_file():
        raise ValueError(f"streaming_path {path} has no {META_FILE}; write it with svu data prepare ... --parquet DIR.")
    return json.loads(Path(meta_file).read_text())


class _Unsized:
    """What `check_dataset` reads of the streamed split: its columns (its length is unknown; it has shards)."""

    def __init__(self, dataset):
        self.column_names, self.features = dataset.column_names, dataset.features

    def __len__(self):
        return 1


def load_streaming(cfg, accelerator) -> tuple:
    """-> ({"train": this process's IterableDataset, "validation"/"test": Datasets}, meta), checked as
    `prepare_dataset` checks a prepared folder."""
    import datasets
    from datasets.distributed import split_dataset_by_node

    meta = read_meta(cfg.streaming_path)
    name, files = data_files(cfg.streaming_path)
    # one split's files per call: `load_dataset` would otherwise copy every split, train too, into its cache
    with accelerator.main_process_first():  # the first process fills the datasets cache
        data = {split: datasets.load_dataset(name, data_files={split: files[split]}, split=split) for split in EVAL_SPLITS}
    train = datasets.load_dataset(name, data_files={"train": files["train"]}, split="train", streaming=True)
    check_dataset({**data, "train": _Unsized(train)}, meta, cfg.task, where=str(cfg.streaming_path),
                  validation=cfg.validation)
    train = train.shuffle(seed=cfg.seed, buffer_size=cfg.shuffle_buffer)
    train = split_dataset_by_node(train, rank=accelerator.process_index, world_size=accelerator.num_processes)
    if cfg.task_spec.pooled and cfg.stage1_epochs > 0:
        accelerator.print("streaming: stage 1 runs the backbone on every batch (no feature cache)")
    return {"train": train, **data}, meta


class _Rows(IterableDataset):
    """The streamed rows' training columns, with their position in this process's epoch as `row_index`."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __iter__(self):
        for index, row in enumerate(self.dataset):
            yield {**row, "row_index": index}


class StreamingLoader(DataLoaderStateMixin):
    """This process's batches of the stream, on `accelerator.device`, as many on every process.

    The processes may hold different numbers of rows (shards differ by a row; which shards a process reads
    changes with the epoch). Before each batch they agree whether all of them still have one, and the epoch
    ends for all at the first process out of rows: DDP never waits for a backward that does not come, and the
    last batch (`end_of_dataloader`, where gradient accumulation steps) is the same on all of them.
    """

    def __init__(self, dataset, columns, collate_fn, batch_size, accelerator, num_workers=0):
        # `set_epoch` must reach the dataset iterated: a derived one (select_columns) keeps its own epoch
        self.dataset = dataset.select_columns(list(columns))
        self.accelerator, self.num_workers = accelerator, num_workers
        self.gradient_state = GradientState()
        self._drop_last = True  # no length: `begin` computes no remainder
        self.loader = DataLoader(
            _Rows(self.dataset), batch_size=batch_size, collate_fn=collate_fn, num_workers=num_workers,
            generator=torch.Generator().manual_seed(0),  # as `make_dataloader`: no draw from the global RNG
        )

    def set_epoch(self, epoch: int):
        self.dataset.set_epoch(epoch)

    def _next_everywhere(self, batches):
        batch = next(batches, None)
        if self.accelerator.num_processes > 1:
            present = torch.tensor([batch is not None], device=self.accelerator.device)
            if not bool(self.accelerator.gather(present).all()):
                return None
        return batch

    def __iter__(self):
        self.begin()
        try:
            batches = iter(self.loader)
            current = self._next_everywhere(batches)
            while current is not None:
                following = self._next_everywhere(batches)
                self.end_of_dataloader = following is None
                yield send_to_device(current, self.accelerator.device)
                current = following
        finally:
            self.end()


def streaming_loader(cfg, dataset, columns, collate_fn, accelerator) -> StreamingLoader:
    """The training loader of `load_streaming`'s split (not `accelerator.prepare`d: it is split by node already).
    `num_workers: auto` counts the stream as large; workers share this process's shards, so at most that many."""
    workers = resolve_num_workers(cfg.num_workers, cfg.backbone, AUTO_WORKERS_MIN_ROWS, accelerator.num_processes)
    workers = min(workers, dataset.num_shards)
    return StreamingLoader(dataset, columns, collate_fn, cfg.batch_size, accelerator, num_workers=workers)

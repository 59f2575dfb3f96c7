"""Stage-1 feature caches: run the frozen backbone once, not once per epoch.

In stage 1 the backbone is frozen (and in eval mode), so its hidden states are the same every epoch.
For classification, mean pooling commutes with the weighted layer sum:

    mean_t sum_l w_l h_l(t) = sum_l w_l mean_t h_l(t)

so caching the time-mean of every hidden state, (num_hidden_states, hidden_size) per chunk, lets stage 1
train the layer weights and the head **exactly** (`model.classify_pooled`), at a tiny fraction of the cost:

    cache = build_pooled_cache(model, prepared["train"], "cache/")      # once, reused while nothing changed
    rows = cache.with_format("torch")[order[i:j]]                            # float32 (B, L, H), no copy per epoch
    out = model.classify_pooled(rows["pooled_layer_states"], labels=rows["label"])

In a run of several processes (`train/run.py`), `build_pooled_cache(..., accelerator=accelerator)` is called by
every process with the prepared model: each runs the backbone on its share of the batches, and the main process
writes the rows gathered in dataset order (the same cache as one process).

For transcription, the head is frame-wise, so the cache has to keep every frame of every layer:
`build_frame_cache` writes them as one memory-mapped float16 array, after printing its size
(`estimate_frame_cache_bytes`), because at base size that is ~5 MB per 5 s chunk.

Both caches are keyed by a fingerprint of the backbone weights and config, the feature extractor,
the dataset fingerprint and the caller's preprocessing options: change any of them and the cache is rebuilt.
"""

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Optional

import datasets
import numpy as np
import torch
from accelerate.data_loader import prepare_data_loader
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from svu.train.data import to_model_rate
from svu.train.evaluation import eval_mode

# Bump when the cached values change meaning, so old caches are not reused.
CACHE_FORMAT_VERSION = 1
POOLED_COLUMN = "pooled_layer_states"


def cache_fingerprint(model, dataset: datasets.Dataset, preprocessing: Optional[dict] = None, kind: str = "pooled") -> str:
    """Hex digest of everything the cached features depend on.

    That is the backbone's weights (all tensors, bit for bit) and config, the per-layer LayerNorm flag,
    the feature extractor settings (normalisation, attention mask), the dataset fingerprint, and
    `preprocessing` (any caller option that changes the audio before the model, e.g. chunk length).
    """
    digest = hashlib.sha256()
    header = {
        "kind": kind,
        "version": CACHE_FORMAT_VERSION,
        "backbone_config": model.config.backbone_config.to_dict(),
        "layer_norm_per_layer": bool(model.layer_sum.layer_norm),
        "feature_extractor": model.feature_extractor().to_dict(),
        "dataset": dataset._fingerprint,
        "preprocessing": preprocessing or {},
    }
    digest.update(json.dumps(header, sort_keys=True, default=str).encode())
    for name, tensor in sorted(model.backbone.state_dict().items()):
        digest.update(name.encode())
        digest.update(str(tensor.dtype).encode())
        digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy())
    return digest.hexdigest()


def _audio_batches(dataset: datasets.Dataset, batch_size: int, sampling_rate: int, accelerator=None):
    """Yield (list of float32 waveforms at `sampling_rate`, their row indices as a tensor) in dataset order
    (resampled if needed). With an `accelerator`, only this process's batches: p, p + N, ... of N processes
    (accelerate's sequential sharding, the last step padded), so gathering each step gives dataset order."""
    # its own generator: building a cache must not draw from the global RNG (the training's dropout stream)
    loader = DataLoader(range(len(dataset)), batch_size=batch_size, generator=torch.Generator())
    if accelerator is not None:  # not `accelerator.prepare_data_loader`, which would add it to the checkpoints
        loader = prepare_data_loader(loader, accelerator.device, num_processes=accelerator.num_processes,
                                     process_index=accelerator.process_index, put_on_device=True)
    audio = dataset.select_columns(["audio"])
    for rows in loader:
        cells = audio[rows.tolist()]["audio"]
        yield [to_model_rate(cell["array"], cell["sampling_rate"], sampling_rate) for cell in cells], rows


def _model_inputs(model, waves):
    extractor = model.feature_extractor()
    inputs = extractor(waves, sampling_rate=extractor.sampling_rate, padding=True, return_tensors="pt")
    device = next(model.parameters()).device
    attention_mask = inputs.get("attention_mask")
    return inputs["input_values"].to(device), None if attention_mask is None else attention_mask.to(device)


def _check_columns(dataset: datasets.Dataset, needed):
    missing = [c for c in needed if c not in dataset.column_names]
    if missing:
        raise ValueError(f"The dataset has no column(s) {missing}; it has {dataset.column_names}.")


@contextlib.contextmanager
def _building(cache_dir, final_dir: Path, manifest: dict):
    """Yield a temporary folder to write a cache into. On success the folder (plus `fingerprint.json`) is moved
    to `final_dir` (if another process got there first, theirs is kept); on any error it is deleted."""
    Path(cache_dir).mkdir(parents=True, exist_ok=True)
    tmp_dir = Path(tempfile.mkdtemp(prefix=f".{final_dir.name.split('-')[0]}-tmp-", dir=cache_dir))
    try:
        yield tmp_dir
        (tmp_dir / "fingerprint.json").write_text(json.dumps(manifest))
        try:
            os.replace(tmp_dir, final_dir)
        except OSError:
            shutil.rmtree(tmp_dir, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        raise


def _pooled_batches(model, dataset: datasets.Dataset, batch_size: int, accelerator=None):
    """Yield (pooled layer states as float32 numpy, their row indices) of every row of `dataset`, batch by batch in
    dataset order. With an `accelerator`, each process runs the backbone (on `accelerator.device`, under its mixed
    precision) on its share of the batches, and every process gets each step's batches back, the padding dropped."""
    autocast = accelerator.autocast if accelerator is not None else contextlib.nullcontext
    for waves, rows in _audio_batches(dataset, batch_size, model.config.sampling_rate, accelerator):
        input_values, attention_mask = _model_inputs(model, waves)
        with torch.inference_mode(), autocast():
            pooled = model.pooled_layer_states(input_values, attention_mask).float()
            if accelerator is not None:
                pooled, rows = accelerator.gather_for_metrics((pooled, rows))
        yield pooled.cpu().numpy(), rows.cpu().numpy()


def _write_pooled(batches, dataset: datasets.Dataset, features, fingerprint: str, cache_dir, final_dir: Path):
    labels = dataset.select_columns(["label"])
    with _building(cache_dir, final_dir, {"fingerprint": fingerprint, "rows": len(dataset)}) as tmp_dir:
        with datasets.arrow_writer.ArrowWriter(features=features, path=str(tmp_dir / "data.arrow"), fingerprint=fingerprint) as writer:
            bar = tqdm(total=len(dataset), desc="stage-1 pooled feature cache", unit="chunk")
            written = 0
            for pooled, rows in batches:
                if not np.array_equal(rows, np.arange(written, written + len(rows))):  # the sharding's promise, checked
                    raise RuntimeError(f"pooled cache: rows {rows[:3].tolist()}... arrived where row {written} belongs")
                writer.write_batch({POOLED_COLUMN: list(pooled), "label": labels[rows.tolist()]["label"]})
                written += len(rows)
                bar.update(len(rows))
            bar.close()
            writer.finalize()


def build_pooled_cache(model, dataset: datasets.Dataset, cache_dir, *, batch_size: int = 8, preprocessing: Optional[dict] = None,
                       accelerator=None) -> datasets.Dataset:
    """Per-layer time-mean features of every chunk, for exact stage-1 training of a classification model.

    Args:
        model: an `SVUForSingerID` / `SVUForTechniqueClassification` (anything with `pooled_layer_states`).
        dataset: a prepared classification split with columns "audio" (any rate; resampled to the model's) and "label".
        cache_dir: folder holding caches; each lives in `pooled-<fingerprint>/`.
        batch_size: chunks per backbone forward while building.
        preprocessing: options that changed the audio before it reached `dataset` (part of the fingerprint).
        accelerator: share the build between its processes (call it on every process, with the prepared model on
            `accelerator.device`): each runs its share of the batches under the run's mixed precision, the main
            process writes every row, the others wait and read it. Same rows, order and values as one process.

    Returns:
        A memory-mapped `datasets.Dataset` with "pooled_layer_states" (`Array2D((L, H), "float32")`) and
        "label", one row per row of `dataset`, in the same order.
    """
    if not hasattr(model, "pooled_layer_states"):
        raise ValueError(f"{type(model).__name__} has no pooled_layer_states: the pooled cache is for classification models.")
    _check_columns(dataset, ["audio", "label"])
    precision = accelerator.mixed_precision if accelerator is not None else "no"
    if precision != "no":  # features computed under autocast are not the float32 ones
        preprocessing = {**(preprocessing or {}), "mixed_precision": precision}
    fingerprint = cache_fingerprint(model, dataset, preprocessing, kind="pooled")
    final_dir = Path(cache_dir) / f"pooled-{fingerprint[:20]}"
    data_file = final_dir / "data.arrow"
    if data_file.exists():
        return datasets.Dataset.from_file(str(data_file))

    shape = (model.config.num_hidden_states, model.config.backbone_config.hidden_size)
    features = datasets.Features(
        {POOLED_COLUMN: datasets.Array2D(shape=shape, dtype="float32"), "label": dataset.features["label"]}
    )
    with eval_mode(model):
        batches = _pooled_batches(model, dataset, batch_size, accelerator)
        if accelerator is None or accelerator.is_main_process:
            _write_pooled(batches, dataset, features, fingerprint, cache_dir, final_dir)
        else:
            for _ in batches:  # this process's share of the rows, written by the main process
                pass
    if accelerator is not None:
        accelerator.wait_for_everyone()
    return datasets.Dataset.from_file(str(data_file))


def _frame_count(model, num_samples: int) -> int:
    cfg = model.config.backbone_config
    for kernel, stride in zip(cfg.conv_kernel, cfg.conv_stride):
        num_samples = (num_samples - kernel) // stride + 1
    return num_samples


def _chunk_samples(dataset: datasets.Dataset, sampling_rate: int) -> int:
    """Samples of the first chunk at `sampling_rate` (the model's), as `_audio_batches` resamples it."""
    audio = dataset[0]["audio"]
    return len(to_model_rate(audio["array"], audio["sampling_rate"], sampling_rate))


def estimate_frame_cache_bytes(model, dataset: datasets.Dataset) -> int:
    """Bytes of the float16 frame cache: rows x hidden states x frames x hidden size x 2."""
    cfg = model.config
    frames = _frame_count(model, _chunk_samples(dataset, cfg.sampling_rate))
    return len(dataset) * cfg.num_hidden_states * frames * cfg.backbone_config.hidden_size * 2


def _human_bytes(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{n} B"
        n /= 1024


def build_frame_cache(model, dataset: datasets.Dataset, cache_dir, *, batch_size: int = 8, preprocessing: Optional[dict] = None, max_bytes: Optional[int] = None) -> np.ndarray:
    """Every hidden state at every frame, float16, for stage-1 transcription training without the backbone.

    Prints the size estimate first and refuses (ValueError) to build beyond `max_bytes`. The chunks must all
    have the same length (prepared transcription splits do). Row i of the result is row i of `dataset`.

    Returns:
        A read-only `np.memmap` of shape (rows, num_hidden_states, frames, hidden_size), dtype float16,
        stored at `cache_dir/frames-<fingerprint>/layer_states.npy`. Feed a slice as
        `model.layer_sum(torch.from_numpy(x).float().unbind(1))` to get the weighted-sum features.
    """
    _check_columns(dataset, ["audio"])
    fingerprint = cache_fingerprint(model, dataset, preprocessing, kind="frames")
    final_dir = Path(cache_dir) / f"frames-{fingerprint[:20]}"
    array_file = final_dir / "layer_states.npy"
    if array_file.exists():
        return np.load(array_file, mmap_mode="r")

    estimate = estimate_frame_cache_bytes(model, dataset)
    print(f"Frame feature cache: {len(dataset)} chunks -> {_human_bytes(estimate)} (float16) in {final_dir}")
    if max_bytes is not None and estimate > max_bytes:
        raise ValueError(f"The frame cache would take {estimate} bytes, more than max_bytes={max_bytes}.")
    chunk_samples = _chunk_samples(dataset, model.config.sampling_rate)
    shape = (
        len(dataset), model.config.num_hidden_states, _frame_count(model, chunk_samples),
        model.config.backbone_config.hidden_size,
    )
    with eval_mode(model), _building(cache_dir, final_dir, {"fingerprint": fingerprint, "shape": shape}) as tmp_dir:
        out = np.lib.format.open_memmap(tmp_dir / "layer_states.npy", mode="w+", dtype=np.float16, shape=shape)
        row = 0
        bar = tqdm(total=len(dataset), desc="frame feature cache", unit="chunk")
        for waves, _ in _audio_batches(dataset, batch_size, model.config.sampling_rate):
            if any(len(w) != chunk_samples for w in waves):
                raise ValueError(f"The frame cache needs equal-length chunks of {chunk_samples} samples.")
            input_values, attention_mask = _model_inputs(model, waves)
            with torch.inference_mode():
                states, _ = model._hidden_states(input_values, attention_mask)
                out[row:row + len(waves)] = torch.stack(states, dim=1).half().cpu().numpy()
            row += len(waves)
            bar.update(len(waves))
        bar.close()
        out.flush()
        del out
    return np.load(array_file, mmap_mode="r")

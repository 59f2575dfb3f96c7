"""Stage-1 feature cache: exact training through train/run.py (one process, and two `accelerate launch`ed), row
order, reuse and invalidation."""

import os
import subprocess
import sys
from pathlib import Path

import datasets
import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from svu.dataset_scripts.prepare import prepare
from svu.modeling_svu import SVUForTechniqueClassification
from svu.train.data import to_model_rate
from svu.train.feature_cache import (
    POOLED_COLUMN,
    build_frame_cache,
    build_pooled_cache,
    estimate_frame_cache_bytes,
)
from in_process import train

REPO = Path(__file__).resolve().parents[1]
DEMO_CONFIG = REPO / "train" / "configs" / "demo_technique.yaml"
# The demo config's dataset, made smaller (also passed to train/run.py, so it finds this prepared copy).
DEMO_DATA_OPTIONS = dict(task="technique", clips_per_class=1)
CACHE_BATCH_SIZE = 7  # splits of 60 and 12 rows: uneven batches, and an uneven last step over 2 processes


def at_16k(audio) -> np.ndarray:
    """A prepared chunk at the 16 kHz of the tiny models, as the collator and the cache resample it."""
    return to_model_rate(audio["array"], audio["sampling_rate"], 16000)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    path = tmp_path_factory.mktemp("prepared") / "data"
    return path, prepare("synthetic", path, **DEMO_DATA_OPTIONS)


def tiny_model(seed=0):
    torch.manual_seed(seed)
    return SVUForTechniqueClassification.from_backbone("tiny-wav2vec2", id2label={i: f"c{i}" for i in range(6)})


def run_stage1(output_dir: Path, prepared_dir: Path, cache: bool, processes: int = 1):
    """A stage-1 epoch of train/run.py: in this process (`in_process`), or `accelerate launch`ed on 2."""
    args = [
        "--config", str(DEMO_CONFIG), "--epochs", "1", "--stage1_epochs", "1", "--lr_stage1", "0.003",
        "--cache_stage1", str(cache).lower(), "--output_dir", str(output_dir), "--dataset.prepared_dir", str(prepared_dir),
        "--dataset.options.clips_per_class", str(DEMO_DATA_OPTIONS["clips_per_class"]),
        "--eval_batch_size", str(CACHE_BATCH_SIZE),
    ]  # fmt: skip
    if processes == 1:
        train(*args)
    else:  # `--multi_gpu` without GPUs: 2 processes on gloo (`--cpu --num_processes 2` would silently run one)
        cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(processes),
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", str(REPO / "train" / "run.py"),
               *args]  # fmt: skip
        env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", TQDM_DISABLE="1", PYTHONPATH=str(REPO))
        proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
    state = load_file(str(output_dir / "best" / "model.safetensors"))
    return {k.removeprefix("model."): v for k, v in state.items() if "backbone" not in k}


@pytest.fixture(scope="module")
def cached_run(prepared, tmp_path_factory):
    """(run folder, kept head and layer weights) of a 1-process stage-1 epoch trained from the cache."""
    out = tmp_path_factory.mktemp("cached_run")
    return out, run_stage1(out, prepared[0], cache=True)


@pytest.mark.timeout(240)
def test_cached_stage1_equals_recomputed_stage1_in_run_script(prepared, cached_run, tmp_path):
    prepared_dir, _ = prepared
    cached_dir, cached = cached_run
    recomputed = run_stage1(tmp_path / "recomputed", prepared_dir, cache=False)

    # the cached run really trained from the cache, the other one really did not
    assert any((cached_dir / "feature_cache").glob("pooled-*/data.arrow"))
    assert not (tmp_path / "recomputed" / "feature_cache").exists()
    assert set(cached) == {"layer_sum.weight", "head.weight", "head.bias"}
    assert cached["layer_sum.weight"].abs().max() > 1e-3, "stage 1 did not move the layer weights from their init"
    for name in cached:
        torch.testing.assert_close(cached[name], recomputed[name], rtol=0, atol=1e-5, msg=name)
    torch.testing.assert_close(
        torch.softmax(cached["layer_sum.weight"], 0), torch.softmax(recomputed["layer_sum.weight"], 0), rtol=0, atol=1e-5
    )


def read_caches(run_dir: Path) -> dict:
    """{cache folder name: its rows as numpy} of a run's feature caches (one per split)."""
    return {path.parent.name: datasets.Dataset.from_file(str(path)).with_format("numpy")[:]
            for path in sorted((run_dir / "feature_cache").glob("pooled-*/data.arrow"))}


@pytest.mark.timeout(240)
def test_two_processes_build_the_one_process_cache(prepared, cached_run, tmp_path):
    """Each process runs the backbone on its share of the batches (uneven: 60 and 12 rows in batches of 7), the
    main process writes them: the same rows, in the same order, with the same values as one process."""
    run_stage1(tmp_path / "two", prepared[0], cache=True, processes=2)
    one, two = read_caches(cached_run[0]), read_caches(tmp_path / "two")
    assert len(one) == 2 and list(two) == list(one)  # train and validation, the same fingerprints
    split_sizes = sorted(len(prepared[1][split]) for split in ("train", "validation"))
    assert sorted(len(rows["label"]) for rows in one.values()) == split_sizes
    for name in one:
        np.testing.assert_array_equal(two[name]["label"], one[name]["label"])
        np.testing.assert_allclose(two[name][POOLED_COLUMN], one[name][POOLED_COLUMN], rtol=0, atol=1e-5)


def test_cache_is_built_by_the_prepared_model_on_the_accelerator_device(prepared, tmp_path, monkeypatch):
    """`build_run` builds the stage-1 cache with the model `accelerator.prepare` returned (on its device), and
    shares the build through the accelerator; a build before `prepare` fails here."""
    import svu.train.feature_cache
    import svu.train.run

    from accelerate.state import AcceleratorState
    from svu.train.config import load_config
    from svu.train.peft_variants import svu_model

    accelerators, builds = [], []

    class RecordedAccelerator(svu.train.run.Accelerator):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            accelerators.append(self)

    def recorded_build(model, dataset, cache_dir, **kwargs):
        accelerator = accelerators[-1]
        prepared_models = [svu_model(accelerator.unwrap_model(m).model) for m in accelerator._models]
        builds.append(dict(prepared=any(model is m for m in prepared_models), device=next(model.parameters()).device,
                           accelerator=kwargs.get("accelerator") is accelerator, expected_device=accelerator.device))
        return build_pooled_cache(model, dataset, cache_dir, **kwargs)

    monkeypatch.setattr(svu.train.run, "Accelerator", RecordedAccelerator)
    monkeypatch.setattr(svu.train.feature_cache, "build_pooled_cache", recorded_build)
    cfg = load_config(str(DEMO_CONFIG), ["--output_dir", str(tmp_path / "run"), "--dataset.prepared_dir", str(prepared[0]),
                                         "--dataset.options.clips_per_class", str(DEMO_DATA_OPTIONS["clips_per_class"])])
    try:
        run = svu.train.run.build_run(cfg)
    finally:
        AcceleratorState._reset_state(True)
    assert [b["prepared"] for b in builds] == [True, True]  # train, validation
    assert all(b["accelerator"] and b["device"] == b["expected_device"] for b in builds), builds
    assert {"train_cached", "validation_cached"} <= set(run.loaders)


def test_pooled_cache_rows_follow_dataset_order(prepared, tmp_path):
    split = prepared[1]["validation"]
    model = tiny_model().eval()
    cache = build_pooled_cache(model, split, tmp_path, batch_size=5).with_format("numpy")

    assert len(cache) == len(split)
    assert cache.features[POOLED_COLUMN].shape == (model.config.num_hidden_states, 32)
    np.testing.assert_array_equal(cache["label"], np.asarray(split["label"]))
    extractor = model.feature_extractor()
    for i in (0, len(split) // 2, len(split) - 1):
        inputs = extractor(at_16k(split[i]["audio"]), sampling_rate=16000, return_tensors="pt")
        with torch.no_grad():
            expected = model.pooled_layer_states(inputs["input_values"], inputs.get("attention_mask"))[0]
        np.testing.assert_allclose(cache[i][POOLED_COLUMN], expected.numpy(), atol=1e-5)


def test_pooled_cache_is_built_under_the_accelerators_mixed_precision(prepared, tmp_path):
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    split = prepared[1]["validation"]
    model = tiny_model()
    plain = build_pooled_cache(model, split, tmp_path, batch_size=5).with_format("numpy")[:]
    try:
        bf16 = build_pooled_cache(model, split, tmp_path, batch_size=5, accelerator=Accelerator(cpu=True, mixed_precision="bf16"))
    finally:
        AcceleratorState._reset_state(True)
    bf16 = bf16.with_format("numpy")[:]
    assert len(cache_dirs(tmp_path)) == 2, "a bf16 cache must not be read back as the float32 one (or the reverse)"
    np.testing.assert_array_equal(bf16["label"], plain["label"])
    difference = np.abs(bf16[POOLED_COLUMN] - plain[POOLED_COLUMN]).max()
    assert 1e-4 < difference < 0.05, difference  # bf16 rounding, not another model


def cache_dirs(root: Path, kind="pooled"):
    return sorted(p.name for p in root.glob(f"{kind}-*"))


def test_pooled_cache_reused_until_backbone_or_preprocessing_changes(prepared, tmp_path):
    split = prepared[1]["validation"]
    model = tiny_model()
    first = build_pooled_cache(model, split, tmp_path, preprocessing={"chunk_seconds": 3.0}).with_format("numpy")[:]
    assert len(cache_dirs(tmp_path)) == 1

    # nothing changed: the cache is read back, the backbone never runs
    real = model.pooled_layer_states
    model.pooled_layer_states = lambda *a, **k: pytest.fail("the backbone ran although the cache was valid")
    again = build_pooled_cache(model, split, tmp_path, preprocessing={"chunk_seconds": 3.0}).with_format("numpy")[:]
    np.testing.assert_array_equal(again[POOLED_COLUMN], first[POOLED_COLUMN])
    assert len(cache_dirs(tmp_path)) == 1
    model.pooled_layer_states = real

    # preprocessing changed: rebuilt
    build_pooled_cache(model, split, tmp_path, preprocessing={"chunk_seconds": 5.0})
    assert len(cache_dirs(tmp_path)) == 2

    # one backbone weight changed (e.g. after stage 2): rebuilt, with different features
    with torch.no_grad():
        model.backbone.encoder.layers[-1].feed_forward.output_dense.weight[0, 0] += 0.5
    changed = build_pooled_cache(model, split, tmp_path, preprocessing={"chunk_seconds": 3.0}).with_format("numpy")[:]
    assert len(cache_dirs(tmp_path)) == 3
    assert not np.allclose(changed[POOLED_COLUMN][:, -1], first[POOLED_COLUMN][:, -1])

    # the feature extractor's normalisation changed: rebuilt
    model.config.normalize_audio = not model.config.normalize_audio
    build_pooled_cache(model, split, tmp_path, preprocessing={"chunk_seconds": 3.0})
    assert len(cache_dirs(tmp_path)) == 4

    # other rows (another dataset fingerprint): rebuilt
    build_pooled_cache(model, split.select(range(4)), tmp_path, preprocessing={"chunk_seconds": 3.0})
    assert len(cache_dirs(tmp_path)) == 5
    assert not list(tmp_path.glob(".pooled-tmp-*")), "temporary build folders were left behind"


def test_frame_cache_prints_estimate_and_holds_every_layer(prepared, tmp_path, capsys):
    split = prepared[1]["validation"].select(range(6))
    model = tiny_model().eval()
    estimate = estimate_frame_cache_bytes(model, split)
    frames = build_frame_cache(model, split, tmp_path, batch_size=4)

    assert f"{len(split)} chunks" in capsys.readouterr().out
    assert frames.shape == (6, model.config.num_hidden_states, 149, 32)  # 3 s chunks -> 149 frames
    assert frames.dtype == np.float16 and frames.nbytes == estimate
    inputs = model.feature_extractor()(at_16k(split[2]["audio"]), sampling_rate=16000, return_tensors="pt")
    with torch.no_grad():
        states = model.backbone(inputs["input_values"], output_hidden_states=True).hidden_states
    np.testing.assert_allclose(frames[2].astype(np.float32), torch.cat(states).numpy(), rtol=2e-3, atol=2e-3)

    with pytest.raises(ValueError, match="max_bytes"):
        build_frame_cache(model, split.select(range(5)), tmp_path, max_bytes=estimate // 2)
    with torch.no_grad():
        model.backbone.feature_projection.projection.bias += 1.0
    build_frame_cache(model, split, tmp_path)
    assert len(cache_dirs(tmp_path, "frames")) == 2

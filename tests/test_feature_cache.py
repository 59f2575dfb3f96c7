"""Stage-1 feature cache: exact training through train/run.py, row order, reuse and invalidation."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from dataset_scripts.prepare import prepare
from modeling_svu import SVUForTechniqueClassification
from train.feature_cache import (
    POOLED_COLUMN,
    build_frame_cache,
    build_pooled_cache,
    estimate_frame_cache_bytes,
)

REPO = Path(__file__).resolve().parents[1]
DEMO_CONFIG = REPO / "train" / "configs" / "demo_technique.yaml"
# The demo config's dataset, made smaller (also passed to train/run.py, so it finds this prepared copy).
DEMO_DATA_OPTIONS = dict(task="technique", clips_per_class=1)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    path = tmp_path_factory.mktemp("prepared") / "data"
    return path, prepare("synthetic", path, **DEMO_DATA_OPTIONS)


def tiny_model(seed=0):
    torch.manual_seed(seed)
    return SVUForTechniqueClassification.from_backbone("tiny-wav2vec2", id2label={i: f"c{i}" for i in range(6)})


def run_stage1(output_dir: Path, prepared_dir: Path, cache: bool):
    cmd = [
        sys.executable, "-m", "accelerate.commands.launch", "--cpu", "--num_processes", "1", str(REPO / "train" / "run.py"),
        "--config", str(DEMO_CONFIG), "--epochs", "1", "--stage1_epochs", "1", "--lr_stage1", "0.003",
        "--cache_stage1", str(cache).lower(), "--output_dir", str(output_dir), "--dataset.prepared_dir", str(prepared_dir),
        "--dataset.options.clips_per_class", str(DEMO_DATA_OPTIONS["clips_per_class"]),
    ]
    env = dict(os.environ, OMP_NUM_THREADS="2", HF_HUB_OFFLINE="1", PYTHONPATH=str(REPO))  # this checkout's train/
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    state = load_file(str(output_dir / "best" / "model.safetensors"))
    return {k.removeprefix("model."): v for k, v in state.items() if "backbone" not in k}


@pytest.mark.timeout(240)
def test_cached_stage1_equals_recomputed_stage1_in_run_script(prepared, tmp_path):
    prepared_dir, _ = prepared
    cached = run_stage1(tmp_path / "cached", prepared_dir, cache=True)
    recomputed = run_stage1(tmp_path / "recomputed", prepared_dir, cache=False)

    # the cached run really trained from the cache, the other one really did not
    assert any((tmp_path / "cached" / "feature_cache").glob("pooled-*/data.arrow"))
    assert not (tmp_path / "recomputed" / "feature_cache").exists()
    assert set(cached) == {"layer_sum.weight", "head.weight", "head.bias"}
    assert cached["layer_sum.weight"].abs().max() > 1e-3, "stage 1 did not move the layer weights from their init"
    for name in cached:
        torch.testing.assert_close(cached[name], recomputed[name], rtol=0, atol=1e-5, msg=name)
    torch.testing.assert_close(
        torch.softmax(cached["layer_sum.weight"], 0), torch.softmax(recomputed["layer_sum.weight"], 0), rtol=0, atol=1e-5
    )


def test_pooled_cache_rows_follow_dataset_order(prepared, tmp_path):
    split = prepared[1]["validation"]
    model = tiny_model().eval()
    cache = build_pooled_cache(model, split, tmp_path, batch_size=5).with_format("numpy")

    assert len(cache) == len(split)
    assert cache.features[POOLED_COLUMN].shape == (model.config.num_hidden_states, 32)
    np.testing.assert_array_equal(cache["label"], np.asarray(split["label"]))
    extractor = model.feature_extractor()
    for i in (0, len(split) // 2, len(split) - 1):
        inputs = extractor(split[i]["audio"]["array"], sampling_rate=16000, return_tensors="pt")
        with torch.no_grad():
            expected = model.pooled_layer_states(inputs["input_values"], inputs.get("attention_mask"))[0]
        np.testing.assert_allclose(cache[i][POOLED_COLUMN], expected.numpy(), atol=1e-5)


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
    inputs = model.feature_extractor()(split[2]["audio"]["array"], sampling_rate=16000, return_tensors="pt")
    with torch.no_grad():
        states = model.backbone(inputs["input_values"], output_hidden_states=True).hidden_states
    np.testing.assert_allclose(frames[2].astype(np.float32), torch.cat(states).numpy(), rtol=2e-3, atol=2e-3)

    with pytest.raises(ValueError, match="max_bytes"):
        build_frame_cache(model, split.select(range(5)), tmp_path, max_bytes=estimate // 2)
    with torch.no_grad():
        model.backbone.feature_projection.projection.bias += 1.0
    build_frame_cache(model, split, tmp_path)
    assert len(cache_dirs(tmp_path, "frames")) == 2

"""Shared test helpers: tiny random backbones of every family and generated sung tones."""

import os

# before numpy (its BLAS reads OMP_NUM_THREADS when it loads) and torch
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
if os.environ.get("PYTEST_XDIST_WORKER"):  # one intra-op thread per worker: workers x threads = cores, not more
    os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402


def pytest_collection_modifyitems(config, items):
    """Under pytest-xdist (`--dist loadgroup`, scripts/test.sh) each test file is one group, run by one worker, so
    its module-scoped fixtures (trained models, prepared corpora) are built once; files marked with an
    `xdist_group` of their own (`demo_runs.DEMO_GROUP`) run together on one worker."""
    for item in items:
        if item.get_closest_marker("xdist_group") is None:
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::")[0]))


FAMILIES = ["wav2vec2", "wavlm", "hubert", "data2vec-audio"]
SR = 16000


def sung_tone(f0=220.0, seconds=1.0, sr=SR, vibrato_hz=5.5, vibrato_cents=30.0, seed=0) -> np.ndarray:
    """A short harmonic tone with vibrato and a little breath noise (float32, peak ~0.5)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    inst_f0 = f0 * 2 ** (vibrato_cents / 1200 * np.sin(2 * np.pi * vibrato_hz * t))
    phase = 2 * np.pi * np.cumsum(inst_f0) / sr
    wave = sum(np.sin(k * phase) / k for k in range(1, 8))
    wave = wave + 0.02 * rng.standard_normal(len(t))
    return (0.5 * wave / np.abs(wave).max()).astype(np.float32)


@pytest.fixture
def tone():
    return sung_tone


@pytest.fixture(scope="module")
def transcriber(tmp_path_factory):
    """(tiny random transcription model, its saved folder); onsets fire often, so it still gives notes."""
    import torch

    from svu.modeling_svu import SVUForNoteTranscription

    torch.manual_seed(0)
    model = SVUForNoteTranscription.from_backbone("tiny-wav2vec2").eval()
    with torch.no_grad():
        model.head.bias[0] += 3.0
    folder = tmp_path_factory.mktemp("transcriber")
    model.save_pretrained(folder)
    return model, folder

"""Shared test helpers: tiny random backbones of every family and generated sung tones."""

import os
import sys

# before numpy (its BLAS reads OMP_NUM_THREADS when it loads) and torch
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
if os.environ.get("PYTEST_XDIST_WORKER"):  # one intra-op thread per worker: workers x threads = cores, not more
    os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402


# pytest-xdist groups that take longest (measured on this machine, longest first, those over 6 s): they start first,
# so that no worker is left with a long group while the other has nothing to do; every other group follows, in file
# order.
LONGEST_GROUPS = [
    "demo_runs", "test_benchmarks.py", "test_data_folder.py", "test_published_backbones.py",
    "test_train_streaming.py", "test_reliability_training.py", "test_train.py", "test_install.py",
    "test_space_browser.py", "test_cli_catalogue.py", "test_reliability_audio.py", "test_model_rate.py",
    "test_train_dataset_name.py", "test_feature_cache.py", "test_speed_pruning.py", "test_transcription_long_audio.py",
    "test_train_protocol.py", "test_speed_engines.py", "test_transcription_interfaces.py", "test_train_report_to.py",
    "test_pitch_interfaces.py", "test_remote_code.py", "test_hub_export.py", "test_data_mir_st500.py", "test_tasks.py",
    "test_train_validation.py", "test_data_cli.py", "test_default_export.py", "test_data_parallel.py",
    "test_cli_classify.py", "test_pitch_peers.py", "test_remote_code_closure.py",
]


def pytest_configure(config):
    if hasattr(config.option, "loadscopereorder"):  # xdist would order groups by their number of tests
        config.option.loadscopereorder = False


def _group(item) -> str:
    return item.get_closest_marker("xdist_group").args[0]


def _rank(item) -> int:
    name = _group(item).split("/")[-1]
    return LONGEST_GROUPS.index(name) if name in LONGEST_GROUPS else len(LONGEST_GROUPS)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    """Under pytest-xdist (`--dist loadgroup`, scripts/test.sh) each test file is one group, run by one worker, so
    its module-scoped fixtures (trained models, prepared corpora) are built once; tests marked with an
    `xdist_group` of their own (`demo_runs.DEMO_GROUP`) run together on one worker. xdist hands out the groups
    in the order of their first test: the longest first (`LONGEST_GROUPS`).

    xdist's scheduler reads a test's group from a `@group` suffix of its node id, which its own collection hook
    adds before this one runs (so not for the groups added here): the suffix is added here, last, where it is
    missing. (pytest 9.2 computes node ids, so neither xdist 3.8 nor this can set them: pyproject pins pytest < 9.2.)"""
    grouping = os.environ.get("PYTEST_XDIST_WORKER") and getattr(config.option, "loadgroup", False)
    for item in items:
        if item.get_closest_marker("xdist_group") is None:
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::")[0]))
        if grouping and not item.nodeid.endswith(f"@{_group(item)}"):
            item._nodeid = f"{item.nodeid}@{_group(item)}"
    items.sort(key=_rank)


@pytest.fixture(autouse=True)
def fresh_accelerator_state():
    """Accelerate's state is one per process: a test that builds an `Accelerator` in process (e.g. `run.main`) must
    not decide the mixed precision of the next test on this worker."""
    yield
    if "accelerate.state" in sys.modules:
        from in_process import reset_accelerate_state

        reset_accelerate_state()


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

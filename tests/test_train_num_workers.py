"""`num_workers: auto` (the default): in-process loading on tiny demo runs, a share of the cores otherwise."""

import os

import pytest

from svu.train.config import TrainConfig, load_config
from svu.train.data import AUTO_WORKERS_MIN_ROWS, resolve_num_workers


def test_auto_is_the_default_and_resolves_by_run_size(monkeypatch):
    assert TrainConfig().num_workers == "auto" and load_config(overrides=["--num_workers", "3"]).num_workers == 3
    assert resolve_num_workers("auto", "tiny-wav2vec2", 10**6) == 0  # demo backbone
    assert resolve_num_workers("auto", "wav2vec2", AUTO_WORKERS_MIN_ROWS - 1) == 0  # small dataset
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(16)))
    assert resolve_num_workers("auto", "wav2vec2", 10**5) == 8  # capped
    assert resolve_num_workers("auto", "wav2vec2", 10**5, num_processes=4) == 3  # 4 cores each, 1 for the loop
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
    assert resolve_num_workers("auto", "wavlm", 10**5) == 1
    assert resolve_num_workers(2, "tiny-wav2vec2", 10) == 2  # an explicit number is kept


def test_bad_num_workers_is_one_line():
    with pytest.raises(ValueError, match="num_workers='many' must be an integer >= 0 or auto"):
        load_config(overrides=["--num_workers", "many"])

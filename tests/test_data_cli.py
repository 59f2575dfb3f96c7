"""`svu data prepare` as a real subprocess: summary table, loadable folder, offline --push-to-hub,
bad roots as one line; caching by fingerprint; the Parquet folder it would push loads back."""

import os
import subprocess
import sys

import datasets
import yaml
import pytest

from svu.dataset_scripts.hub import stage_for_hub
from svu.dataset_scripts.prepare import load_prepared, prepare

OFFLINE = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}


def svu(*args):
    return subprocess.run([sys.executable, "-m", "svu", *args], capture_output=True, text=True, env=OFFLINE, timeout=300)


def test_cli_prepare_table_and_offline_push(tmp_path):
    out = tmp_path / "tech"
    result = svu("data", "prepare", "synthetic", "--task", "technique", "--output", str(out), "--seed", "3",
                 "--option", "num_singers=3", "--option", "clip_seconds=3", "--push-to-hub", "someone/svu-test")
    lines = result.stdout.splitlines()
    assert lines[0] == "synthetic (technique, 3 s chunks)"
    assert lines[1] == "files: 18 found, 18 used, 0 skipped"
    assert lines[2].split() == ["train", "validation", "test"]
    assert lines[3].split() == ["straight", "1", "1", "1"]
    assert "total chunks" in result.stdout and "class weights (1/n_c^0.2, train): straight=1.000" in result.stdout
    assert "singers: 1 train, 1 validation, 1 test (validation: ours); vocal separation: none" in lines
    # the upload is the only step that needs the network: one line, exit 1, the folder is kept
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("svu data prepare: upload to someone/svu-test failed: OfflineModeIsEnabled")
    dataset = datasets.load_from_disk(str(out))
    assert {split: len(part) for split, part in dataset.items()} == {"train": 6, "validation": 6, "test": 6}
    assert load_prepared(out)[1]["options"]["seed"] == 3


def test_cli_bad_root_is_one_line(tmp_path):
    result = svu("data", "prepare", "vocalset", "--data-dir", str(tmp_path), "--output", str(tmp_path / "o"))
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "no VocalSet layout found under" in result.stderr
    assert "Traceback" not in result.stderr


def test_rerun_is_cached_and_hub_folder_loads_back(tmp_path):
    options = dict(task="singer_id", num_singers=3, recordings_per_singer=3, clip_seconds=5.0)
    prepare("synthetic", tmp_path / "p", **options)
    meta_file = tmp_path / "p" / "svu_meta.json"
    stamp = meta_file.stat().st_mtime_ns
    prepare("synthetic", tmp_path / "p", **options)
    assert meta_file.stat().st_mtime_ns == stamp  # same fingerprint: nothing rebuilt
    prepare("synthetic", tmp_path / "p", seed=1, **options)
    assert meta_file.stat().st_mtime_ns != stamp  # other seed: rebuilt

    folder = stage_for_hub(tmp_path / "p", tmp_path / "hub")
    assert sorted(p.name for p in (folder / "data").iterdir()) == [
        "test-00000-of-00001.parquet", "train-00000-of-00001.parquet", "validation-00000-of-00001.parquet"]
    reloaded = datasets.load_dataset(str(folder), cache_dir=str(tmp_path / "cache"))
    original, meta = load_prepared(tmp_path / "p")
    assert set(reloaded) == {"train", "validation", "test"}
    assert reloaded["train"].features == original["train"].features
    assert reloaded["test"]["clip_id"] == original["test"]["clip_id"]
    assert reloaded["test"][0]["audio"]["array"] == pytest.approx(original["test"][0]["audio"]["array"])
    assert meta["corpus"] in (folder / "README.md").read_text()


def test_staged_dataset_card_has_licence_citation_and_splits(tmp_path):
    from svu.dataset_scripts.vocalset import BIBTEX as VOCALSET
    from svu.model_cards.citations import PAPER

    from svu.dataset_scripts.hub import dataset_card, write_card

    prepare("synthetic", tmp_path / "p", task="technique", num_singers=3, clip_seconds=3)
    card_path = write_card(tmp_path / "p")
    card = yaml.safe_load(card_path.read_text().split("---\n")[1])
    assert card["license"] == "apache-2.0" and card["task_categories"] == ["audio-classification"]
    assert [f["split"] for f in card["configs"][0]["data_files"]] == ["train", "validation", "test"]
    assert f"```bibtex\n{PAPER}\n```" in card_path.read_text()
    _, meta = load_prepared(tmp_path / "p")
    vocalset = dataset_card({**meta, "corpus": "vocalset"}, {"train": 10, "test": 4})
    assert vocalset.data.license == "cc-by-4.0" and f"```bibtex\n{VOCALSET}\n```" in vocalset.text
    assert "| test | 4 |" in vocalset.text and "silence trimmed" in vocalset.text


def fake_artist20(tmp_path):
    """A prepared synthetic singer-ID folder relabelled as Artist20 (the card and the push read `corpus`)."""
    import json

    prepare("synthetic", tmp_path / "a20", task="singer_id", num_singers=3, recordings_per_singer=3, clip_seconds=5.0)
    meta_file = tmp_path / "a20" / "svu_meta.json"
    meta_file.write_text(json.dumps({**json.loads(meta_file.read_text()), "corpus": "artist20"}))
    return tmp_path / "a20"


def test_public_push_of_artist20_is_refused_without_public(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from huggingface_hub import HfApi

    from svu.dataset_scripts.hub import push_prepared

    folder = fake_artist20(tmp_path)
    calls = []
    monkeypatch.setattr(HfApi, "repo_info", lambda self, repo_id, **kw: SimpleNamespace(private=False))
    monkeypatch.setattr(HfApi, "create_repo", lambda self, repo_id, **kw: calls.append(("create", kw)))
    with pytest.raises(ValueError, match="refusing to upload Artist20 to the public repo me/a20: Artist20 is copyrighted"):
        push_prepared(folder, "me/a20")
    assert calls == []  # nothing created or uploaded
    card = yaml.safe_load((folder / "README.md").read_text().split("---\n")[1])  # staged before the check
    assert card["license"] == "other" and "ellis2007artist20" in (folder / "README.md").read_text()


def test_cli_push_is_private_by_default_and_offline_is_one_line(tmp_path):
    folder = fake_artist20(tmp_path)
    # a re-run reuses the folder (same fingerprint); the upload is the only step needing the network
    result = svu("data", "prepare", "synthetic", "--task", "singer_id", "--output", str(folder), "--option", "num_singers=3",
                 "--option", "recordings_per_singer=3", "--option", "clip_seconds=5.0", "--push-to-hub", "me/a20")
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("svu data prepare: upload to me/a20 failed: OfflineModeIsEnabled")
    assert "Artist20" in (folder / "README.md").read_text()

"""`svu data prepare --num-proc N`: the files are decoded / synthesised on N processes, and the prepared dataset
(rows, order, audio bytes, report, fingerprint) is the one N = 1 gives."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from svu.dataset_scripts.parallel import ordered_map, resolve_num_proc
from svu.dataset_scripts.prepare import load_prepared, prepare
from svu.modeling_svu.audio_io import TruncatedAudioWarning
from test_data_artist20 import ALBUMS, ARTISTS, make_tree
from test_data_vocalset import quirky_tree

REPO_ROOT = Path(__file__).resolve().parents[1]


def assert_same_prepared(a, b):
    (data_a, meta_a), (data_b, meta_b) = load_prepared(a), load_prepared(b)
    assert meta_a == meta_b  # fingerprint, report (skips with reasons), class weights, chunk counts
    assert list(data_a) == list(data_b)
    for split in data_a:
        assert data_a[split].data.table.equals(data_b[split].data.table), split
    return data_a, meta_a


def test_vocalset_on_two_processes_equals_one_process(tmp_path):
    quirky_tree(tmp_path / "VocalSet", "FULL")
    for n in (1, 2):
        prepare("vocalset", tmp_path / f"out{n}", data_dir=tmp_path / "VocalSet", num_proc=n)
    data, meta = assert_same_prepared(tmp_path / "out1", tmp_path / "out2")
    assert sum(len(part) for part in data.values()) > 5
    assert meta["report"]["skipped"]["unreadable audio"] == ["female1/long_tones/straight/f1_broken"]


def test_artist20_stems_and_a_truncated_stem_on_two_processes(tmp_path):
    """separation=stems:<dir> with N = 2: stems looked up and missing ones counted as at N = 1; a truncated stem,
    decoded in a worker, is used with its warning shown here and kept in the report."""
    from data_fixtures import write_mp3, write_wav

    tree = make_tree(tmp_path / "artist20")
    stems = tmp_path / "stems"
    for artist in ARTISTS:
        for album in ALBUMS[:5]:  # Album_F has no stems
            write_wav(stems / artist / album / "01-Song.wav", 5.2, f0=110.0)
    full = write_mp3(tmp_path / "full.mp3", 6.0, f0=110.0)
    cut = stems / "beatles" / "Album_A" / "01-Song.mp3"
    (stems / "beatles" / "Album_A" / "01-Song.wav").unlink()
    cut.write_bytes(full.read_bytes()[: len(full.read_bytes()) * 4 // 5])  # 80 %: one full 5 s chunk is left
    for n in (1, 2):
        with pytest.warns(TruncatedAudioWarning, match="looks truncated"):
            prepare("artist20", tmp_path / f"out{n}", data_dir=tree, separation=f"stems:{stems}", num_proc=n)
    _, meta = assert_same_prepared(tmp_path / "out1", tmp_path / "out2")
    assert sorted(meta["report"]["skipped"][f"no separated vocal stem under {stems}"]) == [
        "aerosmith/Album_A/03-Bonus", "aerosmith/Album_F/01-Song", "beatles/Album_A/02-Silence",
        "beatles/Album_B/02-Broken", "beatles/Album_F/01-Song"]
    warnings = [m for m in meta["report"]["messages"] if m.startswith("warning:")]
    assert len(warnings) == 1 and str(cut) in warnings[0], meta["report"]["messages"]
    assert meta["report"]["files_used"] == 10


@pytest.mark.parametrize("task,options", [
    ("technique", {"num_singers": 3, "clip_seconds": 3.0, "techniques": ["straight", "breathy"]}),
    ("singer_id", {"num_singers": 2, "recordings_per_singer": 3, "clip_seconds": 5.0}),
])
def test_synthetic_on_two_processes_equals_one_process(tmp_path, task, options):
    for n in (1, 2):
        prepare("synthetic", tmp_path / f"out{n}", task=task, num_proc=n, **options)
    assert_same_prepared(tmp_path / "out1", tmp_path / "out2")


def test_synthetic_cli_num_proc_2_equals_num_proc_1(tmp_path):
    task, options = "transcription", ["--option", "num_songs=3", "--option", "song_seconds=6"]
    prepare("synthetic", tmp_path / "out1", task=task, num_songs=3, song_seconds=6)
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "HF_DATASETS_OFFLINE": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "svu", "data", "prepare", "synthetic", "--task", task, *options,
         "--output", str(tmp_path / "out2"), "--num-proc", "2"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    # datasets' own bars only (one per split and the save), none from the worker processes
    bars = {line.split(":")[0] for line in proc.stderr.replace("\r", "\n").splitlines() if line.strip()}
    assert {bar for bar in bars if not bar.startswith("Saving the dataset")} == {
        f"Generating {split} split" for split in ("train", "validation", "test")}, bars
    assert_same_prepared(tmp_path / "out1", tmp_path / "out2")


def square(x):
    return x * x


def test_ordered_map_keeps_the_order_and_bad_num_proc_is_one_line():
    assert list(ordered_map(square, range(20), 2)) == [x * x for x in range(20)]
    assert resolve_num_proc("auto") == len(os.sched_getaffinity(0)) and resolve_num_proc("3") == 3
    with pytest.raises(ValueError, match="num_proc='two' must be a whole number of processes >= 1, or auto"):
        resolve_num_proc("two")

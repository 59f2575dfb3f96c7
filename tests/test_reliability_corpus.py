"""Broken corpora: missing, unreadable, zero-length and undecodable files, bad annotation rows, unknown song
ids. Each is skipped and reported by name and reason; preparation fails (one line, exit 2) only when nothing
usable remains."""

import contextlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from data_fixtures import tone, write_mp3, write_wav
from svu.dataset_scripts.audio import SAMPLING_RATE as STORED_RATE, load_audio
from svu.dataset_scripts.prepare import load_prepared, prepare

OFFLINE = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
NOBODY = 65534


@contextlib.contextmanager
def as_nobody():
    """Drop the effective uid so that file permissions apply (root reads a chmod-000 file)."""
    if os.geteuid() != 0:
        yield
        return
    os.seteuid(NOBODY)
    try:
        yield
    finally:
        os.seteuid(0)


@pytest.fixture
def world_dir():
    """A temp folder that the `nobody` user can traverse and write (pytest's tmp_path is root-only)."""
    with tempfile.TemporaryDirectory(prefix="svu-reliability-") as folder:
        os.chmod(folder, 0o777)
        yield Path(folder)


def vocalset_tree(root: Path) -> Path:
    """Train singer female1 (3 good + 5 broken files), validation female9, test female2 (one good file each)."""
    base = root / "FULL"
    good = [("female1", "belt", "f1_belt_a.wav"), ("female1", "vibrato", "f1_vibrato_b.wav"),
            ("female9", "belt", "f9_belt_a.wav"), ("female2", "belt", "f2_belt_a.wav")]  # fmt: skip
    for singer, technique, name in good:
        write_wav(base / singer / "arpeggios" / technique / name, 3.5)
    folder = base / "female1" / "scales" / "straight"
    folder.mkdir(parents=True)
    # six channels of the same tone at the stored rate: the builder averages channels (no resampling), so the chunk
    # equals the mono tone
    sf.write(folder / "f1_straight_six.wav", tone(3.5, sr=STORED_RATE, channels=6), STORED_RATE)
    (folder / "f1_straight_empty.wav").write_bytes(b"")
    (folder / "f1_straight_text.wav").write_text("not audio\n" * 50)
    (folder / "f1_straight_missing.wav").symlink_to(folder / "deleted_long_ago.wav")
    write_wav(folder / "f1_straight_locked.wav", 3.5)
    os.chmod(folder / "f1_straight_locked.wav", 0)
    sf.write(folder / "f1_straight_short.wav", tone(0.01), 16000)  # 10 ms
    sf.write(folder / "f1_straight_8k.wav", tone(3.5, sr=8000), 8000, subtype="PCM_U8")
    sf.write(folder / "f1_straight_96k.wav", tone(3.5, sr=96000), 96000, subtype="PCM_24")
    nan = tone(3.5)
    nan[100] = np.nan
    sf.write(folder / "f1_straight_nan.wav", nan, 16000, subtype="FLOAT")
    for path in [root, *root.rglob("*")]:
        if path.is_dir():
            os.chmod(path, 0o777)
    return root


def test_vocalset_skips_and_names_every_broken_file(world_dir):
    data = vocalset_tree(world_dir / "vocalset")
    load_audio(data / "FULL" / "female2" / "arpeggios" / "belt" / "f2_belt_a.wav")  # load the decoder as root
    with as_nobody():
        dataset = prepare("vocalset", world_dir / "out", data_dir=data)
    _, meta = load_prepared(world_dir / "out")
    report = meta["report"]
    clip = "female1/scales/straight/f1_straight_"
    assert report["skipped"] == {
        "empty file (0 bytes)": [clip + "empty"],
        "missing file": [clip + "missing"],
        "NaN or infinite samples": [clip + "nan"],
        "not readable (permission denied)": [clip + "locked"],
        "shorter than half a chunk (1.5 s) after preprocessing": [clip + "short"],
        "unreadable audio": [clip + "text"],
    }
    assert report["files_found"] == 13 and report["files_used"] == 7 and report["files_skipped"] == 6
    messages = "\n".join(report["messages"])
    assert "f1_straight_locked.wav: not readable (permission denied)" in messages
    assert "f1_straight_text.wav: cannot decode audio: Could not open input file" in messages  # the decoder's reason, one line
    assert "f1_straight_missing.wav: no such file (a broken symbolic link)" in messages
    assert "f1_straight_nan.wav: NaN or infinite samples (first at 0.006 s)" in messages
    chunks = {row["clip_id"].rsplit("_", 1)[1]: row["audio"]["array"] for row in dataset["train"]}
    stored = tone(3.0, sr=STORED_RATE)
    np.testing.assert_allclose(chunks["six"], stored, atol=1 / 2**15)  # 16-bit storage
    # resampled to the stored rate (8-bit source: its quantisation step 1/128); the first 16 samples are the filter's edge
    np.testing.assert_allclose(chunks["96k"][16:], stored[16:], atol=2e-3)
    np.testing.assert_allclose(chunks["8k"][16:], stored[16:], atol=1 / 64)  # 8-bit noise, interpolated


def test_artist20_listed_track_without_its_file_is_reported(tmp_path):
    root = tmp_path / "artist20"
    lists = {"trn": ["singer/A/01-Song", "singer/A/02-Gone"], "val": ["singer/B/01-Song"], "tst": ["singer/C/01-Song"]}
    for album in "ABC":
        write_mp3(root / "mp3s-32k" / "singer" / album / "01-Song.mp3", 5.2)
    (root / "mp3s-32k" / "singer" / "A" / "03-Empty.mp3").write_bytes(b"")
    lists["trn"].append("singer/A/03-Empty")
    (root / "lists").mkdir()
    for short, lines in lists.items():
        (root / "lists" / f"a20-{short}-tracks.list").write_text("\n".join(lines) + "\n")
    dataset = prepare("artist20", tmp_path / "out", data_dir=root, split="official")
    report = load_prepared(tmp_path / "out")[1]["report"]
    assert report["skipped"] == {
        "empty file (0 bytes)": ["singer/A/03-Empty"],
        "missing file (in the official lists, no mp3)": ["singer/A/02-Gone"],
    }
    assert report["files_found"] == 5 and report["files_used"] == 3
    assert {split: len(part) for split, part in dataset.items()} == {"train": 1, "validation": 1, "test": 1}


def mir_tree(root: Path, with_audio: bool = True) -> Path:
    notes = {
        "1": [[0.5, 1.0, 60], [1.0, 0.8, 61], [2.0, 2.0, 62], [-0.5, 0.3, 63], [3.0, 3.5, 200],
              [3.5, 4.0, -1], [4.0], "x", [1.5, 1.9, 64]],
        "2": [[0.2, 0.9, 55]],
        "abc": [[0.5, 1.0, 60]],
        "777": [[0.5, 1.0, 60]],
    }  # fmt: skip
    root.mkdir(parents=True)
    (root / "MIR-ST500_corrected.json").write_text(json.dumps(notes))
    if with_audio:
        write_wav(root / "1" / "Vocal.wav", 5.0)
    (root / "2").mkdir()
    (root / "2" / "Vocal.wav").write_bytes(b"")
    return root


def test_mir_st500_bad_rows_and_unknown_ids_are_counted_and_named(tmp_path):
    dataset = prepare("mir_st500", tmp_path / "out", data_dir=mir_tree(tmp_path / "mir"))
    _, meta = load_prepared(tmp_path / "out")
    report = meta["report"]
    assert report["skipped"] == {
        "empty file (0 bytes)": ["2"],
        "unknown song id (not 1-500)": ["777", "abc"],
    }
    dropped = [m for m in report["messages"] if "notes dropped" in m]
    assert dropped == [
        "2 notes dropped (malformed row (expected [onset, offset, pitch] numbers)): 1#6, 1#7",
        "1 notes dropped (negative onset): 1#3",
        "2 notes dropped (offset <= onset (zero or negative duration)): 1#1, 1#2",
        "2 notes dropped (pitch outside MIDI 0-127): 1#4, 1#5",
    ]
    (row,) = dataset["train"].remove_columns("audio")
    assert [(n["onset"], n["offset"], n["pitch"]) for n in row["notes"]] == [
        (0.5, 1.0, 60.0), (pytest.approx(1.5), pytest.approx(1.9), 64.0)]  # fmt: skip


def test_nothing_usable_fails_in_one_line_and_saves_nothing(tmp_path):
    data = mir_tree(tmp_path / "mir", with_audio=False)
    with pytest.raises(ValueError) as info:
        prepare("mir_st500", tmp_path / "out", data_dir=data)
    message = str(info.value)
    assert message.startswith("nothing usable in mir_st500 corpus") and "0 of 4 files gave examples" in message
    assert "1 empty file (0 bytes)" in message and "1 no audio file (1/Vocal.wav)" in message
    assert "2 unknown song id (not 1-500)" in message and "nothing was saved" in message
    assert not (tmp_path / "out").exists()
    result = subprocess.run([sys.executable, "-m", "svu", "data", "prepare", "mir_st500", "--data-dir", str(data),
                             "--output", str(tmp_path / "out")], capture_output=True, text=True, env=OFFLINE,
                            timeout=300)  # fmt: skip
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("svu data prepare:")]
    assert errors == [f"svu data prepare: {message}"] and "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()

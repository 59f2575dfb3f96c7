"""vocadito builder on a fake tree in the corpus' real layout (metadata table, 44.1 kHz mono excerpts, CRLF
`time_s,f0_hz` F0 files on a 256-sample hop), missing and corrupt files reported and counted, the singer split
without leakage, and the real vocadito fixture (tests/data/singing_examples/vocadito, CC BY 4.0) parsed and checked
against its own audio."""

import shutil

import numpy as np
import pytest
import soundfile as sf
import yaml

from data_fixtures import TEST_DATA, estimate_f0, write_corrupt
from svu.dataset_scripts.audio import SAMPLING_RATE as STORED
from svu.dataset_scripts.prepare import load_prepared, prepare
from svu.dataset_scripts.vocadito import load_f0

SR = 44100
HOP = 256 / SR  # vocadito's F0 hop
REAL = TEST_DATA / "singing_examples" / "vocadito"
METADATA = "track_id,singer_id,average_pitch,language\r\n"


def write_excerpt(root, track: int, seconds: float, f0_hz: float, voiced_from: float = 0.5):
    """``Audio/vocadito_<track>.wav`` (a tone at ``f0_hz`` from ``voiced_from``) and its F0 file, CRLF lines."""
    t = np.arange(int(round(seconds * SR))) / SR
    wave = np.where(t >= voiced_from, 0.3 * np.sin(2 * np.pi * f0_hz * t), 0.0)
    (root / "Audio").mkdir(parents=True, exist_ok=True)
    sf.write(root / "Audio" / f"vocadito_{track}.wav", wave, SR, subtype="PCM_16")
    times = np.arange(int(seconds / HOP) + 1) * HOP
    (root / "Annotations" / "F0").mkdir(parents=True, exist_ok=True)
    lines = "".join(f"{float(time)!r},{f0_hz if time >= voiced_from else 0.0}\r\n" for time in times)
    (root / "Annotations" / "F0" / f"vocadito_{track}_f0.csv").write_text(lines, newline="")


def fake_tree(base):
    root = base / "vocadito"  # the archive's own top folder
    root.mkdir(parents=True)
    singers = {1: "S1", 2: "S2", 3: "S1", 4: "S3", 15: "S12", 26: "S21", 5: "S4", 6: "S5", 7: "S6", 8: "S1"}
    rows = "".join(f"{track},{singer},60,English\r\n" for track, singer in singers.items())
    (root / "vocadito_metadata.csv").write_text(METADATA + rows, newline="")
    write_excerpt(root, 1, 3.0, 220.0)  # S1: test
    write_excerpt(root, 3, 7.6, 330.0)  # S1: test, 2 chunks (5 s + 2.6 s)
    write_excerpt(root, 2, 2.0, 196.0)  # S2: train
    write_excerpt(root, 4, 2.0, 147.0)  # S3: train
    write_excerpt(root, 15, 2.0, 262.0)  # S12: validation
    write_excerpt(root, 26, 2.0, 175.0)  # S21: test
    # 5: listed, no audio at all
    write_excerpt(root, 6, 2.0, 200.0)
    (root / "Annotations" / "F0" / "vocadito_6_f0.csv").unlink()  # audio without its F0 file
    write_excerpt(root, 7, 2.0, 200.0)
    write_corrupt(root / "Audio" / "vocadito_7.wav")  # corrupt audio
    write_excerpt(root, 8, 2.0, 200.0)
    (root / "Annotations" / "F0" / "vocadito_8_f0.csv").write_text("0.0,0.0\r\n0.0058,abc\r\n", newline="")
    write_excerpt(root, 41, 2.0, 200.0)  # audio not in the metadata table
    return base


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return fake_tree(tmp_path_factory.mktemp("vocadito") / "data")


def test_singer_split_rows_and_values(tree, tmp_path):
    dataset = prepare("vocadito", tmp_path / "out", data_dir=tree, split="singers")
    _, meta = load_prepared(tmp_path / "out")
    assert meta["task"] == "pitch" and meta["corpus"] == "vocadito"
    listing = {split: [(r["song_id"], r["singer"], r["chunk_start"]) for r in dataset[split].remove_columns("audio")]
               for split in dataset}
    assert listing == {
        "train": [("vocadito_2", "S2", 0.0), ("vocadito_4", "S3", 0.0)],
        "validation": [("vocadito_15", "S12", 0.0)],
        "test": [("vocadito_1", "S1", 0.0), ("vocadito_3", "S1", 0.0), ("vocadito_3", "S1", 5.0), ("vocadito_26", "S21", 0.0)],
    }
    first = dataset["test"][0]
    times, f0 = load_f0(tree / "vocadito" / "Annotations" / "F0" / "vocadito_1_f0.csv")
    np.testing.assert_allclose(first["f0_times"], times, atol=1e-6)  # one chunk: times as written, from 0 s
    np.testing.assert_allclose(first["f0_hz"], f0)
    assert first["f0_hz"][0] == 0.0 and first["f0_hz"][-1] == 220.0
    voiced = int(np.ceil(0.5 / HOP))
    assert first["f0_hz"][voiced - 1] == 0.0 and first["f0_hz"][voiced] == 220.0
    second = dataset["test"][2]  # vocadito_3 from 5 s: frames from 4.95 s, relative
    assert second["f0_times"][0] == pytest.approx(np.ceil(4.95 / HOP) * HOP - 5.0, abs=1e-5)
    assert len(second["audio"]["array"]) == int(2.6 * STORED)
    assert estimate_f0(second["audio"]["array"][:6000], STORED) == pytest.approx(330.0, rel=0.025)  # 1-sample lag resolution
    assert estimate_f0(dataset["validation"][0]["audio"]["array"][12000:18000], STORED) == pytest.approx(262.0, rel=0.01)
    singers = {split: set(dataset[split]["singer"]) for split in dataset}
    assert not (singers["train"] & singers["test"] or singers["train"] & singers["validation"]
                or singers["validation"] & singers["test"])
    assert meta["report"]["groups"] == {"what": "song", "train": 2, "validation": 1, "test": 3}


def test_missing_and_corrupt_files_reported(tree, tmp_path):
    dataset = prepare("vocadito", tmp_path / "out", data_dir=tree)  # default: every excerpt is test data
    assert [len(dataset[s]) for s in ("train", "validation", "test")] == [0, 0, 7]
    report = load_prepared(tmp_path / "out")[1]["report"]
    assert report["skipped"] == {
        "missing F0 annotation": ["vocadito_6"],
        "missing audio file": ["vocadito_5"],
        "not listed in vocadito_metadata.csv": ["vocadito_41"],
        "unreadable F0 annotation": ["vocadito_8"],
        "unreadable audio": ["vocadito_7"],
    }
    assert report["files_found"] == 11 and report["files_used"] == 6 and report["files_skipped"] == 5
    messages = "\n".join(report["messages"])
    root = tree / "vocadito"
    assert f"{root / 'Audio' / 'vocadito_5.wav'}: no such file (listed in vocadito_metadata.csv)" in messages
    assert f"{root / 'Annotations' / 'F0' / 'vocadito_6_f0.csv'}: no such file" in messages
    assert f"{root / 'Annotations' / 'F0' / 'vocadito_8_f0.csv'}: line 2 is '0.0058,abc', expected time_s,f0_hz" in messages
    assert f"{root / 'Audio' / 'vocadito_7.wav'}: cannot decode audio" in messages
    assert "7 of 10 listed excerpts have an audio file and a usable F0 annotation" in messages


def test_bad_root_and_bad_metadata_are_one_line(tmp_path):
    with pytest.raises(ValueError, match="no vocadito_metadata.csv under .*; expected <root>/vocadito_metadata.csv"):
        prepare("vocadito", tmp_path / "o", data_dir=tmp_path)
    (tmp_path / "vocadito_metadata.csv").write_text("id,singer\n1,S1\n")
    with pytest.raises(ValueError, match="not the vocadito metadata table \\(no track_id, singer_id column"):
        prepare("vocadito", tmp_path / "o", data_dir=tmp_path)


def test_real_fixture_parses_and_matches_its_audio(tmp_path):
    shutil.copytree(REAL, tmp_path / "vocadito")  # the real files, in the real layout
    dataset = prepare("vocadito", tmp_path / "out", data_dir=tmp_path / "vocadito")
    report = load_prepared(tmp_path / "out")[1]["report"]
    assert report["files_used"] == 1 and len(report["skipped"]["missing audio file"]) == 39  # the table lists all 40
    (row,) = dataset["test"]
    assert (row["song_id"], row["singer"], row["chunk_start"]) == ("vocadito_1", "S1", 0.0)
    audio, times, f0 = row["audio"]["array"], np.array(row["f0_times"]), np.array(row["f0_hz"])
    assert len(audio) == 6 * STORED and len(times) == 1034  # 6 s of audio: one chunk (a 1 s rest joins it)
    np.testing.assert_allclose(np.diff(times), HOP, atol=1e-5)
    assert times[0] == 0.0 and f0[0] == 0.0 and 107.0 <= f0[f0 > 0].min() and f0.max() <= 202.0
    assert times[np.flatnonzero(f0 > 0)[0]] == pytest.approx(0.6676, abs=1e-4)
    # the annotation describes this audio: autocorrelation F0 at every 25th voiced frame within 50 cents
    errors = []
    for i in np.flatnonzero(f0 > 0)[::25]:
        centre = int(round(times[i] * STORED))
        if centre + 960 <= len(audio):
            errors.append(1200 * np.log2(estimate_f0(audio[centre - 960 : centre + 960], STORED) / f0[i]))
    assert len(errors) == 30 and np.all(np.abs(errors) < 50) and np.median(np.abs(errors)) < 15


def test_dataset_card(tree, tmp_path):
    from svu.dataset_scripts.hub import write_card
    from svu.dataset_scripts.vocadito import BIBTEX as VOCADITO

    prepare("vocadito", tmp_path / "out", data_dir=tree, split="singers")
    text = write_card(tmp_path / "out").read_text()
    card = yaml.safe_load(text.split("---\n")[1])
    assert card["license"] == "cc-by-4.0" and "pitch" in card["tags"] and "vocadito" in card["tags"]
    assert f"```bibtex\n{VOCADITO}\n```" in text and "Source: https://zenodo.org/record/5578807" in text
    assert "| test | 4 |" in text and "decoded 44.1 -> 24 kHz mono, 5 s chunks" in text
    assert "- Labels: F0 in Hz per annotated frame (`f0_times`, `f0_hz`; 0 = unvoiced)" in text

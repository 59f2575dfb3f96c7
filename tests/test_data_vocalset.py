"""VocalSet builder on quirky fake trees (v1.1 and v1.2 layouts) written by the test."""

import pytest

from data_fixtures import write_corrupt, write_wav
from svu.dataset_scripts.audio import SAMPLING_RATE as STORED
from svu.dataset_scripts.prepare import load_prepared, prepare
from svu.dataset_scripts.vocalset import TECHNIQUES


def quirky_tree(root, layout="FULL"):
    base = root / layout
    files = {
        # (relative path, seconds): 3.3 s of tone between 0.5 s of silence -> trimmed to ~3.3 s -> 1 chunk
        "female1/long_tones/trill/f1_long_trill_a.wav": 3.3,
        "female1/long_tones/trillo/f1_long_trillo_a.wav": 3.3,
        "female1/long_tones/vibrado/f1_long_vibrato_a.wav": 3.3,  # misspelled folder
        "female1/long_tones/vibrado/f1_long_vibrato_a (1).wav": 3.3,  # duplicate
        "female1/excerpts/spoken/caro_mio.wav": 3.3,  # no singer prefix -> female1
        "female1/scales/belt/m3_scales_belt_a.wav": 3.3,  # male3's file in female1's folder -> test
        "female1/arpeggios/fast_forte/f1_arpeggios_fast_forte_a.wav": 3.3,  # not one of the 10
        "female2/long_tones/straight/f2_long_straight_a.wav": 7.3,  # test singer, 2 chunks
        "female9/long_tones/breathy/f9_long_breathy_a.wav": 3.3,  # validation singer
        "male11/scales/vocal_fry/m11_scales_fry (1).wav": 3.3,  # "(1)" without original: kept
        "female1/long_tones/straight/f1_short.wav": 1.0,  # < 1.5 s after trimming: no chunk
    }
    for relative, seconds in files.items():
        write_wav(base / relative, seconds, sr=44100, silence_edges=0.5)
    write_corrupt(base / "female1/long_tones/straight/f1_broken.wav")
    (base / "female1/.DS_Store").write_bytes(b"\0")
    (base / "female1/long_tones/trill/._f1_long_trill_a.wav").write_bytes(b"\0")
    write_wav(root / "__MACOSX" / layout / "female1/long_tones/trill/f1_long_trill_a.wav", 0.1)
    (base / "female1/notes.txt").write_text("readme")
    return root


@pytest.mark.parametrize("layout", ["FULL", "data_by_singer"])
def test_quirky_tree(tmp_path, layout):
    data_dir = quirky_tree(tmp_path / "VocalSet1-2", layout)
    dataset, meta = None, None
    prepare("vocalset", tmp_path / "out", data_dir=tmp_path)
    dataset, meta = load_prepared(tmp_path / "out")
    assert meta["label_names"] == list(TECHNIQUES) and meta["chunk_seconds"] == 3.0
    rows = {
        split: sorted((r["clip_id"].split("/", 1)[1], TECHNIQUES[r["label"]], r["singer"], r["chunk_index"])
                      for r in dataset[split].remove_columns("audio"))
        for split in dataset
    }
    assert rows["train"] == [
        ("excerpts/spoken/caro_mio", "spoken", "female1", 0),
        ("long_tones/trill/f1_long_trill_a", "trill", "female1", 0),
        ("long_tones/trillo/f1_long_trillo_a", "trillo", "female1", 0),
        ("long_tones/vibrado/f1_long_vibrato_a", "vibrato", "female1", 0),
    ]
    assert rows["validation"] == [
        ("long_tones/breathy/f9_long_breathy_a", "breathy", "female9", 0),
        ("scales/vocal_fry/m11_scales_fry (1)", "vocal_fry", "male11", 0),
    ]
    assert rows["test"] == [
        ("long_tones/straight/f2_long_straight_a", "straight", "female2", 0),
        ("long_tones/straight/f2_long_straight_a", "straight", "female2", 1),
        ("scales/belt/m3_scales_belt_a", "belt", "male3", 0),
    ]
    report = meta["report"]
    skipped = report["skipped"]
    assert skipped["duplicate copy ('name (1).wav' next to 'name.wav')"] == ["female1/long_tones/vibrado/f1_long_vibrato_a (1).wav"]
    assert skipped["technique folder not one of the 10 classes"] == ["female1/arpeggios/fast_forte/f1_arpeggios_fast_forte_a.wav"]
    assert skipped["unreadable audio"] == ["female1/long_tones/straight/f1_broken"]
    assert skipped["shorter than half a chunk (1.5 s) after preprocessing"] == ["female1/long_tones/straight/f1_short"]
    assert sorted(skipped["macOS metadata (.DS_Store, ._*, __MACOSX)"]) == ["female1/.DS_Store", "female1/long_tones/trill/._f1_long_trill_a.wav"]
    assert skipped["not a .wav file"] == ["female1/notes.txt"]
    assert report["files_found"] == 15 and report["files_used"] == 8 and report["files_skipped"] == 7
    assert any("m3_scales_belt_a" in line and "male3" in line for line in report["messages"])
    assert any("f1_broken" in line for line in report["messages"])
    # no singer in two splits, and the class weights come from the train counts (1 chunk each)
    singers = {split: {r[2] for r in rows[split]} for split in rows}
    assert not (singers["train"] & singers["test"]) and not (singers["validation"] & singers["test"])
    weights = dict(zip(meta["label_names"], meta["class_weights"]))
    assert weights["trill"] == 1.0 and weights["belt"] == 1.0  # belt absent from train -> 1.0
    audio = dataset["test"][0]["audio"]
    assert audio["sampling_rate"] == STORED and len(audio["array"]) == 3 * STORED


def test_wrong_root_is_one_line(tmp_path):
    (tmp_path / "something").mkdir()
    with pytest.raises(ValueError, match=r"no VocalSet layout found under .*expected a VocalSet folder: <root>/FULL/"):
        prepare("vocalset", tmp_path / "out", data_dir=tmp_path)


ALL_SINGERS = [f"female{i}" for i in range(1, 10)] + [f"male{i}" for i in range(1, 12)]


@pytest.mark.parametrize("validation, counts", [("none", (15, 0, 5)), ("ours", (13, 2, 5))])
def test_paper_split_trains_on_15_singers(tmp_path, validation, counts):
    """validation=none is the paper's data: all 15 non-test singers train; ours holds out female9 and male11."""
    for singer in ALL_SINGERS:
        prefix = ("f" if singer.startswith("female") else "m") + singer.lstrip("femal")
        write_wav(tmp_path / "FULL" / singer / "long_tones" / "straight" / f"{prefix}_long_straight_a.wav", 3.1, sr=16000)
    options = {"validation": validation} if validation == "none" else {}
    dataset = prepare("vocalset", tmp_path / "out", data_dir=tmp_path, **options)
    _, meta = load_prepared(tmp_path / "out")
    singers = {split: set(dataset[split]["singer"]) for split in dataset}
    assert tuple(len(singers[split]) for split in ("train", "validation", "test")) == counts
    assert singers["test"] == {"female2", "female8", "male3", "male5", "male10"}
    assert singers["train"] | singers["validation"] == set(ALL_SINGERS) - singers["test"]
    assert meta["validation"] == validation and meta["separation"] == "none"
    assert meta["report"]["groups"] == {"what": "singer", **dict(zip(("train", "validation", "test"), counts))}


def test_separation_of_a_solo_voice_corpus_is_one_line(tmp_path):
    write_wav(tmp_path / "FULL" / "female1" / "long_tones" / "straight" / "f1_a.wav", 3.1)
    with pytest.raises(ValueError, match=r"separation=htdemucs: vocalset holds solo voices; separation applies to"):
        prepare("vocalset", tmp_path / "out", data_dir=tmp_path, separation="htdemucs")

"""MIR-ST500 builder on a fake tree (missing audio, mixture + separation hook, bad notes) and the
annotation parser on the real-format file in tests/data/mir_st500."""

import json
from pathlib import Path

import numpy as np
import pytest

from data_fixtures import TEST_DATA, chunk_targets, write_corrupt, write_wav
from svu.dataset_scripts.mir_st500 import load_annotations, mir_st500_split, valid_notes
from svu.dataset_scripts.audio import SAMPLING_RATE as STORED
from svu.dataset_scripts.prepare import load_prepared, prepare

REAL_FORMAT = TEST_DATA / "mir_st500" / "val_1005_55_icassp_ver.json"


def fake_tree(root):
    notes = {
        "1": [[1.0, 2.0, 60], [4.5, 5.6, 62], [6.0, 7.0, 64]],
        "2": [[0.5, 1.5, 55]],
        "3": [[0.5, 1.5, 57]],  # no audio
        "380": [[0.2, 0.8, 70], [2.0, 1.0, 70], [-1.0, 0.5, 70]],  # two invalid notes dropped
        "401": [[0.5, 2.5, 48]],
        "402": [[0.5, 2.5, 48]],  # corrupt audio
    }
    root.mkdir(parents=True)
    (root / "MIR-ST500_20210206").mkdir()
    (root / "MIR-ST500_20210206" / "MIR-ST500_corrected.json").write_text(json.dumps(notes))
    write_wav(root / "1" / "Vocal.wav", 10.2, sr=44100)  # 2 chunks, a note across the 5 s edge
    write_wav(root / "2" / "Vocal.wav", 5.0)
    write_wav(root / "380" / "Vocal.wav", 5.0)
    write_wav(root / "test" / "401" / "Vocal.wav", 3.0)  # 1 padded chunk
    write_corrupt(root / "402" / "Vocal.wav")
    return root


def test_fake_tree(tmp_path):
    data_dir = fake_tree(tmp_path / "mir")
    dataset = prepare("mir_st500", tmp_path / "out", data_dir=data_dir)
    _, meta = load_prepared(tmp_path / "out")
    assert meta["task"] == "transcription" and meta["class_weights"] is None
    songs = {split: [(r["song_id"], r["chunk_start"]) for r in dataset[split].remove_columns("audio")] for split in dataset}
    # every tail is kept (song 1: 10.2 s -> a third chunk holding 0.2 s), so the chunks rebuild the whole song
    assert songs == {"train": [("1", 0.0), ("1", 5.0), ("1", 10.0), ("2", 0.0)], "validation": [("380", 0.0)], "test": [("401", 0.0)]}
    assert meta["songs"]["1"] == {"seconds": 10.2, "notes": [[1.0, 2.0, 60.0], [4.5, 5.6, 62.0], [6.0, 7.0, 64.0]]}
    assert meta["songs"]["380"]["notes"] == [[0.2, 0.8, 70.0]] and sorted(meta["songs"]) == ["1", "2", "380", "401"]
    assert meta["report"]["groups"] == {"what": "song", "train": 2, "validation": 1, "test": 1}
    report = meta["report"]
    assert report["skipped"] == {"no audio file (3/Vocal.wav)": ["3"], "unreadable audio": ["402"]}
    assert report["messages"][:2] == ["4 of 6 songs have usable audio", "5 of 6 songs have an audio file"]
    assert "1 notes dropped (offset <= onset (zero or negative duration)): 380#1" in report["messages"]
    assert "1 notes dropped (negative onset): 380#2" in report["messages"]
    assert report["files_found"] == 6 and report["files_used"] == 4
    second = dataset["train"].with_format("numpy")[1]
    assert [(n["onset"], round(float(n["offset"]), 4), n["pitch"]) for n in second["notes"]] == [(0.0, 0.6, 62.0), (1.0, 2.0, 64.0)]
    targets = chunk_targets(second)
    assert targets.shape == (249, 4) and np.flatnonzero(targets[:, 0]).tolist() == [50]  # continuation: no onset
    assert (targets[:30, 1] == 0).all() and targets[30:50, 1].min() == 1
    assert dataset["validation"][0]["notes"] == [{"onset": pytest.approx(0.2), "offset": pytest.approx(0.8), "pitch": 70.0}]
    assert len(dataset["test"][0]["audio"]["array"]) == 5 * STORED


def test_mixture_with_separation_hook(tmp_path):
    root = tmp_path / "mir"
    root.mkdir()
    (root / "MIR-ST500_corrected.json").write_text(json.dumps({"5": [[0.5, 1.0, 60]], "6": [[0.5, 1.0, 60]]}))
    write_wav(root / "5" / "Mixture.wav", 5.0)
    write_wav(root / "6" / "Vocal.wav", 5.0)  # only a vocal stem: not found when source="mixture"
    calls = []

    def separate(wave, sr):
        calls.append((len(wave), sr))
        return np.zeros_like(wave)

    dataset = prepare("mir_st500", tmp_path / "out", data_dir=root, source="mixture", separate=separate)
    assert calls == [(5 * STORED, STORED)]
    assert not dataset["train"][0]["audio"]["array"].any()
    _, meta = load_prepared(tmp_path / "out")
    assert meta["report"]["skipped"] == {"no audio file (6/Mixture.mp3 or Mixture.wav)": ["6"]}


def test_real_format_annotations_parse():
    annotations = load_annotations(REAL_FORMAT)
    assert sorted(annotations, key=int) == [str(i) for i in range(401, 501)]
    assert sum(len(n) for n in annotations.values()) == 32403
    notes, dropped = valid_notes(annotations["401"])
    assert dropped == {} and notes[0] == (14.257052154195012, 16.137868480725626, 56.0)
    assert {mir_st500_split(song) for song in annotations} == {"test"}
    assert [mir_st500_split(s) for s in ("1", "360", "361", "400", "401", "500", "501")] == [
        "train", "train", "validation", "validation", "test", "test", None]


def test_wrong_root_and_bad_json(tmp_path):
    with pytest.raises(ValueError, match="no MIR-ST500_corrected.json under .*expected <root>/MIR-ST500_corrected.json"):
        prepare("mir_st500", tmp_path / "out", data_dir=tmp_path)
    (tmp_path / "MIR-ST500_corrected.json").write_text("[1, 2")
    with pytest.raises(ValueError, match="is not MIR-ST500 annotation JSON"):
        prepare("mir_st500", tmp_path / "out", data_dir=tmp_path)


def test_validation_none_trains_on_songs_1_to_400(tmp_path):
    """The paper's training data: songs 1-400 (our validation songs 361-400 join train), test 401-500."""
    data_dir = fake_tree(tmp_path / "mir")
    dataset = prepare("mir_st500", tmp_path / "out", data_dir=data_dir, validation="none")
    assert sorted(set(dataset["train"]["song_id"])) == ["1", "2", "380"] and len(dataset["validation"]) == 0
    assert set(dataset["test"]["song_id"]) == {"401"}
    _, meta = load_prepared(tmp_path / "out")
    assert meta["validation"] == "none" and meta["report"]["groups"]["validation"] == 0


def separation_corpus(root):
    root.mkdir()
    (root / "MIR-ST500_corrected.json").write_text(json.dumps({"5": [[0.5, 1.0, 60]], "401": [[0.5, 1.0, 62]]}))
    write_wav(root / "5" / "Mixture.wav", 5.0, sr=44100, channels=2)
    write_wav(root / "401" / "Mixture.wav", 2.6, sr=44100, channels=2)
    return root


def prepare_cli(root, out, *args, block_demucs=False):
    """`svu data prepare mir_st500` in a fresh process, offline and with no network (a dead proxy); with
    `block_demucs`, `import demucs` fails as on a machine without the optional package."""
    import os
    import subprocess
    import sys

    prelude = "import sys; sys.modules['demucs'] = None; " if block_demucs else "import sys; "
    code = prelude + "from svu.cli import main; sys.exit(main(sys.argv[1:]))"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9",
           "TORCH_HOME": str(out.parent / "torch_home")}
    command = [sys.executable, "-c", code, "data", "prepare", "mir_st500", "--data-dir", str(root), "--output", str(out), *args]
    return subprocess.run(command, capture_output=True, text=True, env=env)


@pytest.mark.parametrize("block_demucs, expected", [
    (True, "needs the demucs package: pip install"),
    (False, "HT-Demucs weights 'htdemucs' unavailable"),
])
def test_htdemucs_package_or_weights_unavailable_is_one_line(tmp_path, block_demucs, expected):
    root = separation_corpus(tmp_path / "mir")
    proc = prepare_cli(root, tmp_path / "out", "--option", "source=mixture", "--separation", "htdemucs", block_demucs=block_demucs)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0] and "stems:<dir>" in lines[0], proc.stderr
    assert not (tmp_path / "out").exists()


def test_bad_separation_options_are_one_line(tmp_path):
    root = separation_corpus(tmp_path / "mir")
    proc = prepare_cli(root, tmp_path / "out", "--separation", "htdemucs")  # source=vocal: already separated
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1 and "add source=mixture" in proc.stderr
    proc = prepare_cli(root, tmp_path / "out", "--option", "source=mixture", "--separation", "stems:/nonexistent")
    assert proc.returncode == 2 and "/nonexistent is not a folder of separated vocals" in proc.stderr
    proc = prepare_cli(root, tmp_path / "out", "--option", "source=mixture", "--separation", "spleeter")
    assert proc.returncode == 2 and "separation='spleeter' unknown; expected none, stems:<dir> or htdemucs" in proc.stderr


def test_htdemucs_runs_on_the_original_rate_audio_before_resampling(tmp_path, monkeypatch):
    """The real demucs separation path, with demucs' own small random test model in place of the downloaded
    weights: the model sees the 44.1 kHz stereo mixture; the chunks hold its vocals at the stored rate."""
    import demucs.apply
    import demucs.pretrained

    test_model = demucs.pretrained.get_model("demucs_unittest")  # a random HDemucs, nothing downloaded
    monkeypatch.setattr(demucs.pretrained, "get_model", lambda name: test_model)
    seen, apply_model, depth = [], demucs.apply.apply_model, []

    def spy(model, mix, **kwargs):  # apply_model calls itself on the pieces of a long input: record the outer call
        depth.append(1)
        sources = apply_model(model, mix, **kwargs)
        depth.pop()
        if not depth:
            seen.extend([tuple(mix.shape), sources])
        return sources

    monkeypatch.setattr(demucs.apply, "apply_model", spy)
    root = separation_corpus(tmp_path / "mir")
    dataset = prepare("mir_st500", tmp_path / "out", data_dir=root, source="mixture", separation="htdemucs")
    assert seen[0] == (1, 2, 5 * 44100) and seen[2] == (1, 2, int(2.6 * 44100))  # original rate and channels
    _, meta = load_prepared(tmp_path / "out")
    assert meta["separation"] == "htdemucs" and "vocal separation: htdemucs" in meta["report"]["messages"]
    chunk = np.asarray(dataset["train"][0]["audio"]["array"])
    vocals = seen[1][0, test_model.sources.index("vocals")].mean(0).numpy()
    from svu.dataset_scripts.audio import resample

    expected = resample(vocals, 44100, STORED)
    assert len(chunk) == 5 * STORED and meta["songs"]["5"]["seconds"] == 5.0
    assert np.corrcoef(chunk[: len(expected)], expected[: len(chunk)])[0, 1] > 0.99


def test_htdemucs_preparations_with_one_seed_are_byte_identical(tmp_path, monkeypatch):
    """HT-Demucs shifts the audio at random (demucs' small test model here): two preparations with one --seed
    store the same bytes, whatever the program drew from the global random generators before; another seed draws
    other shifts, so other bytes."""
    import random

    import datasets
    import demucs.pretrained
    import torch

    test_model = demucs.pretrained.get_model("demucs_unittest")
    monkeypatch.setattr(demucs.pretrained, "get_model", lambda name: test_model)
    root = separation_corpus(tmp_path / "mir")

    def stored_bytes(out, seed):
        random.seed(out.name)  # the program's state before the preparation differs each time
        torch.manual_seed(ord(out.name))
        dataset = prepare("mir_st500", out, data_dir=root, source="mixture", separation="htdemucs", seed=seed)
        undecoded = {split: dataset[split].cast_column("audio", datasets.Audio(decode=False)) for split in dataset}
        return [cell["bytes"] for split in sorted(undecoded) for cell in undecoded[split]["audio"]]

    first = stored_bytes(tmp_path / "a", seed=3)
    assert first == stored_bytes(tmp_path / "b", seed=3) and len(first) == 2
    assert stored_bytes(tmp_path / "c", seed=4) != first
    _, meta = load_prepared(tmp_path / "a")
    assert meta["options"]["seed"] == 3 and meta["separation"] == "htdemucs"
    from svu.dataset_scripts.hub import dataset_card

    assert "Vocal separation: htdemucs (random shifts seeded from seed 3)" in str(dataset_card(meta, {"train": 1, "test": 1}))

"""MIR-1K builder on a fake tree in the corpus' real layout: stereo 16 kHz clips (accompaniment left, voice right),
`.pv` semitone labels (20 ms hop, first frame at 20 ms, 0 = unvoiced, trailing blanks, CRLF), missing and corrupt
files reported and counted, singer-level splits without leakage, and `svu data prepare mir1k` as a subprocess."""

import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import yaml

from data_fixtures import estimate_f0, write_corrupt, write_wav
from svu.dataset_scripts.mir1k import load_pv
from svu.modeling_svu.pitch import hz_to_bin
from svu.dataset_scripts.audio import SAMPLING_RATE as STORED, resample
from svu.dataset_scripts.prepare import load_prepared, prepare

SR = 16000
ACCOMPANIMENT_HZ = 110.0


def midi_hz(semitones: float) -> float:
    return 440.0 * 2.0 ** ((semitones - 69.0) / 12.0)


def write_clip(root, clip: str, semitones, seconds: float, voice_midi: float, crlf: bool = False, channels: int = 2):
    """``Wavfile/<clip>.wav`` (left: a 110 Hz accompaniment, right: the voice at ``voice_midi``) and
    ``PitchLabel/<clip>.pv`` written as MIR-1K writes it (``"59.4857 "`` per line)."""
    t = np.arange(int(round(seconds * SR))) / SR
    voice = 0.3 * np.sin(2 * np.pi * midi_hz(voice_midi) * t)
    accompaniment = 0.6 * np.sin(2 * np.pi * ACCOMPANIMENT_HZ * t)
    (root / "Wavfile").mkdir(parents=True, exist_ok=True)
    wave = np.stack([accompaniment, voice], axis=1) if channels == 2 else voice
    sf.write(root / "Wavfile" / f"{clip}.wav", wave, SR, subtype="PCM_16")
    if semitones is not None:
        write_pv(root, clip, semitones, crlf)


def write_pv(root, clip: str, semitones, crlf: bool = False):
    (root / "PitchLabel").mkdir(parents=True, exist_ok=True)
    end = "\r\n" if crlf else "\n"
    (root / "PitchLabel" / f"{clip}.pv").write_bytes("".join(f"{value:g} {end}" for value in semitones).encode())


def fake_tree(base):
    root = base / "MIR-1K"  # the zip's own top folder
    frames = lambda seconds: int(round((seconds - 0.04) / 0.02)) + 1  # 40 ms frames, 20 ms hop, as MIR-1K has
    write_clip(root, "amy_3_01", [0, 0, 0] + [60] * (frames(4.0) - 6) + [0, 0, 0], 4.0, 60)
    write_clip(root, "amy_3_02", [64.5] * frames(12.3), 12.3, 64.5, crlf=True)  # 2 chunks, CRLF
    write_clip(root, "Kenshin_1_01", [0] * 10 + [55.25] * (frames(5.0) - 10), 5.0, 55.25)  # singer name with capitals
    write_clip(root, "bobon_2_01", [57] * frames(4.0), 4.0, 57)  # validation singer
    write_clip(root, "ariel_1_01", [62] * frames(8.0), 4.0, 62)  # labels of 8 s for 4 s of audio: used, reported
    write_clip(root, "annar_1_01", None, 4.0, 60)  # no pitch label
    write_clip(root, "titon_1_01", [60] * frames(4.0), 4.0, 60, channels=1)  # mono: no voice channel
    write_corrupt(root / "Wavfile" / "heycat_1_01.wav")
    write_pv(root, "heycat_1_01", [60] * 10)
    write_pv(root, "khair_1_01", [60] * 10)  # a label without audio
    write_clip(root, "leon_1_01", [60] * 10, 4.0, 60)
    (root / "PitchLabel" / "leon_1_01.pv").write_text("60 \nabc \n")  # corrupt label
    write_clip(root, "stool_1_01", [261.6] * 10, 4.0, 60)  # Hz where semitones belong
    write_wav(root / "Wavfile" / "readme_notes.wav", 1.0)  # not <singer>_<song>_<clip>
    write_pv(root, "readme_notes", [0])
    (root / "UnvoicedFrameLabel").mkdir()  # present in the real corpus, not read
    return base


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    base = tmp_path_factory.mktemp("mir1k")
    data_dir = fake_tree(base / "data")
    return prepare("mir1k", base / "out", data_dir=data_dir), load_prepared(base / "out")[1], data_dir


def rows(split):
    return [{k: v for k, v in row.items() if k != "audio"} for row in split]


def test_rows_f0_in_hz_and_times_from_20_ms(prepared):
    dataset, meta, _ = prepared
    assert meta["task"] == "pitch" and meta["corpus"] == "mir1k"
    test = rows(dataset["test"])
    assert [(r["song_id"], r["singer"], r["chunk_start"]) for r in test] == [
        ("amy_3_01", "amy", 0.0), ("amy_3_02", "amy", 0.0), ("amy_3_02", "amy", 5.0)]
    first = test[0]  # amy_3_01: 4.0 s, 199 frames at 0.02 * (i + 1)
    assert len(first["f0_times"]) == 199
    np.testing.assert_allclose(first["f0_times"], 0.02 * np.arange(1, 200), atol=1e-6)
    assert first["f0_hz"][:3] == [0.0, 0.0, 0.0] and first["f0_hz"][-3:] == [0.0, 0.0, 0.0]
    np.testing.assert_allclose(first["f0_hz"][3:-3], 261.6255653, rtol=1e-6)  # MIDI 60 = C4
    # amy_3_02: 12.3 s -> chunks [0, 5) and [5, 12.3) (a 2.3 s rest joins the last chunk); times relative to it
    second, third = test[1], test[2]
    np.testing.assert_allclose(second["f0_hz"], midi_hz(64.5), rtol=1e-6)
    assert second["f0_times"][-1] == pytest.approx(5.04, abs=1e-5)  # frames within 50 ms past the edge
    assert third["f0_times"][0] == pytest.approx(-0.04, abs=1e-5) and third["f0_times"][-1] == pytest.approx(7.28, abs=1e-5)
    assert [len(a["array"]) for a in dataset["test"]["audio"]] == [4 * STORED, 5 * STORED, int(7.3 * STORED)]  # nothing zero-padded
    assert meta["songs"]["amy_3_02"] == {"seconds": 12.3} and sorted(meta["songs"]) == [
        "Kenshin_1_01", "amy_3_01", "amy_3_02", "ariel_1_01", "bobon_2_01"]
    train = rows(dataset["train"])
    assert [(r["song_id"], r["singer"]) for r in train] == [("Kenshin_1_01", "Kenshin"), ("ariel_1_01", "ariel")]
    assert train[0]["f0_hz"][:10] == [0.0] * 10
    np.testing.assert_allclose(train[0]["f0_hz"][10:], midi_hz(55.25), rtol=1e-6)
    assert train[1]["f0_times"][-1] == pytest.approx(4.04, abs=1e-5)  # one 4 s chunk: labels past it are cut off
    assert [r["song_id"] for r in rows(dataset["validation"])] == ["bobon_2_01"]


def test_rows_give_the_contract_targets(prepared):
    """A prepared row through `modeling_svu.pitch.pitch_targets` on 50 Hz model frames: C4 (MIDI 60) in bin 180."""
    from svu.modeling_svu.configuration_svu import SVUConfig
    from svu.modeling_svu.pitch import pitch_targets

    dataset, _, _ = prepared
    row = dataset["test"][0]  # amy_3_01: unvoiced for 3 frames at each end, MIDI 60 between
    config = SVUConfig(task="pitch")
    frames = 0.02 * np.arange(201)  # 0 s .. 4 s: before the first label (20 ms) and past the last (3.98 s) too
    targets = pitch_targets(row["f0_times"], row["f0_hz"], frames, config)
    voiced = np.flatnonzero(targets[:, -1])
    assert voiced.tolist() == list(range(4, 197))  # labels 3..195 (0.08 .. 3.92 s) are the voiced ones
    assert hz_to_bin(row["f0_hz"][10], config) == pytest.approx(180.0, abs=0.01)
    assert set(np.argmax(targets[voiced, :-1], axis=1)) == {180}


def test_audio_is_the_right_voice_channel(prepared, tmp_path):
    dataset, _, data_dir = prepared
    stereo, _ = sf.read(data_dir / "MIR-1K" / "Wavfile" / "bobon_2_01.wav", dtype="float32")
    audio = dataset["validation"][0]["audio"]["array"]
    np.testing.assert_allclose(audio, resample(stereo[:, 1], SR, STORED), atol=1e-4)  # the right channel
    assert estimate_f0(audio[:6000], STORED) == pytest.approx(midi_hz(57), rel=0.01)
    mixture = prepare("mir1k", tmp_path / "mix", data_dir=data_dir, source="mixture")
    np.testing.assert_allclose(mixture["validation"][0]["audio"]["array"], resample(stereo.mean(axis=1), SR, STORED), atol=1e-4)


def test_missing_and_corrupt_files_reported(prepared):
    _, meta, data_dir = prepared
    report = meta["report"]
    assert report["skipped"] == {
        "missing audio file": ["khair_1_01"],
        "missing pitch label": ["annar_1_01"],
        "name not <singer>_<song>_<clip>": ["readme_notes"],
        "unreadable audio": ["heycat_1_01", "titon_1_01"],
        "unreadable pitch label": ["leon_1_01", "stool_1_01"],
    }
    assert report["files_found"] == 12 and report["files_used"] == 5 and report["files_skipped"] == 7
    messages = "\n".join(report["messages"])
    root = data_dir / "MIR-1K"
    assert f"{root / 'Wavfile' / 'khair_1_01'}.wav: no such file (for khair_1_01.pv)" in messages
    assert f"{root / 'PitchLabel' / 'leon_1_01.pv'}: line 2 is 'abc', expected one semitone value" in messages
    assert "stool_1_01.pv: unusable pitch label: value 261.6 above MIDI 127 (MIR-1K labels are semitones, not Hz)" in messages
    assert "titon_1_01.wav: has 1 channel(s); channel 1 (0 = left, 1 = right) was asked for" in messages
    assert "heycat_1_01.wav: cannot decode audio" in messages
    assert "7 of 12 clips have an audio file and a usable pitch label" in messages  # 5 of them decode
    assert "ariel_1_01: the F0 annotation ends at 7.98 s but the audio at 4.00 s; check that they belong together" in messages
    assert "amy_3_01: the F0" not in messages


def test_splits_by_singer_without_leakage(prepared, tmp_path):
    dataset, meta, data_dir = prepared
    singers = {split: set(dataset[split]["singer"]) for split in dataset}
    clips = {split: set(dataset[split]["song_id"]) for split in dataset}
    songs = {split: {clip.rsplit("_", 1)[0] for clip in clips[split]} for split in dataset}  # amy_3_01 -> amy_3
    assert songs["test"] == {"amy_3"} and clips["test"] == {"amy_3_01", "amy_3_02"}
    for a, b in [("train", "validation"), ("train", "test"), ("validation", "test")]:
        assert not singers[a] & singers[b] and not songs[a] & songs[b] and not clips[a] & clips[b]
    assert meta["report"]["groups"] == {"what": "song", "train": 2, "validation": 1, "test": 2}
    everything = prepare("mir1k", tmp_path / "all", data_dir=data_dir, split="test")
    assert [len(everything[s]) for s in ("train", "validation", "test")] == [0, 0, 6]
    no_validation = prepare("mir1k", tmp_path / "noval", data_dir=data_dir, validation="none")
    assert sorted(no_validation["train"]["singer"]) == ["Kenshin", "ariel", "bobon"] and len(no_validation["validation"]) == 0


def test_pv_parser_on_the_real_format(tmp_path):
    write_pv(tmp_path, "amy_3_01", [0, 59.4857, 60.3304, 0], crlf=True)
    times, f0 = load_pv(tmp_path / "PitchLabel" / "amy_3_01.pv")
    np.testing.assert_allclose(times, [0.02, 0.04, 0.06, 0.08])
    np.testing.assert_allclose(f0, [0.0, 440 * 2 ** ((59.4857 - 69) / 12), 440 * 2 ** ((60.3304 - 69) / 12), 0.0])
    (tmp_path / "bad.pv").write_text("60\n-3\n")
    with pytest.raises(ValueError, match=r"bad.pv: unusable pitch label: negative F0 \(-3 semitones at 0.040 s\)"):
        load_pv(tmp_path / "bad.pv")


def test_cli_prepare_mir1k(prepared, tmp_path):
    _, _, data_dir = prepared
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    result = subprocess.run([sys.executable, "-m", "svu", "data", "prepare", "mir1k", "--data-dir", str(data_dir),
                             "--output", str(tmp_path / "cli"), "--quiet"], capture_output=True, text=True, env=env,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[:2] == ["mir1k (pitch, 5 s chunks)", "files: 12 found, 5 used, 7 skipped"]
    assert "  skipped 2: unreadable pitch label: leon_1_01, stool_1_01" in lines
    assert "songs: 2 train, 1 validation, 2 test (validation: ours); vocal separation: none" in lines
    from svu.dataset_scripts.hub import write_card
    from svu.dataset_scripts.mir1k import BIBTEX as MIR1K

    text = write_card(tmp_path / "cli").read_text()
    card = yaml.safe_load(text.split("---\n")[1])
    assert card["license"] == "other" and "mir1k" in card["tags"] and f"```bibtex\n{MIR1K}\n```" in text
    assert "the right (voice) channel of the stereo 16 kHz clips" in text and "without a stated licence" in text
    bad = subprocess.run([sys.executable, "-m", "svu", "data", "prepare", "mir1k", "--data-dir", str(tmp_path),
                          "--output", str(tmp_path / "x")], capture_output=True, text=True, env=env, timeout=300)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert bad.stderr.strip() == (f"svu data prepare: no Wavfile/ and PitchLabel/ folders under {tmp_path}; expected "
                                  "<root>/Wavfile/<singer>_<song>_<clip>.wav and <root>/PitchLabel/<singer>_<song>_<clip>.pv")


@pytest.mark.parametrize("backend", ["torchcodec", "ffmpeg"])
def test_one_channel_decoding_on_both_decode_paths(backend, tmp_path, monkeypatch):
    from svu.modeling_svu import audio_decode, audio_io

    if backend == "ffmpeg":
        monkeypatch.setattr(audio_decode, "_main_backend", lambda: None)
    write_clip(tmp_path, "amy_1_01", None, 1.0, 60)
    path = tmp_path / "Wavfile" / "amy_1_01.wav"
    stereo, _ = sf.read(path, dtype="float32")
    for channel, expected in ((None, stereo.mean(axis=1)), (0, stereo[:, 0]), (1, stereo[:, 1])):
        np.testing.assert_allclose(audio_io.decode_audio(path, SR, channel=channel), expected, atol=1e-6)
    at_8k = audio_io.decode_audio(path, 8000, channel=1)  # resampled after the channel is picked
    assert len(at_8k) == 8000 and estimate_f0(at_8k[:2000], sr=8000) == pytest.approx(midi_hz(60), rel=0.02)
    with pytest.raises(ValueError, match=r"amy_1_01.wav: has 2 channel\(s\); channel 2 \(0 = left, 1 = right\)"):
        audio_io.decode_audio(path, SR, channel=2)


def test_prepared_chunks_collate_and_train(prepared):
    """The training collator turns prepared MIR-1K chunks of different lengths into pitch targets for a tiny model,
    and the loss on them is finite and has gradients."""
    import torch

    from svu.modeling_svu import SVUForPitchEstimation
    from svu.train.data import AudioCollator

    dataset, _, _ = prepared
    torch.manual_seed(0)
    model = SVUForPitchEstimation.from_backbone("tiny-wav2vec2")
    rows = [{**dataset["test"][i], "row_index": i} for i in range(3)]  # 4 s, 5 s and 7.3 s chunks
    batch = AudioCollator(model.feature_extractor(), "pitch", model.config)(rows)
    labels = batch.pop("labels")
    frames = model.config.num_frames(116800)
    assert labels.shape == (3, frames, model.config.num_pitch_bins + 1)
    assert (labels[0, model.config.num_frames(64000):] == -100).all() and (labels[2] != -100).all()
    voiced = labels[1, :, -1] == 1  # amy_3_02 is MIDI 64.5 throughout
    assert voiced.sum() >= model.config.num_frames(80000) - 2
    peak = labels[1, voiced, :-1].argmax(-1).unique().tolist()
    assert peak == [round(float(hz_to_bin(midi_hz(64.5), model.config)))]
    batch.pop("row_index")
    loss = model(**batch, labels=labels).loss
    assert torch.isfinite(loss)
    loss.backward()
    assert all(p.grad is not None for p in model.head.parameters())

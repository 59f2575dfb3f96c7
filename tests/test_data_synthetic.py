"""The synthetic corpus: the prepared-dataset contract, determinism, split rules, labels that a
simple pitch / feature check agrees with."""

import datasets
import numpy as np
import pytest

from data_fixtures import chunk_targets, estimate_f0, hz_to_midi
from svu.dataset_scripts.audio import SAMPLING_RATE as STORED
from svu.dataset_scripts.prepare import load_prepared, prepare
from svu.dataset_scripts.synthetic import TECHNIQUES, make_singers, technique_clip
from svu.modeling_svu.note_labels import notes_to_frame_targets

SR = 16000  # the synthesiser's rate (`synthetic.SYNTHESIS_RATE`); prepared chunks are at STORED
META_KEYS = {"corpus", "task", "label_names", "class_weights", "sampling_rate", "chunk_seconds", "fingerprint", "report"}
SMALL = {
    "technique": dict(num_singers=4, clip_seconds=3.0),
    "singer_id": dict(num_singers=3, recordings_per_singer=3, clip_seconds=5.0),
    "transcription": dict(num_songs=4, song_seconds=10.0),
}

@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic")
    for task, options in SMALL.items():
        prepare("synthetic", root / task, seed=0, task=task, **options)
    return lambda task: load_prepared(root / task)

def raw_audio(dataset):
    return [cell["bytes"] for cell in dataset.cast_column("audio", datasets.Audio(decode=False))["audio"]]

def test_classification_contract(prepared):
    dataset, meta = prepared("technique")
    assert set(dataset) == {"train", "validation", "test"}
    assert META_KEYS <= set(meta) and meta["task"] == "technique" and meta["chunk_seconds"] == 3.0
    features = dataset["train"].features
    assert features["audio"] == datasets.Audio(sampling_rate=STORED)
    assert features["label"].names == meta["label_names"] == list(TECHNIQUES)
    assert {k: v.dtype for k, v in features.items() if k not in ("audio", "label")} == {
        "clip_id": "string", "singer": "string", "chunk_index": "int32"}
    audio = dataset["test"][0]["audio"]
    assert audio["sampling_rate"] == STORED and audio["array"].shape == (3 * STORED,)
    # 4 singers x 6 classes x 1 clip of 3 s = 24 chunks; held-out singers: 2 train, 1 val, 1 test
    assert meta["report"]["files_found"] == meta["report"]["files_used"] == 24
    singers = {split: sorted(set(dataset[split]["singer"])) for split in dataset}
    assert singers == {"train": ["singer00", "singer01"], "validation": ["singer02"], "test": ["singer03"]}
    assert meta["class_weights"] == pytest.approx([2 ** -0.2] * 6)

def test_singer_id_every_singer_in_every_split_recordings_disjoint(prepared):
    dataset, meta = prepared("singer_id")
    assert meta["chunk_seconds"] == 5.0 and meta["label_names"] == ["singer00", "singer01", "singer02"]
    recordings = {split: set(dataset[split]["clip_id"]) for split in dataset}
    for split in dataset:
        assert sorted(set(dataset[split]["singer"])) == meta["label_names"]
    assert not (recordings["train"] & recordings["test"]) and not (recordings["validation"] & recordings["test"])
    assert {c.rsplit("/", 1)[1] for c in recordings["test"]} == {"recording2"}
    # singers differ in pitch: the median pitch of their test chunk rises with the singer index
    medians = []
    for example in dataset["test"]:
        wave = example["audio"]["array"]
        voiced = [wave[s : s + 2048] for s in range(0, len(wave) - 2048, 1024) if np.abs(wave[s : s + 2048]).max() > 0.1]
        medians.append((example["label"], np.median([estimate_f0(w, STORED) for w in voiced])))
    assert [label for label, _ in sorted(medians, key=lambda item: item[1])] == [0, 1, 2]

def test_transcription_contract_and_note_pitches(prepared):
    dataset, meta = prepared("transcription")
    assert meta["task"] == "transcription" and meta["class_weights"] is None
    songs = {split: set(dataset[split]["song_id"]) for split in dataset}
    assert songs == {"train": {"song000", "song001"}, "validation": {"song002"}, "test": {"song003"}}
    checked = 0
    for example in dataset["train"].with_format("numpy"):
        assert "frame_targets" not in example and meta["label_scheme"]["frame_targets"].startswith("computed at collate")
        targets = chunk_targets(example)
        wave = example["audio"]["array"]
        for note in example["notes"]:
            assert 36 <= note["pitch"] <= 83 and 0.0 <= note["onset"] < note["offset"] <= 5.0
            if note["offset"] - note["onset"] < 0.2:
                continue
            middle = int((note["onset"] + note["offset"]) / 2 * STORED)
            assert round(hz_to_midi(estimate_f0(wave[middle - 1200 : middle + 1200], STORED))) == note["pitch"]
            checked += 1
        notes = [(n["onset"], n["offset"], n["pitch"]) for n in example["notes"] if n["onset"] > 0.0]
        if len(notes) == len(example["notes"]):  # no continuation note: targets follow from the notes
            np.testing.assert_array_equal(targets, notes_to_frame_targets(notes, 249))
        # frames labelled silence are quiet, voiced frames are not
        hop = STORED // 50
        frames = np.abs(wave[: 249 * hop].reshape(249, hop)).max(axis=1)
        silent = targets[:, 1] == 1
        assert np.median(frames[silent]) < 0.1 * np.median(frames[~silent])
    assert checked >= 20

def test_equal_seeds_identical_other_seed_differs(tmp_path, prepared):
    again = prepare("synthetic", tmp_path / "again", seed=0, task="transcription", **SMALL["transcription"])
    original, _ = prepared("transcription")
    for split in original:
        assert raw_audio(again[split]) == raw_audio(original[split])
        assert again[split]["notes"] == original[split]["notes"]
    other = prepare("synthetic", tmp_path / "other", seed=1, task="transcription", **SMALL["transcription"])
    assert other["train"]["notes"] != original["train"]["notes"]

def cepstral_f0(wave):
    estimates = []
    for start in range(0, len(wave) - 2048, 1024):
        spectrum = np.abs(np.fft.rfft(wave[start : start + 2048] * np.hanning(2048)))
        cepstrum = np.fft.irfft(np.log(spectrum + 1e-6))
        lo, hi = SR // 600, SR // 45
        estimates.append(SR / (lo + np.argmax(cepstrum[lo:hi])))
    return np.median(estimates)

def pitch_swing(wave):
    """Median over 0.25 s windows of the pitch range (p95 - p5, semitones) of 40 ms frames."""
    midi = np.array([hz_to_midi(estimate_f0(wave[s : s + 640])) for s in range(0, len(wave) - 640, 160)])
    windows = [midi[i : i + 25] for i in range(0, len(midi) - 25, 25)]
    return np.median([np.percentile(w, 95) - np.percentile(w, 5) for w in windows])

def high_band_share(wave):
    power = np.abs(np.fft.rfft(wave)) ** 2
    return power[np.fft.rfftfreq(len(wave), 1 / SR) > 3000].sum() / power.sum()

def quiet_share(wave):
    frames = np.sqrt((wave[: len(wave) // 512 * 512].reshape(-1, 512) ** 2).mean(axis=1))
    return (frames < 0.2 * frames.max()).mean()

@pytest.mark.parametrize("singer_index", [0, 4, 7])
def test_technique_classes_are_acoustically_distinct(singer_index):
    singer = make_singers(8)[singer_index]
    clips = {t: technique_clip(singer, t, 3.0, np.random.default_rng([5, i])) for i, t in enumerate(TECHNIQUES)}
    others = lambda name: [clips[t] for t in TECHNIQUES if t != name]
    assert cepstral_f0(clips["vocal_fry"]) < 0.8 * min(cepstral_f0(w) for w in others("vocal_fry"))
    assert high_band_share(clips["breathy"]) > 2 * max(high_band_share(w) for w in others("breathy"))
    assert quiet_share(clips["spoken"]) > 0.1 > max(quiet_share(w) for w in others("spoken"))
    # trill alternates 2-3 semitones, vibrato swings +-50-80 cents, straight holds its pitch
    assert pitch_swing(clips["trill"]) > pitch_swing(clips["vibrato"]) > pitch_swing(clips["straight"]) + 0.5

"""Whole-song transcription scoring (`train.evaluation.evaluate_test`, the test metrics of `train/run.py`).

An oracle transcription model emits, for whichever window of audio it is given, logits built from the
annotation of that song (it recognises the window by its first samples in the songs as data preparation stores
them, at the model's rate: `stored_song`). Its
notes cross the 5 s chunk edges and one sits in a 1.3 s tail (which the old chunking dropped), so only whole-song
scoring against the complete annotation gives COnPOff 1.000; the per-chunk validation proxy scores it lower.
"""

import io
import json

import numpy as np
import soundfile as sf
import torch

from data_fixtures import SR
from svu.dataset_scripts.audio import encode_wav, load_audio, resample
from svu.dataset_scripts.prepare import load_prepared, prepare
from svu.modeling_svu import SVUForNoteTranscription
from svu.modeling_svu.modeling_svu import SVUTranscriptionOutput
from svu.modeling_svu.note_labels import logit_slices, notes_to_frame_targets
from svu.train.evaluation import chunk_loader, evaluate_split, evaluate_test

KEY_SAMPLES = 64
SONGS = {  # song id: (seconds, notes); 401-500 are MIR-ST500's test songs
    "401": (11.3, [[0.51, 1.23, 60], [4.61, 5.53, 62], [6.07, 7.01, 65], [9.71, 10.23, 64], [10.41, 11.03, 67]]),
    "402": (7.9, [[0.53, 1.21, 57], [4.83, 5.41, 59], [7.03, 7.61, 55]]),
    "7": (5.0, [[1.0, 2.0, 60]]),  # a training song
}


def write_corpus(root):
    """A MIR-ST500 tree whose vocals are white noise (never digital silence), 16-bit at 16 kHz."""
    import soundfile as sf

    root.mkdir(parents=True)
    (root / "MIR-ST500_corrected.json").write_text(json.dumps({song: notes for song, (_, notes) in SONGS.items()}))
    for song, (seconds, _) in SONGS.items():
        rng = np.random.default_rng(int(song))
        (root / song).mkdir()
        sf.write(root / song / "Vocal.wav", 0.1 * rng.standard_normal(int(seconds * SR)), SR, subtype="PCM_16")
    return root


def window_key(samples) -> bytes:
    return np.round(np.asarray(samples[:KEY_SAMPLES], dtype=np.float64) * 32768).astype(np.int16).tobytes()


def stored_song(path, rate: int) -> np.ndarray:
    """A song file as data preparation stores it (decoded at the stored rate, written as 16-bit PCM: the audio
    cells), then brought to ``rate`` as whole-song scoring hands it to a model of that rate."""
    stored, stored_rate = sf.read(io.BytesIO(encode_wav(load_audio(path))), dtype="float32")
    return resample(stored, stored_rate, rate)


class OracleTranscriber(SVUForNoteTranscription):
    """Logits = the song's frame targets (+-20), for any window starting on the frame grid of a known song."""

    def set_songs(self, songs: dict):
        hop = self.config.frame_hop_samples
        self.songs = songs
        self.index = {window_key(wave[start:]): (song, start)
                      for song, (wave, _) in songs.items() for start in range(0, len(wave) - KEY_SAMPLES, hop)}

    def index_chunks(self, split):
        """The frame scores resample each chunk alone to the model's rate (the collator; its first samples may
        differ from the song's): recognise each chunk of ``split`` too, at the start its row records."""
        rate = self.config.sampling_rate
        for row in split:
            chunk = resample(np.asarray(row["audio"]["array"], dtype=np.float32), row["audio"]["sampling_rate"], rate)
            self.index[window_key(chunk)] = (row["song_id"], int(round(float(row["chunk_start"]) * rate)))

    def forward(self, input_values, attention_mask=None, labels=None, **kwargs):
        hop, rate = self.config.frame_hop_samples, self.config.sampling_rate
        frames = (input_values.shape[1] - self.min_input_samples()) // hop + 1
        s = logit_slices(self.config.num_octaves)
        batch = []
        for window in input_values:
            song, start = self.index[window_key(window.numpy())]
            notes = [(on - start / rate, off - start / rate, pitch) for on, off, pitch in self.songs[song][1]]
            targets = notes_to_frame_targets(notes, frames, frame_seconds=self.config.frame_seconds)
            logits = torch.full((frames, s["pitch_class"].stop), -20.0)
            logits[:, s["onset"].start] = torch.as_tensor(40 * targets[:, 0] - 20)
            logits[:, s["silence"].start] = torch.as_tensor(40 * targets[:, 1] - 20)
            logits[torch.arange(frames), s["octave"].start + torch.as_tensor(targets[:, 2]).long()] = 20.0
            logits[torch.arange(frames), s["pitch_class"].start + torch.as_tensor(targets[:, 3]).long()] = 20.0
            batch.append(logits)
        return SVUTranscriptionOutput(logits=torch.stack(batch))


def test_oracle_posteriors_score_1_on_whole_songs_through_the_test_scoring(tmp_path):
    root = write_corpus(tmp_path / "mir")
    prepare("mir_st500", tmp_path / "prepared", data_dir=root, validation="none")
    data, meta = load_prepared(tmp_path / "prepared")
    assert sorted(data["test"].unique("song_id")) == ["401", "402"]
    assert meta["songs"]["401"]["seconds"] == 11.3 and meta["songs"]["401"]["notes"][-1] == [10.41, 11.03, 67.0]
    assert [float(c) for c in data["test"].filter(lambda r: r["song_id"] == "401")["chunk_start"]] == [0.0, 5.0, 10.0]

    oracle = OracleTranscriber.from_backbone("tiny-wav2vec2", normalize_audio=False).eval()
    rate = oracle.config.sampling_rate  # 16 kHz: below the stored rate, so songs and chunks reach it resampled
    oracle.set_songs({song: (stored_song(root / song / "Vocal.wav", rate), notes) for song, (_, notes) in SONGS.items()})
    oracle.index_chunks(data["test"])

    test = evaluate_test(oracle, data["test"], meta, batch_size=4)
    assert test["num_songs"] == 2 and test["num_reference_notes"] == 8 and test["num_estimated_notes"] == 8
    assert test["COnPOff_f1"] == test["COnP_f1"] == test["COn_f1"] == 1.0, test["per_song"]
    assert [row["song_id"] for row in test["per_song"]] == ["401", "402"]
    assert test["num_examples"] == test["num_unique_examples"] == len(data["test"]) == 5

    # the per-chunk validation proxy on the same oracle: notes cut at the 5 s / 10 s edges count twice
    proxy = evaluate_split("transcription", lambda batch: oracle(**batch), chunk_loader("transcription", oracle, data["test"], 4),
                           data["test"], oracle.config)
    assert proxy["COnPOff_f1"] < 0.9, proxy


def test_whole_songs_are_resampled_to_a_24_khz_model(tmp_path):
    """A MERT-v1-like model (24 kHz, 75 Hz frames): the 16 kHz files, prepared at the stored rate, are rebuilt at the
    model's rate and transcribed on its frame grid; the oracle (indexed on the songs as stored, at that rate) still
    scores 1.000."""
    root = write_corpus(tmp_path / "mir")
    prepare("mir_st500", tmp_path / "prepared", data_dir=root, validation="none")
    data, meta = load_prepared(tmp_path / "prepared")
    oracle = OracleTranscriber.from_backbone("tiny-hubert", sampling_rate=24000, normalize_audio=False).eval()
    assert oracle.config.frame_rate == 75
    oracle.set_songs({song: (stored_song(root / song / "Vocal.wav", 24000), notes) for song, (_, notes) in SONGS.items()})
    oracle.index_chunks(data["test"])
    test = evaluate_test(oracle, data["test"], meta, batch_size=4)
    assert test["num_songs"] == 2 and test["COnPOff_f1"] == 1.0, test["per_song"]


def test_a_dataset_prepared_before_whole_song_scoring_is_one_line(tmp_path):
    import pytest

    root = write_corpus(tmp_path / "mir")
    prepare("mir_st500", tmp_path / "prepared", data_dir=root)
    data, meta = load_prepared(tmp_path / "prepared")
    del meta["songs"]
    model = SVUForNoteTranscription.from_backbone("tiny-wav2vec2")
    with pytest.raises(ValueError, match=r"no per-song annotations .* prepare it again"):
        evaluate_test(model, data["test"], meta)

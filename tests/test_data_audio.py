"""Preprocessing on hand-made cases: decode/resample, chunk counts, RMS filter, trimming, note chunking."""

import numpy as np
import pytest
import soundfile as sf

from data_fixtures import chunk_targets, estimate_f0, write_corrupt, write_mp3, write_wav
from svu.dataset_scripts.audio import (
    RMS_FRAME,
    SAMPLING_RATE,
    chunk_waveform,
    load_audio,
    num_chunks,
    passes_rms_filter,
    resample,
    trim_silence,
)
from svu.dataset_scripts.common import class_weights, check_no_leakage, transcription_examples
from svu.modeling_svu.note_labels import notes_to_frame_targets

SR = SAMPLING_RATE


@pytest.mark.parametrize(
    "seconds, chunk_seconds, expected",
    [(7.3, 3.0, 2), (7.3, 5.0, 1), (8.0, 5.0, 2), (1.4, 3.0, 0), (1.5, 3.0, 1), (6.0, 3.0, 2), (0.0, 5.0, 0)],
)
def test_chunk_counts(seconds, chunk_seconds, expected):
    wave = np.ones(int(round(seconds * SR)), dtype=np.float32)
    chunks = list(chunk_waveform(wave, int(chunk_seconds * SR)))
    assert len(chunks) == expected == num_chunks(len(wave), int(chunk_seconds * SR))
    assert all(len(chunk) == int(chunk_seconds * SR) for _, chunk in chunks)
    assert [start for start, _ in chunks] == [i * int(chunk_seconds * SR) for i in range(expected)]


def test_last_partial_chunk_is_zero_padded():
    wave = np.ones(8 * SR, dtype=np.float32)
    (_, first), (_, last) = chunk_waveform(wave, 5 * SR)
    assert first.min() == 1.0
    assert last[: 3 * SR].min() == 1.0 and not last[3 * SR :].any()


def square(value, frames, frame=RMS_FRAME):
    return np.tile([value, -value], frames * frame // 2)


def test_rms_filter_hand_made_chunks():
    silent = np.zeros(10 * RMS_FRAME)
    assert passes_rms_filter(square(0.0102, 10))
    assert not passes_rms_filter(square(0.0098, 10))
    assert not passes_rms_filter(silent)
    # mean of frame RMS (not the RMS of the whole chunk): half loud at 0.0202, half silent -> 0.0101
    assert passes_rms_filter(np.concatenate([square(0.0202, 5), silent[: 5 * RMS_FRAME]]))
    assert not passes_rms_filter(np.concatenate([square(0.0198, 5), silent[: 5 * RMS_FRAME]]))
    # a trailing partial frame is ignored, however loud
    assert not passes_rms_filter(np.concatenate([silent, np.ones(RMS_FRAME - 1)]))


def test_trim_silence_cuts_edges_only():
    tone = 0.3 * np.sin(2 * np.pi * 220 * np.arange(SR) / SR)
    gap = np.zeros(SR // 2)
    trimmed = trim_silence(np.concatenate([gap, tone, gap, tone, gap]))
    assert abs(len(trimmed) - (2.5 * SR)) <= 2 * RMS_FRAME
    assert len(trim_silence(np.zeros(SR))) == 0


def test_decode_resample_to_the_stored_rate_mono(tmp_path):
    stereo = write_wav(tmp_path / "a.wav", 1.0, f0=440.0, sr=44100, channels=2)
    wave = load_audio(stereo)
    assert wave.dtype == np.float32 and wave.ndim == 1 and abs(len(wave) - SR) <= 32
    assert estimate_f0(wave[4000:6048], SR) == pytest.approx(440.0, rel=0.02)
    mp3 = load_audio(write_mp3(tmp_path / "b.mp3", 1.0, f0=330.0))
    assert abs(len(mp3) - SR) <= 0.1 * SR and estimate_f0(mp3[4000:6048], SR) == pytest.approx(330.0, rel=0.02)
    array, _ = sf.read(stereo)
    resampled = resample(array, 44100)
    assert abs(len(resampled) - SR) <= 1 and estimate_f0(resampled[4000:6048], SR) == pytest.approx(440.0, rel=0.02)


def test_corrupt_audio_is_one_clear_error(tmp_path):
    bad = write_corrupt(tmp_path / "bad.wav")
    with pytest.raises(ValueError, match="bad.wav"):
        load_audio(bad)


def test_notes_cut_at_chunk_edges():
    notes = [(1.0, 2.0, 60.0), (4.5, 5.6, 62.0), (6.0, 7.0, 90.0)]
    first, second, tail = transcription_examples(np.zeros(int(10.2 * SR)), notes, song_id="s", chunk_seconds=5.0)
    # every tail is kept, zero-padded (here 0.2 s), so the chunks rebuild the whole song
    assert tail["chunk_start"] == 10.0 and len(tail["notes"]) == 0
    assert [n["pitch"] for n in first["notes"]] == [60.0, 62.0]
    assert first["notes"][1] == {"onset": 4.5, "offset": 5.0, "pitch": 62.0}
    assert second["chunk_start"] == 5.0
    assert second["notes"] == [{"onset": 0.0, "offset": pytest.approx(0.6), "pitch": 62.0},
                               {"onset": 1.0, "offset": 2.0, "pitch": 90.0}]
    assert "frame_targets" not in first  # targets are computed for the model when a batch is collated
    assert second["notes_unclipped"][0] == {"onset": pytest.approx(-0.5), "offset": pytest.approx(0.6), "pitch": 62.0}
    a, b = chunk_targets(first), chunk_targets(second)  # for a 16 kHz model: 249 frames of 20 ms
    assert a.shape == b.shape == (249, 4)
    assert np.flatnonzero(a[:, 0]).tolist() == [50, 225]
    assert np.flatnonzero(a[:, 1] == 0).tolist() == list(range(50, 100)) + list(range(225, 249))
    # the continuation: voiced from frame 0 to 29, no onset there; MIDI 90 folded to 78 (octave 3, pc 6)
    assert np.flatnonzero(b[:, 0]).tolist() == [50]
    assert np.flatnonzero(b[:, 1] == 0).tolist() == list(range(0, 30)) + list(range(50, 100))
    assert b[0, 2:].tolist() == [2.0, 2.0] and b[60, 2:].tolist() == [3.0, 6.0]
    expected = notes_to_frame_targets([(-0.5, 0.6, 62.0), (1.0, 2.0, 90.0)], 249)
    np.testing.assert_array_equal(b, expected)


def test_class_weights_and_leakage_check():
    weights = class_weights([0] * 32 + [1] * 1, num_classes=3)
    assert weights == pytest.approx([32**-0.2, 1.0, 1.0])
    check_no_leakage({"train": {"a", "b"}, "test": {"c"}}, "singer")
    with pytest.raises(ValueError, match="singer 'b' is in both 'train' and 'test'"):
        check_no_leakage({"train": {"a", "b"}, "test": {"b"}}, "singer")

"""The pitch task's bins, targets and decoding (`modeling_svu/pitch.py`) and its model (`SVUForPitchEstimation`)."""

import numpy as np
import pytest
import torch

from svu.modeling_svu import SVUConfig, SVUForPitchEstimation
from svu.modeling_svu.pitch import (
    bin_to_hz, cents_to_hz, decode_pitch, frame_times, hz_to_bin, hz_to_cents, pitch_targets,
)

CONFIG = SVUConfig(task="pitch")
C1, B7 = 32.70, 3951.07
TOP = 2068.76  # the centre of the last of the 360 default bins: six octaves of 20-cent bins above C1 (as CREPE)


def cents_error(estimate_hz, true_hz):
    return np.abs(1200 * np.log2(np.asarray(estimate_hz) / np.asarray(true_hz)))


def target_logits(hz_per_frame, voiced, config=CONFIG):
    """Logits whose sigmoid is exactly the training target of `hz_per_frame` (a target-shaped posterior)."""
    times = np.arange(len(hz_per_frame)) * 0.01
    targets = pitch_targets(times, np.where(voiced, hz_per_frame, 0.0), times, config).astype(np.float64)
    targets = np.clip(targets, 1e-7, 1 - 1e-7)
    return np.log(targets / (1 - targets))


def test_config_defaults_are_crepes_bins():
    assert (CONFIG.pitch_fmin_hz, CONFIG.pitch_bins_per_semitone, CONFIG.num_pitch_bins) == (32.70, 5, 360)
    assert (CONFIG.pitch_target_sigma_cents, CONFIG.voicing_threshold) == (25.0, 0.5)
    assert bin_to_hz(0, CONFIG) == pytest.approx(C1)
    assert bin_to_hz(359, CONFIG) == pytest.approx(TOP, rel=1e-5)
    assert hz_to_bin(2 * C1, CONFIG) == pytest.approx(60.0)  # an octave = 12 semitones x 5 bins


def test_hz_bins_round_trip_within_two_cents_from_c1_to_b7():
    hz = np.geomspace(C1, B7, 2001)  # between-bin values throughout
    assert cents_error(bin_to_hz(hz_to_bin(hz, CONFIG), CONFIG), hz).max() < 2
    assert cents_error(cents_to_hz(hz_to_cents(hz)), hz).max() < 1e-6
    assert np.isnan(hz_to_bin([0.0, -1.0], CONFIG)).all()  # unvoiced


def test_decoding_a_target_shaped_posterior_recovers_between_bin_pitches():
    # off the bin centres (997 is prime: all offsets are seen), a semitone inside the range: within 4 bins of the
    # ends the window of the local average is cut, and the decoded pitch is pulled inwards by up to ~6 cents
    semitone = 2 ** (1 / 12)
    hz = np.geomspace(C1 * semitone, TOP / semitone, 997)
    decoded = decode_pitch(target_logits(hz, np.ones(len(hz), bool)), CONFIG)
    assert decoded["voiced"].all()
    errors = cents_error(decoded["f0_hz"], hz)
    assert errors.max() < 2, errors.max()
    # a wider head covers up to B7 as well
    wide = SVUConfig(task="pitch", num_pitch_bins=420)
    hz = np.geomspace(C1 * semitone, B7, 997)
    assert cents_error(decode_pitch(target_logits(hz, np.ones(len(hz), bool), wide), wide)["f0_hz"], hz).max() < 2
    # the argmax alone would be off by up to half a bin (10 cents): the local average is what brings it under 2
    argmax_hz = bin_to_hz(np.round(hz_to_bin(hz, CONFIG)), CONFIG)
    assert cents_error(argmax_hz, hz).max() > 8


def test_voicing_threshold_from_the_config_and_per_call():
    voicing_logits = np.array([-3.0, -0.5, 0.5, 3.0])  # probabilities 0.05, 0.38, 0.62, 0.95
    logits = target_logits(np.full(4, 440.0), np.ones(4, bool))
    logits[:, -1] = voicing_logits
    default = decode_pitch(logits, CONFIG)
    np.testing.assert_allclose(default["voicing"], 1 / (1 + np.exp(-voicing_logits)))
    assert default["voiced"].tolist() == [False, False, True, True]
    assert (default["f0_hz"][:2] == 0).all() and cents_error(default["f0_hz"][2:], 440).max() < 2
    assert decode_pitch(logits, CONFIG, voicing_threshold=0.2)["voiced"].tolist() == [False, True, True, True]
    strict = SVUConfig(task="pitch", voicing_threshold=0.9)
    assert decode_pitch(logits, strict)["voiced"].tolist() == [False, False, False, True]
    np.testing.assert_allclose(decode_pitch(logits, strict)["pitch_hz"], default["pitch_hz"])  # pitch kept
    with pytest.raises(ValueError, match="voicing_threshold=1.5"):
        decode_pitch(logits, CONFIG, voicing_threshold=1.5)
    with pytest.raises(ValueError, match="voicing_threshold=-0.1"):
        SVUConfig(task="pitch", voicing_threshold=-0.1)


def test_targets_follow_the_annotation_on_the_model_frames():
    config = SVUConfig(task="pitch")
    times = np.arange(0, 1.0, 0.01)
    f0 = np.where(times < 0.5, 220.0, 0.0)  # voiced then unvoiced
    f0[20:30] = 220 * 2 ** (np.arange(10) / 120)  # a glide, interpolated in cents between annotations
    frames = frame_times(40, config)
    assert frames[0] == pytest.approx(0.0125) and np.diff(frames) == pytest.approx(0.02)
    targets = pitch_targets(times, f0, frames, config)
    assert targets.shape == (40, 361) and targets.dtype == np.float32
    voiced = targets[:, -1] == 1
    assert voiced.tolist() == (frames < 0.495).tolist()  # 0.5 s: the voicing edge between annotations
    assert (targets[~voiced] == 0).all() and (targets[frames > 0.995, -1] == 0).all()
    decoded = decode_pitch(np.log(np.clip(targets, 1e-7, None) / np.clip(1 - targets, 1e-7, None)), config)
    expected = np.interp(frames, times[f0 > 0], 1200 * np.log2(f0[f0 > 0]))  # in cents, along the voiced part
    assert cents_error(decoded["f0_hz"][voiced], 2 ** (expected[voiced] / 1200)).max() < 2


def test_head_width_from_the_config():
    model = SVUForPitchEstimation.from_backbone("tiny-wav2vec2", num_pitch_bins=120, pitch_head_hidden_size=200)
    assert [tuple(layer.weight.shape) for layer in model.head if hasattr(layer, "weight")] == [(200, 32), (121, 200)]
    assert SVUConfig(task="pitch").pitch_head_hidden_size == 512  # wider than the 360 bins' used range
    with pytest.raises(ValueError, match="pitch_head_hidden_size=0 must be an integer >= 1"):
        SVUConfig(task="pitch", pitch_head_hidden_size=0)


def test_model_logits_loss_and_decode():
    torch.manual_seed(0)
    model = SVUForPitchEstimation.from_backbone("tiny-wav2vec2", num_pitch_bins=120, pitch_fmin_hz=110.0)
    audio = torch.randn(2, 16000)
    out = model(audio)
    frames = out.logits.shape[1]
    assert out.logits.shape == (2, frames, 121)
    times = np.arange(0, 1.0, 0.01)
    labels = torch.tensor(np.stack([pitch_targets(times, np.full(100, 220.0), frame_times(frames, model.config), model.config),
                                    pitch_targets(times, np.zeros(100), frame_times(frames, model.config), model.config)]))
    labels[1, -5:] = -100  # padding
    loss = model(audio, labels=labels).loss
    assert loss.dim() == 0 and torch.isfinite(loss)
    loss.backward()
    assert all(p.grad is not None for p in model.head.parameters())
    decoded = model.decode(out.logits.detach(), torch.ones(2, frames - 3, dtype=torch.bool))
    assert [len(d["f0_hz"]) for d in decoded] == [frames - 3] * 2
    with pytest.raises(ValueError, match=r"pitch labels must be \(batch, frames, 121\)"):
        model(audio, labels=labels[..., :-1])
    with pytest.raises(ValueError, match="more than one frame apart"):
        model(audio, labels=labels[:, :-5])


def test_sing_renders_notes_at_their_cent_offsets_and_reports_the_exact_f0():
    from data_fixtures import estimate_f0, hz_to_midi

    from svu.dataset_scripts.synthetic import F0_HOP_SECONDS, sing

    notes = [(0.1, 0.6, 57.0), (0.8, 1.4, 60.3), (1.42, 2.0, 62.75)]  # A3, C4 +30 cents, D4 +75 cents (glided into)
    sung = sing(notes, 2.2, seed=3, glide_seconds=0.08)
    assert sung.wave.dtype == np.float32 and len(sung.wave) == int(2.2 * 16000)
    assert np.allclose(np.diff(sung.f0_times), F0_HOP_SECONDS, atol=1e-5) and sung.f0_times[0] == 0
    voiced = sung.f0_hz > 0
    inside = np.zeros(len(voiced), bool)
    for onset, offset, _ in notes:
        inside |= (sung.f0_times >= onset) & (sung.f0_times < offset)
    assert (voiced == inside).all()  # unvoiced exactly between notes
    for onset, offset, midi in notes:
        held = (sung.f0_times > onset + 0.15) & (sung.f0_times < offset - 0.05)
        annotated = hz_to_midi(np.median(sung.f0_hz[held]))
        assert abs(annotated - midi) < 0.05  # the annotation: the note's pitch, up to jitter
        middle = slice(int((onset + 0.2) * 16000), int((onset + 0.4) * 16000))
        assert abs(hz_to_midi(estimate_f0(sung.wave[middle])) - annotated) < 0.1  # and the audio sings it
    glide = (sung.f0_times > 1.42) & (sung.f0_times < 1.49)
    assert (np.diff(sung.f0_hz[glide]) > 0).all()  # 60.3 -> 62.75 over 80 ms
    again = sing(notes, 2.2, seed=3, glide_seconds=0.08)
    assert np.array_equal(again.wave, sung.wave) and np.array_equal(again.f0_hz, sung.f0_hz)


def test_sing_gives_each_note_its_vowel():
    """Same pitch, vowel /a/ then /i/: the harmonics' level profile (dB, first 12 harmonics) of the two notes
    differs by > 5 dB rms (measured ~15); without `vowels` both notes are the singer's home vowel (< 2 dB, ~0.8)."""
    from svu.dataset_scripts.synthetic import make_singers, midi_to_hz, sing

    singer = make_singers(3)[1]
    notes = [(0.1, 0.7, 57.0), (0.9, 1.5, 57.0)]
    f0 = float(midi_to_hz(57.0))

    def harmonic_profile_db(wave, onset):
        part = wave[int((onset + 0.15) * 16000): int((onset + 0.45) * 16000)]
        power = np.abs(np.fft.rfft(part * np.hanning(len(part)))) ** 2
        freqs = np.fft.rfftfreq(len(part), 1 / 16000)
        levels = np.array([power[np.abs(freqs - k * f0) < f0 / 4].max() for k in range(1, 13)])
        return 10 * np.log10(levels / levels.sum())

    def profile_distance(wave):
        return np.sqrt(np.mean((harmonic_profile_db(wave, 0.1) - harmonic_profile_db(wave, 0.9)) ** 2))

    assert profile_distance(sing(notes, 1.7, singer=singer, seed=1, vowels=["a", "i"]).wave) > 5.0
    assert profile_distance(sing(notes, 1.7, singer=singer, seed=1).wave) < 2.0
    with pytest.raises(ValueError, match="1 vowels for 2 notes"):
        sing(notes, 1.7, singer=singer, vowels=["a"])


def test_synthetic_pitch_corpus_chunks_hold_each_songs_annotation_once(tmp_path):
    from svu.dataset_scripts.prepare import load_prepared, prepare

    prepare("synthetic", tmp_path / "p", task="pitch", num_songs=3, song_seconds=7.0)
    data, meta = load_prepared(tmp_path / "p")
    assert meta["task"] == "pitch" and meta["label_scheme"] is None and meta["class_weights"] is None
    assert {split: sorted(set(data[split]["song_id"])) for split in data} == {
        "train": ["song000"], "validation": ["song001"], "test": ["song002"]}
    rows = sorted(data["train"], key=lambda row: row["chunk_start"])
    assert [row["chunk_start"] for row in rows] == [0.0, 5.0] and all(len(row["audio"]["array"]) == 5 * row["audio"]["sampling_rate"] for row in rows)
    times = np.concatenate([np.asarray(row["f0_times"]) + row["chunk_start"] for row in rows])
    assert np.allclose(times, np.arange(700) * 0.01, atol=1e-4)  # every annotation point once, in order
    assert all(0 <= min(row["f0_times"]) and max(row["f0_times"]) < 5.0 for row in rows)
    assert meta["songs"] == {"song000": {"seconds": 7.0}, "song001": {"seconds": 7.0}, "song002": {"seconds": 7.0}}

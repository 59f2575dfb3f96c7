"""Long-audio inference (`modeling_svu.long_audio`): stitching, memory bound, halves equivalence."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch

from svu.modeling_svu import SVUForNoteTranscription
from svu.modeling_svu.long_audio import array_blocks, stitched_posteriors, transcribe_array
from svu.modeling_svu.note_labels import logits_to_posteriors

SR = 16000
HOP_SECONDS = 4.0  # default 5 s windows with a 1 s overlap start every 4 s


def melody(seconds: float, seed: int) -> np.ndarray:
    """Harmonic notes of 0.25-0.7 s (MIDI 45-74) separated by 60-200 ms of silence, float32."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    f0, amplitude = np.zeros(n, dtype=np.float32), np.zeros(n, dtype=np.float32)
    t = rng.uniform(0.1, 0.3)
    while t < seconds - 0.8:
        duration = rng.uniform(0.25, 0.7)
        start, stop = int(t * SR), int((t + duration) * SR)
        f0[start:stop] = 440.0 * 2 ** ((rng.integers(45, 75) - 69) / 12)
        amplitude[start:stop] = 0.3
        t += duration + rng.uniform(0.06, 0.2)
    phase = (2 * np.pi / SR) * np.cumsum(f0, dtype=np.float64)
    wave = np.sin(phase) + 0.5 * np.sin(2 * phase) + 0.25 * np.sin(3 * phase)
    return (amplitude * wave).astype(np.float32)


def long_melody(minutes: int, seed: int = 0) -> np.ndarray:
    return np.concatenate([melody(60.0, seed * 1000 + m) for m in range(minutes)])


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return SVUForNoteTranscription.from_backbone("tiny-wav2vec2").eval()


def test_every_frame_once_from_the_window_where_it_is_farthest_from_an_edge(model):
    audio = melody(23.3, seed=1)
    runs = list(stitched_posteriors(model, array_blocks(audio, 7777), batch_size=3, silence_floor=None, progress=False))
    starts = [first for first, *_ in runs]
    lengths = [len(onset) for _, onset, _, _ in runs]
    assert starts == list(np.cumsum([0] + lengths[:-1]))  # contiguous, in order
    onset = np.concatenate([run[1] for run in runs])
    pitch = np.concatenate([run[3] for run in runs])
    assert len(onset) == (len(audio) - 400) // 320 + 1

    # Each window alone (5 s, the last one shorter), on the global 20 ms grid.
    fe = model.feature_extractor()
    windows = []
    for start in range(0, len(audio), int(HOP_SECONDS * SR)):
        chunk = audio[start : start + 5 * SR]
        with torch.no_grad():
            logits = model(fe(chunk, sampling_rate=SR, return_tensors="pt")["input_values"]).logits[0]
        windows.append((start // 320, *logits_to_posteriors(logits)))
        if start + 5 * SR >= len(audio):
            break
    for g in range(len(onset)):
        margins = [min(g - first, first + len(o) - 1 - g) for first, o, _, _ in windows]
        best = np.argsort(margins)[::-1]
        if margins[best[0]] < 0 or (len(best) > 1 and margins[best[0]] == margins[best[1]]):
            continue  # ties (the middle of an overlap) may go either way
        first, w_onset, _, w_pitch = windows[best[0]]
        assert onset[g] == pytest.approx(w_onset[g - first], abs=1e-5), g
        assert pitch[g] == w_pitch[g - first], g


def run_cli_measuring_memory(audio_path, model_dir, out_dir):
    code = (
        "import resource, sys\n"
        "from svu.cli import main\n"
        "rc = main(sys.argv[1:])\n"
        "print('MAXRSS_KB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
        "sys.exit(rc)\n"
    )
    command = [sys.executable, "-c", code, "transcribe", str(audio_path), "--model", str(model_dir),
               "-o", str(out_dir), "--format", "json", "-q"]  # fmt: skip
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="2")
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    peak_kb = int(result.stdout.split("MAXRSS_KB")[1].split()[0])
    return peak_kb / 1024


@pytest.mark.timeout(240)
def test_ten_minutes_bounded_memory_and_same_notes_as_its_halves(model, tmp_path):
    model_dir = tmp_path / "model"
    model.save_pretrained(model_dir)
    ten = long_melody(10)
    one = ten[: 60 * SR]
    sf.write(tmp_path / "one.wav", one, SR, subtype="FLOAT")
    sf.write(tmp_path / "ten.wav", ten, SR, subtype="FLOAT")

    # Peak memory: the 10-minute file may not cost more than a few MB over the 1-minute one. Holding the
    # decoded file would add 34 MB (9 M float32 samples at 16 kHz), not counting decoder copies.
    peak_one = run_cli_measuring_memory(tmp_path / "one.wav", model_dir, tmp_path / "out")
    peak_ten = run_cli_measuring_memory(tmp_path / "ten.wav", model_dir, tmp_path / "out")
    print(f"peak RSS: 1 min {peak_one:.1f} MB, 10 min {peak_ten:.1f} MB")
    assert peak_ten - peak_one < 16.0, (peak_one, peak_ten)
    notes = [tuple(n) for n in json.loads((tmp_path / "out" / "ten.json").read_text())["ten"]]

    # The halves, cut at 300 s (a window start: a multiple of the 4 s hop), transcribed on their own.
    cut = 300.0
    first_half = transcribe_array(model, ten[: int(cut * SR)], progress=False)
    second_half = [(on + cut, off + cut, p) for on, off, p in transcribe_array(model, ten[int(cut * SR) :], progress=False)]
    # Away from the cut: the last 5 s window before it is shortened in the first half; frames from 300.5 s
    # come from the same windows in both runs.
    def away(ns):
        return [(round(on, 4), round(off, 4), p) for on, off, p in ns if off <= cut - 5.0 or on >= cut + 1.0]

    assert len(notes) > 1000
    assert away(notes) == away(first_half + second_half)
    assert len(away(notes)) >= 0.95 * len(notes)
    assert all(a[1] <= b[0] for a, b in zip(notes, notes[1:]))  # no overlapping (doubled) notes


def test_silence_gives_no_notes_and_bad_audio_one_clear_error(model):
    assert transcribe_array(model, np.zeros(12 * SR, dtype=np.float32), progress=False) == []
    with pytest.raises(ValueError, match=r"audio has 399 samples .* at least 400 samples"):
        transcribe_array(model, np.zeros(399, dtype=np.float32), progress=False)
    with pytest.raises(ValueError, match=r"NaN or infinite samples \(first at 7.000 s\)"):
        audio = melody(9.0, seed=3)
        audio[7 * SR] = np.nan
        transcribe_array(model, audio, progress=False)
    with pytest.raises(ValueError, match="overlap"):
        transcribe_array(model, melody(9.0, seed=3), overlap_seconds=0.0, progress=False)
    with pytest.raises(ValueError, match="resample it to 16000 Hz"):
        model.transcribe(np.zeros(SR, dtype=np.float32), sampling_rate=44100)

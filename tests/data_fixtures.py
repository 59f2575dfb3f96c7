"""Helpers for the data tests: tiny audio files in the real corpora's layouts, simple pitch checks."""

import subprocess
from pathlib import Path

import numpy as np
import soundfile as sf

SR = 16000
# Small real third-party data copied into the repository (origin, commit and licence: data/*/PROVENANCE.md).
TEST_DATA = Path(__file__).resolve().parent / "data"


def tone(seconds: float, f0: float = 220.0, sr: int = SR, amplitude: float = 0.3, channels: int = 1) -> np.ndarray:
    t = np.arange(int(round(seconds * sr))) / sr
    wave = amplitude * np.sin(2 * np.pi * f0 * t) * (1 + 0.1 * np.sin(2 * np.pi * 3 * t))
    return np.stack([wave] * channels, axis=1) if channels > 1 else wave



def sung_notes(seconds: float, sr: int = SR, seed: int = 0, off_grid: bool = False) -> np.ndarray:
    """Sine notes of 0.3-0.7 s separated by 80-200 ms of digital silence, MIDI 48-72 (`off_grid`: any fractional
    pitch in that range, else whole semitones)."""
    rng = np.random.default_rng(seed)
    out, t = np.zeros(int(seconds * sr), dtype=np.float32), 0.2
    while t < seconds - 0.8:
        duration = rng.uniform(0.3, 0.7)
        n = np.arange(int(duration * sr))
        f0 = 440.0 * 2 ** (((rng.uniform(48, 72) if off_grid else rng.integers(48, 72)) - 69) / 12)
        out[int(t * sr) : int(t * sr) + len(n)] = 0.3 * np.sin(2 * np.pi * f0 * n / sr)
        t += duration + rng.uniform(0.08, 0.2)
    return out

def write_wav(path, seconds: float, f0: float = 220.0, sr: int = SR, silence_edges: float = 0.0, channels: int = 1) -> Path:
    """A sine tone WAV, optionally with ``silence_edges`` seconds of silence at both ends."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    wave = tone(seconds, f0, sr, channels=channels)
    if silence_edges:
        pad = np.zeros((int(silence_edges * sr),) + wave.shape[1:])
        wave = np.concatenate([pad, wave, pad])
    sf.write(path, wave, sr)
    return path


def write_mp3(path, seconds: float, f0: float = 220.0, sr: int = 32000, silent: bool = False) -> Path:
    """An mp3 (a tone, or digital silence) via the ffmpeg command line (Artist20 ships 32 kHz mp3)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    wav = path.with_suffix(".tmp.wav")
    sf.write(wav, tone(seconds, f0, sr) * (0.0 if silent else 1.0), sr)
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(wav), "-b:a", "32k", str(path)], check=True)
    wav.unlink()
    return path


def write_corrupt(path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"RIFF\x00\x00\x00\x00WAVEthis is not audio")
    return path


def estimate_f0(wave: np.ndarray, sr: int = SR, fmin: float = 50.0, fmax: float = 1000.0) -> float:
    """Autocorrelation pitch of a short voiced excerpt (Hz), with sub-octave error protection."""
    wave = wave - wave.mean()
    spectrum = np.fft.rfft(wave, 2 * len(wave))
    acf = np.fft.irfft(np.abs(spectrum) ** 2)[: len(wave)]
    lo, hi = int(sr / fmax), int(sr / fmin)
    lag = lo + int(np.argmax(acf[lo:hi]))
    # prefer the shortest lag whose correlation is nearly as strong (avoids picking 2x the period)
    for divisor in (4, 3, 2):
        short = int(round(lag / divisor))
        window = slice(max(lo, short - 2), short + 3)
        if short >= lo and acf[window].max() > 0.9 * acf[lag]:
            return sr / (window.start + int(np.argmax(acf[window])))
    return sr / lag


def hz_to_midi(f0: float) -> float:
    return 69.0 + 12.0 * np.log2(f0 / 440.0)


def chunk_targets(example, num_frames: int = 249, frame_seconds: float = 0.02) -> np.ndarray:
    """Frame targets of a prepared transcription chunk, as the collator computes them (default: 16 kHz, hop 320)."""
    from svu.modeling_svu.note_labels import notes_to_frame_targets

    notes = [(float(n["onset"]), float(n["offset"]), float(n["pitch"])) for n in example["notes_unclipped"]]
    return notes_to_frame_targets(notes, num_frames, frame_seconds)


def whole_songs(split, sampling_rate: int = SR):
    """(song_id, waveform at `sampling_rate`, notes) per song, glued back from its consecutive 5 s chunks; a note cut
    at a chunk edge (offset at the edge, the next chunk's note starting at 0 with the same pitch) is one note again."""
    from svu.dataset_scripts.audio import resample

    songs = {}
    for example in split.with_format("numpy"):
        songs.setdefault(str(example["song_id"]), []).append(example)
    for song_id, chunks in sorted(songs.items()):
        chunks.sort(key=lambda c: float(c["chunk_start"]))
        wave = np.concatenate([np.asarray(c["audio"]["array"], dtype=np.float32) for c in chunks])
        wave = resample(wave, int(chunks[0]["audio"]["sampling_rate"]), sampling_rate)
        notes = []
        for chunk in chunks:
            start = float(chunk["chunk_start"])
            for note in chunk["notes"]:
                onset, offset, pitch = float(note["onset"]) + start, float(note["offset"]) + start, float(note["pitch"])
                if notes and float(note["onset"]) == 0.0 and abs(notes[-1][1] - onset) < 1e-3 and notes[-1][2] == pitch:
                    notes[-1][1] = offset
                else:
                    notes.append([onset, offset, pitch])
        yield song_id, wave, notes


def train_steps(model, inputs, labels, steps, lr=2e-3, batch_size=4):
    """A few Adam steps on random (seeded) mini-batches of in-memory tensors; returns the model in eval mode."""
    import torch

    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(0)
    model.train()
    for _ in range(steps):
        batch = torch.randperm(len(inputs), generator=generator)[:batch_size]
        loss = model(inputs[batch], labels=labels[batch]).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


def constant_pitch_model(folder: Path, hz: float) -> float:
    """A tiny SVUForPitchEstimation whose output is the centre of `hz`'s bin, voiced, on every frame (last head
    layer: zero weights, a bias peaked on that bin), saved in `folder`: a model whose score is known. Its pitch."""
    import torch

    from svu.modeling_svu import SVUForPitchEstimation, tiny_backbone_config
    from svu.modeling_svu.pitch import bin_to_hz, hz_to_bin

    torch.manual_seed(0)
    model = SVUForPitchEstimation.from_backbone(tiny_backbone_config("wav2vec2"))
    last = [m for m in model.head.modules() if isinstance(m, torch.nn.Linear)][-1]
    peak = int(round(float(hz_to_bin(hz, model.config))))
    bias = torch.full((model.config.num_pitch_bins + 1,), -12.0)
    bias[peak - 1: peak + 2] = 12.0
    bias[-1] = 12.0  # voiced
    with torch.no_grad():
        last.weight.zero_()
        last.bias.copy_(bias)
    model.save_pretrained(folder)
    return float(bin_to_hz(peak, model.config))


"""Preprocessing shared by every corpus: decode, resample, trim, chunk, filter, encode.

Decoding and resampling are `modeling_svu.audio_io`'s (the one path every entry point uses).

All functions work on float32 mono waveforms at ``SAMPLING_RATE``, the rate prepared datasets are stored at: the
highest input rate of any supported backbone (24 kHz, MERT-v1), so no backbone hears audio band-limited below its
own Nyquist frequency; a model at a lower rate (16 kHz: wav2vec2, WavLM, MERT-v0, music2vec) gets its audio
resampled when batches are collated (`train.data.to_model_rate`). The cost: 1.5x the storage of 16 kHz audio.
Policies (ours where the paper is silent):

* **Chunking** (`chunk_waveform`): consecutive, non-overlapping chunks from sample 0. The last,
  partial chunk is kept, zero-padded to full length, only if it holds at least half a chunk
  (``min_last_fraction=0.5``); otherwise it is dropped. So a 7.3 s file gives 2 chunks of 3 s
  (the 1.3 s rest < 1.5 s is dropped) and 1 chunk of 5 s (the 2.3 s rest < 2.5 s is dropped);
  an 8 s file gives 2 chunks of 5 s (the 3 s rest is padded). A file shorter than half a chunk
  gives no chunk (and is reported as such by the builders).
* **RMS filter** (`passes_rms_filter`, the paper's Artist20 rule): mean over non-overlapping
  32 ms frames (the paper's 512 samples at 16 kHz; frame = hop; a trailing partial frame is ignored) of the
  frame RMS must be > 0.01.
* **Silence trimming** (`trim_silence`, VocalSet): leading and trailing 32 ms frames whose
  RMS is more than ``top_db`` (40 dB) below the loudest frame are cut; inner silences stay.
* **Vocal separation** (`Separator`): any callable ``separate(waveform, sr) -> waveform``
  (e.g. a wrapper around HT-Demucs) applied before chunking; the default `identity_separation`
  assumes the audio is already a vocal stem.
"""

import io
from typing import Callable, Iterator

import numpy as np
import soundfile as sf

from svu.modeling_svu import audio_io
from svu.modeling_svu.checkpoints import PUBLISHED

SAMPLING_RATE = max(checkpoint.sampling_rate for checkpoint in PUBLISHED.values())
RMS_FRAME = SAMPLING_RATE * 512 // 16000  # the paper's 512 samples at 16 kHz: 32 ms
RMS_THRESHOLD = 0.01

Separator = Callable[[np.ndarray, int], np.ndarray]


def identity_separation(waveform: np.ndarray, sampling_rate: int) -> np.ndarray:
    """Default separation hook: the audio is assumed to be an isolated vocal already."""
    return waveform


def to_mono(waveform: np.ndarray) -> np.ndarray:
    """(N,) or (N, C) -> (N,) float32 by channel mean."""
    waveform = np.asarray(waveform, dtype=np.float32)
    return waveform.mean(axis=1) if waveform.ndim == 2 else waveform


def resample(waveform: np.ndarray, orig_sr: int, target_sr: int = SAMPLING_RATE) -> np.ndarray:
    """Mono float32 at ``target_sr``: channels averaged, then the resampler every file goes through (soxr "HQ",
    `modeling_svu.audio_io.resample`)."""
    return audio_io.resample(to_mono(waveform), orig_sr, target_sr)


def load_audio(path, sampling_rate: int = SAMPLING_RATE, channel: int | None = None) -> np.ndarray:
    """Decode any FFmpeg-readable file (wav, flac, mp3; any bit depth and rate) to float32 mono at
    ``sampling_rate`` with `modeling_svu.audio_io.decode_audio`, the decode path `svu transcribe` and the
    pipelines use too (FFmpeg via torchcodec, channels averaged, soxr resampling). ``channel`` (0 = left,
    1 = right) keeps one channel instead of the average (MIR-1K's voice is its right channel).

    Raises ``ValueError`` naming the file and the problem: missing, a directory, empty (0 bytes), not
    readable, undecodable (text renamed .wav, corrupt mp3), no samples, or NaN/infinite samples (float WAV).
    A truncated file (far shorter than its container declares) is used, with a `TruncatedAudioWarning`.
    """
    return audio_io.decode_audio(path, sampling_rate, channel=channel)


def frame_rms(waveform: np.ndarray, frame: int = RMS_FRAME) -> np.ndarray:
    """RMS of each non-overlapping ``frame``-sample frame (trailing partial frame ignored)."""
    num_frames = len(waveform) // frame
    frames = np.asarray(waveform[: num_frames * frame], dtype=np.float64).reshape(num_frames, frame)
    return np.sqrt((frames**2).mean(axis=1))


def passes_rms_filter(chunk: np.ndarray, threshold: float = RMS_THRESHOLD, frame: int = RMS_FRAME) -> bool:
    """The paper's silence filter: mean frame RMS over 512-sample frames > ``threshold``."""
    rms = frame_rms(chunk, frame)
    return bool(rms.size and rms.mean() > threshold)


def trim_silence(waveform: np.ndarray, top_db: float = 40.0, frame: int = RMS_FRAME) -> np.ndarray:
    """Cut leading/trailing frames more than ``top_db`` below the loudest frame (whole frames)."""
    rms = frame_rms(waveform, frame)
    if rms.size == 0 or rms.max() == 0:
        return waveform[:0]
    loud = np.flatnonzero(20 * np.log10(np.maximum(rms, 1e-10) / rms.max()) > -top_db)
    return waveform[loud[0] * frame : (loud[-1] + 1) * frame]


def num_chunks(num_samples: int, chunk_samples: int, min_last_fraction: float = 0.5) -> int:
    full, rest = divmod(num_samples, chunk_samples)
    return full + int(rest > 0 and rest >= min_last_fraction * chunk_samples)


def song_chunk_bounds(num_samples: int, chunk_samples: int, padded: bool = True) -> list:
    """``(start, end)`` samples of the consecutive chunks that cut an F0-annotated song (`common.pitch_examples`).
    ``padded``: every tail kept as a full chunk (``chunk_waveform(min_last_fraction=0)``'s chunks; ``end`` may pass
    the song's end, the chunk being zero-padded). Else no padding: a rest shorter than half a chunk joins the last
    chunk, so a chunk is 0.5x to 1.5x ``chunk_samples`` long and a shorter recording is one chunk."""
    if padded:
        every_tail = num_chunks(num_samples, chunk_samples, min_last_fraction=0.0)
        return [(i * chunk_samples, (i + 1) * chunk_samples) for i in range(every_tail)]
    starts = list(range(0, max(num_samples, 1), chunk_samples))
    if len(starts) > 1 and num_samples - starts[-1] < chunk_samples / 2:
        starts.pop()
    return [(start, starts[i + 1] if i + 1 < len(starts) else num_samples) for i, start in enumerate(starts)]


def chunk_waveform(
    waveform: np.ndarray, chunk_samples: int, min_last_fraction: float = 0.5
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(start_sample, chunk)``; see the module docstring for the last-chunk policy."""
    for index in range(num_chunks(len(waveform), chunk_samples, min_last_fraction)):
        start = index * chunk_samples
        yield start, padded_slice(waveform, start, start + chunk_samples)


def padded_slice(waveform: np.ndarray, start: int, end: int) -> np.ndarray:
    """``waveform[start:end]``, zero-padded to ``end - start`` samples where it runs past the waveform's end."""
    chunk = waveform[start:end]
    return np.pad(chunk, (0, end - start - len(chunk))) if len(chunk) < end - start else chunk


def encode_wav(waveform: np.ndarray, sampling_rate: int = SAMPLING_RATE) -> bytes:
    """16-bit PCM WAV bytes, what the ``datasets.Audio`` column stores (clipped to [-1, 1])."""
    buffer = io.BytesIO()
    sf.write(buffer, np.clip(waveform, -1.0, 1.0), sampling_rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def audio_cell(waveform: np.ndarray, name: str, sampling_rate: int = SAMPLING_RATE) -> dict:
    return {"bytes": encode_wav(waveform, sampling_rate), "path": name}

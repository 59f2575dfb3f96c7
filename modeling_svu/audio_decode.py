"""Decode and resample audio: the one path every SVU entry point reads files through, so the same file gives the
same samples everywhere (data preparation, `svu transcribe`, `svu pitch`, `svu classify` and the SVU pipelines):

1. FFmpeg decodes the file at its own sampling rate (through torchcodec);
2. the channels are averaged (a plain mean, as `datasets.Audio` does; not FFmpeg's surround downmix matrix), or
   one channel is kept when ``channel=`` asks for it (MIR-1K: the voice is the right channel of a stereo file);
3. soxr (quality "HQ") resamples the mono signal to the requested rate, as one stream.

Files are read in blocks (`block_seconds`) and the resampler keeps its state across blocks, so a 2-hour file
streams in bounded memory and the blocks joined are exactly the whole file decoded at once.

This file is part of a saved model repo (the pipelines read files through it). Where torchcodec or soxr cannot be
imported, reading a file or resampling is an ImportError saying so, unless the caller passes a ``fallback``
(the svu package's `audio_io` passes an ffmpeg subprocess; a repo carries no subprocess code). An array at the
model's rate needs neither package.

A file that decodes to far less audio than its container declares (a cut download: the first 700 bytes of a
4 s mp3 decode to 0.05 s; a WAV whose data chunk declares more than the file holds) is still used, with a
`TruncatedAudioWarning` naming the file and both durations.
"""

import os
import re
import warnings
from typing import Optional

import numpy as np

BLOCK_SECONDS = 30.0
# A file is called truncated when it decodes to less than this fraction of the duration its container
# declares, and at least TRUNCATION_MIN_SECONDS less (header durations of VBR mp3s are estimates).
TRUNCATION_FRACTION = 0.9
TRUNCATION_MIN_SECONDS = 0.25
SOXR_QUALITY = "HQ"  # libsoxr's 20-bit precision
_NO_MORE_FRAMES = "No audio frames were decoded"
MISSING_BACKEND = "reading and resampling audio need torchcodec and soxr: pip install torchcodec soxr"


class TruncatedAudioWarning(UserWarning):
    """The file decodes to far less audio than its container declares; what decodes is used."""


def path_problem(path) -> Optional[str]:
    """Why ``path`` cannot be an audio file (missing, a directory, empty, not readable), or None."""
    if not isinstance(path, (str, os.PathLike)) or "://" in os.fspath(path):
        return None  # encoded bytes or a URL: FFmpeg's own error says what is wrong
    path = os.fspath(path)
    if os.path.isdir(path):
        return "a directory, not an audio file"
    if not os.path.exists(path):
        return "no such file (a broken symbolic link)" if os.path.islink(path) else "no such file"
    if os.path.getsize(path) == 0:
        return "an empty file (0 bytes)"
    if not os.access(path, os.R_OK, effective_ids=os.access in os.supports_effective_ids):
        return "not readable (permission denied)"
    return None


def decoder_message(error: Exception) -> str:
    """The first line of an FFmpeg/torchcodec error, without its C++ source location."""
    text = str(error).strip()
    text = text.splitlines()[0] if text else type(error).__name__
    return re.sub(r"^.*?\.cpp:\d+,?\s*", "", text) or type(error).__name__


def _main_backend():
    """``(AudioDecoder, soxr)`` when both import, else None (then the caller's fallback is used)."""
    try:
        import soxr
        from torchcodec.decoders import AudioDecoder
    except ImportError:
        return None
    except (OSError, RuntimeError):  # torchcodec is installed but cannot load FFmpeg's libraries
        return None
    return AudioDecoder, soxr


def _source_name(source) -> str:
    return os.fspath(source) if isinstance(source, (str, os.PathLike)) else f"<{len(source)} bytes of encoded audio>"


def open_audio(source, sampling_rate: int, block_seconds: float = BLOCK_SECONDS, channel: Optional[int] = None,
               fallback=None, opener=None):  # fmt: skip
    """``(declared number of samples or None, iterator of float32 mono blocks at sampling_rate)``.

    ``source`` is a path, a URL or encoded bytes (anything FFmpeg reads). ``channel``: None averages the channels;
    an index (0 = left, 1 = right) keeps that channel only (``ValueError`` if the file has fewer). Raises
    ``ValueError`` whose message
    starts with the file's name: missing, a directory, empty, not readable, undecodable; while iterating, on
    NaN/infinite samples (float WAV, with the time of the first) and on a file with no samples at all.
    ``fallback``: what opens the file when torchcodec or soxr cannot be imported (`_open_torchcodec`'s
    arguments and result); without one, ImportError. ``opener``: what opens the file instead of torchcodec (the
    same arguments and result; torchcodec is then not imported).
    """
    name = _source_name(source)
    problem = path_problem(source)
    if problem:
        raise ValueError(f"{name}: {problem}")
    if isinstance(source, os.PathLike):
        source = os.fspath(source)
    backend = _main_backend() if opener is None else None
    if opener is None and backend is None and fallback is None:
        raise ImportError(f"{name}: {MISSING_BACKEND}")
    opened = opener or (_open_torchcodec if backend else fallback)
    declared_seconds, target_blocks = opened(source, name, sampling_rate, block_seconds, backend, channel)
    declared_seconds = max(declared_seconds or 0.0, wav_declared_seconds(source)) or None
    total = int(round(declared_seconds * sampling_rate)) if declared_seconds else None

    def blocks():
        decoded = 0
        for block in target_blocks:
            decoded += len(block)
            yield block
        if decoded == 0:
            raise ValueError(f"{name}: holds no audio samples")
        seconds = decoded / sampling_rate
        if declared_seconds and seconds < TRUNCATION_FRACTION * declared_seconds and (
            declared_seconds - seconds >= TRUNCATION_MIN_SECONDS
        ):
            warnings.warn(
                f"{name}: decoded {seconds:.2f} s of audio but the file declares {declared_seconds:.2f} s; it looks "
                f"truncated (an interrupted download or copy?). Using the {seconds:.2f} s that decode.",
                TruncatedAudioWarning,
                stacklevel=2,
            )

    return total, blocks()


def wav_declared_seconds(source) -> float:
    """The duration a WAV file's data chunk declares (0.0 for anything else). FFmpeg and libsndfile both take a
    WAV's length from the file's size, so a WAV cut short would otherwise read as a complete, shorter one."""
    if not isinstance(source, str) or not os.path.isfile(source):
        return 0.0
    with open(source, "rb") as handle:
        header = handle.read(12)
        if len(header) < 12 or header[:4] != b"RIFF" or header[8:12] != b"WAVE":
            return 0.0
        block_align = rate = 0
        while True:
            chunk = handle.read(8)
            if len(chunk) < 8:
                return 0.0
            kind, size = chunk[:4], int.from_bytes(chunk[4:], "little")
            if kind == b"fmt ":
                fmt = handle.read(size + size % 2)
                rate, block_align = int.from_bytes(fmt[4:8], "little"), int.from_bytes(fmt[12:14], "little")
            elif kind == b"data":  # 0 or a placeholder over 2 GiB: a size a streaming writer never filled in
                valid = block_align > 0 and rate > 0 and 0 < size < 0x7FFFFFFF
                return size / block_align / rate if valid else 0.0
            else:
                handle.seek(size + size % 2, os.SEEK_CUR)


def decode_audio(source, sampling_rate: int, channel: Optional[int] = None, fallback=None, opener=None) -> np.ndarray:
    """The whole file as float32 mono at ``sampling_rate`` (`open_audio`'s blocks joined; ``channel``,
    ``fallback`` and ``opener`` as there)."""
    _, blocks = open_audio(source, sampling_rate, channel=channel, fallback=fallback, opener=opener)
    return np.concatenate(list(blocks)).astype(np.float32, copy=False)


def resample(waveform, orig_sr: int, target_sr: int, fallback=None) -> np.ndarray:
    """Mono float32 at ``target_sr`` with the resampler `open_audio` uses ((N,) or (N, C) input, channels averaged).
    ``fallback(waveform, orig_sr, target_sr)`` resamples when soxr cannot be imported; without one, ImportError."""
    waveform = np.asarray(waveform, dtype=np.float32)
    if waveform.ndim == 2:
        waveform = waveform.mean(axis=1, dtype=np.float32)
    if orig_sr == target_sr:
        return waveform
    backend = _main_backend()
    if backend:
        return backend[1].resample(waveform, orig_sr, target_sr, quality=SOXR_QUALITY).astype(np.float32, copy=False)
    if fallback is None:
        raise ImportError(f"resampling {orig_sr} Hz audio to {target_sr} Hz: {MISSING_BACKEND}")
    return fallback(waveform, orig_sr, target_sr)


# ----- the main path: torchcodec + soxr ---------------------------------------------------------------------


def check_channel(name, channel, channels) -> None:
    if channel is not None and not 0 <= channel < channels:
        raise ValueError(f"{name}: has {channels} channel(s); channel {channel} (0 = left, 1 = right) was asked for")


def _open_torchcodec(source, name, sampling_rate, block_seconds, backend, channel=None):
    AudioDecoder, soxr = backend
    try:
        decoder = AudioDecoder(source)
        metadata = decoder.metadata
    except Exception as error:  # torchcodec raises RuntimeError/ValueError with FFmpeg's message
        raise ValueError(f"{name}: cannot decode audio: {decoder_message(error)}") from None
    native_rate = metadata.sample_rate
    if not native_rate:
        raise ValueError(f"{name}: cannot decode audio: no sample rate in the file")
    check_channel(name, channel, metadata.num_channels or 1)

    def native_blocks():
        start = 0.0
        while True:
            try:
                samples = decoder.get_samples_played_in_range(start, start + block_seconds)
            except RuntimeError as error:
                if _NO_MORE_FRAMES in str(error):
                    return  # past the last frame
                raise ValueError(f"{name}: cannot decode audio at {start:.1f} s: {decoder_message(error)}") from None
            data = samples.data.numpy()
            if data.shape[-1] == 0:
                return
            # Ranges are sample-exact at the file's own rate: consecutive ranges join to the whole file, even
            # when the stream starts after 0 (an mp3's encoder delay makes its first range short).
            yield data.mean(axis=0, dtype=np.float32) if channel is None else data[channel].astype(np.float32)
            start += block_seconds

    blocks = resampled_blocks(native_blocks(), native_rate, sampling_rate, name, soxr)
    return metadata.duration_seconds_from_header, blocks


def resampled_blocks(native_blocks, native_rate: int, sampling_rate: int, name: str, soxr):
    """Mono float32 blocks at the file's own rate -> at `sampling_rate` (one soxr stream), NaN/infinity checked."""
    stream = None
    if native_rate != sampling_rate:
        stream = soxr.ResampleStream(native_rate, sampling_rate, 1, dtype="float32", quality=SOXR_QUALITY)
    done = 0
    for block in native_blocks:
        bad = np.flatnonzero(~np.isfinite(block))
        if bad.size:  # checked at the file's own rate: the time is exact
            raise ValueError(f"{name}: NaN or infinite samples (first at {(done + bad[0]) / native_rate:.3f} s)")
        done += len(block)
        yield stream.resample_chunk(block) if stream else block
    if stream:
        yield stream.resample_chunk(np.zeros(0, dtype=np.float32), last=True)

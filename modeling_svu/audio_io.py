"""Decode and resample audio: the one path every SVU entry point reads files through.

Data preparation (`dataset_scripts.audio.load_audio`), `svu transcribe`, the `singing-transcription` pipeline
and the SVU `audio-classification` pipeline all call `open_audio` / `decode_audio`, so the same file gives the
same samples everywhere:

1. FFmpeg decodes the file at its own sampling rate (through torchcodec);
2. the channels are averaged (a plain mean, as `datasets.Audio` does; not FFmpeg's surround downmix matrix), or
   one channel is kept when ``channel=`` asks for it (MIR-1K: the voice is the right channel of a stereo file);
3. soxr (quality "HQ") resamples the mono signal to the requested rate, as one stream.

Files are read in blocks (`block_seconds`) and the resampler keeps its state across blocks, so a 2-hour file
streams in bounded memory and the blocks joined are exactly the whole file decoded at once.

Fallback (this file is Hub remote code, which may run where torchcodec or soxr is not installed): when either
cannot be imported, an ``ffmpeg`` subprocess does the same three steps (its own libsoxr at the same precision,
channels averaged here). Its samples match the main path within 2e-6 (the resampler runs per channel before
the mean), not bit for bit; install ``torchcodec`` and ``soxr`` for identical samples.

A file that decodes to far less audio than its container declares (a cut download: the first 700 bytes of a
4 s mp3 decode to 0.05 s) is still used, with a `TruncatedAudioWarning` naming the file and both durations.
"""

import os
import re
import shutil
import subprocess
import tempfile
import warnings
from typing import Optional

import numpy as np

BLOCK_SECONDS = 30.0
# What the samples depend on; part of a prepared dataset's fingerprint, so folders decoded otherwise are rebuilt.
DECODE_PATH = "ffmpeg-native-rate, channel-mean, soxr-HQ"
# A file is called truncated when it decodes to less than this fraction of the duration its container
# declares, and at least TRUNCATION_MIN_SECONDS less (header durations of VBR mp3s are estimates).
TRUNCATION_FRACTION = 0.9
TRUNCATION_MIN_SECONDS = 0.25
SOXR_QUALITY = "HQ"  # libsoxr's 20-bit precision; the ffmpeg fallback asks for the same
_NO_MORE_FRAMES = "No audio frames were decoded"
# The fallback's resampler: FFmpeg's libsoxr at the precision of soxr's "HQ" (20 bits).
_FFMPEG_RESAMPLE = ["-af", "aresample=resampler=soxr:precision=20"]


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
    """``(AudioDecoder, soxr)`` when both import, else None (then the ffmpeg subprocess is used)."""
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


def open_audio(source, sampling_rate: int, block_seconds: float = BLOCK_SECONDS, channel: Optional[int] = None):
    """``(declared number of samples or None, iterator of float32 mono blocks at sampling_rate)``.

    ``source`` is a path, a URL or encoded bytes (anything FFmpeg reads). ``channel``: None averages the channels;
    an index (0 = left, 1 = right) keeps that channel only (``ValueError`` if the file has fewer). Raises
    ``ValueError`` whose message
    starts with the file's name: missing, a directory, empty, not readable, undecodable; while iterating, on
    NaN/infinite samples (float WAV, with the time of the first) and on a file with no samples at all.
    """
    name = _source_name(source)
    problem = path_problem(source)
    if problem:
        raise ValueError(f"{name}: {problem}")
    if isinstance(source, os.PathLike):
        source = os.fspath(source)
    backend = _main_backend()
    opened = _open_torchcodec if backend else _open_ffmpeg
    declared_seconds, target_blocks = opened(source, name, sampling_rate, block_seconds, backend, channel)
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


def decode_audio(source, sampling_rate: int, channel: Optional[int] = None) -> np.ndarray:
    """The whole file as float32 mono at ``sampling_rate`` (`open_audio`'s blocks joined; ``channel`` as there)."""
    _, blocks = open_audio(source, sampling_rate, channel=channel)
    return np.concatenate(list(blocks)).astype(np.float32, copy=False)


def resample(waveform, orig_sr: int, target_sr: int) -> np.ndarray:
    """Mono float32 at ``target_sr`` with the resampler `open_audio` uses ((N,) or (N, C) input, channels averaged)."""
    waveform = np.asarray(waveform, dtype=np.float32)
    if waveform.ndim == 2:
        waveform = waveform.mean(axis=1, dtype=np.float32)
    if orig_sr == target_sr:
        return waveform
    backend = _main_backend()
    if backend:
        return backend[1].resample(waveform, orig_sr, target_sr, quality=SOXR_QUALITY).astype(np.float32, copy=False)
    command = [
        _ffmpeg("ffmpeg"), "-nostdin", "-hide_banner", "-loglevel", "error", "-f", "f32le", "-ar", str(orig_sr),
        "-ac", "1", "-i", "pipe:0", *_FFMPEG_RESAMPLE, "-ar", str(target_sr), "-f", "f32le", "pipe:1",
    ]  # fmt: skip
    result = subprocess.run(command, input=waveform.tobytes(), capture_output=True)
    if result.returncode != 0:
        raise ValueError(f"ffmpeg could not resample {orig_sr} Hz to {target_sr} Hz: {decoder_message(result.stderr.decode())}")
    return np.frombuffer(result.stdout, dtype=np.float32)


# ----- the main path: torchcodec + soxr ---------------------------------------------------------------------


def _check_channel(name, channel, channels) -> None:
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
    _check_channel(name, channel, metadata.num_channels or 1)

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

    def target_blocks():
        stream = None
        if native_rate != sampling_rate:
            stream = soxr.ResampleStream(native_rate, sampling_rate, 1, dtype="float32", quality=SOXR_QUALITY)
        done = 0
        for block in native_blocks():
            bad = np.flatnonzero(~np.isfinite(block))
            if bad.size:  # checked at the file's own rate: the time is exact
                raise ValueError(f"{name}: NaN or infinite samples (first at {(done + bad[0]) / native_rate:.3f} s)")
            done += len(block)
            yield stream.resample_chunk(block) if stream else block
        if stream:
            yield stream.resample_chunk(np.zeros(0, dtype=np.float32), last=True)

    return metadata.duration_seconds_from_header, target_blocks()


# ----- the fallback: an ffmpeg subprocess ----------------------------------------------------------------


def _ffmpeg(tool: str) -> str:
    found = shutil.which(tool)
    if not found:
        raise ValueError(
            f"{tool} was not found; SVU decodes audio with torchcodec + soxr (pip install torchcodec soxr) "
            "or, without them, with the ffmpeg command line tools."
        )
    return found


def _probe(path: str, name: str):
    command = [
        _ffmpeg("ffprobe"), "-v", "error", "-select_streams", "a:0", "-show_entries",
        "stream=sample_rate,channels,duration:format=duration", "-of", "default=noprint_wrappers=1", path,
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True)
    fields = dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)
    if result.returncode != 0 or not fields.get("sample_rate", "N/A").isdigit():
        lines = result.stderr.strip().splitlines()
        reason = lines[-1].split(": ", 1)[-1] if lines else "no audio stream"
        raise ValueError(f"{name}: cannot decode audio: {reason}")
    duration = next((fields[k] for k in ("duration",) if fields.get(k, "N/A") != "N/A"), None)
    return int(fields["sample_rate"]), int(fields["channels"]), float(duration) if duration else None


def _open_ffmpeg(source, name, sampling_rate, block_seconds, backend=None, channel=None):
    temporary = None
    if isinstance(source, bytes):  # ffprobe needs a file to read the container's declared duration
        with tempfile.NamedTemporaryFile(suffix=".audio", delete=False) as handle:
            handle.write(source)
        source = temporary = handle.name
    try:
        native_rate, channels, declared = _probe(source, name)
        _check_channel(name, channel, channels)
    except ValueError:
        if temporary:
            os.unlink(temporary)
        raise
    resampling = _FFMPEG_RESAMPLE + ["-ar", str(sampling_rate)] if native_rate != sampling_rate else []
    command = [_ffmpeg("ffmpeg"), "-nostdin", "-hide_banner", "-loglevel", "error", "-i", source, *resampling, "-f", "f32le", "pipe:1"]

    def target_blocks():
        frame_bytes = 4 * channels
        block_bytes = frame_bytes * max(1, int(block_seconds * sampling_rate))
        with tempfile.TemporaryFile() as errors:
            process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=errors)
            try:
                pending, done = b"", 0
                while data := process.stdout.read(block_bytes):
                    data = pending + data
                    whole = len(data) - len(data) % frame_bytes
                    pending = data[whole:]
                    block = np.frombuffer(data[:whole], dtype=np.float32).reshape(-1, channels)
                    block = block.mean(axis=1, dtype=np.float32) if channel is None else block[:, channel].copy()
                    bad = np.flatnonzero(~np.isfinite(block))
                    if bad.size:
                        raise ValueError(f"{name}: NaN or infinite samples (first at {(done + bad[0]) / sampling_rate:.3f} s)")
                    done += len(block)
                    yield block
                if process.wait() != 0:
                    errors.seek(0)
                    lines = errors.read().decode(errors="replace").strip().splitlines()
                    reason = lines[-1].split(": ", 1)[-1] if lines else "ffmpeg failed"
                    raise ValueError(f"{name}: cannot decode audio: {reason}")
            finally:
                if process.poll() is None:  # the consumer stopped early
                    process.kill()
                process.stdout.close()
                process.wait()
                if temporary:
                    os.unlink(temporary)

    return declared, target_blocks()

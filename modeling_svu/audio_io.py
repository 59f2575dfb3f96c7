"""Decode and resample audio in the svu package: `audio_decode`'s path (torchcodec + soxr), and where torchcodec
cannot load FFmpeg's libraries or soxr is missing, an ``ffmpeg`` subprocess doing the same three steps (its own
libsoxr at the same precision, channels averaged here). Its samples match the main path within 2e-6 (the
resampler runs per channel before the mean), not bit for bit.

Data preparation (`dataset_scripts.audio.load_audio`), `svu transcribe`, `svu pitch` and `svu classify` read files
here. A saved model repo carries `audio_decode` only (its pipelines read files through it), never this file.
"""

import os
import shutil
import subprocess
import tempfile
from typing import Optional

import numpy as np

from .audio_decode import BLOCK_SECONDS, TruncatedAudioWarning, check_channel, decoder_message, path_problem
from .audio_decode import resampled_blocks
from .audio_decode import decode_audio as _decode_audio
from .audio_decode import open_audio as _open_audio
from .audio_decode import resample as _resample

__all__ = ["BLOCK_SECONDS", "DECODE_PATH", "TruncatedAudioWarning", "decode_audio", "decoder_message", "open_audio",
           "path_problem", "resample"]  # fmt: skip

# What the samples depend on; part of a prepared dataset's fingerprint, so folders decoded otherwise are rebuilt.
DECODE_PATH = "ffmpeg-native-rate, channel-mean, soxr-HQ"
# file names taken as audio where a folder is searched (the folder corpus, `svu` catalogues); FFmpeg reads them all
AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a", ".aac", ".aif", ".aiff", ".wma", ".webm", ".mp4")
# The fallback's resampler: FFmpeg's libsoxr at the precision of soxr's "HQ" (20 bits).
_FFMPEG_RESAMPLE = ["-af", "aresample=resampler=soxr:precision=20"]
# what `open_audio(without_torch=True)` reads with libsndfile: lossless encodings whose float samples equal FFmpeg's
_SOUNDFILE_SUFFIXES = (".wav", ".flac", ".aif", ".aiff")
_SOUNDFILE_SUBTYPES = ("PCM_16", "PCM_24", "PCM_32", "FLOAT")


def open_audio(source, sampling_rate: int, block_seconds: float = BLOCK_SECONDS, channel: Optional[int] = None,
               without_torch: bool = False):  # fmt: skip
    """`audio_decode.open_audio`, through an ffmpeg subprocess where torchcodec or soxr cannot load. With
    `without_torch`, a PCM or float WAV / FLAC / AIFF file is decoded by libsndfile instead of torchcodec (the same
    samples; torch is not imported), for a run whose model needs no torch (`saved_onnx`); such a file's declared
    length is the length libsndfile finds, so a truncated one is read without `TruncatedAudioWarning`."""
    return _open_audio(source, sampling_rate, block_seconds, channel, fallback=_open_ffmpeg,
                       opener=_torch_free_opener(source, without_torch))


def decode_audio(source, sampling_rate: int, channel: Optional[int] = None, without_torch: bool = False) -> np.ndarray:
    """`audio_decode.decode_audio`, through an ffmpeg subprocess where torchcodec or soxr cannot load;
    `without_torch` as `open_audio`'s."""
    return _decode_audio(source, sampling_rate, channel, fallback=_open_ffmpeg,
                         opener=_torch_free_opener(source, without_torch))


def _torch_free_opener(source, without_torch: bool):
    """libsndfile's opener for a file it decodes as FFmpeg does, when torch is not to be imported; else None."""
    return _open_soundfile if without_torch and _soundfile_decodes(source) else None


def resample(waveform, orig_sr: int, target_sr: int) -> np.ndarray:
    """`audio_decode.resample`, through an ffmpeg subprocess where soxr cannot load."""
    return _resample(waveform, orig_sr, target_sr, fallback=_ffmpeg_resample)


def _libsndfile():
    """``(soundfile, soxr)`` when both import, else None."""
    try:
        import soundfile
        import soxr
    except ImportError:
        return None
    return soundfile, soxr


def _soundfile_decodes(source) -> bool:
    """A file libsndfile decodes to the samples FFmpeg gives: lossless PCM or float, in WAV, FLAC or AIFF."""
    if not isinstance(source, (str, os.PathLike)) or not str(source).lower().endswith(_SOUNDFILE_SUFFIXES):
        return False
    modules = _libsndfile()
    if modules is None:
        return False
    try:
        info = modules[0].info(os.fspath(source))
    except (OSError, RuntimeError):  # soundfile.LibsndfileError is a RuntimeError
        return False
    return info.format in ("WAV", "FLAC", "AIFF") and info.subtype in _SOUNDFILE_SUBTYPES and info.frames > 0


def _open_soundfile(source, name, sampling_rate, block_seconds, backend=None, channel=None):
    soundfile, soxr = _libsndfile()
    source = os.fspath(source)
    info = soundfile.info(source)
    check_channel(name, channel, info.channels)

    def native_blocks():
        with soundfile.SoundFile(source) as handle:
            for block in handle.blocks(blocksize=int(block_seconds * info.samplerate), dtype="float32", always_2d=True):
                yield block.mean(axis=1, dtype=np.float32) if channel is None else block[:, channel].copy()

    return info.frames / info.samplerate, resampled_blocks(native_blocks(), info.samplerate, sampling_rate, name, soxr)


def _ffmpeg_resample(waveform, orig_sr: int, target_sr: int) -> np.ndarray:
    command = [
        _ffmpeg("ffmpeg"), "-nostdin", "-hide_banner", "-loglevel", "error", "-f", "f32le", "-ar", str(orig_sr),
        "-ac", "1", "-i", "pipe:0", *_FFMPEG_RESAMPLE, "-ar", str(target_sr), "-f", "f32le", "pipe:1",
    ]  # fmt: skip
    result = subprocess.run(command, input=waveform.tobytes(), capture_output=True)
    if result.returncode != 0:
        raise ValueError(f"ffmpeg could not resample {orig_sr} Hz to {target_sr} Hz: {decoder_message(result.stderr.decode())}")
    return np.frombuffer(result.stdout, dtype=np.float32)


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
        check_channel(name, channel, channels)
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

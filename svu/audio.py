"""The one place where `svu` commands decode audio files: every command reads audio through `read_blocks` (a
stream, for long recordings) or `read_waveform` (the whole file), so changing the decoder is a change here.

Audio is decoded by FFmpeg (torchcodec) block by block at the file's own rate, averaged to mono and resampled
with one streaming soxr resampler (memory does not grow with the file's length). Errors are ValueErrors whose
text names the problem (missing, a directory, empty, not readable, undecodable, NaN samples).
"""

from pathlib import Path

import numpy as np

from dataset_scripts.audio import audio_path_problem, decoder_message

BLOCK_SECONDS = 30.0


def read_blocks(path, sampling_rate: int, block_seconds: float = BLOCK_SECONDS):
    """``(approximate number of samples, iterator of float32 mono blocks at sampling_rate)`` of an audio file.

    Blocks are decoded at the file's own rate (torchcodec ranges are sample-exact there), averaged to mono
    and resampled by one streaming soxr resampler, so the result equals resampling the whole file at once.
    """
    import soxr
    from torchcodec.decoders import AudioDecoder


    path = Path(path)
    problem = audio_path_problem(path)  # missing, a directory, empty, not readable
    if problem:
        raise ValueError(problem)
    try:
        decoder = AudioDecoder(str(path))
        native_rate = decoder.metadata.sample_rate
        duration = decoder.metadata.duration_seconds
    except (RuntimeError, ValueError) as error:
        raise ValueError(f"cannot decode audio: {decoder_message(error)}") from None
    if not native_rate:
        raise ValueError("cannot decode audio: no sample rate in the file")
    total = int(round((duration or 0) * sampling_rate)) or None

    def blocks():
        resampler = soxr.ResampleStream(native_rate, sampling_rate, 1, dtype="float32", quality="HQ")
        start = 0.0
        while True:
            try:
                samples = decoder.get_samples_played_in_range(start, start + block_seconds)
            except RuntimeError as error:
                if "No audio frames were decoded" not in str(error):
                    raise ValueError(f"cannot decode audio at {start:.1f} s: {decoder_message(error)}") from None
                break  # the previous block ended exactly at the end of the file
            block = samples.data.numpy().mean(axis=0).astype(np.float32)
            last = len(block) < int(round(block_seconds * native_rate))
            yield resampler.resample_chunk(block, last=last)
            if last:
                return
            start += block_seconds
        yield resampler.resample_chunk(np.zeros(0, dtype=np.float32), last=True)

    return total, blocks()


def read_waveform(path, sampling_rate: int) -> np.ndarray:
    """The whole file as float32 mono at `sampling_rate` (the blocks of `read_blocks`, concatenated)."""
    _, blocks = read_blocks(path, sampling_rate)
    waveform = np.concatenate([np.zeros(0, dtype=np.float32), *blocks])
    if waveform.size == 0:
        raise ValueError("the file holds no audio samples")
    bad = np.flatnonzero(~np.isfinite(waveform))
    if bad.size:
        raise ValueError(f"audio has NaN or infinite samples (first at {bad[0] / sampling_rate:.3f} s)")
    return waveform

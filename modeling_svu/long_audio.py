"""Transcribe (or track the pitch of) recordings of any length with a model trained on fixed-length chunks.

The audio arrives as a stream of sample blocks and is cut into windows of `chunk_seconds` that overlap by
`overlap_seconds`. Window starts are whole frames apart, so every window's frames lie on one global frame
grid (frame ``g`` covers samples ``[g * hop, g * hop + receptive_field)``). Where two windows overlap, each
frame is taken from the window in which it lies farther from the edge (the seam is the middle of the
overlap), and the stitched posteriors are decoded once, in a streaming `NoteDecoder`: a note crossing a
seam is neither split nor doubled. Memory is bounded by one batch of windows, whatever the file length.

Frames whose input is digital silence (RMS below `silence_floor`, default 1e-4 = -80 dBFS) are forced to
silence (ours): a silent recording gives no notes whatever the model's weights.
"""

from typing import Iterable, Iterator, Optional

import numpy as np

from .note_labels import NoteDecoder, decoding_options, logits_to_posteriors
from .pitch import decode_pitch, frame_times

DEFAULT_OVERLAP_SECONDS = 1.0
DEFAULT_BATCH_SIZE = 8
BLOCK_SECONDS = 30.0


def array_blocks(audio, block_samples: int) -> Iterator[np.ndarray]:
    """An in-memory 1-D waveform as a stream of blocks."""
    if hasattr(audio, "detach"):
        audio = audio.detach().cpu().numpy()
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 1:
        raise ValueError(f"audio must be 1-D mono samples; got shape {audio.shape}.")
    for start in range(0, len(audio), block_samples):
        yield audio[start : start + block_samples]


def iter_windows(blocks: Iterable[np.ndarray], window_samples: int, hop_samples: int, min_samples: int, sampling_rate: int):
    """Yield ``(start_sample, window, is_last)``: windows every `hop_samples`, the last one cut at the end.

    Raises ValueError on NaN/infinite samples and on audio shorter than `min_samples` (one frame).
    """
    buffer, buffer_start, next_start = np.zeros(0, dtype=np.float32), 0, 0
    for block in blocks:
        block = np.asarray(block, dtype=np.float32).reshape(-1)
        if not np.isfinite(block).all():
            first_bad = buffer_start + len(buffer) + int(np.flatnonzero(~np.isfinite(block))[0])
            raise ValueError(f"audio has NaN or infinite samples (first at {first_bad / sampling_rate:.3f} s).")
        buffer = np.concatenate([buffer, block])
        # A window is emitted once audio exists after it, so the window reaching the end is known to be last.
        while buffer_start + len(buffer) - next_start > window_samples:
            offset = next_start - buffer_start
            yield next_start, buffer[offset : offset + window_samples], False
            next_start += hop_samples
            buffer, buffer_start = buffer[next_start - buffer_start :], next_start
    tail = buffer[next_start - buffer_start :]
    if len(tail) < min_samples:
        total = buffer_start + len(buffer)
        raise ValueError(
            f"audio has {total} samples ({1000 * total / sampling_rate:.1f} ms at {sampling_rate} Hz); "
            f"at least {min_samples} samples ({1000 * min_samples / sampling_rate:.0f} ms) are needed for one frame."
        )
    yield next_start, tail, True


class _NoProgressBar:
    def update(self, count: int) -> None:
        pass

    def close(self) -> None:
        pass


def _progress_bar(model, total, desc: str, show: bool):
    """transformers' tqdm (its progress switch applies), imported only when shown; a model run without torch
    (`saved_onnx.SavedOnnxModel`) brings its own `progress_bar`, so that transformers is not imported."""
    if not show:
        return _NoProgressBar()
    make = getattr(model, "progress_bar", None)
    if make is None:
        from transformers.utils.logging import tqdm as make
    return make(total=total, unit="chunk", desc=desc)


def float_logits(logits) -> np.ndarray:
    """Logits as a float32 array (an engine may return a torch tensor or an array)."""
    if hasattr(logits, "detach"):
        return logits.detach().float().cpu().numpy()
    return np.asarray(logits, dtype=np.float32)


def _model_logits(model, inputs):
    import torch

    device = next(model.parameters()).device
    with torch.inference_mode():
        return model(inputs["input_values"].to(device), attention_mask=inputs.get("attention_mask")).logits


def _frame_rms(window: np.ndarray, num_frames: int, hop: int, field: int) -> np.ndarray:
    energy = np.concatenate([[0.0], np.cumsum(window.astype(np.float64) ** 2)])
    starts = np.arange(num_frames) * hop
    ends = np.minimum(starts + field, len(window))
    return np.sqrt((energy[ends] - energy[starts]) / np.maximum(ends - starts, 1))


def stitched_logits(
    model,
    blocks: Iterable[np.ndarray],
    *,
    feature_extractor=None,
    chunk_seconds: Optional[float] = None,
    overlap_seconds: float = DEFAULT_OVERLAP_SECONDS,
    batch_size: int = DEFAULT_BATCH_SIZE,
    silence_floor: Optional[float] = 1e-4,
    total_samples: Optional[int] = None,
    progress: bool = True,
    engine=None,
    desc: str = "transcribing",
) -> Iterator[tuple]:
    """Yield ``(first_frame, logits, quiet)`` runs covering every frame once, in order: the frame logits of the
    windows (module docstring; a float32 array), and where the input is digital silence (RMS < `silence_floor`;
    all False when None). Any frame-wise task model (transcription, pitch, lyrics).

    `engine`: what computes the logits of a batch of windows (`engines.load_engine(model, ...)`: ONNX Runtime,
    int8, bf16); default the model itself in fp32. `model` may also be a `saved_onnx.SavedOnnxModel` (with its
    engine): all that is used of it is its config, `min_input_samples`, `feature_extractor` and train mode.
    """
    config = model.config
    sampling_rate, hop = config.sampling_rate, config.frame_hop_samples
    field = model.min_input_samples()
    chunk_frames = int(round((chunk_seconds or config.chunk_seconds) * sampling_rate / hop))
    overlap_frames = int(round(overlap_seconds * sampling_rate / hop))
    window_samples, hop_samples = chunk_frames * hop, (chunk_frames - overlap_frames) * hop
    frames_per_window = (window_samples - field) // hop + 1
    hop_frames = chunk_frames - overlap_frames
    if window_samples < field or hop_frames < 1 or frames_per_window <= hop_frames:
        raise ValueError(
            f"overlap_seconds={overlap_seconds} with chunk_seconds={chunk_frames * hop / sampling_rate}: the overlap "
            f"must span at least {2 * hop / sampling_rate * 1000:.0f} ms and be shorter than the chunk."
        )
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
    feature_extractor = feature_extractor or model.feature_extractor()
    seam = (frames_per_window - hop_frames) // 2  # frames of the overlap taken from the earlier window
    total_windows = None
    if total_samples is not None:
        total_windows = 1 + max(0, -(-(total_samples - window_samples) // hop_samples))
    bar = _progress_bar(model, total_windows, desc, progress)
    emitted = 0  # global frames already yielded

    def run(batch):
        nonlocal emitted
        inputs = feature_extractor(
            [window for _, window, _ in batch], sampling_rate=sampling_rate, return_tensors="pt"
        )
        if engine is not None:
            logits = engine(inputs["input_values"], inputs.get("attention_mask"))
        else:
            logits = _model_logits(model, inputs)
        logits = float_logits(logits)
        for (start, window, is_last), window_logits in zip(batch, logits):
            quiet = np.zeros(len(window_logits), dtype=bool)
            if silence_floor is not None:
                quiet = _frame_rms(window, len(window_logits), hop, field) < silence_floor
            first = start // hop
            stop = len(window_logits) if is_last else hop_frames + seam
            keep = slice(emitted - first, stop)
            yield emitted, window_logits[keep], quiet[keep]
            emitted = first + stop
        bar.update(len(batch))

    was_training = model.training
    model.eval()
    try:
        batch = []
        for window in iter_windows(blocks, window_samples, hop_samples, field, sampling_rate):
            # Windows of one batch have the same length (no padding), so batching never changes the frames.
            if batch and (len(batch) == batch_size or len(window[1]) != len(batch[0][1])):
                yield from run(batch)
                batch = []
            batch.append(window)
        yield from run(batch)
    finally:
        bar.close()
        model.train(was_training)


def stitched_posteriors(model, blocks: Iterable[np.ndarray], **kwargs) -> Iterator[tuple]:
    """Yield ``(first_frame, onset_prob, silence_prob, pitch_index)`` runs covering every frame once, in order
    (`stitched_logits`, whose keyword arguments it takes); quiet frames are forced to silence, no onset."""
    for first, logits, quiet in stitched_logits(model, blocks, **kwargs):
        onset, silence, pitch = logits_to_posteriors(logits, model.config.num_octaves)
        onset[quiet], silence[quiet], pitch[quiet] = 0.0, 1.0, -1
        yield first, onset, silence, pitch


def transcribe_blocks(model, blocks: Iterable[np.ndarray], decoding=None, posteriors=None, **kwargs) -> list:
    """Notes ``[(onset_s, offset_s, midi), ...]`` of a stream of 1-D sample blocks at the model's sampling rate.

    Keyword arguments are those of `stitched_posteriors`; the decoding thresholds come from `model.config`,
    overridden by `decoding` (e.g. ``{"onset_threshold": 0.3}``). A `posteriors` list receives the stitched
    ``(onset, silence, pitch)`` frame arrays as they are decoded.
    """
    decoder = NoteDecoder(**{**decoding_options(model.config), **(decoding or {})})
    notes = []
    for _, onset, silence, pitch in stitched_posteriors(model, blocks, **kwargs):
        if posteriors is not None:
            posteriors.append((onset, silence, pitch))
        notes += decoder.push(onset, silence, pitch)
    return notes + decoder.finish()


def transcribe_array(model, audio, **kwargs) -> list:
    """Notes of an in-memory 1-D waveform at the model's sampling rate (see `transcribe_blocks`)."""
    block = int(BLOCK_SECONDS * model.config.sampling_rate)
    kwargs.setdefault("total_samples", len(audio))
    return transcribe_blocks(model, array_blocks(audio, block), **kwargs)


def pitch_track_blocks(model, blocks: Iterable[np.ndarray], voicing_threshold: Optional[float] = None, **kwargs) -> dict:
    """The F0 track of a stream of 1-D sample blocks at the model's sampling rate, with a pitch model:
    ``{"times", "f0_hz", "voicing", "voiced", "pitch_hz"}`` arrays, one value per frame (`pitch.decode_pitch`;
    `times` are `pitch.frame_times`, the centre of each frame's input). Frames of digital silence are unvoiced.
    Keyword arguments are those of `stitched_logits`; `voicing_threshold` defaults to `config.voicing_threshold`.
    """
    kwargs.setdefault("desc", "pitch")
    parts = {"f0_hz": [], "voicing": [], "voiced": [], "pitch_hz": []}
    for _, logits, quiet in stitched_logits(model, blocks, **kwargs):
        decoded = decode_pitch(logits, model.config, voicing_threshold=voicing_threshold)
        decoded["f0_hz"][quiet], decoded["voicing"][quiet], decoded["voiced"][quiet] = 0.0, 0.0, False
        for key, values in parts.items():
            values.append(decoded[key])
    track = {key: np.concatenate(values) for key, values in parts.items()}
    track["times"] = frame_times(len(track["f0_hz"]), model.config)
    return track


def lyrics_logits(model, blocks: Iterable[np.ndarray], **kwargs) -> np.ndarray:
    """(frames, vocab) CTC logits of a stream of 1-D sample blocks, by a lyrics model: the stitched window logits
    (`stitched_logits`, whose keyword arguments it takes), frames of digital silence forced to the blank."""
    kwargs.setdefault("desc", "lyrics")
    blank = model.config.ctc_vocab.index("<pad>")
    parts = [np.zeros((0, model.config.ctc_vocab_size), dtype=np.float32)]
    for _, logits, quiet in stitched_logits(model, blocks, **kwargs):
        logits = logits.copy()  # quiet frames are overwritten
        logits[quiet] = -1e4
        logits[quiet, blank] = 0.0
        parts.append(logits)
    return np.concatenate(parts)


def pitch_array(model, audio, voicing_threshold=None, **kwargs) -> dict:
    """Frame-level F0 of an in-memory 1-D waveform at the model's sampling rate, any length, by a pitch model
    (`pitch_track_blocks`, whose keyword arguments it takes)."""
    block = int(BLOCK_SECONDS * model.config.sampling_rate)
    kwargs.setdefault("total_samples", len(audio))
    return pitch_track_blocks(model, array_blocks(audio, block), voicing_threshold=voicing_threshold, **kwargs)

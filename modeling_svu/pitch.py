"""Singing pitch (frame-level F0): the pitch bins of `SVUForPitchEstimation`, its targets and its decoding.

    from svu.modeling_svu.pitch import decode_pitch, frame_times
    out = decode_pitch(logits[0], model.config)           # logits (frames, num_pitch_bins + 1) of one clip
    times = frame_times(len(out["f0_hz"]), model.config)  # seconds: the centre of each frame's input window
    out["f0_hz"], out["voicing"], out["voiced"]           # Hz (0 where unvoiced), confidence 0..1, bool

Bins, as CREPE: bin `i` is centred `i * 100 / pitch_bins_per_semitone` cents above `pitch_fmin_hz` (defaults:
20-cent bins from C1 = 32.70 Hz, 360 bins: six octaves, up to 2.07 kHz). The last logit is the voicing logit. Targets are Gaussians
(sigma `pitch_target_sigma_cents`) over the bins around the true pitch, all zero on unvoiced frames; decoding
takes the argmax bin and refines it by the activation-weighted average of the bins within +-4 of it, which
recovers pitches between bin centres to a few cents.

Cents here are absolute: `hz_to_cents(hz) = 1200 * log2(hz / 10)` (CREPE's reference, 10 Hz).
"""

import numpy as np

CENTS_REFERENCE_HZ = 10.0
DECODE_HALF_WIDTH = 4  # bins each side of the peak in the local weighted average (CREPE's choice)


def hz_to_cents(hz):
    """Cents above 10 Hz of frequencies `hz` (array or scalar); NaN where `hz` <= 0 (unvoiced)."""
    hz = np.asarray(hz, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(hz > 0, 1200.0 * np.log2(np.where(hz > 0, hz, 1.0) / CENTS_REFERENCE_HZ), np.nan)


def cents_to_hz(cents):
    """The inverse of `hz_to_cents`."""
    return CENTS_REFERENCE_HZ * 2.0 ** (np.asarray(cents, dtype=np.float64) / 1200.0)


def cents_per_bin(config) -> float:
    return 100.0 / config.pitch_bins_per_semitone


def hz_to_bin(hz, config):
    """Fractional bin index of `hz` (bin 0 = `config.pitch_fmin_hz`); NaN where `hz` <= 0."""
    return (hz_to_cents(hz) - hz_to_cents(config.pitch_fmin_hz)) / cents_per_bin(config)


def bin_to_hz(index, config):
    """Frequency in Hz of a (fractional) bin index: the inverse of `hz_to_bin`."""
    return cents_to_hz(hz_to_cents(config.pitch_fmin_hz) + np.asarray(index, dtype=np.float64) * cents_per_bin(config))


def frame_times(num_frames: int, config) -> np.ndarray:
    """Time in seconds of each model output frame: the centre of the input window it sees
    (`i * hop / rate + receptive_field / (2 * rate)`, 12.5 ms + 20 ms steps for the 16 kHz base backbones)."""
    offset = config.receptive_field_samples / (2.0 * config.sampling_rate)
    return offset + np.arange(int(num_frames)) * config.frame_seconds


def f0_at(times, f0_hz, query_times) -> np.ndarray:
    """F0 in Hz at `query_times` from an annotation (`times` ascending, `f0_hz`, 0 = unvoiced): interpolated
    in cents between two voiced neighbours, else the nearer annotation's value (so a frame at a voicing edge
    takes the nearer side); 0 outside the annotated span (half an annotation step beyond its ends)."""
    times = np.asarray(times, dtype=np.float64)
    f0_hz = np.asarray(f0_hz, dtype=np.float64)
    query = np.asarray(query_times, dtype=np.float64)
    if len(times) == 0:
        return np.zeros(len(query))
    if len(times) == 1:
        return np.where(np.abs(query - times[0]) < 1e-3, f0_hz[0], 0.0)
    right = np.clip(np.searchsorted(times, query), 1, len(times) - 1)
    left = right - 1
    span = times[right] - times[left]
    weight = np.clip((query - times[left]) / np.where(span > 0, span, 1.0), 0.0, 1.0)
    both = (f0_hz[left] > 0) & (f0_hz[right] > 0)
    cents = hz_to_cents(np.where(both, f0_hz[left], 1.0)) * (1 - weight) + hz_to_cents(np.where(both, f0_hz[right], 1.0)) * weight
    nearest = np.where(weight < 0.5, f0_hz[left], f0_hz[right])
    out = np.where(both, cents_to_hz(cents), nearest)
    step = np.median(np.diff(times))
    inside = (query >= times[0] - step / 2) & (query <= times[-1] + step / 2)
    return np.where(inside, out, 0.0)


def pitch_targets(times, f0_hz, frame_times_s, config) -> np.ndarray:
    """Targets (frames, num_pitch_bins + 1) float32 at `frame_times_s`: on a voiced frame a Gaussian over the bins
    (sigma `config.pitch_target_sigma_cents`, peak 1 at the true pitch, clipped to the bin range), on an unvoiced
    one zeros; the last column is voicing (1 voiced, 0 unvoiced)."""
    f0 = f0_at(times, f0_hz, frame_times_s)
    targets = np.zeros((len(f0), config.num_pitch_bins + 1), dtype=np.float32)
    voiced = f0 > 0
    if voiced.any():
        low, high = hz_to_cents(config.pitch_fmin_hz), hz_to_cents(bin_to_hz(config.num_pitch_bins - 1, config))
        cents = np.clip(hz_to_cents(f0[voiced]), low, high)
        centres = low + np.arange(config.num_pitch_bins) * cents_per_bin(config)
        sigma = config.pitch_target_sigma_cents
        targets[voiced, :-1] = np.exp(-((centres[None, :] - cents[:, None]) ** 2) / (2 * sigma * sigma))
    targets[:, -1] = voiced
    return targets


def _as_numpy(x) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().float().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # no overflow warnings for large |x|


def decode_bins(activations, config) -> np.ndarray:
    """Pitch in Hz of each frame of bin activations (..., num_pitch_bins): the activation-weighted average bin of
    the +-4 bins around the argmax."""
    activations = np.asarray(activations, dtype=np.float64)
    peak = activations.argmax(-1)
    offsets = np.arange(-DECODE_HALF_WIDTH, DECODE_HALF_WIDTH + 1)
    window = np.clip(peak[..., None] + offsets, 0, activations.shape[-1] - 1)
    inside = (peak[..., None] + offsets >= 0) & (peak[..., None] + offsets < activations.shape[-1])
    weights = np.take_along_axis(activations, window, -1) * inside
    total = weights.sum(-1)
    index = np.where(total > 0, (weights * window).sum(-1) / np.where(total > 0, total, 1.0), peak)
    return bin_to_hz(index, config)


def decode_pitch(logits, config, voicing_threshold=None) -> dict:
    """F0 of frame logits (..., frames, num_pitch_bins + 1) (array or tensor; the model's `logits`).

    Returns `f0_hz` (Hz, 0 where unvoiced), `voicing` (the voicing probability, 0..1), `voiced` (bool: `voicing`
    >= the threshold, `config.voicing_threshold` unless `voicing_threshold` is given) and `pitch_hz` (the decoded
    pitch of every frame, voiced or not, e.g. for mir_eval's voicing-independent metrics), as float arrays.
    """
    logits = _as_numpy(logits)
    expected = config.num_pitch_bins + 1
    if logits.ndim < 2 or logits.shape[-1] != expected:
        raise ValueError(
            f"pitch logits must be (..., frames, {expected}) (num_pitch_bins + voicing); got {tuple(logits.shape)}."
        )
    threshold = config.voicing_threshold if voicing_threshold is None else float(voicing_threshold)
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"voicing_threshold={threshold!r} must be a probability in [0, 1].")
    pitch_hz = decode_bins(_sigmoid(logits[..., :-1]), config)
    voicing = _sigmoid(logits[..., -1])
    voiced = voicing >= threshold
    return {"f0_hz": np.where(voiced, pitch_hz, 0.0), "voicing": voicing, "voiced": voiced, "pitch_hz": pitch_hz}

"""The paper's note label scheme: notes <-> per-frame targets on the backbone's frame grid.

Frame ``i`` stands for time ``i * frame_seconds`` (one CNN hop: 320 samples = 20 ms at 16 kHz).
Per frame the model predicts 2 + (num_octaves + 1) + 13 logits:

    [0]                         onset       (sigmoid; BCE with pos_weight)
    [1]                         silence     (sigmoid; BCE)
    [2 : 3 + num_octaves]       octave      (softmax; index num_octaves = "no note")
    [3 + num_octaves : end]     pitch class (softmax; index 12 = "no note")

Targets are a float array of shape (num_frames, 4): onset (0/1), silence (0/1), octave index,
pitch-class index; padded frames hold -100 in every column.

MIDI pitch ``p`` in [lowest_midi, lowest_midi + 12 * num_octaves) maps to octave
``(p - lowest_midi) // 12`` and pitch class ``(p - lowest_midi) % 12`` (lowest_midi 36 = C2, so
pitch class 0 is C). Pitches outside the range (ours; the paper is silent) are folded by whole
octaves into it, keeping onset, duration and pitch class; fractional MIDI values are rounded.
"""

import numpy as np

NUM_PITCH_CLASSES = 12
IGNORE_INDEX = -100
ONSET, SILENCE, OCTAVE, PITCH_CLASS = range(4)


def num_transcription_logits(num_octaves: int = 4) -> int:
    return 2 + (num_octaves + 1) + (NUM_PITCH_CLASSES + 1)


def logit_slices(num_octaves: int = 4) -> dict:
    """Where each output group sits in the last dimension of the transcription logits."""
    octave_end = 3 + num_octaves
    return {
        "onset": slice(0, 1),
        "silence": slice(1, 2),
        "octave": slice(2, octave_end),
        "pitch_class": slice(octave_end, octave_end + NUM_PITCH_CLASSES + 1),
    }


def fold_pitch(midi: float, lowest_midi: int = 36, num_octaves: int = 4) -> int:
    """Round to the nearest MIDI note and fold it by whole octaves into the model's range."""
    pitch = int(round(float(midi)))
    highest = lowest_midi + 12 * num_octaves - 1
    while pitch < lowest_midi:
        pitch += 12
    while pitch > highest:
        pitch -= 12
    return pitch


def notes_to_frame_targets(
    notes,
    num_frames: int,
    frame_seconds: float = 0.02,
    lowest_midi: int = 36,
    num_octaves: int = 4,
) -> np.ndarray:
    """Frame targets (num_frames, 4) for ``notes`` = iterable of (onset_s, offset_s, midi).

    A note covers frames ``round(onset / frame_seconds)`` up to, not including,
    ``round(offset / frame_seconds)``, and at least its onset frame. Notes are written in onset
    order, so where notes overlap the later one wins. Notes (or parts) outside
    ``[0, num_frames)`` are cut; an onset before frame 0 (a note carried over from the previous
    chunk) marks no onset, only voiced frames.
    """
    targets = np.zeros((num_frames, 4), dtype=np.float32)
    targets[:, SILENCE] = 1.0
    targets[:, OCTAVE] = num_octaves
    targets[:, PITCH_CLASS] = NUM_PITCH_CLASSES
    for onset, offset, midi in sorted(notes, key=lambda n: n[0]):
        start = int(round(onset / frame_seconds))
        end = max(int(round(offset / frame_seconds)), start + 1)
        lo, hi = max(start, 0), min(end, num_frames)
        if lo >= hi:
            continue
        relative = fold_pitch(midi, lowest_midi, num_octaves) - lowest_midi
        targets[lo:hi, SILENCE] = 0.0
        targets[lo:hi, OCTAVE] = relative // NUM_PITCH_CLASSES
        targets[lo:hi, PITCH_CLASS] = relative % NUM_PITCH_CLASSES
        if start >= 0:
            targets[start, ONSET] = 1.0
    return targets

"""The paper's note label scheme: notes <-> per-frame targets on the backbone's frame grid.

Frame ``i`` stands for time ``i * frame_seconds`` (one CNN hop: 320 samples = 20 ms at 16 kHz, 13.3 ms at
24 kHz for MERT-v1). Targets are computed for the model's frame rate and pitch range
from the notes, when a batch is collated; they are never frozen in a prepared dataset.
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


def align_frames(logits, labels, *others):
    """Cut transcription logits and labels (and any `others` with frames on dim 1) to a common frame count.

    The backbone and the targets may round a chunk's last frame differently, so exactly one frame of
    difference is trimmed; more means the labels were made for another frame rate or hop (another label
    scheme) and raises ValueError instead of silently scoring misaligned frames.
    """
    logit_frames, label_frames = logits.shape[1], labels.shape[1]
    if abs(logit_frames - label_frames) > 1:
        raise ValueError(
            f"transcription logits have {logit_frames} frames but the labels have {label_frames}: more than one "
            "frame apart, so the labels were made for another frame rate or hop than the model's "
            "(compute them with notes_to_frame_targets at config.frame_seconds)."
        )
    frames = min(logit_frames, label_frames)
    return (logits[:, :frames], labels[:, :frames], *(x[:, :frames] for x in others))


# ----- decoding ---------------------------------------------------------------------------------
#
# The paper's decoding: an onset is a frame whose onset probability is >= onset_threshold and is the
# maximum within +-onset_window frames; a note runs from its onset to the next frame whose silence
# probability is >= silence_threshold, or to the next onset; its pitch is the mode over its frames of
# ``octave * 12 + pitch_class + lowest_midi``. Choices the paper leaves open (ours, following the
# MIR-ST500 authors' reference decoder where it has one):
#   - "maximum within the window" is ``p == max(window)``, so equal neighbours (ties) are all onsets;
#     the window is clipped at the ends of the input;
#   - an onset frame wins over a silence frame at the same frame;
#   - frames whose octave or pitch class is "no note" do not vote for the pitch; a note none of whose
#     frames votes is dropped (counted in ``NoteDecoder.num_unpitched``); pitch ties go to the lower pitch;
#   - frame ``i`` is time ``i * frame_seconds``; a note still open at the end of the input ends at
#     ``num_frames * frame_seconds``.


def _as_numpy(x) -> np.ndarray:
    if hasattr(x, "detach"):  # a torch tensor
        x = x.detach().float().cpu().numpy()
    return np.asarray(x)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return np.exp(-np.logaddexp(0.0, -x))


def logits_to_posteriors(logits, num_octaves: int = 4):
    """(T, 20) transcription logits -> (onset_prob, silence_prob, pitch_index), each of length T.

    ``pitch_index`` is ``octave * 12 + pitch_class`` (0 .. 12 * num_octaves - 1), or -1 where either
    argmax is "no note".
    """
    logits = _as_numpy(logits).astype(np.float64)
    expected = num_transcription_logits(num_octaves)
    if logits.ndim != 2 or logits.shape[1] != expected:
        raise ValueError(f"logits must be (frames, {expected}); got shape {logits.shape}.")
    slices = logit_slices(num_octaves)
    octave = logits[:, slices["octave"]].argmax(axis=1)
    pitch_class = logits[:, slices["pitch_class"]].argmax(axis=1)
    pitch_index = np.where(
        (octave == num_octaves) | (pitch_class == NUM_PITCH_CLASSES), -1, octave * NUM_PITCH_CLASSES + pitch_class
    )
    return _sigmoid(logits[:, 0]), _sigmoid(logits[:, 1]), pitch_index.astype(np.int64)


class NoteDecoder:
    """The paper's decoding, streaming: `push` frame posteriors block by block, `finish` at the end.

    Memory stays bounded by the block size: only ``onset_window`` frames of context and the pitch votes of
    the open note are kept between blocks. Feeding the whole input at once or in any blocks gives the same
    notes. Notes are ``(onset_s, offset_s, midi)`` tuples with integer MIDI pitch.
    """

    def __init__(
        self,
        frame_seconds: float = 0.02,
        lowest_midi: int = 36,
        num_octaves: int = 4,
        onset_threshold: float = 0.4,
        onset_window: int = 3,
        silence_threshold: float = 0.5,
    ):
        if onset_window < 0:
            raise ValueError(f"onset_window must be >= 0, got {onset_window}.")
        self.frame_seconds = frame_seconds
        self.lowest_midi = lowest_midi
        self.num_pitches = NUM_PITCH_CLASSES * num_octaves
        self.onset_threshold = onset_threshold
        self.onset_window = onset_window
        self.silence_threshold = silence_threshold
        self.num_unpitched = 0  # notes dropped because none of their frames had a pitch
        self._onset = np.zeros(0)
        self._silence = np.zeros(0)
        self._pitch = np.zeros(0, dtype=np.int64)
        self._buffer_start = 0  # global index of the first buffered frame
        self._next = 0  # first frame not decided yet
        self._open = None  # onset frame of the note being decoded
        self._votes = np.zeros(self.num_pitches, dtype=np.int64)
        self._finished = False

    @property
    def num_frames(self) -> int:
        """Frames pushed so far."""
        return self._buffer_start + len(self._onset)

    def push(self, onset_prob, silence_prob, pitch_index) -> list:
        """Append frames; returns the notes that are now complete."""
        if self._finished:
            raise ValueError("NoteDecoder.push after finish(); make a new decoder.")
        onset_prob, silence_prob = _as_numpy(onset_prob).ravel(), _as_numpy(silence_prob).ravel()
        pitch_index = _as_numpy(pitch_index).ravel().astype(np.int64)
        if not len(onset_prob) == len(silence_prob) == len(pitch_index):
            raise ValueError(
                f"posteriors differ in length: onset {len(onset_prob)}, silence {len(silence_prob)}, "
                f"pitch {len(pitch_index)} frames."
            )
        if not (np.isfinite(onset_prob).all() and np.isfinite(silence_prob).all()):
            raise ValueError("frame posteriors contain NaN or infinite values.")
        if ((pitch_index < -1) | (pitch_index >= self.num_pitches)).any():
            raise ValueError(f"pitch_index must be -1 or in [0, {self.num_pitches}).")
        self._onset = np.concatenate([self._onset, onset_prob])
        self._silence = np.concatenate([self._silence, silence_prob])
        self._pitch = np.concatenate([self._pitch, pitch_index])
        # A frame is decided once the frames of its onset window to the right have arrived.
        return self._decide(self.num_frames - self.onset_window)

    def finish(self) -> list:
        """Decide the last frames and close a note still open at the end of the input."""
        notes = self._decide(self.num_frames, at_end=True)
        if self._open is not None:
            notes += self._close(self.num_frames)
        self._finished = True
        return notes

    def _decide(self, stop: int, at_end: bool = False) -> list:
        start = self._next
        if stop <= start:
            return []
        w = self.onset_window
        # Window maximum of every buffered frame; -inf padding clips the window at the input's ends
        # (on the left it only reaches frames already decided, except at the very start).
        padded = np.pad(self._onset, w, constant_values=-np.inf)
        window_max = np.lib.stride_tricks.sliding_window_view(padded, 2 * w + 1).max(axis=1)
        lo, hi = start - self._buffer_start, stop - self._buffer_start
        onset = self._onset[lo:hi]
        is_onset = (onset >= self.onset_threshold) & (onset == window_max[lo:hi])
        is_silence = (self._silence[lo:hi] >= self.silence_threshold) & ~is_onset
        onsets = start + np.flatnonzero(is_onset)
        silences = start + np.flatnonzero(is_silence)

        notes, next_onset = [], 0
        while True:
            if self._open is None:
                if next_onset == len(onsets):
                    break
                self._open = int(onsets[next_onset])
                next_onset += 1
            ends = []
            if next_onset < len(onsets):
                ends.append(int(onsets[next_onset]))
            later_silence = np.searchsorted(silences, self._open, side="right")
            if later_silence < len(silences):
                ends.append(int(silences[later_silence]))
            if not ends:
                self._vote(max(self._open, start), stop)
                break
            notes += self._close(min(ends), vote_from=max(self._open, start))

        self._next = stop
        keep_from = max(self._next - w, self._buffer_start) - self._buffer_start
        self._onset, self._silence, self._pitch = (
            self._onset[keep_from:], self._silence[keep_from:], self._pitch[keep_from:]
        )
        self._buffer_start += keep_from
        return notes

    def _vote(self, start: int, stop: int):
        pitches = self._pitch[start - self._buffer_start : stop - self._buffer_start]
        self._votes += np.bincount(pitches[pitches >= 0], minlength=self.num_pitches)

    def _close(self, end: int, vote_from=None) -> list:
        if vote_from is not None:
            self._vote(vote_from, end)
        onset, votes = self._open, self._votes
        self._open, self._votes = None, np.zeros(self.num_pitches, dtype=np.int64)
        if votes.sum() == 0:
            self.num_unpitched += 1
            return []
        midi = int(votes.argmax()) + self.lowest_midi  # argmax: ties go to the lower pitch
        return [(round(onset * self.frame_seconds, 6), round(end * self.frame_seconds, 6), midi)]


def decoding_options(config) -> dict:
    """The decoding keyword arguments held by an `SVUConfig` (frame rate, pitch range, thresholds)."""
    return dict(
        frame_seconds=config.frame_seconds,
        lowest_midi=config.lowest_midi,
        num_octaves=config.num_octaves,
        onset_threshold=config.onset_threshold,
        onset_window=config.onset_window,
        silence_threshold=config.silence_threshold,
    )


def decode_posteriors(
    onset_prob,
    silence_prob,
    pitch_index,
    *,
    frame_seconds: float = 0.02,
    num_octaves: int = 4,
    lowest_midi: int = 36,
    onset_threshold: float = 0.4,
    onset_window: int = 3,
    silence_threshold: float = 0.5,
) -> list:
    """Notes ``[(onset_s, offset_s, midi), ...]`` from per-frame probabilities (see `logits_to_posteriors`)."""
    decoder = NoteDecoder(frame_seconds, lowest_midi, num_octaves, onset_threshold, onset_window, silence_threshold)
    return decoder.push(onset_prob, silence_prob, pitch_index) + decoder.finish()


def decode_logits(
    logits,
    *,
    frame_seconds: float = 0.02,
    num_octaves: int = 4,
    lowest_midi: int = 36,
    onset_threshold: float = 0.4,
    onset_window: int = 3,
    silence_threshold: float = 0.5,
) -> list:
    """Notes ``[(onset_s, offset_s, midi), ...]`` from one input's (T, 20) transcription logits."""
    return decode_posteriors(
        *logits_to_posteriors(logits, num_octaves),
        frame_seconds=frame_seconds,
        num_octaves=num_octaves,
        lowest_midi=lowest_midi,
        onset_threshold=onset_threshold,
        onset_window=onset_window,
        silence_threshold=silence_threshold,
    )

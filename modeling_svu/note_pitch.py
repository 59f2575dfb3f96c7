"""Note pitch in cents: each transcribed note's fractional MIDI pitch, from a frame-level F0 track.

A note ``(onset_s, offset_s, midi)`` gets the median, in fractional MIDI (so in cents), of the F0 of the voiced
frames whose time lies in ``[onset_s, offset_s)``; a note without a voiced frame gets None. The median in MIDI
is the median in Hz mapped to MIDI (for an odd number of frames; for an even number, the log-mean of the two
middle values): vibrato, glides at the edges and a few octave errors do not move it.

`pitched_notes` gives the notes every output writes: a note with a fractional pitch is numbered by it (its nearest
integer), so a MIDI note + pitch bend, the CSV and the JSON all hold the same pitch for it.
"""

import numpy as np

from .pitch import hz_to_cents

A4_CENTS = float(hz_to_cents(440.0))


def hz_to_midi(hz):
    """Fractional MIDI number of a frequency (69 = A4 = 440 Hz); NaN for frequencies <= 0."""
    return 69.0 + (hz_to_cents(hz) - A4_CENTS) / 100.0


def note_pitch_midi(notes, times, f0_hz, voiced=None) -> list:
    """The fractional MIDI pitch of each note (a float, or None where the note has no voiced frame).

    `notes`: ``(onset_s, offset_s, midi, ...)`` tuples; `times`: the F0 track's frame times in seconds (sorted);
    `f0_hz`: its F0 per frame (0 where unvoiced); `voiced`: per-frame booleans (default: ``f0_hz > 0``).
    """
    times = np.asarray(times, dtype=np.float64)
    f0_hz = np.asarray(f0_hz, dtype=np.float64)
    voiced = f0_hz > 0 if voiced is None else np.asarray(voiced, dtype=bool) & (f0_hz > 0)
    if not (times.shape == f0_hz.shape == voiced.shape) or times.ndim != 1:
        raise ValueError(f"times, f0_hz and voiced must be 1-D of one length; got {times.shape}, {f0_hz.shape}, {voiced.shape}.")
    if np.any(np.diff(times) < 0):
        raise ValueError("times must be sorted.")
    pitch = hz_to_midi(f0_hz)
    pitches = []
    for note in notes:
        first, stop = np.searchsorted(times, [note[0], note[1]], side="left")
        inside = pitch[first:stop][voiced[first:stop]]
        pitches.append(float(np.median(inside)) if inside.size else None)
    return pitches


def pitched_notes(notes, times, f0_hz, voiced=None) -> tuple:
    """``(notes, pitch_midi)``: each note's fractional pitch (`note_pitch_midi`) and the notes numbered by it.

    A note with a fractional pitch gets ``round(pitch_midi)`` as its integer pitch, always, not only when the two
    lie further apart than a pitch bend reaches: the bend ``pitch_midi - pitch`` is then within +-0.5 semitone (far
    inside any bend range) and the integer pitch is simply the note nearest to the sung one, whatever the
    transcription model's own pitch was. A note without a voiced frame (pitch_midi None) keeps its own pitch.
    """
    pitch_midi = note_pitch_midi(notes, times, f0_hz, voiced)
    numbered = [note if fractional is None else (*note[:2], int(round(fractional)), *note[3:])
                for note, fractional in zip(notes, pitch_midi)]  # fmt: skip
    return numbered, pitch_midi

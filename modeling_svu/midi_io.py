"""Notes <-> Standard MIDI Files (mido), with an optional pitch bend per note carrying its fractional pitch.

Files are type 0, 120 bpm, 500 ticks per beat: one tick is exactly 1 ms. Without fractional pitches a file
holds only the tempo and the notes, on channel 1. With them (`pitch_midi`, e.g. from a pitch model), each
channel used first declares a pitch-bend range of +-2 semitones (RPN 0, the General MIDI default, so players
that ignore RPNs bend the same), and each note is preceded by a pitch bend of ``pitch_midi - pitch`` semitones
(14 bits: 0.024-cent steps) and followed by a reset to 0. Notes that overlap go on different channels (a bend
moves a whole channel; the drum channel 10 is skipped), so each note sounds at its own fractional pitch. A bend
the range cannot hold is refused, not clipped (the file would play another pitch than the notes say):
`note_pitch.pitched_notes` numbers the notes so that every bend is within half a semitone.
"""

import io

# 500 ticks per beat at 120 bpm: one tick is exactly 1 ms (20 ms frame times are whole ticks; 75 Hz ones are rounded).
MIDI_TICKS_PER_BEAT = 500
MIDI_TEMPO = 500_000  # microseconds per beat
BEND_RANGE_SEMITONES = 2  # declared with RPN 0 in files that carry bends
BEND_STEPS = 8192  # pitch-wheel steps per bend range (14-bit wheel centred on 0: -8192 .. 8191)
MELODIC_CHANNELS = tuple(channel for channel in range(16) if channel != 9)  # 0-based; 9 = General MIDI drums
# RPN 0 (pitch-bend sensitivity) = BEND_RANGE_SEMITONES semitones + 0 cents, then the RPN deselected ("null")
BEND_RANGE_CONTROLS = ((101, 0), (100, 0), (6, BEND_RANGE_SEMITONES), (38, 0), (101, 127), (100, 127))
# event order at equal ticks: a note ends, its channel's bend resets, the next bend is set, the next note starts
NOTE_OFF, BEND_RESET, BEND_SET, NOTE_ON = range(4)


def _mido():
    try:
        import mido
    except ImportError as error:
        raise ImportError("Writing MIDI needs the `mido` package: pip install mido") from error
    return mido


def bend_value(semitones: float) -> int:
    """The pitch-wheel value (-8192 .. 8191) of a bend of `semitones` within +-BEND_RANGE_SEMITONES (clipped)."""
    return max(-BEND_STEPS, min(BEND_STEPS - 1, int(round(semitones / BEND_RANGE_SEMITONES * BEND_STEPS))))


def _channels(ticks) -> list:
    """A channel per ``(on_tick, off_tick)`` (in onset order): the first melodic channel free at the onset."""
    free_at = {channel: 0 for channel in MELODIC_CHANNELS}
    chosen = []
    for on_tick, off_tick in ticks:
        channel = next((c for c in MELODIC_CHANNELS if free_at[c] <= on_tick), None)
        if channel is None:
            raise ValueError(f"more than {len(MELODIC_CHANNELS)} notes sound at {on_tick / 1000:.3f} s; "
                             "pitch bends need a MIDI channel per sounding note.")  # fmt: skip
        free_at[channel] = off_tick
        chosen.append(channel)
    return chosen


def notes_to_midi(notes, velocity: int = 100, pitch_midi=None):
    """A type-0 `mido.MidiFile` with one note per ``(onset_s, offset_s, midi)``; times are kept to 1 ms.

    `pitch_midi`: a fractional MIDI pitch per note (None for a note without one), written as a pitch bend of
    ``pitch_midi - midi`` around the note (a ValueError beyond +-2 semitones). Without it the file is exactly the
    plain one (no bends, no controllers).
    """
    mido = _mido()
    if pitch_midi is not None and len(pitch_midi) != len(notes):
        raise ValueError(f"pitch_midi has {len(pitch_midi)} values for {len(notes)} notes.")
    timed = []
    for index, (onset, offset, pitch) in enumerate(notes):
        if not 0 <= int(pitch) <= 127:
            raise ValueError(f"MIDI pitch {pitch} is outside 0-127.")
        on_tick = int(round(onset * 1000))
        fractional = None if pitch_midi is None else pitch_midi[index]
        if fractional is not None and abs(fractional - int(pitch)) > BEND_RANGE_SEMITONES:
            raise ValueError(f"pitch_midi {fractional} is more than {BEND_RANGE_SEMITONES} semitones (the bend range) "
                             f"from its note's MIDI pitch {pitch}.")  # fmt: skip
        timed.append((on_tick, max(int(round(offset * 1000)), on_tick + 1), int(pitch), fractional))
    track = mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=MIDI_TEMPO, time=0)])
    if pitch_midi is None:  # the plain file, on channel 1 (mido's default)
        events = []
        for on_tick, off_tick, pitch, _ in timed:
            events += [(on_tick, NOTE_ON, pitch, 0, 0), (off_tick, NOTE_OFF, pitch, 0, 0)]
    else:
        timed.sort(key=lambda note: note[:2])
        channels = _channels([(on_tick, off_tick) for on_tick, off_tick, _, _ in timed])
        for channel in sorted(set(channels)):
            for control, value in BEND_RANGE_CONTROLS:
                track.append(mido.Message("control_change", channel=channel, control=control, value=value, time=0))
        events = []
        for (on_tick, off_tick, pitch, fractional), channel in zip(timed, channels):
            events += [(on_tick, NOTE_ON, pitch, channel, 0), (off_tick, NOTE_OFF, pitch, channel, 0)]
            if fractional is not None:
                bend = bend_value(float(fractional) - pitch)
                events += [(on_tick, BEND_SET, pitch, channel, bend), (off_tick, BEND_RESET, pitch, channel, 0)]
    now = 0
    for tick, kind, pitch, channel, bend in sorted(events):
        if kind in (BEND_SET, BEND_RESET):
            track.append(mido.Message("pitchwheel", channel=channel, pitch=bend, time=tick - now))
        elif kind == NOTE_ON:
            track.append(mido.Message("note_on", channel=channel, note=pitch, velocity=velocity, time=tick - now))
        else:
            track.append(mido.Message("note_off", channel=channel, note=pitch, velocity=0, time=tick - now))
        now = tick
    track.append(mido.MetaMessage("end_of_track", time=0))
    return mido.MidiFile(type=0, ticks_per_beat=MIDI_TICKS_PER_BEAT, tracks=[track])


def midi_bytes(notes, pitch_midi=None) -> bytes:
    buffer = io.BytesIO()
    notes_to_midi(notes, pitch_midi=pitch_midi).save(file=buffer)
    return buffer.getvalue()


def midi_to_notes(midi_file) -> list:
    """``[(onset_s, offset_s, midi), ...]`` of a `mido.MidiFile` (times rounded to 1 µs), sorted by onset."""
    return [note[:3] for note in midi_to_pitched_notes(midi_file)]


def midi_to_pitched_notes(midi_file) -> list:
    """``[(onset_s, offset_s, midi, pitch_midi), ...]`` of a `mido.MidiFile`, sorted by onset: `pitch_midi` is the
    note bent by its channel's pitch wheel at the onset, in semitones of the channel's bend range (RPN 0; +-2
    semitones where the file sets none)."""
    notes, started, now = [], {}, 0.0
    bend, bend_range, rpn = {}, {}, {}
    for message in midi_file:  # iterating a MidiFile gives delta times in seconds
        now += message.time
        channel = getattr(message, "channel", 0)
        if message.type == "control_change":
            if message.control in (101, 100):  # RPN select, most / least significant byte
                rpn[channel] = {**rpn.get(channel, {}), message.control: message.value}
            elif message.control in (6, 38) and rpn.get(channel) == {101: 0, 100: 0}:
                semitones, cents = bend_range.get(channel, (BEND_RANGE_SEMITONES, 0))
                bend_range[channel] = (message.value, cents) if message.control == 6 else (semitones, message.value)
        elif message.type == "pitchwheel":
            bend[channel] = message.pitch
        elif message.type == "note_on" and message.velocity > 0:
            semitones, cents = bend_range.get(channel, (BEND_RANGE_SEMITONES, 0))
            pitch_midi = message.note + bend.get(channel, 0) / BEND_STEPS * (semitones + cents / 100)
            started[channel, message.note] = (now, pitch_midi)
        elif message.type in ("note_on", "note_off") and (channel, message.note) in started:
            onset, pitch_midi = started.pop((channel, message.note))
            notes.append((round(onset, 6), round(now, 6), message.note, pitch_midi))
    return sorted(notes)

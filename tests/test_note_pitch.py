"""Note pitch in cents without a model: the note <- F0 track median, the MIDI pitch bends (mido and pretty_midi read
them back), and the plain note files staying byte-identical to the ones written before note pitch existed."""

import csv
import io
import json
from pathlib import Path

import mido
import numpy as np
import pretty_midi
import pytest

from svu.modeling_svu.midi_io import BEND_RANGE_SEMITONES, midi_bytes, midi_to_notes, midi_to_pitched_notes, notes_to_midi
from svu.modeling_svu.note_pitch import hz_to_midi, note_pitch_midi, pitched_notes
from svu.transcribe import write_notes

PLAIN = Path(__file__).parent / "data" / "plain_note_outputs"
# the notes of tests/data/plain_note_outputs (see its PROVENANCE.md)
PLAIN_NOTES = [(0.0, 0.25, 60), (0.25, 0.52, 62), (0.52, 0.5204, 127), (1.1234567, 2.0, 0), (2.0, 2.98765, 45),
               (3.02, 3.5, 83)]  # fmt: skip
STEP = BEND_RANGE_SEMITONES / 8192  # one pitch-wheel step, in semitones


def midi_hz(midi):
    return 440.0 * 2.0 ** ((np.asarray(midi, dtype=np.float64) - 69.0) / 12.0)


def test_plain_note_files_are_byte_identical_to_before(tmp_path):
    for fmt in ("mid", "csv", "json"):
        write_notes(PLAIN_NOTES, tmp_path / f"take.{fmt}", fmt, "take")
        assert (tmp_path / f"take.{fmt}").read_bytes() == (PLAIN / f"take.{fmt}").read_bytes(), fmt
    assert midi_bytes(PLAIN_NOTES) == (PLAIN / "take.mid").read_bytes()
    plain = mido.MidiFile(file=io.BytesIO(midi_bytes(PLAIN_NOTES)))
    assert {message.type for message in plain.tracks[0]} == {"set_tempo", "note_on", "note_off", "end_of_track"}


def test_note_pitch_is_the_median_of_the_voiced_frames_inside_the_note():
    times = np.arange(200) * 0.02 + 0.0125
    midi = np.full(200, np.nan)
    midi[10:40] = 61.3 + 0.5 * np.sin(np.arange(30) * 2 * np.pi / 7)  # vibrato of +-50 cents around 61.3
    midi[12] = midi[13] = 61.3 + 12  # two octave errors
    midi[60:90] = 55.0 - 0.27
    midi[120:125] = 70.0  # voiced, but no note there
    f0 = np.where(np.isnan(midi), 0.0, midi_hz(np.nan_to_num(midi)))
    notes = [(10 * 0.02, 40 * 0.02 + 0.0125, 61), (60 * 0.02, 90 * 0.02 + 0.0125, 55), (2.9, 3.5, 62)]
    pitch = note_pitch_midi(notes, times, f0)
    assert abs(pitch[0] - 61.3) < 0.1 and abs(pitch[1] - 54.73) < 1e-9 and pitch[2] is None
    # the median, not the mean: the octave errors move the mean by 0.8 semitone
    inside = (times >= notes[0][0]) & (times < notes[0][1]) & (f0 > 0)
    assert pitch[0] == pytest.approx(np.median(hz_to_midi(f0[inside])))
    assert abs(np.mean(hz_to_midi(f0[inside])) - 61.3) > 0.5
    # a note's frames are those with onset <= time < offset; `voiced` can exclude frames with an F0
    edge = note_pitch_midi([(times[60], times[61], 55)], times, f0)[0]
    assert edge == pytest.approx(hz_to_midi(f0[60]))
    assert note_pitch_midi([(times[60], times[61], 55)], times, f0, voiced=np.arange(200) != 60) == [None]
    with pytest.raises(ValueError, match="one length"):
        note_pitch_midi(notes, times[:-1], f0)
    with pytest.raises(ValueError, match="sorted"):
        note_pitch_midi(notes, times[::-1], f0)


def pretty_midi_pitches(path) -> list:
    """``(onset, offset, pitch + bend at the onset)`` per note, read by pretty_midi (+-2 semitone bends)."""
    pm = pretty_midi.PrettyMIDI(str(path))
    notes = []
    for instrument in pm.instruments:
        bends = sorted(instrument.pitch_bends, key=lambda bend: bend.time)
        for note in instrument.notes:
            before = [bend.pitch for bend in bends if bend.time <= note.start + 1e-9]
            bend = pretty_midi.pitch_bend_to_semitones(before[-1] if before else 0, semitone_range=BEND_RANGE_SEMITONES)
            notes.append((round(note.start, 6), round(note.end, 6), note.pitch + bend))
    return sorted(notes)


def test_pitch_bends_reload_with_mido_and_pretty_midi_to_the_fractional_pitch(tmp_path):
    notes = [(0.1, 0.5, 60), (0.5, 0.9, 62), (0.9, 1.3, 64), (1.3, 1.8, 65), (2.0, 2.5, 67), (2.2, 2.6, 71),
             (2.3, 2.4, 74), (3.0, 3.4, 69)]  # fmt: skip
    fractional = [59.6, 61.85, 64.2, 65.35, 66.01, 72.9, None, 69.0]  # -40, -15, +20, +35, -99, +190 cents, none, 0
    path = tmp_path / "bent.mid"
    notes_to_midi(notes, pitch_midi=fractional).save(str(path))
    expected = [(on, off, float(p if f is None else f)) for (on, off, p), f in zip(notes, fractional)]

    midi = mido.MidiFile(str(path))
    assert midi_to_notes(midi) == notes  # the integer notes are unchanged
    for (on, off, p, bent), (e_on, e_off, e_pitch) in zip(midi_to_pitched_notes(midi), expected):
        assert (on, off) == (e_on, e_off) and abs(bent - e_pitch) <= STEP / 2 + 1e-12, (p, bent, e_pitch)
    for (on, off, bent), (e_on, e_off, e_pitch) in zip(pretty_midi_pitches(path), expected):
        assert (on, off) == pytest.approx((e_on, e_off), abs=1e-6) and abs(bent - e_pitch) <= STEP / 2 + 1e-12

    # the range is declared by RPN 0 on every channel used; overlapping notes go on separate channels, each note's
    # bend is set at its onset and reset to 0 at its offset
    messages = [m for m in midi.tracks[0] if not m.is_meta]
    used = {m.channel for m in messages if m.type == "note_on"}
    assert used == {0, 1, 2}
    for channel in used:
        controls = [(m.control, m.value) for m in messages if m.type == "control_change" and m.channel == channel]
        assert controls == [(101, 0), (100, 0), (6, 2), (38, 0), (101, 127), (100, 127)]
    now, wheel, sounding = 0, {}, {}
    for message in midi.tracks[0]:
        now += message.time
        if message.type == "pitchwheel":
            wheel[message.channel] = message.pitch
        elif message.type == "note_on":
            assert message.channel not in sounding  # one note per channel at a time
            sounding[message.channel] = message.note
        elif message.type == "note_off":
            del sounding[message.channel]
    assert set(wheel.values()) == {0}  # every bend reset at the end


def test_bends_to_the_range_edges_are_held_and_beyond_them_refused_as_are_too_many_voices():
    midi = mido.MidiFile(file=io.BytesIO(midi_bytes([(0.0, 1.0, 60), (1.0, 2.0, 60)], pitch_midi=[62.0, 58.0])))
    bent = [note[3] for note in midi_to_pitched_notes(midi)]
    assert bent == pytest.approx([60 + 2 - STEP, 58.0])  # +2 is one step beyond the 14-bit wheel
    for beyond in (63.0, 57.5):
        with pytest.raises(ValueError, match=rf"pitch_midi {beyond} is more than 2 semitones .* MIDI pitch 60\."):
            midi_bytes([(0.0, 1.0, 60)], pitch_midi=[beyond])
    with pytest.raises(ValueError, match="more than 15 notes sound at 0.500 s"):
        notes_to_midi([(0.5, 1.0, 60 + i) for i in range(16)], pitch_midi=[60.0 + i for i in range(16)])
    with pytest.raises(ValueError, match="pitch_midi has 1 values for 2 notes"):
        notes_to_midi([(0.0, 1.0, 60), (1.0, 2.0, 60)], pitch_midi=[60.1])


def test_notes_numbered_by_their_fractional_pitch_read_back_the_same_from_midi_csv_and_json(tmp_path):
    """An F0 track 3-7 semitones (up and down) from the notes' integer pitches, 0.3 semitone from one, and a note
    without a voiced frame: the notes are numbered round(pitch_midi), and the MIDI note + bend (mido, pretty_midi)
    reads back to the CSV's pitch_midi within 1 cent, the CSV's pitch to the MIDI note number, the JSON to the CSV."""
    times = np.arange(250) * 0.02
    notes = [(0.1, 0.8, 60), (1.0, 1.6, 62), (1.8, 2.4, 64), (2.6, 3.2, 65), (3.4, 4.0, 67), (4.2, 4.8, 57)]
    sung = [63.4, 55.3, 70.85, 61.62, 67.3, None]  # +3.4, -6.7, +6.85, -3.38, +0.3 semitones, unvoiced
    midi = np.zeros(len(times))
    for (onset, offset, _), pitch in zip(notes, sung):
        midi[(times >= onset) & (times < offset)] = pitch or 0.0
    numbered, pitch_midi = pitched_notes(notes, times, np.where(midi > 0, midi_hz(midi), 0.0))
    assert [None if p is None else round(p, 9) for p in pitch_midi] == sung
    assert numbered == [(0.1, 0.8, 63), (1.0, 1.6, 55), (1.8, 2.4, 71), (2.6, 3.2, 62), (3.4, 4.0, 67), (4.2, 4.8, 57)]

    for fmt in ("mid", "csv", "json"):
        write_notes(numbered, tmp_path / f"take.{fmt}", fmt, "take", pitch_midi=pitch_midi)
    with open(tmp_path / "take.csv") as f:
        rows = [(float(r["onset"]), float(r["offset"]), int(r["pitch"]), float(r["pitch_midi"]) if r["pitch_midi"] else None)
                for r in csv.DictReader(f)]  # fmt: skip
    assert [tuple(row) for row in json.loads((tmp_path / "take.json").read_text())["take"]] == rows
    by_mido = midi_to_pitched_notes(mido.MidiFile(str(tmp_path / "take.mid")))
    by_pretty = pretty_midi_pitches(tmp_path / "take.mid")
    assert [note[2] for note in by_mido] == [row[2] for row in rows]
    for (_, _, pitch, bent), (_, _, pretty), row in zip(by_mido, by_pretty, rows):
        fractional = pitch if row[3] is None else row[3]
        assert abs(bent - fractional) * 100 <= 1 and abs(pretty - fractional) * 100 <= 1, (row, bent, pretty)

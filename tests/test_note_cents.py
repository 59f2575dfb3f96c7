"""Note pitch in cents end to end: notes sung off the semitone grid by the synthesiser come back through
`svu transcribe --pitch-model` with their cent offsets, in JSON, CSV and MIDI pitch bends (mido and pretty_midi).

The transcriber is the tiny model of test_transcription_training (30 steps on the synthetic corpus: it finds the
notes but sings one pitch, so its integer pitches are useless and the fractional pitch is all the pitch model's);
the pitch model is the trained demo pitch fixture.
"""

import csv
import json

import mido
import numpy as np
import pretty_midi
import pytest
import torch

from dataset_scripts.prepare import prepare
from dataset_scripts.synthetic import sing
from modeling_svu import SVUForNoteTranscription
from modeling_svu.midi_io import BEND_RANGE_SEMITONES, midi_to_pitched_notes
from svu.cli import main as svu_main
from train.data import AudioCollator

from data_fixtures import train_steps

SR = 16000
CENTS = (-40, -15, 20, 35, -25, 45, 10, -5)  # off-grid offset of each sung note
SEMITONES = (55, 57, 59, 60, 62, 58, 56, 61)
TOLERANCE_CENTS = 10.0


@pytest.fixture(scope="module")
def trained_transcriber(tmp_path_factory):
    root = tmp_path_factory.mktemp("transcriber")
    data = prepare("synthetic", root / "synthetic_transcription", task="transcription", seed=0)
    torch.manual_seed(0)
    model = SVUForNoteTranscription.from_backbone("tiny-wav2vec2")
    collate = AudioCollator(model.feature_extractor(), "transcription", model.config)
    batch = collate([{**row, "row_index": i} for i, row in enumerate(data["train"].with_format("numpy"))])
    train_steps(model, batch["input_values"], batch["labels"], 30, lr=2e-3, batch_size=4)
    model.save_pretrained(root / "model")
    return root / "model"


def sung_melody(seed: int = 0):
    """The synthesiser (`synthetic.sing`) singing SEMITONES + CENTS: 0.5 s notes, 0.2 s rests, 20-cent vibrato;
    (wave, notes)."""
    notes, time = [], 0.3
    for semitone, cents in zip(SEMITONES, CENTS):
        notes.append((round(time, 3), round(time + 0.5, 3), semitone + cents / 100))
        time += 0.7
    return sing(notes, time + 0.3, seed=seed, vibrato=[(20.0, 5.5)] * len(notes)).wave, notes


def sung_note_of(onset, offset, sung):
    """The sung note holding the middle of a transcribed note (None if it falls in a rest)."""
    middle = (onset + offset) / 2
    return next((note for note in sung if note[0] <= middle < note[1]), None)


def pretty_midi_pitches(path) -> list:
    pm = pretty_midi.PrettyMIDI(str(path))
    notes = []
    for instrument in pm.instruments:
        for note in instrument.notes:
            bends = [b.pitch for b in sorted(instrument.pitch_bends, key=lambda b: b.time) if b.time <= note.start + 1e-9]
            bend = pretty_midi.pitch_bend_to_semitones(bends[-1] if bends else 0, semitone_range=BEND_RANGE_SEMITONES)
            notes.append((round(note.start, 6), note.pitch + bend))
    return sorted(notes)


def check_cents(trained_pitch_folder, trained_transcriber, tmp_path):
    import soundfile as sf

    wave, sung = sung_melody()
    sf.write(tmp_path / "offgrid.wav", wave, SR)
    out = tmp_path / "out"
    assert svu_main(["transcribe", str(tmp_path / "offgrid.wav"), "--model", str(trained_transcriber),
                     "--pitch-model", str(trained_pitch_folder), "-o", str(out), "--format", "json",
                     "--format", "csv", "--format", "mid", "-q"]) == 0  # fmt: skip
    rows = json.loads((out / "offgrid.json").read_text())["offgrid"]
    matched = {}
    errors = []
    for onset, offset, pitch, pitch_midi in rows:
        note = sung_note_of(onset, offset, sung)
        assert note is not None, (onset, offset)
        matched.setdefault(note, []).append(pitch_midi)
        errors.append(100 * (pitch_midi - note[2]))
    print("cent errors per transcribed note:", np.round(errors, 1).tolist())
    assert len(matched) == len(sung)  # every sung note came back
    assert max(abs(e) for e in errors) <= TOLERANCE_CENTS, errors

    with open(out / "offgrid.csv") as f:
        assert [round(float(r["pitch_midi"]), 4) for r in csv.DictReader(f)] == [row[3] for row in rows]
    # the MIDI bends: within the +-2 semitone range of the (integer) note, mido and pretty_midi read back the
    # fractional pitch (to a pitch-wheel step); outside it the bend is clipped (as documented)
    step = BEND_RANGE_SEMITONES / 8192
    by_mido = midi_to_pitched_notes(mido.MidiFile(str(out / "offgrid.mid")))
    by_pretty = pretty_midi_pitches(out / "offgrid.mid")
    in_range = 0
    for (onset, _, pitch, bent), (_, pretty), row in zip(by_mido, by_pretty, rows):
        if abs(row[3] - pitch) < BEND_RANGE_SEMITONES:
            in_range += 1
            assert abs(bent - row[3]) <= step and abs(pretty - row[3]) <= step, (row, bent, pretty)
    assert in_range >= 2

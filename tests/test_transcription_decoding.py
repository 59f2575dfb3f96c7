"""The paper's note decoding (`note_labels.NoteDecoder` / `decode_logits`) and the label round trip."""

import csv
import json
from pathlib import Path

import evaluate
import mir_eval
import numpy as np
import pytest
import torch

from data_fixtures import TEST_DATA
from svu.modeling_svu import SVUForNoteTranscription
from svu.modeling_svu.note_labels import (
    NoteDecoder,
    decode_logits,
    decode_posteriors,
    fold_pitch,
    logit_slices,
    notes_to_frame_targets,
)

MIR_ST500_JSON = TEST_DATA / "mir_st500" / "val_1005_55_icassp_ver.json"
DCS_NOTES = TEST_DATA / "singing_examples" / "dagstuhl_choirset" / "annotations_csv_scorerepresentation"
MEDLEYDB_NOTES = TEST_DATA / "singing_examples" / "medleydb_pitch" / "medleydb-pitch-pyin-notes"
METRIC = str(Path(__file__).resolve().parents[1] / "train" / "metrics" / "transcription")


def posteriors(num_frames, onsets=(), silent=(), pitches=()):
    """Hand-made posteriors: onset probabilities {frame: p}, silent frame ranges, pitched frame ranges."""
    onset = np.zeros(num_frames)
    silence = np.zeros(num_frames)
    pitch = np.full(num_frames, -1)
    for frame, p in dict(onsets).items():
        onset[frame] = p
    for start, stop in silent:
        silence[start:stop] = 0.9
    for start, stop, index in pitches:
        pitch[start:stop] = index
    return onset, silence, pitch


def targets_to_posteriors(targets):
    """Perfect posteriors from frame targets: the decoder's input for an ideal model."""
    pitch = np.where(targets[:, 2] == 4, -1, targets[:, 2] * 12 + targets[:, 3]).astype(np.int64)
    return targets[:, 0], targets[:, 1], pitch


def round_trip(notes):
    num_frames = int(np.ceil(max(offset for _, offset, _ in notes) / 0.02)) + 5
    return decode_posteriors(*targets_to_posteriors(notes_to_frame_targets(notes, num_frames)))


# ----- hand-made posteriors -----------------------------------------------------------------------


def test_basic_notes_and_offsets():
    # note 1: onset 5, silence from 20; note 2: onset 30, cut by onset 40 (note 3), which runs to the end
    onset, silence, pitch = posteriors(
        60, onsets={5: 0.9, 30: 0.7, 40: 0.5}, silent=[(0, 5), (20, 30)], pitches=[(5, 20, 24), (30, 60, 26)]
    )
    pitch[40:] = 28
    assert decode_posteriors(onset, silence, pitch) == [(0.1, 0.4, 60), (0.6, 0.8, 62), (0.8, 1.2, 64)]


def test_onset_threshold_and_local_maximum_window():
    onset, silence, pitch = posteriors(40, onsets={5: 0.39, 10: 0.5, 12: 0.6, 20: 0.6, 24: 0.45}, pitches=[(0, 40, 0)])
    # 0.39 < 0.4; frame 10 is beaten by frame 12 within +-3; frame 24 is 4 frames from 20, so it is a maximum
    assert decode_posteriors(onset, silence, pitch) == [(0.24, 0.4, 36), (0.4, 0.48, 36), (0.48, 0.8, 36)]
    # a window of 4 frames makes frame 20 beat frame 24
    assert decode_posteriors(onset, silence, pitch, onset_window=4) == [(0.24, 0.4, 36), (0.4, 0.8, 36)]


def test_tied_onset_peaks_are_all_onsets():
    # "maximum within +-3 frames" is p == max(window): equal neighbours are both onsets
    onset, silence, pitch = posteriors(30, onsets={10: 0.8, 12: 0.8}, silent=[(20, 30)], pitches=[(10, 20, 12)])
    assert decode_posteriors(onset, silence, pitch) == [(0.2, 0.24, 48), (0.24, 0.4, 48)]


def test_pitch_is_the_mode_and_ties_go_to_the_lower_pitch():
    onset, silence, pitch = posteriors(
        40, onsets={0: 0.9, 20: 0.9}, silent=[(10, 20), (30, 40)],
        pitches=[(0, 3, 5), (3, 7, 9), (7, 10, 2), (20, 25, 14), (25, 30, 13)],
    )  # fmt: skip
    assert decode_posteriors(onset, silence, pitch) == [(0.0, 0.2, 45), (0.4, 0.6, 49)]


def test_onset_wins_over_silence_and_unpitched_frames_do_not_vote():
    onset, silence, pitch = posteriors(30, onsets={10: 0.9}, silent=[(0, 12), (20, 30)], pitches=[(12, 20, 7)])
    # frame 10 is an onset although silent; frame 11 (silent, not an onset) ends the note with no voiced frame
    decoder = NoteDecoder()
    assert decoder.push(onset, silence, pitch) + decoder.finish() == []
    assert decoder.num_unpitched == 1
    silence[11] = 0.0
    assert decode_posteriors(onset, silence, pitch) == [(0.2, 0.4, 43)]


def test_note_open_at_the_end_closes_at_the_last_frame():
    onset, silence, pitch = posteriors(25, onsets={20: 0.9}, pitches=[(20, 25, 47)])
    assert decode_posteriors(onset, silence, pitch) == [(0.4, 0.5, 83)]


@pytest.mark.parametrize("block", [1, 2, 3, 7, 50, 249, 1000])
def test_streaming_blocks_equal_one_pass(block):
    # A note held for 400 frames (8 s, longer than a 5 s chunk), onsets right at block seams, silence seams.
    rng = np.random.default_rng(block)
    onset, silence, pitch = posteriors(
        1000,
        onsets={3: 0.9, 49: 0.6, 50: 0.6, 249: 0.95, 250: 0.7, 700: 0.5, 997: 0.8},
        silent=[(240, 249), (650, 700)],
        pitches=[(0, 1000, 30)],
    )
    onset += rng.uniform(0, 0.3, size=1000) * (rng.random(1000) < 0.1)
    whole = decode_posteriors(onset, silence, pitch)
    decoder = NoteDecoder()
    streamed = []
    for start in range(0, 1000, block):
        streamed += decoder.push(onset[start : start + block], silence[start : start + block], pitch[start : start + block])
    assert streamed + decoder.finish() == whole
    assert any(offset - on >= 8.0 for on, offset, _ in whole)  # the held note is one note


def test_decode_logits_matches_posteriors_and_checks_shape():
    targets = notes_to_frame_targets([(0.1, 0.5, 60), (0.6, 1.0, 83), (1.0, 1.3, 36)], 80)
    logits = np.full((80, 20), -8.0)
    slices = logit_slices(4)
    logits[:, 0] = np.where(targets[:, 0] == 1, 8.0, -8.0)
    logits[:, 1] = np.where(targets[:, 1] == 1, 8.0, -8.0)
    rows = np.arange(80)
    logits[rows, slices["octave"].start + targets[:, 2].astype(int)] = 8.0
    logits[rows, slices["pitch_class"].start + targets[:, 3].astype(int)] = 8.0
    expected = [(0.1, 0.5, 60), (0.6, 1.0, 83), (1.0, 1.3, 36)]
    assert decode_logits(logits) == expected
    assert decode_logits(torch.tensor(logits, dtype=torch.float32)) == expected
    # the model's batch `decode` uses its config's thresholds and cuts padded frames
    model = SVUForNoteTranscription.from_backbone("tiny-wav2vec2")
    batch = torch.tensor(np.stack([logits, logits]), dtype=torch.float32)
    frame_mask = torch.ones(2, 80, dtype=torch.bool)
    frame_mask[1, 55:] = False
    assert model.decode(batch, frame_mask) == [expected, [(0.1, 0.5, 60), (0.6, 1.0, 83), (1.0, 1.1, 36)]]
    model.config.onset_threshold = 0.9999  # sigmoid(8) = 0.99966: no onset passes
    assert model.decode(batch) == [[], []]
    with pytest.raises(ValueError, match="must be \\(frames, 20\\)"):
        decode_logits(logits[:, :19])
    with pytest.raises(ValueError, match="NaN"):
        decode_posteriors(np.array([np.nan]), np.zeros(1), np.zeros(1))


# ----- encode -> decode round trip on real annotations -----------------------------------------------


def score(estimates, references):
    metric = evaluate.load(METRIC)
    return metric.compute(predictions=estimates, references=references)


def folded(notes):
    """Source notes as the label scheme stores them: MIDI folded by octaves into 36-83 (documented)."""
    return [[on, off, fold_pitch(p)] for on, off, p in notes]


def test_round_trip_mir_st500_json():
    songs = json.loads(MIR_ST500_JSON.read_text())
    estimates = [[list(n) for n in round_trip(notes)] for notes in songs.values()]
    out_of_range = sum(not 36 <= p <= 83 for notes in songs.values() for _, _, p in notes)
    assert out_of_range > 0  # the file has notes up to MIDI 95: the encoder folds them by octaves
    result = score(estimates, [folded(notes) for notes in songs.values()])
    assert result["num_songs"] == 100 and result["num_reference_notes"] == 32403
    assert result["COnPOff_f1"] >= 0.99 and result["COn_f1"] >= 0.99
    # Against the unfolded source, only the folded notes miss pitch: COnP recall = 1 - folded share.
    raw = score(estimates, list(songs.values()))
    assert raw["COn_f1"] >= 0.99
    assert raw["COnP_matched"] == 32403 - out_of_range


def test_round_trip_written_mir_st500_style_json(tmp_path):
    songs = {
        "1": [
            [0.50, 1.00, 60], [1.00, 1.40, 60],  # adjacent notes of the same pitch
            [1.50, 1.515, 62],                   # 15 ms: shorter than a frame
            [1.60, 2.00, 30], [2.10, 2.50, 90],  # below / above the 36-83 range (folded)
            [2.60, 3.00, 64.3], [3.10, 3.40, 65.6],  # fractional MIDI (rounded)
            [3.50, 3.50, 67], [-0.2, 0.3, 50],   # zero length / negative onset: dropped by the scorer
        ],
        "2": [[0.02 * k, 0.02 * k + 0.3, 40 + k % 40] for k in range(0, 2000, 20)],  # 100 notes, 40 s
    }  # fmt: skip
    path = tmp_path / "mir_st500_style.json"
    path.write_text(json.dumps(songs))
    songs = json.loads(path.read_text())
    valid = {k: [n for n in notes if n[0] >= 0 and n[1] > n[0]] for k, notes in songs.items()}
    estimates = [[list(n) for n in round_trip(notes)] for notes in valid.values()]
    result = score(estimates, [folded(notes) for notes in valid.values()])
    assert result["COnPOff_f1"] >= 0.99, result["per_song"]
    assert result["num_reference_notes"] == 7 + 100


def read_csv_notes(path, duration_column=False, hz=False):
    notes = []
    with open(path) as f:
        for onset, second, pitch in csv.reader(f):
            onset, second, pitch = float(onset), float(second), float(pitch)
            offset = onset + second if duration_column else second
            notes.append([onset, offset, float(mir_eval.util.hz_to_midi(pitch)) if hz else pitch])
    return notes


def test_round_trip_dagstuhl_and_medleydb_notes():
    references = [read_csv_notes(p) for p in sorted(DCS_NOTES.glob("*.csv"))]
    references += [read_csv_notes(p, duration_column=True, hz=True) for p in sorted(MEDLEYDB_NOTES.glob("*.csv"))]
    assert len(references) == 3 and sum(map(len, references)) == 5 + 5 + 2
    estimates = [[list(n) for n in round_trip(notes)] for notes in references]
    # MedleyDB pYIN pitches are fractional (229.67 Hz = MIDI 57.79): rounded, they stay within 50 cents.
    result = score(estimates, references)
    assert result["COnPOff_f1"] >= 0.99, result["per_song"]

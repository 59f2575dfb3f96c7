"""`singing-transcription` pipeline (remote code, fresh process) and `svu transcribe` (real subprocess)."""

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import mido
import numpy as np
import pytest
import soundfile as sf
import torch

from svu.modeling_svu import SVUForNoteTranscription, SVUForSingerID
from svu.modeling_svu.long_audio import transcribe_blocks
from svu.modeling_svu.midi_io import midi_bytes, midi_to_notes, notes_to_midi
from svu.cli import main as svu_main
from svu.modeling_svu.audio_io import open_audio

from data_fixtures import sung_notes

SR = 16000
REPO_ID = "svu-tests/tiny-transcriber"


def notes_ms(notes):
    return [(round(on, 3), round(off, 3), int(p)) for on, off, p in notes]


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    torch.manual_seed(0)
    model = SVUForNoteTranscription.from_backbone("tiny-wav2vec2").eval()
    folder = tmp_path_factory.mktemp("transcriber")
    model.save_pretrained(folder)
    return model, folder


def test_midi_round_trip():
    notes = [(0.1, 0.52, 60), (0.52, 0.9, 60), (1.0, 1.0004, 83), (2.34, 3.0, 36)]
    reloaded = midi_to_notes(mido.MidiFile(file=io.BytesIO(midi_bytes(notes))))
    assert reloaded == [(0.1, 0.52, 60), (0.52, 0.9, 60), (1.0, 1.001, 83), (2.34, 3.0, 36)]  # >= 1 tick long
    with pytest.raises(ValueError, match="outside 0-127"):
        notes_to_midi([(0.0, 1.0, 130)])


def test_pipeline_loads_from_folder_and_repo_id_in_a_fresh_process(saved_model, tmp_path):
    model, folder = saved_model
    assert json.loads((folder / "config.json").read_text())["custom_pipelines"]["singing-transcription"]
    audio = sung_notes(12.0)
    sf.write(tmp_path / "song.wav", audio, SR, subtype="FLOAT")
    sf.write(tmp_path / "song44k.wav", sung_notes(3.0, sr=44100), 44100)
    expected = notes_ms(model.transcribe(audio, progress=False))
    assert len(expected) >= 5

    # An offline Hub cache holding the same files under a repo id.
    snapshot = tmp_path / "hf" / "hub" / f"models--{REPO_ID.replace('/', '--')}" / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    for file in folder.iterdir():
        (snapshot / file.name).write_bytes(file.read_bytes())
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text("0" * 40)

    code = f"""
import json, sys
import numpy as np, soundfile as sf
from transformers import pipeline
out = {{}}
for name in [{str(folder)!r}, {REPO_ID!r}]:
    p = pipeline(model=name, trust_remote_code=True)
    result = p({str(tmp_path / "song.wav")!r}, return_midi=True)
    out[name] = {{"task": p.task, "class": type(p).__module__ + "." + type(p).__name__, "notes": result["notes"]}}
    open({str(tmp_path)!r} + "/" + name.replace("/", "_") + ".mid", "wb").write(result["midi"])
audio, _ = sf.read({str(tmp_path / "song.wav")!r}, dtype="float32")
out["array"] = p(audio)["notes"]
out["dict44k"] = p({{"raw": sf.read({str(tmp_path / "song44k.wav")!r}, dtype="float32")[0], "sampling_rate": 44100}})
out["silence"] = p(np.zeros(5 * 16000, dtype=np.float32))["notes"]
try:
    p(np.zeros(100, dtype=np.float32))
except ValueError as error:
    out["short"] = str(error)
print("RESULT" + json.dumps(out))
"""
    env = dict(os.environ, HF_HOME=str(tmp_path / "hf"), HF_HUB_OFFLINE="1")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.split("RESULT", 1)[1])
    for name in (str(folder), REPO_ID):
        assert out[name]["task"] == "singing-transcription"
        # the class comes from the repo's copied code, not from the installed package
        assert out[name]["class"].startswith("transformers_modules.")
        assert out[name]["class"].endswith("pipeline_svu.SingingTranscriptionPipeline")
        notes = [(n["onset"], n["offset"], n["pitch"]) for n in out[name]["notes"]]
        assert notes_ms(notes) == expected
        midi = mido.MidiFile(str(tmp_path / (name.replace("/", "_") + ".mid")))
        assert midi_to_notes(midi) == expected
    assert notes_ms((n["onset"], n["offset"], n["pitch"]) for n in out["array"]) == expected
    assert len(out["dict44k"]["notes"]) > 0
    assert out["silence"] == []
    assert "at least 400 samples" in out["short"]


def test_cli_writes_one_file_per_input_and_reports_bad_files(saved_model, tmp_path):
    model, folder = saved_model
    inputs = tmp_path / "in"
    inputs.mkdir()
    stereo = np.stack([sung_notes(9.0, sr=44100, seed=1), sung_notes(9.0, sr=44100, seed=1)], axis=1)
    sf.write(inputs / "take1.wav", stereo, 44100)
    subprocess.run(["ffmpeg", "-loglevel", "error", "-i", str(inputs / "take1.wav"), str(inputs / "take2.mp3")], check=True)
    sf.write(inputs / "silence.wav", np.zeros(3 * SR, dtype=np.float32), SR)
    sf.write(inputs / "short.wav", np.zeros(200, dtype=np.float32), SR)
    nan = sung_notes(4.0)
    nan[SR] = np.nan
    sf.write(inputs / "nan.wav", nan, SR, subtype="FLOAT")
    (inputs / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot really audio" * 4)
    files = ["take1.wav", "silence.wav", "short.wav", "nan.wav", "broken.wav", "missing.wav", "take2.mp3"]
    command = [sys.executable, "-m", "svu", "transcribe", *[str(inputs / f) for f in files],
               "--model", str(folder), "-o", str(tmp_path / "out"), "--format", "mid", "-q"]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, env=dict(os.environ, HF_HUB_OFFLINE="1"), timeout=300)
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("svu transcribe: error:")]
    assert len(errors) == 4, result.stderr
    for name, reason in [("short.wav", "at least 400 samples"), ("nan.wav", "NaN or infinite samples"),
                         ("broken.wav", "cannot decode audio"), ("missing.wav", "no such file")]:  # fmt: skip
        assert any(name in line and reason in line for line in errors), (name, errors)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["manifest.jsonl", "silence.mid", "take1.mid", "take2.mid"]
    assert midi_to_notes(mido.MidiFile(str(tmp_path / "out" / "silence.mid"))) == []

    # The MIDI file reloads with the notes of the same file transcribed in-process (stereo 44.1 kHz input).
    total, blocks = open_audio(inputs / "take1.wav", SR)
    expected = notes_ms(transcribe_blocks(model, blocks, total_samples=total, progress=False))
    assert len(expected) >= 5
    assert midi_to_notes(mido.MidiFile(str(tmp_path / "out" / "take1.mid"))) == expected

    # csv and json outputs hold the same notes
    for fmt in ("csv", "json"):
        assert svu_main(["transcribe", str(inputs / "take1.wav"), "--model", str(folder), "-o", str(tmp_path / fmt),
                         "--format", fmt, "-q"]) == 0  # fmt: skip
    with open(tmp_path / "csv" / "take1.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(float(r["onset"]), float(r["offset"]), int(r["pitch"])) for r in rows] == expected
    assert notes_ms(json.loads((tmp_path / "json" / "take1.json").read_text())["take1"]) == expected


def test_cli_rejects_a_non_transcription_model(tmp_path):
    SVUForSingerID.from_backbone("tiny-wav2vec2", id2label={0: "a", 1: "b"}).save_pretrained(tmp_path / "sid")
    with pytest.raises(SystemExit, match="is a 'singer_id' model, not a transcription model"):
        svu_main(["transcribe", "x.wav", "--model", str(tmp_path / "sid"), "-o", str(tmp_path / "o")])
    with pytest.raises(SystemExit, match="cannot load model"):
        svu_main(["transcribe", "x.wav", "--model", str(tmp_path / "nothing-here"), "-o", str(tmp_path / "o")])


def local_maxima(values: np.ndarray, window: int) -> np.ndarray:
    padded = np.pad(values, window, constant_values=-np.inf)
    return values[values == np.lib.stride_tricks.sliding_window_view(padded, 2 * window + 1).max(axis=1)]


def test_cli_writes_all_six_outputs_with_the_same_notes(saved_model, tmp_path):
    from PIL import Image

    from svu.modeling_svu.note_labels import NoteDecoder
    from svu.figures import NOTES_KEY

    model, folder = saved_model
    audio = sung_notes(12.0)
    sf.write(tmp_path / "song.wav", audio, SR)
    command = [sys.executable, "-m", "svu", "transcribe", str(tmp_path / "song.wav"), "--model", str(folder),
               "-o", str(tmp_path / "out"), "--format", "mid", "--format", "csv", "--format", "json",
               "--piano-roll", "--sonify", "--save-posteriors", "--device", "cpu", "-q"]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, env=dict(os.environ, HF_HUB_OFFLINE="1"), timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "%|" not in result.stderr  # --quiet: no progress bar
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["song.mid", "song.csv", "song.json", "song.piano_roll.png", "song.sonified.wav", "song.posteriors.npz",
         "manifest.jsonl"]
    )
    expected = notes_ms(model.transcribe(audio, progress=False))
    assert len(expected) >= 5
    assert midi_to_notes(mido.MidiFile(str(out / "song.mid"))) == expected
    with open(out / "song.csv") as f:
        assert [(float(r["onset"]), float(r["offset"]), int(r["pitch"])) for r in csv.DictReader(f)] == expected
    assert notes_ms(json.loads((out / "song.json").read_text())["song"]) == expected
    with Image.open(out / "song.piano_roll.png") as image:  # the notes drawn are recorded in the PNG
        assert image.format == "PNG" and image.size[0] > 300
        assert notes_ms(json.loads(image.text[NOTES_KEY])) == expected

    # The posteriors decode to the same notes with the thresholds saved next to them.
    saved = np.load(out / "song.posteriors.npz")
    assert len(saved["onset_prob"]) == len(saved["silence_prob"]) == len(saved["pitch_index"]) >= 12.0 / 0.02 - 2
    decoder = NoteDecoder(float(saved["frame_seconds"]), int(saved["lowest_midi"]), model.config.num_octaves,
                          float(saved["onset_threshold"]), int(saved["onset_window"]), float(saved["silence_threshold"]))  # fmt: skip
    redecoded = decoder.push(saved["onset_prob"], saved["silence_prob"], saved["pitch_index"]) + decoder.finish()
    assert notes_ms(redecoded) == notes_ms(saved["notes"].tolist()) == expected

    # The sonification: as long as the input; silent outside the notes; each long note at its pitch.
    rendered, rate = sf.read(out / "song.sonified.wav", dtype="float32")
    assert rate == SR and len(rendered) == len(audio)
    covered = np.zeros(len(rendered), dtype=bool)
    for onset, offset, _ in expected:
        covered[int(onset * SR) - 20 : int(offset * SR) + 20] = True
    assert np.abs(rendered[~covered]).max() == 0.0 and np.abs(rendered[covered]).max() > 0.1
    long_notes = [(on, off, p) for on, off, p in expected if off - on >= 0.1]
    assert long_notes
    for onset, offset, pitch in long_notes:
        segment = rendered[int((onset + 0.02) * SR) : int((offset - 0.02) * SR)]
        spectrum = np.abs(np.fft.rfft(segment * np.hanning(len(segment)), n=1 << 16))
        peak_hz = spectrum.argmax() * SR / (1 << 16)
        assert abs(12 * np.log2(peak_hz / (440.0 * 2 ** ((pitch - 69) / 12)))) < 0.5, (pitch, peak_hz)

    # Thresholds: a higher onset threshold finds fewer notes, a lower one more; a lower silence threshold ends
    # notes sooner (shorter in total, never more of them). Thresholds are picked from the saved posteriors.
    peaks = np.sort(local_maxima(saved["onset_prob"], model.config.onset_window))
    above = peaks[peaks >= model.config.onset_threshold]
    high = float((above[len(above) // 2 - 1] + above[len(above) // 2]) / 2)  # half the onset peaks stay
    below = peaks[(peaks < model.config.onset_threshold) & (peaks > 1e-3)]  # silent frames have onset prob 0
    low = float(below.max()) - 1e-6 if below.size else model.config.onset_threshold / 2

    def transcribe_csv(*options):
        target = tmp_path / "thr" / "_".join(options).replace("-", "")
        assert svu_main(["transcribe", str(tmp_path / "song.wav"), "--model", str(folder), "-o", str(target),
                         "--format", "csv", *options]) == 0  # fmt: skip
        with open(target / "song.csv") as f:
            return [(float(r["onset"]), float(r["offset"])) for r in csv.DictReader(f)]

    fewer, more = transcribe_csv("--onset-threshold", str(high)), transcribe_csv("--onset-threshold", str(low))
    assert len(fewer) < len(expected) <= len(more)
    soon, late = transcribe_csv("--silence-threshold", "0.05"), transcribe_csv("--silence-threshold", "0.95")
    duration = lambda notes: sum(note[1] - note[0] for note in notes)  # noqa: E731
    assert duration(soon) <= duration(expected) <= duration(late) and duration(soon) < duration(late)
    assert len(soon) <= len(late)
    with pytest.raises(SystemExit, match="a probability in"):
        svu_main(["transcribe", str(tmp_path / "song.wav"), "--model", str(folder), "-o", str(tmp_path / "x"),
                  "--onset-threshold", "1.5"])  # fmt: skip

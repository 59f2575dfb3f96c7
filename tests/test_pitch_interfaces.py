"""`singing-pitch` pipeline (remote code, fresh process), `svu pitch` (real subprocess), and the transcription
pipeline's / `svu transcribe`'s `pitch_model` plumbing, with tiny random models (accuracy: test_note_cents.py)."""

import csv
import json
import os
import subprocess
import sys

import mido
import numpy as np
import pytest
import soundfile as sf
import torch

from svu.modeling_svu import SVUForPitchEstimation
from svu.modeling_svu.audio_io import open_audio
from svu.modeling_svu.long_audio import pitch_track_blocks, transcribe_blocks
from svu.modeling_svu.midi_io import midi_to_notes, midi_to_pitched_notes
from svu.modeling_svu.note_pitch import pitched_notes
from svu.cli import main as svu_main

from data_fixtures import sung_notes as grid_notes

SR = 16000


def sung_notes(seconds, sr=SR, seed=0):
    return grid_notes(seconds, sr, seed, off_grid=True)
REPO_ID = "svu-tests/tiny-pitch"


@pytest.fixture(scope="module")
def pitch_model(tmp_path_factory):
    """(tiny random pitch model, its saved folder); the voicing bias is raised so that most frames are voiced."""
    torch.manual_seed(0)
    model = SVUForPitchEstimation.from_backbone("tiny-wav2vec2").eval()
    with torch.no_grad():
        model.head[-1].bias[-1] += 0.3
    folder = tmp_path_factory.mktemp("pitch")
    model.save_pretrained(folder)
    return model, folder


def file_track(model, path):
    total, blocks = open_audio(path, SR)
    return pitch_track_blocks(model, blocks, total_samples=total, progress=False)


def hf_cache(folder, root):
    """An offline Hub cache holding the folder's files under REPO_ID."""
    snapshot = root / "hf" / "hub" / f"models--{REPO_ID.replace('/', '--')}" / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    for file in folder.iterdir():
        (snapshot / file.name).write_bytes(file.read_bytes())
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text("0" * 40)
    return root / "hf"


def test_pitch_pipeline_loads_from_folder_and_repo_id_in_a_fresh_process(pitch_model, transcriber, tmp_path):
    model, folder = pitch_model
    transcription_model, transcription_folder = transcriber
    assert json.loads((folder / "config.json").read_text())["custom_pipelines"] == {
        "singing-pitch": {"impl": "pipeline_svu.SingingPitchPipeline", "pt": ["AutoModelForAudioFrameClassification"],
                          "type": "audio"}}  # fmt: skip
    audio = sung_notes(12.0)
    sf.write(tmp_path / "song.wav", audio, SR, subtype="FLOAT")
    sf.write(tmp_path / "song44k.wav", sung_notes(3.0, sr=44100), 44100)
    expected = file_track(model, tmp_path / "song.wav")
    assert len(expected["times"]) == (len(audio) - 400) // 320 + 1 and 0 < expected["voiced"].sum() < len(audio)
    notes = transcribe_blocks(transcription_model, open_audio(tmp_path / "song.wav", SR)[1], progress=False)
    pitched, expected_pitch_midi = pitched_notes(notes, expected["times"], expected["f0_hz"], expected["voiced"])
    assert len(notes) >= 5 and sum(p is not None for p in expected_pitch_midi) >= 3

    code = f"""
import json
import numpy as np, soundfile as sf
from transformers import pipeline
out = {{}}
for name in [{str(folder)!r}, {REPO_ID!r}]:
    p = pipeline("singing-pitch", model=name, trust_remote_code=True)
    out[name] = {{"task": p.task, "class": type(p).__module__ + "." + type(p).__name__, "track": p({str(tmp_path / "song.wav")!r})}}
out["inferred"] = pipeline(model={REPO_ID!r}, trust_remote_code=True).task
audio, _ = sf.read({str(tmp_path / "song.wav")!r}, dtype="float32")
out["array"] = p(audio, chunk_batch_size=3)
out["strict"] = p(audio, voicing_threshold=0.99)["voiced"]
out["dict44k"] = p({{"raw": sf.read({str(tmp_path / "song44k.wav")!r}, dtype="float32")[0], "sampling_rate": 44100}})
out["silence"] = p(np.zeros(5 * 16000, dtype=np.float32))
for bad in (np.zeros(100, dtype=np.float32), "missing.wav"):
    try:
        p(bad)
    except (ValueError, OSError) as error:
        out.setdefault("errors", []).append(str(error))
t = pipeline(model={str(transcription_folder)!r}, trust_remote_code=True)
out["plain"] = t({str(tmp_path / "song.wav")!r}, return_midi=True)["notes"]
pitched = t({str(tmp_path / "song.wav")!r}, return_midi=True, pitch_model={REPO_ID!r})
out["pitched"] = pitched["notes"]
open({str(tmp_path / "pitched.mid")!r}, "wb").write(pitched["midi"])
out["pitched_from_array"] = t(audio, pitch_model=p)["notes"]
try:
    t(audio, pitch_model={str(transcription_folder)!r})
except ValueError as error:
    out["not_pitch"] = str(error)
print("RESULT" + json.dumps(out))
"""
    env = dict(os.environ, HF_HOME=str(hf_cache(folder, tmp_path)), HF_HUB_OFFLINE="1")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.split("RESULT", 1)[1])
    for name in (str(folder), REPO_ID):
        assert out[name]["task"] == "singing-pitch"
        assert out[name]["class"].startswith("transformers_modules.")  # the repo's copied code
        assert out[name]["class"].endswith("pipeline_svu.SingingPitchPipeline")
        track = out[name]["track"]
        assert sorted(track) == ["f0_hz", "times", "voiced", "voicing"]
        for key in ("times", "f0_hz", "voicing"):
            np.testing.assert_allclose(track[key], expected[key], rtol=1e-6, atol=1e-9, err_msg=key)
        assert track["voiced"] == expected["voiced"].tolist()
        assert all((f > 0) == v for f, v in zip(track["f0_hz"], track["voiced"]))
    assert out["inferred"] == "singing-pitch"
    np.testing.assert_allclose(out["array"]["f0_hz"], expected["f0_hz"], rtol=1e-6, atol=1e-9)
    assert sum(out["strict"]) < expected["voiced"].sum() and all(v <= e for v, e in zip(out["strict"], expected["voiced"]))
    assert len(out["dict44k"]["times"]) == (3 * SR - 400) // 320 + 1
    assert not any(out["silence"]["voiced"]) and set(out["silence"]["f0_hz"]) == {0.0}
    assert "at least 400 samples" in out["errors"][0] and "missing.wav" in out["errors"][1]

    # transcription: without a pitch model the notes are as before; with one (a repo id, or a pitch pipeline on an
    # array), each note carries the median of the pitch model's voiced frames inside it, is numbered by it, and the
    # MIDI bends it there
    assert all(sorted(note) == ["offset", "onset", "pitch"] for note in out["plain"])
    assert [[n["onset"], n["offset"], n["pitch"]] for n in out["plain"]] == [[a, b, p] for a, b, p in notes]
    assert [[n["onset"], n["offset"], n["pitch"]] for n in out["pitched"]] == [[a, b, p] for a, b, p in pitched]
    assert pitched != notes  # the random pitch model is far from the random transcriber
    for returned in (out["pitched"], out["pitched_from_array"]):
        for note, expected_midi in zip(returned, expected_pitch_midi):
            assert (note["pitch_midi"] is None) == (expected_midi is None)
            assert note["pitch_midi"] is None or abs(note["pitch_midi"] - expected_midi) < 1e-6
    midi = mido.MidiFile(str(tmp_path / "pitched.mid"))
    assert midi_to_notes(midi) == [(round(a, 3), round(b, 3), p) for a, b, p in pitched]
    for (_, _, p, bent), expected_midi in zip(midi_to_pitched_notes(midi), expected_pitch_midi):
        assert abs(bent - (p if expected_midi is None else expected_midi)) < 2 / 8192
    assert "is a 'transcription' model, not a pitch model" in out["not_pitch"]


def test_svu_pitch_writes_csv_json_and_plot_and_reports_bad_files(pitch_model, tmp_path):
    from PIL import Image

    from svu.figures import CONTOUR_KEY

    model, folder = pitch_model
    inputs = tmp_path / "in"
    inputs.mkdir()
    sf.write(inputs / "take1.wav", np.stack([sung_notes(9.0, sr=44100, seed=1)] * 2, axis=1), 44100)
    subprocess.run(["ffmpeg", "-loglevel", "error", "-i", str(inputs / "take1.wav"), str(inputs / "take2.mp3")], check=True)
    sf.write(inputs / "short.wav", np.zeros(200, dtype=np.float32), SR)
    (inputs / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot really audio" * 4)
    files = ["take1.wav", "short.wav", "broken.wav", "missing.wav", "take2.mp3"]
    command = [sys.executable, "-m", "svu", "pitch", *[str(inputs / f) for f in files], "--model", str(folder),
               "-o", str(tmp_path / "out"), "--format", "csv", "--format", "json", "--plot", "-q"]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, env=dict(os.environ, HF_HUB_OFFLINE="1"), timeout=300)
    assert result.returncode == 1
    assert "%|" not in result.stderr  # --quiet: no progress bar
    errors = [line for line in result.stderr.splitlines() if line.startswith("svu pitch: error:")]
    assert len(errors) == 3, result.stderr
    for name, reason in [("short.wav", "at least 400 samples"), ("broken.wav", "cannot decode audio"),
                         ("missing.wav", "no such file")]:  # fmt: skip
        assert any(name in line and reason in line for line in errors), (name, errors)
    assert "svu pitch: 5 files: 2 done, 0 skipped, 3 failed: " in result.stderr
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [f"{stem}.f0.{ext}" for stem in ("take1", "take2") for ext in ("csv", "json", "png")] + ["manifest.jsonl"]
    )

    expected = file_track(model, inputs / "take1.wav")  # stereo 44.1 kHz, read as svu pitch reads it
    assert 0 < expected["voiced"].sum() < len(expected["times"])
    with open(out / "take1.f0.csv") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["time", "f0_hz", "voicing"] and len(rows) == len(expected["times"])
    np.testing.assert_allclose([float(r["time"]) for r in rows], expected["times"], atol=5e-5)
    np.testing.assert_allclose([float(r["f0_hz"]) for r in rows], expected["f0_hz"], atol=5e-4)
    np.testing.assert_allclose([float(r["voicing"]) for r in rows], expected["voicing"], atol=5e-5)
    record = json.loads((out / "take1.f0.json").read_text())
    assert record["file"] == str(inputs / "take1.wav") and record["model"] == str(folder)
    assert record["voicing_threshold"] == model.config.voicing_threshold
    assert record["voiced"] == expected["voiced"].tolist()
    np.testing.assert_allclose(record["f0_hz"], expected["f0_hz"], atol=5e-4)
    with Image.open(out / "take1.f0.png") as image:  # the contour drawn is recorded in the PNG
        assert image.format == "PNG" and image.size[0] > 300
        contour = np.array(json.loads(image.text[CONTOUR_KEY]))
    voiced = expected["voiced"]
    np.testing.assert_allclose(contour[:, 0], expected["times"][voiced], atol=5e-5)
    np.testing.assert_allclose(contour[:, 1], expected["f0_hz"][voiced], atol=5e-4)

    # a stricter voicing threshold voices fewer frames; a bad threshold or a model of another task is one line
    assert svu_main(["pitch", str(inputs / "take1.wav"), "--model", str(folder), "-o", str(tmp_path / "strict"),
                     "--voicing-threshold", "0.9", "-q"]) == 0  # fmt: skip
    with open(tmp_path / "strict" / "take1.f0.csv") as f:
        strict = [float(r["f0_hz"]) > 0 for r in csv.DictReader(f)]
    assert sum(strict) < voiced.sum() and not any(s and not v for s, v in zip(strict, voiced))
    with pytest.raises(SystemExit, match="a probability in"):
        svu_main(["pitch", "x.wav", "--model", str(folder), "-o", str(tmp_path / "x"), "--voicing-threshold", "2"])


def test_svu_pitch_and_pitch_model_reject_models_of_other_tasks(transcriber, pitch_model, tmp_path):
    _, transcription_folder = transcriber
    _, folder = pitch_model
    with pytest.raises(SystemExit, match="is a 'transcription' model, not a pitch model"):
        svu_main(["pitch", "x.wav", "--model", str(transcription_folder), "-o", str(tmp_path / "o")])
    with pytest.raises(SystemExit, match="svu transcribe: .* is a 'transcription' model, not a pitch model"):
        svu_main(["transcribe", "x.wav", "--model", str(transcription_folder), "--pitch-model",
                  str(transcription_folder), "-o", str(tmp_path / "o")])  # fmt: skip
    with pytest.raises(SystemExit, match="is a 'pitch' model, not a transcription model"):
        svu_main(["transcribe", "x.wav", "--model", str(folder), "-o", str(tmp_path / "o")])


def test_svu_transcribe_pitch_model_adds_pitch_midi_to_every_format(transcriber, pitch_model, tmp_path):
    model, transcription_folder = transcriber
    pitch, folder = pitch_model
    sf.write(tmp_path / "song.wav", sung_notes(10.0, seed=3), SR)
    command = ["transcribe", str(tmp_path / "song.wav"), "--model", str(transcription_folder), "-o", str(tmp_path / "out"),
               "--format", "mid", "--format", "csv", "--format", "json", "-q"]  # fmt: skip
    assert svu_main(command + ["--pitch-model", str(folder)]) == 0
    notes = transcribe_blocks(model, open_audio(tmp_path / "song.wav", SR)[1], progress=False)
    track = file_track(pitch, tmp_path / "song.wav")
    pitched, expected = pitched_notes(notes, track["times"], track["f0_hz"], track["voiced"])
    assert len(notes) >= 5 and sum(p is not None for p in expected) >= 3

    with open(tmp_path / "out" / "song.csv") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["onset", "offset", "pitch", "pitch_midi"]
    assert [int(r["pitch"]) for r in rows] == [p for _, _, p in pitched]
    for row, value in zip(rows, expected):
        assert (row["pitch_midi"] == "") if value is None else abs(float(row["pitch_midi"]) - value) <= 5e-5
    rows = json.loads((tmp_path / "out" / "song.json").read_text())["song"]
    assert [row[:3] for row in rows] == [list(note) for note in pitched]
    assert [row[3] for row in rows] == [None if v is None else round(v, 4) for v in expected]
    midi = mido.MidiFile(str(tmp_path / "out" / "song.mid"))
    assert [note[:3] for note in midi_to_pitched_notes(midi)] == [(round(a, 3), round(b, 3), p) for a, b, p in pitched]

    # the same run without --pitch-model: the files are the plain ones (byte for byte what write_notes gives)
    from svu.transcribe import write_notes

    assert svu_main(command[:5] + [str(tmp_path / "plain")] + command[6:]) == 0
    for fmt in ("mid", "csv", "json"):
        write_notes(notes, tmp_path / f"expected.{fmt}", fmt, "song")
        assert (tmp_path / "plain" / f"song.{fmt}").read_bytes() == (tmp_path / f"expected.{fmt}").read_bytes(), fmt
    assert "pitchwheel" not in {m.type for m in mido.MidiFile(str(tmp_path / "plain" / "song.mid")).tracks[0]}


def test_endpoint_handler_runs_a_pitch_repo_through_its_singing_pitch_pipeline(pitch_model, tmp_path):
    import base64

    from svu.train.endpoint_handler import EndpointHandler

    model, folder = pitch_model
    sf.write(tmp_path / "song.wav", sung_notes(6.0, seed=4), SR)
    handler = EndpointHandler(str(folder))
    assert handler.task == "singing-pitch"
    result = handler({"inputs": base64.b64encode((tmp_path / "song.wav").read_bytes()).decode("ascii"),
                      "parameters": {"voicing_threshold": 0.4}})  # fmt: skip
    expected = pitch_track_blocks(model, open_audio(tmp_path / "song.wav", SR)[1], voicing_threshold=0.4, progress=False)
    assert sorted(result) == ["f0_hz", "times", "voiced", "voicing"]
    json.dumps(result)  # JSON-serialisable as it is
    np.testing.assert_allclose(result["f0_hz"], expected["f0_hz"], rtol=1e-6, atol=1e-9)
    assert result["voiced"] == expected["voiced"].tolist()

"""`svu classify` (real `python -m svu` subprocess) on a saved remote-code technique model: good files of several
formats and lengths get a row each, with the arg-max of the mean chunk logits computed independently here; bad
files get one named line each; the exit status is 1. Also `svu --version`."""

import csv
import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr
import torch
from torchcodec.decoders import AudioDecoder

from conftest import sung_tone
from svu.modeling_svu import SVUForTechniqueClassification
from svu.modeling_svu.engines import FP32_FILE
from svu.cli import main as svu_main

REPO = Path(__file__).resolve().parents[1]
SR = 16000
CHUNK_SECONDS = 3.0
LABELS = {0: "belt", 1: "breathy", 2: "vibrato", 3: "spoken"}
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    torch.manual_seed(0)
    model = SVUForTechniqueClassification.from_backbone("tiny-wav2vec2", id2label=LABELS, chunk_seconds=CHUNK_SECONDS)
    with torch.no_grad():  # a random head gives near-equal logits; scale it so the classes are well apart
        model.head.weight.mul_(40.0)
    folder = tmp_path_factory.mktemp("technique_model")
    model.eval().save_pretrained(folder)
    return model, folder


def square_wave(f0: float, seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (0.3 * np.sign(np.sin(2 * np.pi * f0 * t))).astype(np.float32)


def decode_independently(path) -> np.ndarray:
    """16 kHz mono of a file, without svu's decoder: torchcodec at the file's rate, channel mean, one soxr call."""
    samples = AudioDecoder(str(path)).get_all_samples()
    mono = samples.data.numpy().mean(axis=0)
    return soxr.resample(mono, samples.sample_rate, SR, quality="HQ").astype(np.float32)


def expected_chunk_logits(model, audio: np.ndarray):
    """The training chunking, written out: full 3 s chunks, the rest kept (zero-padded) when >= 1.5 s; a file
    shorter than half a chunk is one chunk as it is."""
    size = int(CHUNK_SECONDS * SR)
    starts = list(range(0, len(audio) - size + 1, size))
    rest = len(audio) - len(starts) * size
    if rest >= size / 2:
        starts.append(len(starts) * size)
    chunks = [np.pad(audio[s : s + size], (0, max(0, s + size - len(audio)))) for s in starts] or [audio]
    extractor = model.feature_extractor()
    logits = []
    for chunk in chunks:
        inputs = extractor(chunk, sampling_rate=SR, return_tensors="pt")
        with torch.no_grad():
            logits.append(model(inputs["input_values"]).logits[0].numpy())
    return np.stack(logits), [round(s / SR, 3) for s in starts] or [0.0]


def test_classify_good_and_bad_files(model_dir, tmp_path):
    model, folder = model_dir
    inputs = tmp_path / "in"
    inputs.mkdir()
    sf.write(inputs / "take.wav", square_wave(150.0, 7.5), SR)
    stereo44 = np.stack([sung_tone(440.0, 7.0, sr=44100), sung_tone(262.0, 7.0, sr=44100, seed=2)], axis=1)
    sf.write(inputs / "stereo44k.wav", stereo44, 44100)
    subprocess.run(["ffmpeg", "-loglevel", "error", "-i", str(inputs / "stereo44k.wav"), str(inputs / "take.mp3")], check=True)
    # 2 minutes of 3 s segments: tones and square waves (which this model labels differently), 3 to 1
    song = np.concatenate([square_wave(150.0, 3.0) if k % 4 == 3 else sung_tone(110.0 * 2 ** (k / 12), 3.0, seed=k) for k in range(40)])
    sf.write(inputs / "song2min.flac", song, SR)
    sf.write(inputs / "short.wav", sung_tone(300.0, 1.0), SR)  # under half a chunk: one short chunk
    (inputs / "text.wav").write_text("this is not audio\n" * 20)
    (inputs / "empty.mp3").write_bytes(b"")
    (inputs / "folder.wav").mkdir()
    good = ["take.wav", "stereo44k.wav", "take.mp3", "song2min.flac", "short.wav"]
    bad = {"text.wav": "cannot decode audio", "empty.mp3": "empty file", "folder.wav": "a directory", "missing.ogg": "no such file"}
    files = [str(inputs / name) for name in ["text.wav", *good[:2], "missing.ogg", *good[2:], "empty.mp3", "folder.wav"]]

    result = subprocess.run([sys.executable, "-m", "svu", "classify", *files, "--model", str(folder), "--top-k", "3",
                             "-o", str(tmp_path / "out.json"), "--batch-size", "4", "-q"],
                            capture_output=True, text=True, env=ENV, timeout=600)  # fmt: skip
    assert result.returncode == 1, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("svu classify: error:")]
    assert len(errors) == len(bad), result.stderr
    for name, reason in bad.items():
        assert any(name in line and reason in line for line in errors), (name, errors)
    assert "Traceback" not in result.stderr and "%|" not in result.stderr

    report = json.loads((tmp_path / "out.json").read_text())
    assert [Path(r["file"]).name for r in report["files"]] == good
    assert sorted(Path(f["file"]).name for f in report["failed"]) == sorted(bad)
    for record in report["files"]:
        chunk_logits, starts = expected_chunk_logits(model, decode_independently(record["file"]))
        mean = chunk_logits.mean(axis=0)
        assert [c["start"] for c in record["chunks"]] == starts
        np.testing.assert_allclose([c["logits"] for c in record["chunks"]], chunk_logits, atol=2e-3)
        assert record["top_k"][0]["label"] == LABELS[int(mean.argmax())]
        probabilities = np.exp(mean - mean.max()) / np.exp(mean - mean.max()).sum()
        order = np.argsort(-probabilities)[:3]
        assert [e["label"] for e in record["top_k"]] == [LABELS[int(i)] for i in order]
        np.testing.assert_allclose([e["probability"] for e in record["top_k"]], probabilities[order], atol=1e-3)
        assert record["top_k"][0]["label"] in result.stdout.split(Path(record["file"]).name + ":")[1].splitlines()[0]
    by_name = {Path(r["file"]).name: r for r in report["files"]}
    assert by_name["song2min.flac"]["num_chunks"] == 40 and by_name["short.wav"]["num_chunks"] == 1
    assert by_name["stereo44k.wav"]["num_chunks"] == 2  # 7 s: two chunks, the 1 s rest (< 1.5 s) dropped
    # the chunks of the 2-minute song disagree, and the files do not all get the same label
    assert len({c["top_k"][0]["label"] for c in by_name["song2min.flac"]["chunks"]}) > 1
    assert len({r["top_k"][0]["label"] for r in report["files"]}) > 1

    # CSV: one row per good file, the same top-k (in-process run of the same command)
    assert svu_main(["classify", *[str(inputs / n) for n in good], "--model", str(folder), "--top-k", "2",
                     "-o", str(tmp_path / "out.csv")]) == 0  # fmt: skip
    with open(tmp_path / "out.csv") as f:
        rows = list(csv.DictReader(f))
    assert [Path(r["file"]).name for r in rows] == good
    for row, record in zip(rows, report["files"]):
        assert [row["label1"], row["label2"]] == [e["label"] for e in record["top_k"][:2]]
        assert float(row["probability1"]) == pytest.approx(record["top_k"][0]["probability"], abs=1e-6)


def test_classify_refuses_a_transcription_model_and_a_bad_output_name(tmp_path):
    from svu.modeling_svu import SVUForNoteTranscription

    SVUForNoteTranscription.from_backbone("tiny-wav2vec2").save_pretrained(tmp_path / "notes")
    with pytest.raises(SystemExit, match="is a 'transcription' model, not a singer_id or technique model"):
        svu_main(["classify", "x.wav", "--model", str(tmp_path / "notes")])
    with pytest.raises(SystemExit, match="must end in .csv or .json"):
        svu_main(["classify", "x.wav", "--model", str(tmp_path / "notes"), "-o", str(tmp_path / "out.txt")])


def test_version_names_the_package_version():
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    result = subprocess.run([sys.executable, "-m", "svu", "--version"], capture_output=True, text=True, env=ENV, timeout=300)
    assert result.returncode == 0
    assert result.stdout.startswith(f"svu {version} (torch "), result.stdout


def test_classify_reads_a_native_sequence_classification_export_the_same(model_dir, tmp_path):
    """A `Wav2Vec2ForSequenceClassification` holding the SVU model's weights (no remote code) classifies alike."""
    from transformers import Wav2Vec2Config, Wav2Vec2ForSequenceClassification

    model, folder = model_dir
    backbone = model.config.backbone_config.to_dict()
    backbone.update(use_weighted_layer_sum=True, classifier_proj_size=backbone["hidden_size"], id2label=LABELS,
                    label2id={v: k for k, v in LABELS.items()})  # fmt: skip
    native = Wav2Vec2ForSequenceClassification(Wav2Vec2Config(**backbone)).eval()
    with torch.no_grad():
        native.wav2vec2.load_state_dict(model.backbone.state_dict())
        native.layer_weights.copy_(model.layer_sum.weight)
        native.projector.weight.copy_(torch.eye(backbone["hidden_size"]))
        native.projector.bias.zero_()
        native.classifier.load_state_dict(model.head.state_dict())
    native.config.chunk_seconds = CHUNK_SECONDS
    native.save_pretrained(tmp_path / "native")
    model.feature_extractor().save_pretrained(tmp_path / "native")
    sf.write(tmp_path / "take.wav", np.concatenate([sung_tone(220.0, 4.0), square_wave(150.0, 4.0)]), SR)
    for name, source in (("svu", folder), ("native", tmp_path / "native")):
        assert svu_main(["classify", str(tmp_path / "take.wav"), "--model", str(source), "-o", str(tmp_path / f"{name}.json")]) == 0
    svu_result, native_result = (json.loads((tmp_path / f"{n}.json").read_text())["files"][0] for n in ("svu", "native"))
    assert [e["label"] for e in native_result["top_k"]] == [e["label"] for e in svu_result["top_k"]]
    np.testing.assert_allclose(native_result["mean_logits"], svu_result["mean_logits"], atol=1e-4)


def test_classify_engines_give_the_default_labels(model_dir, tmp_path, monkeypatch):
    """`--engine onnx` (ONNX Runtime) and `--int8` (torch) label like the default fp32 model; an engine on a
    model that is not an SVU model is one line."""
    pytest.importorskip("onnxruntime")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # the ONNX export cache
    _, folder = model_dir
    sf.write(tmp_path / "take.wav", np.concatenate([sung_tone(220.0, 4.0), square_wave(150.0, 5.0)]), SR)
    results = {}
    for name, options in (("fp32", []), ("onnx", ["--engine", "onnx"]), ("int8", ["--int8"])):
        out = tmp_path / f"{name}.json"
        assert svu_main(["classify", str(tmp_path / "take.wav"), "--model", str(folder), "-o", str(out), "-q", *options]) == 0
        results[name] = json.loads(out.read_text())["files"][0]
    assert list((tmp_path / "cache" / "svu" / "onnx").glob(f"*/{FP32_FILE}"))  # ONNX Runtime did run
    reference = results["fp32"]
    assert len({c["top_k"][0]["label"] for c in reference["chunks"]}) > 1  # the chunks differ: a real comparison
    for name in ("onnx", "int8"):
        assert [c["top_k"][0]["label"] for c in results[name]["chunks"]] == [c["top_k"][0]["label"] for c in reference["chunks"]]
        tolerance = 1e-3 if name == "onnx" else 0.5  # int8: quantised weights, close logits
        np.testing.assert_allclose(results[name]["mean_logits"], reference["mean_logits"], atol=tolerance)
    from types import SimpleNamespace

    from svu.common import load_engine_or_exit

    onnx = SimpleNamespace(engine="onnx", int8=False, bf16=False)
    with pytest.raises(SystemExit, match="--engine onnx runs on the CPU here, not on --device cuda; use --device cpu"):
        load_engine_or_exit(None, onnx, "classify", "cuda")
    native = SimpleNamespace(config=SimpleNamespace(model_type="wav2vec2"))
    with pytest.raises(SystemExit, match="--engine onnx runs SVU models only; 'wav2vec2' runs with the default engine"):
        load_engine_or_exit(native, onnx, "classify", "cpu")


def test_quiet_in_process_leaves_the_environment_as_it_was(monkeypatch):
    """`main([..., "-q"])` called in-process (tests, notebooks) silences bars for that command only: a later
    subprocess or command still shows them."""
    import os

    import datasets

    from svu.cli import QUIET_ENV, main

    for key in QUIET_ENV:
        monkeypatch.delenv(key, raising=False)
    datasets.enable_progress_bars()
    with pytest.raises(SystemExit):  # a missing model: the command fails after --quiet took effect
        main(["classify", "nothing.wav", "--model", "no/such-model-here", "-q"])
    assert not any(key in os.environ for key in QUIET_ENV)
    assert datasets.is_progress_bar_enabled()

"""Inference engines and long windows on trained tiny demo models: ONNX Runtime (fp32, int8), torch int8 and bf16
give the fp32 PyTorch notes (COnP F1 >= 0.98: onset within 50 ms, same pitch) and top-1 labels (>= 99 % of
clips); 10 s windows with a 0.5 s overlap give the notes of 5 s / 1 s windows (F1 >= 0.99); without
onnxruntime, `--engine onnx` is one line."""

import os
import subprocess
import sys
from pathlib import Path

import evaluate
import numpy as np
import pytest
import soundfile as sf
import torch
from data_fixtures import train_steps, whole_songs
from test_transcription_training import METRIC

from svu.dataset_scripts.audio import resample
from svu.dataset_scripts.prepare import prepare
from svu.modeling_svu import SVUForNoteTranscription, SVUForTechniqueClassification
from svu.modeling_svu.engines import load_engine
from svu.train.data import AudioCollator

REPO_ROOT = Path(__file__).resolve().parents[1]
ENGINES = [("onnx", False, False), ("onnx", True, False), ("torch", True, False), ("torch", False, True)]
ENGINE_IDS = ["onnx", "onnx-int8", "torch-int8", "torch-bf16"]


train = train_steps


@pytest.fixture(scope="module")
def transcriber(tmp_path_factory):
    """A tiny transcription model trained 60 steps on the synthetic corpus, whole held-out songs, and their fp32
    PyTorch notes (5 s windows, 1 s overlap; computed once, the reference of every test)."""
    data = prepare("synthetic", tmp_path_factory.mktemp("synth") / "data", task="transcription", seed=0, num_proc=2)
    torch.manual_seed(0)
    model = SVUForNoteTranscription.from_backbone("tiny-wav2vec2")
    # the training collator: frame targets computed from the notes for this model
    collate = AudioCollator(model.feature_extractor(), "transcription", model.config)
    batch = collate([{**row, "row_index": i} for i, row in enumerate(data["train"].with_format("numpy"))])
    train(model, batch["input_values"], batch["labels"], steps=60)
    songs = [wave for split in ("validation", "test") for _, wave, _ in whole_songs(data[split])]
    reference = transcribe_all(model, songs)
    assert sum(map(len, reference)) >= 60  # enough notes for the F1 to mean something
    return model, songs, reference


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    """A tiny technique classifier trained (stage 1, 80 steps) on synthetic clips, >= 96 clips to label, and their
    fp32 PyTorch labels. Stage 1 freezes the backbone, so it runs once: the steps train the layer weights and the
    head on the clips' pooled hidden states (`classify_pooled`, what the stage-1 feature cache does)."""
    data = prepare("synthetic", tmp_path_factory.mktemp("synth") / "data", task="technique", seed=0, num_proc=2)
    rows = [row for split in ("train", "validation", "test") for row in data[split].with_format("numpy")]
    torch.manual_seed(0)
    names = data["train"].features["label"].names
    model = SVUForTechniqueClassification.from_backbone("tiny-wav2vec2", id2label=dict(enumerate(names)))
    waves = [resample(np.asarray(row["audio"]["array"], dtype=np.float32), int(row["audio"]["sampling_rate"]), 16000)
             for row in rows]
    inputs = model.feature_extractor()(waves, sampling_rate=16000, return_tensors="pt")["input_values"]
    model.freeze_backbone()  # stage 1: layer weights + head
    model.eval()
    with torch.no_grad():
        pooled = torch.cat([model.pooled_layer_states(batch) for batch in inputs.split(16)])
    labels = torch.tensor([int(row["label"]) for row in rows])
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=2e-2)
    generator = torch.Generator().manual_seed(0)
    model.train()
    for _ in range(80):
        batch = torch.randperm(len(pooled), generator=generator)[:16]
        loss = model.classify_pooled(pooled[batch], labels=labels[batch]).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        reference = torch.cat([model(batch).logits.argmax(-1) for batch in inputs.split(16)])
    assert len(reference) >= 96 and len(set(reference.tolist())) >= 2  # not a constant model (it learns 2 classes)
    return model, inputs, reference


def notes_f1(predictions, references) -> float:
    result = evaluate.load(METRIC).compute(
        predictions=[[list(n) for n in p] for p in predictions], references=[[list(n) for n in r] for r in references]
    )
    return result["COnP_f1"]


def transcribe_all(model, songs, **options):
    return [model.transcribe(wave, progress=False, **options) for wave in songs]


@pytest.mark.parametrize("engine,int8,bf16", ENGINES, ids=ENGINE_IDS)
def test_engine_notes_agree_with_fp32_torch(transcriber, tmp_path, engine, int8, bf16):
    model, songs, reference = transcriber
    fast = load_engine(model, engine, int8=int8, bf16=bf16, cache_dir=tmp_path)
    f1 = notes_f1(transcribe_all(model, songs, engine=fast), reference)
    print(f"{fast.name}: COnP F1 vs fp32 torch {f1:.4f}")
    assert f1 >= 0.98


@pytest.mark.parametrize("engine,int8,bf16", ENGINES, ids=ENGINE_IDS)
def test_engine_labels_agree_with_fp32_torch(classifier, tmp_path, engine, int8, bf16):
    model, inputs, reference = classifier
    fast = load_engine(model, engine, int8=int8, bf16=bf16, cache_dir=tmp_path)
    labels = torch.cat([fast(batch).argmax(-1) for batch in inputs.split(16)])
    agreement = float((labels == reference).float().mean())
    print(f"{fast.name}: top-1 agreement {agreement:.4f}")
    assert agreement >= 0.99


def test_long_windows_give_the_notes_of_the_default_windows(transcriber):
    model, songs, reference = transcriber  # reference: 5 s windows, 1 s overlap
    longer = transcribe_all(model, songs, chunk_seconds=10.0, overlap_seconds=0.5)
    f1 = notes_f1(longer, reference)
    print(f"10 s / 0.5 s windows vs 5 s / 1 s: COnP F1 {f1:.4f}")
    assert f1 >= 0.99


# Hides onnxruntime (as if it were not installed), then runs the CLI.
HIDE_ORT = r"""
import sys
sys.modules["onnxruntime"] = None  # `import onnxruntime` raises ImportError; find_spec says "not installed"
from svu.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_onnx_without_onnxruntime_is_one_line(transcriber, tmp_path):
    model, songs, _ = transcriber
    model.save_pretrained(tmp_path / "model")
    sf.write(tmp_path / "song.wav", songs[0][: 16000 * 3], 16000)
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "HF_HUB_OFFLINE": "1", "XDG_CACHE_HOME": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, "-c", HIDE_ORT, "transcribe", str(tmp_path / "song.wav"), "--model", str(tmp_path / "model"),
         "-o", str(tmp_path / "out"), "--engine", "onnx", "--int8"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines() if "error" in line.lower()]
    assert errors == ["svu transcribe: error: --engine onnx needs onnxruntime and onnx: pip install onnxruntime onnx "
                      "(or pip install 'svu[onnx]')"], proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "out" / "song.mid").exists()

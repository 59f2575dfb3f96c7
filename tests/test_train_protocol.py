"""The paper's protocol in real `train/run.py` runs: gradient accumulation and `validation: none` (train on every
non-test group, keep the last epoch) in this process (`in_process`), and test metrics of a two-process
`accelerate launch` run that `train.evaluation.evaluate_test` reproduces exactly from the saved repo (what
`svu evaluate` builds on)."""

import json

import numpy as np
import pytest
from safetensors.numpy import load_file

from test_train import CONFIGS, launch
from in_process import train

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def layer_norm_backbone(tmp_path_factory):
    """A tiny wav2vec2 with layer-norm CNN and every dropout off, saved as a local backbone folder."""
    from transformers import Wav2Vec2Model

    from svu.modeling_svu.backbones import tiny_backbone_config

    config = tiny_backbone_config("wav2vec2", feat_extract_norm="layer", do_stable_layer_norm=True, hidden_dropout=0.0,
                                  attention_dropout=0.0, activation_dropout=0.0, feat_proj_dropout=0.0, final_dropout=0.0)
    folder = tmp_path_factory.mktemp("backbone") / "tiny-layer-norm-wav2vec2"
    import torch

    torch.manual_seed(0)
    Wav2Vec2Model(config).save_pretrained(folder)
    return folder


def singer_run(tmp_path_factory, backbone, name, batch_size, accumulation, prepared_dir=None):
    out = tmp_path_factory.mktemp(name)
    data = ["--dataset.prepared_dir", str(prepared_dir)] if prepared_dir else []  # default: the run prepares out/data
    train("--config", str(CONFIGS / "demo_singer_id.yaml"), "--output_dir", str(out), "--backbone", str(backbone),
           "--dataset.options", "{task: singer_id, num_singers: 4, recordings_per_singer: 3}", "--validation", "none",
           "--epochs", "3", "--stage1_epochs", "1", "--cache_stage1", "false", "--lr_stage2", "1e-3",
           "--batch_size", str(batch_size), "--gradient_accumulation_steps", str(accumulation), *data)
    return out


@pytest.fixture(scope="module")
def accumulation_runs(tmp_path_factory, layer_norm_backbone):
    """The first run prepares the corpus, the other two read it."""
    first = singer_run(tmp_path_factory, layer_norm_backbone, "singer_8x1", 8, 1)
    runs = {(8, 1): first}
    for batch, steps in ((4, 2), (4, 1)):
        runs[batch, steps] = singer_run(tmp_path_factory, layer_norm_backbone, f"singer_{batch}x{steps}", batch, steps,
                                        prepared_dir=first / "data")
    return runs


def test_accumulation_2x4_ends_with_the_weights_of_batch_8(accumulation_runs):
    weights = {key: load_file(str(out / "repo" / "model.safetensors")) for key, out in accumulation_runs.items()}
    batch8, accumulated, batch4 = weights[(8, 1)], weights[(4, 2)], weights[(4, 1)]
    assert batch8.keys() == accumulated.keys()
    worst = max(float(np.abs(batch8[k] - accumulated[k]).max()) for k in batch8)
    # the check can fail: twice as many steps of batch 4 move the weights elsewhere
    apart = max(float(np.abs(batch8[k] - batch4[k]).max()) for k in batch8)
    print(f"max |batch 8 - 2 x batch 4 accumulated| = {worst:.2e}; max |batch 8 - batch 4| = {apart:.2e}")
    assert worst < 1e-5 and apart > 1e-3, (worst, apart)
    metrics = json.loads((accumulation_runs[(4, 2)] / "metrics.json").read_text())
    assert metrics["gradient_accumulation_steps"] == 2 and metrics["effective_batch_size"] == 8


def test_validation_none_trains_on_every_non_test_group_and_keeps_the_last_epoch(accumulation_runs):
    out = accumulation_runs[(8, 1)]
    metrics = json.loads((out / "metrics.json").read_text())
    meta = json.loads((out / "data" / "svu_meta.json").read_text())
    # synthetic singer ID: 3 recordings per singer; the validation recording trains too
    assert meta["validation"] == "none" and meta["report"]["groups"] == {"what": "recording/album", "train": 8, "validation": 0, "test": 4}
    assert metrics["protocol"]["validation"] == "none" and metrics["protocol"]["model_selection"] == "last epoch (validation: none)"
    assert metrics["best_epoch"] == 2 and metrics["validation"] is None and metrics["selection_metric"] is None
    assert not (out / "best").exists()
    card = (out / "repo" / "README.md").read_text()
    assert "Validation: `none`" in card and "last epoch (validation: none)" in card


@pytest.fixture(scope="module")
def transcription_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("transcription_protocol")
    # 2 processes: the test songs are shared between them and the notes gathered; chunks in uneven batches of 3
    launch("--config", str(CONFIGS / "demo_transcription.yaml"), "--output_dir", str(out),
           "--epochs", "2", "--stage1_epochs", "1", "--eval_batch_size", "3", processes=2)
    return out


def test_transcription_test_metrics_are_whole_song_and_reproducible_from_the_repo(transcription_run):
    """The run's test metrics (2 processes) equal `evaluate_test` on the saved repo in one process, exactly."""
    from svu.dataset_scripts.prepare import load_prepared
    from svu.modeling_svu import SVUForNoteTranscription
    from svu.train.evaluation import VALIDATION_PROXY, evaluate_test, scoring_of

    out = transcription_run
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["protocol"]["test_scoring"] == scoring_of("transcription").test_scoring
    assert metrics["protocol"]["validation_proxy"] == VALIDATION_PROXY
    data, meta = load_prepared(out / "data")
    assert metrics["num_processes"] == 2
    assert metrics["test"]["num_songs"] == len(data["test"].unique("song_id")) == len(metrics["test"]["per_song"])
    assert metrics["test"]["num_examples"] == metrics["test"]["num_unique_examples"] == len(data["test"])
    model = SVUForNoteTranscription.from_pretrained(out / "repo")
    again = evaluate_test(model, data["test"], meta, batch_size=metrics["eval_batch_size"])
    assert json.loads(json.dumps(again)) == metrics["test"]  # exactly, through JSON as metrics.json stores it
    logs = "".join(p.read_bytes().decode("latin-1") for p in (out / "logs").rglob("events.out.tfevents.*"))
    assert "validation_proxy/COn_f1" in logs and "validation/COn_f1" not in logs

"""The demo lyrics model, trained for real on the synthetic lyrics corpus through `accelerate launch train/run.py`
(`demo_runs.demo_run`): its test CER falls well below the untrained model's, and the saved repo reproduces it."""

import json

import pytest
import torch
from demo_runs import DEMO_GROUP, demo_run

from svu.dataset_scripts.prepare import load_prepared
from svu.modeling_svu import SVUForLyricsTranscription
from svu.train.evaluation import evaluate_test

pytestmark = [pytest.mark.timeout(900), pytest.mark.xdist_group(DEMO_GROUP)]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    demo = demo_run("lyrics", tmp_path_factory)
    data, meta = load_prepared(demo.data)
    model = SVUForLyricsTranscription.from_pretrained(demo.repo).eval()
    return demo.out, data, meta, model


def test_trained_cer_is_well_below_the_untrained_models(run):
    out, data, meta, model = run
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["task"] == "lyrics" and metrics["selection_metric"] == "neg_cer"
    test = metrics["test"]
    assert test["num_examples"] == len(data["test"]) and test["num_songs"] == len(set(data["test"]["song_id"]))
    torch.manual_seed(0)
    untrained = SVUForLyricsTranscription(model.config).eval()  # the same architecture, random weights
    untrained_cer = evaluate_test(untrained, data["test"], meta, batch_size=8)["cer"]
    print(f"test CER: trained {test['cer']:.3f}, untrained {untrained_cer:.3f}")
    assert test["cer"] < 0.6 and test["cer"] <= 0.5 * untrained_cer, (test["cer"], untrained_cer)


def test_saved_repo_reproduces_the_test_scores(run):
    out, data, meta, model = run
    test = json.loads((out / "metrics.json").read_text())["test"]
    again = evaluate_test(model, data["test"], meta, batch_size=8)
    for key in ("wer", "cer", "chunk_wer", "chunk_cer"):
        assert again[key] == pytest.approx(test[key], abs=1e-6), key

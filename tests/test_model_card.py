"""Model card generation and the local classification metric (in-process, fast)."""

import evaluate
import numpy as np
import pytest
import yaml

from svu.model_cards import model_card, write_model_card
from svu.train.config import load_config

METRIC = "train/metrics/classification"


def test_classification_metric_by_hand():
    metric = evaluate.load(METRIC)
    scores = [[0.9, 0.05, 0.05], [0.1, 0.8, 0.1], [0.6, 0.3, 0.1], [0.2, 0.3, 0.5], [0.5, 0.1, 0.4]]
    refs = [0, 1, 1, 2, 2]
    # predictions 0, 1, 0, 2, 0 -> per-class F1: c0 2/3 (tp1 fp2 fn0 -> 2/4=0.5), c1 2/3, c2 2/3
    out = metric.compute(predictions=scores, references=refs, clip_ids=["a", "b", "b", "c", "c"])
    assert out["accuracy"] == pytest.approx(3 / 5)
    assert out["macro_f1"] == pytest.approx(np.mean([0.5, 2 / 3, 2 / 3]))
    assert out["balanced_accuracy"] == pytest.approx(np.mean([1.0, 0.5, 0.5]))
    assert out["top2_accuracy"] == pytest.approx(1.0) and out["top3_accuracy"] == 1.0
    # clip b: votes 1, 0 -> tie -> class 0 (wrong); mean logit [0.35, 0.55, 0.1] -> 1 (right)
    # clip c: votes 2, 0 -> tie -> class 0 (wrong); mean logit [0.35, 0.2, 0.45] -> 2 (right)
    assert out["num_clips"] == 3 and out["num_examples"] == 5
    assert out["clip_majority_accuracy"] == pytest.approx(1 / 3)
    assert out["clip_mean_logit_accuracy"] == pytest.approx(1.0)


def test_classification_metric_bad_input():
    metric = evaluate.load(METRIC)
    with pytest.raises(ValueError, match="different labels"):
        metric.compute(predictions=[[1.0, 0.0], [0.0, 1.0]], references=[0, 1], clip_ids=["a", "a"])


def fake_metrics(task):
    test = ({"macro_f1": 0.4123, "accuracy": 0.5, "balanced_accuracy": 0.45, "top2_accuracy": 0.7,
             "top3_accuracy": 0.81, "clip_majority_accuracy": 0.6, "num_examples": 48}
            if task != "transcription" else
            {"COnPOff_f1": 0.1, "COnP_f1": 0.2, "COn_f1": 0.55, "frame_note_accuracy": 0.3, "num_examples": 8})
    return {"test": test, "best_epoch": 3, "selection_metric": "macro_f1", "effective_batch_size": 16,
            "layer_weights": [0.1, 0.2, 0.3, 0.4]}


@pytest.mark.parametrize("task, pipeline_tag", [("technique", "audio-classification"), ("transcription", "other")])
def test_card_yaml_parses_and_model_index_equals_metrics(task, pipeline_tag, tmp_path):
    cfg = load_config(None, ["--task", task]).to_dict()
    cfg["backbone"] = "wavlm"
    metrics = fake_metrics(task)
    meta = {"corpus": "vocalset" if task == "technique" else "mir_st500", "label_names": ["belt", "breathy"],
            "chunk_seconds": 3.0, "fingerprint": "abc"}
    path = write_model_card(tmp_path, cfg, metrics, meta, "wavlm", repo_id="me/svu-x",
                            widget=[("samples/test_0.wav", "belt")])
    text = path.read_text()
    card = yaml.safe_load(text.split("---\n")[1])
    assert card["library_name"] == "transformers" and card["pipeline_tag"] == pipeline_tag
    assert card["widget"] == [{"src": "https://huggingface.co/me/svu-x/resolve/main/samples/test_0.wav",
                               "example_title": "belt"}]
    results = card["model-index"][0]["results"][0]
    assert results["dataset"]["split"] == "test"
    values = {m["name"]: m["value"] for m in results["metrics"]}
    if task == "technique":
        assert values["Macro F1 (chunk)"] == 0.4123 and len(values) == 5
        assert "| Macro F1 | 41.2 | 55.6 |" in text  # ours vs the paper's WavLM number
        assert "clip_majority_accuracy (extra" in text
    else:
        assert values["COnPOff F1"] == 0.1 and values["COn F1"] == 0.55
        assert "| COnPOff F1 | 10.0 | 44.4 |" in text
    assert (tmp_path / "layer_weights.png").read_bytes()[:4] == b"\x89PNG"
    assert "## Limitations" in text and "## Intended use" in text and "## Training recipe" in text


def test_synthetic_card_says_numbers_are_not_comparable():
    cfg = load_config().to_dict()
    card = model_card(cfg, fake_metrics("technique"), {"corpus": "synthetic", "label_names": ["a"]}, "wav2vec2")
    assert "not comparable" in card.text
    assert card.data.datasets == ["synthetic"]

"""Layer pruning: `svu export --max-layers/--prune auto` writes a normal, smaller SVU repo that a fresh process
loads as remote code and that computes exactly what the full model computes when the dropped layer-weight
mass is zero; `train/run.py --max_layers` builds the pruned model from the start."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import sung_tone
from in_process import svu

from svu.modeling_svu import SVUForNoteTranscription, SVUForSingerID, tiny_backbone_config
from svu.modeling_svu.pruning import layers_to_keep, prune_layers

REPO_ROOT = Path(__file__).resolve().parents[1]

# Fresh, isolated Python (no access to this repo): load the folder as Hub remote code and save the logits.
CHILD = r"""
import sys, numpy as np, torch
from transformers import AutoModel
model = AutoModel.from_pretrained(sys.argv[1], trust_remote_code=True).eval()
assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
audio = torch.from_numpy(np.load(sys.argv[2]))
with torch.no_grad():
    np.save(sys.argv[3], model(audio).logits.numpy())
print(model.config.backbone_config.num_hidden_layers, len(model.backbone.encoder.layers))
"""




def fresh_process_logits(repo, audio, tmp_path):
    np.save(tmp_path / "audio.npy", audio)
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "PYTHON", "TRANSFORMERS_"))}
    env.update(HF_HOME=str(tmp_path / "hf"), HF_HUB_OFFLINE="1")
    proc = subprocess.run([sys.executable, "-I", str(script), str(repo), str(tmp_path / "audio.npy"),
                           str(tmp_path / "logits.npy")], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return np.load(tmp_path / "logits.npy"), proc.stdout.split()


def model_with_dead_top_layers(cls, family="wav2vec2", layers=4, live=2, **config):
    """A tiny model whose layer-sum logits above state `live` are -1e4: softmax weight exactly 0.0 in float32."""
    torch.manual_seed(0)
    model = cls.from_backbone(tiny_backbone_config(family, num_hidden_layers=layers), **config).eval()
    with torch.no_grad():
        model.layer_sum.weight.copy_(torch.tensor([0.3, -0.2, 0.5] + [0.0] * (layers - 2))[: layers + 1])
        model.layer_sum.weight[live + 1 :] = -1e4
    assert float(model.layer_weights()[live + 1 :].sum()) == 0.0
    return model


@pytest.mark.parametrize("family,stable", [("wav2vec2", False), ("wav2vec2", True), ("wavlm", False)])
def test_pruned_export_loads_in_a_fresh_process_and_equals_the_full_model(tmp_path, family, stable):
    extra = {"do_stable_layer_norm": True, "feat_extract_norm": "layer"} if stable else {}
    torch.manual_seed(0)
    config = tiny_backbone_config(family, num_hidden_layers=4, **extra)
    model = SVUForNoteTranscription.from_backbone(config).eval()
    with torch.no_grad():
        model.layer_sum.weight.copy_(torch.tensor([0.3, -0.2, 0.5, -1e4, -1e4]))
    full, pruned = tmp_path / "full", tmp_path / "pruned"
    model.save_pretrained(full)
    (full / "README.md").write_text("# card\n")
    audio = np.stack([sung_tone(220.0, 1.0), sung_tone(330.0, 1.0, seed=1)])
    with torch.no_grad():
        expected = model(torch.from_numpy(audio)).logits.numpy()

    proc = svu("export", full, pruned, "--max-layers", 2)
    assert proc.returncode == 0, proc.stderr
    assert "from 4 to 2 layers" in proc.stdout and "mass 0" in proc.stdout
    logits, (config_layers, module_layers) = fresh_process_logits(pruned, audio, tmp_path)
    assert (config_layers, module_layers) == ("2", "2")
    np.testing.assert_array_equal(logits, expected)
    saved = json.loads((pruned / "config.json").read_text())
    assert saved["backbone_config"]["num_hidden_layers"] == 2
    assert saved["pruning"] == {"original_layers": 4, "kept_layers": 2, "dropped_mass": 0.0, "threshold": None}
    card = (pruned / "README.md").read_text()
    assert card.startswith("# card") and "pruned from 4 to 2 layers" in card
    assert (pruned / "model.safetensors").stat().st_size < (full / "model.safetensors").stat().st_size


def test_pruning_with_dropped_mass_changes_the_output_and_says_how_much():
    torch.manual_seed(0)
    model = SVUForSingerID.from_backbone("tiny-wav2vec2", id2label={0: "a", 1: "b"}).eval()  # uniform weights
    audio = torch.from_numpy(sung_tone(220.0, 1.0))[None]
    with torch.no_grad():
        before = model(audio).logits
        report = prune_layers(model, 1)
        after = model(audio).logits
    assert report.dropped_mass == pytest.approx(0.5)  # 2 of 4 equal weights
    assert not torch.allclose(before, after)
    assert model.layer_sum.weight.tolist() == [0.0, 0.0]  # kept logits keep their values


def test_prune_auto_keeps_layers_up_to_the_highest_weight_over_the_threshold(tmp_path):
    model = model_with_dead_top_layers(SVUForSingerID, layers=4, live=3, id2label={0: "a", 1: "b"})
    with torch.no_grad():
        model.layer_sum.weight[3] = -5.0  # softmax ~0.0018: under 0.01, over 0.001
    weights = model.layer_weights()
    assert layers_to_keep(weights, 0.01) == 2 and layers_to_keep(weights, 0.001) == 3
    model.save_pretrained(tmp_path / "full")
    proc = svu("export", tmp_path / "full", tmp_path / "auto", "--prune", "auto")
    assert proc.returncode == 0, proc.stderr
    saved = json.loads((tmp_path / "auto" / "config.json").read_text())
    assert saved["backbone_config"]["num_hidden_layers"] == 2
    assert saved["pruning"]["threshold"] == 0.01 and 0.001 < saved["pruning"]["dropped_mass"] < 0.01
    assert "(auto, threshold 0.01)" in proc.stdout


NATIVE_CHILD = r"""
import json, sys, numpy as np, torch
from transformers import AutoFeatureExtractor, AutoModelForAudioClassification
model = AutoModelForAudioClassification.from_pretrained(sys.argv[1]).eval()
assert type(model).__module__.startswith("transformers.models"), type(model).__module__
extractor = AutoFeatureExtractor.from_pretrained(sys.argv[1])
audio = np.load(sys.argv[2])
inputs = extractor(list(audio), sampling_rate=16000, return_tensors="pt")
with torch.no_grad():
    np.save(sys.argv[3], model(**inputs).logits.numpy())
print(model.config.num_hidden_layers, len(model.wav2vec2.encoder.layers))
"""


def test_native_export_is_pruned_into_a_native_export(tmp_path):
    """A native export (transformers' own classifier) pruned by `svu export` stays native, with its auto_map to SVU's
    class and the code: a fresh process loads it with AutoModelForAudioClassification, with the full model's logits
    (zero dropped mass), and its `svu` entry keeps the pruning record; pruning it again counts from the original
    layers."""
    from svu.train.native_export import save_native

    model = model_with_dead_top_layers(SVUForSingerID, layers=4, live=2, id2label={0: "a", 1: "b"})
    save_native(model, tmp_path / "native")
    audio = np.stack([sung_tone(220.0, 1.0), sung_tone(330.0, 1.0, seed=1)]).astype(np.float32)
    proc = svu("export", tmp_path / "native", tmp_path / "pruned", "--max-layers", 2)
    assert proc.returncode == 0, proc.stderr
    assert "from 4 to 2 layers" in proc.stdout and "mass 0" in proc.stdout
    saved = json.loads((tmp_path / "pruned" / "config.json").read_text())
    assert saved["architectures"] == ["Wav2Vec2ForSequenceClassification"]
    assert saved["auto_map"]["AutoModel"] == "modeling_svu.SVUForSingerID" and (tmp_path / "pruned" / "modeling_svu.py").is_file()
    assert saved["num_hidden_layers"] == 2 and saved["svu"]["pruning"]["original_layers"] == 4

    full_logits, _ = fresh_native_logits(tmp_path / "native", audio, tmp_path / "full_run")
    logits, layers = fresh_native_logits(tmp_path / "pruned", audio, tmp_path / "pruned_run")
    assert layers == ["2", "2"]
    np.testing.assert_allclose(logits, full_logits, rtol=0, atol=1e-5)
    again = svu("export", tmp_path / "pruned", tmp_path / "again", "--max-layers", 1)
    assert again.returncode == 0, again.stderr
    assert json.loads((tmp_path / "again" / "config.json").read_text())["svu"]["pruning"]["original_layers"] == 4


def test_widget_ready_native_export_is_pruned_without_an_auto_map(tmp_path):
    from svu.train.native_export import save_native

    model = model_with_dead_top_layers(SVUForSingerID, layers=4, live=2, id2label={0: "a", 1: "b"})
    save_native(model, tmp_path / "native", remote_code=False)
    proc = svu("export", tmp_path / "native", tmp_path / "pruned", "--max-layers", 2)
    assert proc.returncode == 0, proc.stderr
    saved = json.loads((tmp_path / "pruned" / "config.json").read_text())
    assert saved["num_hidden_layers"] == 2 and "auto_map" not in saved and not list((tmp_path / "pruned").glob("*.py"))


def fresh_native_logits(repo, audio, work):
    work.mkdir()
    np.save(work / "audio.npy", audio)
    (work / "child.py").write_text(NATIVE_CHILD)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "PYTHON", "TRANSFORMERS_"))}
    env.update(HF_HOME=str(work / "hf"), HF_HUB_OFFLINE="1")
    proc = subprocess.run([sys.executable, "-I", str(work / "child.py"), str(repo), str(work / "audio.npy"),
                           str(work / "logits.npy")], cwd=work, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return np.load(work / "logits.npy"), proc.stdout.split()


@pytest.mark.parametrize("args,expected", [
    (["--max-layers", "9"], "max_layers=9 must be between 1 and the backbone's 3 layers"),
    (["--prune", "all"], "--prune 'all': expected auto or auto=THRESHOLD"),
    (["--prune", "auto=2"], "prune threshold must be between 0 and 1"),
])
def test_bad_pruning_requests_are_one_line(tmp_path, capsys, args, expected):
    from svu.cli import main

    torch.manual_seed(0)
    SVUForSingerID.from_backbone("tiny-wav2vec2", id2label={0: "a", 1: "b"}).save_pretrained(tmp_path / "m")
    capsys.readouterr()
    assert main(["export", str(tmp_path / "m"), str(tmp_path / "out"), *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("svu export: error: ") and expected in err, err
    assert not (tmp_path / "out" / "model.safetensors").exists()


def test_train_max_layers_builds_the_pruned_model_from_the_start():
    from svu.train.config import TrainConfig
    from svu.train.run import build_model

    meta = {"chunk_seconds": 3.0, "label_names": ["a", "b"], "class_weights": [1.0, 1.0]}
    model = build_model(TrainConfig(task="technique", backbone="tiny-wav2vec2", max_layers=2), meta)
    assert len(model.backbone.encoder.layers) == 2 and model.config.backbone_config.num_hidden_layers == 2
    assert model.layer_sum.num_states == 3 and model.config.pruning["original_layers"] == 3
    with pytest.raises(ValueError, match="max_layers=5 must be between 1 and the backbone's 3 layers"):
        build_model(TrainConfig(task="technique", backbone="tiny-wav2vec2", max_layers=5), meta)
    with pytest.raises(ValueError, match="max_layers=0 must be an integer >= 1"):
        TrainConfig(max_layers=0)

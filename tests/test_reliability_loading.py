"""Safe loading: weights only from safetensors (a booby-trapped pickle is never opened), no unsafe
deserialisation anywhere in the project, and an edited config.json is one clear error on load.
(Import hygiene of the remote-code files: tests/test_remote_code.py.)"""

import ast
import json
import os
import pickle
import shutil
from pathlib import Path

import pytest
import torch
from transformers import AutoModel

from svu.modeling_svu import SVUForNoteTranscription, SVUForSingerID, SVUForTechniqueClassification
from svu.cli import main as svu_main

REPO = Path(__file__).resolve().parents[1]
LABELS = {0: "alto", 1: "bass", 2: "tenor"}


class Payload:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    root = tmp_path_factory.mktemp("saved")
    SVUForSingerID.from_backbone("tiny-wav2vec2", id2label=LABELS).save_pretrained(root / "singer")
    SVUForNoteTranscription.from_backbone("tiny-hubert").save_pretrained(root / "transcriber")
    SVUForTechniqueClassification.from_backbone("tiny-wavlm", id2label=LABELS).save_pretrained(root / "technique")
    return root


def edited(saved, name, tmp_path, change):
    folder = shutil.copytree(saved / name, tmp_path / name)
    config = json.loads((folder / "config.json").read_text())
    change(config)
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def test_pickle_weights_are_never_opened(saved, tmp_path):
    marker = tmp_path / "pwned"
    trapped = shutil.copytree(saved / "singer", tmp_path / "trapped")
    (trapped / "pytorch_model.bin").write_bytes(pickle.dumps(Payload(marker)))
    # Next to model.safetensors: the safetensors weights load, the pickle is ignored.
    model = SVUForSingerID.from_pretrained(trapped)
    remote = AutoModel.from_pretrained(trapped, trust_remote_code=True)  # the saved remote-code copy
    assert type(remote).__module__.startswith("transformers_modules.")
    torch.testing.assert_close(remote.head.weight, model.head.weight)
    # Alone: one clear OSError, still unopened, for the class and for the remote code.
    (trapped / "model.safetensors").unlink()
    for load in (SVUForSingerID.from_pretrained, lambda path: AutoModel.from_pretrained(path, trust_remote_code=True)):
        with pytest.raises(OSError, match="no model.safetensors; SVU loads weights only from safetensors, never from pickle"):
            load(trapped)
    with pytest.raises(ValueError, match="use_safetensors=False is not supported"):
        SVUForSingerID.from_pretrained(trapped, use_safetensors=False)
    assert not marker.exists()


def unsafe_loads(path: Path) -> list:
    """Calls that can unpickle: torch.load without weights_only=True, pickle/dill/joblib loads,
    numpy loads with allow_pickle=True, yaml.load / unsafe_load, eval/exec."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        owner = func.value.id if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) else ""
        keywords = {k.arg: k.value for k in node.keywords}
        weights_only = keywords.get("weights_only")
        if owner == "torch" and name == "load" and not (isinstance(weights_only, ast.Constant) and weights_only.value is True):
            found.append(f"{path.name}:{node.lineno} torch.load without weights_only=True")
        elif owner in ("pickle", "dill", "joblib", "cloudpickle") and name in ("load", "loads"):
            found.append(f"{path.name}:{node.lineno} {owner}.{name}")
        elif owner in ("np", "numpy") and name == "load" and "allow_pickle" in keywords:
            found.append(f"{path.name}:{node.lineno} numpy load with allow_pickle")
        elif owner == "yaml" and name in ("load", "unsafe_load", "full_load"):
            found.append(f"{path.name}:{node.lineno} yaml.{name}")
        elif isinstance(func, ast.Name) and name in ("eval", "exec"):
            found.append(f"{path.name}:{node.lineno} {name}()")
    return found


def test_no_unsafe_deserialisation_in_the_project():
    files = [p for folder in ("modeling_svu", "dataset_scripts", "train", "svu", "model_cards", "benchmarks")
             for p in (REPO / folder).rglob("*.py")]  # fmt: skip
    assert len(files) > 20
    assert [hit for path in files for hit in unsafe_loads(path)] == []
    # the checker itself finds what it looks for
    sample = Path(__file__).with_name("unsafe_sample_for_test.py")
    try:
        sample.write_text("import torch, pickle, yaml\ntorch.load('x')\ntorch.load('x', weights_only=False)\n"
                          "torch.load('x', weights_only=True)\npickle.loads(b'')\nyaml.load('')\neval('1')\n")
        assert len(unsafe_loads(sample)) == 5
    finally:
        sample.unlink()


@pytest.mark.parametrize(
    "name, change, error, match",
    [
        ("singer", lambda c: c["backbone_config"].update(model_type="bert"), ValueError,
         r"Unsupported backbone family 'bert'; SVU supports \['data2vec-audio', 'hubert', 'wav2vec2', 'wavlm'\]"),
        ("transcriber", lambda c: c.update(num_octaves=0), ValueError,
         r"num_octaves=0 must be an integer >= 1"),
        ("transcriber", lambda c: c.update(num_octaves=3), ValueError,
         r"config.json \(task=transcription, num_octaves=3 -> 19 logits\) does not match the saved weights: "
         r"head.weight: saved \[20, 32\], config needs \[19, 32\]; head.bias: saved \[20\], config needs \[19\]"),
        ("transcriber", lambda c: c.update(lowest_midi=90), ValueError,
         r"lowest_midi=90, num_octaves=4 leave the MIDI range 0-127"),
        ("singer", lambda c: c.update(id2label={str(i): f"s{i}" for i in range(4)},
                                      label2id={f"s{i}": i for i in range(4)}), ValueError,
         r"\(task=singer_id, num_labels=4\) does not match the saved weights: head.weight: saved \[3, 32\], "
         r"config needs \[4, 32\]"),
        ("technique", lambda c: c.update(class_weights=[1.0, 2.0]), ValueError,
         r"class_weights has 2 entries for 3 labels"),
        ("singer", lambda c: c.update(task="karaoke"), ValueError, r"Unknown task 'karaoke'"),
        ("singer", lambda c: c.update(sampling_rate="16k"), ValueError,
         r"sampling_rate='16k' must be the backbone's input rate in Hz, an integer such as 16000"),
        ("singer", lambda c: c["backbone_config"].update(hidden_size=48), ValueError,
         r"saved weights: backbone.feature_projection.projection.weight: saved \[32, 16\], config needs \[48, 16\];"
         r".* \(\+49 more\)"),
    ],
)
def test_edited_config_is_one_clear_error_on_load(saved, tmp_path, name, change, error, match):
    folder = edited(saved, name, tmp_path, change)
    cls = {"singer": SVUForSingerID, "transcriber": SVUForNoteTranscription, "technique": SVUForTechniqueClassification}[name]
    with pytest.raises(error, match=match) as info:
        cls.from_pretrained(folder)
    assert "\n" not in str(info.value)
    with pytest.raises(error, match=match):  # the same through the saved remote code
        AutoModel.from_pretrained(folder, trust_remote_code=True)


def test_a_config_of_an_older_release_with_its_removed_pooling_option_loads(saved, tmp_path):
    folder = edited(saved, "singer", tmp_path, lambda c: c.update(pooling="mean"))
    for model in (SVUForSingerID.from_pretrained(folder), AutoModel.from_pretrained(folder, trust_remote_code=True)):
        assert model.config.task == "singer_id" and model.config.id2label == LABELS


def test_transcribe_cli_names_an_edited_model(saved, tmp_path):
    folder = edited(saved, "transcriber", tmp_path, lambda c: c.update(num_octaves=3))
    with pytest.raises(SystemExit, match=r"cannot load model .*does not match the saved weights: head.weight"):
        svu_main(["transcribe", "x.wav", "--model", str(folder), "-o", str(tmp_path / "out")])

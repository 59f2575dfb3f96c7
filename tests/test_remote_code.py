"""Saved SVU repos load as Hub remote code: a fresh, offline Python process that cannot import this repo
loads copies of them (a folder, and a repo id in an HF-cache layout) through the Auto classes, the
audio-classification pipeline and (lyrics) the automatic-speech-recognition pipeline with word timestamps, and must
reproduce the in-process logits and transcript."""

import ast
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import sung_tone

from svu.modeling_svu import SVUForLyricsTranscription, SVUForNoteTranscription, SVUForPitchEstimation, SVUForSingerID
from svu.modeling_svu import SVUForTechniqueClassification
from svu.modeling_svu import TASKS, SVUModel, tiny_backbone_config

REPO_ROOT = Path(__file__).resolve().parents[1]
SNAPSHOT = "0123456789abcdef0123456789abcdef01234567"
LABELS = {0: "tenor", 1: "alto", 2: "bass"}
CODE_FILES = {"modeling_svu.py", "configuration_svu.py", "backbones.py", "layer_sum.py", "note_labels.py", "pitch.py",
              "ctc.py"}

# The start of a script run in a fresh process. The repo is pip-installed (editable) here, so the child refuses
# to import it: a Hub user has only the files in the saved folder.
BLOCK_REPO = r'''
import importlib.abc, json, sys

class BlockRepo(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in {"modeling_svu", "svu", "dataset_scripts", "train"}:
            raise ModuleNotFoundError(f"blocked: {name}")

sys.meta_path.insert(0, BlockRepo())
report = {"cwd_has_repo": __import__("os").path.exists("modeling_svu")}
try:
    from svu import modeling_svu
    report["repo_importable"] = True
except ModuleNotFoundError:
    report["repo_importable"] = False
'''
CHILD = BLOCK_REPO + r'''
import numpy as np
import torch
from transformers import AutoConfig, AutoModel, AutoModelForAudioClassification, AutoModelForAudioFrameClassification
from transformers import AutoModelForCTC, pipeline

AUTO = {"AutoModel": AutoModel, "AutoModelForAudioClassification": AutoModelForAudioClassification,
        "AutoModelForAudioFrameClassification": AutoModelForAudioFrameClassification, "AutoModelForCTC": AutoModelForCTC}
for job in json.load(open(sys.argv[1])):
    if job["kind"] == "AutoConfig":
        obj = AutoConfig.from_pretrained(job["source"], trust_remote_code=True)
        result = {"task": obj.task, "backbone": obj.backbone_config.model_type}
    elif job["kind"] == "pipeline":
        obj = pipeline("audio-classification", model=job["source"], trust_remote_code=True)
        result = {"predictions": obj(np.load(job["input"]))}
        obj = obj.model
    elif job["kind"] == "asr_pipeline":
        obj = pipeline("automatic-speech-recognition", model=job["source"], trust_remote_code=True)
        out = obj(np.load(job["input"]), return_timestamps="word")
        result = {"text": out["text"], "chunks": [{"text": c["text"], "timestamp": list(c["timestamp"])}
                                                  for c in out["chunks"]]}
        obj = obj.model
    else:
        obj = AUTO[job["kind"]].from_pretrained(job["source"], trust_remote_code=True).eval()
        inputs = {k: torch.from_numpy(v) for k, v in np.load(job["input"]).items()}
        with torch.no_grad():
            np.save(job["output"], obj(**inputs).logits.numpy())
        result = {}
    result["class"] = f"{type(obj).__module__}.{type(obj).__name__}"
    report[job["name"]] = result
report["repo_loaded_later"] = any(m.partition(".")[0] == "modeling_svu" for m in sys.modules)
json.dump(report, open(sys.argv[2], "w"))
'''


def run_isolated(script, *args, cwd, hf_home):
    """Run `script` in a fresh, isolated (`-I`), offline Python whose HF cache is `hf_home`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "PYTHON", "TRANSFORMERS_"))}
    env.update(HF_HOME=str(hf_home), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    proc = subprocess.run([sys.executable, "-I", str(script), *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]


def build(cls, family, seed, **overrides):
    torch.manual_seed(seed)
    model = cls.from_backbone(f"tiny-{family}", id2label=LABELS if TASKS[cls.task].classes else None, **overrides)
    with torch.no_grad():
        model.layer_sum.weight.normal_()
        [m for m in model.head.modules() if isinstance(m, torch.nn.Linear)][-1].bias.normal_()  # clear margins
    return model.eval()


MODELS = {  # name: (class, family, config overrides); all four families, every task
    "singer": (SVUForSingerID, "wav2vec2", {}),
    "technique": (SVUForTechniqueClassification, "wavlm", {"class_weights": [1.0, 0.5, 2.0], "chunk_seconds": 3.0}),
    "transcriber": (SVUForNoteTranscription, "hubert", {}),
    "music2vec": (SVUForSingerID, "data2vec-audio", {}),
    "pitch": (SVUForPitchEstimation, "wavlm", {"voicing_threshold": 0.3, "num_pitch_bins": 300}),
    "lyrics": (SVUForLyricsTranscription, "wav2vec2", {}),
}
CACHED = {"music2vec": "svu-test/music2vec-singer", "transcriber": "svu-test/transcriber"}


def padded_inputs(model, path):
    waves = [sung_tone(220, 1.0, seed=1), sung_tone(330, 0.55, seed=2)]
    inputs = model.feature_extractor()(waves, sampling_rate=16000, return_tensors="np", padding=True)
    np.savez(path, **inputs)
    with torch.no_grad():
        return model(**{k: torch.from_numpy(v) for k, v in inputs.items()}).logits.numpy()


@pytest.fixture(scope="module")
def remote(tmp_path_factory):
    """Save the models, copy them out (a folder, an HF cache), run one child process over every check."""
    tmp = tmp_path_factory.mktemp("remote")
    assert REPO_ROOT not in tmp.parents
    hf_home, jobs, models, expected = tmp / "hf_home", [], {}, {}
    for name, (cls, family, overrides) in MODELS.items():
        models[name] = model = build(cls, family, seed=len(models), **overrides)
        model.save_pretrained(tmp / "saved" / name)
        copy = shutil.copytree(tmp / "saved" / name, tmp / "elsewhere" / name)
        expected[name] = padded_inputs(model, tmp / f"{name}_inputs.npz")
        sources = {"dir": str(copy)}
        if name in CACHED:
            repo = hf_home / "hub" / f"models--{CACHED[name].replace('/', '--')}"
            shutil.copytree(copy, repo / "snapshots" / SNAPSHOT)
            (repo / "refs").mkdir()
            (repo / "refs" / "main").write_text(SNAPSHOT)
            sources["repo"] = CACHED[name]
        for via, source in sources.items():
            task_class = TASKS[cls.task].auto_classes[0]
            for kind in ("AutoConfig", "AutoModel", task_class):
                job = f"{name}/{via}/{kind}"
                jobs.append({"name": job, "kind": kind, "source": source, "input": str(tmp / f"{name}_inputs.npz"),
                             "output": str(tmp / f"{job.replace('/', '_')}.npy")})
    tone = sung_tone(262, 1.2, seed=5)
    np.save(tmp / "tone.npy", tone)
    for name in ("singer", "technique"):
        jobs.append({"name": f"{name}/pipeline", "kind": "pipeline", "source": str(tmp / "elsewhere" / name),
                     "input": str(tmp / "tone.npy")})
    jobs.append({"name": "lyrics/pipeline", "kind": "asr_pipeline", "source": str(tmp / "elsewhere" / "lyrics"),
                 "input": str(tmp / "tone.npy")})
    (tmp / "jobs.json").write_text(json.dumps(jobs))
    (tmp / "child.py").write_text(CHILD)
    run_isolated(tmp / "child.py", tmp / "jobs.json", tmp / "report.json", cwd=tmp, hf_home=hf_home)
    report = json.loads((tmp / "report.json").read_text())
    return {"tmp": tmp, "jobs": jobs, "report": report, "models": models, "expected": expected, "tone": tone}


def test_child_process_cannot_see_the_repo(remote):
    report = remote["report"]
    assert report["cwd_has_repo"] is False and report["repo_importable"] is False
    assert report["repo_loaded_later"] is False
    for job in remote["jobs"]:
        assert report[job["name"]]["class"].startswith("transformers_modules."), job["name"]


@pytest.mark.parametrize("name", MODELS)
def test_remote_auto_classes_reproduce_in_process_logits(remote, name):
    cls = MODELS[name][0]
    checked = 0
    for job in remote["jobs"]:
        if not job["name"].startswith(f"{name}/") or job["kind"].endswith("pipeline"):
            continue
        result = remote["report"][job["name"]]
        if job["kind"] == "AutoConfig":
            assert result["task"] == cls.task and result["backbone"] == MODELS[name][1]
            continue
        assert result["class"].endswith(f".modeling_svu.{cls.__name__}"), job["name"]
        # Measured bit-identical; the tolerance only allows for a different CPU thread count.
        np.testing.assert_allclose(np.load(job["output"]), remote["expected"][name], rtol=0, atol=1e-6,
                                   err_msg=job["name"])
        checked += 1
    assert checked == 2 * (2 if name in CACHED else 1)  # (AutoModel, the task's auto class) x (folder, repo id)


@pytest.mark.parametrize("name", ["singer", "technique"])
def test_audio_classification_pipeline_returns_the_saved_labels(remote, name):
    model = remote["models"][name]
    inputs = model.feature_extractor()(remote["tone"], sampling_rate=16000, return_tensors="pt")
    with torch.no_grad():
        probs = torch.softmax(model(**inputs).logits[0], -1)
    predictions = remote["report"][f"{name}/pipeline"]["predictions"]
    assert {p["label"] for p in predictions} == set(LABELS.values())
    assert predictions[0]["label"] == LABELS[int(probs.argmax())]
    for p in predictions:
        assert p["score"] == pytest.approx(probs[model.config.label2id[p["label"]]].item(), abs=1e-5)


def test_asr_pipeline_returns_the_text_and_word_timestamps(remote):
    """The lyrics model through `pipeline("automatic-speech-recognition", ..., return_timestamps="word")` in the
    fresh process: the in-process greedy transcript, each word with its CTC-alignment times."""
    model = remote["models"]["lyrics"]
    inputs = model.feature_extractor()(remote["tone"], sampling_rate=16000, return_tensors="pt")
    with torch.no_grad():
        decoded = model.decode(model(**inputs).logits)[0]
    result = remote["report"]["lyrics/pipeline"]
    assert decoded["words"] and result["text"] == decoded["text"]
    assert [c["text"] for c in result["chunks"]] == [w["word"] for w in decoded["words"]]
    for chunk, word in zip(result["chunks"], decoded["words"]):
        assert chunk["timestamp"] == pytest.approx([word["start"], word["end"]], abs=1e-6)
        assert 0.0 <= chunk["timestamp"][0] < chunk["timestamp"][1] <= 1.2 + 1e-6


@pytest.mark.parametrize("name", MODELS)
def test_saved_folder_holds_safetensors_config_code_and_preprocessor(remote, name):
    folder = remote["tmp"] / "saved" / name
    files = {p.name for p in folder.iterdir() if p.is_file()}
    assert {"model.safetensors", "config.json", "preprocessor_config.json"} | CODE_FILES <= files
    pickles = [f for f in files if f.endswith((".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt"))]
    assert pickles == []
    cls, family = MODELS[name][:2]
    config = json.loads((folder / "config.json").read_text())
    # Transcription and pitch return frame logits: AutoModelForAudioFrameClassification (their pipelines load through it).
    auto_class = TASKS[cls.task].auto_classes[0]
    assert config["auto_map"] == {
        "AutoConfig": "configuration_svu.SVUConfig",
        "AutoModel": f"modeling_svu.{cls.__name__}",
        auto_class: f"modeling_svu.{cls.__name__}",
    }
    assert config["task"] == cls.task and config["backbone_config"]["layerdrop"] == 0.0
    preprocessor = json.loads((folder / "preprocessor_config.json").read_text())
    model = remote["models"][name]
    assert preprocessor["do_normalize"] == model.config.normalize_audio
    assert preprocessor["return_attention_mask"] is True


def test_features_only_model_is_not_an_audio_classifier(tmp_path):
    model = SVUModel.from_backbone(tiny_backbone_config("wav2vec2"))
    model.save_pretrained(tmp_path)
    auto_map = json.loads((tmp_path / "config.json").read_text())["auto_map"]
    assert auto_map == {"AutoConfig": "configuration_svu.SVUConfig", "AutoModel": "modeling_svu.SVUModel"}
    reloaded = SVUModel.from_pretrained(tmp_path).eval()
    x = torch.randn(1, 4000)
    with torch.no_grad():
        torch.testing.assert_close(reloaded(x).last_hidden_state, model.eval()(x).last_hidden_state)


MODEL_DIR = REPO_ROOT / "modeling_svu"
ALLOWED_TOP_LEVEL = {"torch", "transformers", "numpy"} | set(sys.stdlib_module_names)


def optional_import_nodes(tree):
    """Import nodes inside `try: ... except ImportError`: transformers' remote-code loader does not require
    those packages (it strips try/except blocks before checking a file's imports)."""
    optional = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Try) and any(
            isinstance(h.type, ast.Name) and h.type.id in ("ImportError", "ModuleNotFoundError") for h in node.handlers
        ):
            imports = (n for stmt in node.body for n in ast.walk(stmt) if isinstance(n, (ast.Import, ast.ImportFrom)))
            optional |= {id(n) for n in imports}
    return optional


def external_imports(path, include_optional=True):
    """(module, names) of the absolute imports in `path`; asserts relative imports are flat siblings."""
    tree = ast.parse(path.read_text(), filename=str(path))
    optional = optional_import_nodes(tree)
    found = []
    for node in ast.walk(tree):
        if not include_optional and id(node) in optional:
            continue
        if isinstance(node, ast.Import):
            found += [(alias.name, ()) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level:
            # `from . import x`, `from ..x` and subpackages are not copied next to config.json by the Hub.
            assert node.level == 1 and node.module and "." not in node.module, f"{path.name}:{node.lineno}"
            assert (MODEL_DIR / f"{node.module}.py").is_file(), f"{path.name}:{node.lineno} {node.module}"
        elif isinstance(node, ast.ImportFrom):
            found.append((node.module, tuple(alias.name for alias in node.names)))
    return found


def test_remote_files_import_only_torch_transformers_numpy_stdlib_and_siblings():
    files = sorted(MODEL_DIR.glob("*.py"))
    assert {p.name for p in files} >= CODE_FILES
    for path in files:
        for module, _ in external_imports(path, include_optional=False):
            assert module.partition(".")[0] in ALLOWED_TOP_LEVEL, f"{path.name} imports {module}"


# Imports the files laid out flat (as the Hub does) after pre-importing what they import from outside,
# with an audit hook recording any file, network or process work done while they import.
HYGIENE_CHILD = r'''
import importlib, json, os, sys
sys.dont_write_bytecode = True
site, externals, report, modules = sys.argv[1], json.load(open(sys.argv[2])), sys.argv[3], sys.argv[4:]
for module, names in externals:
    loaded = importlib.import_module(module)
    for name in names:
        getattr(loaded, name)
sys.path.insert(0, site)
WATCHED = ("open", "os.listdir", "os.scandir", "os.mkdir", "os.remove", "os.rename", "socket.", "subprocess.",
           "os.system", "os.exec", "os.spawn", "os.fork", "urllib.", "http.", "ctypes.dlopen")
events, recording = [], [True]

def hook(event, args):
    if not recording[0] or not event.startswith(WATCHED):
        return
    target = str(args[0]) if args else ""
    if event in ("open", "os.listdir", "os.scandir") and target.startswith(site):
        return  # the import system finding and reading the remote files themselves
    events.append(f"{event} {target}")

sys.addaudithook(hook)
for name in modules:
    importlib.import_module(f"svu_remote.{name}")
during_import = list(events)
open(os.devnull).close()  # a control: the hook does see file work
recording[0] = False
with open(report, "w") as f:
    json.dump({"during_import": during_import, "control": events[len(during_import):]}, f)
'''


def test_importing_the_remote_files_does_no_file_network_or_process_work(tmp_path):
    package = tmp_path / "site" / "svu_remote"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    externals = []
    for path in sorted(MODEL_DIR.glob("*.py")):
        if path.name != "__init__.py":  # the Hub copies only the modules, flat
            shutil.copy(path, package / path.name)
            externals += external_imports(path, include_optional=False)
    (tmp_path / "externals.json").write_text(json.dumps(externals))
    (tmp_path / "child.py").write_text(HYGIENE_CHILD)
    modules = sorted(p.stem for p in package.glob("*.py") if p.stem != "__init__")
    run_isolated(tmp_path / "child.py", tmp_path / "site", tmp_path / "externals.json", tmp_path / "report.json",
                 *modules, cwd=tmp_path, hf_home=tmp_path / "hf_home")
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["control"] == [f"open {os.devnull}"]
    assert report["during_import"] == []

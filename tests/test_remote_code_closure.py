"""A saved repo carries exactly the code that runs there: its Python files are the modules its model, config and
pipeline classes import (the closure of their relative imports, computed here with an AST walk), none of them
training, ONNX, subprocess or corpus code, and the repo runs its model and pipeline in a fresh offline process
that cannot import svu, for every task of `tasks.TASKS` and every export form."""

import ast
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import sung_tone
from test_remote_code import BLOCK_REPO, run_isolated

from svu.modeling_svu import TASK_MODELS, TASKS, SVUModel
from svu.modeling_svu.pipeline_svu import CUSTOM_PIPELINES
from svu.train.export import HANDLER, save_model_files
from svu.train.native_export import NATIVE_FORMS, native_unsupported_reason

REPO_ROOT = Path(__file__).resolve().parents[1]
MODEL_DIR = REPO_ROOT / "modeling_svu"
SR = 16000
LABELS = {0: "tenor", 1: "alto", 2: "bass"}
# Top-level imports that mark code a model repo must not carry: ONNX, processes, training and corpus preparation.
NOT_IN_A_REPO = {"onnx", "onnxruntime", "subprocess", "shutil", "tempfile", "datasets", "peft", "accelerate",
                 "evaluate", "soundfile", "yaml", "mir_eval", "safetensors", "svu", "dataset_scripts", "train"}  # fmt: skip
FORMS = ("remote_code", *NATIVE_FORMS)


def imports_of(path: Path):
    """(relative sibling modules, absolute top-level packages) imported anywhere in `path`, functions included
    (transformers copies a module imported inside a function too)."""
    relative, absolute = set(), set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom) and node.level:
            relative |= {node.module} if node.module else {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            absolute.add(node.module.partition(".")[0])
        elif isinstance(node, ast.Import):
            absolute |= {alias.name.partition(".")[0] for alias in node.names}
    return relative, absolute


def closure(modules) -> set:
    """The file names of `modules` and of every module they import relatively, recursively."""
    todo, seen = list(modules), set()
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo += sorted(imports_of(MODEL_DIR / f"{name}.py")[0])
    return {f"{name}.py" for name in seen}


def saved_classes(config: dict) -> set:
    """The modules of the classes a saved config.json registers: `auto_map` (model, config) and `custom_pipelines`."""
    references = list((config.get("auto_map") or {}).values())
    references += [entry["impl"] for entry in (config.get("custom_pipelines") or {}).values()]
    return {reference.rpartition(".")[0] for reference in references}


def build(name):
    torch.manual_seed(len(name))
    cls = TASK_MODELS[name] if name in TASKS else SVUModel
    labels = LABELS if name in TASKS and TASKS[name].classes else None
    model = cls.from_backbone("tiny-wav2vec2", id2label=labels)
    with torch.no_grad():
        model.layer_sum.weight.normal_()
    return model.eval()


def saved_forms():
    """(task or "features", export form) of every repo SVU writes: `save_pretrained`, and train/export.py's forms."""
    cases = [("features", "remote_code")]
    for name in TASKS:
        cases += [(name, form) for form in FORMS if form == "remote_code" or not native_unsupported_reason(build(name))]
    return cases


@pytest.fixture(scope="module")
def repos(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("closure")
    saved = {}
    for name, form in saved_forms():
        folder = tmp / f"{name}-{form}"
        model = build(name)
        if name == "features":
            model.save_pretrained(folder)
        else:
            save_model_files(model, folder, form)
        saved[name, form] = (model, folder)
    return saved


@pytest.mark.parametrize("name,form", saved_forms())
def test_saved_code_is_the_closure_of_the_saved_classes(repos, name, form):
    model, folder = repos[name, form]
    config = json.loads((folder / "config.json").read_text())
    roots = saved_classes(config)  # none for the native widget form: transformers' own class, no code
    if name in TASKS and TASKS[name].pipeline in CUSTOM_PIPELINES and form == "remote_code":
        assert "pipeline_svu" in roots
    expected = closure(roots)
    assert {path.name for path in folder.glob("*.py")} == expected
    for file in expected:
        absolute = imports_of(MODEL_DIR / file)[1]
        assert not absolute & NOT_IN_A_REPO, f"{file} imports {sorted(absolute & NOT_IN_A_REPO)}"


def test_training_onnx_and_subprocess_modules_stay_out():
    """What the package has beyond a repo's code (the ONNX engines, the loaders of published checkpoints, the
    ffmpeg subprocess decoder, layer pruning) is in no saved repo: nothing a repo carries imports it."""
    carried = closure({"modeling_svu", "configuration_svu", "pipeline_svu"})
    package_only = {path.name for path in MODEL_DIR.glob("*.py")} - carried - {"__init__.py"}
    assert package_only >= {"engines.py", "published_loading.py", "audio_io.py", "pruning.py"}


def test_the_endpoint_handler_is_one_self_contained_file():
    """train/export.py adds `handler.py` (Inference Endpoints) to the repo: it imports no sibling and nothing but
    the standard library, numpy and transformers, so it adds no other file."""
    relative, absolute = imports_of(HANDLER)
    assert relative == set()
    assert absolute <= {"numpy", "transformers"} | set(sys.stdlib_module_names)


CHILD = BLOCK_REPO + r'''
import numpy as np
import torch
from transformers import AutoModel, pipeline

for job in json.load(open(sys.argv[1])):
    model = AutoModel.from_pretrained(job["folder"], trust_remote_code=True).eval()
    inputs = {k: torch.from_numpy(v) for k, v in np.load(job["inputs"]).items()}
    with torch.no_grad():
        output = model(**inputs)
    logits = output.logits if hasattr(output, "logits") else output.last_hidden_state
    np.save(job["output"], logits.numpy())
    result = {"class": f"{type(model).__module__}.{type(model).__name__}"}
    if job["pipeline"]:
        pipe = pipeline(job["pipeline"], model=job["folder"], trust_remote_code=True)
        result["pipeline_class"] = f"{type(pipe).__module__}.{type(pipe).__name__}"
        result["from_file"] = pipe(job["wav"])
        result["from_array"] = pipe(np.load(job["array"]))
    report[job["name"]] = result
report["svu_loaded"] = sorted(m for m in sys.modules if m.partition(".")[0] in {"svu", "modeling_svu"})
json.dump(report, open(sys.argv[2], "w"))
'''


def jsonable(result):
    return json.loads(json.dumps(result, default=lambda value: value.tolist()))


@pytest.fixture(scope="module")
def fresh_process(repos, tmp_path_factory):
    """Every saved repo, copied out of the repository, run in one fresh offline process that cannot import svu."""
    tmp = tmp_path_factory.mktemp("fresh")
    assert REPO_ROOT not in tmp.parents
    audio = sung_tone(262, 2.5, seed=5)
    sf.write(tmp / "song.wav", audio, SR, subtype="FLOAT")
    np.save(tmp / "song.npy", audio)
    waves = [sung_tone(220, 1.0, seed=1), sung_tone(330, 0.6, seed=2)]
    jobs, expected = [], {}
    for (name, form), (model, folder) in repos.items():
        job_name = f"{name}-{form}"
        if not list(folder.glob("*.py")):
            continue
        copy = shutil.copytree(folder, tmp / "elsewhere" / job_name)
        inputs = model.feature_extractor()(waves, sampling_rate=SR, return_tensors="np", padding=True)
        np.savez(tmp / f"{job_name}.npz", **inputs)
        with torch.no_grad():
            output = model(**{k: torch.from_numpy(v) for k, v in inputs.items()})
        expected[job_name] = {"logits": getattr(output, "logits", None)}
        if expected[job_name]["logits"] is None:
            expected[job_name]["logits"] = output.last_hidden_state
        task = TASKS.get(name)
        pipeline_task = task.pipeline if task is not None and form == "remote_code" else None
        if pipeline_task is not None:
            pipe = CUSTOM_PIPELINES[pipeline_task](model=model, feature_extractor=model.feature_extractor())
            expected[job_name]["pipeline"] = jsonable(pipe(audio))
        jobs.append({"name": job_name, "folder": str(copy), "inputs": str(tmp / f"{job_name}.npz"),
                     "output": str(tmp / f"{job_name}.npy"), "pipeline": pipeline_task, "wav": str(tmp / "song.wav"),
                     "array": str(tmp / "song.npy")})  # fmt: skip
    (tmp / "jobs.json").write_text(json.dumps(jobs))
    (tmp / "child.py").write_text(CHILD)
    run_isolated(tmp / "child.py", tmp / "jobs.json", tmp / "report.json", cwd=tmp, hf_home=tmp / "hf_home")
    return {"report": json.loads((tmp / "report.json").read_text()), "expected": expected, "tmp": tmp}


def test_the_fresh_process_ran_the_repos_own_code_only(fresh_process):
    report = fresh_process["report"]
    assert report["cwd_has_repo"] is False and report["repo_importable"] is False
    assert report["svu_loaded"] == []


@pytest.mark.parametrize("name,form", saved_forms())
def test_each_repo_runs_its_model_and_pipeline_offline(fresh_process, repos, name, form):
    job_name = f"{name}-{form}"
    folder = repos[name, form][1]
    if job_name not in fresh_process["expected"]:  # transformers' own class, no code (tests/test_hub_export.py)
        assert not list(folder.glob("*.py")) and "auto_map" not in json.loads((folder / "config.json").read_text())
        return
    result, expected = fresh_process["report"][job_name], fresh_process["expected"][job_name]
    model = repos[name, form][0]
    assert result["class"].startswith("transformers_modules.")
    assert result["class"].endswith(f".modeling_svu.{type(model).__name__}")
    np.testing.assert_allclose(np.load(fresh_process["tmp"] / f"{job_name}.npy"), expected["logits"].numpy(),
                               rtol=0, atol=1e-5)  # fmt: skip
    if "pipeline" not in expected:
        assert "pipeline_class" not in result
        return
    assert result["pipeline_class"].startswith("transformers_modules.") and ".pipeline_svu." in result["pipeline_class"]
    for key in ("from_file", "from_array"):  # a float WAV at the model's rate decodes to the same samples
        got, want = result[key], expected["pipeline"]
        if isinstance(want, dict) and "f0_hz" in want:
            for field in want:
                np.testing.assert_allclose(got[field], want[field], rtol=1e-5, atol=1e-6, err_msg=field)
        elif isinstance(want, list):  # classification: labels with scores
            assert [p["label"] for p in got] == [p["label"] for p in want]
            np.testing.assert_allclose([p["score"] for p in got], [p["score"] for p in want], atol=1e-5)
        else:
            assert got == want, key

"""The suite's first promise on every repo it writes in its default form: in a fresh, offline process that cannot
import SVU, `AutoModel.from_pretrained(repo, trust_remote_code=True)` is the SVU task class with the exported
model's logits. A task with a native form also loads as transformers' own class without remote code
(`AutoModelForAudioClassification`, the audio-classification pipeline); its widget-ready form has no `auto_map`."""

import json
import shutil

import numpy as np
import pytest
import torch
from conftest import FAMILIES, sung_tone
from demo_runs import DEMO_GROUP, demo_run
from test_hub_export import fake_test_split
from test_remote_code import BLOCK_REPO, LABELS, SNAPSHOT, build, run_isolated

from svu.modeling_svu import TASK_MODELS, TASKS
from svu.train.config import load_config
from svu.train.export import export_repo

NATIVE_TASKS = [name for name, task in TASKS.items() if task.native_unsupported is None]
# every task on one family; the tasks with a native form on every family (each has its own config class)
REPOS = {f"{task}-{family}": (task, family)
         for i, task in enumerate(TASKS)
         for family in (FAMILIES if task in NATIVE_TASKS else [FAMILIES[i % len(FAMILIES)]])}
WIDGET_REPO = f"{NATIVE_TASKS[0]}-{FAMILIES[0]}"
CACHED_REPO = (f"{NATIVE_TASKS[-1]}-{FAMILIES[1]}", "svu-test/default-export")

CHILD = BLOCK_REPO + r'''
import numpy as np
import torch
from transformers import AutoModel, AutoModelForAudioClassification, pipeline

for job in json.load(open(sys.argv[1])):
    inputs = {k: torch.from_numpy(v) for k, v in np.load(job["input"]).items()}
    if job["kind"] == "pipeline":
        model = pipeline("audio-classification", model=job["source"])  # no trust_remote_code
        report[job["name"]] = {"predictions": model(np.load(job["audio"]), top_k=None)}
        model = model.model
    else:
        auto = AutoModel if job["kind"] == "AutoModel" else AutoModelForAudioClassification
        model = auto.from_pretrained(job["source"], trust_remote_code=job["trust_remote_code"]).eval()
        with torch.no_grad():
            output = model(**inputs)
        report[job["name"]] = {}
        if hasattr(output, "logits"):
            np.save(job["output"], output.logits.numpy())
    report[job["name"]]["class"] = f"{type(model).__module__}.{type(model).__name__}"
report["repo_loaded_later"] = any(m.partition(".")[0] == "modeling_svu" for m in sys.modules)
json.dump(report, open(sys.argv[2], "w"))
'''


def exported(tmp, name, task, family, seed, *export_option):
    """A repo written the way `train/run.py` writes it (`export_repo`), with the model it was exported from."""
    cfg = load_config(None, ["--task", task, "--backbone", f"tiny-{family}", *export_option])
    model = build(TASK_MODELS[task], family, seed=seed)
    spec = TASKS[task]
    meta = {"corpus": "synthetic", "label_names": list(LABELS.values()) if spec.classes else None,
            "chunk_seconds": 1.0, "fingerprint": "f00"}
    metrics = {"test": {metric: 0.5 for metric in spec.card_metric_keys}, "best_epoch": 0,
               "selection_metric": spec.default_selection_metric, "layer_weights": model.layer_weights().tolist()}
    return model, export_repo(cfg, model, meta, metrics, tmp / name, fake_test_split(task))


def single_clip_inputs(model, path, audio):
    """The model's inputs for one clip (transformers' native class sees no padding), saved for the child; its logits."""
    inputs = model.feature_extractor()(audio, sampling_rate=16000, return_tensors="np")
    np.savez(path, **inputs)
    with torch.no_grad():
        return model(**{k: torch.from_numpy(v) for k, v in inputs.items()}).logits.numpy()


def in_hf_cache(hf_home, folder, repo_id):
    repo = hf_home / "hub" / f"models--{repo_id.replace('/', '--')}"
    shutil.copytree(folder, repo / "snapshots" / SNAPSHOT)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(SNAPSHOT)


def job(tmp, name, kind, source, trust_remote_code=False):
    return {"name": f"{name}/{kind}/{trust_remote_code}/{source}", "kind": kind, "source": str(source),
            "trust_remote_code": trust_remote_code, "input": str(tmp / f"{name}.npz"), "audio": str(tmp / "audio.npy"),
            "output": str(tmp / f"{name}-{kind}-{trust_remote_code}-{len(str(source))}.npy")}


@pytest.fixture(scope="module")
def default_repos(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("default_export")
    hf_home, jobs, expected, folders = tmp / "hf_home", [], {}, {}
    audio = sung_tone(262, 1.2, seed=5)
    np.save(tmp / "audio.npy", audio)
    for seed, (name, (task, family)) in enumerate(REPOS.items()):
        model, folders[name] = exported(tmp / "repos", name, task, family, seed)
        expected[name] = single_clip_inputs(model, tmp / f"{name}.npz", audio)
        jobs.append(job(tmp, name, "AutoModel", folders[name], trust_remote_code=True))
        if task in NATIVE_TASKS:
            jobs += [job(tmp, name, kind, folders[name]) for kind in ("AutoModelForAudioClassification", "pipeline")]
    name, repo_id = CACHED_REPO
    in_hf_cache(hf_home, folders[name], repo_id)
    jobs.append(job(tmp, name, "AutoModel", repo_id, trust_remote_code=True))
    widget_task, widget_family = REPOS[WIDGET_REPO]
    _, folders["widget"] = exported(tmp / "repos", "widget", widget_task, widget_family, list(REPOS).index(WIDGET_REPO),
                                    "--export", "native_widget")  # the same model as WIDGET_REPO
    shutil.copy(tmp / f"{WIDGET_REPO}.npz", tmp / "widget.npz")
    jobs += [job(tmp, "widget", "AutoModelForAudioClassification", folders["widget"]),
             job(tmp, "widget", "AutoModel", folders["widget"], trust_remote_code=True)]
    (tmp / "jobs.json").write_text(json.dumps(jobs))
    (tmp / "child.py").write_text(CHILD)
    run_isolated(tmp / "child.py", tmp / "jobs.json", tmp / "report.json", cwd=tmp, hf_home=hf_home)
    return {"jobs": jobs, "report": json.loads((tmp / "report.json").read_text()), "expected": expected,
            "folders": folders}


def jobs_of(default_repos, name, kind, trust_remote_code):
    found = [j for j in default_repos["jobs"] if j["name"].startswith(f"{name}/{kind}/{trust_remote_code}/")]
    assert found, (name, kind)
    return [(j, default_repos["report"][j["name"]]) for j in found]


def test_the_child_process_cannot_import_svu(default_repos):
    report = default_repos["report"]
    assert report["cwd_has_repo"] is False and report["repo_importable"] is False
    assert report["repo_loaded_later"] is False


@pytest.mark.parametrize("task", TASKS)
def test_default_export_loads_the_svu_task_class_with_trusted_remote_code(default_repos, task):
    names = [name for name, (t, _) in REPOS.items() if t == task]
    loads = [load for name in names for load in jobs_of(default_repos, name, "AutoModel", True)]
    assert len(loads) == len(names) + (CACHED_REPO[0] in names)  # every repo; the HF-cache id too
    for job, result in loads:
        assert result["class"].startswith("transformers_modules."), job["name"]
        assert result["class"].endswith(f".modeling_svu.{TASKS[task].model_class}"), job["name"]
        name = job["name"].split("/")[0]
        np.testing.assert_allclose(np.load(job["output"]), default_repos["expected"][name], rtol=0, atol=1e-5,
                                   err_msg=job["name"])


@pytest.mark.parametrize("task", NATIVE_TASKS)
@pytest.mark.parametrize("family", FAMILIES)
def test_default_native_export_loads_as_transformers_class_without_remote_code(default_repos, task, family):
    name = f"{task}-{family}"
    expected = default_repos["expected"][name]
    config = json.loads((default_repos["folders"][name] / "config.json").read_text())
    assert config["architectures"][0].endswith("ForSequenceClassification") and config["model_type"] == family
    ((job, result),) = jobs_of(default_repos, name, "AutoModelForAudioClassification", False)
    assert result["class"].startswith("transformers.models.") and result["class"].endswith(config["architectures"][0])
    np.testing.assert_allclose(np.load(job["output"]), expected, rtol=0, atol=1e-5)
    ((_, result),) = jobs_of(default_repos, name, "pipeline", False)
    assert result["class"].startswith("transformers.models.")
    probabilities = torch.softmax(torch.from_numpy(expected[0]), -1)
    assert {p["label"]: p["score"] for p in result["predictions"]} == {
        LABELS[i]: pytest.approx(float(p), abs=1e-5) for i, p in enumerate(probabilities)}


@pytest.mark.parametrize("task", TASKS)
def test_default_export_ships_the_code_files_of_the_remote_code_form(default_repos, task, tmp_path):
    name = next(name for name, (t, _) in REPOS.items() if t == task)
    folder = default_repos["folders"][name]
    TASK_MODELS[task].from_backbone(f"tiny-{REPOS[name][1]}", id2label=LABELS if TASKS[task].classes else None
                                    ).save_pretrained(tmp_path)
    code_files = {path.name for path in tmp_path.glob("*.py")}
    assert "modeling_svu.py" in code_files and {path.name for path in folder.glob("*.py")} == code_files | {"handler.py"}
    auto_map = json.loads((folder / "config.json").read_text())["auto_map"]
    svu_class = f"modeling_svu.{TASKS[task].model_class}"
    assert auto_map["AutoModel"] == svu_class
    assert all(auto_map[auto_class] == svu_class for auto_class in TASKS[task].auto_classes)


def test_widget_ready_export_has_no_auto_map_and_loads_natively(default_repos):
    folder = default_repos["folders"]["widget"]
    config = json.loads((folder / "config.json").read_text())
    assert "auto_map" not in config and not list(folder.glob("modeling_*.py"))
    ((job, result),) = jobs_of(default_repos, "widget", "AutoModelForAudioClassification", False)
    assert result["class"].startswith("transformers.models.") and result["class"].endswith(config["architectures"][0])
    np.testing.assert_allclose(np.load(job["output"]), default_repos["expected"][WIDGET_REPO], rtol=0, atol=1e-5)
    # as its card's table says: the flag does nothing without an auto_map, AutoModel is the headless backbone
    ((_, result),) = jobs_of(default_repos, "widget", "AutoModel", True)
    assert result["class"].startswith("transformers.models.") and result["class"].endswith("Model")
    assert "ForSequenceClassification" not in result["class"]


@pytest.mark.parametrize("form", ["native", "native_widget"])
def test_training_continues_from_either_native_form(tmp_path, form):
    from svu.train.config import TrainConfig
    from svu.train.native_export import save_native
    from svu.train.run import build_model

    task = NATIVE_TASKS[-1]
    model = build(TASK_MODELS[task], "wavlm", seed=3)
    save_native(model, tmp_path, remote_code=form == "native")
    meta = {"chunk_seconds": 1.0, "label_names": list(LABELS.values()), "class_weights": [1.0] * len(LABELS)}
    continued = build_model(TrainConfig(task=task, backbone=str(tmp_path)), meta).eval()
    assert type(continued) is TASK_MODELS[task]
    x = torch.from_numpy(sung_tone(330, 0.8, seed=2))[None]
    with torch.no_grad():
        torch.testing.assert_close(continued(x).logits, model(x).logits, rtol=0, atol=1e-6)


@pytest.mark.parametrize("dtype", ["bfloat16", torch.bfloat16])
@pytest.mark.parametrize("name", ["dtype", "torch_dtype"])
def test_native_export_loads_in_the_dtype_asked(tmp_path, dtype, name):
    """`dtype` (a string or a torch.dtype, as `from_pretrained` takes it, or under its older name `torch_dtype`)."""
    from svu.train.native_export import save_native

    task = NATIVE_TASKS[0]
    save_native(build(TASK_MODELS[task], "wav2vec2", seed=1), tmp_path)
    loaded = TASK_MODELS[task].from_pretrained(tmp_path, **{name: dtype})
    assert {p.dtype for p in loaded.parameters()} == {torch.bfloat16}


DEMO_CHILD = BLOCK_REPO + r'''
import numpy as np
import torch
from transformers import AutoModel

inputs = {k: torch.from_numpy(v) for k, v in np.load(sys.argv[1]).items()}
model = AutoModel.from_pretrained(sys.argv[3], trust_remote_code=True).eval()
with torch.no_grad():
    np.save(sys.argv[4], model(**inputs).logits.numpy())
report.update({"class": type(model).__name__, "layer_weights": model.layer_weights().tolist(),
               "repo_loaded_later": any(m.partition(".")[0] == "modeling_svu" for m in sys.modules)})
json.dump(report, open(sys.argv[2], "w"))
'''


@pytest.mark.xdist_group(DEMO_GROUP)
@pytest.mark.timeout(1500)
@pytest.mark.parametrize("task", TASKS)
def test_the_demo_run_of_every_task_keeps_the_first_promise(task, tmp_path, tmp_path_factory):
    """The user's whole path for each task: `svu data prepare` + `accelerate launch train/run.py --config
    train/configs/demo_<task>.yaml` (`demo_runs`), then its repo in a fresh offline process that cannot import SVU:
    `AutoModel(..., trust_remote_code=True)` is the SVU task class, with the layer weights the run recorded and the
    logits of the saved model."""
    run = demo_run(task, tmp_path_factory)
    model = TASK_MODELS[task].from_pretrained(run.repo).eval()
    expected = single_clip_inputs(model, tmp_path / "inputs.npz", sung_tone(262, 1.2, seed=5))
    (tmp_path / "child.py").write_text(DEMO_CHILD)
    run_isolated(tmp_path / "child.py", tmp_path / "inputs.npz", tmp_path / "report.json", run.repo,
                 tmp_path / "logits.npy", cwd=tmp_path, hf_home=tmp_path / "hf_home")
    report = json.loads((tmp_path / "report.json").read_text())
    assert not report["repo_importable"] and not report["repo_loaded_later"], report
    assert report["class"] == TASKS[task].model_class
    recorded = json.loads((run.out / "metrics.json").read_text())["layer_weights"]
    np.testing.assert_allclose(report["layer_weights"], recorded, atol=1e-6)
    np.testing.assert_allclose(np.load(tmp_path / "logits.npy"), expected, atol=1e-5)

"""Every dispatch point, for every task of the registry (`modeling_svu/tasks.py`): a half-wired task fails here.

`wiring_problems` checks what each task names: its hooks resolve to the right kind of object (collate, scoring,
`svu evaluate` report, synthetic corpus), its pipeline class is the one registered, the Space has a view for its
pipeline, its CLI verb is a command, its card metrics have names and types, its endpoint defaults are options of
its models. The walk then runs each point on a tiny model of the task: the report on a fake scored split, the
synthetic generator, the export (handler, card, model files) and what loads it back (model, pipeline, handler,
Space, CLI). `test_removing_a_hook_is_reported` takes one hook away from a task and expects the check to name it.
"""

import base64
import dataclasses
import importlib.util
import io
import itertools
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from svu.modeling_svu import TASK_MODELS, tiny_backbone_config
from svu.modeling_svu.tasks import HOOKS, TASKS, CardMetric

REPO = Path(__file__).resolve().parents[1]
LABELS = {0: "belt", 1: "breathy", 2: "vibrato"}
RATE = 16000


@pytest.fixture(scope="module")
def app():
    spec = importlib.util.spec_from_file_location("space_app_dispatch", REPO / "space" / "app.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def hook_kinds() -> dict:
    """What each hook must resolve to: (a test of the object, what it should be)."""
    from svu.dataset_scripts.synthetic import SyntheticTask
    from svu.train.data import AudioCollator
    from svu.train.distill_targets import DistillationTarget
    from svu.train.evaluation import Scoring

    return {
        "collate": (lambda obj: callable(obj) and obj.__qualname__.startswith(f"{AudioCollator.__name__}."),
                    "an AudioCollator method"),
        "scoring": (lambda obj: isinstance(obj, Scoring), "a train.evaluation.Scoring"),
        "report": (callable, "a function"),
        "synthetic": (lambda obj: isinstance(obj, SyntheticTask), "a dataset_scripts.synthetic.SyntheticTask"),
        "distillation": (lambda obj: isinstance(obj, DistillationTarget), "a train.distill_targets.DistillationTarget"),
    }


def wiring_problems(task, views) -> list:
    """One line per dispatch point `task` is not wired to (empty: fully wired); `views`: the Space's `VIEWS`."""
    from transformers.pipelines import PIPELINE_REGISTRY

    from svu.cli import SUBCOMMANDS
    from svu.modeling_svu.pipeline_svu import CUSTOM_PIPELINES

    problems = []
    assert set(hook_kinds()) == set(HOOKS)  # a new hook field gets its check here
    for name, (is_right, what) in hook_kinds().items():
        try:
            found = task.hook(name)
        except (ValueError, ImportError, AttributeError) as error:
            problems.append(f"{name}: {error}")
            continue
        if not is_right(found):
            problems.append(f"{name}: {getattr(task, name)} is not {what}")
    if TASK_MODELS.get(task.name) is None or TASK_MODELS[task.name].__name__ != task.model_class:
        problems.append(f"model_class: {task.model_class} is not the task's model in modeling_svu.TASK_MODELS")
    pipeline_class = CUSTOM_PIPELINES.get(task.pipeline)
    if pipeline_class is None or pipeline_class.__name__ != task.pipeline_class:
        problems.append(f"pipeline: {task.pipeline!r} does not run {task.pipeline_class} (pipeline_svu.CUSTOM_PIPELINES)")
    if task.pipeline not in PIPELINE_REGISTRY.get_supported_tasks():
        problems.append(f"pipeline: {task.pipeline!r} is not a transformers pipeline task")
    if task.pipeline not in views:
        problems.append(f"space view: space/app.py VIEWS has no view for pipeline {task.pipeline!r}")
    if task.cli_verb not in SUBCOMMANDS:
        problems.append(f"cli_verb: {task.cli_verb!r} is not an `svu` command")
    if not task.card_metrics or not all(isinstance(m, CardMetric) and m.name and m.metric_type for m in task.card_metrics):
        problems.append("card_metrics: every card metric needs a CardMetric with a name and a metric type")
    unknown = [option for option, _ in task.endpoint_defaults if option not in task.options]
    if unknown:
        problems.append(f"endpoint_defaults: {unknown} are not options of the task's models")
    if not task.classes and not task.dataset_labels:
        problems.append("dataset_labels: a task without class names says what its dataset holds as labels")
    return problems


@pytest.mark.parametrize("name", TASKS)
def test_every_dispatch_point_is_wired(name, app):
    assert wiring_problems(TASKS[name], app.VIEWS) == []


# A field set to None, or a pipeline no code knows: what a task half-added (or with a part deleted) looks like.
REMOVALS = [*((hook, None) for hook in HOOKS), ("pipeline", "vibrato-rate"), ("cli_verb", None), ("card_metrics", ())]


@pytest.mark.parametrize(("name", "removal"), list(itertools.product(TASKS, REMOVALS)),
                         ids=[f"{n}-{field}" for n, (field, _) in itertools.product(TASKS, REMOVALS)])
def test_removing_a_hook_is_reported(name, removal, app):
    field, value = removal
    broken = dataclasses.replace(TASKS[name], **{field: value})
    problems = wiring_problems(broken, app.VIEWS)
    assert problems and all(line.startswith((field, "space view")) for line in problems), problems
    if field in HOOKS:
        with pytest.raises(ValueError, match=f"^task {name} has no '{field}' hook"):
            broken.hook(field)


# ---------------------------------------------------------------- the walk, on a tiny model of each task


def tone(seconds=1.0, hz=220.0) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return (0.3 * np.sin(2 * np.pi * hz * t) * (1 + 0.1 * np.sin(2 * np.pi * 5 * t))).astype(np.float32)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """{task: (model, repo)}: a tiny model of each task exported as `train/run.py` exports it (`export_repo`)."""
    from svu.train.config import load_config
    from svu.train.export import export_repo

    tmp, repos = tmp_path_factory.mktemp("dispatch"), {}
    for name, task in TASKS.items():
        torch.manual_seed(0)
        model = TASK_MODELS[name].from_backbone(
            tiny_backbone_config("wav2vec2"), id2label=LABELS if task.classes else None, chunk_seconds=2.0).eval()
        cfg = load_config(None, ["--task", name, "--backbone", "tiny-wav2vec2"])
        meta = {"corpus": "synthetic", "label_names": list(LABELS.values()) if task.classes else None,
                "chunk_seconds": 2.0, "fingerprint": "f00"}
        metrics = {"test": {key: 0.5 for key in task.card_metric_keys}, "best_epoch": 0,
                   "selection_metric": task.default_selection_metric, "layer_weights": model.layer_weights().tolist()}
        test_split = [{"audio": {"array": tone(hz=220 + 50 * i), "sampling_rate": RATE}, "label": i} for i in range(2)]
        repos[name] = (model, export_repo(cfg, model, meta, metrics, tmp / name, test_split))
    return repos


@pytest.mark.parametrize("name", TASKS)
def test_evaluate_report_of_each_task_writes_its_files(name, tmp_path, capsys):
    """`svu evaluate`'s detailed report, on a scored split of the shape `evaluate_test` gives."""
    task = TASKS[name]
    rng = np.random.default_rng(0)
    scored = {"logits": rng.normal(size=(6, len(LABELS))), "labels": np.arange(6) % len(LABELS), "rows": np.arange(6)}
    results = {"per_song": [{"song_id": str(i), **{key: 0.5 for key in task.card_metric_keys}} for i in range(2)]}
    report = {}
    task.hook("report")(report, results, scored, {"label_names": list(LABELS.values())}, tmp_path, "title")
    assert [p for p in tmp_path.iterdir() if p.suffix == ".csv"] and [p for p in tmp_path.iterdir() if p.suffix == ".png"]
    json.dumps(report)  # it goes into metrics.json


@pytest.mark.parametrize("name", TASKS)
def test_synthetic_generator_of_each_task_yields_its_target(name, tmp_path):
    from svu.dataset_scripts.synthetic import Synthetic

    task = TASKS[name]
    sizes = task.hook("synthetic")
    option, smallest = sizes.minimum
    builder = Synthetic(cache_dir=str(tmp_path), task=name, **{option: smallest}, song_seconds=5.0,
                        techniques=("straight", "vibrato"))
    features = builder.info.features
    key, example = next(iter(builder._generate_examples("train")))
    for column in ("audio", task.target_column, *task.target_companions):
        assert column in example and column in features, column


@pytest.mark.parametrize("name", TASKS)
def test_export_of_each_task_loads_back_with_the_same_logits(name, exported):
    from svu.common import load_model
    from svu.modeling_svu.tasks import TASK_NAMES

    model, repo = exported[name]
    loaded = load_model(str(repo), "evaluate", TASK_NAMES)
    inputs = torch.from_numpy(tone())[None]
    with torch.no_grad():
        torch.testing.assert_close(loaded(input_values=inputs).logits, model(input_values=inputs).logits)


@pytest.mark.parametrize("name", TASKS)
def test_card_of_each_task_reports_every_card_metric(name, exported):
    from huggingface_hub import ModelCard

    task = TASKS[name]
    card = ModelCard.load(exported[name][1] / "README.md")
    index = card.data.to_dict()["model-index"][0]["results"]
    types = {metric["type"] for result in index for metric in result["metrics"]}
    for metric in task.card_metrics:
        assert f"| {metric.name} |" in card.text and metric.metric_type in types, metric


@pytest.mark.parametrize("name", TASKS)
def test_handler_and_pipeline_of_each_task_run_the_repo(name, exported):
    from transformers import pipeline

    task = TASKS[name]
    repo = exported[name][1]
    config = json.loads((repo / "config.json").read_text())
    if config.get("model_type") == "svu":
        assert task.pipeline in config["custom_pipelines"]
    pipe = pipeline(task.pipeline, model=str(repo), trust_remote_code=config.get("model_type") == "svu")
    assert pipe.task == task.pipeline
    expected = pipe(tone(), **dict(task.endpoint_defaults))

    spec = importlib.util.spec_from_file_location(f"handler_{name}", repo / "handler.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.DEFAULT_PARAMETERS == dict(task.endpoint_defaults)
    buffer = io.BytesIO()
    sf.write(buffer, tone(), RATE, format="WAV")
    result = module.EndpointHandler(str(repo))({"inputs": base64.b64encode(buffer.getvalue()).decode()})
    json.dumps(result)  # what an Endpoint sends back
    expected = module.jsonable(expected)  # the pipeline's output with the same defaults (audio decoded apart)
    assert type(result) is type(expected)
    assert set(result) == set(expected) if isinstance(result, dict) else len(result) == len(expected)


@pytest.mark.parametrize("name", TASKS)
def test_space_builds_the_view_of_each_task(name, exported, app):
    task, pipe = app.load_model(str(exported[name][1]))
    assert task == name and pipe.task == TASKS[name].pipeline
    app.build_app(str(exported[name][1]))


@pytest.mark.parametrize("name", TASKS)
def test_cli_verb_of_each_task_writes_its_output(name, exported, tmp_path):
    from svu.cli import main

    audio = tmp_path / "take.wav"
    sf.write(audio, tone(), RATE)
    out = tmp_path / "out"
    # `-o`: the output file of `svu classify`, the output folder of the other verbs; either way, under `out`
    assert main([TASKS[name].cli_verb, str(audio), "--model", str(exported[name][1]), "-o", str(out / "take.json"),
                 "--quiet"]) == 0
    assert [path for path in out.rglob("*") if path.is_file()]


# Runs each argv list of argv[1] (JSON) through `svu`'s main, then prints the modules this process imported.
LEAN_PROBE = """
import json, sys
from svu.cli import main
for argv in json.loads(sys.argv[1]):
    assert main(argv) == 0, argv
print(json.dumps(sorted(sys.modules)))
"""


def output_of(name: str, folder) -> str:
    """-o of the task's verb writing into `folder/name`: a pooled task's verb (classify) writes one table, the
    others a folder of files."""
    return str(folder / name / "results.json") if TASKS[name].pooled else str(folder / name)


def test_cli_verbs_run_an_exported_model_without_torch_or_transformers(exported, tmp_path, monkeypatch):
    """`svu <verb> --engine onnx --int8` of the tasks marked `onnx_without_torch`: the first run exports the model
    (torch + transformers, in process); then one fresh process runs every verb again on the cached exports, without
    importing torch or transformers, and writes the same files byte for byte."""
    import os
    import subprocess
    import sys

    from svu.cli import main

    lean = [name for name, task in TASKS.items() if task.onnx_without_torch]
    assert lean
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    audio = tmp_path / "take.wav"
    sf.write(audio, np.tile(tone(), 2), 22050)  # resampled to the model's rate on both paths
    runs = {}
    for name in lean:
        argv = [TASKS[name].cli_verb, str(audio), "--model", str(exported[name][1]), "--engine", "onnx", "--int8", "-q"]
        assert main(argv + ["-o", output_of(name, tmp_path / "exporting")]) == 0
        runs[name] = argv + ["-o", output_of(name, tmp_path / "lean")]
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-c", LEAN_PROBE, json.dumps(list(runs.values()))], capture_output=True,
                          text=True, env=env, cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    loaded = json.loads(proc.stdout.strip().splitlines()[-1])
    assert not [module for module in loaded if module.partition(".")[0] in ("torch", "transformers")]
    for name in lean:
        written = {path.name: path.read_bytes() for path in (tmp_path / "exporting" / name).iterdir()
                   if path.suffix != ".jsonl"}  # fmt: skip  (the manifest holds times)
        assert written and written == {file: (tmp_path / "lean" / name / file).read_bytes() for file in written}, name


def test_a_repo_carrying_its_onnx_export_runs_without_torch_from_its_first_run(exported, tmp_path, monkeypatch):
    """`svu export REPO OUT --onnx` of each `onnx_without_torch` task's repo: a fresh process with an empty export
    cache runs `svu <verb> --engine onnx --int8` on OUT (progress bars shown), as a folder and as a Hub id in the
    Hub cache, without importing torch or transformers and without exporting anything, and writes what REPO writes
    through the torch-loaded ONNX engine (the model path aside)."""
    import os
    import subprocess
    import sys

    from test_default_export import in_hf_cache

    from svu.cli import main

    lean = [name for name, task in TASKS.items() if task.onnx_without_torch]
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    audio = tmp_path / "take.wav"
    sf.write(audio, np.tile(tone(), 2), 22050)
    runs = {}
    for name in lean:
        repo, carrying = exported[name][1], tmp_path / "carrying" / name
        assert main(["export", str(repo), str(carrying), "--onnx"]) == 0
        assert main(["export", str(carrying), str(tmp_path / "pruned" / name), "--max-layers", "1"]) == 0
        assert not list((tmp_path / "pruned" / name).glob("*.onnx"))  # the carried exports hold the unpruned model
        argv = [TASKS[name].cli_verb, str(audio), "--engine", "onnx", "--int8"]
        assert main(argv + ["--model", str(repo), "-o", output_of(name, tmp_path / "reference"), "-q"]) == 0
        in_hf_cache(tmp_path / "hf", carrying, f"svu-test/carrying-{name}")
        runs[name] = argv + ["--model", str(carrying), "-o", output_of(name, tmp_path / "lean")]
        runs[f"{name} from the Hub cache"] = argv + ["--model", f"svu-test/carrying-{name}", "-o", output_of(name, tmp_path / "hub")]
    empty = tmp_path / "empty"
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "XDG_CACHE_HOME": str(empty),
           "HF_HOME": str(tmp_path / "hf")}
    proc = subprocess.run([sys.executable, "-c", LEAN_PROBE, json.dumps(list(runs.values()))], capture_output=True,
                          text=True, env=env, cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    loaded = json.loads(proc.stdout.strip().splitlines()[-1])
    assert not [module for module in loaded if module.partition(".")[0] in ("torch", "transformers")]
    assert not list(empty.rglob("*.onnx"))  # nothing was exported (ONNX Runtime keeps its own files there)
    for name in lean:
        repo = str(exported[name][1]).encode()
        reference = {path.name: path.read_bytes().replace(repo, b"MODEL")
                     for path in (tmp_path / "reference" / name).iterdir() if path.suffix != ".jsonl"}  # fmt: skip
        for folder, model in (("lean", tmp_path / "carrying" / name), ("hub", f"svu-test/carrying-{name}")):
            written = {file: (tmp_path / folder / name / file).read_bytes().replace(str(model).encode(), b"MODEL")
                       for file in reference}  # fmt: skip
            assert reference and written == reference, (name, folder)

"""The Space (`space/app.py`), without a browser: it needs only its requirements.txt, has a view for the pipeline
of every task of the registry (tests/test_task_dispatch.py) and dispatches a saved repo of each task (SVU's own export, and the native one where the task has
it) to its task's view and pipeline."""

import ast
import importlib.util
import re
import sys
from pathlib import Path

import pytest
import torch

from svu.modeling_svu import TASK_MODELS, TASKS, tiny_backbone_config
from svu.train.native_export import save_native

APP = Path(__file__).resolve().parents[1] / "space" / "app.py"
LABELS = {0: "belt", 1: "breathy", 2: "vibrato"}


@pytest.fixture(scope="module")
def app():
    spec = importlib.util.spec_from_file_location("space_app", APP)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_app_imports_only_the_standard_library_and_its_requirements():
    lines = (APP.parent / "requirements.txt").read_text().splitlines()
    requirements = {re.split(r"[<>=~!\[ ;]", line, maxsplit=1)[0].lower() for line in lines if line and line[0] != "#"}
    tree = ast.parse(APP.read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.level == 0}
    assert {name.split(".")[0] for name in imported} - set(sys.stdlib_module_names) <= requirements


def test_views_are_the_pipelines_of_the_registry_tasks(app):
    assert set(app.VIEWS) == {task.pipeline for task in TASKS.values()}  # a view of no task's pipeline


def saved_repos(name, folder: Path) -> list:
    """A tiny saved model of the task: SVU's export, and the native export when transformers has a class for it."""
    torch.manual_seed(0)
    task = TASKS[name]
    model = TASK_MODELS[name].from_backbone(tiny_backbone_config("wav2vec2"), id2label=LABELS if task.classes else None)
    model.save_pretrained(folder / "svu")
    repos = [folder / "svu"]
    if task.native_unsupported is None:
        save_native(model, folder / "native")
        repos.append(folder / "native")
    return repos


@pytest.mark.parametrize("name", TASKS)
def test_space_dispatches_a_repo_to_its_task(app, tmp_path, name):
    for repo in saved_repos(name, tmp_path):
        config = app.read_config(str(repo))
        assert (app.model_task(config), app.pipeline_name(config)) == (name, TASKS[name].pipeline), repo.name
        task, pipe = app.load_model(str(repo))
        assert task == name and pipe.task == TASKS[name].pipeline, repo.name
        app.build_app(str(repo))  # the task's view builds on the repo's own pipeline


def test_space_names_a_pipeline_it_has_no_view_for(app, tmp_path):
    torch.manual_seed(0)
    TASK_MODELS["technique"].from_backbone(tiny_backbone_config("wav2vec2"), id2label=LABELS).save_pretrained(tmp_path)
    config = (tmp_path / "config.json").read_text()
    (tmp_path / "config.json").write_text(config.replace('"audio-classification": {', '"vibrato-rate": {'))
    with pytest.raises(ValueError, match="'technique' model runs pipeline 'vibrato-rate', not one of this Space's"):
        app.load_model(str(tmp_path))
    (tmp_path / "config.json").write_text(config.replace('"task": "technique"', '"task": null'))
    with pytest.raises(ValueError, match="names no SVU task"):
        app.load_model(str(tmp_path))


def test_space_decodes_audio_at_the_models_rate(app, tmp_path):
    """A 24 kHz model (MERT-v1) gets its audio at 24 kHz: an array given to a pipeline is taken to be at its rate."""
    import types

    import numpy as np
    import soundfile as sf

    path = tmp_path / "tone.wav"
    sf.write(path, 0.3 * np.sin(2 * np.pi * 440 * np.arange(44100) / 44100), 44100)
    for rate in (16000, 24000):
        pipe = types.SimpleNamespace(feature_extractor=types.SimpleNamespace(sampling_rate=rate))
        samples, got = app.read_audio(str(path), pipe)
        assert got == rate and abs(len(samples) - rate) <= 1

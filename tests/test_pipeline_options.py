"""Options: those a pipeline is given at construction are the defaults of every call, those given to a call apply
to that call only; an option of another task (`Task.options`) is one error line naming it and the task, in an
`SVUConfig`, a training config's `model_options` and a pipeline call."""

import inspect
import json

import pytest
import torch

from svu.modeling_svu import TASK_MODELS, SVUConfig, SVUForPitchEstimation
from svu.modeling_svu import pipeline_svu
from svu.modeling_svu.engines import TorchEngine
from svu.modeling_svu.pipeline_svu import CUSTOM_PIPELINES, SingingTranscriptionPipeline
from svu.modeling_svu.tasks import TASK_NAMES, TASKS
from svu.train.config import load_config

from data_fixtures import sung_notes

# the tasks whose pipeline runs windows through an engine (`engine`, `int8`, `bf16` options)
ENGINE_TASKS = [name for name, task in TASKS.items()
                if issubclass(CUSTOM_PIPELINES[task.pipeline], pipeline_svu._LongAudioPipeline)]  # fmt: skip


def tiny_model(name):
    torch.manual_seed(0)
    id2label = {0: "a", 1: "b"} if TASKS[name].classes else None
    return TASK_MODELS[name].from_backbone("tiny-wav2vec2", id2label=id2label).eval()


def build_pipeline(model, **options):
    return CUSTOM_PIPELINES[TASKS[model.config.task].pipeline](model=model, feature_extractor=model.feature_extractor(),
                                                               **options)  # fmt: skip


@pytest.fixture
def engines_run(monkeypatch):
    """The names of the engines that ran windows since the last `clear()` (each loads as the fp32 torch engine)."""
    ran = []

    def spy_engine(model, engine="torch", int8=False, bf16=False):
        torch_engine = TorchEngine(model)

        def run(input_values, attention_mask=None):
            ran.append(engine)
            return torch_engine(input_values, attention_mask)

        return run

    monkeypatch.setattr(pipeline_svu, "load_engine", spy_engine)
    return ran


@pytest.mark.parametrize("name", ENGINE_TASKS)
def test_an_engine_given_to_a_call_runs_that_call_only(name, engines_run):
    model = tiny_model(name)
    audio = sung_notes(3.0)

    def engines_of(pipe, **call_options):
        engines_run.clear()
        pipe(audio, **call_options)
        return set(engines_run)

    plain = build_pipeline(model)
    assert engines_of(plain, engine="onnx") == {"onnx"}
    assert engines_of(plain) == set()  # the model itself, as before the call with an engine
    constructed = build_pipeline(model, engine="onnx")
    assert engines_of(constructed) == {"onnx"}
    assert engines_of(constructed, engine="torch") == {"torch"}
    assert engines_of(constructed) == {"onnx"}


@pytest.mark.parametrize("name", ENGINE_TASKS)
def test_an_engine_object_runs_as_given(name, engines_run):
    """An engine object (what `engines.load_engine` returns: windows in, logits out) runs as it is given, at
    construction or to a call: nothing is loaded by name (a saved repo can load a named engine only through the
    installed svu package)."""
    model = tiny_model(name)
    torch_engine, windows = TorchEngine(model), []

    def engine(input_values, attention_mask=None):
        windows.append(len(input_values))
        return torch_engine(input_values, attention_mask)

    audio = sung_notes(3.0)
    build_pipeline(model)(audio, engine=engine)
    build_pipeline(model, engine=engine)(audio)
    assert len(windows) == 2 and engines_run == []


def test_a_pitch_model_given_to_a_call_pitches_that_call_only(transcriber):
    model, _ = transcriber
    torch.manual_seed(0)
    pitch_model = SVUForPitchEstimation.from_backbone("tiny-wav2vec2").eval()
    audio = sung_notes(3.0)

    def pitched(pipe, **call_options):
        notes = pipe(audio, **call_options)["notes"]
        assert notes, "the tiny transcriber must give notes"
        return all("pitch_midi" in note for note in notes)

    plain = SingingTranscriptionPipeline(model=model, feature_extractor=model.feature_extractor())
    assert pitched(plain, pitch_model=pitch_model)
    assert not pitched(plain)
    constructed = SingingTranscriptionPipeline(model=model, feature_extractor=model.feature_extractor(),
                                               pitch_model=pitch_model)  # fmt: skip
    assert pitched(constructed) and pitched(constructed)


def options_of_other_tasks(name) -> list:
    return sorted({option for task in TASKS.values() for option in task.options} - set(TASKS[name].options))


VALID = {"ctc_vocab": ["<pad>", "<unk>", "|", "A", "B"], "ctc_loss_reduction": "sum"}  # values of no other form


def changed(option, default):
    """A valid value other than an `SVUConfig` field's default."""
    if option in VALID:
        return VALID[option]
    if isinstance(default, bool):
        return not default
    if default is None:
        return [1.0, 1.0]
    return default + 1 if isinstance(default, int) else default / 2 if default else 1.0


def one_line_error(call) -> str:
    with pytest.raises(ValueError) as info:
        call()
    assert "\n" not in str(info.value)
    return str(info.value)


@pytest.mark.parametrize("name", TASK_NAMES)
def test_an_option_of_another_task_is_one_error_line(name):
    others = options_of_other_tasks(name)
    assert others, f"every task's models have options that {name} models do not use"
    defaults = {p.name: p.default for p in inspect.signature(SVUConfig.__init__).parameters.values()}
    pipe = build_pipeline(tiny_model(name))
    for option in others:
        expected = rf"^{option} is a .* option; a {name} model does not use it\.$"
        if option in defaults:
            value = changed(option, defaults[option])
            assert one_line_error(lambda: SVUConfig(task=name, **{option: value})) == one_line_error(
                lambda: load_config(None, ["--task", name, "--model_options", json.dumps({option: value})]))
            with pytest.raises(ValueError, match=expected):
                SVUConfig(task=name, **{option: value})
        with pytest.raises(ValueError, match=expected):
            pipe(sung_notes(1.0), **{option: 0.5})
    own = {option: changed(option, value) for option, value in defaults.items() if option in TASKS[name].options}
    own.pop("class_weights", None)  # one per class: checked against the labels
    SVUConfig(task=name, **own)  # a task's own options are accepted

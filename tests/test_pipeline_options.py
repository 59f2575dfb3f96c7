"""Options of the SVU pipelines: those given at construction are the defaults of every call, those given to a call
apply to that call only."""

import pytest
import torch

from modeling_svu import TASK_MODELS, SVUForPitchEstimation
from modeling_svu import pipeline_svu
from modeling_svu.engines import TorchEngine
from modeling_svu.pipeline_svu import CUSTOM_PIPELINES, SingingTranscriptionPipeline
from modeling_svu.tasks import TASKS

from data_fixtures import sung_notes

# the tasks whose pipeline runs windows through an engine (`engine`, `int8`, `bf16` options)
ENGINE_TASKS = [name for name, task in TASKS.items()
                if issubclass(CUSTOM_PIPELINES[task.pipeline], pipeline_svu._LongAudioPipeline)]  # fmt: skip


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
    torch.manual_seed(0)
    model = TASK_MODELS[name].from_backbone("tiny-wav2vec2").eval()
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

"""Bad input to SVU configs and models: one clear ValueError naming the problem, never a torch shape error."""

import re

import pytest
import torch
from transformers import BertConfig

from svu.modeling_svu.tasks import TASK_NAMES
from svu.modeling_svu import (
    SVUConfig,
    SVUForNoteTranscription,
    SVUForSingerID,
    SVUForTechniqueClassification,
    SVUModel,
    tiny_backbone_config,
)

LABELS = {0: "alto", 1: "bass", 2: "tenor"}


def raises_one_line(match, fn, *args, **kwargs):
    with pytest.raises(ValueError, match=match) as info:
        fn(*args, **kwargs)
    assert "\n" not in str(info.value)
    return info.value


@pytest.fixture(scope="module")
def singer():
    return SVUForSingerID.from_backbone("tiny-wav2vec2", id2label=LABELS).eval()


@pytest.mark.parametrize("cls", [SVUModel, SVUForSingerID, SVUForNoteTranscription], ids=lambda c: c.__name__)
@pytest.mark.parametrize(
    "shape, match",
    [
        ((16000,), r"must be \(batch, samples\) mono audio; got shape \(16000,\)"),
        ((2, 1, 16000), r"must be \(batch, samples\) mono audio; got shape \(2, 1, 16000\)"),
        ((0,), r"got shape \(0,\)"),
        ((2, 0), r"input_values is empty \(shape \(2, 0\)\)"),
        ((0, 16000), r"input_values is empty \(shape \(0, 16000\)\)"),
        ((1, 399), r"example 0 has 399 samples; the backbone needs at least 400 \(25 ms\)"),
    ],
)
def test_bad_waveform_shapes(cls, shape, match):
    model = cls.from_backbone("tiny-hubert", id2label=LABELS).eval()
    raises_one_line(match, model, torch.zeros(shape))


def test_bad_waveform_dtype_and_mask(singer):
    raises_one_line(r"float audio .* got dtype torch.int16", singer, torch.zeros(1, 16000, dtype=torch.int16))
    raises_one_line(
        r"attention_mask has shape \(2, 8000\); input_values has \(2, 16000\)",
        singer, torch.zeros(2, 16000), attention_mask=torch.ones(2, 8000),
    )
    mask = torch.ones(2, 16000, dtype=torch.long)
    mask[1, 100:] = 0  # the second example is 100 samples of audio and padding
    raises_one_line(r"example 1 has 100 samples; the backbone needs at least 400", singer, torch.zeros(2, 16000), mask)
    mask[1] = 0
    raises_one_line(r"example 1 has 0 samples", singer.pooled_layer_states, torch.zeros(2, 16000), mask)


def test_bad_labels(singer):
    x = torch.zeros(2, 4000)
    raises_one_line(r"labels has 3 entries for a batch of 2", singer, x, labels=torch.tensor([0, 1, 2]))
    raises_one_line(r"labels must be class indices in \[0, 3\); got \[0, 7\]", singer, x, labels=torch.tensor([0, 7]))
    raises_one_line(r"got \[-1, 1\]", singer, x, labels=torch.tensor([-1, 1]))
    raises_one_line(r"pooled_layer_states must be \(batch, 4, 32\); got \(2, 3, 32\)",
                    singer.classify_pooled, torch.zeros(2, 3, 32))
    transcriber = SVUForNoteTranscription.from_backbone("tiny-wavlm").eval()
    raises_one_line(r"transcription labels must be \(batch, frames, 4\); got \(2, 12\)",
                    transcriber, x, labels=torch.zeros(2, 12))


@pytest.mark.parametrize(
    "backbone, match",
    [
        (BertConfig(), r"family 'bert'; SVU supports \['data2vec-audio', 'hubert', 'wav2vec2', 'wavlm'\]"),
        ({"model_type": "bert", "hidden_size": 32}, r"Unsupported backbone family 'bert'"),
        ({"hidden_size": 32}, r"Unsupported backbone family None"),
        ("wav2vec2", r"backbone_config must be a backbone config or its dict, got str"),
    ],
)
def test_unsupported_backbone_config(backbone, match):
    raises_one_line(match, SVUConfig, backbone_config=backbone)
    if not isinstance(backbone, str):
        raises_one_line(match, SVUForSingerID.from_backbone, backbone, id2label=LABELS)


def test_unknown_backbone_names():
    raises_one_line(r"Unknown backbone family 'bert'", SVUForSingerID.from_backbone, "tiny-bert")
    raises_one_line(r"Unknown backbone family 'bert'", tiny_backbone_config, "bert")


def test_labels_task_and_options_that_do_not_fit():
    raises_one_line(r"num_labels=5 does not match id2label, which has 3 labels",
                    SVUForSingerID.from_backbone, "tiny-wavlm", id2label=LABELS, num_labels=5)
    raises_one_line(r"num_labels=2 does not match id2label, which has 3 labels",
                    SVUConfig, id2label=LABELS, num_labels=2)
    raises_one_line(rf"Unknown task 'tempo'; expected one of {re.escape(str(TASK_NAMES))}", SVUConfig, task="tempo")
    raises_one_line(r"Unknown task 'tempo'", SVUModel.from_backbone, "tiny-wav2vec2", task="tempo")
    raises_one_line(r"SVUForSingerID is the 'singer_id' model, got task='technique'",
                    SVUForSingerID.from_backbone, "tiny-wav2vec2", id2label=LABELS, task="technique")
    raises_one_line(r"class_weights has 2 entries for 3 labels",
                    SVUForTechniqueClassification.from_backbone, "tiny-wav2vec2", id2label=LABELS,
                    class_weights=[1.0, 2.0])
    raises_one_line(r"sampling_rate='16k' must be the backbone's input rate in Hz", SVUConfig, sampling_rate="16k")
    raises_one_line(r"lowest_midi=100, num_octaves=4 leave the MIDI range", SVUConfig, task="transcription",
                    lowest_midi=100)

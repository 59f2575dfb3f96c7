"""`spec_augment` (SpecAugment while the backbone trains): the checkpoint's, off, or explicit masking, set on the
backbone by the training script's own `build_model` for every task, checked in one line, and described in the
model card. metrics.json's record of a real run: tests/test_train_report_to.py (its runs set spec_augment)."""

import pytest
import torch
from transformers import Wav2Vec2Model

from svu.model_cards.card import spec_augment_line
from svu.modeling_svu import TASK_MODELS
from svu.modeling_svu.backbones import tiny_backbone_config
from svu.modeling_svu.tasks import TASKS
from svu.train.config import TrainConfig, load_config
from svu.train.run import build_model
from svu.train.spec_augment import spec_augment_record

META = {"chunk_seconds": 1.0, "label_names": ["a", "b"], "class_weights": [1.0, 1.0]}
EXPLICIT = {"mask_time_prob": 0.4, "mask_time_length": 2, "mask_feature_prob": 0.2, "mask_feature_length": 3}
# what the published base checkpoints' config.json hold (tests/fixtures/published_backbones.py)
CHECKPOINT = {"mask_time_prob": 0.05, "mask_time_length": 10, "mask_feature_prob": 0.0, "mask_feature_length": 10}


@pytest.fixture(scope="module")
def pretrained_folder(tmp_path_factory):
    """A local pre-trained-like wav2vec2 backbone whose config masks as the published checkpoints do."""
    folder = tmp_path_factory.mktemp("backbone")
    torch.manual_seed(0)
    Wav2Vec2Model(tiny_backbone_config("wav2vec2", **CHECKPOINT)).save_pretrained(folder)
    return str(folder)


def masks_in_training(backbone) -> bool:
    """Whether the backbone's SpecAugment changes CNN features in train mode."""
    backbone.train()
    features = torch.randn(2, 50, backbone.config.hidden_size)
    return not torch.equal(backbone._mask_hidden_states(features.clone()), features)


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("setting", ["checkpoint", "off", "explicit"])
def test_spec_augment_reaches_the_backbone_config(task, setting, pretrained_folder):
    value = EXPLICIT if setting == "explicit" else setting
    model = build_model(TrainConfig(task=task, backbone=pretrained_folder, spec_augment=value), META)
    config = model.backbone.config
    assert config is model.config.backbone_config  # what config.json saves
    expected = EXPLICIT if setting == "explicit" else CHECKPOINT
    assert {key: getattr(config, key) for key in expected} == expected
    assert config.apply_spec_augment is (setting != "off")
    assert masks_in_training(model.backbone) is (setting != "off")
    record = spec_augment_record(value, config)
    assert record == ({"setting": "off", "on": False} if setting == "off" else {"setting": setting, "on": True, **expected})


@pytest.mark.parametrize("task", TASKS)
def test_explicit_masking_on_a_backbone_built_without_it_saves_and_reloads(task, tmp_path):
    model = build_model(TrainConfig(task=task, spec_augment={"mask_time_prob": 0.3}), META)
    assert model.backbone.config.mask_time_prob == 0.3 and masks_in_training(model.backbone)
    model.save_pretrained(tmp_path)
    reloaded = TASK_MODELS[task].from_pretrained(tmp_path)
    for name, tensor in model.state_dict().items():
        torch.testing.assert_close(reloaded.state_dict()[name], tensor, rtol=0, atol=0, msg=name)


def test_a_bare_off_in_yaml_or_on_the_command_line_is_off():
    assert load_config(None, ["--spec_augment", "off"]).spec_augment == "off"
    assert load_config(None, []).spec_augment == "checkpoint"


@pytest.mark.parametrize(
    "value, message",
    [
        ("sometimes", "spec_augment must be checkpoint, off or a mapping"),
        (True, "spec_augment must be checkpoint, off or a mapping"),
        ({"mask_time_lenght": 2, "mask_time_prob": 0.1}, "Unknown spec_augment key 'mask_time_lenght'"),
        ({"mask_time_prob": 1.5}, r"mask_time_prob=1.5 must be a number in \[0, 1\)"),
        ({"mask_time_prob": 0.1, "mask_time_length": 0}, "mask_time_length=0 must be an integer >= 1"),
        ({"mask_time_prob": 0.0}, "masks nothing"),
    ],
)
def test_bad_spec_augment_is_one_line(value, message):
    with pytest.raises(ValueError, match=message) as err:
        TrainConfig(spec_augment=value)
    assert "\n" not in str(err.value)


def test_spec_augment_set_twice_is_one_line():
    with pytest.raises(ValueError, match=r"set twice, by backbone_options \(mask_time_prob\)") as err:
        TrainConfig(backbone_options={"mask_time_prob": 0.5}, spec_augment="off")
    assert "\n" not in str(err.value)
    # with `checkpoint`, the tiny backbone's own config (backbone_options included) is the checkpoint's
    model = build_model(TrainConfig(task="singer_id", backbone_options={"mask_time_prob": 0.5}), META)
    assert model.backbone.config.mask_time_prob == 0.5


@pytest.mark.parametrize(
    "record, line",
    [
        ({"setting": "off", "on": False}, "- SpecAugment: off (`spec_augment: off`)."),
        ({"setting": "checkpoint", "on": False}, "- SpecAugment: off (the backbone config's own)."),
        ({"setting": "checkpoint", "on": True, **CHECKPOINT},
         "- SpecAugment in stage 2 (the backbone config's own): time masks of 10 frames with probability 0.05."),
        ({"setting": "explicit", "on": True, **EXPLICIT},
         "- SpecAugment in stage 2 (set in the training config): time masks of 2 frames with probability 0.4; "
         "feature masks of 3 channels with probability 0.2."),
    ],
)
def test_card_line_says_what_spec_augment_did(record, line):
    assert spec_augment_line(record) == "\n" + line

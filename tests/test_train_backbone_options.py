"""`backbone_options` (the shape of a tiny random backbone) and `freeze_feature_encoder` (train the CNN in stage 2):
the two fields the pitch demo needs, checked in one line and applied by the training script's own functions."""

import pytest

from svu.train.config import TrainConfig
from svu.train.peft_variants import set_stage
from svu.train.run import build_model


def test_backbone_options_shape_the_tiny_backbone_and_the_cnn_trains_in_stage_2_only_when_asked():
    options = {"conv_dim": [32, 16], "conv_kernel": [256, 16], "conv_stride": [20, 16]}
    cfg = TrainConfig(task="pitch", backbone="tiny-wav2vec2", backbone_options=options, freeze_feature_encoder=False)
    model = build_model(cfg, {"chunk_seconds": 1.0})
    backbone = model.config.backbone_config
    assert list(backbone.conv_dim) == [32, 16] and list(backbone.conv_stride) == [20, 16]
    assert model.config.frame_seconds == pytest.approx(320 / 16000)
    cnn = list(model.backbone.feature_extractor.parameters())
    set_stage(model, 1, cfg.finetune, cfg.freeze_feature_encoder)
    assert not any(p.requires_grad for p in cnn)
    set_stage(model, 2, cfg.finetune, cfg.freeze_feature_encoder)
    assert all(p.requires_grad for p in cnn)
    set_stage(model, 2, cfg.finetune)  # the paper's default: the CNN stays frozen
    assert not any(p.requires_grad for p in cnn)


@pytest.mark.parametrize(
    "backbone, options, message",
    [
        ("wav2vec2", {"conv_dim": [8]}, "apply to a tiny-<family> backbone only"),
        ("tiny-wavlm", {"conv_dims": [8]}, "Unknown backbone_options key 'conv_dims'"),
    ],
)
def test_bad_backbone_options_are_one_line(backbone, options, message):
    with pytest.raises(ValueError, match=message) as err:
        TrainConfig(task="pitch", backbone=backbone, backbone_options=options)
    assert "\n" not in str(err.value)

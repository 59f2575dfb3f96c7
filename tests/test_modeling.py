"""SVU task models on tiny random backbones of every family: shapes, layer sum, stages, padding, loading."""

import pytest
import torch
from conftest import FAMILIES, sung_tone
from transformers import Wav2Vec2FeatureExtractor, Wav2Vec2ForCTC, Wav2Vec2Model

from svu.modeling_svu import (
    SVUConfig,
    SVUForNoteTranscription,
    SVUForSingerID,
    SVUForTechniqueClassification,
    SVUModel,
    tiny_backbone_config,
)
from svu.modeling_svu.backbones import FAMILIES as BACKBONE_FAMILIES

LABELS = {0: "tenor", 1: "alto", 2: "bass"}
TASK_CLASSES = [SVUForSingerID, SVUForTechniqueClassification, SVUForNoteTranscription]
ALL_CLASSES = [SVUModel, *TASK_CLASSES]
CLASSIFIERS = [SVUForSingerID, SVUForTechniqueClassification]


def tiny_model(cls, family="wav2vec2", seed=0, **backbone_overrides):
    torch.manual_seed(seed)
    model = cls.from_backbone(tiny_backbone_config(family, **backbone_overrides), id2label=LABELS)
    with torch.no_grad():  # non-uniform layer weights, so a wrong sum cannot pass by symmetry
        model.layer_sum.weight.copy_(torch.linspace(-1.0, 1.0, model.layer_sum.num_states))
    return model.eval()


def trainable(model):
    return {name for name, p in model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize("cls", ALL_CLASSES, ids=lambda c: c.__name__)
@pytest.mark.parametrize("family", FAMILIES)
def test_output_shapes(family, cls):
    model = tiny_model(cls, family)
    seconds_to_frames = {1.0: 49, 3.0: 149}  # floor((n - 400) / 320) + 1
    for seconds, frames in seconds_to_frames.items():
        with torch.no_grad():
            out = model(torch.randn(2, int(16000 * seconds)), output_hidden_states=True)
        assert out.layer_weights.shape == (4,)
        assert len(out.hidden_states) == 4 and out.hidden_states[0].shape == (2, frames, 32)
        if cls is SVUModel:
            assert out.last_hidden_state.shape == (2, frames, 32)
            assert out.frame_mask.shape == (2, frames) and out.frame_mask.all()
        elif cls is SVUForNoteTranscription:
            assert out.logits.shape == (2, frames, 20)
        else:
            assert out.logits.shape == (2, len(LABELS))


@pytest.mark.parametrize("family", FAMILIES)
def test_layer_weights_are_a_softmax_over_all_states_and_get_gradients(family):
    model = tiny_model(SVUForSingerID, family, num_hidden_layers=2).train()
    out = model(torch.randn(2, 8000), labels=torch.tensor([0, 2]), output_hidden_states=True)
    weights = model.layer_weights()
    assert weights.shape == (model.config.backbone_config.num_hidden_layers + 1,) == (3,)
    assert torch.allclose(weights.sum(), torch.tensor(1.0))
    assert torch.allclose(weights, torch.softmax(model.layer_sum.weight.detach(), 0))
    assert torch.allclose(out.layer_weights.detach(), weights)
    features = model._features(torch.randn(1, 8000), output_hidden_states=True)
    expected = sum(w * h for w, h in zip(weights, features.hidden_states))
    torch.testing.assert_close(features.last_hidden_state, expected)
    out.loss.backward()
    grad = model.layer_sum.weight.grad
    assert grad is not None and grad.abs().min() > 0
    assert model.head.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("family", FAMILIES)
def test_layerdrop_is_forced_to_zero_and_never_drops_a_state(family):
    backbone = tiny_backbone_config(family, layerdrop=0.5)
    model = SVUForSingerID.from_backbone(backbone, id2label=LABELS)
    assert backbone.layerdrop == 0.5  # the caller's config is copied, not mutated
    assert model.config.backbone_config.layerdrop == 0.0 == model.backbone.config.layerdrop
    assert SVUConfig(backbone_config=backbone.to_dict()).backbone_config.layerdrop == 0.0
    model.set_stage(2)
    model.train()
    assert model.backbone.training
    for _ in range(8):
        features = model._features(torch.randn(1, 4000), output_hidden_states=True)
        assert len(features.hidden_states) == 4
        expected = sum(w * h for w, h in zip(model.layer_weights(), features.hidden_states))
        torch.testing.assert_close(features.last_hidden_state.detach(), expected.detach())


def test_weighted_layer_sum_refuses_a_missing_state():
    model = tiny_model(SVUModel)
    states = [torch.zeros(1, 5, 32)] * 3
    with pytest.raises(ValueError, match="expects 4 hidden states, got 3"):
        model.layer_sum(states)


@pytest.mark.parametrize("cls", [SVUForSingerID, SVUForNoteTranscription], ids=lambda c: c.__name__)
@pytest.mark.parametrize("family", FAMILIES)
def test_trainable_parameters_per_stage_are_exact(family, cls):
    model = tiny_model(cls, family)
    everything = {name for name, _ in model.named_parameters()}
    cnn = {name for name in everything if name.startswith("backbone.feature_extractor.")}
    assert cnn and {"layer_sum.weight", "head.weight", "head.bias"} < everything
    stage1 = {"layer_sum.weight", "head.weight", "head.bias"}
    for _ in range(2):  # idempotent, and reversible in both directions
        model.set_stage(1)
        assert trainable(model) == stage1 and model.backbone_is_frozen()
        model.set_stage(1)
        assert trainable(model) == stage1
        model.set_stage(2)
        assert trainable(model) == everything - cnn
        model.set_stage(2)
        assert trainable(model) == everything - cnn
    model.freeze_backbone()
    assert trainable(model) == stage1
    model.unfreeze_transformer()
    assert trainable(model) == everything - cnn
    model.freeze_feature_encoder()
    assert trainable(model) == everything - cnn
    # the frozen CNN must not build an autograd graph in stage 2 (HF's encoder would, unless told)
    model.train()
    out = model.backbone.feature_extractor(torch.randn(1, 800))
    assert not out.requires_grad
    with pytest.raises(ValueError, match="stage must be 1 or 2, got 3"):
        model.set_stage(3)


@pytest.mark.parametrize("family", FAMILIES)
def test_a_trained_cnn_gets_its_gradients_and_the_waveform_none(family):
    """The waveform's gradient is work no optimiser uses: most of a backward pass through a long-stride CNN."""
    model = tiny_model(SVUForNoteTranscription, family).train()
    model.unfreeze_feature_encoder()
    seen = []
    model.backbone.feature_extractor.conv_layers[0].register_forward_pre_hook(lambda _, args: seen.append(args[0]))
    model(torch.randn(2, 8000)).logits.sum().backward()
    assert not seen[0].requires_grad
    cnn = dict(model.backbone.feature_extractor.named_parameters())
    assert cnn and all(p.grad is not None and p.grad.abs().sum() > 0 for p in cnn.values()), sorted(cnn)


@pytest.mark.parametrize("family", FAMILIES)
def test_frozen_backbone_runs_in_eval_mode(family):
    dropout = dict(hidden_dropout=0.3, attention_dropout=0.3, activation_dropout=0.3, feat_proj_dropout=0.3)
    model = tiny_model(SVUForSingerID, family, **dropout, mask_time_prob=0.5, mask_time_length=2)
    x = torch.randn(2, 8000)
    model.set_stage(1)
    model.train()
    assert model.training and model.head.training and not model.backbone.training
    assert not any(m.training for m in model.backbone.modules())
    torch.testing.assert_close(model(x).logits, model(x).logits, rtol=0, atol=0)
    model.set_stage(2)  # switching stage re-applies the current (train) mode to the backbone
    assert model.backbone.training
    assert not torch.allclose(model(x).logits, model(x).logits)  # dropout is real: the check above can fail
    model.set_stage(1)
    assert not model.backbone.training
    model.eval()
    assert not model.training


@pytest.mark.parametrize("family", FAMILIES)
def test_masked_loss_differs_from_unmasked_loss(family):
    # transformers' check_seq_classifier_loss: padding a quarter/half of an example must change the loss.
    torch.manual_seed(1)
    x = torch.randn(3, 6400)
    mask = torch.ones(3, 6400, dtype=torch.long)
    mask[1, 3200:] = 0
    mask[2, 1600:] = 0
    classifier = tiny_model(SVUForSingerID, family)
    labels = torch.tensor([0, 1, 2])
    with torch.no_grad():
        masked = classifier(x, attention_mask=mask, labels=labels).loss
        unmasked = classifier(x, labels=labels).loss
    assert masked.item() != pytest.approx(unmasked.item(), rel=1e-4)
    transcriber = tiny_model(SVUForNoteTranscription, family)
    targets = torch.zeros(3, 19, 4)
    targets[..., 1], targets[..., 2], targets[..., 3] = 1, 4, 12  # silence everywhere
    with torch.no_grad():
        masked = transcriber(x, attention_mask=mask, labels=targets).loss
        unmasked = transcriber(x, labels=targets).loss
    assert masked.item() != pytest.approx(unmasked.item(), rel=1e-4)


def padded_vs_single(cls, family, **backbone_overrides):
    """Largest |batched - one-by-one| output over three tones of different lengths."""
    model = tiny_model(cls, family, **backbone_overrides)
    extractor = model.feature_extractor()
    waves = [sung_tone(220, 1.0, seed=1), sung_tone(330, 0.6, seed=2), sung_tone(440, 0.37, seed=3)]
    batch = extractor(waves, sampling_rate=16000, return_tensors="pt", padding=True)
    worst = 0.0
    with torch.no_grad():
        batched = model(**batch).logits
        for i, wave in enumerate(waves):
            single = model(**extractor([wave], sampling_rate=16000, return_tensors="pt")).logits[0]
            worst = max(worst, (batched[i, : len(single)] - single).abs().max().item())
    return worst


@pytest.mark.parametrize("cls", [SVUForSingerID, SVUForNoteTranscription], ids=lambda c: c.__name__)
@pytest.mark.parametrize("family", ["wav2vec2", "hubert", "wavlm"])
def test_padded_batch_equals_one_by_one_with_layer_norm_cnn(family, cls):
    assert padded_vs_single(cls, family, feat_extract_norm="layer") < 1e-5


@pytest.mark.parametrize("cls", [SVUForSingerID, SVUForNoteTranscription], ids=lambda c: c.__name__)
@pytest.mark.parametrize("family", FAMILIES)
def test_padded_batch_equals_one_by_one_for_every_family(family, cls):
    # Group-norm CNNs and data2vec-audio's positional convolutions would see the padding: a ragged batch
    # runs clip by clip, and the feature extractor always returns the mask that tells the model so.
    assert tiny_model(cls, family).feature_extractor().return_attention_mask is True
    assert padded_vs_single(cls, family) < 1e-5


@pytest.mark.parametrize("family", FAMILIES)
def test_padding_without_mask_is_seen_as_audio(family):
    model = tiny_model(SVUForSingerID, family)
    waves = [sung_tone(220, 1.0, seed=1), sung_tone(330, 0.37, seed=3)]
    batch = model.feature_extractor()(waves, sampling_rate=16000, return_tensors="pt", padding=True)
    with torch.no_grad():
        unmasked = model(batch["input_values"]).logits[1]
        single = model(torch.from_numpy(waves[1])[None]).logits[0]
    assert (unmasked - single).abs().max().item() > 1e-3


@pytest.mark.parametrize("layer_norm", [False, True])
@pytest.mark.parametrize("family", ["wavlm", "data2vec-audio"])
def test_pooled_cache_path_equals_forward(family, layer_norm):
    model = tiny_model(SVUForTechniqueClassification, family)
    model.config.layer_norm_per_layer = model.layer_sum.layer_norm = layer_norm
    x = torch.randn(2, 8000)
    mask = torch.ones(2, 8000, dtype=torch.long)
    mask[1, 5000:] = 0
    with torch.no_grad():
        pooled = model.pooled_layer_states(x, mask)
        assert pooled.shape == (2, 4, 32)
        torch.testing.assert_close(model.classify_pooled(pooled).logits, model(x, attention_mask=mask).logits)


def test_class_weights_change_the_loss():
    torch.manual_seed(0)
    x, labels = torch.randn(3, 4000), torch.tensor([0, 1, 1])
    plain = tiny_model(SVUForTechniqueClassification)
    weighted = tiny_model(SVUForTechniqueClassification)
    weighted.config.class_weights = [5.0, 0.1, 1.0]
    with torch.no_grad():
        logits = plain(x).logits
        expected = torch.nn.functional.cross_entropy(logits, labels, weight=torch.tensor([5.0, 0.1, 1.0]))
        torch.testing.assert_close(weighted(x, labels=labels).loss, expected)
        assert plain(x, labels=labels).loss.item() != pytest.approx(expected.item(), rel=1e-3)


@pytest.mark.parametrize("family", FAMILIES)
def test_from_backbone_tiny_name_and_config(family):
    by_name = SVUForSingerID.from_backbone(f"tiny-{family}", id2label=LABELS, chunk_seconds=3.0)
    assert by_name.config.backbone_config.model_type == family
    assert by_name.config.id2label == LABELS and by_name.config.label2id == {v: k for k, v in LABELS.items()}
    assert by_name.config.num_labels == 3 and by_name.config.chunk_seconds == 3.0
    assert by_name.config.normalize_audio == BACKBONE_FAMILIES[family].do_normalize
    config = tiny_backbone_config(family, num_hidden_layers=2, hidden_size=24)
    by_config = SVUForNoteTranscription.from_backbone(config)
    assert by_config.config.task == "transcription"
    assert by_config.backbone.config.hidden_size == 24 and by_config.layer_sum.num_states == 3
    assert by_config.head.out_features == 20
    by_dict = SVUForSingerID.from_backbone(config.to_dict(), id2label=LABELS)
    assert type(by_dict.backbone.config) is type(config) and by_dict.backbone.config.hidden_size == 24


@pytest.mark.parametrize("checkpoint_class", [Wav2Vec2Model, Wav2Vec2ForCTC], ids=lambda c: c.__name__)
def test_from_backbone_loads_a_local_pretrained_backbone(tmp_path, checkpoint_class):
    torch.manual_seed(3)
    # facebook/wav2vec2-base-960h, the paper's default, is a CTC checkpoint: its encoder must load too.
    backbone_config = tiny_backbone_config("wav2vec2", layerdrop=0.1, vocab_size=8)
    pretrained = checkpoint_class(backbone_config)
    pretrained.save_pretrained(tmp_path)
    encoder = pretrained if checkpoint_class is Wav2Vec2Model else pretrained.wav2vec2
    model = SVUForSingerID.from_backbone(str(tmp_path), id2label=LABELS)
    loaded = model.backbone.state_dict()
    for name, tensor in encoder.state_dict().items():
        torch.testing.assert_close(loaded[name], tensor, rtol=0, atol=0, msg=name)
    assert model.config.backbone_config.layerdrop == 0.0
    assert model.config.normalize_audio is True  # no preprocessor config: the family's convention
    Wav2Vec2FeatureExtractor(do_normalize=False, return_attention_mask=False).save_pretrained(tmp_path)
    model = SVUForSingerID.from_backbone(str(tmp_path), id2label=LABELS)
    assert model.config.normalize_audio is False and model.feature_extractor().do_normalize is False
    torch.testing.assert_close(model.backbone.encoder.layers[0].attention.q_proj.weight,
                               encoder.encoder.layers[0].attention.q_proj.weight, rtol=0, atol=0)

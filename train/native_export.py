"""Native export: an SVU classifier as the backbone family's own `*ForSequenceClassification`.

    native = native_classifier(svu_model)       # Wav2Vec2/WavLM/Hubert/Data2VecAudioForSequenceClassification
    save_native(svu_model, "repo")               # loads with AutoModelForAudioClassification, no remote code

SVU's classifier is exactly transformers' `use_weighted_layer_sum=True` classifier with the projector set to
the identity (`classifier_proj_size = hidden_size`, weight = I, bias = 0): softmax-weighted sum of all hidden
states, masked mean over time, linear head. So the repo needs no `trust_remote_code`, and the Hub's hosted
inference and widgets can run it.

Padding: transformers' class pools with the attention mask only when the feature extractor returns one, so the
saved feature extractor always returns it (pooling never sees padding). The backbone itself still sees the
zero padding of a batch: group-norm CNNs (wav2vec2-base, HuBERT/MERT-base, WavLM-base-plus) normalise over it
and data2vec's stacked positional convolutions reach into it, so a short clip batched with a long one is not
exactly its single-clip result with this form. The remote-code form runs such batches clip by clip and is exact.
"""

import copy

import torch
from transformers import (
    AutoConfig,
    AutoModelForAudioClassification,
    Data2VecAudioForSequenceClassification,
    HubertForSequenceClassification,
    Wav2Vec2FeatureExtractor,
    Wav2Vec2ForSequenceClassification,
    WavLMForSequenceClassification,
)

from modeling_svu import TASK_MODELS, SVUConfig
from modeling_svu.backbones import family_of
from modeling_svu.tasks import get_task

# SVUConfig fields kept in the native config's `svu` entry, so that `svu_from_native` rebuilds the SVU model.
SVU_FIELDS = ("task", "chunk_seconds", "class_weights", "normalize_audio", "classifier_dropout", "sampling_rate")
NATIVE_CLASSES = {
    "wav2vec2": Wav2Vec2ForSequenceClassification,
    "wavlm": WavLMForSequenceClassification,
    "hubert": HubertForSequenceClassification,
    "data2vec-audio": Data2VecAudioForSequenceClassification,
}


def native_unsupported_reason(svu_model):
    """Why `svu_model` has no native form (a sentence), or None when it has one."""
    config = svu_model.config
    task = get_task(config.task)
    if task.native_unsupported:
        return task.native_unsupported
    if config.layer_norm_per_layer:
        return "layer_norm_per_layer=True has no equivalent in transformers' use_weighted_layer_sum"
    return None


def native_classifier(svu_model):
    """The family's `*ForSequenceClassification` computing the same logits as `svu_model` (eval mode)."""
    reason = native_unsupported_reason(svu_model)
    if reason:
        raise ValueError(f"no native export for this model: {reason}; use export: remote_code.")
    config = svu_model.config
    backbone_config = copy.deepcopy(config.backbone_config)
    hidden = backbone_config.hidden_size
    backbone_config.update(dict(
        use_weighted_layer_sum=True, classifier_proj_size=hidden, num_labels=config.num_labels,
        id2label=dict(config.id2label), label2id=dict(config.label2id), layerdrop=0.0,
    ))
    cls = NATIVE_CLASSES[family_of(backbone_config).model_type]
    backbone_config.architectures = [cls.__name__]
    backbone_config.svu = {name: getattr(config, name) for name in SVU_FIELDS}
    if getattr(config, "pruning", None):  # `svu export` pruned it: keep the record
        backbone_config.svu["pruning"] = config.pruning
    native = cls(backbone_config)
    getattr(native, native.base_model_prefix).load_state_dict(svu_model.backbone.state_dict())
    with torch.no_grad():
        native.layer_weights.copy_(svu_model.layer_sum.weight)
        native.projector.weight.copy_(torch.eye(hidden))
        native.projector.bias.zero_()
        native.classifier.load_state_dict(svu_model.head.state_dict())
    return native.eval()


def is_native_export(config: dict) -> bool:
    """Whether a config.json dict is a native SVU export (from `native_classifier`)."""
    return isinstance(config.get("svu"), dict) and config.get("model_type") in NATIVE_CLASSES


def _svu_config(native_config) -> SVUConfig:
    backbone_config = copy.deepcopy(native_config)
    svu_fields = backbone_config.svu
    del backbone_config.svu
    return SVUConfig(backbone_config=backbone_config, id2label=dict(native_config.id2label),
                     label2id=dict(native_config.label2id), **svu_fields)


def svu_config_of_native(path) -> SVUConfig:
    """The `SVUConfig` of the SVU model a native export folder or repo id equals (no weights loaded)."""
    return _svu_config(AutoConfig.from_pretrained(path))


def svu_from_native(path):
    """The SVU model of a native export folder or repo id (to continue training from it)."""
    native = AutoModelForAudioClassification.from_pretrained(path)
    hidden = native.config.hidden_size
    if not (torch.equal(native.projector.weight, torch.eye(hidden)) and not native.projector.bias.any()):
        raise ValueError(f"{path}: the projector is not the identity; this is not an SVU native export.")
    config = _svu_config(native.config)
    model = TASK_MODELS[config.task](config)
    model.backbone.load_state_dict(getattr(native, native.base_model_prefix).state_dict())
    with torch.no_grad():
        model.layer_sum.weight.copy_(native.layer_weights)
        model.head.load_state_dict(native.classifier.state_dict())
    return model


def native_feature_extractor(svu_model) -> Wav2Vec2FeatureExtractor:
    """The SVU model's feature extractor, returning the attention mask so that pooling ignores padding."""
    extractor = svu_model.feature_extractor()
    extractor.return_attention_mask = True
    return extractor


def save_native(svu_model, save_directory):
    """Write the native repo files (safetensors, config.json, preprocessor_config.json) to `save_directory`."""
    native_classifier(svu_model).save_pretrained(save_directory)
    native_feature_extractor(svu_model).save_pretrained(save_directory)


"""Native export: an SVU classifier as the backbone family's own `*ForSequenceClassification`.

    native = native_classifier(svu_model)       # Wav2Vec2/WavLM/Hubert/Data2VecAudioForSequenceClassification
    save_native(svu_model, "repo")               # both forms in one repo (the default export)
    save_native(svu_model, "repo", remote_code=False)   # widget-ready: transformers' class only

SVU's classifier is exactly transformers' `use_weighted_layer_sum=True` classifier with the projector set to
the identity (`classifier_proj_size = hidden_size`, weight = I, bias = 0): softmax-weighted sum of all hidden
states, masked mean over time, linear head. So `AutoModelForAudioClassification` and the audio-classification
pipeline load the repo without `trust_remote_code`.

By default the config also gets an `auto_map` naming the SVU task class, whose code (the flat `modeling_svu`
files, as the remote-code form ships them) is copied into the repo: `AutoModel.from_pretrained(repo,
trust_remote_code=True)` then gives the SVU model with its layer weights and head (`modeling_svu.native_form`
reads the native files). The Hub tags a repo with an `auto_map` as custom code and its hosted widget does not run
it: `remote_code=False` (`export: native_widget`) writes the form without it.

Padding: transformers' class pools with the attention mask only when the feature extractor returns one, so the
saved feature extractor always returns it (pooling never sees padding). The backbone itself still sees the
zero padding of a batch: group-norm CNNs (wav2vec2-base, HuBERT/MERT-base, WavLM-base-plus) normalise over it
and data2vec's stacked positional convolutions reach into it, so a short clip batched with a long one is not
exactly its single-clip result with this form. The SVU class runs such batches clip by clip and is exact.
"""

import copy

import torch
from transformers import (
    AutoConfig,
    Data2VecAudioForSequenceClassification,
    HubertForSequenceClassification,
    Wav2Vec2FeatureExtractor,
    Wav2Vec2ForSequenceClassification,
    WavLMForSequenceClassification,
)
from transformers.dynamic_module_utils import custom_object_save

from svu.modeling_svu import TASK_MODELS, native_form
from svu.modeling_svu.backbones import family_of
from svu.modeling_svu.tasks import get_task

# SVUConfig fields kept in the native config's `svu` entry, from which the SVU model is rebuilt.
SVU_FIELDS = ("task", "chunk_seconds", "class_weights", "normalize_audio", "classifier_dropout", "sampling_rate")
# Export forms holding transformers' own class: with the auto_map to SVU's class (the default), and without it.
NATIVE_FORMS = ("native", "native_widget")
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
    svu_entry = {name: getattr(config, name) for name in SVU_FIELDS}
    if getattr(config, "pruning", None):  # `svu export` pruned it: keep the record
        svu_entry["pruning"] = config.pruning
    setattr(backbone_config, native_form.SVU_ENTRY, svu_entry)
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
    return native_form.is_native_config(config)


def svu_config_of_native(path):
    """The `SVUConfig` of the SVU model a native export folder or repo id equals (no weights loaded)."""
    return native_form.svu_config_of_native(AutoConfig.from_pretrained(path))


def svu_from_native(path):
    """The SVU model of a native export folder or repo id (to continue training from it)."""
    native_config = AutoConfig.from_pretrained(path)
    task = native_form.svu_config_of_native(native_config).task
    return TASK_MODELS[task].from_pretrained(path, config=native_config)


def native_feature_extractor(svu_model) -> Wav2Vec2FeatureExtractor:
    """The SVU model's feature extractor, returning the attention mask so that pooling ignores padding."""
    extractor = svu_model.feature_extractor()
    extractor.return_attention_mask = True
    return extractor


def save_native(svu_model, save_directory, remote_code: bool = True):
    """Write the native repo files (safetensors, config.json, preprocessor_config.json) to `save_directory`; with
    `remote_code`, also the `auto_map` to the SVU task class and its code files."""
    native = native_classifier(svu_model)
    model_class = TASK_MODELS[svu_model.config.task]
    if remote_code:
        native.config.auto_map = model_class.model_auto_map()
    native.save_pretrained(save_directory)
    native_feature_extractor(svu_model).save_pretrained(save_directory)
    if remote_code:
        custom_object_save(model_class, save_directory)


"""Reading an SVU classifier back from its native form (`train/native_export.py` writes it): the backbone family's
own `*ForSequenceClassification` config (plus an `svu` entry) and weights.

A native repo's config.json may also carry an `auto_map` naming the SVU task class (the default export): then
`AutoModel.from_pretrained(repo, trust_remote_code=True)` calls that class's `from_pretrained` with the native
config, and these functions turn config and weights into the SVU model (same logits), while
`AutoModelForAudioClassification` without remote code still loads transformers' own class from the same files.

Native weight names -> SVU's: `<base_model_prefix>.*` -> `backbone.*`, `layer_weights` -> `layer_sum.weight`,
`classifier.*` -> `head.*`; the `projector` is the identity (checked) and has no SVU counterpart.
"""

import copy

import torch
from transformers import AutoConfig, PretrainedConfig
from transformers.modeling_utils import load_state_dict
from transformers.utils import cached_file

from .backbones import FAMILIES
from .configuration_svu import SVUConfig

SVU_ENTRY = "svu"  # the native config's entry holding the SVU fields the family config has no place for
# Keys of the native config that describe its own classes, not the SVU model's backbone.
NATIVE_CLASS_KEYS = (SVU_ENTRY, "auto_map", "architectures")
# Hub arguments of `from_pretrained` that also locate the weights file.
HUB_ARGUMENTS = ("cache_dir", "force_download", "proxies", "token", "revision", "local_files_only", "subfolder")


def is_native_config(config) -> bool:
    """Whether a config (object or config.json dict) is a native SVU export."""
    get = config.get if isinstance(config, dict) else lambda key: getattr(config, key, None)
    return isinstance(get(SVU_ENTRY), dict) and get("model_type") in FAMILIES


def svu_config_of_native(native_config) -> SVUConfig:
    """The `SVUConfig` of the SVU model a native config describes."""
    backbone_config = copy.deepcopy(native_config)
    for key in NATIVE_CLASS_KEYS:
        if hasattr(backbone_config, key):
            delattr(backbone_config, key)
    return SVUConfig(backbone_config=backbone_config, id2label=dict(native_config.id2label),
                     label2id=dict(native_config.label2id), **getattr(native_config, SVU_ENTRY))


def svu_state_of_native(state: dict, base_model_prefix: str, location) -> dict:
    """The SVU state dict of a native state dict; ValueError when the projector is not the identity (not an SVU
    export: its logits would differ)."""
    projector_weight, projector_bias = state.get("projector.weight"), state.get("projector.bias")
    if projector_weight is None or projector_bias is None:
        raise ValueError(f"{location}: the weights have no projector; this is not an SVU native export.")
    if not (torch.equal(projector_weight, torch.eye(len(projector_weight), dtype=projector_weight.dtype))
            and not projector_bias.any()):
        raise ValueError(f"{location}: the projector is not the identity; this is not an SVU native export.")
    renamed = {"layer_weights": "layer_sum.weight", "classifier.weight": "head.weight", "classifier.bias": "head.bias"}
    backbone = base_model_prefix + "."
    svu_state = {}
    for name, tensor in state.items():
        if name.startswith(backbone):
            svu_state["backbone." + name[len(backbone):]] = tensor
        elif name in renamed:
            svu_state[renamed[name]] = tensor
        elif not name.startswith("projector."):
            raise ValueError(f"{location}: unexpected tensor {name!r}; this is not an SVU native export.")
    return svu_state


def native_config_at(location, kwargs: dict):
    """The native config of the export at `location` (`kwargs["config"]` when given), or None for any other model."""
    config = kwargs.get("config")
    if config is None:
        hub_arguments = _hub_arguments(kwargs)
        values, _ = PretrainedConfig.get_config_dict(location, **hub_arguments)
        if not is_native_config(values):
            return None
        config = AutoConfig.from_pretrained(location, **hub_arguments)
    return config if is_native_config(config) else None


def _hub_arguments(kwargs: dict) -> dict:
    return {name: kwargs[name] for name in HUB_ARGUMENTS if kwargs.get(name) is not None}


def load_native(model_class, location, native_config, kwargs: dict):
    """`model_class` (an SVU task class) with the config and weights of the native export at `location`."""
    config = svu_config_of_native(native_config)
    if model_class.task != config.task:
        raise ValueError(f"{location} is a {config.task!r} model; {model_class.__name__} is the {model_class.task!r} model.")
    state = load_state_dict(cached_file(location, "model.safetensors", **_hub_arguments(kwargs)))
    model = model_class(config)
    model.load_state_dict(svu_state_of_native(state, model.backbone.base_model_prefix, location), strict=True)
    dtype = kwargs.get("dtype", kwargs.get("torch_dtype"))  # transformers' name, and its older one
    if dtype not in (None, "auto"):
        model.to(getattr(torch, dtype) if isinstance(dtype, str) else dtype)  # "bfloat16" as from_pretrained takes it
    return model.eval()

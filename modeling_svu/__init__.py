"""SVU models. Inside this folder, modules import each other only as `from .x import y` (the Hub
copies these files flat next to config.json for `trust_remote_code=True`).

The names below are imported on first use, so that `svu.modeling_svu.tasks` (the task registry, standard library
only) and the audio readers load without torch or transformers (`svu --help` reads the registry)."""

import importlib

# public name -> the module of this package defining it
_EXPORTS = {
    "FAMILIES": "backbones",
    "tiny_backbone_config": "backbones",
    "SVUConfig": "configuration_svu",
    "WeightedLayerSum": "layer_sum",
    "TASK_NAMES": "tasks",
    "TASKS": "tasks",
    "get_task": "tasks",
    "TASK_MODELS": "modeling_svu",
    "SVUForLyricsTranscription": "modeling_svu",
    "SVUForNoteTranscription": "modeling_svu",
    "SVUForPitchEstimation": "modeling_svu",
    "SVUForSingerID": "modeling_svu",
    "SVUForTechniqueClassification": "modeling_svu",
    "SVUModel": "modeling_svu",
    "SVUPreTrainedModel": "modeling_svu",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))

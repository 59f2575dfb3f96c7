"""SVU models. Inside this folder, modules import each other only as `from .x import y` (the Hub
copies these files flat next to config.json for `trust_remote_code=True`)."""

from .backbones import FAMILIES, tiny_backbone_config
from .configuration_svu import SVUConfig
from .layer_sum import WeightedLayerSum
from .tasks import TASK_NAMES, TASKS, get_task
from .modeling_svu import (
    TASK_MODELS,
    SVUForNoteTranscription,
    SVUForPitchEstimation,
    SVUForSingerID,
    SVUForTechniqueClassification,
    SVUModel,
    SVUPreTrainedModel,
)

__all__ = [
    "FAMILIES",
    "TASK_MODELS",
    "TASK_NAMES",
    "TASKS",
    "SVUConfig",
    "SVUForNoteTranscription",
    "SVUForPitchEstimation",
    "SVUForSingerID",
    "SVUForTechniqueClassification",
    "SVUModel",
    "SVUPreTrainedModel",
    "WeightedLayerSum",
    "get_task",
    "tiny_backbone_config",
]

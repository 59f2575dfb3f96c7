"""SpecAugment in stage 2 (`TrainConfig.spec_augment`): the backbone's own time/feature masking of its CNN
features, active only while the backbone trains (stage 2; a frozen backbone runs in eval mode).

    spec_augment: checkpoint                                  # the backbone config's values, as loaded
    spec_augment: off                                         # no masking (`apply_spec_augment = False`)
    spec_augment: {mask_time_prob: 0.05, mask_time_length: 10}  # these values; the others stay the checkpoint's

`off` keeps the masking probabilities (and the checkpoint's `masked_spec_embed`) and sets transformers' own switch,
so a saved model reloads with exactly the weights it was trained with.
"""

import torch

PROBABILITIES = ("mask_time_prob", "mask_feature_prob")
LENGTHS = ("mask_time_length", "mask_feature_length")
FIELDS = ("mask_time_prob", "mask_time_length", "mask_feature_prob", "mask_feature_length")
NAMED = ("checkpoint", "off")


def normalized_spec_augment(value):
    """YAML reads a bare `off` as false: that is `off`."""
    return "off" if value is False else value


def check_spec_augment(value, backbone_options: dict) -> None:
    """ValueError (one line) for a value that is neither a named setting nor a mapping of valid masking fields, or
    for SpecAugment set both here and in `backbone_options`."""
    set_twice = [key for key in (*FIELDS, "apply_spec_augment") if key in (backbone_options or {})]
    if set_twice and value != "checkpoint":
        raise ValueError(f"SpecAugment is set twice, by backbone_options ({set_twice[0]}) and spec_augment "
                         f"({value!r}); set it in spec_augment only.")
    if isinstance(value, str) and value in NAMED:
        return
    if not isinstance(value, dict) or not value:
        raise ValueError(f"spec_augment must be checkpoint, off or a mapping of {', '.join(FIELDS)}; got {value!r}.")
    unknown = [key for key in value if key not in FIELDS]
    if unknown:
        raise ValueError(f"Unknown spec_augment key {unknown[0]!r}; expected some of {', '.join(FIELDS)}.")
    for key in PROBABILITIES:
        if key in value and not (isinstance(value[key], (int, float)) and 0 <= value[key] < 1):
            raise ValueError(f"spec_augment {key}={value[key]!r} must be a number in [0, 1).")
    for key in LENGTHS:
        if key in value and not (isinstance(value[key], int) and value[key] >= 1):
            raise ValueError(f"spec_augment {key}={value[key]!r} must be an integer >= 1 (frames or channels).")
    if not any(value.get(key, 0) > 0 for key in PROBABILITIES):
        raise ValueError(f"spec_augment {value!r} masks nothing: give mask_time_prob or mask_feature_prob > 0 "
                         "(spec_augment: off turns SpecAugment off).")


def apply_spec_augment(backbone: torch.nn.Module, setting) -> None:
    """Set `setting` (checked by `check_spec_augment`) on the backbone module's config (the SVU config's
    `backbone_config`, the same object), before any optimizer or PEFT wrapper sees the module."""
    config = backbone.config
    if setting == "checkpoint":
        return
    if setting == "off":
        config.apply_spec_augment = False
        return
    config.apply_spec_augment = True
    for key, value in setting.items():
        setattr(config, key, value)
    if not hasattr(backbone, "masked_spec_embed"):
        # transformers creates the mask vector only for a config that masks; a reloaded config now does
        backbone.masked_spec_embed = torch.nn.Parameter(torch.empty(config.hidden_size).uniform_())


def spec_augment_record(setting, backbone_config) -> dict:
    """What SpecAugment did in stage 2, for metrics.json's `protocol` and the model card."""
    on = getattr(backbone_config, "apply_spec_augment", True) and any(
        getattr(backbone_config, key) > 0 for key in PROBABILITIES)
    record = {"setting": setting if isinstance(setting, str) else "explicit", "on": bool(on)}
    if on:
        record.update({key: getattr(backbone_config, key) for key in FIELDS})
    return record

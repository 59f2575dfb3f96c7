"""PEFT variants of stage 2: LoRA, or an adapter, on the backbone; layer weights and head always train.

`finetune` picks what stage 2 trains (stage 1 is always: backbone frozen, layer weights + head):

- `two_stage`: the paper. The transformer (CNN feature encoder stays frozen), `lr_stage2`.
- `lora`: LoRA (`peft.LoraConfig`) on the family's `lora_target_modules`, `lr_peft`. WavLM's attention
  passes q/k/v weights straight to `F.multi_head_attention_forward`, so its q/k/v LoRA would never run:
  `FAMILIES["wavlm"].lora_target_modules` lists only the FFN projections.
- `adapter`: PEFT has no bottleneck (Houlsby/Pfeiffer) adapters. We use IA3 by default (`adapter_method: ia3`):
  like a bottleneck adapter it adds a small learned module per layer, it trains ~0.01% of the parameters,
  and it merges exactly into the backbone so the saved repo needs no peft. `adapter_method: loha` is the
  low-rank-Hadamard alternative (more capacity, also mergeable).
- `frozen`: no stage 2; the backbone never trains (the linear-probe baseline).

`modules_to_save=["layer_sum", "head"]` keeps the layer weights and head trainable and saved in the adapter.
"""

import copy

from peft import IA3Config, LoHaConfig, LoraConfig, PeftModel, get_peft_model

from svu.modeling_svu.backbones import family_of

SVU_MODULES_TO_SAVE = ["layer_sum", "head"]


def peft_config(cfg, model):
    """The peft config for `cfg.finetune` in ("lora", "adapter") on this SVU model's backbone family."""
    family = family_of(model.config.backbone_config)
    targets = list(cfg.lora_target_modules or family.lora_target_modules)
    if cfg.finetune == "lora":
        return LoraConfig(
            r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
            target_modules=targets, modules_to_save=SVU_MODULES_TO_SAVE,
        )
    if cfg.adapter_method == "ia3":
        # IA3 scales the input of feed-forward modules and the output of the others.
        feedforward = [t for t in targets if t == "output_dense"]
        return IA3Config(target_modules=targets, feedforward_modules=feedforward, modules_to_save=SVU_MODULES_TO_SAVE)
    return LoHaConfig(r=cfg.lora_r, alpha=cfg.lora_alpha, target_modules=targets, modules_to_save=SVU_MODULES_TO_SAVE)


def wrap_for_finetune(cfg, model):
    """The model to train: `model` itself, or a `PeftModel` around it for lora/adapter."""
    if cfg.finetune not in ("lora", "adapter"):
        return model
    return get_peft_model(model, peft_config(cfg, model))


def svu_model(model):
    """The SVU model inside a (possibly peft-wrapped) model."""
    return model.get_base_model() if isinstance(model, PeftModel) else model


def set_stage(model, stage: int, finetune: str, freeze_feature_encoder: bool = True):
    """Apply the trainable set of `stage` for this `finetune` method (idempotent); `freeze_feature_encoder=False`
    also trains the CNN feature encoder in stage 2 of `two_stage`."""
    base = svu_model(model)
    if finetune in ("two_stage", "frozen") or stage == 1:
        base.set_stage(1 if finetune == "frozen" else stage)
        if finetune == "two_stage" and stage == 2 and not freeze_feature_encoder:
            base.unfreeze_feature_encoder()
        return
    base.set_stage(1)  # backbone frozen, then only the adapter weights inside it re-enabled
    prefix = model.base_model.prefix  # "lora_", "ia3_", "hada_"
    for name, param in base.backbone.named_parameters():
        if prefix in name:
            param.requires_grad_(True)
    base.train(base.training)


def trainable_parameter_names(model) -> list:
    return sorted(name for name, p in svu_model(model).named_parameters() if p.requires_grad)


def describe_trainable(model) -> str:
    """One line: how many parameters train, grouped by role (backbone / adapter / layer_sum / head)."""
    groups = {}
    for name, p in svu_model(model).named_parameters():
        if p.requires_grad:
            role = name.split(".")[0]
            if role == "backbone" and any(tag in name for tag in ("lora_", "ia3_", "hada_")):
                role = "adapter"
            groups[role] = groups.get(role, 0) + p.numel()
    return ", ".join(f"{role}={n}" for role, n in sorted(groups.items())) or "nothing"


def merged_model(model):
    """An SVU model with the adapters merged into the backbone weights (a copy for peft models)."""
    if not isinstance(model, PeftModel):
        return model
    return copy.deepcopy(model).merge_and_unload()


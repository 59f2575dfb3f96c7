"""PEFT variants in-process: trainable sets per stage, gradients reach every adapter weight, exact merges."""

import pytest
import torch

from svu.modeling_svu import FAMILIES, SVUForTechniqueClassification
from svu.modeling_svu.tasks import TASK_NAMES, get_task
from svu.train.config import load_config
from svu.train.peft_variants import merged_model, set_stage, svu_model, trainable_parameter_names, wrap_for_finetune

ADAPTER_PREFIXES = {"lora": ("lora_A", "lora_B"), "adapter": ("ia3_l",)}


def build(family, finetune, **overrides):
    cfg = load_config(None, ["--backbone", f"tiny-{family}", "--finetune", finetune,
                             *[x for k, v in overrides.items() for x in (f"--{k}", str(v))]])
    torch.manual_seed(0)
    model = SVUForTechniqueClassification.from_backbone(cfg.backbone, id2label={0: "a", 1: "b", 2: "c"})
    return cfg, wrap_for_finetune(cfg, model)


@pytest.mark.parametrize("finetune", ["lora", "adapter"])
@pytest.mark.parametrize("family", list(FAMILIES))
def test_every_adapter_weight_gets_a_gradient(family, finetune):
    cfg, model = build(family, finetune)
    set_stage(model, 1, finetune)
    assert trainable_parameter_names(model) == [
        "head.modules_to_save.default.bias", "head.modules_to_save.default.weight", "layer_sum.modules_to_save.default.weight"]
    set_stage(model, 2, finetune)
    names = trainable_parameter_names(model)
    adapter = [n for n in names if any(p in n for p in ADAPTER_PREFIXES[finetune])]
    assert adapter and len(names) == len(adapter) + 3
    targets = FAMILIES[family].lora_target_modules
    assert {n.split(".")[-4 if finetune == "lora" else -3] for n in adapter} == set(targets)
    if family == "wavlm":  # q/k/v bypass LoRA in WavLM's attention: never targeted
        assert not any(t in n for n in adapter for t in ("q_proj", "k_proj", "v_proj"))
    model.train()
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    x, y = torch.randn(2, 16000), torch.tensor([0, 2])
    for _ in range(2):  # LoRA B starts at 0, so A gets its first gradient on the second step
        optimizer.zero_grad()
        model(input_values=x, labels=y).loss.backward()
        optimizer.step()
    params = dict(svu_model(model).named_parameters())
    no_grad = [n for n in names if params[n].grad is None or params[n].grad.abs().sum() == 0]
    assert not no_grad, no_grad
    frozen = [n for n, p in params.items() if not p.requires_grad and p.grad is not None]
    assert not frozen


@pytest.mark.parametrize("finetune, method", [("lora", "ia3"), ("adapter", "ia3"), ("adapter", "loha")])
def test_merge_gives_identical_logits(finetune, method):
    cfg, model = build("wav2vec2", finetune, adapter_method=method)
    set_stage(model, 2, finetune)
    merged = assert_merge_keeps_logits(model)
    assert type(merged) is SVUForTechniqueClassification
    assert not any("lora_" in n or "ia3_" in n or "hada_" in n for n in merged.state_dict())


def assert_merge_keeps_logits(model):
    """The merged model of a stage-2 PEFT `model` (its trainable weights moved away from their identity init)
    gives the same logits."""
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.05 * torch.randn_like(p))
    model.eval()
    x = torch.randn(2, 16000)
    with torch.no_grad():
        expected = model(input_values=x).logits
        merged = merged_model(model)
        torch.testing.assert_close(merged(x).logits, expected, rtol=0, atol=1e-5)
    return merged


def test_two_stage_and_frozen_need_no_peft():
    for finetune in ("two_stage", "frozen"):
        cfg, model = build("wav2vec2", finetune)
        assert type(model) is SVUForTechniqueClassification
        set_stage(model, 2, finetune)
        names = trainable_parameter_names(model)
        if finetune == "frozen":
            assert names == ["head.bias", "head.weight", "layer_sum.weight"]
        else:
            assert "backbone.encoder.layers.0.attention.q_proj.weight" in names
            assert not any(n.startswith("backbone.feature_extractor.") for n in names)


@pytest.mark.parametrize("task", TASK_NAMES)
def test_lora_and_lr_head_for_every_task_model(task):
    """Every task's model (lyrics' CTC head too) takes LoRA: stage 2 trains the adapter, layer weights and head,
    `lr_head` gives the head its own Adam group, and the merge keeps the logits."""
    from svu.modeling_svu import TASK_MODELS
    from svu.train.run import parameter_groups

    cfg = load_config(None, ["--task", task, "--backbone", "tiny-wav2vec2", "--finetune", "lora", "--lr_head", "0.01"])
    torch.manual_seed(0)
    model = TASK_MODELS[task].from_backbone(cfg.backbone, id2label={0: "a", 1: "b"} if get_task(task).classes else None)
    model = wrap_for_finetune(cfg, model)
    set_stage(model, 2, "lora")
    groups = parameter_groups(model, cfg.lr_peft, cfg.lr_head)
    trainable = dict((id(p), n) for n, p in svu_model(model).named_parameters() if p.requires_grad)
    head = sorted(trainable[id(p)] for p in groups[1]["params"])
    assert groups[1]["lr"] == 0.01 and head and all(n.startswith("head.modules_to_save.") for n in head)
    assert len(groups[0]["params"]) + len(groups[1]["params"]) == len(trainable)
    assert any("lora_A" in trainable[id(p)] for p in groups[0]["params"])
    assert type(assert_merge_keeps_logits(model)) is TASK_MODELS[task]

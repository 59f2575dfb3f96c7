"""Stage-2 training cost: LoRA vs full fine-tuning of the transformer (CNN frozen in both, as in the paper).

Each variant trains a few Adam steps in its own process, so the peak RSS is its own (glibc's mmap threshold is
pinned, see `common.run_child`, so RSS follows live memory rather than heap fragmentation). Measured without
and with gradient checkpointing (on both variants): activations are the same for LoRA and full (LoRA's A
matrices keep the same layer inputs), so LoRA saves the gradients and Adam state of the transformer. LoRA follows the
training script: `LoraConfig(r=8, lora_alpha=16, target_modules=FAMILIES[family].lora_target_modules,
modules_to_save=["layer_sum", "head"])`. Goal: peak memory <= 0.6x and trainable parameters <= 2 % of full.
"""

import argparse
import json
import time
import warnings

import torch

from svu.modeling_svu import FAMILIES, SVUForTechniqueClassification

from .common import Row, backbone_config, check, peak_rss_mib, random_audio, run_child, setup_torch

NAME = "lora_memory"
FAMILY = "wav2vec2"


def build(smoke: bool, variant: str):
    model = SVUForTechniqueClassification.from_backbone(backbone_config(smoke, FAMILY), id2label={i: f"c{i}" for i in range(10)})
    if variant == "full":
        model.set_stage(2)
        return model, model
    from peft import LoraConfig, get_peft_model

    from svu.train.peft_variants import set_stage

    config = LoraConfig(
        r=8, lora_alpha=16, target_modules=list(FAMILIES[FAMILY].lora_target_modules), modules_to_save=["layer_sum", "head"]
    )
    peft_model = get_peft_model(model, config)
    set_stage(peft_model, 2, "lora")  # exactly what train/run.py does for stage 2
    return peft_model, model


def child(smoke: bool, variant: str, steps: int, batch: int, seconds: float, checkpointing: bool):
    setup_torch()
    warnings.simplefilter("ignore")
    trained, base = build(smoke, variant)
    if checkpointing:
        base.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    trained.train()
    params = [p for p in trained.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=5e-5)
    rss_before = peak_rss_mib()
    audio, labels = random_audio(seconds, batch), torch.arange(batch) % 10
    step_times = []
    for _ in range(steps):
        start = time.perf_counter()
        loss = trained(input_values=audio, labels=labels).loss
        loss.backward()
        missing = [p.shape for p in params if p.grad is None]
        if missing:
            raise RuntimeError(f"{len(missing)} trainable tensors got no gradient ({variant}, checkpointing={checkpointing}).")
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        step_times.append(time.perf_counter() - start)
    print(json.dumps({
        "peak_rss_mib": peak_rss_mib(), "rss_before_training_mib": rss_before,
        "trainable": sum(p.numel() for p in params), "total": sum(p.numel() for p in base.parameters()),
        "step_seconds": min(step_times),
    }))


def run(smoke: bool) -> list:
    steps, batch, seconds = (2, 2, 1.0) if smoke else (2, 8, 3.0)
    args = ["--steps", str(steps), "--batch", str(batch), "--seconds", str(seconds)] + (["--smoke"] if smoke else [])
    case = f"{'tiny' if smoke else 'base'}, batch {batch} x {seconds:g} s, {steps} Adam steps"
    rows = []
    for checkpointing in (False,) if smoke else (False, True):  # smoke: one pair, to stay fast
        extra = ["--checkpointing"] if checkpointing else []
        full = run_child("lora_memory", "--variant", "full", *args, *extra)
        lora = run_child("lora_memory", "--variant", "lora", *args, *extra)
        label = " (gradient checkpointing, both)" if checkpointing else ""
        memory = lora["peak_rss_mib"] / full["peak_rss_mib"]
        full_growth = full["peak_rss_mib"] - full["rss_before_training_mib"]
        growth = (lora["peak_rss_mib"] - lora["rss_before_training_mib"]) / full_growth if full_growth > 0 else float("nan")
        rows += [
            Row(NAME, f"peak RSS: LoRA / full{label}", memory, goal="<= 0.6", met=check(memory, "<= 0.6", smoke),
                note=f"{case}; {lora['peak_rss_mib']:.0f} vs {full['peak_rss_mib']:.0f} MiB"),
            Row(NAME, f"RSS growth in training: LoRA / full{label}", growth,
                note=f"above the loaded model: {lora['peak_rss_mib'] - lora['rss_before_training_mib']:.0f} vs "
                     f"{full['peak_rss_mib'] - full['rss_before_training_mib']:.0f} MiB"),
            Row(NAME, f"step time: LoRA / full{label}", lora["step_seconds"] / full["step_seconds"],
                note=f"{lora['step_seconds']:.2f} vs {full['step_seconds']:.2f} s"),
        ]
        if not checkpointing:
            params = 100 * lora["trainable"] / full["trainable"]
            rows.append(Row(NAME, "trainable params: LoRA / full stage 2", params, unit="%", goal="<= 2", met=check(params, "<= 2", smoke),
                            note=f"{lora['trainable']:,} vs {full['trainable']:,} (model {full['total']:,})"))
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--child", action="store_true")
    parser.add_argument("--variant", choices=["full", "lora"])
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--steps", type=int)
    parser.add_argument("--batch", type=int)
    parser.add_argument("--seconds", type=float)
    parser.add_argument("--checkpointing", action="store_true")
    a = parser.parse_args()
    child(a.smoke, a.variant, a.steps, a.batch, a.seconds, a.checkpointing)

"""Stage 1 on cached pooled layer features vs recomputing the frozen backbone every epoch.

Both runs start from the same weights, use Adam (lr 3e-3, the paper's stage 1) and visit the chunks in the
same shuffled order; the cached run trains through `model.classify_pooled` on `build_pooled_cache` rows.
Goal: >= 50x faster epochs at base size, with the final layer weights and head equal within 1e-5.
"""

import copy
import tempfile

import numpy as np
import torch

from svu.modeling_svu import SVUForTechniqueClassification
from svu.train.feature_cache import POOLED_COLUMN, build_pooled_cache

from .common import Row, backbone_config, check, classification_dataset, timed

NAME = "stage1_cache"
LEARNING_RATE = 3e-3


def epoch_order(num_rows: int, epoch: int, seed: int = 0) -> list:
    generator = torch.Generator().manual_seed(seed + epoch)
    return torch.randperm(num_rows, generator=generator).tolist()


def train_stage1(model, rows, epochs: int, batch_size: int, cached: bool) -> list:
    """Stage-1 training on audio rows (`cached=False`) or pooled-cache rows; returns each epoch's seconds."""
    model.set_stage(1)
    model.train()
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=LEARNING_RATE)
    extractor = model.feature_extractor()
    epoch_seconds = []
    for epoch in range(epochs):
        order = epoch_order(len(rows), epoch)

        def one_epoch():
            for start in range(0, len(order), batch_size):
                batch = rows[order[start:start + batch_size]]
                labels = torch.tensor(batch["label"])
                if cached:
                    out = model.classify_pooled(torch.as_tensor(batch[POOLED_COLUMN]), labels=labels)
                else:
                    waves = [np.asarray(a["array"], dtype=np.float32) for a in batch["audio"]]
                    inputs = extractor(waves, sampling_rate=16000, padding=True, return_tensors="pt")
                    out = model(inputs["input_values"], attention_mask=inputs.get("attention_mask"), labels=labels)
                out.loss.backward()
                optimizer.step()
                optimizer.zero_grad()

        epoch_seconds.append(timed(one_epoch)[1])
    return epoch_seconds


def trained_state(model) -> dict:
    return {"layer_weights": model.layer_weights(), "head.weight": model.head.weight.detach(), "head.bias": model.head.bias.detach()}


def run(smoke: bool) -> list:
    num_labels = 10
    count, seconds, batch_size, epochs = (8, 1.0, 4, 2) if smoke else (32, 3.0, 16, 2)
    dataset = classification_dataset(count, seconds, num_labels)
    torch.manual_seed(0)
    model = SVUForTechniqueClassification.from_backbone(
        backbone_config(smoke), id2label={i: f"class{i}" for i in range(num_labels)}, class_weights=[1.0 + i / 10 for i in range(num_labels)]
    )
    recompute_model, cached_model = model, copy.deepcopy(model)

    recompute_times = train_stage1(recompute_model, dataset, epochs, batch_size, cached=False)
    with tempfile.TemporaryDirectory() as cache_dir:
        cache, build_seconds = timed(lambda: build_pooled_cache(cached_model, dataset, cache_dir, batch_size=batch_size))
        cached_times = train_stage1(cached_model, cache.with_format("numpy"), epochs, batch_size, cached=True)
        a, b = trained_state(recompute_model), trained_state(cached_model)
        max_diff = max((a[k] - b[k]).abs().max().item() for k in a)
        del cache

    case = f"{'tiny' if smoke else 'base'}, {count} chunks x {seconds:g} s, batch {batch_size}, {epochs} epochs"
    speedup = min(recompute_times) / min(cached_times)
    return [
        Row(NAME, "stage-1 epoch: recompute / cached", speedup, goal=">= 50", met=check(speedup, ">= 50", smoke), note=case),
        Row(NAME, "max |diff| layer weights + head after stage 1", max_diff, unit="", goal="<= 1e-5", met=check(max_diff, "<= 1e-5", smoke), note=case),
        Row(NAME, "cache build / recompute epoch", build_seconds / min(recompute_times), note="one-off cost, in epochs"),
    ]

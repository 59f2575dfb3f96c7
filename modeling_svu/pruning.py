"""Layer pruning: drop the backbone layers above the last one the weighted layer sum still uses.

The layer sum weights hidden state ``l`` by ``softmax(w)_l``; a transformer layer above the highest state with
real weight only feeds states that hardly count, so it is dead compute at inference. `prune_layers(model, K)`
keeps the CNN, the first K transformer layers and the K + 1 first layer-sum logits (their values unchanged: the
softmax renormalises over the kept states). The result is an ordinary SVU model whose backbone config has
``num_hidden_layers = K``; it saves and loads as any other. When the dropped states' softmax mass is exactly 0
(in float32) the pruned model computes the same outputs: each kept hidden state is the output of the same
layers on the same input (the hidden states are the layer outputs, the final LayerNorm of pre-LN backbones
applies only to `last_hidden_state`, which SVU does not use).
"""

from dataclasses import asdict, dataclass
from typing import Optional

import torch
from torch import nn

DEFAULT_PRUNE_THRESHOLD = 0.01


@dataclass
class PruningReport:
    original_layers: int
    kept_layers: int
    dropped_mass: float  # softmax mass of the dropped states, before pruning
    threshold: Optional[float] = None  # set when the depth was chosen by `layers_to_keep`

    def to_dict(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        how = f" (auto, threshold {self.threshold:g})" if self.threshold is not None else ""
        return (
            f"backbone pruned from {self.original_layers} to {self.kept_layers} layers{how}; "
            f"dropped layer-weight mass {self.dropped_mass:.3g}"
        )


def layers_to_keep(layer_weights: torch.Tensor, threshold: float = DEFAULT_PRUNE_THRESHOLD) -> int:
    """The number of transformer layers up to the highest hidden state whose softmax weight is >= threshold.

    `layer_weights` are the normalised weights of the ``num_layers + 1`` states (index 0 = CNN projection), so
    keeping K layers keeps states 0..K. At least one layer is kept.
    """
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"prune threshold must be between 0 and 1 (exclusive), got {threshold}.")
    strong = torch.nonzero(layer_weights >= threshold).flatten()
    highest = int(strong.max()) if strong.numel() else 0
    return max(highest, 1)


def dropped_mass(layer_weights: torch.Tensor, max_layers: int) -> float:
    """Softmax mass of the states above layer `max_layers` (exactly 0.0 when every dropped weight underflows)."""
    return float(layer_weights[max_layers + 1 :].sum())


def prune_layers(model, max_layers: int, threshold: Optional[float] = None) -> PruningReport:
    """Keep the first `max_layers` transformer layers of `model`'s backbone, in place; returns what was done.

    `model` is any SVU model (`backbone`, `layer_sum`, `config.backbone_config`). ValueError (one line) when
    `max_layers` is not between 1 and the backbone's depth.
    """
    backbone_config = model.config.backbone_config
    total = backbone_config.num_hidden_layers
    if not (isinstance(max_layers, int) and 1 <= max_layers <= total):
        raise ValueError(f"max_layers={max_layers} must be between 1 and the backbone's {total} layers.")
    weights = model.layer_sum.normalized_weights().detach()
    report = PruningReport(total, max_layers, dropped_mass(weights, max_layers), threshold)
    layers = model.backbone.encoder.layers
    model.backbone.encoder.layers = nn.ModuleList(list(layers)[:max_layers])
    backbone_config.num_hidden_layers = max_layers
    model.backbone.config.num_hidden_layers = max_layers
    layer_sum = model.layer_sum
    layer_sum.weight = nn.Parameter(layer_sum.weight.detach()[: max_layers + 1].clone())
    layer_sum.num_states = max_layers + 1
    # Recorded in config.json, so the saved repo (and its card) says how it was made.
    previous = getattr(model.config, "pruning", None) or {}
    model.config.pruning = {**report.to_dict(), "original_layers": previous.get("original_layers", total)}
    return report

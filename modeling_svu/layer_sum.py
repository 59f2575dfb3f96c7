"""Softmax-weighted sum of all hidden states of an SSL backbone (one learnable scalar per state)."""

import torch
from torch import nn


class WeightedLayerSum(nn.Module):
    """``sum_l softmax(weight)_l * h_l`` over the ``num_states`` hidden states.

    The logits are one named module's ``weight`` (not a bare parameter on the model) so that PEFT
    can keep them trainable via ``modules_to_save=["layer_sum", ...]`` and merges find ``weight``.
    They start at zero: a uniform average, as in transformers' ``use_weighted_layer_sum``.
    """

    def __init__(self, num_states: int, layer_norm: bool = False):
        super().__init__()
        self.num_states = num_states
        self.layer_norm = layer_norm
        self.weight = nn.Parameter(torch.zeros(num_states))

    def normalized_weights(self) -> torch.Tensor:
        return torch.softmax(self.weight, dim=0)

    def forward(self, hidden_states) -> torch.Tensor:
        if len(hidden_states) != self.num_states:
            raise ValueError(
                f"WeightedLayerSum expects {self.num_states} hidden states, got {len(hidden_states)} "
                "(is layerdrop > 0 on the backbone?)."
            )
        weights = self.normalized_weights()
        total = None
        for w, h in zip(weights, hidden_states):
            if self.layer_norm:
                h = nn.functional.layer_norm(h, h.shape[-1:])
            total = w * h if total is None else total + w * h
        return total

    def extra_repr(self) -> str:
        return f"num_states={self.num_states}, layer_norm={self.layer_norm}"

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
        if self.layer_norm:
            hidden_states = [nn.functional.layer_norm(h, h.shape[-1:]) for h in hidden_states]
        # One output buffer, accumulated in place: `total + w * h` would allocate two full-size
        # temporaries per state, and on CPU those fresh allocations (page faults) cost more than the
        # arithmetic. In-place is autograd-safe here: addcmul's backward needs only `w` and `h`.
        total = hidden_states[0] * weights[0]
        for w, h in zip(weights[1:], hidden_states[1:]):
            total.addcmul_(h, w)
        return total

    def extra_repr(self) -> str:
        return f"num_states={self.num_states}, layer_norm={self.layer_norm}"

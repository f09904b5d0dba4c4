"""Torch twin of :class:`~controlkit.models.network.CompactNetwork` (kept apart so the numpy module never imports torch)."""

from __future__ import annotations

import torch
from torch import nn


class CompactTorch(nn.Module):
    """Linear layers with fixed per-neuron ReLU/identity masks."""

    def __init__(self, net) -> None:
        super().__init__()
        self.layers = nn.ModuleList()
        for w, b in zip(net.weights, net.biases):
            lin = nn.Linear(w.shape[1], w.shape[0])
            with torch.no_grad():
                lin.weight.copy_(torch.as_tensor(w))
                lin.bias.copy_(torch.as_tensor(b))
            self.layers.append(lin)
        for k, m in enumerate(net.relu_masks):
            self.register_buffer(f"mask{k}", torch.as_tensor(m))
        self.n_hidden = len(net.relu_masks)

    def forward(self, xu: torch.Tensor) -> torch.Tensor:
        h = xu
        for k, lin in enumerate(self.layers):
            h = lin(h)
            if k < self.n_hidden:
                h = torch.where(getattr(self, f"mask{k}"), torch.relu(h), h)
        return h

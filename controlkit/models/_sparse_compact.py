"""Training a masked model on its kept neurons only.

Once a round has fixed every neuron's form, a removed neuron contributes nothing: its output is multiplied by 0,
so its incoming and outgoing weights get zero gradient. Training the full-width model would still spend the
matrix products on it; late in the schedule most neurons are removed (173 of 256 at 32 ReLUs on Pendulum), so
the fine-tune runs on a narrower copy holding only the kept neurons and writes the trained weights back. The
gradients of the kept weights are the same, so the result is the full-width fine-tune's up to float rounding.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from controlkit.models.dynamics import DynamicsModel


def narrow_copy(model: DynamicsModel, keep: Sequence[torch.Tensor]) -> DynamicsModel:
    """A model with only the hidden neurons in ``keep`` (one bool mask per hidden layer), same normalisation."""
    small = DynamicsModel(model.nx, model.nu, [int(k.sum()) for k in keep], residual=model.residual)
    rows = [*keep, torch.ones(model.nx, dtype=torch.bool)]
    cols = [torch.ones(model.nx + model.nu, dtype=torch.bool), *keep]
    with torch.no_grad():
        for big, lin, r, c in zip(model.linears, small.linears, rows, cols):
            lin.weight.copy_(big.weight[r][:, c])
            lin.bias.copy_(big.bias[r])
        for name, buf in model.named_buffers():
            getattr(small, name).copy_(buf)
    return small


def write_back(model: DynamicsModel, small: DynamicsModel, keep: Sequence[torch.Tensor]) -> None:
    """Copy the narrow model's weights into the kept rows/columns of ``model`` (removed neurons untouched)."""
    rows = [*keep, torch.ones(model.nx, dtype=torch.bool)]
    cols = [torch.ones(model.nx + model.nu, dtype=torch.bool), *keep]
    with torch.no_grad():
        for big, lin, r, c in zip(model.linears, small.linears, rows, cols):
            ri, ci = r.nonzero().squeeze(1), c.nonzero().squeeze(1)
            big.weight[ri[:, None], ci[None, :]] = lin.weight
            big.bias[ri] = lin.bias

"""MLP baseline policy: fully connected layers with a tanh output in the action box [-1, 1]."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from controlkit.core.controller import Controller, StepInfo
from controlkit.core.errors import ControlkitError, choices_error

ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU}


class MLPPolicy(nn.Module, Controller):
    """``obs -> hidden layers -> tanh(action)``; a torch module (batched) and a :class:`Controller`.

    Args:
        obs_dim: Observation size.
        act_dim: Action size.
        hidden: Hidden layer widths, e.g. ``(256, 256)`` (about 73k parameters on the 6-link swimmer).
        activation: ``"tanh"`` or ``"relu"`` for the hidden layers.
        seed: Seed of the weight initialisation (torch's default Linear init, drawn from our own generator).
    """

    def __init__(self, obs_dim: int, act_dim: int, hidden: Sequence[int] = (256, 256), activation: str = "tanh",
                 seed: int = 0) -> None:
        nn.Module.__init__(self)
        if activation not in ACTIVATIONS:
            raise choices_error("activation", activation, ACTIVATIONS)
        if any((not isinstance(h, (int, np.integer))) or h < 1 for h in hidden):
            raise ControlkitError(f"hidden: layer widths must be positive integers, got {list(hidden)!r}.")
        self.obs_dim, self.act_dim = int(obs_dim), int(act_dim)
        self.hidden, self.activation = tuple(int(h) for h in hidden), activation
        gen = torch.Generator().manual_seed(seed)
        layers: list[nn.Module] = []
        sizes = [self.obs_dim, *self.hidden, self.act_dim]
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            lin = nn.Linear(a, b)
            bound = 1 / np.sqrt(a)
            with torch.no_grad():
                lin.weight.uniform_(-bound, bound, generator=gen)
                lin.bias.uniform_(-bound, bound, generator=gen)
            layers += [lin, ACTIVATIONS[activation]() if i < len(sizes) - 2 else nn.Tanh()]
        self.net = nn.Sequential(*layers)
        self._numpy_cache: tuple[tuple[int, ...], Any] | None = None

    @classmethod
    def for_env(cls, env, **kwargs: Any) -> MLPPolicy:
        """Build for an env with flat Box observation and action spaces."""
        return cls(int(np.prod(env.observation_space.shape)), int(np.prod(env.action_space.shape)), **kwargs)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        obs = torch.as_tensor(obs, dtype=torch.float32)
        if obs.shape[-1] != self.obs_dim:
            raise ControlkitError(f"observation: this MLP expects {self.obs_dim} entries, got {obs.shape[-1]}.")
        return self.net(obs)

    def to_numpy(self):
        """The numpy-only form (:class:`~controlkit.policies.export.MLPNumpy`)."""
        from controlkit.policies.export import MLPNumpy

        lins = [m for m in self.net if isinstance(m, nn.Linear)]
        return MLPNumpy(
            weights=[m.weight.detach().double().numpy().T.copy() for m in lins],
            biases=[m.bias.detach().double().numpy().copy() for m in lins],
            activation=self.activation,
        )

    def _act(self, obs: Any) -> tuple[np.ndarray, StepInfo]:
        key = tuple(p._version for p in self.parameters())  # in-place optimizer steps bump these
        if self._numpy_cache is None or self._numpy_cache[0] != key:
            self._numpy_cache = (key, self.to_numpy())
        return self._numpy_cache[1](np.asarray(obs, dtype=np.float64)).astype(np.float32), StepInfo()


__all__ = ["ACTIVATIONS", "MLPPolicy"]

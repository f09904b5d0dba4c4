"""Neural control laws ``u = pi(t, observables; theta)`` trained by back-propagating the objective through a
differentiable surrogate of the twin (the AI-Pontryagin idea), and deployed on the ABM as a
:class:`~controlkit.core.controller.Controller`.

Admissible range: the network's output passes through a sigmoid scaled to ``[low, high]``, so every parameter
value gives an admissible control. Integer controls (whole agents removed) are rounded in the forward pass and
passed straight through in the backward pass (:func:`straight_through_round`).
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from controlkit.twins.objectives import TwinTask
from controlkit.twins.surrogate import tanh_mlp
from controlkit.twins.uncertainty import risk_loss
from pydantic import BaseModel, ConfigDict, Field, PositiveInt
from torch import nn

from controlkit.core.controller import Controller, StepInfo
from controlkit.core.errors import ControlkitError
from controlkit.core.io import atomic_write_text


def straight_through_round(u: torch.Tensor) -> torch.Tensor:
    """``round(u)`` in the forward pass, identity gradient in the backward pass."""
    return u + (torch.round(u) - u).detach()


def surrogate_cost(task: TwinTask, x0: torch.Tensor, states: torch.Tensor, decisions: torch.Tensor) -> torch.Tensor:
    """Objective of surrogate rollouts from ``x0`` ``(B, nx)``: ``states`` ``(B, H, nx)`` after each decision
    ``(B, H, nu)``, per batch row.

    State terms use the predicted observables at decision points, with changes over a decision spread evenly
    over its ticks; control terms use each decision's mean per-tick rate (``decision / interval`` for pulses).
    So it estimates the per-tick cost the ABM is scored with.
    """
    prev = torch.cat([x0[:, None], states[:, :-1]], dim=1)
    per_tick_prev = states - (states - prev) / task.interval
    return task.objective.episode_cost(per_tick_prev, states, decisions * task.rate_scale())


class PolicyNet(nn.Module):
    """MLP on ``[t / H, obs / obs_scale]``, sigmoid-scaled to ``[low, high]``, rounded straight-through if integer.

    Args:
        nx: Observables.
        nu: Controls.
        low: Admissible lower bounds.
        high: Admissible upper bounds.
        obs_scale: Divides the observables (their typical magnitude) before the first layer.
        horizon: Decisions in the horizon (normalises time).
        integer: Round the output.
        hidden: Hidden layer sizes (tanh).
        seed: Seeds the initialisation.
    """

    def __init__(self, nx: int, nu: int, low: Sequence[float], high: Sequence[float], obs_scale: Sequence[float],
                 horizon: int, integer: bool, hidden: Sequence[int] = (32, 32), seed: int = 0) -> None:
        super().__init__()
        self.net = tanh_mlp([1 + nx, *hidden, nu], seed)
        # Start near the lower bound (little control), as the effort term prefers.
        self.net[-1].bias.data.fill_(-2.0)
        self.register_buffer("low", torch.as_tensor(low, dtype=torch.float32))
        self.register_buffer("high", torch.as_tensor(high, dtype=torch.float32))
        self.register_buffer("obs_scale", torch.as_tensor(obs_scale, dtype=torch.float32))
        self.horizon, self.integer = int(horizon), bool(integer)

    def forward(self, k: int, obs: torch.Tensor) -> torch.Tensor:
        t = torch.full(obs.shape[:-1] + (1,), k / self.horizon, dtype=obs.dtype)
        z = self.net(torch.cat([t, obs / self.obs_scale], dim=-1))
        u = self.low + (self.high - self.low) * torch.sigmoid(z)
        return straight_through_round(u) if self.integer else u


class ControllerSettings(BaseModel):
    """Training of the neural controller (the ``controller:`` block of a ``twin_control`` experiment)."""

    model_config = ConfigDict(extra="forbid")

    surrogate: Literal["discrete", "ode", "mechanistic"] = Field("ode", description="The surrogate the controller "
                                                                  "is trained through (mechanistic: the fitted "
                                                                  "ODE metamodel, controlkit.twins.mechanistic).")
    hidden: list[PositiveInt] = Field(default_factory=lambda: [32, 32], description="Policy hidden sizes.")
    iterations: PositiveInt = Field(400, description="Adam steps.")
    batch_size: PositiveInt = Field(64, description="Initial states per step (drawn from the data's starts).")
    lr: float = Field(5e-3, gt=0, description="Adam learning rate at the first step.")
    final_lr_fraction: float = Field(0.1, gt=0, le=1, description="Cosine decay of the learning rate to this "
                                                                  "fraction of lr at the last step.")
    start_noise: float = Field(0.1, ge=0, description="Relative noise on the initial states (robustness).")
    risk: Literal["mean", "cvar"] = Field("mean", description="Loss over a batch of rollout costs: their mean "
                                                             "(risk-neutral) or (1 - cvar_weight) mean + "
                                                             "cvar_weight CVaR (risk-averse; CVaR = the mean of the "
                                                             "worst cvar_alpha fraction).")
    cvar_alpha: float = Field(0.1, gt=0, le=1, description="Worst fraction of rollouts the CVaR averages.")
    cvar_weight: float = Field(0.5, ge=0, le=1, description="Share of CVaR in the risk-averse loss (1: pure CVaR).")


@dataclasses.dataclass
class TrainResult:
    """History of one controller training."""

    losses: list[float]
    train_time_s: float
    train_cpu_s: float


def rollout_policy(surrogate: nn.Module, policy: Callable[[int, torch.Tensor], torch.Tensor], x0: torch.Tensor,
                   horizon: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Closed-loop surrogate rollout: ``(states (B, H, nx), decisions (B, H, nu))``; populations kept >= 0."""
    x, states, us = x0, [], []
    for k in range(horizon):
        u = policy(k, x)
        x = torch.clamp(surrogate.step(x, u), min=0.0)
        states.append(x)
        us.append(u)
    return torch.stack(states, 1), torch.stack(us, 1)


def train_controller(surrogate: nn.Module, task: TwinTask, starts: np.ndarray, settings: ControllerSettings,
                     seed: int, obs_scale: Sequence[float] | None = None,
                     on_step: Callable[[int, float], None] | None = None) -> tuple[NeuralTwinController, TrainResult]:
    """Train ``pi`` by gradient descent on the surrogate-predicted objective over the task's horizon.

    Args:
        surrogate: A fitted surrogate (``step(x, u)`` in raw units), or an
            :class:`~controlkit.twins.uncertainty.EnsembleSurrogate` (every batch spread over its members); its
            weights are frozen here.
        task: The control task.
        starts: Initial observables ``(N, nx)`` to train from (e.g. the data's post-burn-in states).
        settings: Iterations, batch, learning rate and its decay, start noise, risk measure of the loss.
        seed: Seeds the initialisation, batches and noise.
        obs_scale: Observable scale for the policy input (default: mean of ``starts``).
        on_step: Called as ``on_step(iteration, loss)``.
    """
    t0, c0 = time.perf_counter(), time.process_time()
    starts = np.asarray(starts, dtype=np.float32)
    low, high = task.bounds
    scale = np.maximum(starts.mean(0), 1.0) if obs_scale is None else np.asarray(obs_scale, dtype=float)
    policy = PolicyNet(starts.shape[1], low.size, low, high, scale, task.decisions, task.integer,
                       settings.hidden, seed)
    for p in surrogate.parameters():
        p.requires_grad_(False)
    opt = torch.optim.Adam(policy.parameters(), lr=settings.lr)
    # Large steps find the strategy early; the decayed rate settles it instead of jittering around it.
    frac, n = settings.final_lr_fraction, max(1, settings.iterations - 1)
    decay = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: frac + (1 - frac) * 0.5 * (1 + np.cos(np.pi * i / n)))
    gen = torch.Generator().manual_seed(seed)
    x_all = torch.as_tensor(starts)
    losses = []
    for it in range(settings.iterations):
        idx = torch.randint(len(x_all), (settings.batch_size,), generator=gen)
        x0 = x_all[idx] * (1 + settings.start_noise * torch.randn(x_all[idx].shape, generator=gen))
        x0 = torch.clamp(x0, min=0.0)
        states, us = rollout_policy(surrogate, policy, x0, task.decisions)
        loss = risk_loss(surrogate_cost(task, x0, states, us), settings.risk, settings.cvar_alpha,
                         settings.cvar_weight)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        decay.step()
        losses.append(loss.item())
        if on_step is not None:
            on_step(it, losses[-1])
    for p in surrogate.parameters():
        p.requires_grad_(True)
    return NeuralTwinController.from_policy(policy, task), TrainResult(losses, time.perf_counter() - t0,
                                                                  time.process_time() - c0)


def mlp_forward(weights: Sequence[np.ndarray], biases: Sequence[np.ndarray], x: np.ndarray) -> np.ndarray:
    """Numpy forward pass of a tanh MLP (linear output layer)."""
    h = x
    for i, (w, b) in enumerate(zip(weights, biases)):
        h = w @ h + b
        if i < len(weights) - 1:
            h = np.tanh(h)
    return h


class NeuralTwinController(Controller):
    """The trained control law as a numpy controller: ``act(obs)`` at decision ``k`` (counted from ``reset``).

    Torch-free at run time, so it pickles to replicate workers and acts in microseconds.

    Args:
        weights: Linear layer weights ``(out, in)``.
        biases: Linear layer biases.
        low, high: Admissible bounds.
        obs_scale: Observable scale of the input.
        horizon: Decisions in the horizon.
        integer: Round the output.
        twin: Twin the controller was trained for (checked on load).
    """

    def __init__(self, weights: list[np.ndarray], biases: list[np.ndarray], low: np.ndarray, high: np.ndarray,
                 obs_scale: np.ndarray, horizon: int, integer: bool, twin: str) -> None:
        self.weights = [np.asarray(w, dtype=float) for w in weights]
        self.biases = [np.asarray(b, dtype=float) for b in biases]
        self.low, self.high = np.asarray(low, dtype=float), np.asarray(high, dtype=float)
        self.obs_scale = np.asarray(obs_scale, dtype=float)
        self.horizon, self.integer, self.twin = int(horizon), bool(integer), twin
        self.k = 0

    @classmethod
    def from_policy(cls, policy: PolicyNet, task: TwinTask) -> NeuralTwinController:
        lin = [m for m in policy.net if isinstance(m, nn.Linear)]
        return cls([m.weight.detach().double().numpy() for m in lin], [m.bias.detach().double().numpy() for m in lin],
                   policy.low.numpy(), policy.high.numpy(), policy.obs_scale.numpy(), policy.horizon,
                   policy.integer, task.twin)

    def reset(self, seed: int | None = None) -> None:
        super().reset(seed)
        self.k = 0

    def __call__(self, k: int, obs: np.ndarray) -> np.ndarray:
        """The control at decision ``k`` for observables ``obs``."""
        h = mlp_forward(self.weights, self.biases,
                        np.concatenate([[k / self.horizon], np.asarray(obs, dtype=float) / self.obs_scale]))
        u = self.low + (self.high - self.low) / (1 + np.exp(-h))
        return np.round(u) if self.integer else u

    def _act(self, obs: Any) -> tuple[np.ndarray, StepInfo]:
        u = self(self.k, obs)
        self.k += 1
        return u, StepInfo()

    def save(self, path: str | Path) -> Path:
        """Write the controller as JSON (weights, bounds, horizon, twin), atomically."""
        data = {"format": "controlkit.twin_controller/1", "twin": self.twin, "horizon": self.horizon,
                "integer": self.integer, "low": self.low.tolist(), "high": self.high.tolist(),
                "obs_scale": self.obs_scale.tolist(), "weights": [w.tolist() for w in self.weights],
                "biases": [b.tolist() for b in self.biases]}
        return atomic_write_text(path, json.dumps(data))

    @classmethod
    def load(cls, path: str | Path, task: TwinTask | None = None) -> NeuralTwinController:
        """Read a controller written by :meth:`save`; with ``task``, check it was trained for that twin and shape.

        Raises:
            ControlkitError: missing/unreadable file, or a controller of another twin, control size or horizon.
        """
        path = Path(path)
        try:
            data = json.loads(path.read_text())
            ctrl = cls(data["weights"], data["biases"], data["low"], data["high"], data["obs_scale"],
                       data["horizon"], data["integer"], data["twin"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ControlkitError(f"controller_file: {str(path)!r} is not a readable twin controller ({exc}).") from None
        if task is not None:
            if ctrl.twin != task.twin:
                raise ControlkitError(f"controller_file: {str(path)!r} was trained for the {ctrl.twin} twin, "
                                      f"not {task.twin}.")
            low, high = task.bounds
            if ctrl.low.shape != low.shape:
                raise ControlkitError(f"controller_file: {str(path)!r} has {ctrl.low.size} controls, the task "
                                      f"{low.size}.")
            if ctrl.horizon != task.decisions:
                raise ControlkitError(f"controller_file: {str(path)!r} was trained for {ctrl.horizon} decisions, "
                                      f"the task has {task.decisions}.")
        return ctrl


__all__ = ["ControllerSettings", "NeuralTwinController", "PolicyNet", "TrainResult", "mlp_forward", "rollout_policy",
           "straight_through_round", "surrogate_cost", "train_controller"]

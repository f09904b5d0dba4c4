"""Learned dynamics ``x_{t+1} = f(x_t, u_t)``: a ReLU MLP with input/output normalisation, trained with one-step
and multi-step (rollout) losses and early stopping on the validation rollout error.

Every hidden neuron's activation can be overridden per call with ``gates`` (coefficients of ReLU and identity),
which is how :mod:`controlkit.models.sparsify` trains the same module with neurons that are ReLU, identity or removed.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt, PositiveInt
from torch import nn

from controlkit.core.errors import ControlkitError
from controlkit.models.data import TransitionData

Gates = Sequence[torch.Tensor]
"""One ``(n_hidden_k, 2)`` tensor per hidden layer: coefficients of ``relu(z)`` and of ``z`` for each neuron."""


class TrainSettings(BaseModel):
    """How a dynamics model is trained (also the ``train:`` block of the ``sparsify`` experiment)."""

    model_config = ConfigDict(extra="forbid")

    epochs: PositiveInt = Field(60, description="Maximum epochs (one epoch = one pass over the train transitions).")
    batch_size: PositiveInt = Field(256, description="Transitions (and rollout windows) per gradient step.")
    lr: float = Field(2e-3, gt=0, description="Adam learning rate of the weights.")
    rollout_steps: PositiveInt = Field(5, description="Length of the multi-step (rollout) loss windows.")
    rollout_weight: float = Field(1.0, ge=0, description="Weight of the rollout loss next to the one-step loss.")
    patience: PositiveInt = Field(
        20, description="Stop after this many epochs without a better val rollout error (only in the second half "
        "of the epochs: the cosine-decayed learning rate gains most at the end).")
    eval_steps: PositiveInt = Field(10, description="Horizon of the validation rollout error used for early stopping.")
    final_lr_fraction: float = Field(
        0.02, gt=0, le=1, description="Cosine decay of the learning rate to this fraction of lr at the last epoch.")
    restart_epochs: NonNegativeInt = Field(
        0, description="train_dense only: after the first cosine cycle, a second one (warm restart from lr) of this "
        "many epochs without early stopping, before the polish; the better cycle's weights are kept (0: none).")
    polish_iterations: NonNegativeInt = Field(
        0, description="After the epochs, full-batch L-BFGS iterations on the same loss (0: none; see polish). "
        "train_dense applies it to the dense model.")
    polish_window_stride: PositiveInt = Field(
        1, description="The polish's rollout loss uses the windows starting every this many steps (they overlap, "
        "so a stride of a few steps keeps the information at a fraction of the cost).")


class DynamicsModel(nn.Module):
    """ReLU MLP on normalised ``[x, u]`` predicting the normalised next state (or its change when ``residual``).

    Args:
        nx: State size.
        nu: Action size.
        hidden: Hidden layer sizes.
        residual: Predict ``x_{t+1} - x_t`` instead of ``x_{t+1}``.
        seed: Seeds the weight initialisation.
    """

    def __init__(self, nx: int, nu: int, hidden: Sequence[int], residual: bool = True, seed: int = 0) -> None:
        super().__init__()
        self.nx, self.nu, self.hidden, self.residual = nx, nu, list(hidden), residual
        sizes = [nx + nu, *self.hidden, nx]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.linears = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        for name, size in (("in_mean", nx + nu), ("in_std", nx + nu), ("out_mean", nx), ("out_std", nx)):
            self.register_buffer(name, torch.zeros(size) if "mean" in name else torch.ones(size))

    @property
    def n_relu(self) -> int:
        """ReLU count of the dense model (every hidden neuron)."""
        return sum(self.hidden)

    def fit_normalisation(self, data: TransitionData) -> None:
        """Set input/output mean and std from the (training) transitions."""
        x, u, xn = data.transitions()
        target = xn - x if self.residual else xn
        xu = np.concatenate([x, u], axis=1)
        for name, arr in (("in", xu), ("out", target)):
            getattr(self, f"{name}_mean").copy_(torch.as_tensor(arr.mean(0)))
            # A constant column (std 0) keeps scale 1 rather than dividing by zero.
            std = arr.std(0)
            getattr(self, f"{name}_std").copy_(torch.as_tensor(np.where(std > 1e-8, std, 1.0)))

    def forward(self, xu: torch.Tensor, gates: Gates | None = None) -> torch.Tensor:
        """Normalised output for raw inputs ``xu``; ``gates=None`` means every hidden neuron is ReLU."""
        h = (xu - self.in_mean) / self.in_std
        for k, lin in enumerate(self.linears):
            h = lin(h)
            if k < len(self.hidden):
                h = torch.relu(h) if gates is None else gates[k][:, 0] * torch.relu(h) + gates[k][:, 1] * h
        return h

    def step(self, x: torch.Tensor, u: torch.Tensor, gates: Gates | None = None) -> torch.Tensor:
        """Raw next state from raw state and action."""
        y = self(torch.cat([x, u], dim=-1), gates) * self.out_std + self.out_mean
        return x + y if self.residual else y

    def rollout(self, x0: torch.Tensor, actions: torch.Tensor, gates: Gates | None = None) -> torch.Tensor:
        """Predicted states ``(B, H, nx)`` after each of ``actions`` ``(B, H, nu)`` from ``x0`` ``(B, nx)``."""
        states, x = [], x0
        for t in range(actions.shape[1]):
            x = self.step(x, actions[:, t], gates)
            states.append(x)
        return torch.stack(states, dim=1)

    def one_step_loss(self, x: torch.Tensor, u: torch.Tensor, xn: torch.Tensor, gates: Gates | None = None):
        """MSE of the normalised prediction (each output dimension weighs the same)."""
        target = ((xn - x if self.residual else xn) - self.out_mean) / self.out_std
        return torch.mean((self(torch.cat([x, u], dim=-1), gates) - target) ** 2)

    def rollout_loss(self, x0: torch.Tensor, actions: torch.Tensor, targets: torch.Tensor,
                     gates: Gates | None = None):
        """MSE of the rolled-out states, each dimension scaled by its std in the data."""
        scale = self.in_std[: self.nx]
        return torch.mean(((self.rollout(x0, actions, gates) - targets) / scale) ** 2)


class GateSource(Protocol):
    """What :func:`fit` needs from a neuron-gating module (see :class:`controlkit.models.sparsify.NeuronGates`)."""

    def sample(self) -> Gates: ...
    def fixed(self) -> Gates: ...
    def penalty(self) -> torch.Tensor: ...
    def parameters(self): ...
    def state_dict(self) -> dict[str, Any]: ...
    def load_state_dict(self, state: dict[str, Any]) -> Any: ...


@dataclasses.dataclass
class FitResult:
    """What one call of :func:`fit` did."""

    epochs: int
    best_val_error: float | None
    history: list[float]
    polish_iterations: int = 0


def _tensors(*arrays: np.ndarray) -> list[torch.Tensor]:
    return [torch.as_tensor(a, dtype=torch.float32) for a in arrays]


@torch.no_grad()
def rollout_mse(model: DynamicsModel, data: TransitionData, steps: int, gates: Gates | None = None) -> float:
    """Mean squared error (raw units) of ``steps``-step open-loop predictions over every window of ``data``.

    The squared error is averaged over all windows, all ``steps`` predicted states and all state dimensions;
    ``steps=1`` is the one-step error.
    """
    x0, actions, targets = _tensors(*data.windows(steps))
    if len(x0) == 0:
        raise ControlkitError(f"train.eval_steps: no trajectory has {steps} transitions to evaluate on.")
    return float(torch.mean((model.rollout(x0, actions, gates) - targets) ** 2))


def fit(
    model: DynamicsModel,
    train: TransitionData,
    val: TransitionData,
    settings: TrainSettings,
    seed: int,
    gates: GateSource | None = None,
    learn_gates: bool = False,
    epochs: int | None = None,
    lr: float | None = None,
    gate_lr: float = 0.05,
    on_epoch: Callable[[int, int], None] | None = None,
    progress: Callable | None = None,
) -> FitResult:
    """Train ``model`` with the one-step loss plus ``rollout_weight`` times the rollout loss.

    Early stopping keeps the weights with the lowest ``eval_steps``-step validation error (under the fixed gates)
    and, in the second half of the epochs, stops after ``patience`` epochs without improvement. While gates are
    learned (``learn_gates``), the architecture changes every batch, so there is no early stopping: every epoch
    runs and the last state stays.

    Args:
        model: The model (normalisation already fitted).
        train: Training trajectories.
        val: Validation trajectories (early stopping).
        settings: Batch size, learning rate, rollout loss, patience.
        seed: Seeds the minibatch order.
        gates: Optional neuron gates; ``None`` trains the dense ReLU network.
        learn_gates: Sample gates (Gumbel-softmax) and train their logits with the sparsity penalty.
        epochs: Overrides ``settings.epochs``.
        lr: Overrides ``settings.lr`` (the weights' starting learning rate).
        gate_lr: Adam learning rate of the gate logits.
        on_epoch: Called as ``on_epoch(epoch, n_epochs)`` before each epoch (e.g. temperature annealing).
        progress: Optional iterator wrapper (``ctx.progress``).
    """
    n_epochs = settings.epochs if epochs is None else epochs
    x, u, xn = _tensors(*train.transitions())
    w0, wa, wt = _tensors(*train.windows(settings.rollout_steps))
    groups = [{"params": list(model.parameters()), "lr": settings.lr if lr is None else lr}]
    if learn_gates:
        groups.append({"params": list(gates.parameters()), "lr": gate_lr})
    opt = torch.optim.Adam(groups)
    decay = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda e: settings.final_lr_fraction + (1 - settings.final_lr_fraction) * 0.5 * (
            1 + np.cos(np.pi * e / max(1, n_epochs - 1))))
    gen = torch.Generator().manual_seed(seed)
    n_batches = max(1, len(x) // settings.batch_size)
    best, best_state, since, history = np.inf, None, 0, []
    epoch_iter = range(n_epochs) if progress is None else progress(range(n_epochs), desc="epochs")
    epoch = 0
    for epoch in epoch_iter:
        if on_epoch is not None:
            on_epoch(epoch, n_epochs)
        model.train()
        order = torch.randperm(len(x), generator=gen)
        for b in range(n_batches):
            idx = order[b * settings.batch_size:(b + 1) * settings.batch_size]
            g = gates.sample() if learn_gates else (gates.fixed() if gates is not None else None)
            loss = model.one_step_loss(x[idx], u[idx], xn[idx], g)
            if settings.rollout_weight > 0 and len(w0):
                widx = torch.randint(len(w0), (len(idx),), generator=gen)
                loss = loss + settings.rollout_weight * model.rollout_loss(w0[widx], wa[widx], wt[widx], g)
            if learn_gates:
                loss = loss + gates.penalty()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        decay.step()
        if learn_gates:
            continue
        model.eval()
        err = rollout_mse(model, val, settings.eval_steps, gates.fixed() if gates is not None else None)
        history.append(err)
        if err < best:
            best, since = err, 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            since += 1
            # The cosine schedule makes most progress late, at small learning rates: no stopping in the first half.
            if since >= settings.patience and 2 * (epoch + 1) >= n_epochs:
                break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return FitResult(epoch + 1, None if best_state is None else float(best), history)


def polish(
    model: DynamicsModel,
    train: TransitionData,
    val: TransitionData,
    settings: TrainSettings,
    gates: GateSource | None = None,
    iterations: int | None = None,
    eval_every: int = 10,
    patience: int = 6,
    history_size: int = 20,
    previous: FitResult | None = None,
) -> FitResult:
    """Full-batch L-BFGS (strong Wolfe line search) on the loss :func:`fit` minimises, after :func:`fit`.

    Minibatch Adam gets a small network close to a minimum quickly but then crawls (its noise floor, the learning
    rate schedule); with ~10k transitions and a few thousand weights the whole-data loss and gradient are cheap,
    and a quasi-Newton method finishes the descent in a few hundred steps. Every ``eval_every`` iterations the
    ``eval_steps`` validation error is measured; the best weights (including the starting ones) are kept, and
    the polish stops after ``patience`` checks without improvement or when L-BFGS has converged.

    Args:
        model: Trained model (changed in place).
        train: Training trajectories (all of them in every loss evaluation).
        val: Validation trajectories.
        settings: Rollout loss length and weight, evaluation horizon.
        gates: Optional fixed neuron forms (``gates.fixed()``).
        iterations: Maximum L-BFGS iterations; ``None``: ``settings.polish_iterations``.
        eval_every: Iterations between validation checks.
        patience: Checks without a better validation error before stopping.
        history_size: L-BFGS memory.
        previous: The :func:`fit` result this continues: its epochs and history carry over.

    Returns:
        The :class:`FitResult` of fit + polish (``polish_iterations`` = L-BFGS iterations run).
    """
    iterations = settings.polish_iterations if iterations is None else iterations
    g = gates.fixed() if gates is not None else None
    x, u, xn = _tensors(*train.transitions())
    w0, wa, wt = (a[::settings.polish_window_stride] for a in _tensors(*train.windows(settings.rollout_steps)))
    use_rollout = settings.rollout_weight > 0 and len(w0) > 0
    opt = torch.optim.LBFGS(model.parameters(), lr=1.0, max_iter=eval_every, history_size=history_size,
                            tolerance_grad=1e-9, tolerance_change=1e-12, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad(set_to_none=True)
        loss = model.one_step_loss(x, u, xn, g)
        if use_rollout:
            loss = loss + settings.rollout_weight * model.rollout_loss(w0, wa, wt, g)
        loss.backward()
        return loss

    # LBFGS keeps its iteration count in the state of the first parameter.
    lbfgs_state = opt.state[next(iter(model.parameters()))]
    model.eval()
    history = list(previous.history) if previous is not None else []
    best = rollout_mse(model, val, settings.eval_steps, g)
    best_state, since, done = copy.deepcopy(model.state_dict()), 0, 0
    while done < iterations and since < patience:
        before = lbfgs_state.get("n_iter", 0)
        # A generous evaluation budget, so that fewer iterations than asked means convergence, not the budget.
        opt.param_groups[0].update(max_iter=min(eval_every, iterations - done), max_eval=4 * eval_every)
        opt.step(closure)
        ran = lbfgs_state["n_iter"] - before
        done += ran
        err = rollout_mse(model, val, settings.eval_steps, g)
        history.append(err)
        if err < best:
            best, since, best_state = err, 0, copy.deepcopy(model.state_dict())
        else:
            since += 1
        if ran < opt.param_groups[0]["max_iter"]:  # converged (gradient or change below tolerance)
            break
    model.load_state_dict(best_state)
    return FitResult(previous.epochs if previous is not None else 0, float(best), history, done)


def train_dense(
    train: TransitionData,
    val: TransitionData,
    hidden: Sequence[int],
    settings: TrainSettings,
    seed: int,
    residual: bool = True,
    progress: Callable | None = None,
) -> tuple[DynamicsModel, FitResult]:
    """Build a dense ReLU model for ``train``'s dimensions, fit its normalisation, train it (early stopping), give
    it a warm restart if ``settings.restart_epochs``, then polish it if ``settings.polish_iterations``."""
    model = DynamicsModel(train.nx, train.nu, hidden, residual=residual, seed=seed)
    model.fit_normalisation(train)
    result = fit(model, train, val, settings, seed=seed + 1, progress=progress)
    if settings.restart_epochs:
        first = copy.deepcopy(model.state_dict())
        no_stop = settings.model_copy(update={"patience": settings.restart_epochs})
        again = fit(model, train, val, no_stop, seed=seed + 2, epochs=settings.restart_epochs, progress=progress)
        if again.best_val_error >= result.best_val_error:
            model.load_state_dict(first)
        result = FitResult(result.epochs + again.epochs, min(result.best_val_error, again.best_val_error),
                           result.history + again.history)
    if settings.polish_iterations:
        result = polish(model, train, val, settings, previous=result)
    return model, result


__all__ = [
    "DynamicsModel", "FitResult", "GateSource", "Gates", "TrainSettings", "fit", "polish", "rollout_mse", "train_dense",
]

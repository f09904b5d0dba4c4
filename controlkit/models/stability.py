"""ReLU stability over the planning box: fewer switching neurons, so fewer binaries in the MILP.

A sparse ReLU dynamics model compiled into a MILP needs one binary per ReLU neuron and planned step that *can*
switch over the planning box (the states reachable from ``x0`` within the horizon under any action of the action
box). Sparsification bounds the ReLUs per step; it does not make them stable: on the shipped 16-ReLU push model
154 of 160 slots at H = 10 can switch. Xiao, Tjeng, Shafiullah & Madry (ICLR 2019, "Training for faster adversarial
robustness verification via inducing ReLU stability") add a loss on the pre-activation bounds of each training
input's box that pushes every ReLU to be either always on or always off there; BaB-ND trains its pushing models
with an interval (IBP) loss for the same reason.

:func:`stabilise` fine-tunes a :class:`~controlkit.models.network.CompactNetwork` (forms fixed: ReLU, identity) on its
transitions with the one-step and rollout losses plus ``weight`` times :func:`instability`, computed on the bounds
the planner itself would see: from start states of the data, the zonotope (DeepZ) propagation of
:func:`zonotope_preactivations` through ``horizon`` steps of the network with the whole action box at every step
(the same relaxation as :func:`controlkit.planning.milp.bounds.symbolic`, without its interval intersection and noise
reduction, so never tighter). The penalty per ReLU slot is ``relu(min(u, -l)) / (u - l)``: zero for a stable
neuron, up to 1/2 for one whose interval straddles 0 in the middle, scale-free, and smallest change to become
stable. A budget leaves some slots free: ``free_per_step`` (the least stable slots of each step) or
``free_neurons`` (the neurons whose linearisation costs most accuracy, :func:`relu_importance`).

Contact neurons must still switch, so measure what the penalty costs next to the binaries: the object's rollout
error (:func:`rollout_error` with ``dims``), the motion the model invents without contact (:func:`phantom_motion`)
and, for the binaries, :func:`sampled_switching` (a lower bound under any bounds). On the push model every recipe
that reached 40 binaries or fewer at H = 10 lost the contact model and the closed loop
(``benchmarks/relu_stability.py``, docs/results/sparse_dynamics.md).
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, NonNegativeFloat, NonNegativeInt, PositiveInt

from controlkit.core.errors import ControlkitError
from controlkit.models.data import TransitionData
from controlkit.models.network import CompactNetwork


class StabilitySettings(BaseModel):
    """The stability fine-tune: penalty weight, budget and planning box, loss weights, and the optimiser."""

    model_config = ConfigDict(extra="forbid")

    weight: NonNegativeFloat = Field(1.0, description="Weight of the instability penalty (0: plain fine-tune).")
    horizon: PositiveInt = Field(10, description="Planned steps over which the penalty's bounds are propagated.")
    free_per_step: NonNegativeInt = Field(
        0, description="ReLU slots per planned step the penalty leaves alone: per start state and step, the this "
        "many least stable slots carry no penalty (0: every slot is penalised). Contact neurons must switch; "
        "a budget lets the model keep a few switching neurons per step and pushes the others to be stable.")
    free_neurons: NonNegativeInt = Field(
        0, description="ReLU neurons the penalty leaves alone at every step: the this many whose replacement by an "
        "identity costs the most rollout accuracy on the training data (see relu_importance). The ones the "
        "model needs to switch (contact) keep switching; the penalty pushes the others to be stable.")
    importance_dims: list[NonNegativeInt] | None = Field(
        None, description="State coordinates whose rollout error ranks the neurons for free_neurons (default: all), "
        "e.g. the pushed object's position: the neurons that model contact rather than the pusher's own motion.")
    warmup: float = Field(
        0.0, ge=0, lt=1, description="Share of the fine-tune over which the penalty weight ramps up linearly from 0 "
        "(0: full weight from the first step).")
    rollout_weight: NonNegativeFloat = Field(
        1.0, description="Weight of the rollout loss (the one-step loss has weight 1).")
    state_weights: list[NonNegativeFloat] | None = Field(
        None, description="Per state coordinate weights of the accuracy losses (default: all 1), e.g. more weight "
        "on the pushed object's position, whose error decides the plans.")
    epochs: PositiveInt = Field(20, description="Fine-tuning epochs over the training windows.")
    lr: float = Field(1e-3, gt=0, description="Adam learning rate (cosine-decayed to 0 over the fine-tune).")
    batch_size: PositiveInt = Field(256, description="Windows per minibatch of the accuracy loss.")
    bound_batch: PositiveInt = Field(32, description="Start states per minibatch of the penalty.")
    rollout_steps: PositiveInt = Field(8, description="Steps of the rollout loss (and of the windows).")


def _torch_layers(net: CompactNetwork) -> tuple[list[torch.nn.Parameter], list[torch.nn.Parameter],
                                                 list[torch.Tensor]]:
    weights = [torch.nn.Parameter(torch.tensor(w, dtype=torch.float64)) for w in net.weights]
    biases = [torch.nn.Parameter(torch.tensor(b, dtype=torch.float64)) for b in net.biases]
    masks = [torch.as_tensor(m) for m in net.relu_masks]
    return weights, biases, masks


def _step(weights, biases, masks, x: torch.Tensor, u: torch.Tensor, residual: bool) -> torch.Tensor:
    h = torch.cat([x, u], dim=-1)
    for k, (w, b) in enumerate(zip(weights, biases)):
        h = h @ w.T + b
        if k < len(masks):
            h = torch.where(masks[k], torch.relu(h), h)
    return x + h if residual else h


def zonotope_preactivations(weights, biases, masks, x0: torch.Tensor, u_low: np.ndarray, u_high: np.ndarray,
                            horizon: int, residual: bool = True) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Lower and upper pre-activation bounds ``(B, n_relu_k)`` of every ReLU layer and step, from states ``x0``.

    Affine forms ``c + G e`` (``e`` in ``[-1, 1]``): one generator per action coordinate and step (correlations
    across steps survive, as do ``object - pusher`` and the residual ``x + f``), plus one fresh generator per
    unstable ReLU (the parallel relaxation ``lam a + mu +- mu``, ``lam = u / (u - l)``, ``mu = -lam l / 2``).
    Differentiable in the weights (torch autograd through the relaxations).

    Returns:
        One ``(lo, hi)`` pair per step and hidden layer, restricted to that layer's ReLU neurons, in step order.
    """
    b, nx = x0.shape
    nu = len(u_low)
    u_mid = torch.as_tensor((np.asarray(u_low) + np.asarray(u_high)) / 2, dtype=x0.dtype)
    u_rad = torch.as_tensor((np.asarray(u_high) - np.asarray(u_low)) / 2, dtype=x0.dtype)
    n_act = horizon * nu
    c_x, g_x = x0, torch.zeros(b, nx, n_act, dtype=x0.dtype)
    out = []
    for t in range(horizon):
        g_u = torch.zeros(b, nu, g_x.shape[2], dtype=x0.dtype)
        g_u[:, torch.arange(nu), t * nu + torch.arange(nu)] = u_rad
        c, g = torch.cat([c_x, u_mid.expand(b, nu)], dim=1), torch.cat([g_x, g_u], dim=1)
        for k, (w, bias) in enumerate(zip(weights, biases)):
            c, g = c @ w.T + bias, torch.einsum("oi,big->bog", w, g)
            if k == len(masks):
                break
            r = g.abs().sum(dim=2)
            lo, hi = c - r, c + r
            m = masks[k]
            out.append((lo[:, m], hi[:, m]))
            unstable = m & (lo < 0) & (hi > 0)
            active = ~m | (lo >= 0)
            lam_u = hi / (hi - lo).clamp_min(1e-12)
            lam = torch.where(unstable, lam_u, active.to(c.dtype))
            mu = torch.where(unstable, -lam_u * lo / 2, torch.zeros_like(lo))
            c, g = lam * c + mu, lam[:, :, None] * g
            # one fresh noise column per ReLU neuron of the layer (zero where stable: harmless, batch-uniform)
            g = torch.cat([g, torch.diag_embed(mu)[:, :, m]], dim=2)
        if residual:
            pad = g.shape[2] - g_x.shape[2]
            c, g = c_x + c, torch.cat([g_x, torch.zeros(b, nx, pad, dtype=x0.dtype)], dim=2) + g
        c_x, g_x = c, g
    return out


def instability(bounds: list[tuple[torch.Tensor, torch.Tensor]], free_per_step: int = 0, horizon: int = 1,
                exempt: torch.Tensor | None = None) -> torch.Tensor:
    """Mean over start states of the summed ``relu(min(u, -l)) / (u - l)`` over the ReLU slots (0 = all stable).

    Args:
        bounds: :func:`zonotope_preactivations`' pairs, in step order (the same number of layers per step).
        free_per_step: Per start state and step, the this many largest terms (the least stable slots) are left
            out: the penalty then only asks for at most ``free_per_step`` switching neurons per step.
        horizon: Steps in ``bounds`` (needed to group the slots by step).
        exempt: Boolean ``(n_relu,)`` (ReLU neurons in layer order): these neurons carry no penalty at any step.
    """
    per = len(bounds) // horizon
    total = torch.zeros((), dtype=bounds[0][0].dtype)
    for t in range(horizon):
        lo = torch.cat([b[0] for b in bounds[t * per:(t + 1) * per]], dim=1)
        hi = torch.cat([b[1] for b in bounds[t * per:(t + 1) * per]], dim=1)
        step = torch.relu(torch.minimum(hi, -lo)) / (hi - lo).clamp_min(1e-9)
        if exempt is not None:
            step = step[:, ~exempt]
        if free_per_step > 0:
            step = step.sort(dim=1, descending=True).values[:, free_per_step:]
        total = total + step.sum(dim=1).mean()
    return total


def relu_importance(net: CompactNetwork, data: TransitionData, steps: int, dims: Any = None) -> np.ndarray:
    """Per ReLU neuron (layer order), the ``steps``-step rollout error of ``net`` on ``data`` (over the state
    coordinates ``dims``, default all) with that neuron made an identity, over the error of ``net``: how much the
    model needs the neuron to switch."""
    base = rollout_error(net, data, steps, dims)
    out = []
    for k, mask in enumerate(net.relu_masks):
        for i in np.flatnonzero(mask):
            masks = [m.copy() for m in net.relu_masks]
            masks[k][i] = False
            linear = CompactNetwork(net.weights, net.biases, masks, net.nx, net.nu, net.residual)
            out.append(rollout_error(linear, data, steps, dims) / max(base, 1e-300))
    return np.asarray(out)


def unstable_count(bounds: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
    """Unstable ReLU slots per start state ``(B,)`` under these bounds."""
    return torch.cat([((lo < 0) & (hi > 0)) for lo, hi in bounds], dim=1).sum(dim=1)


def _windows(data: TransitionData, steps: int) -> tuple[torch.Tensor, ...]:
    x0, actions, targets = data.windows(steps)
    if len(x0) == 0:
        raise ControlkitError(f"rollout_steps: no trajectory has {steps} transitions.")
    return tuple(torch.as_tensor(np.asarray(a), dtype=torch.float64) for a in (x0, actions, targets))


def _rollout(weights, biases, masks, x0, actions, residual):
    xs, x = [], x0
    for t in range(actions.shape[1]):
        x = _step(weights, biases, masks, x, actions[:, t], residual)
        xs.append(x)
    return torch.stack(xs, dim=1)


def rollout_error(net: CompactNetwork, data: TransitionData, steps: int, dims: Any = None) -> float:
    """Mean squared ``steps``-step open-loop prediction error (raw units) over every window of ``data``, over the
    state coordinates ``dims`` (default all; e.g. ``[0, 1]`` for the pushed object's position alone)."""
    x0, actions, targets = (np.asarray(a) for a in data.windows(steps))
    pred = np.stack([net.rollout(x, a)[1:] for x, a in zip(x0, actions)])
    keep = slice(None) if dims is None else list(dims)
    return float(np.mean((pred[..., keep] - targets[..., keep]) ** 2))


def sampled_switching(net: CompactNetwork, x0: Any, u_low: Any, u_high: Any, horizon: int, samples: int = 4000,
                      seed: int = 0) -> np.ndarray:
    """Per step, the ReLU neurons seen both active and inactive over ``samples`` action sequences from ``x0``.

    Each must be a binary under *any* sound bounds, however tight (LP, exact): a lower bound on the binaries a
    planner can reach without changing the model. A quarter of the sequences are vertices of the action box (bang-bang
    actions reach furthest), the rest uniform.

    Returns:
        ``(horizon,)`` counts.
    """
    u_low, u_high = np.asarray(u_low, dtype=np.float64), np.asarray(u_high, dtype=np.float64)
    rng = np.random.default_rng(seed)
    u = rng.uniform(u_low, u_high, (samples, horizon, len(u_low)))
    corner = samples // 4
    u[:corner] = np.where(rng.random(u[:corner].shape) < 0.5, u_low, u_high)
    x = np.repeat(np.asarray(x0, dtype=np.float64)[None], samples, axis=0)
    out = np.zeros(horizon, dtype=int)
    for t in range(horizon):
        h = np.concatenate([x, u[:, t]], axis=1)
        for k, (w, b) in enumerate(zip(net.weights, net.biases)):
            h = h @ w.T + b
            if k == len(net.relu_masks):
                break
            pre = h[:, net.relu_masks[k]]
            out[t] += int(((pre > 0).any(axis=0) & (pre <= 0).any(axis=0)).sum())
            h = np.where(net.relu_masks[k], np.maximum(h, 0.0), h)
        x = x + h if net.residual else h
    return out


def phantom_motion(net: CompactNetwork, data: TransitionData, dims: Any, still: float = 1e-3) -> float:
    """Mean one-step predicted displacement of the coordinates ``dims`` (e.g. a pushed object's position) over the
    transitions of ``data`` where they really move less than ``still``: motion the model invents without contact.

    A stability penalty can buy stable neurons by making a contact neuron always active, so that the object moves
    whenever the pusher does; planners then plan pushes that push nothing. This measures that failure directly.
    """
    s, a, s_next = data.transitions()
    keep = list(dims)
    resting = np.linalg.norm((s_next - s)[:, keep], axis=1) < still
    if not resting.any():
        raise ControlkitError(f"phantom_motion: no transition has coordinates {keep} moving less than {still}.")
    moved = (net.step(s[resting], a[resting]) - s[resting])[:, keep]
    return float(np.linalg.norm(moved, axis=1).mean())


def stabilise(net: CompactNetwork, train: TransitionData, settings: StabilitySettings, u_low: Any, u_high: Any,
              seed: int, val: TransitionData | None = None) -> tuple[CompactNetwork, list[dict[str, float]]]:
    """Fine-tune ``net``'s weights (forms fixed) with the accuracy losses plus the instability penalty.

    Args:
        net: The sparse network (world frame, as the planners use it).
        train: Transitions in the network's state coordinates.
        settings: Penalty weight, budget and horizon, loss weights, optimiser.
        u_low: Action lower bounds of the planning box.
        u_high: Action upper bounds.
        seed: Seeds the minibatch order.
        val: Optional held-out transitions; each epoch's ``val_rollout`` is then recorded.

    Returns:
        The fine-tuned network (a new object; ``net`` is unchanged) and one row per epoch (losses, mean penalty,
        mean unstable slots of the training bound batch, validation rollout error).
    """
    if (net.nx, net.nu) != (train.nx, train.nu):
        raise ControlkitError(f"stabilise: the data has {train.nx} states and {train.nu} actions, the network "
                              f"{net.nx} and {net.nu}.")
    if settings.state_weights is not None and len(settings.state_weights) != net.nx:
        raise ControlkitError(f"state_weights: need one weight per state coordinate ({net.nx}), got "
                              f"{len(settings.state_weights)}.")
    if settings.free_per_step + settings.free_neurons >= net.n_relu and settings.weight > 0:
        raise ControlkitError(f"free_per_step: with free_neurons, must leave some of the network's {net.n_relu} "
                              f"ReLU neurons penalised, got free_per_step={settings.free_per_step}, "
                              f"free_neurons={settings.free_neurons}.")
    if settings.importance_dims is not None and (not settings.importance_dims
                                                 or max(settings.importance_dims) >= net.nx):
        raise ControlkitError(f"importance_dims: need state coordinates in 0..{net.nx - 1}, got "
                              f"{settings.importance_dims}.")
    if settings.free_neurons > net.n_relu:
        raise ControlkitError(f"free_neurons: the network has {net.n_relu} ReLU neurons, got "
                              f"{settings.free_neurons}.")
    u_low, u_high = np.asarray(u_low, dtype=np.float64), np.asarray(u_high, dtype=np.float64)
    exempt = None
    if settings.free_neurons:
        importance = relu_importance(net, train, settings.rollout_steps, settings.importance_dims)
        exempt = torch.zeros(net.n_relu, dtype=torch.bool)
        exempt[torch.as_tensor(np.argsort(-importance, kind="stable")[:settings.free_neurons])] = True
    weights, biases, masks = _torch_layers(net)
    x0, actions, targets = _windows(train, settings.rollout_steps)
    # per-dimension scale of one step's change, so that every state coordinate weighs alike in the losses
    scale = (targets[:, 0] - x0).std(dim=0).clamp_min(1e-6)
    dim_w = torch.ones(net.nx, dtype=torch.float64) if settings.state_weights is None else torch.tensor(
        settings.state_weights, dtype=torch.float64)
    dim_w = dim_w / dim_w.mean()  # the weights shape the loss, not its size: the penalty weight keeps its meaning
    starts = torch.as_tensor(train.states[:, :-1].reshape(-1, train.nx)[
        (np.arange(train.states.shape[1] - 1)[None, :] < train.lengths[:, None]).reshape(-1)], dtype=torch.float64)
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam([*weights, *biases], lr=settings.lr)
    n = len(x0)
    n_steps = settings.epochs * -(-n // settings.batch_size)
    # cosine decay over the whole fine-tune: the late, small steps settle the accuracy the penalty disturbed
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, n_steps)
    history = []
    step = 0
    for epoch in range(settings.epochs):
        order = torch.randperm(n, generator=gen)
        sums = {"loss_one_step": 0.0, "loss_rollout": 0.0, "penalty": 0.0, "unstable": 0.0}
        batches = 0
        for i in range(0, n, settings.batch_size):
            idx = order[i:i + settings.batch_size]
            pred = _rollout(weights, biases, masks, x0[idx], actions[idx], net.residual)
            sq = ((pred - targets[idx]) / scale).pow(2) * dim_w
            one, roll = sq[:, 0].mean(), sq.mean()
            loss = one + settings.rollout_weight * roll
            pen = torch.zeros((), dtype=torch.float64)
            # the warm-up ramps the penalty in, so the first steps do not trade accuracy for stability blindly
            ramp = min(1.0, (step + 1) / (settings.warmup * n_steps)) if settings.warmup > 0 else 1.0
            if settings.weight > 0:
                pick = torch.randint(len(starts), (settings.bound_batch,), generator=gen)
                bounds = zonotope_preactivations(weights, biases, masks, starts[pick], u_low, u_high,
                                                 settings.horizon, net.residual)
                pen = instability(bounds, settings.free_per_step, settings.horizon, exempt)
                loss = loss + ramp * settings.weight * pen
                sums["unstable"] += float(unstable_count(bounds).double().mean())
            opt.zero_grad()
            loss.backward()
            opt.step()
            schedule.step()
            step += 1
            sums["loss_one_step"] += float(one.detach())
            sums["loss_rollout"] += float(roll.detach())
            sums["penalty"] += float(pen.detach())
            batches += 1
        row = {"epoch": epoch + 1, **{k: v / batches for k, v in sums.items()}}
        out = _export(net, weights, biases)
        if val is not None:
            row["val_rollout"] = rollout_error(out, val, settings.rollout_steps)
        history.append(row)
    return _export(net, weights, biases), history


def _export(net: CompactNetwork, weights, biases) -> CompactNetwork:
    return CompactNetwork([w.detach().numpy().copy() for w in weights], [b.detach().numpy().copy() for b in biases],
                          [m.copy() for m in net.relu_masks], net.nx, net.nu, net.residual,
                          copy.deepcopy(dict(net.metadata)))


__all__ = ["StabilitySettings", "instability", "phantom_motion", "relu_importance", "rollout_error",
           "sampled_switching", "stabilise", "unstable_count", "zonotope_preactivations"]

"""The canonical MPC problem every planner here solves, validated once and shared by MILP and sampling planners.

minimize  sum_{t=1..H} sum_i w_{t,i} |x_{t,i} - g_{t,i}|  +  lambda sum_{t=0..H-1} sum_j |u_{t,j}|
s.t.      x_{t+1} = x_t + f([x_t, u_t])  (residual)  or  f([x_t, u_t]),  u_low <= u_t <= u_high,
          x_low <= x_t <= x_high, A x_t <= b, x_t outside every keep-out box (t = 1..H),

with w_{t,i} = q_i for t < H and q_i * terminal_weight at t = H. A keep-out box with a ``penalty`` is soft: instead
of the constraint, the objective adds ``penalty * depth(x_t)`` per step (the depth of x_t inside the box, 0 outside).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from controlkit.core.errors import ControlkitError
from controlkit.models.network import CompactNetwork


@dataclasses.dataclass(frozen=True)
class KeepOut:
    """An axis-aligned box the state must stay out of, on chosen state coordinates.

    Attributes:
        coords: State indices the box lives in (e.g. ``(0, 1)`` for a planar position).
        low: Lower corner, one value per coordinate.
        high: Upper corner, one value per coordinate.
        penalty: ``None`` (default): a hard constraint. A number: a soft one, the objective adds ``penalty`` times
            the depth inside the box (the distance to its nearest side) per step. With a penalty larger than the
            objective can gain by entering, the optimum stays outside whenever it can (an exact penalty); when no
            plan can (the state already deep inside), the plan leaves by the shortest way instead of having none.
    """

    coords: tuple[int, ...]
    low: tuple[float, ...]
    high: tuple[float, ...]
    penalty: float | None = None


def as_network(model: Any, nx: int | None = None, nu: int | None = None, residual: bool | None = None) -> CompactNetwork:
    """Accept a :class:`CompactNetwork` or a torch ``nn.Sequential`` of Linear/ReLU/Identity layers."""
    if isinstance(model, CompactNetwork):
        if residual is not None and residual != model.residual:
            model = dataclasses.replace(model, residual=residual)
        return model
    try:
        import torch.nn as nn
    except ImportError:  # pragma: no cover - torch is a hard dependency
        nn = None
    if nn is not None and isinstance(model, nn.Sequential):
        if nx is None or nu is None:
            raise ControlkitError("model: a torch Sequential needs nx= and nu= (state and action sizes).")
        return CompactNetwork.from_sequential(model, nx=nx, nu=nu, residual=True if residual is None else residual)
    raise ControlkitError(
        f"model: got {type(model).__name__}; valid: controlkit.models.network.CompactNetwork or torch.nn.Sequential."
    )


def _vector(name: str, value: Any, n: int, default: float | None = None, allow_inf: bool = False) -> np.ndarray:
    if value is None:
        if default is None:
            raise ControlkitError(f"{name}: required, a vector of length {n}.")
        value = default
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim == 0:
        arr = np.full(n, float(arr))
    if arr.shape != (n,):
        raise ControlkitError(f"{name}: shape {arr.shape} does not match the network, need ({n},).")
    if np.isnan(arr).any() or (not allow_inf and not np.isfinite(arr).all()):
        raise ControlkitError(f"{name}: must be finite numbers, got {arr.tolist()}.")
    return arr


@dataclasses.dataclass
class MPCProblem:
    """Validated problem data (see the module docstring for the formulation)."""

    net: CompactNetwork
    horizon: int
    u_low: np.ndarray
    u_high: np.ndarray
    x_low: np.ndarray
    x_high: np.ndarray
    state_weights: np.ndarray
    control_weight: float
    terminal_weight: float
    a_state: np.ndarray  # (m, nx) rows of A x_t <= b
    b_state: np.ndarray
    keep_out: tuple[KeepOut, ...]

    @property
    def nx(self) -> int:
        return self.net.nx

    @property
    def nu(self) -> int:
        return self.net.nu

    @property
    def step_weights(self) -> np.ndarray:
        """``(H, nx)`` weights ``w_{t,i}`` for states ``x_1..x_H``."""
        w = np.tile(self.state_weights, (self.horizon, 1))
        w[-1] *= self.terminal_weight
        return w

    def check_state(self, x0: Any) -> np.ndarray:
        """``x0`` as a finite float vector of the network's state size."""
        return _vector("x0", x0, self.nx)

    def check_goal(self, goal: Any) -> np.ndarray:
        """The goal expanded to ``(H, nx)``: one goal for all steps, or one per step ``t = 1..H``."""
        g = np.asarray(goal, dtype=np.float64)
        if g.shape == (self.nx,):
            g = np.tile(g, (self.horizon, 1))
        if g.shape != (self.horizon, self.nx):
            raise ControlkitError(
                f"goal: shape {g.shape} does not match the network, need ({self.nx},) or ({self.horizon}, {self.nx})."
            )
        if not np.isfinite(g).all():
            raise ControlkitError("goal: must be finite numbers (no NaN or inf).")
        return g

    def cost(self, states: np.ndarray, actions: np.ndarray, goal: np.ndarray) -> np.ndarray:
        """The objective for ``states`` ``(..., H+1, nx)`` and ``actions`` ``(..., H, nu)``; goal ``(H, nx)``."""
        track = (self.step_weights * np.abs(states[..., 1:, :] - goal)).sum(axis=(-1, -2))
        return track + self.control_weight * np.abs(actions).sum(axis=(-1, -2))

    def violation(self, states: np.ndarray, hard_only: bool = False) -> np.ndarray:
        """Total constraint violation of ``states`` ``(..., H+1, nx)`` over ``x_1..x_H`` (0 when feasible).

        Soft keep-out boxes count too, unless ``hard_only``: then only what makes a plan infeasible counts.
        """
        xs = states[..., 1:, :]
        v = (np.maximum(self.x_low - xs, 0) + np.maximum(xs - self.x_high, 0)).sum(axis=(-1, -2))
        if len(self.b_state):
            v = v + np.maximum(xs @ self.a_state.T - self.b_state, 0).sum(axis=(-1, -2))
        for box in self.keep_out:
            if not (hard_only and box.penalty is not None):
                v = v + box_depth(box, xs)
        return v

    def objective(self, states: np.ndarray, actions: np.ndarray, goal: np.ndarray) -> np.ndarray:
        """:meth:`cost` plus the soft keep-out penalties: what MIP-MPC minimises."""
        c = self.cost(states, actions, goal)
        for box in self.keep_out:
            if box.penalty is not None:
                c = c + box.penalty * box_depth(box, states[..., 1:, :])
        return c


def box_depth(box: KeepOut, xs: np.ndarray) -> np.ndarray:
    """Summed depth of the states ``xs`` ``(..., T, nx)`` inside ``box`` (0 for a state outside it)."""
    c = xs[..., list(box.coords)]
    depth = np.minimum(c - np.asarray(box.low), np.asarray(box.high) - c).min(axis=-1)
    return np.maximum(depth, 0).sum(axis=-1)


def make_problem(
    model: Any,
    horizon: int,
    u_low: Any,
    u_high: Any,
    x_low: Any = None,
    x_high: Any = None,
    residual: bool | None = None,
    state_weights: Any = None,
    control_weight: float = 0.0,
    terminal_weight: float = 1.0,
    state_constraints: tuple[Any, Any] | None = None,
    keep_out: Sequence[KeepOut] = (),
    nx: int | None = None,
    nu: int | None = None,
) -> MPCProblem:
    """Validate the constructor arguments shared by every planner; raise :class:`ControlkitError` on bad input."""
    net = as_network(model, nx=nx, nu=nu, residual=residual)
    if int(horizon) != horizon or horizon < 1:
        raise ControlkitError(f"horizon: must be a positive integer, got {horizon!r}.")
    u_lo, u_hi = _vector("u_low", u_low, net.nu), _vector("u_high", u_high, net.nu)
    if (u_lo > u_hi).any():
        raise ControlkitError(f"u_low/u_high: u_low > u_high at indices {np.flatnonzero(u_lo > u_hi).tolist()}.")
    x_lo = _vector("x_low", x_low, net.nx, default=-np.inf, allow_inf=True)
    x_hi = _vector("x_high", x_high, net.nx, default=np.inf, allow_inf=True)
    if (x_lo > x_hi).any():
        raise ControlkitError(f"x_low/x_high: x_low > x_high at indices {np.flatnonzero(x_lo > x_hi).tolist()}.")
    q = _vector("state_weights", state_weights, net.nx, default=1.0)
    if (q < 0).any():
        raise ControlkitError("state_weights: must be >= 0.")
    for name, val in (("control_weight", control_weight), ("terminal_weight", terminal_weight)):
        if not np.isfinite(val) or val < 0:
            raise ControlkitError(f"{name}: must be a finite number >= 0, got {val!r}.")
    if state_constraints is None:
        a, b = np.zeros((0, net.nx)), np.zeros(0)
    else:
        a, b = (np.atleast_2d(np.asarray(v, dtype=np.float64)) for v in state_constraints)
        b = b.reshape(-1)
        if a.shape != (b.shape[0], net.nx) or not (np.isfinite(a).all() and np.isfinite(b).all()):
            raise ControlkitError(f"state_constraints: need finite (A, b) with A of shape (m, {net.nx}) and b (m,).")
    boxes = []
    for box in keep_out:
        box = box if isinstance(box, KeepOut) else KeepOut(*box)
        coords = tuple(int(c) for c in box.coords)
        lo, hi = np.asarray(box.low, float), np.asarray(box.high, float)
        if not coords or lo.shape != (len(coords),) or hi.shape != lo.shape or not all(0 <= c < net.nx for c in coords):
            raise ControlkitError(f"keep_out: coords must be state indices in [0, {net.nx}) with one low/high each.")
        if (lo >= hi).any():
            raise ControlkitError("keep_out: need low < high on every coordinate.")
        if box.penalty is not None and not (np.isfinite(box.penalty) and box.penalty > 0):
            raise ControlkitError(f"keep_out: penalty must be a finite number > 0 or None (hard), got {box.penalty!r}.")
        if not (np.isfinite(x_lo[list(coords)]).all() and np.isfinite(x_hi[list(coords)]).all()):
            raise ControlkitError(
                f"keep_out: needs finite x_low/x_high on coordinates {list(coords)} (they bound its big-M)."
            )
        penalty = None if box.penalty is None else float(box.penalty)
        boxes.append(KeepOut(coords, tuple(lo.tolist()), tuple(hi.tolist()), penalty))
    return MPCProblem(
        net=net,
        horizon=int(horizon),
        u_low=u_lo,
        u_high=u_hi,
        x_low=x_lo,
        x_high=x_hi,
        state_weights=q,
        control_weight=float(control_weight),
        terminal_weight=float(terminal_weight),
        a_state=a,
        b_state=b,
        keep_out=tuple(boxes),
    )

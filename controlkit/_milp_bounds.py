"""Sound pre-activation bounds for every neuron at every step of the unrolled network.

Interval bound propagation (IBP) starts from the point ``x0`` and the action box and walks the layers and steps;
state boxes are intersected with the user's state bounds, which is sound because the MILP enforces those bounds
on every feasible point. :func:`tighten_lp` then shrinks unstable neurons' bounds by optimising each
pre-activation over the LP relaxation of the MILP (HiGHS), re-running IBP after each tightened layer.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from controlkit._mpc_problem import MPCProblem

# Neuron classes in the compiled MILP.
INACTIVE, LINEAR, UNSTABLE = 0, 1, 2


@dataclasses.dataclass
class Bounds:
    """Pre-activation bounds ``pre_lo[t][k]``/``pre_hi[t][k]`` (hidden layer k at step t) and state boxes.

    Attributes:
        pre_lo: ``H`` lists of one array per hidden layer.
        pre_hi: Same shapes as ``pre_lo``.
        x_lo: ``(H + 1, nx)`` state lower bounds (row 0 is ``x0``).
        x_hi: ``(H + 1, nx)`` state upper bounds.
        empty: True when some state box is empty: the problem is infeasible for every action sequence.
    """

    pre_lo: list[list[np.ndarray]]
    pre_hi: list[list[np.ndarray]]
    x_lo: np.ndarray
    x_hi: np.ndarray
    empty: bool = False

    def classes(self, problem: MPCProblem) -> list[list[np.ndarray]]:
        """Per step and hidden layer: INACTIVE (ReLU, hi <= 0), LINEAR (identity or ReLU with lo >= 0), UNSTABLE."""
        out = []
        for lo_t, hi_t in zip(self.pre_lo, self.pre_hi):
            row = []
            for mask, lo, hi in zip(problem.net.relu_masks, lo_t, hi_t):
                cls = np.full(mask.shape, LINEAR, dtype=np.int8)
                cls[mask & (hi <= 0)] = INACTIVE
                cls[mask & (lo < 0) & (hi > 0)] = UNSTABLE
                row.append(cls)
            out.append(row)
        return out

    def count(self, problem: MPCProblem) -> dict[str, int]:
        """Numbers of unstable (binary), stably active, stably inactive ReLU neurons and identity neurons."""
        cls = self.classes(problem)
        masks = problem.net.relu_masks
        unstable = sum(int((c == UNSTABLE).sum()) for row in cls for c in row)
        inactive = sum(int((c == INACTIVE).sum()) for row in cls for c in row)
        relu = problem.horizon * problem.net.n_relu
        return {
            "binaries": unstable,
            "stable_active": relu - unstable - inactive,
            "stable_inactive": inactive,
            "identity": problem.horizon * sum(int((~m).sum()) for m in masks),
        }


def _affine_box(w: np.ndarray, b: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mid, rad = (lo + hi) / 2, (hi - lo) / 2
    c, r = w @ mid + b, np.abs(w) @ rad
    return c - r, c + r


def ibp(problem: MPCProblem, x0: np.ndarray, prior: Bounds | None = None) -> Bounds:
    """Interval bounds from ``x0`` and the action box, intersected with ``prior`` (e.g. LP-tightened) bounds."""
    net, H = problem.net, problem.horizon
    x_lo, x_hi = np.empty((H + 1, net.nx)), np.empty((H + 1, net.nx))
    x_lo[0] = x_hi[0] = x0
    pre_lo: list[list[np.ndarray]] = []
    pre_hi: list[list[np.ndarray]] = []
    n_hidden = len(net.relu_masks)
    for t in range(H):
        lo = np.concatenate([x_lo[t], problem.u_low])
        hi = np.concatenate([x_hi[t], problem.u_high])
        pre_lo.append([])
        pre_hi.append([])
        for k, (w, b) in enumerate(zip(net.weights, net.biases)):
            lo, hi = _affine_box(w, b, lo, hi)
            if k == n_hidden:
                break
            if prior is not None:
                lo, hi = np.maximum(lo, prior.pre_lo[t][k]), np.minimum(hi, prior.pre_hi[t][k])
            pre_lo[t].append(lo)
            pre_hi[t].append(hi)
            mask = net.relu_masks[k]
            lo, hi = np.where(mask, np.maximum(lo, 0), lo), np.where(mask, np.maximum(hi, 0), hi)
        if net.residual:
            lo, hi = lo + x_lo[t], hi + x_hi[t]
        x_lo[t + 1] = np.maximum(lo, problem.x_low)
        x_hi[t + 1] = np.minimum(hi, problem.x_high)
        if prior is not None:
            x_lo[t + 1] = np.maximum(x_lo[t + 1], prior.x_lo[t + 1])
            x_hi[t + 1] = np.minimum(x_hi[t + 1], prior.x_hi[t + 1])
    empty = bool((x_lo > x_hi).any())
    return Bounds(pre_lo, pre_hi, x_lo, x_hi, empty=empty)


def preactivations(problem: MPCProblem, states: np.ndarray, actions: np.ndarray) -> list[np.ndarray]:
    """Pre-activations ``(..., H, n_k)`` of every hidden layer along a trajectory (inputs ``x_t, u_t``)."""
    net = problem.net
    h = np.concatenate([states[..., :-1, :], actions], axis=-1)
    out = []
    for k, mask in enumerate(net.relu_masks):
        a = h @ net.weights[k].T + net.biases[k]
        out.append(a)
        h = np.where(mask, np.maximum(a, 0), a)
    return out


def tighten_lp(problem: MPCProblem, x0: np.ndarray, bounds: Bounds, steps: int | None = None) -> tuple[Bounds, int]:
    """Tighten unstable neurons of the first ``steps`` steps by min/max over the LP relaxation.

    Layer by layer in order, because every tightened layer makes the relaxation of the next one tighter. Returns
    the new bounds and the number of LPs solved. Each LP gives a valid bound even when stopped early, because we
    take the dual bound (HiGHS's objective at optimality) only from optimal solves and keep IBP's otherwise.
    """
    from controlkit._milp_highs import HighsMILP

    steps = problem.horizon if steps is None else min(steps, problem.horizon)
    n_lp = 0
    for t in range(steps):
        for k in range(len(problem.net.relu_masks)):
            cls = bounds.classes(problem)[t][k]
            todo = np.flatnonzero(cls == UNSTABLE)
            if todo.size == 0 or bounds.empty:
                continue
            relax = HighsMILP.relaxation(problem, bounds, x0, t, k)
            lo, hi = bounds.pre_lo[t][k].copy(), bounds.pre_hi[t][k].copy()
            for j in todo:
                lo[j] = max(lo[j], relax.optimise_preactivation(j, minimise=True, fallback=lo[j]))
                if lo[j] >= 0:  # already stable: the max cannot make it unstable again
                    n_lp += 1
                    continue
                hi[j] = min(hi[j], relax.optimise_preactivation(j, minimise=False, fallback=hi[j]))
                n_lp += 2
            bounds.pre_lo[t][k], bounds.pre_hi[t][k] = lo, hi
            bounds = ibp(problem, x0, prior=bounds)
    return bounds, n_lp

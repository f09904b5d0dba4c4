"""Sound pre-activation bounds for every neuron at every step of the unrolled network.

Three levels, each at least as tight as the one before (every level intersects with the previous one):
:func:`ibp` (interval bound propagation from the point ``x0`` and the action box), :func:`symbolic` (zonotope
forms in the action variables, carried through layers and steps, intersected with the intervals) and
:func:`tighten_lp` (min/max of each unstable pre-activation over the LP relaxation of the MILP, HiGHS). State
boxes are intersected with the user's state bounds, which is sound because the MILP enforces those bounds on every
feasible point: all bounds here hold for every feasible point of the MILP.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

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

    def window(self, start: int) -> Bounds:
        """The bounds of steps ``start..H``, as if the problem began at step ``start`` with its state box."""
        if start == 0:
            return self
        return Bounds(self.pre_lo[start:], self.pre_hi[start:], self.x_lo[start:], self.x_hi[start:], self.empty)

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


def _meet_prior(lo: np.ndarray, hi: np.ndarray, prior: Bounds | None, t: int, k: int):
    """Pre-activation bounds of layer ``k`` at step ``t`` intersected with ``prior``'s."""
    if prior is None:
        return lo, hi
    return np.maximum(lo, prior.pre_lo[t][k]), np.minimum(hi, prior.pre_hi[t][k])


def _relu_box(mask: np.ndarray, lo: np.ndarray, hi: np.ndarray):
    """Post-activation box: ReLU neurons (``mask``) clipped at 0, identity neurons unchanged."""
    return np.where(mask, np.maximum(lo, 0), lo), np.where(mask, np.maximum(hi, 0), hi)


def _state_box(problem: MPCProblem, prior: Bounds | None, t: int, lo: np.ndarray, hi: np.ndarray):
    """The box of ``x_t`` intersected with the user's state bounds and ``prior``'s box (sound: the MILP enforces
    them on every feasible point)."""
    lo, hi = np.maximum(lo, problem.x_low), np.minimum(hi, problem.x_high)
    if prior is None:
        return lo, hi
    return np.maximum(lo, prior.x_lo[t]), np.minimum(hi, prior.x_hi[t])


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
            lo, hi = _meet_prior(lo, hi, prior, t, k)
            pre_lo[t].append(lo)
            pre_hi[t].append(hi)
            lo, hi = _relu_box(net.relu_masks[k], lo, hi)
        if net.residual:
            lo, hi = lo + x_lo[t], hi + x_hi[t]
        x_lo[t + 1], x_hi[t + 1] = _state_box(problem, prior, t + 1, lo, hi)
    empty = bool((x_lo > x_hi).any())
    return Bounds(pre_lo, pre_hi, x_lo, x_hi, empty=empty)


def _reduce(n_u: int, g: np.ndarray, keep: int) -> np.ndarray:
    """At most ``keep`` noise columns (after the first ``n_u`` action columns); the rest boxed, one per row.

    Girard's reduction: boxing is sound (every value the dropped columns can produce lies in the box), and the
    columns boxed are those that lose least by it, the smallest ``|g|_1 - |g|_inf`` (axis-aligned ones lose nothing).
    """
    noise = g[:, n_u:]
    if noise.shape[1] <= keep:
        return g
    a = np.abs(noise)
    order = np.argsort(a.sum(axis=0) - a.max(axis=0))
    n_box = noise.shape[1] - max(keep - len(g), 0)
    kept = np.sort(order[n_box:])
    return np.concatenate([g[:, :n_u], noise[:, kept], np.diag(a[:, order[:n_box]].sum(axis=1))], axis=1)


def symbolic(problem: MPCProblem, x0: np.ndarray, prior: Bounds | None = None, max_noise: int = 64) -> Bounds:
    """Zonotope (DeepZ) bounds and interval bounds propagated together; every bound is the tighter of the two.

    Every quantity is kept as an affine form ``c + G e`` with ``e`` in ``[-1, 1]``: the first ``H nu`` entries of
    ``e`` are the action coordinates of all steps (so correlations between steps and between coordinates survive,
    e.g. a layer reading ``object - pusher`` or the residual ``x + f(x, u)``, both exact), then one fresh noise
    term per unstable ReLU (the tightest parallel relaxation ``relu(a) in lam a + mu +/- mu`` on ``[l, u]``,
    ``lam = u / (u - l)``, ``mu = -lam l / 2``). Each layer's pre-activation bounds are the intersection of the
    form's range with the interval bounds computed from the previous (intersected) layer, so they are never looser
    than :func:`ibp` with the same ``prior``. State boxes are clipped by ``[x_low, x_high]`` in the interval part
    only; the forms stay valid for every feasible point because the relaxations use bounds that hold on every
    feasible point. Between steps the state's noise terms are reduced to ``max_noise`` columns, so a layer costs
    ``O(n_out * n_in * (H nu + max_noise + n_in))``.

    Args:
        problem: The validated problem.
        x0: Initial state (a point: it has no noise term).
        prior: Bounds to intersect with (e.g. LP-tightened ones).
        max_noise: Noise columns carried from one step to the next (the rest are boxed).
    """
    net, H = problem.net, problem.horizon
    nx, nu, n_u = net.nx, net.nu, H * net.nu
    n_hidden = len(net.relu_masks)
    abs_w = [np.abs(w) for w in net.weights]
    u_mid, u_rad = (problem.u_low + problem.u_high) / 2, (problem.u_high - problem.u_low) / 2
    x_lo, x_hi = np.empty((H + 1, nx)), np.empty((H + 1, nx))
    x_lo[0] = x_hi[0] = x0
    cx, gx = np.asarray(x0, dtype=np.float64), np.zeros((nx, n_u))
    pre_lo: list[list[np.ndarray]] = [[] for _ in range(H)]
    pre_hi: list[list[np.ndarray]] = [[] for _ in range(H)]
    diag_u = nx + np.arange(nu)
    for t in range(H):
        mid = np.concatenate([(x_lo[t] + x_hi[t]) / 2, u_mid])
        rad = np.concatenate([(x_hi[t] - x_lo[t]) / 2, u_rad])
        c = np.concatenate([cx, u_mid])
        g = np.zeros((nx + nu, gx.shape[1]))
        g[:nx] = gx
        g[diag_u, t * nu + np.arange(nu)] = u_rad
        for k in range(n_hidden + 1):
            w, b = net.weights[k], net.biases[k]
            mid, rad = w @ mid + b, abs_w[k] @ rad
            c, g = w @ c + b, w @ g
            r = np.abs(g).sum(axis=1)
            lo, hi = np.maximum(mid - rad, c - r), np.minimum(mid + rad, c + r)
            if k == n_hidden:
                break
            lo, hi = _meet_prior(lo, hi, prior, t, k)
            pre_lo[t].append(lo)
            pre_hi[t].append(hi)
            mask = net.relu_masks[k]
            # lam = 1 for identity and active, 0 for inactive, u / (u - l) for unstable neurons
            lam = np.where(mask, np.clip(hi / np.maximum(hi - lo, 1e-300), 0.0, 1.0), 1.0)
            uns = np.flatnonzero(mask & (lo < 0) & (hi > 0))
            mu = -lam[uns] * lo[uns] / 2
            c, g = lam * c, lam[:, None] * g
            c[uns] += mu
            fresh = np.zeros((len(c), uns.size))
            fresh[uns, np.arange(uns.size)] = mu
            g = np.concatenate([g, fresh], axis=1)
            lo, hi = _relu_box(mask, lo, hi)
            mid, rad = (lo + hi) / 2, (hi - lo) / 2
        if net.residual:
            c, g = c + cx, g.copy()
            g[:, : gx.shape[1]] += gx
            r = np.abs(g).sum(axis=1)
            lo, hi = np.maximum(lo + x_lo[t], c - r), np.minimum(hi + x_hi[t], c + r)
        x_lo[t + 1], x_hi[t + 1] = _state_box(problem, prior, t + 1, lo, hi)
        cx, gx = c, _reduce(n_u, g, max_noise)
    return Bounds(pre_lo, pre_hi, x_lo, x_hi, empty=bool((x_lo > x_hi).any()))


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


def tighten_lp(
    problem: MPCProblem, x0: np.ndarray, bounds: Bounds, steps: int | None = None, time_budget: float | None = None,
    propagate: Callable[..., Bounds] = symbolic, window: int | None = None,
) -> tuple[Bounds, int]:
    """Tighten unstable neurons of the first ``steps`` steps by min/max over the LP relaxation.

    Layer by layer in order, because every tightened layer makes the relaxation of the next one tighter: after
    each layer, ``propagate`` (with the tightened bounds as prior) carries the gain to all later layers and steps,
    and the step's relaxation is updated in place. One HiGHS relaxation per step (steps ``0..t``, or the last
    ``window`` steps starting from their state box, which drops constraints and so stays sound) serves all its
    layers; each LP only changes two cost entries, so HiGHS starts it from the previous basis. Neurons the
    propagated bounds already settle are skipped. Each LP gives a valid bound only at optimality; otherwise the
    propagated bound is kept. When ``time_budget`` seconds have passed, the remaining neurons keep their
    propagated bounds (still sound). Returns the new bounds and the number of LPs solved.
    """
    from controlkit._milp_highs import HighsMILP

    t_start = time.perf_counter()
    steps = problem.horizon if steps is None else min(steps, problem.horizon)
    n_lp = 0
    for t in range(steps):
        relax = None
        for k in range(len(problem.net.relu_masks)):
            todo = np.flatnonzero(bounds.classes(problem)[t][k] == UNSTABLE)
            if todo.size == 0 or bounds.empty:
                continue
            s = max(0, t + 1 - window) if window else 0
            if relax is None:
                relax = HighsMILP(problem, bounds.window(s), x0 if s == 0 else None, relax=True, n_steps=t + 1 - s)
            else:
                relax.update_neurons(bounds.window(s), steps=[t - s])
            lo, hi = bounds.pre_lo[t][k].copy(), bounds.pre_hi[t][k].copy()
            for j in todo:
                if time_budget is not None and time.perf_counter() - t_start > time_budget:
                    break
                lo[j] = max(lo[j], relax.optimise_preactivation(t - s, k, j, minimise=True))
                n_lp += 1
                if lo[j] >= 0:  # already stable: the max cannot make it unstable again
                    continue
                hi[j] = min(hi[j], relax.optimise_preactivation(t - s, k, j, minimise=False))
                n_lp += 1
            bounds.pre_lo[t][k], bounds.pre_hi[t][k] = lo, hi
            bounds = propagate(problem, x0, prior=bounds)
            if time_budget is not None and time.perf_counter() - t_start > time_budget:
                return bounds, n_lp
    return bounds, n_lp

"""Sound pre-activation bounds for every neuron at every step of the unrolled network.

Three levels, each at least as tight as the one before (every level intersects with the previous one):
:func:`ibp` (interval bound propagation from the point ``x0`` and the action box), :func:`symbolic` (zonotope
forms in the action variables, carried through layers and steps, intersected with the intervals) and
:func:`~controlkit.planning.milp.tightening.tighten_lp` (min/max of each unstable pre-activation over the LP
relaxation of the MILP, HiGHS). State
boxes are intersected with the user's state bounds, which is sound because the MILP enforces those bounds on every
feasible point: all bounds here hold for every feasible point of the MILP.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from controlkit.planning.problem import MPCProblem

# Neuron classes in the compiled MILP.
INACTIVE, LINEAR, UNSTABLE = 0, 1, 2


def classify(mask: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Neuron classes from pre-activation bounds (any leading shape, neurons last; ``mask`` True = ReLU)."""
    cls = np.full(lo.shape, LINEAR, dtype=np.int8)
    cls[mask & (hi <= 0)] = INACTIVE
    cls[mask & (lo < 0) & (hi > 0)] = UNSTABLE
    return cls


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

    def layer(self, k: int, steps: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Pre-activation bounds of hidden layer ``k`` over the first ``steps`` steps, as ``(steps, n_k)`` arrays."""
        steps = len(self.pre_lo) if steps is None else steps
        return (np.array([lo_t[k] for lo_t in self.pre_lo[:steps]]),
                np.array([hi_t[k] for hi_t in self.pre_hi[:steps]]))

    def classes(self, problem: MPCProblem) -> list[list[np.ndarray]]:
        """Per step and hidden layer: INACTIVE (ReLU, hi <= 0), LINEAR (identity or ReLU with lo >= 0), UNSTABLE."""
        per_layer = [classify(mask, *self.layer(k)) for k, mask in enumerate(problem.net.relu_masks)]
        return [[cls[t] for cls in per_layer] for t in range(len(self.pre_lo))]

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
    nx, nu = net.nx, net.nu
    n_hidden = len(net.relu_masks)
    abs_w = [np.abs(w) for w in net.weights]
    # the post-activation box is max(pre, floor): ReLU neurons are clipped at 0, identity neurons (floor -inf) not
    floors = [np.where(m, 0.0, -np.inf) for m in net.relu_masks]
    u_mid, u_rad = (problem.u_low + problem.u_high) / 2, (problem.u_high - problem.u_low) / 2
    x_lo, x_hi = np.empty((H + 1, nx)), np.empty((H + 1, nx))
    x_lo[0] = x_hi[0] = x0
    # One matrix per quantity: column 0 the form's centre c, column 1 the interval midpoint (so one product maps
    # both), then the generators G: H nu action columns, then noise columns. Few large numpy calls instead of many
    # small ones: on small networks the propagation costs what its calls cost.
    n_fix = 2 + H * nu
    fx = np.zeros((nx, n_fix))
    fx[:, 0] = x0
    # the action rows of every step's input form: centre and midpoint u_mid, generator u_rad on that step's columns
    u_forms = np.zeros((H, nu, n_fix))
    u_forms[:, :, :2] = u_mid[:, None]
    u_forms[np.arange(H)[:, None], np.arange(nu), 2 + np.arange(H * nu).reshape(H, nu)] = u_rad
    identity = [~m for m in net.relu_masks]
    pre_lo: list[list[np.ndarray]] = [[] for _ in range(H)]
    pre_hi: list[list[np.ndarray]] = [[] for _ in range(H)]
    for t in range(H):
        f = np.zeros((nx + nu, fx.shape[1]))
        f[:nx] = fx
        f[:nx, 1] = (x_lo[t] + x_hi[t]) * 0.5
        f[nx:, :n_fix] = u_forms[t]
        rad = np.concatenate([(x_hi[t] - x_lo[t]) * 0.5, u_rad])
        for k in range(n_hidden + 1):
            f = net.weights[k] @ f
            f[:, :2] += net.biases[k][:, None]
            rad = abs_w[k] @ rad
            r = np.add.reduce(np.abs(f[:, 2:]), axis=1)
            lo, hi = np.maximum(f[:, 1] - rad, f[:, 0] - r), np.minimum(f[:, 1] + rad, f[:, 0] + r)
            if k == n_hidden:
                break
            lo, hi = _meet_prior(lo, hi, prior, t, k)
            pre_lo[t].append(lo)
            pre_hi[t].append(hi)
            # lam = 1 for identity and active, 0 for inactive, u / (u - l) for unstable neurons
            positive = hi > 0
            uns = np.flatnonzero(net.relu_masks[k] & (lo < 0) & positive)
            lam = (identity[k] | ((lo >= 0) & positive)).astype(np.float64)
            lo_u, hi_u = lo[uns], hi[uns]
            lam_u = hi_u / (hi_u - lo_u)
            lam[uns] = lam_u
            mu = lam_u * lo_u * -0.5
            m = f.shape[1]
            g = np.zeros((len(lam), m + uns.size))
            np.multiply(f, lam[:, None], out=g[:, :m])
            g[uns, 0] += mu
            g[uns, m + np.arange(uns.size)] = mu
            lo, hi = np.maximum(lo, floors[k]), np.maximum(hi, floors[k])
            g[:, 1], rad = (lo + hi) * 0.5, (hi - lo) * 0.5
            f = g
        if net.residual:
            f[:, : fx.shape[1]] += fx
            r = np.add.reduce(np.abs(f[:, 2:]), axis=1)
            lo, hi = np.maximum(lo + x_lo[t], f[:, 0] - r), np.minimum(hi + x_hi[t], f[:, 0] + r)
        x_lo[t + 1], x_hi[t + 1] = _state_box(problem, prior, t + 1, lo, hi)
        fx = _reduce(n_fix, f, max_noise)
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

"""Large-neighbourhood search over activation patterns: improve a feasible plan by small MILPs around it.

Branch and bound on the whole push MILP proves rather than finds: at H = 10 it never improves its start within a
control step (docs/pushing.md). A neighbourhood search asks smaller questions. With the incumbent's activation
pattern ``z*`` (the ReLU on/off states and keep-out sides of its rollout), every binary is fixed to ``z*`` except
a neighbourhood, and HiGHS solves the small MILP with the incumbent's objective as cutoff, so it only looks for
better plans and proves quickly when there is none. On an improvement the incumbent and its pattern move there
and the search goes on. The result is never worse than the start (a slice that finds nothing changes nothing).

Neighbourhoods (``mode``):

- ``window``: the binaries of ``size`` consecutive steps, the window sliding one step per slice.
- ``head``: the binaries of the first ``size`` steps (an exact head), the tail's fixed to the incumbent's pattern
  (its actions stay free: the tail is re-optimised within its activation region); after an improvement the head
  is solved again round the new pattern, otherwise the search stops.
- ``switching``: the ``size`` ReLU binaries whose pre-activation is nearest its switching point relative to its
  bound range (``|a| / (u - l)``), then the next ``size``, and so on.
- ``hamming``: every binary free within the local-branching ball ``sum |z - z*| <= size`` (Fischetti & Lodi
  2003), one extra row; the radius doubles after a slice without improvement and resets after one with.

Slices are limited by branch-and-bound nodes (``slice_nodes``, deterministic) and optionally by seconds.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np

from controlkit.planning.milp.bounds import UNSTABLE, Bounds
from controlkit.planning.milp.highs import highspy  # an optional extra, checked there

SEARCH_MODES = ("none", "window", "head", "switching", "hamming")
DEFAULT_SIZE = {"window": 2, "head": 3, "switching": 24, "hamming": 4}
_REL_IMPROVE = 1e-6  # an improvement must beat the incumbent by this share (plus 1e-9): no cycling on ties
_HIGHS_INT_INF = 2147483647  # HiGHS's "no limit" for integer options such as mip_max_nodes


def _option(h: highspy.Highs, name: str):
    """An option's current value (highspy returns ``(status, value)`` or the value, by version)."""
    got = h.getOptionValue(name)
    return got[1] if isinstance(got, tuple) else got


@dataclasses.dataclass
class SearchResult:
    """What a neighbourhood search did: the best plan, and how many slices ran and improved it."""

    actions: np.ndarray
    objective: float
    start_objective: float
    slices: int
    improvements: int
    time_s: float


def _binary_steps(milp) -> tuple[np.ndarray, np.ndarray]:
    """For every integer column: its step, and whether it is a ReLU binary (else a keep-out side binary)."""
    lay = milp.layout
    ints = milp._int_cols
    step = np.full(ints.size, -1)
    relu = np.zeros(ints.size, dtype=bool)
    for t, row in enumerate(lay.z_cols):
        for cols in row:
            pos = np.searchsorted(ints, cols)
            step[pos], relu[pos] = t, True
    for delta, *_ in lay.keep_out:
        for t in range(delta.shape[0]):
            step[np.searchsorted(ints, delta[t])] = t
    return step, relu


def _switching_order(milp, val: np.ndarray, bounds: Bounds) -> np.ndarray:
    """Positions (among the integer columns) of the ReLU binaries, nearest to switching first."""
    lay, ints = milp.layout, milp._int_cols
    pos, score = [], []
    for t, (zrow, arow) in enumerate(zip(lay.z_cols, lay.a_cols)):
        for k, (zc, ac) in enumerate(zip(zrow, arow)):
            if zc.size == 0:
                continue
            uns = np.flatnonzero(lay.classes[t][k] == UNSTABLE)  # in the order of their columns
            width = np.maximum(bounds.pre_hi[t][k][uns] - bounds.pre_lo[t][k][uns], 1e-12)
            pos.append(np.searchsorted(ints, zc))
            score.append(np.abs(val[ac]) / width)
    if not pos:
        return np.zeros(0, dtype=int)
    pos, score = np.concatenate(pos), np.concatenate(score)
    return pos[np.argsort(score, kind="stable")]


def neighbourhood_search(
    milp,
    x0: np.ndarray,
    goal: np.ndarray,
    bounds: Bounds,
    actions: np.ndarray,
    mode: str = "window",
    size: int | None = None,
    max_slices: int = 8,
    slice_nodes: int | None = 200,
    slice_time: float | None = None,
    time_budget: float | None = None,
) -> SearchResult:
    """Improve the feasible plan ``actions`` by neighbourhood MILPs on ``milp`` (a compiled :class:`HighsMILP`).

    Args:
        milp: The compiled problem (its bounds, options and time limit are restored on return).
        x0: Initial state.
        goal: ``(H, nx)`` goals (the ones ``milp`` holds).
        bounds: The bounds ``milp`` was written with.
        actions: The start; if its rollout breaks a hard constraint there is no cutoff and nothing is done.
        mode: ``window``, ``head``, ``switching`` or ``hamming`` (see the module docstring).
        size: Steps per window or head, binaries per switching slice, or the Hamming radius (default per mode).
        max_slices: Neighbourhood MILPs to solve at most.
        slice_nodes: Branch-and-bound nodes per slice (``None`` = no node limit); the deterministic limit.
        slice_time: Seconds per slice (``None`` = none).
        time_budget: Seconds for the whole search (``None`` = none); checked between slices.

    Returns:
        The best plan's actions and objective (on the network), the start's objective and counters.
    """
    p, h, lay = milp.problem, milp.h, milp.layout
    t0 = time.perf_counter()
    actions = np.clip(np.asarray(actions, dtype=np.float64), p.u_low, p.u_high)
    states = p.net.rollout(x0, actions)
    best_obj = float(p.objective(states, actions, goal))
    start_obj = best_obj
    ints = milp._int_cols
    if mode == "none" or ints.size == 0 or max_slices <= 0 or p.violation(states, hard_only=True) > 0:
        return SearchResult(actions, best_obj, start_obj, 0, 0, time.perf_counter() - t0)
    size = DEFAULT_SIZE[mode] if size is None else int(size)
    step, relu = _binary_steps(milp)
    _, _, _, saved_lo, saved_hi, _ = h.getCols(ints.size, ints)
    saved_time, saved_nodes = milp._time_limit, _option(h, "mip_max_nodes")
    val = milp.start_vector(x0, actions, goal, bounds)
    order = _switching_order(milp, val, bounds) if mode == "switching" else None
    n_rows0 = h.getNumRow()
    slices = improvements = 0
    cursor, radius, fails = 0, size, 0
    H = p.horizon
    try:
        h.setOptionValue("mip_max_nodes", _HIGHS_INT_INF if slice_nodes is None else int(slice_nodes))
        while slices < max_slices:
            left = None if time_budget is None else time_budget - (time.perf_counter() - t0)
            if left is not None and left <= 0:
                break
            fixed = np.clip(val[ints], saved_lo, saved_hi)
            lo, hi = fixed.copy(), fixed.copy()
            if mode == "window":
                s = cursor % max(1, H - size + 1)
                free = (step >= s) & (step < s + size)
            elif mode == "head":
                free = step < size
            elif mode == "switching":
                chosen = order[(cursor * size) % max(1, order.size):][:size]
                free = np.zeros(ints.size, dtype=bool)
                free[chosen] = True
            else:
                free = np.ones(ints.size, dtype=bool)
            lo[free], hi[free] = saved_lo[free], saved_hi[free]
            h.changeColsBounds(ints.size, ints, lo, hi)
            if mode == "hamming":
                # sum_{z*=0} z + sum_{z*=1} (1 - z) <= radius, over the binaries that are free to move
                movable = np.flatnonzero(saved_lo < saved_hi)
                coef = np.where(fixed[movable] > 0.5, -1.0, 1.0)
                h.addRow(-np.inf, float(radius - np.sum(fixed[movable] > 0.5)), movable.size,
                         ints[movable].astype(np.int32), coef)
            cutoff = best_obj - _REL_IMPROVE * abs(best_obj) - 1e-9
            h.setOptionValue("objective_bound", cutoff)
            limit = [x for x in (slice_time, left) if x is not None]
            milp.set_time_limit(min(limit) if limit else None)
            h.run()
            slices += 1
            improved, cand = False, None
            if h.getInfo().primal_solution_status == highspy.kSolutionStatusFeasible:
                cand = np.clip(np.asarray(h.getSolution().col_value)[lay.u_cols], p.u_low, p.u_high)
            if h.getNumRow() > n_rows0:  # after reading the solution: changing the model clears it
                h.deleteRows(h.getNumRow() - n_rows0, np.arange(n_rows0, h.getNumRow(), dtype=np.int32))
            if cand is not None:
                cand_states = p.net.rollout(x0, cand)
                cand_obj = float(p.objective(cand_states, cand, goal))
                # judged on the network's own rollout: the MILP's values agree up to the solver's tolerance
                if cand_obj < best_obj and p.violation(cand_states, hard_only=True) <= 0:
                    actions, best_obj, improved = cand, cand_obj, True
                    improvements += 1
                    val = milp.start_vector(x0, actions, goal, bounds)
                    if mode == "switching":
                        order = _switching_order(milp, val, bounds)
            if mode == "hamming":
                radius, fails = (size, 0) if improved else (radius * 2, fails + 1)
                if radius > int(np.sum(saved_lo < saved_hi)) and not improved:
                    break  # the ball covers every binary: that slice was the whole MILP
            else:
                cursor = 0 if improved and mode == "switching" else cursor + 1
                fails = 0 if improved else fails + 1
                if mode == "window":
                    n_hoods = max(1, H - size + 1)
                elif mode == "head":
                    n_hoods = 1
                else:
                    n_hoods = -(-order.size // max(size, 1))
                if fails >= n_hoods:
                    break  # a whole pass without improvement: the incumbent is optimal in every neighbourhood
    finally:
        if h.getNumRow() > n_rows0:
            h.deleteRows(h.getNumRow() - n_rows0, np.arange(n_rows0, h.getNumRow(), dtype=np.int32))
        h.changeColsBounds(ints.size, ints, saved_lo, saved_hi)
        h.setOptionValue("objective_bound", float("inf"))
        h.setOptionValue("mip_max_nodes", saved_nodes)
        milp.set_time_limit(saved_time)
    return SearchResult(actions, best_obj, start_obj, slices, improvements, time.perf_counter() - t0)

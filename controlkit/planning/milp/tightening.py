"""LP-based bound tightening: each unstable neuron's pre-activation minimised and maximised over the MILP's LP
relaxation (HiGHS), optionally restricted to plans at least as good as a known one (optimality-based tightening).

It sits apart from :mod:`~controlkit.planning.milp.bounds` because it needs the HiGHS backend, which itself
needs the bounds.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from controlkit.planning.milp.bounds import UNSTABLE, Bounds, classify, symbolic
from controlkit.planning.milp.highs import HighsMILP
from controlkit.planning.problem import MPCProblem


def tighten_lp(
    problem: MPCProblem, x0: np.ndarray, bounds: Bounds, steps: int | None = None, time_budget: float | None = None,
    propagate: Callable[..., Bounds] = symbolic, window: int | None = None, goal: np.ndarray | None = None,
    cutoff: float | None = None,
) -> tuple[Bounds, int]:
    """Tighten unstable neurons of the first ``steps`` steps by min/max over the LP relaxation.

    Layer by layer in order, because every tightened layer makes the relaxation of the next one tighter: after
    each layer, ``propagate`` (with the tightened bounds as prior) carries the gain to all later layers and steps,
    and the relaxation is updated in place. One HiGHS relaxation per step (steps ``0..t``, or the last ``window``
    steps starting from their state box, which drops constraints and so stays sound) serves all its layers; each
    LP only changes two cost entries, so HiGHS starts it from the previous basis. Neurons the propagated bounds
    already settle are skipped; the others go nearest-to-stable first (smallest ``min(-l, u) / (u - l)``), each
    first towards its nearer side, so a time budget is spent where an LP most likely removes a binary, and a
    neuron proven stable by one LP needs no second. Each LP gives a valid bound only at optimality; otherwise the
    propagated bound is kept. When ``time_budget`` seconds have passed, the remaining neurons keep their
    propagated bounds (still sound). Returns the new bounds and the number of LPs solved.

    With ``cutoff`` (and ``goal``), the relaxation is the whole horizon plus the row ``objective <= cutoff``: the
    bounds then hold for every feasible point at least as good as ``cutoff`` -- the objective of a known feasible
    plan -- which is all branch and bound needs (optimality-based bound tightening). The optimum, and that plan,
    stay feasible; points worse than ``cutoff`` may not. The cutoff row needs every step, so ``window`` is ignored.
    """
    t_start = time.perf_counter()
    H = problem.horizon
    steps = H if steps is None else min(steps, H)
    n_lp = 0
    relax = None
    if cutoff is not None:
        if goal is None:
            raise ValueError("tighten_lp: a cutoff needs the goal (it bounds the objective)")
        window = None

    def out_of_time() -> bool:
        return time_budget is not None and time.perf_counter() - t_start > time_budget

    for t in range(steps):
        if cutoff is None:
            relax = None  # a fresh relaxation of steps s..t
        for k in range(len(problem.net.relu_masks)):
            lo, hi = bounds.pre_lo[t][k].copy(), bounds.pre_hi[t][k].copy()
            todo = np.flatnonzero(classify(problem.net.relu_masks[k], lo, hi) == UNSTABLE)
            if todo.size == 0 or bounds.empty:
                continue
            s = max(0, t + 1 - window) if window else 0
            if relax is None and cutoff is not None:
                relax = HighsMILP(problem, bounds, x0, goal)
                relax.relax_to_cutoff(cutoff)
            elif relax is None:
                relax = HighsMILP(problem, bounds.window(s), x0 if s == 0 else None, relax=True, n_steps=t + 1 - s)
            else:
                relax.update_neurons(bounds.window(s), steps=range(t - s, len(relax.layout.classes)))
            near = np.minimum(-lo[todo], hi[todo])
            todo = todo[np.argsort(near / (hi[todo] - lo[todo]), kind="stable")]
            for j in todo:
                if out_of_time():
                    break
                for minimise in (True, False) if -lo[j] <= hi[j] else (False, True):
                    value = relax.optimise_preactivation(t - s, k, j, minimise=minimise)
                    n_lp += 1
                    if minimise:
                        lo[j] = max(lo[j], value)
                    else:
                        hi[j] = min(hi[j], value)
                    if lo[j] >= 0 or hi[j] <= 0:  # stable: the other side cannot make it unstable again
                        break
            bounds.pre_lo[t][k], bounds.pre_hi[t][k] = lo, hi
            bounds = propagate(problem, x0, prior=bounds)
            if out_of_time():
                return bounds, n_lp
    return bounds, n_lp

"""MIP-MPC as the pushing pipeline runs it: several candidate MIP starts, the best one polished, then the MILP.

Branch and bound on the push MILP (about 150 unstable ReLUs at H = 10) does not improve a start within a control
step, and the region descent (``polish_lps``) only improves its one start locally. So the start decides the
plan. :class:`PipelineMIP` builds several complete candidate starts each step, scores them on the model itself
(a numpy rollout and the MILP's objective; a start that breaks a hard constraint ranks after every one that
does not), hands the best to the MILP as its MIP start, and lets the region descent and HiGHS improve on it. The
returned plan is always a MILP solution (feasible, with HiGHS's certified gap) and never costs more on the model
than the chosen start, hence than any candidate that satisfies the constraints.

Candidates (``starts``):

- ``shifted``: the last plan shifted by one step, the new tail step padded with the safe action (always used).
- ``safe``: the safe action (no motion) held over the horizon.
- ``greedy``: the greedy pusher (:class:`~controlkit.tasks.pushing.greedy.GreedyPusher`: go behind the object, push its
  centre at the goal) run through the learned model over the horizon: a model-free policy, closed on the
  model's own predictions.
- ``mppi``: an MPPI pass over the model seeded with the shifted plan (``warm_samples`` samples x
  ``warm_iterations`` iterations).

When the MILP returns no plan (no incumbent at the time limit, or no plan satisfies the constraints), the step
applies the best candidate's first action and reports the fallback ``best_start``.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import numpy as np

from controlkit.core.controller import Plan, Status, StepInfo
from controlkit.core.errors import ControlkitError, choices_error
from controlkit.envs.tabletop import Shape
from controlkit.planning import MIPMPC
from controlkit.tasks.pushing.greedy import GreedyPusher

START_KINDS = ("shifted", "safe", "greedy", "mppi")
_VIOLATION_PENALTY = 1e3  # per unit of hard-constraint violation, ranking starts that all break one
_INFEASIBLE = 1e6  # added to such a start's score: any MILP-feasible start wins (a soft keep-out price can be large)


class PipelineMIP(MIPMPC):
    """MIP-MPC with the best of several candidate MIP starts (see the module docstring).

    Args:
        *args: Problem arguments of :class:`~controlkit.planning.mip_mpc.MIPMPC`.
        starts: Extra candidates besides the shifted plan: any of ``safe``, ``greedy``, ``mppi`` (``mppi`` is
            implied by ``warm_samples > 0``).
        warm_samples: MPPI samples per iteration of the ``mppi`` candidate (0 = no MPPI candidate unless
            ``starts`` asks for one, then 100).
        warm_iterations: MPPI iterations of the ``mppi`` candidate.
        shape: The pushed object's shape (needed by the ``greedy`` candidate; the pipeline passes it).
        seed: Seed of the MPPI candidate's sampler and of the hops (``search="hop"``).
        polish_starts: Run the region descent (``polish_lps``) from this many of the best-scored candidates and
            keep the best result (1 = the best candidate only). When it exceeds the number of candidates, the
            best samples of the MPPI candidate's last iteration are candidates too.
        **kwargs: Further :class:`~controlkit.planning.mip_mpc.MIPMPC` arguments (``time_limit``, ``polish_lps``, ...).

    ``Plan.extras`` adds ``start`` (the winning candidate), ``start_scores`` (penalised model cost of each) and
    ``start_time_s`` (time spent building and scoring them; it is part of the step time).
    """

    def __init__(self, *args: Any, starts: list[str] | tuple[str, ...] = (), warm_samples: int = 0,
                 warm_iterations: int = 5, shape: Shape | None = None, seed: int = 0, polish_starts: int = 1,
                 **kwargs: Any) -> None:
        for s in starts:
            if s not in START_KINDS:
                raise choices_error("starts", s, START_KINDS)
        if int(warm_samples) != warm_samples or warm_samples < 0:
            raise ControlkitError(f"warm_samples: must be an integer >= 0, got {warm_samples!r}.")
        if int(warm_iterations) != warm_iterations or warm_iterations < 1:
            raise ControlkitError(f"warm_iterations: must be an integer >= 1, got {warm_iterations!r}.")
        if int(polish_starts) != polish_starts or polish_starts < 1:
            raise ControlkitError(f"polish_starts: must be an integer >= 1, got {polish_starts!r}.")
        self.polish_starts = int(polish_starts)
        kinds = {"shifted", *starts} | ({"mppi"} if warm_samples else set())
        self.starts = tuple(k for k in START_KINDS if k in kinds)
        if "greedy" in self.starts and shape is None:
            raise ControlkitError("starts: the greedy start needs the object's shape (shape=...).")
        self._helper = None
        super().__init__(*args, seed=seed, **kwargs)
        p = self.problem
        self._greedy = None if shape is None else GreedyPusher(shape, float(np.min(p.u_high)))
        if "mppi" in self.starts:
            from controlkit.planning.samplers import MPPIPlanner  # torch: loaded only when the MPPI candidate is asked for

            self._helper = MPPIPlanner(p.net, p.horizon, p.u_low, p.u_high, p.x_low, p.x_high,
                                       state_weights=p.state_weights, terminal_weight=p.terminal_weight,
                                       keep_out=p.keep_out, n_samples=int(warm_samples or 100),
                                       iterations=int(warm_iterations), temperature=0.003, seed=seed)

    def reset(self, seed: int | None = None) -> None:
        super().reset(seed)
        self._best_start: np.ndarray | None = None
        if getattr(self, "_helper", None) is not None:
            self._helper.reset(seed)

    def _warm_actions(self) -> np.ndarray:
        warm = super()._warm_actions()
        return np.tile(self.safe_action, (self.horizon, 1)) if warm is None else warm

    def greedy_actions(self, x0: np.ndarray, goal: np.ndarray) -> np.ndarray:
        """The greedy pusher's actions over the horizon, each from the model's prediction of the state."""
        p = self.problem
        target, x, out = goal[-1, :2], np.asarray(x0, dtype=np.float64), []
        for _ in range(p.horizon):
            a = np.clip(self._greedy.action(x, target), p.u_low, p.u_high)
            out.append(a)
            x = p.net.step(x, a)
        return np.array(out)

    def candidates(self, x0: np.ndarray, goal: np.ndarray, shifted: np.ndarray) -> dict[str, np.ndarray]:
        """Every candidate action sequence ``(H, nu)`` by name."""
        p = self.problem
        out = {"shifted": np.clip(shifted, p.u_low, p.u_high)}
        if "safe" in self.starts:
            out["safe"] = np.tile(self.safe_action, (p.horizon, 1))
        if "greedy" in self.starts:
            out["greedy"] = self.greedy_actions(x0, goal)
        if "mppi" in self.starts:
            out["mppi"] = self._helper.plan(x0, goal, warm_start=out["shifted"]).actions
            if self.polish_starts > len(out):
                for i, a in enumerate(self._helper.elites[: self.polish_starts - len(out)]):
                    out[f"mppi_elite{i}"] = a
        return out

    def score(self, x0: np.ndarray, actions: np.ndarray, goal: np.ndarray) -> float:
        """The MILP's objective of ``actions`` from ``x0``; a start that breaks a hard constraint (state box, hard
        keep-out box), and so cannot be the MILP's incumbent, scores ``_INFEASIBLE`` plus a penalty per unit of
        violation on top, so that it wins only when every candidate breaks one (then the least violation wins)."""
        p = self.problem
        states = p.net.rollout(x0, actions)
        hard = float(p.violation(states, hard_only=True))
        offset = _INFEASIBLE + _VIOLATION_PENALTY * hard if hard > 1e-9 else 0.0
        return float(p.objective(states, actions, goal)) + offset

    def best_start(self, x0: np.ndarray, goal: np.ndarray,
                   warm_start: np.ndarray | None) -> tuple[str, dict[str, np.ndarray], dict[str, float]]:
        """The winning candidate's name, every candidate and every score (sets the step's best start)."""
        shifted = self._warm_actions() if warm_start is None else np.asarray(warm_start, dtype=np.float64)
        cands = self.candidates(x0, goal, shifted)
        scores = {k: self.score(x0, a, goal) for k, a in cands.items()}
        best = min(scores, key=scores.get)
        self._best_start = cands[best]
        return best, cands, scores

    def plan(self, x0: Any, goal: Any, warm_start: np.ndarray | None = None) -> Plan:
        """Plan from the best candidate start; ``warm_start`` (default: the shifted last plan) is the shifted one."""
        p = self.problem
        x0, goal = p.check_state(x0), p.check_goal(goal)
        t0 = time.perf_counter()
        best, cands, scores = self.best_start(x0, goal, warm_start)
        start_time = time.perf_counter() - t0
        ranked = sorted(scores, key=scores.get)
        self._extra_starts = [cands[k] for k in ranked[1:self.polish_starts]]
        try:
            plan = super().plan(x0, goal, warm_start=cands[best])
        finally:
            self._extra_starts = []
        plan.extras.update(start=best, start_scores=scores, start_time_s=start_time)
        return dataclasses.replace(plan, solve_time_s=plan.solve_time_s + start_time)

    def _act(self, obs: Any) -> tuple[np.ndarray, StepInfo]:
        """As the base class, except that a step whose MILP has no plan applies the best candidate start.

        That happens when no plan satisfies the hard constraints on the model (e.g. the object already inside a
        keep-out box after a model error): the best candidate minimises the violation, so it leads back out,
        where the shifted plan or the safe action (the base fallbacks) could leave the object inside for good.
        The step still counts as a fallback (``StepInfo.fallback == "best_start"``).
        """
        self._best_start = None
        action, info = super()._act(obs)
        if info.fallback is None or self._best_start is None:
            return action, info
        return self._best_start[0].copy(), dataclasses.replace(info, fallback="best_start")


class StartsOnly(PipelineMIP):
    """The ablation of :class:`PipelineMIP` without the MILP: apply the best candidate start as it is.

    The same candidates (``starts``, ``warm_samples``, ``warm_iterations``), scored the same way on the model; no
    region descent, no branch and bound, no certificate (``Plan.gap`` is ``None``). It measures what the MILP
    adds to the candidates. A best candidate that breaks a hard constraint (state box, hard keep-out box) is
    reported ``INFEASIBLE`` and its first action applied as the ``best_start`` fallback, as :class:`PipelineMIP`
    does when its MILP has no plan. The MILP options of :class:`~controlkit.planning.mip_mpc.MIPMPC` are accepted
    and unused.
    """

    def plan(self, x0: Any, goal: Any, warm_start: np.ndarray | None = None) -> Plan:
        """The best candidate start from ``x0`` (``warm_start``: the shifted candidate, default the last plan's)."""
        p = self.problem
        x0, goal = p.check_state(x0), p.check_goal(goal)
        t0 = time.perf_counter()
        best, cands, scores = self.best_start(x0, goal, warm_start)
        states = p.net.rollout(x0, cands[best])
        hard = float(p.violation(states, hard_only=True))
        status = Status.OK if hard <= 1e-9 else Status.INFEASIBLE
        extras = {"start": best, "start_scores": scores, "violation": float(p.violation(states))}
        return Plan(cands[best].copy(), states, float(p.objective(states, cands[best], goal)), status,
                    time.perf_counter() - t0, None, extras)

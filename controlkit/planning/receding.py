"""Receding-horizon machinery shared by MIP-MPC and the sampling/gradient planners.

``act(obs)`` plans from the current state, applies the first action and keeps the plan. It never raises: when
planning fails (no incumbent at the time limit, infeasible, solver error) it returns the next step of the last good
plan, at most ``max_fallback`` times in a row, then the declared safe action; :class:`StepInfo` says which.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from controlkit.core.controller import Plan, Planner, Status, StepInfo
from controlkit.core.errors import ControlkitError, choices_error
from controlkit.planning.problem import KeepOut, MPCProblem, make_problem

_GOOD = (Status.OK, Status.SUBOPTIMAL)
WARM_TAILS = ("safe", "repeat")


class RecedingHorizonPlanner(Planner):
    """Base class: validated problem, goal, warm start from the shifted last plan, fallbacks.

    Args:
        model: A :class:`~controlkit.models.network.CompactNetwork` or a torch ``nn.Sequential`` of Linear/ReLU layers
            (then pass ``nx`` and ``nu``).
        horizon: Number of planned steps ``H``.
        u_low: Action lower bounds ``(nu,)`` (required).
        u_high: Action upper bounds ``(nu,)`` (required).
        x_low: State lower bounds ``(nx,)`` for ``x_1..x_H`` (``-inf`` entries allowed), or ``None``.
        x_high: State upper bounds, like ``x_low``.
        residual: ``x_{t+1} = x_t + f`` when True, ``f`` when False; ``None`` uses the network's own flag
            (``CompactNetwork.residual``; True for a torch Sequential).
        state_weights: ``q`` in the L1 cost (default all ones).
        control_weight: ``lambda`` in the L1 cost.
        terminal_weight: Multiplies the cost of the last state ``x_H``.
        state_constraints: ``(A, b)`` with ``A x_t <= b`` for ``t = 1..H``.
        keep_out: Boxes (:class:`~controlkit.planning.mip_mpc.KeepOut`) the state must avoid on chosen coordinates: a hard
            constraint, or with ``KeepOut.penalty`` a priced one (MIP-MPC: exact, by slack variables).
        goal: Goal used by :meth:`act`, ``(nx,)`` or one per step ``(H, nx)``; change it with :meth:`set_goal`.
        safe_action: Action returned when no plan is usable (default: 0 clipped into the action box).
        max_fallback: How many steps in a row the shifted last plan may be used before the safe action.
        state_fn: Maps an observation to the state ``x`` (default: the observation is the state).
        warm_start: Whether :meth:`act` seeds each plan with the last plan shifted by one step (the safe action
            held over the horizon before there is one).
        warm_tail: How that shifted plan fills its new last steps: ``"safe"`` (the safe action) or ``"repeat"``
            (the plan's last action again).
        nx: State size (only for a torch Sequential).
        nu: Action size (only for a torch Sequential).
    """

    def __init__(
        self,
        model: Any,
        horizon: int,
        u_low: Any,
        u_high: Any,
        x_low: Any = None,
        x_high: Any = None,
        residual: bool | None = None,
        state_weights: Any = None,
        control_weight: float = 0.0,
        *,
        terminal_weight: float = 1.0,
        state_constraints: tuple[Any, Any] | None = None,
        keep_out: Sequence[KeepOut] = (),
        goal: Any = None,
        safe_action: Any = None,
        max_fallback: int = 3,
        state_fn: Callable[[Any], np.ndarray] | None = None,
        warm_start: bool = True,
        warm_tail: str = "safe",
        nx: int | None = None,
        nu: int | None = None,
    ) -> None:
        self.problem: MPCProblem = make_problem(
            model, horizon, u_low, u_high, x_low, x_high, residual, state_weights, control_weight,
            terminal_weight, state_constraints, keep_out, nx=nx, nu=nu,
        )
        p = self.problem
        if safe_action is None:
            safe_action = np.clip(np.zeros(p.nu), p.u_low, p.u_high)
        self.safe_action = np.asarray(safe_action, dtype=np.float64)
        if self.safe_action.shape != (p.nu,) or not np.isfinite(self.safe_action).all():
            raise ControlkitError(f"safe_action: need {p.nu} finite values, got {self.safe_action.tolist()}.")
        if int(max_fallback) != max_fallback or max_fallback < 0:
            raise ControlkitError(f"max_fallback: must be an integer >= 0, got {max_fallback!r}.")
        self.max_fallback = int(max_fallback)
        self.state_fn = state_fn
        self.warm_start = bool(warm_start)
        if warm_tail not in WARM_TAILS:
            raise choices_error("warm_tail", warm_tail, WARM_TAILS)
        self.warm_tail = warm_tail
        self.goal = None if goal is None else p.check_goal(goal)
        self.reset()

    @property
    def horizon(self) -> int:
        return self.problem.horizon

    def set_goal(self, goal: Any) -> None:
        """Set the goal :meth:`act` plans towards: ``(nx,)`` or one per step ``(H, nx)``."""
        self.goal = self.problem.check_goal(goal)

    def reset(self, seed: int | None = None) -> None:
        """Forget the last plan (and re-seed, in subclasses that sample)."""
        super().reset(seed)
        self.last_plan: Plan | None = None
        self._fallbacks = 0

    def _warm_actions(self) -> np.ndarray | None:
        """The last good plan shifted to start at the current step, the new tail steps padded.

        Before the first good plan it is the safe action held over the horizon: a complete MIP start that gives a
        time-limited first solve an incumbent (when that sequence satisfies the state constraints). The tail is
        the safe action, or the plan's last action repeated with ``warm_tail="repeat"``. The safe tail is the
        default because a repeated push can carry the predicted state out of the state box, which makes a whole
        MIP start infeasible (no incumbent at the time limit); a sampler's warm mean has no such constraint and
        may do better with the repeated action.
        """
        if not self.warm_start:
            return None
        if self.last_plan is None:
            return np.tile(self.safe_action, (self.horizon, 1))
        a = self.last_plan.actions
        shift = min(self._fallbacks + 1, len(a))
        tail = a[-1] if self.warm_tail == "repeat" else self.safe_action
        return np.concatenate([a[shift:], np.tile(tail, (shift, 1))])

    @abc.abstractmethod
    def plan(self, x0: Any, goal: Any, warm_start: np.ndarray | None = None) -> Plan:
        """Plan from ``x0`` towards ``goal``; ``warm_start`` is an ``(H, nu)`` action guess."""

    def _act(self, obs: Any) -> tuple[np.ndarray, StepInfo]:
        try:
            if self.goal is None:
                raise ControlkitError("goal: not set; pass goal= to the constructor or call set_goal(goal).")
            x = np.asarray(self.state_fn(obs) if self.state_fn else obs, dtype=np.float64)
            plan = self.plan(x, self.goal, warm_start=self._warm_actions())
            status, solve, message = plan.status, plan.solve_time_s, plan.extras.get("message", "")
        except Exception as exc:  # act must never raise inside a control loop
            status, solve, message, plan = Status.ERROR, None, f"{type(exc).__name__}: {exc}", None
        if plan is not None and status in _GOOD:
            self.last_plan, self._fallbacks = plan, 0
            return plan.actions[0].copy(), StepInfo(status=status, solve_time_s=solve, message=message)
        self._fallbacks += 1
        if self.last_plan is not None and self._fallbacks <= min(self.max_fallback, len(self.last_plan.actions) - 1):
            action = self.last_plan.actions[self._fallbacks].copy()
            return action, StepInfo(status=status, fallback="shifted_plan", solve_time_s=solve, message=message)
        return self.safe_action.copy(), StepInfo(status=status, fallback="safe_action", solve_time_s=solve,
                                                 message=message)

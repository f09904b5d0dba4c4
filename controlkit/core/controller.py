"""The one interface every controller satisfies: ``reset(seed)``, ``act(obs)``, ``last_step``; planners add ``plan``.

The runner, the benchmarks and real-time loops treat NCAP policies, MLPs, MIP-MPC and sampling planners alike
through it. ``act`` never raises for a planner inside a loop: failures show up in :class:`StepInfo`.
"""

from __future__ import annotations

import abc
import dataclasses
import enum
import time
from typing import Any

import numpy as np


class Status(enum.StrEnum):
    """Outcome of one control step or one plan."""

    OK = "ok"  # solved / computed normally
    SUBOPTIMAL = "suboptimal"  # a feasible answer, e.g. the best incumbent at a time limit
    TIMEOUT = "timeout"  # time limit hit with no usable answer
    INFEASIBLE = "infeasible"
    ERROR = "error"


@dataclasses.dataclass(frozen=True)
class StepInfo:
    """Facts about the last ``act`` call.

    Attributes:
        status: How the primary computation ended.
        compute_time_s: Wall time spent inside ``act`` (filled in by :meth:`Controller.act`).
        fallback: Which fallback produced the action: ``None`` (the primary did), ``"shifted_plan"`` (next step of
            the last good plan) or ``"safe_action"`` (the declared safe action).
        solve_time_s: Time the solver itself reported, when there is one.
        message: Short human-readable detail (e.g. the solver's status string).
        rejected: Candidate actions refused in this step because they were not finite or had the wrong shape
            (the primary's own, or a kept plan's step); the action returned is never one of them.
    """

    status: Status = Status.OK
    compute_time_s: float = 0.0
    fallback: str | None = None
    solve_time_s: float | None = None
    message: str = ""
    rejected: int = 0

    @property
    def used_fallback(self) -> bool:
        """Whether the returned action came from a fallback rather than the primary computation."""
        return self.fallback is not None


@dataclasses.dataclass(frozen=True)
class Plan:
    """An open-loop plan from a planner.

    Attributes:
        actions: ``(H, nu)`` planned actions.
        states: ``(H + 1, nx)`` states the planner's model predicts, starting at ``x0``.
        objective: Cost of the plan under the planner's objective.
        status: How planning ended.
        solve_time_s: Time spent planning.
        gap: Relative optimality gap when the planner certifies one (MILP), else ``None``.
        extras: Planner-specific counts (e.g. binaries, stable neurons).
    """

    actions: np.ndarray
    states: np.ndarray
    objective: float
    status: Status
    solve_time_s: float
    gap: float | None = None
    extras: dict[str, Any] = dataclasses.field(default_factory=dict)


class Controller(abc.ABC):
    """Base class: maps observations to actions, records the facts of each step.

    Subclasses implement :meth:`_act` (returning the action and a :class:`StepInfo`) and, if they hold state or
    randomness, :meth:`reset`. :meth:`act` times the call and stores the facts in :attr:`last_step`.
    """

    last_step: StepInfo = StepInfo()

    def reset(self, seed: int | None = None) -> None:
        """Start a new episode; ``seed`` re-seeds any randomness the controller owns."""
        self.last_step = StepInfo()

    def act(self, obs: Any) -> np.ndarray:
        """Return the action for ``obs`` and record this step's facts in :attr:`last_step`."""
        t0 = time.perf_counter()
        action, info = self._act(obs)
        # Built directly: dataclasses.replace costs several microseconds, paid by every fast controller.
        self.last_step = StepInfo(info.status, time.perf_counter() - t0, info.fallback, info.solve_time_s, info.message,
                                  info.rejected)
        return action

    @abc.abstractmethod
    def _act(self, obs: Any) -> tuple[np.ndarray, StepInfo]:
        """Compute the action for ``obs``."""


class Planner(Controller):
    """A controller that plans over a horizon; ``act`` applies the first action of a receding-horizon plan."""

    @abc.abstractmethod
    def plan(self, x0: np.ndarray, goal: np.ndarray) -> Plan:
        """Plan from state ``x0`` towards ``goal``."""

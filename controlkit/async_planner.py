"""``AsyncPlanner``: a slow planner serving a fast loop.

A background thread re-plans from the freshest observation as fast as the planner allows; ``act`` never waits
for it and applies the freshest plan's action for the current time (the plan step that covers ``now`` since the
observation it was computed from), as asynchronous controllers in ros2_control do. HiGHS and torch release the
GIL while they work, so a thread is enough for the loop to keep its rate.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from controlkit.controller import Controller, Plan, Planner, Status, StepInfo
from controlkit.errors import ControlkitError

_USABLE = (Status.OK, Status.SUBOPTIMAL)


class AsyncPlanner(Controller):
    """Run ``planner.plan`` in a background thread; ``act`` returns the current step of the freshest plan.

    Args:
        planner: A :class:`Planner`.
        goal: The goal passed to every ``plan`` call (change it with :meth:`set_goal`).
        plan_dt: Duration of one plan step in seconds (the model's control period).
        safe_action: Returned before the first plan is ready and when the freshest plan has run out.
        state_of: Maps an observation to the planner's state ``x0`` (default: the observation itself).
    """

    def __init__(
        self,
        planner: Planner,
        goal,
        plan_dt: float,
        safe_action,
        state_of: Callable[[Any], np.ndarray] | None = None,
    ) -> None:
        if not callable(getattr(planner, "plan", None)):
            raise ControlkitError(f"planner: needs plan(x0, goal); {type(planner).__name__} has none.")
        if plan_dt <= 0:
            raise ControlkitError(f"plan_dt: must be > 0, got {plan_dt}.")
        self.planner = planner
        self.plan_dt = float(plan_dt)
        self.safe_action = np.asarray(safe_action, dtype=np.float64)
        self.state_of = state_of or (lambda obs: np.asarray(obs, dtype=np.float64))
        self._goal = np.asarray(goal, dtype=np.float64)
        self._cond = threading.Condition()
        self._obs: tuple[float, Any] | None = None  # (time observed, observation) not yet planned from
        self._plan: tuple[float, Plan] | None = None  # (time of its observation, plan)
        self.plans_done = 0
        self.plan_errors = 0
        self._stop = False
        self._thread = threading.Thread(target=self._loop, daemon=True, name="controlkit-async-planner")
        self._thread.start()

    def set_goal(self, goal) -> None:
        """Plan towards ``goal`` from the next re-plan on."""
        with self._cond:
            self._goal = np.asarray(goal, dtype=np.float64)

    @property
    def last_plan(self) -> Plan | None:
        """The freshest usable plan."""
        return None if self._plan is None else self._plan[1]

    def reset(self, seed: int | None = None) -> None:
        super().reset(seed)
        with self._cond:
            self._obs, self._plan = None, None
        self.planner.reset(seed)

    def close(self) -> None:
        """Stop the background thread (waits for a plan in progress)."""
        with self._cond:
            self._stop = True
            self._cond.notify()
        self._thread.join()

    def _act(self, obs: Any) -> tuple[np.ndarray, StepInfo]:
        now = time.perf_counter()
        with self._cond:
            self._obs = (now, obs)
            self._cond.notify()
            latest = self._plan
        if latest is None:
            return self.safe_action.copy(), StepInfo(Status.OK, fallback="safe_action", message="no plan yet")
        t_obs, plan = latest
        index = int((now - t_obs) / self.plan_dt)
        if index >= len(plan.actions):
            return self.safe_action.copy(), StepInfo(Status.TIMEOUT, fallback="safe_action",
                                                     message=f"freshest plan is {now - t_obs:.3f} s old and ran out")
        return np.asarray(plan.actions[index], dtype=np.float64), StepInfo(
            plan.status, solve_time_s=plan.solve_time_s, message=f"plan step {index}")

    def _loop(self) -> None:
        while True:
            with self._cond:
                while self._obs is None and not self._stop:
                    self._cond.wait()
                if self._stop:
                    return
                (t_obs, obs), self._obs = self._obs, None
                goal = self._goal
            try:
                plan = self.planner.plan(self.state_of(obs), goal)
            except Exception:  # a failed plan keeps the previous one; counted, never raised into the loop
                self.plan_errors += 1
                continue
            self.plans_done += 1
            if plan.status in _USABLE and np.all(np.isfinite(plan.actions)):
                with self._cond:
                    self._plan = (t_obs, plan)

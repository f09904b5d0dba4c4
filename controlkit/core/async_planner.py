"""``AsyncPlanner``: a slow planner serving a fast loop.

The planner re-plans from the freshest observation at its own pace; ``act`` never waits for it and applies the
freshest plan's action for the current time (the plan step that covers ``now`` since the observation the plan
started from), as asynchronous controllers in ros2_control do. Two ways to run the planner:

- ``mode="thread"``: a background thread. HiGHS and torch release the GIL while they solve, but the planner's
  Python parts (model updates, bounds) hold it, which shows up as loop jitter of a few milliseconds.
- ``mode="process"``: a child process (the planner is pickled into it). The loop's process runs nothing but the
  loop; plans come back through a pipe that ``act`` polls without blocking.
"""

from __future__ import annotations

import inspect
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from controlkit.core.child import reap_child, start_child
from controlkit.core.controller import Controller, Plan, Planner, Status, StepInfo
from controlkit.core.errors import ControlkitError, choices_error

_USABLE = (Status.OK, Status.SUBOPTIMAL)
MODES = ("thread", "process")
_log = logging.getLogger(__name__)


def _usable(plan: Any) -> bool:
    return isinstance(plan, Plan) and plan.status in _USABLE and bool(np.all(np.isfinite(plan.actions)))


def _takes_warm_start(planner: Planner) -> bool:
    return "warm_start" in inspect.signature(planner.plan).parameters


def _plan(planner: Planner, x0, goal, warm) -> Any:
    """``planner.plan`` (given the warm start when there is one), or the error's text if it raised."""
    try:
        return planner.plan(x0, goal) if warm is None else planner.plan(x0, goal, warm_start=warm)
    except Exception as exc:  # a failed plan keeps the previous one; counted, never raised into the loop
        return _describe(exc)


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _serve_plans(conn, planner: Planner) -> None:
    """Child process: answer each ``(t_obs, x0, goal, warm)`` with ``(t_obs, plan or error text)`` until ``None``."""
    while True:
        job = conn.recv()
        if job is None:
            return
        t_obs, x0, goal, warm = job
        conn.send((t_obs, _plan(planner, x0, goal, warm)))


class AsyncPlanner(Controller):
    """Plan in the background; ``act`` returns the current step of the freshest plan.

    Args:
        planner: A :class:`Planner` (picklable for ``mode="process"``).
        goal: The goal passed to every ``plan`` call (change it with :meth:`set_goal`).
        plan_dt: Duration of one plan step in seconds (the model's control period).
        safe_action: Returned before the first plan is ready and when the freshest plan has run out.
        state_of: Maps an observation to the planner's state ``x0`` (default: the observation itself).
        replan_every_s: Least time between the starts of two plans (default ``plan_dt``): re-planning faster than
            the model's step gains little and, in thread mode, takes the GIL from the loop more often.
        mode: ``"thread"`` or ``"process"`` (see the module docstring).
        max_restarts: In process mode, how many times a planner process that died is replaced by a fresh one
            (the planner pickled again); after that every step reports status ``error`` with the safe action.
        clock: Monotonic clock in seconds that times observations and plan steps (default
            ``time.perf_counter``); a simulated clock makes the plan-step arithmetic exact in simulations and tests.

    Faults never reach the loop as exceptions: a ``plan`` or ``state_of`` that raises is counted in
    :attr:`plan_errors` (its text in :attr:`last_error`, and in the message of every step that has no plan to
    use), a planner process that dies is restarted (:attr:`restarts`) and said in the next step's message.

    A planner whose ``plan`` takes ``warm_start`` (MIP-MPC, the sampling planners) is given the freshest plan
    shifted to the new observation's time, padded with its last action (before the first plan, the safe action
    held over the planner's ``horizon``): a time-limited MILP then always has an incumbent.
    """

    def __init__(
        self,
        planner: Planner,
        goal,
        plan_dt: float,
        safe_action,
        state_of: Callable[[Any], np.ndarray] | None = None,
        replan_every_s: float | None = None,
        mode: str = "thread",
        max_restarts: int = 5,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        if not callable(getattr(planner, "plan", None)):
            raise ControlkitError(f"planner: needs plan(x0, goal); {type(planner).__name__} has none.")
        if plan_dt <= 0:
            raise ControlkitError(f"plan_dt: must be > 0, got {plan_dt}.")
        if mode not in MODES:
            raise choices_error("mode", mode, MODES)
        if int(max_restarts) < 0:
            raise ControlkitError(f"max_restarts: must be >= 0, got {max_restarts}.")
        self.planner = planner
        self.plan_dt = float(plan_dt)
        self.replan_every_s = self.plan_dt if replan_every_s is None else float(replan_every_s)
        self.safe_action = np.asarray(safe_action, dtype=np.float64)
        self.state_of = state_of or (lambda obs: np.asarray(obs, dtype=np.float64))
        self.mode = mode
        self.max_restarts = int(max_restarts)
        self.clock = clock
        self.restarts = 0
        self.last_error: str | None = None
        self._notice = ""  # said once, in the next step's message (a restart)
        self._warm = _takes_warm_start(planner)
        self._goal = np.asarray(goal, dtype=np.float64)
        self._plan: tuple[float, Plan] | None = None  # (time of its observation, plan)
        self.plans_done = 0
        self.plan_errors = 0
        self._next_start = 0.0
        if mode == "thread":
            self._cond = threading.Condition()
            self._obs: tuple[float, Any] | None = None  # (time observed, observation) not yet planned from
            self._stop = False
            self._thread = threading.Thread(target=self._thread_loop, daemon=True, name="controlkit-async-planner")
            self._thread.start()
        else:
            self._start_process()

    def _start_process(self) -> None:
        self._busy = False
        self._process, self._conn = start_child(_serve_plans, self.planner, "controlkit-async-planner")

    def _restart_process(self) -> None:
        """The child died (pipe closed or broken): replace it, up to ``max_restarts`` times; never raise."""
        code = reap_child(self._process, self._conn)
        self.last_error = f"planner process died (exit code {code})"
        if self.restarts >= self.max_restarts:
            self._process = None
            _log.error("AsyncPlanner: %s after %d restarts; not restarted again.", self.last_error, self.restarts)
            return
        self.restarts += 1
        _log.warning("AsyncPlanner: %s; restarted (%d of %d).", self.last_error, self.restarts, self.max_restarts)
        self._notice = f"{self.last_error}; restarted ({self.restarts} of {self.max_restarts})"
        self._start_process()

    def set_goal(self, goal) -> None:
        """Plan towards ``goal`` from the next re-plan on."""
        self._goal = np.asarray(goal, dtype=np.float64)

    @property
    def last_plan(self) -> Plan | None:
        """The freshest usable plan."""
        return None if self._plan is None else self._plan[1]

    def reset(self, seed: int | None = None) -> None:
        """Forget the plans; in thread mode also reset the planner (in process mode its copy plans from x0 alone)."""
        super().reset(seed)
        self._plan = None
        if self.mode == "thread":
            with self._cond:
                self._obs = None
            self.planner.reset(seed)

    def close(self) -> None:
        """Stop the background planner (waits for a plan in progress)."""
        if self.mode == "thread":
            with self._cond:
                self._stop = True
                self._cond.notify()
            self._thread.join()
        elif self._process is not None:
            try:
                self._conn.send(None)
            except OSError:  # already dead
                pass
            self._process.join(timeout=30)
            if self._process.is_alive():
                self._process.kill()
                self._process.join(timeout=5)
            self._conn.close()
            self._process = None

    def _act(self, obs: Any) -> tuple[np.ndarray, StepInfo]:
        now = self.clock()
        if self.mode == "thread":
            if not self._thread.is_alive() and not self._stop:  # cannot happen short of a bug: say it, start over
                self.last_error = "planner thread stopped"
                self._notice = "planner thread stopped; restarted"
                self._thread = threading.Thread(target=self._thread_loop, daemon=True,
                                                name="controlkit-async-planner")
                self._thread.start()
            with self._cond:
                self._obs = (now, obs)
                self._cond.notify()
        else:
            self._exchange(now, obs)
        action, info = self._current(now)
        if self._notice:
            info = StepInfo(info.status, fallback=info.fallback, solve_time_s=info.solve_time_s,
                            message=f"{info.message}; {self._notice}" if info.message else self._notice)
            self._notice = ""
        return action, info

    def _current(self, now: float) -> tuple[np.ndarray, StepInfo]:
        """The freshest plan's step for ``now``, or the safe action (status ``error`` when the planner failed)."""
        latest = self._plan
        if self.mode == "process" and self._process is None:
            return self.safe_action.copy(), StepInfo(Status.ERROR, fallback="safe_action",
                                                     message=f"{self.last_error}; not restarted again")
        failed = "" if self.last_error is None else f"; last planner error: {self.last_error}"
        if latest is None:
            status = Status.OK if self.last_error is None else Status.ERROR
            return self.safe_action.copy(), StepInfo(status, fallback="safe_action", message=f"no plan yet{failed}")
        t_obs, plan = latest
        index = int((now - t_obs) / self.plan_dt)
        if index >= len(plan.actions):
            return self.safe_action.copy(), StepInfo(Status.TIMEOUT, fallback="safe_action",
                                                     message=f"freshest plan is {now - t_obs:.3f} s old and ran out"
                                                     f"{failed}")
        return np.asarray(plan.actions[index], dtype=np.float64), StepInfo(
            plan.status, solve_time_s=plan.solve_time_s, message=f"plan step {index}")

    def _record(self, t_obs: float, plan: Any) -> None:
        if isinstance(plan, Plan):
            self.plans_done += 1
            if _usable(plan):
                self._plan = (t_obs, plan)
                self.last_error = None
        else:
            self._error(str(plan))

    def _error(self, text: str) -> None:
        if self.plan_errors == 0:
            _log.warning("AsyncPlanner: planning failed (%s); the loop keeps the freshest plan, then the safe action.",
                         text)
        self.plan_errors += 1
        self.last_error = text

    def _warm_start(self, t_obs: float) -> np.ndarray | None:
        """The freshest plan's actions from the step covering ``t_obs`` on, padded with its last action."""
        latest = self._plan
        if not self._warm:
            return None
        if latest is None:  # before the first plan: the safe action held over the horizon, if it is known
            horizon = getattr(self.planner, "horizon", None)
            return None if horizon is None else np.tile(self.safe_action, (int(horizon), 1))
        t_plan, plan = latest
        k = min(max(int((t_obs - t_plan) / self.plan_dt), 0), len(plan.actions) - 1)
        rest = plan.actions[k:]
        return np.concatenate([rest, np.repeat(rest[-1:], len(plan.actions) - len(rest), axis=0)])

    def _exchange(self, now: float, obs: Any) -> None:
        """Process mode: collect a finished plan, start the next one when the child is idle and it is time."""
        if self._process is None:
            return
        try:
            if self._busy and self._conn.poll():
                self._record(*self._conn.recv())
                self._busy = False
            if not self._busy and now >= self._next_start:
                self._next_start = now + self.replan_every_s
                try:
                    x0 = self.state_of(obs)
                except Exception as exc:
                    self._error(f"state_of raised {_describe(exc)}")
                    return
                self._conn.send((now, x0, self._goal, self._warm_start(now)))
                self._busy = True
        except (EOFError, OSError):
            self._restart_process()

    def _thread_loop(self) -> None:
        while True:
            wait = self._next_start - self.clock()
            if wait > 0:
                time.sleep(min(wait, self.replan_every_s))
            with self._cond:
                while self._obs is None and not self._stop:
                    self._cond.wait()
                if self._stop:
                    return
                (t_obs, obs), self._obs = self._obs, None
            self._next_start = self.clock() + self.replan_every_s
            try:
                x0 = self.state_of(obs)
            except Exception as exc:  # counted and reported; the thread plans on from the next observation
                self._error(f"state_of raised {_describe(exc)}")
                continue
            try:
                self._record(t_obs, _plan(self.planner, x0, self._goal, self._warm_start(t_obs)))
            except Exception as exc:  # e.g. a warm start that does not fit: never let the thread die silently
                self._error(_describe(exc))

"""``Fallback``: the real-time contract around any controller -- an action by the deadline, always.

The action is the primary's when it is ready, finite and of the right shape; otherwise the next step of the last
good plan (at most ``max_reuse`` times in a row, as common practice caps repeated reuse); otherwise the declared
safe action. Every step records which one was used and why in :class:`~controlkit.core.controller.StepInfo`.
"""

from __future__ import annotations

import queue
import threading
import time
from typing import Any

import numpy as np

from controlkit.core.controller import Controller, Plan, Status, StepInfo
from controlkit.core.errors import ControlkitError

_FAILED = (Status.TIMEOUT, Status.INFEASIBLE, Status.ERROR)


class _Worker:
    """One background thread running the primary, so the caller can stop waiting at the deadline.

    C-level queues hand work over (a few microseconds, against tens for ``threading.Event`` pairs). An answer
    that arrives after the caller gave up is dropped when the next step finds it.
    """

    def __init__(self, fn) -> None:
        self._fn = fn
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._results: queue.SimpleQueue = queue.SimpleQueue()
        self._pending = False
        threading.Thread(target=self._loop, daemon=True, name="controlkit-fallback").start()

    @property
    def busy(self) -> bool:
        """Whether an earlier, abandoned call is still running (its late answer is discarded here)."""
        if self._pending:
            try:
                self._results.get_nowait()
                self._pending = False
            except queue.Empty:
                pass
        return self._pending

    def call(self, arg: Any, timeout: float) -> tuple[Any, BaseException | None] | None:
        """``fn(arg)`` as ``(result, error)``, or ``None`` if it is not done within ``timeout`` seconds."""
        self._pending = True
        self._jobs.put(arg)
        try:
            out = self._results.get(timeout=max(timeout, 0.0))
        except queue.Empty:
            return None
        self._pending = False
        return out

    def _loop(self) -> None:
        while True:
            arg = self._jobs.get()
            try:
                self._results.put((self._fn(arg), None))
            except BaseException as exc:  # reported to the caller as a fault, never lost
                self._results.put((None, exc))


class Fallback(Controller):
    """Wrap ``primary`` so that ``act`` always returns a finite, in-bounds action in time.

    Args:
        primary: Any controller. If it keeps a ``last_plan`` (:class:`Plan`), its plans feed the shifted-plan fallback;
            if it has a ``time_limit`` attribute and a deadline is set, the time left is passed to it before each step.
        safe_action: The declared safe action (e.g. zero velocity).
        action_low, action_high: Bounds every returned action is clipped into (default: none).
        deadline_s: Return by this long after ``act`` is called; the primary then runs in a background thread and a
            late answer is dropped. ``None`` runs the primary inline (no deadline, still guarded against faults).
        max_reuse: How many consecutive steps may reuse the last good plan before the safe action.
        margin_s: Time kept back from the solver's time limit for the hand-over.
    """

    def __init__(
        self,
        primary: Controller,
        safe_action,
        action_low=None,
        action_high=None,
        deadline_s: float | None = None,
        max_reuse: int = 3,
        margin_s: float = 0.002,
    ) -> None:
        self.primary = primary
        self.safe_action = np.asarray(safe_action, dtype=np.float64)
        self.low = None if action_low is None else np.broadcast_to(np.asarray(action_low, float), self.safe_action.shape)
        self.high = None if action_high is None else np.broadcast_to(np.asarray(action_high, float), self.safe_action.shape)
        if not np.all(np.isfinite(self.safe_action)):
            raise ControlkitError("safe_action: must be finite.")
        if self.low is not None and self.high is not None and np.any(self.low > self.high):
            raise ControlkitError("action_low/action_high: every low must be <= high.")
        if deadline_s is not None and deadline_s <= 0:
            raise ControlkitError(f"deadline_s: must be > 0, got {deadline_s}.")
        if max_reuse < 0:
            raise ControlkitError(f"max_reuse: must be >= 0, got {max_reuse}.")
        self.safe_action = self._clip(self.safe_action)
        self.deadline_s = deadline_s
        self.max_reuse = max_reuse
        self.margin_s = margin_s
        self._worker = _Worker(primary.act) if deadline_s is not None else None
        self._plan: Plan | None = None
        self._plan_index = 0
        self._reuse = 0

    def reset(self, seed: int | None = None) -> None:
        super().reset(seed)
        if self._worker is not None:
            deadline = time.perf_counter() + 10.0  # never reset a primary that is still computing
            while self._worker.busy and time.perf_counter() < deadline:
                time.sleep(0.001)
        self.primary.reset(seed)
        self._plan, self._plan_index, self._reuse = None, 0, 0

    def _clip(self, action: np.ndarray) -> np.ndarray:
        if self.low is not None or self.high is not None:
            action = np.clip(action, self.low, self.high)
        return action

    def _act(self, obs: Any) -> tuple[np.ndarray, StepInfo]:
        t0 = time.perf_counter()
        if self._worker is None:
            try:
                action, error = self.primary.act(obs), None
            except Exception as exc:
                action, error = None, exc
        else:
            if self._worker.busy:
                return self._fall_back(Status.TIMEOUT, "primary still busy with an earlier step")
            if hasattr(self.primary, "time_limit"):
                self.primary.time_limit = max(self.deadline_s - self.margin_s, 1e-3)
            out = self._worker.call(obs, self.deadline_s - (time.perf_counter() - t0))
            if out is None:
                return self._fall_back(Status.TIMEOUT, f"no action within the {self.deadline_s * 1e3:.1f} ms deadline")
            action, error = out
        if error is not None:
            return self._fall_back(Status.ERROR, f"primary raised {type(error).__name__}: {error}")
        step = self.primary.last_step
        try:
            action = np.asarray(action, dtype=np.float64)
        except (TypeError, ValueError):
            return self._fall_back(Status.ERROR, "primary returned a non-numeric action")
        if action.shape != self.safe_action.shape:
            return self._fall_back(Status.ERROR, f"primary returned shape {action.shape}, need {self.safe_action.shape}")
        if not np.all(np.isfinite(action)):
            return self._fall_back(Status.ERROR, "primary returned a non-finite action")
        if step.status in _FAILED and step.fallback is None:
            return self._fall_back(step.status, f"primary reported {step.status.value}: {step.message}")
        plan = getattr(self.primary, "last_plan", None)
        if step.fallback is None and plan is not None:
            self._plan, self._plan_index = plan, 0
        self._reuse = 0
        return self._clip(action), StepInfo(step.status, fallback=step.fallback, solve_time_s=step.solve_time_s,
                                            message=step.message)

    def _fall_back(self, status: Status, reason: str) -> tuple[np.ndarray, StepInfo]:
        plan = self._plan
        if plan is not None and self._reuse < self.max_reuse and self._plan_index + 1 < len(plan.actions):
            self._plan_index += 1
            self._reuse += 1
            action = self._clip(np.asarray(plan.actions[self._plan_index], dtype=np.float64))
            return action, StepInfo(status, fallback="shifted_plan", message=reason)
        return self.safe_action.copy(), StepInfo(status, fallback="safe_action", message=reason)

"""``Fallback``: the real-time contract around any controller -- an action by the deadline, always.

The action is the primary's when it is ready, finite and of the right shape; otherwise the next step of the last
good plan (at most ``max_reuse`` times in a row, as common practice caps repeated reuse); otherwise the declared
safe action. Every step records which one was used and why in :class:`~controlkit.controller.StepInfo`.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np

from controlkit.controller import Controller, Plan, Status, StepInfo
from controlkit.errors import ControlkitError

_FAILED = (Status.TIMEOUT, Status.INFEASIBLE, Status.ERROR)


class _Worker:
    """One background thread running the primary, so the caller can stop waiting at the deadline."""

    def __init__(self, fn) -> None:
        self._fn = fn
        self._go = threading.Event()
        self._done = threading.Event()
        self._done.set()
        self._arg: Any = None
        self.result: tuple[Any, BaseException | None] = (None, None)
        threading.Thread(target=self._loop, daemon=True, name="controlkit-fallback").start()

    @property
    def busy(self) -> bool:
        return not self._done.is_set()

    def submit(self, arg: Any) -> None:
        self._arg = arg
        self._done.clear()
        self._go.set()

    def wait(self, timeout: float) -> bool:
        return self._done.wait(max(timeout, 0.0))

    def _loop(self) -> None:
        while True:
            self._go.wait()
            self._go.clear()
            try:
                self.result = (self._fn(self._arg), None)
            except BaseException as exc:  # reported to the caller as a fault, never lost
                self.result = (None, exc)
            self._done.set()


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
            self._worker.wait(timeout=10.0)  # never reset a primary that is still computing
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
            self._worker.submit(obs)
            if not self._worker.wait(self.deadline_s - (time.perf_counter() - t0)):
                return self._fall_back(Status.TIMEOUT, f"no action within the {self.deadline_s * 1e3:.1f} ms deadline")
            action, error = self._worker.result
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

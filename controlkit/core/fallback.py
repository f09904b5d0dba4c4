"""``Fallback``: the real-time contract around any controller -- always a finite, in-bounds action, by the deadline.

The deadline holds in ``mode="process"``, and in ``mode="thread"`` for a primary that releases the GIL while it
computes; a step that returns late all the same is counted (``deadline_misses``), never hidden.

The action is the primary's when it is ready, finite and of the right shape; otherwise the next step of the last
good plan (at most ``max_reuse`` times in a row, as common practice caps repeated reuse), itself checked the same
way; otherwise the declared safe action. Every step records which one was used, why, and how many candidate
actions were refused in :class:`~controlkit.core.controller.StepInfo`.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from typing import Any

import numpy as np

from controlkit.core.child import reap_child, start_child
from controlkit.core.controller import Controller, Plan, Status, StepInfo
from controlkit.core.errors import ControlkitError, choices_error

_FAILED = (Status.TIMEOUT, Status.INFEASIBLE, Status.ERROR)
MODES = ("thread", "process")
_RESET_WAIT_S = 10.0  # never reset a primary that is still computing; wait this long for it to finish
_log = logging.getLogger(__name__)


def _facts(primary: Any) -> StepInfo:
    """The primary's step facts; a duck-typed primary without (proper) ``last_step`` reports a plain OK step."""
    step = getattr(primary, "last_step", None)
    return step if isinstance(step, StepInfo) else StepInfo()


def _give_time_limit(primary: Any, time_limit: float | None) -> None:
    """Pass the time left to a primary with a settable ``time_limit`` (one that refuses it simply keeps its own)."""
    if time_limit is not None and hasattr(primary, "time_limit"):
        with contextlib.suppress(AttributeError, TypeError, ValueError):
            primary.time_limit = time_limit


def _join(*parts: str) -> str:
    return "; ".join(p for p in parts if p)


def _answer(primary: Any, obs: Any) -> tuple[Any, StepInfo, Any]:
    """One step of the primary: its action, its step facts and the plan it keeps (if any)."""
    action = primary.act(obs)
    return action, _facts(primary), getattr(primary, "last_plan", None)


class _Worker:
    """One background thread running the primary, so the caller can stop waiting at the deadline.

    C-level queues hand work over (a few microseconds, against tens for ``threading.Event`` pairs). An answer
    that arrives after the caller gave up is dropped when the next step finds it. The caller wakes at the
    deadline only if it can take the GIL: a primary that holds it (pure-Python work) delays the hand-over.
    """

    def __init__(self, primary: Any) -> None:
        self._primary = primary
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

    def call(self, obs: Any, time_limit: float | None, timeout: float | None):
        """``(answer, error)`` for ``obs``, or ``None`` if it is not done within ``timeout`` seconds."""
        _give_time_limit(self._primary, time_limit)
        self._pending = True
        self._jobs.put(obs)
        try:
            out = self._results.get(timeout=None if timeout is None else max(timeout, 0.0))
        except queue.Empty:
            return None
        self._pending = False
        return out

    def reset(self, seed: int | None) -> None:
        deadline = time.perf_counter() + _RESET_WAIT_S
        while self.busy and time.perf_counter() < deadline:
            time.sleep(0.001)
        if callable(getattr(self._primary, "reset", None)):
            self._primary.reset(seed)

    def close(self) -> None:
        """The daemon thread ends with the process; nothing to release."""

    def _loop(self) -> None:
        while True:
            obs = self._jobs.get()
            try:
                self._results.put((_answer(self._primary, obs), None))
            except BaseException as exc:  # reported to the caller as a fault, never lost
                self._results.put((None, f"{type(exc).__name__}: {exc}"))


def _serve_primary(conn, primary: Any) -> None:
    """Child process of ``mode="process"``: answer ``("act", obs, time_limit)`` and ``("reset", seed)`` jobs."""
    while True:
        job = conn.recv()
        if job is None:
            return
        if job[0] == "reset":
            if callable(getattr(primary, "reset", None)):
                primary.reset(job[1])
            conn.send(("reset", None))
            continue
        _, obs, time_limit = job
        _give_time_limit(primary, time_limit)
        try:
            action, step, plan = _answer(primary, obs)
            out = ((np.asarray(action) if action is not None else None, step, plan if isinstance(plan, Plan) else None),
                   None)
        except Exception as exc:  # the text travels; an exception object may not unpickle in the parent
            out = (None, f"{type(exc).__name__}: {exc}")
        conn.send(out)


class _ProcessWorker:
    """The primary in a child process: a primary that holds the GIL cannot delay the caller, and one that dies
    (a crash in native code, an out-of-memory kill) is replaced by a fresh copy at the next step."""

    def __init__(self, primary: Any) -> None:
        self._payload = primary
        self.restarts = 0
        self._start()

    def _start(self) -> None:
        self._process, self._conn = start_child(_serve_primary, self._payload, "controlkit-fallback")
        self._pending = False

    def restart(self) -> str:
        """Replace a dead child; returns what happened, for the step's message."""
        code = reap_child(self._process, self._conn)
        self.restarts += 1
        _log.warning("Fallback: the primary's process died (exit code %s); restarted it (%d restarts so far).",
                     code, self.restarts)
        self._start()
        return f"the primary's process died (exit code {code}); restarted"

    @property
    def busy(self) -> bool:
        if self._pending and self._conn.poll():
            self._conn.recv()  # a late answer, or EOF from a dead child (raised to the caller)
            self._pending = False
        return self._pending

    def call(self, obs: Any, time_limit: float | None, timeout: float | None):
        self._conn.send(("act", obs, time_limit))
        self._pending = True
        if not self._conn.poll(None if timeout is None else max(timeout, 0.0)):
            return None
        out = self._conn.recv()
        self._pending = False
        return out

    def reset(self, seed: int | None) -> None:
        try:
            deadline = time.perf_counter() + _RESET_WAIT_S
            while self.busy and time.perf_counter() < deadline:
                time.sleep(0.001)
            if self._pending:  # a step that never ends: start over rather than reset a busy primary
                self._process.kill()
                self._process.join(timeout=5)
                raise EOFError
            self._conn.send(("reset", seed))
            self._conn.recv()
        except (EOFError, OSError):
            self.restart()

    def close(self) -> None:
        try:
            self._conn.send(None)
        except OSError:
            pass
        self._process.join(timeout=5)
        if self._process.is_alive():
            self._process.kill()
            self._process.join(timeout=5)
        self._conn.close()


class Fallback(Controller):
    """Wrap ``primary`` so that ``act`` always returns a finite, in-bounds action, by the deadline when it can.

    Args:
        primary: Any object with ``act(obs)`` -- a :class:`Controller` or a duck-typed one. If it keeps a
            ``last_plan`` (:class:`Plan`), its plans feed the shifted-plan fallback; if it reports ``last_step``, a
            ``timeout``/``infeasible``/``error`` status there counts as a failure; if it has a ``time_limit``
            attribute and a deadline is set, the time left is passed to it before each step.
        safe_action: The declared safe action (e.g. zero velocity).
        action_low, action_high: Bounds every returned action is clipped into (default: none).
        deadline_s: Return by this long after ``act`` is called; the primary then runs in a background thread or
            process (``mode``) and a late answer is dropped. ``None`` runs the primary inline in ``mode="thread"``
            (no deadline, still guarded against faults).
        max_reuse: How many consecutive steps may reuse the last good plan before the safe action.
        margin_s: Time kept back from the solver's time limit for the hand-over.
        mode: Where the primary runs. ``"thread"``: a thread of this process. The deadline then holds only for a
            primary that releases the GIL while it computes (HiGHS, torch, large numpy operations and sleeps do;
            pure-Python work does not): the caller cannot wake at the deadline while the primary holds the GIL, so
            such a step returns late. Late steps are counted in :attr:`deadline_misses` and said in the step's
            message. ``"process"``: a child process (the primary is pickled into it), so a primary holding the GIL
            cannot delay the caller; the first steps fall back while the child starts (about a second), each step
            pays a pipe round trip (tens of microseconds), and a child that dies is restarted with a fresh copy of
            the primary (:attr:`restarts`) while that step falls back.

    Attributes:
        deadline_misses: Steps whose ``act`` returned later than ``deadline_s`` after it was called.
        rejected: Candidate actions refused because they were not finite numbers of the safe action's shape (the
            primary's, or a kept plan's step); each step's count is ``last_step.rejected``.
        restarts: Child processes replaced after they died (``mode="process"``).
    """

    def __init__(
        self,
        primary: Any,
        safe_action,
        action_low=None,
        action_high=None,
        deadline_s: float | None = None,
        max_reuse: int = 3,
        margin_s: float = 0.002,
        mode: str = "thread",
    ) -> None:
        if not callable(getattr(primary, "act", None)):
            raise ControlkitError(f"primary: needs act(obs); {type(primary).__name__} has none.")
        if mode not in MODES:
            raise choices_error("mode", mode, MODES)
        self.primary = primary
        self.safe_action = np.asarray(safe_action, dtype=np.float64)
        if not np.all(np.isfinite(self.safe_action)):
            raise ControlkitError("safe_action: must be finite.")
        self.low, self.high = self._bound("action_low", action_low), self._bound("action_high", action_high)
        if self.low is not None and self.high is not None and np.any(self.low > self.high):
            raise ControlkitError("action_low/action_high: every low must be <= high.")
        if deadline_s is not None and not (np.isfinite(deadline_s) and deadline_s > 0):
            raise ControlkitError(f"deadline_s: must be a finite number > 0, got {deadline_s}.")
        if max_reuse < 0:
            raise ControlkitError(f"max_reuse: must be >= 0, got {max_reuse}.")
        self.safe_action = self._clip(self.safe_action)
        self.deadline_s = deadline_s
        self.max_reuse = max_reuse
        self.margin_s = margin_s
        self.mode = mode
        self.deadline_misses = 0
        self.rejected = 0
        self._worker: _Worker | _ProcessWorker | None = None
        if mode == "process":
            try:  # spawning pickles the primary here, so a primary that cannot travel fails now
                self._worker = _ProcessWorker(primary)
            except Exception as exc:
                raise ControlkitError(f"primary: mode='process' pickles it into a child process, and "
                                      f"{type(primary).__name__} cannot be pickled ({type(exc).__name__}: {exc}).") from None
        elif deadline_s is not None:
            self._worker = _Worker(primary)
        self._plan: Plan | None = None
        self._plan_index = 0
        self._reuse = 0

    @property
    def restarts(self) -> int:
        """Child processes replaced after they died (always 0 in ``mode="thread"``)."""
        return self._worker.restarts if isinstance(self._worker, _ProcessWorker) else 0

    def _bound(self, name: str, value) -> np.ndarray | None:
        if value is None:
            return None
        try:
            bound = np.broadcast_to(np.asarray(value, dtype=np.float64), self.safe_action.shape)
        except ValueError:
            raise ControlkitError(f"{name}: shape {np.shape(value)} does not fit the safe action's "
                                  f"{self.safe_action.shape}.") from None
        if np.any(np.isnan(bound)):
            raise ControlkitError(f"{name}: must not contain NaN.")
        return bound

    def reset(self, seed: int | None = None) -> None:
        super().reset(seed)
        if self._worker is not None:
            self._worker.reset(seed)
        elif callable(getattr(self.primary, "reset", None)):
            self.primary.reset(seed)
        self._plan, self._plan_index, self._reuse = None, 0, 0

    def close(self) -> None:
        """Stop the primary's child process (``mode="process"``); the controller is unusable after."""
        if self._worker is not None:
            self._worker.close()

    def _clip(self, action: np.ndarray) -> np.ndarray:
        if self.low is not None or self.high is not None:
            action = np.clip(action, self.low, self.high)
        return action

    def _checked(self, action: Any) -> np.ndarray | str:
        """``action`` as a fresh float64 array clipped into the bounds, or why it is refused."""
        try:
            a = np.array(action, dtype=np.float64)
        except (TypeError, ValueError):
            return "not numeric"
        if a.shape != self.safe_action.shape:
            return f"shape {a.shape}, need {self.safe_action.shape}"
        if not np.all(np.isfinite(a)):
            return "not finite"
        return self._clip(a)

    def _act(self, obs: Any) -> tuple[np.ndarray, StepInfo]:
        t0 = time.perf_counter()
        action, info = self._step(obs, t0)
        if self.deadline_s is not None:
            late = time.perf_counter() - t0 - self.deadline_s
            if late > 0:
                self.deadline_misses += 1
                info = StepInfo(info.status, fallback=info.fallback, solve_time_s=info.solve_time_s,
                                message=_join(info.message, f"returned {late * 1e3:.1f} ms after the deadline"),
                                rejected=info.rejected)
        return action, info

    def _step(self, obs: Any, t0: float) -> tuple[np.ndarray, StepInfo]:
        if self._worker is None:
            try:
                out, error = _answer(self.primary, obs), None
            except Exception as exc:
                out, error = None, f"{type(exc).__name__}: {exc}"
        else:
            try:
                if self._worker.busy:
                    return self._fall_back(Status.TIMEOUT, "primary still busy with an earlier step")
                limit = None if self.deadline_s is None else max(self.deadline_s - self.margin_s, 1e-3)
                left = None if self.deadline_s is None else self.deadline_s - (time.perf_counter() - t0)
                answer = self._worker.call(obs, limit, left)
            except (EOFError, OSError):  # only a child process's pipe raises these: the child died
                return self._fall_back(Status.ERROR, self._worker.restart())
            except Exception as exc:  # e.g. an observation that cannot be pickled for the child process
                return self._fall_back(Status.ERROR, f"could not hand the observation to the primary: "
                                                     f"{type(exc).__name__}: {exc}")
            if answer is None:
                return self._fall_back(Status.TIMEOUT, f"no action within the {self.deadline_s * 1e3:.1f} ms deadline")
            out, error = answer
        if error is not None:
            return self._fall_back(Status.ERROR, f"primary raised {error}")
        action, step, plan = out
        action = self._checked(action)
        if isinstance(action, str):
            self.rejected += 1
            return self._fall_back(Status.ERROR, f"primary's action refused: {action}", rejected=1)
        if step.status in _FAILED and step.fallback is None:
            return self._fall_back(step.status, f"primary reported {step.status}: {step.message}")
        if step.fallback is None and plan is not None:
            self._plan, self._plan_index = plan, 0
        self._reuse = 0
        return action, StepInfo(step.status, fallback=step.fallback, solve_time_s=step.solve_time_s,
                                message=step.message)

    def _fall_back(self, status: Status, reason: str, rejected: int = 0) -> tuple[np.ndarray, StepInfo]:
        plan = self._plan
        if plan is not None and self._reuse < self.max_reuse:
            self._plan_index += 1
            try:
                candidate = plan.actions[self._plan_index] if self._plan_index < len(plan.actions) else None
            except Exception:  # a plan whose actions cannot be indexed is as broken as one with NaN in it
                candidate = "unreadable"
            if candidate is not None:
                action = "unreadable" if isinstance(candidate, str) else self._checked(candidate)
                if not isinstance(action, str):
                    self._reuse += 1
                    return action, StepInfo(status, fallback="shifted_plan", message=reason, rejected=rejected)
                self.rejected += 1
                rejected += 1
                reason = f"{reason}; kept plan's step {self._plan_index} refused ({action}), plan dropped"
                self._plan = None  # a plan holding one broken step is not trusted for the next
        return self.safe_action.copy(), StepInfo(status, fallback="safe_action", message=reason, rejected=rejected)

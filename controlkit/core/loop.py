"""A fixed-rate control loop that measures itself: latency, jitter, deadline misses, fallbacks.

``run_loop(controller, plant, rate_hz, steps=...)`` reads the plant, asks the controller, writes the action, and
waits for the next tick of a monotonic clock. A plant is anything with ``read() -> obs`` and ``write(action)``;
adapters for a gymnasium env and a bare MuJoCo simulation are here. The loop does not protect against a
controller that raises or dawdles -- wrap it in :class:`~controlkit.core.fallback.Fallback` for that.
"""

from __future__ import annotations

import collections
import dataclasses
import math
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from controlkit.core.controller import Controller
from controlkit.core.errors import ControlkitError

_SPIN_S = 0.0005  # sleep until this close to the tick, then spin: time.sleep alone overshoots by ~0.1 ms


@dataclasses.dataclass(frozen=True)
class LoopReport:
    """What a loop run measured (all times in seconds)."""

    steps: int
    rate_hz: float
    deadline_s: float
    latency: dict[str, float]  # act() compute time: median, p95, p99, max
    jitter: dict[str, float]  # tick start minus scheduled time: median, p95, p99, max
    deadline_misses: int  # steps whose action was written later than deadline_s after the tick
    skipped_ticks: int  # ticks dropped because a step overran its period
    fallbacks: int
    fallback_kinds: dict[str, int]
    statuses: dict[str, int]
    wall_s: float
    rejected_actions: int = 0  # candidate actions the controller refused (non-finite, wrong shape): never written

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def __str__(self) -> str:
        def row(name: str, d: dict[str, float]) -> str:
            return f"{name:<10}" + "".join(f"{d[k] * 1e3:>10.3f}" for k in ("median", "p95", "p99", "max"))

        lines = [
            f"{self.steps} steps at {self.rate_hz:g} Hz in {self.wall_s:.2f} s (deadline {self.deadline_s * 1e3:.1f} ms)",
            f"{'[ms]':<10}{'median':>10}{'p95':>10}{'p99':>10}{'max':>10}",
            row("latency", self.latency),
            row("jitter", self.jitter),
            f"deadline misses {self.deadline_misses}, skipped ticks {self.skipped_ticks}, fallbacks {self.fallbacks}"
            + (f" {self.fallback_kinds}" if self.fallback_kinds else "")
            + (f", rejected actions {self.rejected_actions}" if self.rejected_actions else ""),
            f"statuses {self.statuses}",
        ]
        return "\n".join(lines)


def _percentiles(values: list[float]) -> dict[str, float]:
    x = np.asarray(values, dtype=float)
    return {"median": float(np.median(x)), "p95": float(np.percentile(x, 95)),
            "p99": float(np.percentile(x, 99)), "max": float(x.max())}


def run_loop(
    controller: Controller,
    plant: Any,
    rate_hz: float,
    duration_s: float | None = None,
    steps: int | None = None,
    deadline_s: float | None = None,
    on_step: Callable[[int, Any, np.ndarray], None] | None = None,
) -> LoopReport:
    """Run ``controller`` on ``plant`` at ``rate_hz`` for ``steps`` steps (or ``duration_s`` seconds).

    Args:
        controller: Anything with ``act(obs)``; ``last_step`` (if present) feeds the fallback/status counts.
        plant: Anything with ``read() -> obs`` and ``write(action)``.
        rate_hz: Loop rate; the tick times are fixed in advance on a monotonic clock.
        duration_s, steps: How long to run (exactly one of them).
        deadline_s: Time after each tick by which the action must be written (default: one period).
        on_step: Called as ``on_step(k, obs, action)`` after each write (logging, plotting).
    """
    if not (isinstance(rate_hz, (int, float)) and math.isfinite(rate_hz) and rate_hz > 0):
        raise ControlkitError(f"rate_hz: must be a positive number, got {rate_hz!r}.")
    for method in ("read", "write"):
        if not callable(getattr(plant, method, None)):
            raise ControlkitError(f"plant: needs read() -> obs and write(action); {type(plant).__name__} has no {method}().")
    if not callable(getattr(controller, "act", None)):
        raise ControlkitError(f"controller: needs act(obs); {type(controller).__name__} has none.")
    if (duration_s is None) == (steps is None):
        raise ControlkitError("duration_s/steps: give exactly one of them.")
    n = int(steps) if steps is not None else int(round(duration_s * rate_hz))
    if n < 1:
        raise ControlkitError(f"steps: must be >= 1, got {n}.")
    period = 1.0 / rate_hz
    if deadline_s is None:
        deadline_s = period
    elif deadline_s <= 0:
        raise ControlkitError(f"deadline_s: must be > 0, got {deadline_s}.")
    elif deadline_s > period:
        warnings.warn(f"deadline_s {deadline_s} is longer than the period {period}: the loop cannot keep its rate "
                      "when a step uses it all.", stacklevel=2)

    latency, jitter = [], []
    misses = skipped = fallbacks = rejected = 0
    kinds: collections.Counter = collections.Counter()
    statuses: collections.Counter = collections.Counter()
    start = time.perf_counter()
    tick = 0
    for k in range(n):
        target = start + tick * period
        remaining = target - time.perf_counter()
        if remaining > _SPIN_S:
            time.sleep(remaining - _SPIN_S)
        while time.perf_counter() < target:
            pass
        t_tick = time.perf_counter()
        obs = plant.read()
        action = controller.act(obs)
        t_act = time.perf_counter()
        plant.write(action)
        t_write = time.perf_counter()
        jitter.append(t_tick - target)
        latency.append(t_act - t_tick)
        misses += t_write - t_tick > deadline_s
        step = getattr(controller, "last_step", None)
        if step is not None:
            statuses[getattr(step.status, "value", str(step.status))] += 1
            rejected += getattr(step, "rejected", 0)
            if step.fallback is not None:
                fallbacks += 1
                kinds[step.fallback] += 1
        if on_step is not None:
            on_step(k, obs, action)
        tick += 1
        late_ticks = math.floor((time.perf_counter() - start) / period) - tick + 1
        if late_ticks > 0:  # the step ran past the next tick(s): drop them rather than burst to catch up
            skipped += late_ticks
            tick += late_ticks
    return LoopReport(n, float(rate_hz), deadline_s, _percentiles(latency), _percentiles(jitter), misses, skipped,
                      fallbacks, dict(kinds), dict(statuses), time.perf_counter() - start, rejected)


class GymPlant:
    """A gymnasium env as a plant: ``write`` steps it; episodes restart automatically when they end."""

    def __init__(self, env, seed: int | None = 0) -> None:
        self.env = env
        self.obs, _ = env.reset(seed=seed)
        self.episode_returns: list[float] = []
        self._return = 0.0
        self.writes = 0

    @property
    def total_reward(self) -> float:
        """Reward summed over every write so far (finished episodes and the current one)."""
        return sum(self.episode_returns) + self._return

    def read(self) -> Any:
        return self.obs

    def write(self, action) -> None:
        self.obs, reward, terminated, truncated, _ = self.env.step(action)
        self._return += float(reward)
        self.writes += 1
        if terminated or truncated:
            self.episode_returns.append(self._return)
            self._return = 0.0
            self.obs, _ = self.env.reset()


class MujocoPlant:
    """A bare MuJoCo simulation as a plant: ``write`` sets ``ctrl`` and advances one control period.

    Args:
        model, data: ``mujoco.MjModel`` / ``mujoco.MjData``.
        control_dt: Simulated time per write (a whole number of physics steps).
        observe: ``observe(model, data) -> obs``; default ``concatenate([qpos, qvel])``.
    """

    def __init__(self, model, data, control_dt: float, observe: Callable | None = None) -> None:
        import mujoco

        self._mujoco = mujoco
        self.model, self.data = model, data
        self.nstep = max(1, int(round(control_dt / model.opt.timestep)))
        self.observe = observe or (lambda m, d: np.concatenate([d.qpos, d.qvel]))
        self.writes = 0

    def read(self) -> np.ndarray:
        return self.observe(self.model, self.data)

    def write(self, action) -> None:
        self.data.ctrl[:] = action
        self._mujoco.mj_step(self.model, self.data, nstep=self.nstep)
        self.writes += 1

"""Soak: run_loop for 1000 steps under each fault; every write is finite and in bounds, and the faults are counted.

A fast loop rate keeps each soak short; nothing here asserts on timing (how many answers a background primary or
planner gets in during the loop depends on the machine), only on what every write must satisfy and on counts that
speed cannot change.
"""

import time

import numpy as np
import pytest
from test_async_planner import SlowPlanner
from test_fallback_and_loop import Faulty, RecordingPlant
from test_fallback_faults import HoldsTheGil, KeepsAPlan

from controlkit import Status
from controlkit.core.async_planner import AsyncPlanner
from controlkit.core.fallback import Fallback
from controlkit.core.loop import run_loop

STEPS, RATE_HZ = 1000, 100_000  # a period shorter than a step: the loop never sleeps or spins
WAIT_S = 120.0  # cap on waiting for a child process (only to stop a hang)


def _soak(ctrl):
    plant = RecordingPlant()
    report = run_loop(ctrl, plant, rate_hz=RATE_HZ, steps=STEPS)
    written = np.array(plant.written)
    assert report.steps == STEPS and plant.writes == STEPS and written.shape == (STEPS, 1)
    assert np.all(np.isfinite(written)) and np.all(np.abs(written) <= 1.0)
    return report, written[:, 0]


class DuckTypedNaN:
    """A user's controller: ``act`` only; every fifth action is NaN."""

    def __init__(self):
        self.k = 0

    def act(self, obs):
        self.k += 1
        return np.array([np.nan if self.k % 5 == 0 else 0.5])


@pytest.mark.parametrize("fault", ["raise", "nan", "shape"])
def test_soak_primary_faults(fault):
    every_third = lambda k: k % 3 == 0  # noqa: E731
    report, written = _soak(Fallback(Faulty(fault, every_third), safe_action=[0.0], action_low=[-1], action_high=[1]))
    faults = sum(every_third(k) for k in range(STEPS))
    assert report.fallback_kinds == {"safe_action": faults} and np.count_nonzero(written == 0.0) == faults
    assert report.rejected_actions == (0 if fault == "raise" else faults)


@pytest.mark.parametrize("plan, refused", [([[0.1], [0.2], [np.nan], [0.4]], "nan"), (np.full((4, 2), 0.3), "wide")])
def test_soak_broken_kept_plans(plan, refused):
    report, written = _soak(Fallback(KeepsAPlan(plan), safe_action=[0.0], action_low=[-1], action_high=[1],
                                     max_reuse=5))
    cycles = STEPS // 4  # the primary answers every fourth step and raises in between
    assert np.count_nonzero(written == 0.1) == cycles and report.rejected_actions == cycles
    assert report.fallback_kinds == ({"shifted_plan": cycles, "safe_action": 2 * cycles} if refused == "nan"
                                     else {"safe_action": 3 * cycles})


def test_soak_duck_typed_primary():
    report, written = _soak(Fallback(DuckTypedNaN(), safe_action=[0.0], action_low=[-1], action_high=[1]))
    assert report.fallback_kinds == {"safe_action": STEPS // 5} and report.rejected_actions == STEPS // 5
    assert np.count_nonzero(written == 0.5) == STEPS - STEPS // 5


def test_soak_gil_holding_primary_in_a_process():
    # 1 ms of pure-Python work per step: in a child process it cannot hold up the loop's own thread
    ctrl = Fallback(HoldsTheGil(0.001), safe_action=[0.0], action_low=[-1], action_high=[1], deadline_s=0.005,
                    mode="process")
    try:
        end = time.perf_counter() + WAIT_S
        while time.perf_counter() < end:  # let the child start before the clock runs
            ctrl.act(None)
            if ctrl.last_step.fallback is None:
                break
            time.sleep(0.01)
        report, written = _soak(ctrl)
    finally:
        ctrl.close()
    assert set(np.unique(written)) <= {0.0, 0.5} and ctrl.restarts == 0 and report.rejected_actions == 0
    assert set(report.fallback_kinds) <= {"safe_action"}
    assert report.fallbacks == np.count_nonzero(written == 0.0)


class DiesEveryThirdPlan(SlowPlanner):
    """Plans actions in [-1, 1]; its process exits on its third plan (as a crash in native code would)."""

    def plan(self, x0, goal):
        if self.n == 2:
            import os

            os._exit(3)
        plan = super().plan(x0, goal)
        return type(plan)(np.clip(plan.actions - plan.actions.round(), -1, 1), plan.states, 0.0, Status.OK, 0.0)


def test_soak_dying_planner_process():
    planner = AsyncPlanner(DiesEveryThirdPlan(delay=0.0, horizon=10), goal=[0.0], plan_dt=0.01, safe_action=[0.0],
                           mode="process", replan_every_s=0.0, max_restarts=1)
    ctrl = Fallback(planner, safe_action=[0.0], action_low=[-1], action_high=[1])
    try:
        report, _ = _soak(ctrl)
        end = time.perf_counter() + WAIT_S  # then until every restart is used up, whatever the machine's speed
        while planner._process is not None and time.perf_counter() < end:
            action = ctrl.act([0.0])
            assert np.all(np.isfinite(action)) and abs(action[0]) <= 1.0
            time.sleep(0.005)
    finally:
        planner.close()
    assert planner.restarts == 1 and planner.last_error == "planner process died (exit code 3)"
    ctrl.act([0.0])
    assert ctrl.last_step.fallback == "safe_action" and ctrl.last_step.status is Status.ERROR
    assert sum(report.statuses.values()) == STEPS

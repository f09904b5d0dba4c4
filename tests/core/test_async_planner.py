"""AsyncPlanner: a slow planner behind a fast loop; act never waits, applies the freshest plan's current step."""

import multiprocessing as mp
import os
import time

import numpy as np
import pytest
from test_fallback_and_loop import RecordingPlant

from controlkit import ControlkitError, Plan, Planner, Status, StepInfo
from controlkit.core.async_planner import AsyncPlanner
from controlkit.core.loop import run_loop


class SlowPlanner(Planner):
    """Takes ``delay`` seconds per plan; plan n has actions n + i / 100 for step i (so the test can decode them)."""

    def __init__(self, delay=0.03, horizon=10, fail_after=None):
        self.delay, self.horizon, self.fail_after, self.n = delay, horizon, fail_after, 0

    def plan(self, x0, goal):
        time.sleep(self.delay)
        self.n += 1
        if self.fail_after is not None and self.n > self.fail_after:
            raise RuntimeError("solver failed")
        actions = (self.n + np.arange(self.horizon) / 100)[:, None]
        return Plan(actions, np.zeros((self.horizon + 1, 1)), 0.0, Status.OK, self.delay)

    def _act(self, obs):
        return self.plan(obs, None).actions[0], StepInfo()


WAIT_S = 120.0  # cap on waiting for a background plan (only to stop a hang; never reached when it works)


def _wait(condition, what):
    end = time.perf_counter() + WAIT_S
    while not condition():
        if time.perf_counter() > end:
            raise AssertionError(f"waited {WAIT_S} s for {what}")
        time.sleep(0.002)


@pytest.mark.parametrize("mode", ["thread", "process"])
def test_fast_loop_applies_the_freshest_plan_and_never_goes_back(mode):
    plant = RecordingPlant()
    ctrl = AsyncPlanner(SlowPlanner(delay=0.03), goal=[0.0], plan_dt=0.01, safe_action=[0.0], mode=mode)
    try:
        report = run_loop(ctrl, plant, rate_hz=200, steps=120)
    finally:
        ctrl.close()
    written = np.array(plant.written)[:, 0]
    assert plant.writes == 120 and report.steps == 120  # how many plans came back depends on the machine's speed
    used = written[written > 0]
    plan_ids = np.floor(used + 1e-9)
    assert np.all(np.diff(plan_ids) >= 0)  # never goes back to an older plan
    assert report.fallback_kinds.get("safe_action", 0) == np.count_nonzero(written == 0)


class Clock:
    """A simulated clock: the test sets ``t``."""

    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


class GatedPlanner(Planner):
    """Plan n (from 1) has actions n + i / 100 for step i; each plan waits until the test releases ``gate``.

    The gate and the counters are multiprocessing objects, so they work in the child process of ``mode="process"``.
    """

    def __init__(self, horizon=10):
        ctx = mp.get_context("spawn")
        self.horizon, self.gate, self.started, self.done = horizon, ctx.Semaphore(0), ctx.Value("i", 0), ctx.Value("i", 0)

    def plan(self, x0, goal):
        with self.started.get_lock():
            self.started.value += 1
        self.gate.acquire()
        n = self.done.value + 1
        actions = (n + np.arange(self.horizon) / 100)[:, None]
        plan = Plan(actions, np.zeros((self.horizon + 1, 1)), 0.0, Status.OK, 0.0)
        with self.done.get_lock():
            self.done.value = n
        return plan

    def _act(self, obs):
        return self.plan(obs, None).actions[0], StepInfo()


@pytest.mark.parametrize("mode", ["thread", "process"])
def test_act_applies_the_plan_step_that_covers_now(mode):
    planner, clock = GatedPlanner(horizon=10), Clock()
    ctrl = AsyncPlanner(planner, goal=[0.0], plan_dt=0.01, safe_action=[-1.0], mode=mode, clock=clock)

    def finish_plan(n):
        planner.gate.release()
        _wait(lambda: planner.done.value == n, f"plan {n}")
        if mode == "thread":  # recorded by the planner thread right after plan() returns
            _wait(lambda: ctrl.plans_done == n, f"plan {n} recorded")

    def act_at(t):
        clock.t = t
        action = float(ctrl.act([0.0])[0])
        return action, ctrl.last_step.fallback

    try:
        assert act_at(0.0) == (-1.0, "safe_action")  # no plan yet; the planner starts from this observation
        finish_plan(1)
        assert act_at(0.0255) == (1.02, None)  # plan 1's step 2 covers 25.5 ms; plan 2 starts from here
        _wait(lambda: planner.started.value == 2, "plan 2 to start")
        assert act_at(0.0955) == (1.09, None)
        assert act_at(0.1055) == (-1.0, "safe_action") and ctrl.last_step.status is Status.TIMEOUT  # ran out
        finish_plan(2)
        assert act_at(0.1056) == (2.08, None)  # plan 2 started from the observation at 25.5 ms
        assert ctrl.plans_done == 2 and ctrl.plan_errors == 0
    finally:
        planner.gate.release()
        planner.gate.release()
        ctrl.close()


def test_a_failed_plan_keeps_the_last_plan_and_is_counted():
    clock = Clock()
    ctrl = AsyncPlanner(SlowPlanner(delay=0.0, horizon=3, fail_after=1), goal=[0.0], plan_dt=0.01,
                        safe_action=[-1.0], clock=clock)
    try:
        ctrl.act([0.0])
        _wait(lambda: ctrl.last_plan is not None, "the first plan")
        clock.t = 0.05  # 3 plan steps of 10 ms have passed; every later plan fails
        assert ctrl.act([0.0])[0] == -1.0 and ctrl.last_step.fallback == "safe_action"
        assert ctrl.last_step.status is Status.TIMEOUT
        _wait(lambda: ctrl.plan_errors >= 1, "the failed re-plan")
        assert ctrl.act([0.0])[0] == -1.0 and ctrl.last_error == "RuntimeError: solver failed"
        assert "last planner error: RuntimeError: solver failed" in ctrl.last_step.message
    finally:
        ctrl.close()


def _state_of(obs):
    if isinstance(obs, str):
        raise ValueError(f"cannot read {obs!r}")
    return np.asarray(obs, dtype=float)


@pytest.mark.parametrize("mode", ["thread", "process"])
def test_state_of_that_raises_is_counted_and_reported_and_planning_goes_on(mode):
    ctrl = AsyncPlanner(SlowPlanner(delay=0.0), goal=[0.0], plan_dt=0.01, safe_action=[-1.0], state_of=_state_of,
                        mode=mode, replan_every_s=0.0)
    try:
        ctrl.act("garbled")
        _wait(lambda: ctrl.plan_errors == 1, "the error to be counted")
        assert ctrl.act("garbled")[0] == -1.0 and ctrl.last_step.status is Status.ERROR
        assert "state_of raised ValueError: cannot read 'garbled'" in ctrl.last_step.message

        def planned():
            ctrl.act([0.0])
            return ctrl.plans_done >= 1

        _wait(planned, "a plan from a readable observation")  # the planner survived the error
        assert ctrl.last_error is None and ctrl.last_plan is not None
    finally:
        ctrl.close()


class DiesOnCue(SlowPlanner):
    """Exits its process (as a crash in native code would) when asked to plan from x0 = 99."""

    def plan(self, x0, goal):
        if np.asarray(x0)[0] == 99:
            os._exit(3)
        return super().plan(x0, goal)


@pytest.mark.parametrize("max_restarts", [1, 0])
def test_a_dying_planner_process_is_restarted_or_reported_never_raised(max_restarts):
    ctrl = AsyncPlanner(DiesOnCue(delay=0.0), goal=[0.0], plan_dt=0.01, safe_action=[-1.0], mode="process",
                        replan_every_s=0.0, max_restarts=max_restarts)
    messages = []

    def noticed():
        ctrl.act([0.0])
        messages.append(ctrl.last_step.message)
        return ctrl.last_error is not None

    try:
        ctrl.act([99.0])  # the child dies on this job
        _wait(noticed, "the death to be noticed")
        assert ctrl.last_error == "planner process died (exit code 3)"
        if max_restarts:
            assert ctrl.restarts == 1 and "planner process died (exit code 3); restarted (1 of 1)" in messages[-1]
            _wait(lambda: ctrl.act([0.0]) is not None and ctrl.plans_done >= 1, "a plan from the new process")
            assert ctrl.last_error is None
        else:
            assert ctrl.restarts == 0
            for _ in range(3):
                assert ctrl.act([0.0])[0] == -1.0 and ctrl.last_step.status is Status.ERROR
                assert ctrl.last_step.message == "planner process died (exit code 3); not restarted again"
    finally:
        ctrl.close()


def test_async_planner_bad_inputs():
    with pytest.raises(ControlkitError, match="plan_dt"):
        AsyncPlanner(SlowPlanner(), goal=[0.0], plan_dt=0, safe_action=[0.0])
    with pytest.raises(ControlkitError, match="mode: unknown value 'fiber'; valid choices: process, thread"):
        AsyncPlanner(SlowPlanner(), goal=[0.0], plan_dt=0.1, safe_action=[0.0], mode="fiber")
    with pytest.raises(ControlkitError, match="planner: needs plan"):
        AsyncPlanner(object(), goal=[0.0], plan_dt=0.1, safe_action=[0.0])
    with pytest.raises(ControlkitError, match="max_restarts"):
        AsyncPlanner(SlowPlanner(), goal=[0.0], plan_dt=0.1, safe_action=[0.0], max_restarts=-1)

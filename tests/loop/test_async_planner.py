"""AsyncPlanner: a slow planner behind a fast loop; act never waits, applies the freshest plan's current step."""

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


@pytest.mark.parametrize("mode", ["thread", "process"])
def test_fast_loop_applies_the_current_step_of_the_freshest_plan(mode):
    plant = RecordingPlant()
    ctrl = AsyncPlanner(SlowPlanner(delay=0.03), goal=[0.0], plan_dt=0.01, safe_action=[0.0], mode=mode)
    try:
        if mode == "process":  # let the child process start before the clock runs
            run_loop(ctrl, RecordingPlant(), rate_hz=200, steps=1)
            deadline = time.time() + 60
            while ctrl.last_plan is None and time.time() < deadline:
                ctrl.act([0.0])
                time.sleep(0.01)
        report = run_loop(ctrl, plant, rate_hz=200, steps=120)
    finally:
        ctrl.close()
    written = np.array(plant.written)[:, 0]
    assert plant.writes == 120 and report.steps == 120
    assert ctrl.plans_done >= 3
    used = written[written > 0]
    plan_ids, steps = np.floor(used + 1e-9), np.round((used % 1) * 100)
    assert np.all(np.diff(plan_ids) >= 0)  # never goes back to an older plan
    assert steps.max() >= 2  # later plan steps are applied while the next plan is being computed
    assert report.fallback_kinds.get("safe_action", 0) == np.count_nonzero(written == 0)


def test_a_stale_plan_runs_out_into_the_safe_action():
    ctrl = AsyncPlanner(SlowPlanner(delay=0.0, horizon=3, fail_after=1), goal=[0.0], plan_dt=0.01, safe_action=[-1.0])
    try:
        ctrl.act([0.0])
        deadline = time.time() + 5
        while ctrl.last_plan is None and time.time() < deadline:
            time.sleep(0.005)
        assert ctrl.last_plan is not None
        time.sleep(0.05)  # 3 plan steps of 10 ms have passed; every later plan fails
        action = ctrl.act([0.0])
        assert action[0] == -1.0 and ctrl.last_step.fallback == "safe_action"
        assert ctrl.last_step.status is Status.TIMEOUT
        while ctrl.plan_errors == 0 and time.time() < deadline:  # the re-plan from that observation fails
            time.sleep(0.005)
        assert ctrl.plan_errors >= 1 and ctrl.act([0.0])[0] == -1.0
    finally:
        ctrl.close()


def test_async_planner_bad_inputs():
    with pytest.raises(ControlkitError, match="plan_dt"):
        AsyncPlanner(SlowPlanner(), goal=[0.0], plan_dt=0, safe_action=[0.0])
    with pytest.raises(ControlkitError, match="mode: unknown value 'fiber'; valid choices: process, thread"):
        AsyncPlanner(SlowPlanner(), goal=[0.0], plan_dt=0.1, safe_action=[0.0], mode="fiber")
    with pytest.raises(ControlkitError, match="planner: needs plan"):
        AsyncPlanner(object(), goal=[0.0], plan_dt=0.1, safe_action=[0.0])

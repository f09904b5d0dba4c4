"""Fallback under the faults of issue 15: duck-typed primaries, broken kept plans, GIL-holding and dying primaries."""

import os
import sys
import time

import numpy as np
import pytest

from controlkit import ControlkitError, Controller, Plan, Status, StepInfo
from controlkit.core.fallback import Fallback

WAIT_S = 120.0  # cap on waiting for a child process to start (only to stop a hang; never reached when it works)


class DuckTyped:
    """A controller a user wrote: ``act`` only, no ``last_step``, ``reset`` or base class."""

    def act(self, obs):
        return np.array([0.25])


# 60 s: the deadline path runs (worker thread, timed wait) but no load can make a trivial step miss it.
@pytest.mark.parametrize("deadline", [None, 60.0])
def test_duck_typed_primary_works(deadline):
    ctrl = Fallback(DuckTyped(), safe_action=[0.0], deadline_s=deadline)
    ctrl.reset(seed=0)
    for _ in range(3):
        assert ctrl.act(None)[0] == 0.25
        assert ctrl.last_step.fallback is None and ctrl.last_step.status is Status.OK


def test_primary_without_act_is_refused():
    with pytest.raises(ControlkitError, match="primary: needs act"):
        Fallback(object(), safe_action=[0.0])
    with pytest.raises(ControlkitError, match="mode: unknown value 'fiber'; valid choices: process, thread"):
        Fallback(DuckTyped(), safe_action=[0.0], mode="fiber")
    with pytest.raises(ControlkitError, match="action_low"):
        Fallback(DuckTyped(), safe_action=[0.0], action_low=[np.nan])


class KeepsAPlan(Controller):
    """Keeps ``actions`` as its plan and acts their first row every ``period``-th step; raises in between."""

    def __init__(self, actions, period=4):
        self.actions, self.period, self.k, self.last_plan = np.asarray(actions, float), period, 0, None

    def reset(self, seed=None):
        super().reset(seed)
        self.k, self.last_plan = 0, None

    def _act(self, obs):
        k, self.k = self.k, self.k + 1
        if k % self.period:
            raise RuntimeError("no incumbent")
        self.last_plan = Plan(self.actions, np.zeros((len(self.actions) + 1, 1)), 0.0, Status.OK, 0.0)
        return np.array([0.1]), StepInfo()


def test_nan_in_the_kept_plan_is_never_written():
    ctrl = Fallback(KeepsAPlan([[0.1], [0.2], [np.nan], [0.4]]), safe_action=[0.0], max_reuse=5)
    got = []
    for _ in range(8):
        got.append((float(ctrl.act(None)[0]), ctrl.last_step.fallback, ctrl.last_step.rejected))
    assert got == [(0.1, None, 0), (0.2, "shifted_plan", 0), (0.0, "safe_action", 1), (0.0, "safe_action", 0)] * 2
    assert ctrl.rejected == 2


def test_refusal_is_said_in_the_message():
    ctrl = Fallback(KeepsAPlan([[0.1], [np.inf]]), safe_action=[0.0])
    ctrl.act(None)
    ctrl.act(None)
    assert ctrl.last_step.fallback == "safe_action" and ctrl.last_step.rejected == 1
    assert "kept plan's step 1 refused (not finite)" in ctrl.last_step.message


def test_a_plan_of_another_width_is_refused_not_raised():
    ctrl = Fallback(KeepsAPlan(np.full((4, 2), 0.3)), safe_action=[0.0], action_low=[-1], action_high=[1])
    got = []
    for _ in range(4):
        got.append((float(ctrl.act(None)[0]), ctrl.last_step.fallback, ctrl.last_step.rejected))
        if ctrl.last_step.rejected:
            assert "kept plan's step 1 refused (shape (2,), need (1,))" in ctrl.last_step.message
    assert got == [(0.1, None, 0), (0.0, "safe_action", 1), (0.0, "safe_action", 0), (0.0, "safe_action", 0)]
    assert ctrl.rejected == 1


def test_a_plan_changed_after_it_was_kept_is_checked_at_each_write():
    primary = KeepsAPlan([[0.1], [0.2], [0.3]], period=100)
    ctrl = Fallback(primary, safe_action=[0.0], action_low=[-1], action_high=[1])
    ctrl.act(None)
    primary.last_plan.actions[1, 0] = np.nan  # the primary reuses its buffer, say
    assert ctrl.act(None)[0] == 0.0 and ctrl.last_step.rejected == 1


class HoldsTheGil(Controller):
    """Pure-Python work for ``hold_s`` seconds: it never releases the GIL on its own."""

    def __init__(self, hold_s):
        self.hold_s = hold_s

    def _act(self, obs):
        end = time.perf_counter() + self.hold_s
        while time.perf_counter() < end:
            pass
        return np.array([0.5]), StepInfo()


def test_thread_deadline_with_a_gil_holding_primary_is_counted_as_missed():
    # With a long switch interval the caller cannot take the GIL back before the primary's 0.2 s of work ends,
    # so the step cannot return by its 5 ms deadline on any machine: the miss must be counted and said.
    old = sys.getswitchinterval()
    sys.setswitchinterval(10.0)
    try:
        ctrl = Fallback(HoldsTheGil(0.2), safe_action=[0.0], deadline_s=0.005)
        action = ctrl.act(None)
    finally:
        sys.setswitchinterval(old)
    assert action[0] == 0.0 and ctrl.last_step.fallback == "safe_action"
    assert ctrl.deadline_misses == 1 and "after the deadline" in ctrl.last_step.message
    assert ctrl.last_step.compute_time_s >= 0.2


class HoldsTheGilUntil(Controller):
    """Pure-Python work until ``flag`` exists (or ``cap_s`` passed); reports the process it ran in."""

    def __init__(self, flag, cap_s=WAIT_S):
        self.flag, self.cap_s = str(flag), cap_s

    def _act(self, obs):
        end = time.perf_counter() + self.cap_s
        while not os.path.exists(self.flag) and time.perf_counter() < end:
            pass
        return np.array([0.5]), StepInfo(message=f"pid {os.getpid()}")


def _until_primary_answers(ctrl, obs=None):
    end = time.perf_counter() + WAIT_S
    while time.perf_counter() < end:
        action = ctrl.act(obs)
        if ctrl.last_step.fallback is None:
            return action
        time.sleep(0.01)
    raise AssertionError("the primary never answered")


def test_process_mode_returns_while_a_gil_holding_primary_still_computes(tmp_path):
    flag = tmp_path / "done"
    old = sys.getswitchinterval()
    sys.setswitchinterval(10.0)  # in thread mode this would keep act from returning until the primary finished
    ctrl = Fallback(HoldsTheGilUntil(flag), safe_action=[0.0], action_low=[-1], action_high=[1], deadline_s=0.005,
                    mode="process")
    try:
        first = ctrl.act(None)  # the primary cannot finish before the flag exists, which we write only after
        second = ctrl.act(None)
        assert first[0] == 0.0 and ctrl.last_step.fallback == "safe_action"
        assert second[0] == 0.0 and ctrl.last_step.message == "primary still busy with an earlier step"
        flag.touch()
        sys.setswitchinterval(old)
        assert _until_primary_answers(ctrl)[0] == 0.5
        # The answer came from the child process (on a loaded machine it may also say it came late).
        pid = ctrl.last_step.message.split(";")[0]
        assert pid == f"pid {ctrl._worker._process.pid}" != f"pid {os.getpid()}"
    finally:
        sys.setswitchinterval(old)
        ctrl.close()


class DiesOnCue(Controller):
    """Acts 0.5; exits its process (as a crash in native code would) when the observation is ``"die"``."""

    def _act(self, obs):
        if obs == "die":
            os._exit(3)
        return np.array([0.5]), StepInfo()


def test_a_dying_primary_process_is_restarted_not_raised():
    ctrl = Fallback(DiesOnCue(), safe_action=[0.0], mode="process")  # no deadline: each step waits for its answer
    try:
        assert ctrl.act(None)[0] == 0.5
        assert ctrl.act("die")[0] == 0.0
        assert ctrl.last_step.status is Status.ERROR and ctrl.last_step.fallback == "safe_action"
        assert "died (exit code 3); restarted" in ctrl.last_step.message and ctrl.restarts == 1
        assert ctrl.act(None)[0] == 0.5 and ctrl.last_step.fallback is None  # the fresh copy plans again
        assert ctrl.act(lambda: 0)[0] == 0.0  # an observation that cannot be pickled for the child
        assert "could not hand the observation to the primary" in ctrl.last_step.message
        assert ctrl.act(None)[0] == 0.5 and ctrl.restarts == 1
        ctrl.reset(seed=1)
        assert ctrl.act(None)[0] == 0.5
    finally:
        ctrl.close()


def test_a_primary_that_cannot_be_pickled_is_refused_for_process_mode():
    class Local(DuckTyped):  # a class defined in a function cannot be pickled
        pass

    with pytest.raises(ControlkitError, match="primary: mode='process' pickles it"):
        Fallback(Local(), safe_action=[0.0], mode="process")

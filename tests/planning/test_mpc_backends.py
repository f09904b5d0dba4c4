"""The Pyomo backend solves the same MILP as the HiGHS backend, built once and updated in place."""

import numpy as np
import pytest

from controlkit import Status
from controlkit.planning import MIPMPC


@pytest.mark.parametrize("solver", ["appsi_highs", "highs"])
def test_pyomo_and_highs_backends_reach_same_optimum(small_net, solver):
    kw = dict(control_weight=0.05, x_low=[-3] * 3, x_high=[3] * 3, mip_gap=1e-6)
    x0, goal = np.array([0.2, -0.1, 0.0]), np.array([0.6, 0.2, -0.4])
    ours = MIPMPC(small_net, 3, [-1, -1], [1, 1], **kw).plan(x0, goal)
    other = MIPMPC(small_net, 3, [-1, -1], [1, 1], backend="pyomo", solver=solver, **kw).plan(x0, goal)
    assert ours.status is Status.OK and other.status is Status.OK
    assert other.objective == pytest.approx(ours.objective, rel=1e-5, abs=1e-7)
    np.testing.assert_allclose(other.states, small_net.rollout(x0, other.actions), atol=1e-5)


def test_pyomo_backend_reports_infeasible(small_net):
    mpc = MIPMPC(small_net, 2, [-1, -1], [1, 1], x_low=[-1] * 3, x_high=[1] * 3, backend="pyomo")
    # x_1 box reachable by interval bounds but x_2 must satisfy a contradictory linear constraint
    mpc2 = MIPMPC(small_net, 2, [-1, -1], [1, 1], backend="pyomo",
                  state_constraints=([[1.0, 0, 0], [-1.0, 0, 0]], [-0.5, -0.5]))
    assert mpc2.plan(np.zeros(3), np.zeros(3)).status is Status.INFEASIBLE
    assert mpc.plan(np.zeros(3), np.zeros(3)).status is Status.OK


def test_pyomo_time_limit_is_honoured(make_net):
    net = make_net([24, 24], nx=4, nu=2, seed=5, scale=1.0)
    # a limit no machine meets (this MILP takes minutes to prove), so the outcome cannot depend on the machine
    plan = MIPMPC(net, 8, [-1, -1], [1, 1], backend="pyomo", solver="appsi_highs", time_limit=1e-6).plan(
        np.zeros(4), np.ones(4))
    assert plan.status in (Status.SUBOPTIMAL, Status.TIMEOUT)
    assert plan.extras["message"] == "maxTimeLimit"


def test_pyomo_model_is_built_once_and_matches_highs_over_receding_steps(small_net):
    kw = dict(control_weight=0.05, x_low=[-3] * 3, x_high=[3] * 3, mip_gap=1e-7, goal=np.array([0.6, 0.2, -0.4]))
    highs = MIPMPC(small_net, 3, [-1, -1], [1, 1], **kw)
    pyomo = MIPMPC(small_net, 3, [-1, -1], [1, 1], backend="pyomo", **kw)
    x, models = np.array([0.2, -0.1, 0.0]), []
    for step in range(3):
        u = highs.act(x)
        pyomo.act(x)
        a, b = highs.last_plan, pyomo.last_plan
        assert a.status is Status.OK and b.status is Status.OK
        assert b.objective == pytest.approx(a.objective, rel=1e-6, abs=1e-8)
        assert b.extras["rebuilt"] == (step == 0) and b.extras["warm_start"]
        models.append(pyomo._milp.model)
        x = small_net.step(x, u)  # both planners see the same state sequence
    assert models[0] is models[1] is models[2]
    assert pyomo._milp.warm_start_capable  # appsi_highs takes the shifted plan as a MIP start


def test_pyomo_widened_structure_updates_in_place(small_net):
    goal = np.array([0.3, -0.3, 0.3])
    a, b = np.zeros(3), np.array([3.0, -3.0, 2.0])
    mpc = MIPMPC(small_net, 2, [-0.1, -0.1], [0.1, 0.1], mip_gap=1e-7, backend="pyomo")
    mpc.plan(a, goal)
    assert mpc.plan(b, goal).extras["rebuilt"]  # stability differs far away: the structure widens once
    again = mpc.plan(a, goal)
    assert not again.extras["rebuilt"]
    fresh = MIPMPC(small_net, 2, [-0.1, -0.1], [0.1, 0.1], mip_gap=1e-7).plan(a, goal)
    assert again.objective == pytest.approx(fresh.objective, rel=1e-6, abs=1e-8)
    np.testing.assert_allclose(again.states, small_net.rollout(a, again.actions), atol=1e-5)


def test_pyomo_backend_prices_a_soft_keep_out_box_like_highs(small_net):
    from controlkit.planning import KeepOut

    box = KeepOut((0, 1), (-1.0, -1.0), (1.0, 1.0), penalty=50.0)  # x0 inside, too wide to leave in 3 steps
    kw = dict(x_low=[-4] * 3, x_high=[4] * 3, mip_gap=1e-7, keep_out=[box])
    x0, goal = np.zeros(3), np.array([0.3, 0.0, 0.0])
    ours = MIPMPC(small_net, 3, [-0.05, -0.05], [0.05, 0.05], **kw).plan(x0, goal)
    other = MIPMPC(small_net, 3, [-0.05, -0.05], [0.05, 0.05], backend="pyomo", **kw).plan(x0, goal)
    assert ours.status is Status.OK and other.status is Status.OK and other.extras["violation"] > 0
    assert other.objective == pytest.approx(ours.objective, rel=1e-5, abs=1e-7)


_SCHEDULER_SCRIPT = """
import sys
import numpy as np
sys.path.insert(0, {conftest_dir!r})
from conftest import random_net
from controlkit.planning import MIPMPC

net = random_net([6, 6], nx=3, nu=2, seed=2, identity_frac=0.3)
x0, goal = np.zeros(3), np.full(3, 0.3)
first = MIPMPC(net, 3, [-1, -1], [1, 1], **{first!r}).plan(x0, goal)
second = MIPMPC(net, 3, [-1, -1], [1, 1], threads=1)
plans = [second.plan(x0, goal), second.plan(x0 + 0.05, goal, warm_start=np.zeros((3, 2)))]
print(first.status, *(p.status for p in plans))
"""


@pytest.mark.parametrize("first", [dict(backend="pyomo", solver="appsi_highs"), dict(threads=2)],
                         ids=["pyomo-appsi_highs", "threads=2"])
def test_threads_1_plans_after_another_highs_user_started_the_scheduler(first):
    # HiGHS's thread scheduler is process-wide: a fresh process makes the first user the one that starts it.
    import subprocess
    import sys
    from pathlib import Path

    script = _SCHEDULER_SCRIPT.format(conftest_dir=str(Path(__file__).parent), first=first)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["ok", "ok", "ok"]
    assert "already started HiGHS's process-wide thread scheduler" in proc.stderr

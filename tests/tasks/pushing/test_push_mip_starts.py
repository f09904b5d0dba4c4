"""The pipeline's MIP-MPC: the shifted warm start, the candidate starts and the guarantee on the returned plan."""

from pathlib import Path

import numpy as np
import pytest
from controlkit.envs.push import PushEnv

import controlkit  # noqa: F401
from controlkit.core.controller import Plan, Status
from controlkit.core.errors import ControlkitError
from controlkit.models.network import CompactNetwork
from controlkit.tasks.pushing import CostConfig, PlannerSpec, Task, load_network, make_planner

MODEL = Path(__file__).parents[2] / "data/push_16relu_model.npz"  # the 16-ReLU push model the pipeline learns (seed 0)


def _task(horizon=3, pusher=(-0.07, 0.0)):
    env = PushEnv(goal_in_obs=False)
    env.reset(options={"object": [0.0, 0.0, 0.0], "goal": [0.08, 0.02, 0.0], "pusher": list(pusher)})
    return Task(env, CostConfig(horizon=horizon, terminal_weight=5.0))


def _pusher_only_net():
    """The pusher moves by the action, the object stays: a linear network (two identity neurons)."""
    return CompactNetwork([np.hstack([np.zeros((2, 6)), np.eye(2)]), np.vstack([np.zeros((4, 2)), np.eye(2)])],
                          [np.zeros(2), np.zeros(6)], [np.zeros(2, bool)], 6, 2, residual=True)


def test_shifted_start_pads_the_new_tail_step_with_the_safe_action():
    """Repeating the last planned push for the new tail step can drive the predicted pusher off the state box
    (an infeasible MIP start, no incumbent); the tail must be the safe action."""
    task = _task()
    mip = make_planner("m", PlannerSpec(type="mip_mpc", time_limit=1.0), _pusher_only_net(), task, seed=0)
    last = np.array([[0.01, 0.0], [0.02, 0.0], [0.03, 0.03]])
    mip.last_plan = Plan(last, np.zeros((4, 6)), 0.0, Status.OK, 0.0)
    np.testing.assert_array_equal(mip._warm_actions(), [[0.02, 0.0], [0.03, 0.03], [0.0, 0.0]])
    mip._fallbacks = 1  # one step was applied from the old plan's second action already
    np.testing.assert_array_equal(mip._warm_actions(), [[0.03, 0.03], [0.0, 0.0], [0.0, 0.0]])


def test_samplers_keep_the_repeated_tail_by_default_and_the_tail_is_a_choice():
    task = _task()
    last = Plan(np.array([[0.01, 0.0], [0.02, 0.0], [0.03, 0.03]]), np.zeros((4, 6)), 0.0, Status.OK, 0.0)
    for spec, tail in ((PlannerSpec(type="mppi", n_samples=8), [0.03, 0.03]),
                       (PlannerSpec(type="mppi", n_samples=8, warm_tail="safe"), [0.0, 0.0]),
                       (PlannerSpec(type="mip_mpc", warm_tail="repeat"), [0.03, 0.03])):
        planner = make_planner("p", spec, _pusher_only_net(), task, seed=0)
        planner.last_plan = last
        np.testing.assert_array_equal(planner._warm_actions()[-1], tail)
    with pytest.raises(ControlkitError, match="planners.p.warm_tail"):
        make_planner("p", PlannerSpec(type="cem", warm_tail="last"), _pusher_only_net(), task, seed=0)


def test_shifted_start_stays_feasible_at_the_edge_of_the_state_box():
    # The pusher sits 1.5 cm inside the table's state box and the last plan pushed outwards: holding that push for
    # the tail would leave the box; the safe tail keeps the start feasible, so the solve has an incumbent.
    task = _task(pusher=(-0.07, 0.0))
    mip = make_planner("m", PlannerSpec(type="mip_mpc", time_limit=1.0), _pusher_only_net(), task, seed=0)
    x, goal = task.state_goal()
    x[4] = -mip.problem.x_high[4] + 0.015
    mip.set_goal(goal)
    mip.last_plan = Plan(np.array([[0.0, 0.0], [0.0, 0.0], [-0.01, 0.0]]), np.zeros((4, 6)), 0.0, Status.OK, 0.0)
    start = mip._warm_actions()
    assert mip.problem.violation(mip.problem.net.rollout(x, start)) == 0
    mip.act(x)
    assert mip.last_step.fallback is None and mip.last_step.status in (Status.OK, Status.SUBOPTIMAL)


@pytest.fixture(scope="module")
def push_net():
    return load_network(MODEL)


def test_best_candidate_start_wins_and_the_plan_is_never_worse(push_net):
    task = _task(horizon=5)
    spec = PlannerSpec(type="mip_mpc", time_limit=0.05, mip_gap=1e-3, polish_lps=20, starts=["safe", "greedy"],
                       warm_samples=32, warm_iterations=2)
    mip = make_planner("m", spec, push_net, task, seed=0)
    mip.reset(seed=0)
    x, goal = task.state_goal()
    plan = mip.plan(x, goal)
    scores = plan.extras["start_scores"]
    assert set(scores) == {"shifted", "safe", "greedy", "mppi"}
    assert plan.extras["start"] == min(scores, key=scores.get)
    assert plan.status in (Status.OK, Status.SUBOPTIMAL) and plan.gap is not None
    # The returned plan is a MILP solution: its objective is the model cost of its own rollout ...
    p = mip.problem
    g = p.check_goal(goal)
    rolled = p.net.rollout(x, plan.actions)
    assert float(p.cost(rolled, plan.actions, g)) == pytest.approx(plan.objective, abs=1e-5)
    # ... and never above any candidate's.
    assert plan.objective <= min(scores.values()) + 1e-6
    # Pushing the box towards a goal 8 cm away: the greedy start beats standing still.
    assert scores["greedy"] < scores["safe"]


def test_greedy_candidate_runs_the_greedy_pusher_on_the_model(push_net):
    task = _task(horizon=4)
    mip = make_planner("m", PlannerSpec(type="mip_mpc", starts=["greedy"]), push_net, task, seed=0)
    x, goal = task.state_goal()
    actions = mip.greedy_actions(x, mip.problem.check_goal(goal))
    assert actions.shape == (4, 2) and np.abs(actions).max() <= task.env.step_size + 1e-12
    # The first action is the greedy pusher's action from the real state.
    np.testing.assert_allclose(actions[0], mip._greedy.action(x, goal[:2]))


@pytest.mark.parametrize("kw, field", [
    ({"starts": ["zeros"]}, "starts"),
    ({"warm_samples": 1.5}, "warm_samples"),
    ({"warm_iterations": 0}, "warm_iterations"),
])
def test_bad_start_options_name_the_field(kw, field, push_net):
    with pytest.raises(ControlkitError, match=field):
        make_planner("m", PlannerSpec(type="mip_mpc", **kw), push_net, _task(), seed=0)


def test_keep_out_margin_grows_every_planners_box():
    env = PushEnv(goal_in_obs=False, keep_out=[-0.05, -0.05, 0.05, 0.05])
    env.reset(options={"object": [-0.15, 0.0, 0.0], "goal": [0.15, 0.0, 0.0], "pusher": [-0.22, 0.0]})
    task = Task(env, CostConfig(horizon=3, keep_out_margin=0.02))
    for spec in (PlannerSpec(type="mip_mpc"), PlannerSpec(type="mppi", n_samples=8)):
        box = make_planner("p", spec, _pusher_only_net(), task, seed=0).problem.keep_out[0]
        np.testing.assert_allclose([*box.low, *box.high], [-0.07, -0.07, 0.07, 0.07])


def test_a_step_without_a_milp_plan_applies_the_best_candidate():
    """The object inside the keep-out box and a model under which it cannot move: no plan satisfies the
    constraint, so the step falls back, to the best candidate start rather than to standing still."""
    env = PushEnv(goal_in_obs=False, keep_out=[-0.05, -0.05, 0.05, 0.05])
    env.reset(options={"object": [-0.15, 0.0, 0.0], "goal": [0.15, 0.0, 0.0], "pusher": [-0.22, 0.0]})
    task = Task(env, CostConfig(horizon=3))
    mip = make_planner("m", PlannerSpec(type="mip_mpc", time_limit=1.0, starts=["greedy"]), _pusher_only_net(),
                       task, seed=0)
    x = np.array([0.0, 0.0, 1.0, 0.0, -0.2, 0.0])  # the object in the middle of the box
    mip.set_goal(np.array([0.15, 0.0, 1.0, 0.0, -0.08, 0.0]))
    action = mip.act(x)
    assert mip.last_step.fallback == "best_start" and mip.last_step.status is Status.INFEASIBLE
    goal = mip.problem.check_goal(mip.goal)
    cands = mip.candidates(x, goal, np.zeros((3, 2)))
    best = min(cands, key=lambda k: mip.score(x, cands[k], goal))
    np.testing.assert_allclose(action, cands[best][0])
    # standing still (the base class's last resort) would not move the pusher towards the object at all
    assert np.abs(action).max() > 0


def test_a_start_that_breaks_the_state_box_ranks_after_every_feasible_one():
    """With a priced keep-out box, leaving it can lower the objective by more than a small hard violation costs at
    1000 per unit: a start whose pusher leaves the table must still lose, or the MILP has no incumbent."""
    env = PushEnv(goal_in_obs=False, keep_out=[-0.05, -0.05, 0.05, 0.05])
    env.reset(options={"object": [-0.15, 0.0, 0.0], "goal": [0.15, 0.0, 0.0], "pusher": [-0.28, 0.0]})
    task = Task(env, CostConfig(horizon=3, keep_out_margin=0.02, keep_out_penalty=1e3))
    # object and pusher both move by the action (two identity neurons)
    net = CompactNetwork([np.hstack([np.zeros((2, 6)), np.eye(2)]), np.vstack([np.eye(2), np.zeros((2, 2)), np.eye(2)])],
                         [np.zeros(2), np.zeros(6)], [np.zeros(2, bool)], 6, 2, residual=True)
    mip = make_planner("m", PlannerSpec(type="mip_mpc", time_limit=1.0), net, task, seed=0)
    p = mip.problem
    x = np.array([-0.06, 0.0, 1.0, 0.0, -0.28, 0.0])  # the object 1 cm inside the grown square [-0.07, 0.07]^2
    goal = p.check_goal(np.array([0.15, 0.0, 1.0, 0.0, -0.28, 0.0]))
    out = np.array([[-0.01, 0.0]] * 3)  # leaves the square at once, but the pusher ends 1 cm past the table edge
    still = np.zeros((3, 2))
    hard = float(p.violation(p.net.rollout(x, out), hard_only=True))
    assert hard > 0 and p.violation(p.net.rollout(x, still), hard_only=True) == 0
    cheaper = p.objective(p.net.rollout(x, out), out, goal) + 1e3 * hard < p.objective(p.net.rollout(x, still), still, goal)
    assert cheaper  # so a plain penalty would have preferred the start the MILP cannot take
    assert mip.score(x, out, goal) > mip.score(x, still, goal)


def test_starts_only_applies_the_best_candidate_without_a_milp(push_net):
    """The ablation: the same candidates (same seed) as MIP-MPC, the best one returned as it is."""
    task = _task(horizon=5)
    kw = dict(starts=["safe", "greedy"], warm_samples=32, warm_iterations=2)
    only = make_planner("s", PlannerSpec(type="starts_only", **kw), push_net, task, seed=0)
    # a node limit, not a clock: the MILP's answer does not depend on the machine's speed
    mip = make_planner("m", PlannerSpec(type="mip_mpc", time_limit=None, highs_options={"mip_max_nodes": 1}, **kw),
                       push_net, task, seed=0)
    only.reset(seed=0)
    mip.reset(seed=0)
    x, goal = task.state_goal()
    plan = only.plan(x, goal)
    scores = plan.extras["start_scores"]
    assert set(scores) == {"shifted", "safe", "greedy", "mppi"} and plan.gap is None and plan.status is Status.OK
    assert plan.extras["start"] == min(scores, key=scores.get)
    assert plan.objective == pytest.approx(min(scores.values()))
    p = only.problem
    np.testing.assert_allclose(plan.states, p.net.rollout(x, plan.actions))
    milp = mip.plan(x, goal)  # the same candidates, then the MILP: never worse
    assert milp.extras["start_scores"] == pytest.approx(scores)
    assert milp.objective <= plan.objective + 1e-6
    only.reset(seed=0)  # the same seeded MPPI candidate again
    only.set_goal(goal)
    np.testing.assert_allclose(only.act(x), plan.actions[0])
    assert only.last_step.fallback is None


def test_starts_only_takes_no_unknown_option(tmp_path):
    from controlkit.runner.kinds.model_based_control import ModelBasedControlConfig

    with pytest.raises(ValueError, match="planners.s: starts_only takes no n_samples"):
        ModelBasedControlConfig(name="x", planners={"s": {"type": "starts_only", "n_samples": 8}})


def test_descent_from_several_starts_is_never_worse_than_from_the_best_one(push_net):
    """polish_starts=K descends from the K best candidates (MPPI's elite samples among them) and keeps the best."""
    task = _task(horizon=3)
    x, goal = task.state_goal()
    kw = dict(type="mip_mpc", starts=["safe", "greedy"], warm_samples=32, warm_iterations=2, polish_lps=20,
              branch_and_bound=False, tighten_steps=0)
    one = make_planner("m", PlannerSpec(**kw), push_net, task, seed=0)
    many = make_planner("m", PlannerSpec(polish_starts=6, **kw), push_net, task, seed=0)
    p1, pk = one.plan(x, goal), many.plan(x, goal)
    assert any(k.startswith("mppi_elite") for k in pk.extras["start_scores"])  # more starts than candidates
    assert pk.extras["polish_lps"] > p1.extras["polish_lps"]
    assert pk.objective <= p1.objective + 1e-9
    with pytest.raises(ControlkitError, match="polish_starts"):
        make_planner("m", PlannerSpec(polish_starts=0, **kw), push_net, task, seed=0)

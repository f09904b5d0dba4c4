"""One control step of MIP-MPC's search variants on the obstacle task: model cost and CPU time per plan.

From the first state of the first episode of ``experiments/push_obstacle_search.yaml`` (the 16-ReLU push model,
H = 10), each variant plans twice (a fresh plan, then one with its own last plan as the shifted candidate) and
reports the plan's cost on the model and the CPU seconds it took (``time.process_time``: on a shared machine the
wall-clock time is several times larger and says more about the load than about the planner). Every variant is
work-limited (no wall-clock limit), so the costs repeat exactly.

Variants: ``starts_only`` (the best candidate start); ``descent4`` (+ region descent from the 4 best candidates,
20 LPs each); ``window`` (+ descent from the best, then one 5-node window slice, HiGHS defaults); ``window_lean``
(the same with HiGHS's root heuristics, restarts and symmetry detection off); ``head`` (+ descent from the best,
then the exact head: the first 3 steps' binaries free, 20 nodes per slice, lean HiGHS options).

Run: ``MUJOCO_GL=egl .venv/bin/python benchmarks/obstacle_search_step.py`` (writes
``benchmarks/results/obstacle_search_step.json``).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import gymnasium as gym
import torch
from _table import report

import controlkit  # noqa: F401
from controlkit.core.seeding import spawn_seeds
from controlkit.runner.registry import load_config
from controlkit.tasks.pushing import PlannerSpec, Task, load_network, make_planner

HERE = Path(__file__).resolve().parent
MODEL = HERE / "results" / "push_mip_step_model.npz"
EXPERIMENT = HERE.parent / "experiments" / "push_obstacle_search.yaml"
LEAN = {"mip_heuristic_effort": 0.0, "mip_heuristic_run_feasibility_jump": False, "mip_heuristic_run_rins": False,
        "mip_heuristic_run_rens": False, "mip_heuristic_run_root_reduced_cost": False, "mip_allow_restart": False,
        "mip_detect_symmetry": False}
CANDIDATES = dict(starts=["safe", "greedy"], warm_samples=200, warm_iterations=5)
WORK = dict(type="mip_mpc", time_limit=None, tighten_steps=0, branch_and_bound=False, **CANDIDATES)
VARIANTS = {
    "starts_only": dict(type="starts_only", **CANDIDATES),
    "descent4": dict(WORK, polish_lps=20, polish_starts=4),
    "window": dict(WORK, polish_lps=20, search="window", search_size=2, search_slices=1, search_nodes=5),
    "window_lean": dict(WORK, polish_lps=20, search="window", search_size=2, search_slices=1, search_nodes=5,
                        highs_options=LEAN),
    "head": dict(WORK, polish_lps=20, search="head", search_size=3, search_slices=2, search_nodes=20,
                 highs_options=LEAN),
}


def main() -> None:
    torch.set_num_threads(1)
    config = load_config(EXPERIMENT, [f"model.file={MODEL}"])
    net = load_network(MODEL)
    env = gym.make(config.env, max_episode_steps=config.max_steps, goal_in_obs=False, **config.env_kwargs)
    task = Task(env.unwrapped, config.cost)
    env.reset(seed=spawn_seeds(config.seed, 1, "episodes")[0])
    x, goal = task.state_goal()
    load = os.getloadavg()
    rows = []
    for name, spec in VARIANTS.items():
        planner = make_planner(name, PlannerSpec(**spec), net, task, seed=config.seed)
        planner.reset(config.seed)
        for k in range(2):  # the second plan has the first one's shifted plan among its candidates
            warm = None if k == 0 else planner._warm_actions()
            c0 = time.process_time()
            plan = planner.plan(x, goal, warm_start=warm)
            cpu = time.process_time() - c0
            planner.last_plan = plan
            e = plan.extras
            rows.append({"variant": name, "plan": k, "model_cost": plan.objective, "cpu_s": cpu,
                         "best_start_cost": min(e["start_scores"].values()), "polish_lps": e.get("polish_lps", 0),
                         "search_slices": e.get("search_slices", 0),
                         "search_improvements": e.get("search_improvements", 0),
                         "time_limited": bool(e.get("time_limited", False))})
    env.close()
    report("obstacle_search_step", rows, {
        "command": "MUJOCO_GL=egl .venv/bin/python benchmarks/obstacle_search_step.py",
        "model": str(MODEL.relative_to(HERE.parent)), "horizon": config.cost.horizon,
        "load_average_before": load, "load_average_after": os.getloadavg()})


if __name__ == "__main__":
    main()

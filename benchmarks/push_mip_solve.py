"""One MIP-MPC solve on the learned pushing model: what HiGHS reaches within a time limit, side by side.

From the first state of the first evaluation episode of a ``push_mip_mpc`` run, solve the MILP at H = 5 and
H = 10 with time limits of 0.3, 1 and 10 s, started from all-zero actions and from MPPI's plan (500 samples x 5
iterations), with interval bounds only and with LP tightening of every step. Reports the objective, the
certified relative gap and the MPPI plan's objective for comparison (ratio MIP / MPPI; < 1 means the MILP
found a better plan than the sampler).

Run: ``.venv/bin/python benchmarks/push_mip_solve.py runs/push_mip_mpc/<run>/model.npz``
(writes benchmarks/results/push_mip_solve.json)
"""

from __future__ import annotations

import sys
import time

import gymnasium as gym
import numpy as np
import torch
from _table import report

import controlkit  # noqa: F401
from controlkit.tasks.pushing import CostConfig, PlannerSpec, Task, load_network, make_planner


def main(model_file: str, seed: int = 10_000) -> None:
    torch.set_num_threads(1)
    net = load_network(model_file)
    env = gym.make("controlkit/Push-v0", goal_in_obs=False, orientation_tolerance=3.1416)
    rows = []
    for horizon in (5, 10):
        task = Task(env.unwrapped, CostConfig(horizon=horizon, pusher_weight=0.2, terminal_weight=5.0))
        env.reset(seed=seed)
        x, goal = task.state_goal()
        mppi = make_planner("mppi", PlannerSpec(type="mppi", n_samples=500, iterations=5, temperature=0.003),
                            net, task, seed=0)
        mppi.reset(seed=0)
        sampled = mppi.plan(x, goal)
        for tighten in (0, horizon):
            for limit in (0.3, 1.0, 10.0):
                mip = make_planner("mip", PlannerSpec(type="mip_mpc", time_limit=limit, mip_gap=1e-3,
                                                      tighten_steps=tighten), net, task, seed=0)
                for start_name, start in (("zeros", np.zeros((horizon, 2))), ("mppi", sampled.actions)):
                    t0 = time.perf_counter()
                    plan = mip.plan(x, goal, warm_start=start)
                    rows.append({"H": horizon, "lp_tighten": bool(tighten), "time_limit_s": limit, "start": start_name,
                                 "binaries": plan.extras.get("binaries"), "wall_s": time.perf_counter() - t0,
                                 "status": plan.status.value, "objective": plan.objective,
                                 "gap": plan.gap if plan.gap is not None else float("nan"),
                                 "mppi_objective": sampled.objective,
                                 "mip/mppi": plan.objective / sampled.objective})
    env.close()
    report("push_mip_solve", rows, {"model_file": model_file, "seed": seed})


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: push_mip_solve.py MODEL.npz")
    main(sys.argv[1])

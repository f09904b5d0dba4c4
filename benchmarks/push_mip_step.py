"""MIP-MPC control-step time at H = 10 in the closed pushing loop, next to MPPI on the same model and episodes.

Runs the first ``episodes`` evaluation episodes of ``experiments/push_mip_mpc.yaml`` (same seeds, cost, bounds)
on a saved sparse model with: MIP-MPC at a 0.08 s time limit (the 100 ms step target leaves room for bounds and
model updates), MIP-MPC at 0.3 s (the experiment's setting), and MPPI (500 x 5). Reports the median and p95
step times (target: MIP-MPC median <= 100 ms), success, final distance, and per MIP step the median number of
binaries, certified gap and how often HiGHS improved on its start. Wall-clock times depend on machine load:
the JSON records the load average before and after.

Run (one to two minutes on 2 quiet cores, 4 episodes of 40 steps per planner):
``.venv/bin/python benchmarks/push_mip_step.py runs/push_mip_mpc/<run>/model.npz``
(writes benchmarks/results/push_mip_step.json). Without an argument it uses
``benchmarks/results/push_mip_step_model.npz``: the 16-ReLU model that ``experiments/push_mip_mpc.yaml`` learns
(seed 0), saved so that the step time can be re-measured without learning it again.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from _table import report

import controlkit  # noqa: F401
from controlkit.controller import Controller
from controlkit.model_based_control import (
    CostConfig,
    PlannerSpec,
    Task,
    load_network,
    make_planner,
    run_episode,
    summarise,
)

COST = CostConfig(horizon=10, position_weight=1.0, orientation_weight=0.0, pusher_weight=0.2, terminal_weight=5.0)
PLANNERS = {
    "mip_mpc_0.08s": PlannerSpec(type="mip_mpc", time_limit=0.08, mip_gap=1e-3),
    "mip_mpc_0.3s": PlannerSpec(type="mip_mpc", time_limit=0.3, mip_gap=1e-3),
    "mip_mpc_polish": PlannerSpec(type="mip_mpc", time_limit=0.02, mip_gap=1e-3, polish_lps=100),
    "mppi": PlannerSpec(type="mppi", n_samples=500, iterations=5, temperature=0.003, noise_std=0.3),
}


class _Recorder(Controller):
    """Wraps a MIP planner to keep each step's binaries, gap and whether the plan beat its start."""

    def __init__(self, inner: Controller) -> None:
        self.inner, self.rows = inner, []

    def reset(self, seed: int | None = None) -> None:
        super().reset(seed)
        self.inner.reset(seed)

    def set_goal(self, goal) -> None:
        self.inner.set_goal(goal)

    def _act(self, obs):
        start = self.inner._warm_actions()
        a = self.inner.act(obs)
        plan = self.inner.last_plan
        if plan is not None and start is not None:
            p = self.inner.problem
            x0, goal = np.asarray(obs, dtype=np.float64), p.check_goal(self.inner.goal)
            start_cost = float(p.cost(p.net.rollout(x0, start), start, goal))
            self.rows.append((plan.extras.get("binaries", 0), plan.gap if plan.gap is not None else np.nan,
                              plan.objective < start_cost - 1e-9))
        return a, self.inner.last_step


def main(model_file: str, episodes: int = 4, max_steps: int = 40, seed: int = 0) -> None:
    torch.set_num_threads(1)
    net = load_network(model_file)
    env = gym.make("controlkit/Push-v0", max_episode_steps=max_steps, goal_in_obs=False, position_tolerance=0.02,
                   orientation_tolerance=3.1416)
    task = Task(env.unwrapped, COST)
    load_before = os.getloadavg()[0]
    rows = []
    for name, spec in PLANNERS.items():
        planner = make_planner(name, spec, net, task, seed=seed)
        rec = _Recorder(planner) if spec.type == "mip_mpc" else planner
        s = summarise([run_episode(env, task, rec, seed + 10_000 + i) for i in range(episodes)])
        row = {"planner": name, "median_step_ms": 1e3 * s["step_time_median_s"],
               "p95_step_ms": 1e3 * s["step_time_p95_s"], "success": s["success_rate"],
               "final_distance": s["final_distance_mean"], "fallbacks": s["fallbacks"]}
        if rec is not planner:
            b, g, better = (np.array(v, dtype=float) for v in zip(*rec.rows))
            row.update(binaries_median=float(np.median(b)), gap_median=float(np.nanmedian(g)),
                       improved_start=float(better.mean()))
        rows.append(row)
    env.close()
    report("push_mip_step", rows, {"model_file": model_file, "episodes": episodes, "max_steps": max_steps,
                                   "horizon": COST.horizon, "load_average_before": load_before,
                                   "load_average_after": os.getloadavg()[0]})


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else str(Path(__file__).parent / "results" / "push_mip_step_model.npz"))

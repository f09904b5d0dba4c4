"""MIP-MPC control-step time at H = 10 in the closed pushing loop, next to MPPI and CEM on the same model and episodes.

Runs the first ``--episodes`` evaluation episodes of ``experiments/push_mip_mpc.yaml`` (same seeds, cost, bounds)
on a saved sparse model with: MIP-MPC at a 0.08 s and a 0.3 s time limit (shifted-plan start), MIP-MPC with the
region-descent start (``polish_lps``), MIP-MPC from the best of four candidate starts (``mip_mpc_starts``, the
experiment's best MIP row), MPPI (500 x 5) and CEM (250 x 10). Reports the median and p95 step times (target:
MIP-MPC median <= 100 ms), success, final distance, and per MIP step the median number of binaries, the median
certified gap, the share of steps with a finite gap and how often the MILP's plan beat its start (the best
candidate for ``mip_mpc_starts``, the shifted plan otherwise). Wall-clock times depend on machine load: the JSON
records the load average before and after.

Run (about two minutes on 2 quiet cores, 4 episodes of 40 steps per planner):
``.venv/bin/python benchmarks/push_mip_step.py [MODEL.npz] [--episodes N] [--planners a,b,...]``
(writes benchmarks/results/push_mip_step.json, or push_mip_step_<N>ep.json for another episode count). Without
a model it uses ``benchmarks/results/push_mip_step_model.npz``: the 16-ReLU model that
``experiments/push_mip_mpc.yaml`` learns (seed 0), saved so that the step time can be re-measured without
learning it again. A reduced closed-loop comparison (all 12 episodes of the experiment, about a minute):
``--episodes 12 --planners mip_mpc_starts,mppi,cem``.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from _table import report

import controlkit  # noqa: F401
from controlkit.core.controller import Controller
from controlkit.tasks.pushing import (
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
    "mip_mpc_starts": PlannerSpec(type="mip_mpc", time_limit=0.05, mip_gap=1e-3, starts=["safe", "greedy"],
                                  warm_samples=200, warm_iterations=5),
    "mppi": PlannerSpec(type="mppi", n_samples=500, iterations=5, temperature=0.003, noise_std=0.3),
    "cem": PlannerSpec(type="cem", n_samples=250, iterations=10, elite_frac=0.1),
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
        if plan is not None and start is not None and self.inner.last_step.fallback is None:
            p = self.inner.problem
            x0, goal = np.asarray(obs, dtype=np.float64), p.check_goal(self.inner.goal)
            scores = plan.extras.get("start_scores")
            start_cost = min(scores.values()) if scores else float(p.cost(p.net.rollout(x0, start), start, goal))
            self.rows.append((plan.extras.get("binaries", 0), plan.gap if plan.gap is not None else np.nan,
                              plan.objective < start_cost - 1e-7 * (1.0 + abs(start_cost))))
        return a, self.inner.last_step


def main(model_file: str, episodes: int = 4, planners: list[str] | None = None, max_steps: int = 40,
         seed: int = 0) -> None:
    torch.set_num_threads(1)
    unknown = sorted(set(planners or ()) - set(PLANNERS))
    if unknown:
        raise SystemExit(f"--planners: unknown {', '.join(unknown)}; valid: {', '.join(PLANNERS)}")
    net = load_network(model_file)
    env = gym.make("controlkit/Push-v0", max_episode_steps=max_steps, goal_in_obs=False, position_tolerance=0.02,
                   orientation_tolerance=3.1416)
    task = Task(env.unwrapped, COST)
    load_before = os.getloadavg()[0]
    rows = []
    for name, spec in PLANNERS.items():
        if planners and name not in planners:
            continue
        planner = make_planner(name, spec, net, task, seed=seed)
        rec = _Recorder(planner) if spec.type == "mip_mpc" else planner
        s = summarise([run_episode(env, task, rec, seed + 10_000 + i) for i in range(episodes)])
        row = {"planner": name, "median_step_ms": 1e3 * s["step_time_median_s"],
               "p95_step_ms": 1e3 * s["step_time_p95_s"], "success": s["success_rate"],
               "final_distance": s["final_distance_mean"], "fallbacks": s["fallbacks"]}
        if rec is not planner:
            b, g, better = (np.array(v, dtype=float) for v in zip(*rec.rows))
            row.update(binaries_median=float(np.median(b)), gap_median=float(np.nanmedian(g)),
                       finite_gap=float(np.isfinite(g).mean()), improved_start=float(better.mean()))
        rows.append(row)
    env.close()
    name = "push_mip_step" if episodes == 4 else f"push_mip_step_{episodes}ep"
    report(name, rows, {"model_file": model_file, "episodes": episodes, "max_steps": max_steps,
                        "planners": [r["planner"] for r in rows], "horizon": COST.horizon,
                        "load_average_before": load_before,
                        "load_average_after": os.getloadavg()[0]})


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?", default=str(Path(__file__).parent / "results" / "push_mip_step_model.npz"))
    parser.add_argument("--episodes", type=int, default=4)
    parser.add_argument("--planners", default="", help="comma-separated subset of: " + ", ".join(PLANNERS))
    args = parser.parse_args()
    main(args.model, args.episodes, [p for p in args.planners.split(",") if p])

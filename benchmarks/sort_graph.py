"""Sorting without the task layer: planners on the graph model with a cost over all boxes, next to the task-layer
baseline (the one-box MLP model driven by controlkit/tasks/pushing/sort_task.py), on the same Sort-v0 episodes.

Graph rows (:func:`controlkit.tasks.pushing.make_graph_planner`): every box pulled to its region centre, the
pusher to the pre-push point of the cheapest unsorted box, the interaction graph fixed at each plan's first
state. ``graph_mip`` is MIP-MPC from candidate starts (shifted plan, no motion, the greedy pusher on the target
box closed on the model, an MPPI pass 200 x 5), then HiGHS 0.05 s (``HIGHS_FAST`` options); ``graph_mppi`` is
MPPI 500 x 5. Baseline rows (``task_*``): experiments/sort3_mip_mpc.yaml's planners on
``benchmarks/results/push_mip_step_model.npz`` through the task layer. Same seeds (10000 + episode) for all.
Target (issue 18): graph MIP-MPC >= 80 % fully sorted, >= the baseline, median step <= 200 ms.

Run: ``MUJOCO_GL=egl .venv/bin/python benchmarks/sort_graph.py [--episodes 16] [--planners a,b] [--model F]``
(writes ``benchmarks/results/sort_graph.json``; about 25 min for the four default rows on 2 loaded cores).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from controlkit.envs.tabletop import TABLE_HALF
from scipy.stats import binomtest

import controlkit  # noqa: F401  (registers controlkit/*)
from controlkit.models.graph import GraphNetwork
from controlkit.tasks.pushing import CostConfig, PlannerSpec, Task, load_network, make_planner, run_episode, summarise
from controlkit.tasks.pushing.graph_sort import GraphSortTask, make_graph_planner

RESULTS = Path(__file__).parent / "results"
# On this MILP (about 500 binaries, 3 000 rows at H = 10) HiGHS's presolve, feasibility jump and symmetry
# detection take 0.1-0.4 s before its time limit is checked; without them a 0.05 s limit ends at about 0.07 s.
HIGHS_FAST = {"presolve": "off", "mip_heuristic_run_feasibility_jump": False, "mip_detect_symmetry": False}
GRAPH = {
    "graph_mip": ("mip_mpc", dict(time_limit=0.05, mip_gap=1e-3, starts=["safe", "greedy"], warm_samples=200,
                                  warm_iterations=5, highs_options=HIGHS_FAST)),
    "graph_mppi": ("mppi", dict(n_samples=500, iterations=5, temperature=0.003, noise_std=0.3)),
    "graph_cem": ("cem", dict(n_samples=250, iterations=10)),
}
TASK = {
    "task_mppi": PlannerSpec(type="mppi", n_samples=500, iterations=5, temperature=0.003, noise_std=0.3),
    "task_mip": PlannerSpec(type="mip_mpc", time_limit=0.05, mip_gap=1e-3, starts=["safe", "greedy"],
                            warm_samples=200, warm_iterations=5),
}
TASK_COST = CostConfig(horizon=10, position_weight=1.0, orientation_weight=0.0, pusher_weight=0.2,
                       terminal_weight=5.0)


def boxes_sorted(state: np.ndarray, regions: np.ndarray) -> int:
    """Number of box centres inside their regions in a world-frame Sort-v0 state."""
    xy = state[: 4 * len(regions)].reshape(-1, 4)[:, :2]
    return int(np.sum(np.all((xy >= regions[:, :2]) & (xy <= regions[:, 2:]), axis=1)))


def diagnose(states: np.ndarray, regions: np.ndarray, window: int = 20) -> list[dict]:
    """Why each box that is not sorted at the end of an episode is not (one dict per such box).

    ``reason`` is the first that applies: ``off_table`` (the box left the table, which ends the episode),
    ``region_taken`` (another box's centre is inside its region), ``stalled`` (the pusher moved less than 3 cm
    over the last ``window`` steps), ``pusher_far`` (the pusher ends more than 15 cm from the box), else
    ``in_progress`` (the episode's steps ran out while the pusher was working). Also: the box's final distance to
    its region centre, the pusher's final distance to the box, the pusher's travel over the last ``window`` steps,
    the last step at which the box moved by more than 1 mm.
    """
    n = len(regions)
    xy = states[:, : 4 * n].reshape(len(states), n, 4)[:, :, :2]
    pusher = states[:, -2:]
    inside = np.all((xy[-1] >= regions[:, :2]) & (xy[-1] <= regions[:, 2:]), axis=1)
    travel = float(np.linalg.norm(np.diff(pusher[-window - 1:], axis=0), axis=1).sum())
    out = []
    for i in np.flatnonzero(~inside):
        others = np.delete(xy[-1], i, axis=0)
        taken = bool(np.any(np.all((others >= regions[i, :2]) & (others <= regions[i, 2:]), axis=1)))
        far = float(np.linalg.norm(pusher[-1] - xy[-1, i]))
        moved = np.flatnonzero(np.linalg.norm(np.diff(xy[:, i], axis=0), axis=1) > 1e-3)
        reason = ("off_table" if np.abs(xy[-1, i]).max() > TABLE_HALF else "region_taken" if taken
                  else "stalled" if travel < 0.03 else "pusher_far" if far > 0.15 else "in_progress")
        out.append({"box": int(i), "reason": reason,
                    "distance_to_region_m": float(np.linalg.norm(xy[-1, i] - (regions[i, :2] + regions[i, 2:]) / 2)),
                    "pusher_distance_m": far, "pusher_travel_last_m": travel,
                    "last_moved_step": int(moved[-1] + 1) if len(moved) else 0, "steps": len(states) - 1})
    return out


def wilson(k: int, n: int) -> list[float]:
    """95 % Wilson interval of a success rate."""
    ci = binomtest(k, n).proportion_ci(0.95, method="wilson")
    return [float(ci.low), float(ci.high)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--episodes", type=int, default=16)
    ap.add_argument("--objects", type=int, default=3)
    ap.add_argument("--max-steps", type=int, default=150)
    ap.add_argument("--planners", default="graph_mip,graph_mppi,task_mppi,task_mip")
    ap.add_argument("--model", default=str(RESULTS / "sort_graph_model.npz"))
    ap.add_argument("--baseline-model", default=str(RESULTS / "push_mip_step_model.npz"))
    ap.add_argument("--pusher-weight", type=float, default=0.3)
    ap.add_argument("--horizon", type=int, default=10, help="horizon of the graph rows (the task rows keep 10)")
    ap.add_argument("--out", default=str(RESULTS / "sort_graph.json"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    names = args.planners.split(",")
    unknown = [n for n in names if n not in GRAPH and n not in TASK]
    if unknown:
        raise SystemExit(f"--planners: unknown {unknown}; valid: {sorted({*GRAPH, *TASK})}")
    load = os.getloadavg()
    out = {"command": "MUJOCO_GL=egl .venv/bin/python benchmarks/sort_graph.py " + " ".join(
        f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if v != ap.get_default(k)),
        "load_average_before": load, "planners": {}}
    if any(n in GRAPH for n in names):
        graph = GraphNetwork.load(args.model, field="--model")
        out["graph_model"] = {"file": args.model, "relu": graph.n_relu, "identity": graph.n_identity,
                              **graph.metadata}
    env = gym.make("controlkit/Sort-v0", n_objects=args.objects, goal_in_obs=False,
                   max_episode_steps=args.max_steps)
    seeds = [10000 + i for i in range(args.episodes)]
    for name in names:
        t0 = time.perf_counter()
        if name in GRAPH:
            kind, knobs = GRAPH[name]
            task = GraphSortTask(env.unwrapped)
            planner = make_graph_planner(kind, graph, env.unwrapped, horizon=args.horizon, seed=0,
                                         pusher_weight=args.pusher_weight, **knobs)
        else:
            task = Task(env.unwrapped, TASK_COST)
            planner = make_planner(name, TASK[name], load_network(args.baseline_model), task, seed=0)
        episodes = [run_episode(env, task, planner, seed=s) for s in seeds]
        row = summarise(episodes)
        k = sum(e.success for e in episodes)
        row.update(sorted=k, success_ci95=wilson(k, len(episodes)), wall_s=time.perf_counter() - t0,
                   episode_steps=[len(e.step_times) for e in episodes],
                   boxes_sorted_final=[boxes_sorted(e.states[-1], env.unwrapped.regions) for e in episodes],
                   unsorted={str(e.seed): diagnose(e.states, env.unwrapped.regions) for e in episodes
                             if not e.success})
        reasons = [b["reason"] for eps in row["unsorted"].values() for b in eps]
        row["unsorted_reasons"] = {r: reasons.count(r) for r in sorted(set(reasons))}
        out["planners"][name] = row
        print(f"{name:12s} sorted {k}/{len(episodes)} {row['success_ci95']}  final {row['final_distance_mean']:.3f}"
              f" ± {row['final_distance_ci95']:.3f} m  steps {row['steps_mean']:.0f}  median step "
              f"{1e3 * row['step_time_median_s']:.0f} ms  fallbacks {row['fallbacks']}  unsorted "
              f"{row['unsorted_reasons']}", flush=True)
    out["load_average_after"] = os.getloadavg()
    Path(args.out).write_text(json.dumps(out, indent=2, default=float))


if __name__ == "__main__":
    main()

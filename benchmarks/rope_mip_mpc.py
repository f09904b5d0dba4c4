"""Shaping a rope on the sparse particle-graph model: graph MIP-MPC vs MPPI and CEM on the same model, same seeds.

Every planner plans on ``benchmarks/results/rope_graph_model.npz`` (written by ``benchmarks/rope_graph_model.py``)
compiled for the rope's particles with the particle edges fixed at each plan's first state
(:func:`controlkit.tasks.pushing.rope_task.make_rope_planner`), with the same cost over all particles
(:func:`~controlkit.tasks.pushing.rope_task.rope_goal`: every particle to its target point, the pusher weakly to the
point behind the particle farthest from its target), horizon, bounds and seeds (10000 + episode).

- ``graph_mip``: MIP-MPC from candidate starts (the shifted plan, no motion, and an MPPI pass identical to the
  ``graph_mppi`` row's planner), the best one improved by the MILP's region descent (one LP per activation region,
  at most ``--lps``; no branch and bound). Every limit is a count (no time limit, no LP tightening by time), so
  its plans do not depend on the machine's speed, and its plan never costs more on the model than the MPPI
  candidate's.
- ``graph_mip_bnb`` (not in the default rows: several seconds per plan): the same, then HiGHS branch and bound
  from the descent's plan, limited to ``--nodes`` nodes, its sub-MIP heuristics off.
- ``graph_mppi``: MPPI 500 x 5; ``graph_cem``: CEM 250 x 10.

Per episode it also records how it ended (``episode_ends``: the rope's motion over the last 10 steps, the
pusher's final distance to the rope and whether it ends on the side of the nearest particle facing its target,
the share of steps that left the rope still) and counts the unsolved episodes whose rope moved less than 2 mm over
the last 10 steps (``stalled_episodes``), and of those the ones that end with the pusher on the target side
(``stalled_on_target_side``).

Target (issue 18): final shape error (mean particle distance to the target, m) <= 0.5x MPPI's over 20 episodes,
with 95 % intervals. Writes ``benchmarks/results/rope_mip_mpc.json`` and ``rope_mip_mpc.png`` (rope shapes vs
target).

Run: ``MUJOCO_GL=egl .venv/bin/python benchmarks/rope_mip_mpc.py [--episodes 20] [--planners a,b] [--max-steps 40]``
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

import controlkit  # noqa: F401  (registers controlkit/*)
from controlkit.core.stats import mean_ci95
from controlkit.models.graph import GraphNetwork
from controlkit.tasks.pushing import run_episode, summarise
from controlkit.tasks.pushing.graph_plots import plot_rope_shapes
from controlkit.tasks.pushing.rope_task import RopeTask, make_rope_planner, ordered_target

RESULTS = Path(__file__).parent / "results"


# HiGHS without the sub-MIP heuristics, presolve, feasibility jump and symmetry detection: at the root of the rope
# MILP (H = 5, 8 particles) RINS/RENS alone took over 20 s per plan on 2 loaded cores.
BNB_OPTIONS = {"presolve": "off", "mip_heuristic_run_rins": False, "mip_heuristic_run_rens": False,
               "mip_heuristic_effort": 0.0, "mip_heuristic_run_feasibility_jump": False, "mip_detect_symmetry": False}


def planners(lps: int, nodes: int) -> dict[str, tuple[str, dict]]:
    """The compared rows: planner type and its knobs (every limit a count, none a time)."""
    starts = dict(starts=["safe"], warm_samples=500, warm_iterations=5, time_limit=None, tighten_steps=0)
    return {
        "graph_mip": ("mip_mpc", dict(**starts, polish_lps=lps, branch_and_bound=False)),
        "graph_mip_bnb": ("mip_mpc", dict(**starts, polish_lps=lps, mip_gap=1e-3,
                                          highs_options={**BNB_OPTIONS, "mip_max_nodes": nodes})),
        "graph_mppi": ("mppi", dict(n_samples=500, iterations=5, temperature=0.003, noise_std=0.3)),
        "graph_cem": ("cem", dict(n_samples=250, iterations=10)),
    }


def stall_facts(states: np.ndarray, n: int, target: np.ndarray, window: int = 10) -> dict:
    """How an episode ended: did the rope move over its last ``window`` steps (mean particle displacement, m),
    how far the pusher ends from the nearest particle (m), whether it ends on the side of that particle that faces
    the particle's target point (from there a push moves the particle away from its target), and the share of
    steps that left the rope still (< 1 mm mean particle motion)."""
    pts = states[:, : 2 * n].reshape(len(states), n, 2)
    step_motion = np.linalg.norm(np.diff(pts, axis=0), axis=-1).mean(-1)
    pusher = states[-1, 2 * n: 2 * n + 2]
    k = int(np.argmin(np.linalg.norm(pts[-1] - pusher, axis=-1)))
    tgt = ordered_target(pts[-1], target)
    return {"rope_motion_last_m": float(np.linalg.norm(pts[-1] - pts[-1 - min(window, len(pts) - 1)], axis=-1).mean()),
            "pusher_to_rope_end_m": float(np.linalg.norm(pts[-1, k] - pusher)),
            "pusher_on_target_side": bool((pusher - pts[-1, k]) @ (tgt[k] - pts[-1, k]) > 0),
            "idle_step_share": float(np.mean(step_motion < 1e-3))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--episodes", type=int, default=20)
    ap.add_argument("--max-steps", type=int, default=40)
    ap.add_argument("--planners", default="graph_mip,graph_mppi,graph_cem")
    ap.add_argument("--model", default=str(RESULTS / "rope_graph_model.npz"))
    ap.add_argument("--target", default="line", help="the env's target: line or arc")
    ap.add_argument("--horizon", type=int, default=5)
    ap.add_argument("--lps", type=int, default=30, help="region-descent LPs per plan of the graph_mip rows")
    ap.add_argument("--nodes", type=int, default=1, help="HiGHS branch-and-bound node limit of graph_mip_bnb")
    ap.add_argument("--pusher-weight", type=float, default=0.1)
    ap.add_argument("--out", default=str(RESULTS / "rope_mip_mpc.json"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    rows = planners(args.lps, args.nodes)
    names = args.planners.split(",")
    unknown = [n for n in names if n not in rows]
    if unknown:
        raise SystemExit(f"--planners: unknown {unknown}; valid: {sorted(rows)}")
    graph = GraphNetwork.load(args.model, field="--model")
    n = int(graph.metadata["n_particles"])
    load = os.getloadavg()
    out = {"command": "MUJOCO_GL=egl .venv/bin/python benchmarks/rope_mip_mpc.py " + " ".join(
        f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if v != ap.get_default(k)),
        "load_average_before": load, "graph_model": {"file": args.model, "relu": graph.n_relu,
                                                     "identity": graph.n_identity, **graph.metadata},
        "planners": {}}
    env = gym.make("controlkit/Rope-v0", n_particles=n, segment_length=graph.metadata["segment_length"],
                   target=args.target, goal_in_obs=False, max_episode_steps=args.max_steps)
    task = RopeTask(env.unwrapped)
    seeds = [10000 + i for i in range(args.episodes)]
    episodes, targets, start_errors = {}, [], []
    for name in names:
        kind, knobs = rows[name]
        planner = make_rope_planner(kind, graph, env.unwrapped, horizon=args.horizon, seed=0,
                                    pusher_weight=args.pusher_weight, **knobs)
        t0 = time.perf_counter()
        eps = []
        for s in seeds:
            eps.append(run_episode(env, task, planner, seed=s))
            if len(targets) < len(seeds):
                targets.append(env.unwrapped.target.copy())
                start_errors.append(eps[-1].distances[0])
        episodes[name] = eps
        row = summarise(eps)
        facts = [stall_facts(e.states, n, t) for e, t in zip(eps, targets)]
        stalled = [f["rope_motion_last_m"] < 2e-3 and not e.success for f, e in zip(facts, eps)]
        row.update(wall_s=time.perf_counter() - t0, final_distances=[e.final_distance for e in eps],
                   episode_steps=[len(e.step_times) for e in eps], episode_ends=facts,
                   stalled_episodes=int(sum(stalled)),
                   stalled_on_target_side=int(sum(s and f["pusher_on_target_side"] for s, f in zip(stalled, facts))),
                   idle_step_share=float(np.mean([f["idle_step_share"] for f in facts])))
        out["planners"][name] = row
        print(f"{name:11s} final shape error {100 * row['final_distance_mean']:.2f} ± "
              f"{100 * row['final_distance_ci95']:.2f} cm  success {row['success_rate']:.0%}  median step "
              f"{1e3 * row['step_time_median_s']:.0f} ms  fallbacks {row['fallbacks']}  stalled "
              f"{row['stalled_episodes']} ({row['stalled_on_target_side']} on the target side)  idle steps "
              f"{row['idle_step_share']:.0%}", flush=True)
    out["start_shape_error"] = dict(zip(("mean", "ci95"), mean_ci95(start_errors)))
    if "graph_mip" in episodes and "graph_mppi" in episodes:
        mip = np.array(out["planners"]["graph_mip"]["final_distances"])
        mppi = np.array(out["planners"]["graph_mppi"]["final_distances"])
        ratio = mip.mean() / mppi.mean()
        # paired bootstrap over episodes (same seeds): interval of the ratio of mean final errors
        rng = np.random.default_rng(0)
        idx = rng.integers(len(mip), size=(2000, len(mip)))
        boot = mip[idx].mean(1) / mppi[idx].mean(1)
        out["target"] = {"ratio_mip_to_mppi": float(ratio),
                         "ratio_ci95": [float(np.quantile(boot, 0.025)), float(np.quantile(boot, 0.975))],
                         "paired_difference_m": dict(zip(("mean", "ci95"), mean_ci95(mip - mppi))),
                         "met": bool(ratio <= 0.5)}
        print(f"graph_mip / graph_mppi final error ratio {ratio:.2f} {out['target']['ratio_ci95']}")
    out["load_average_after"] = os.getloadavg()
    Path(args.out).write_text(json.dumps(out, indent=2, default=float))
    plot_rope_shapes(Path(args.out).with_suffix(".png"), episodes, targets, n)


if __name__ == "__main__":
    main()

"""Phantom rope motion: what the rope graph models predict when the pusher does not touch the rope.

From the start states of ``benchmarks/rope_mip_mpc.py`` (Rope-v0, 8 particles, seeds 10000 + episode), roll each
model out over ``--horizon`` steps under two action sequences that leave the real rope where it is: no motion, and
the pusher moving straight away from the rope's mean point at full speed. Every model is compiled as the planners
compile it (the particle edges at the start state) and rolled out by its ``CompactNetwork``; the real env runs the
same actions. Reported per model: the mean particle displacement (m) over the horizon, predicted and real, its
mean over particles of the predicted displacement along the pusher's motion, and the displacement the model predicts
with its graph read at every state instead (``displacement_switched_m``: a model with ``pusher_radius`` then drops
the pusher's edges once it is out of range, as a planner that re-reads the graph would). A planner's cost over all particles
rewards such phantom motion whenever it points towards the target.

Run: ``MUJOCO_GL=egl .venv/bin/python benchmarks/rope_model_drift.py`` (a minute); writes
``benchmarks/results/rope_model_drift.json``.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import gymnasium as gym
import numpy as np

import controlkit  # noqa: F401  (registers controlkit/*)
from controlkit.core.stats import mean_ci95
from controlkit.models.graph import GraphNetwork
from controlkit.tasks.pushing.rope_data import as_graph_states

RESULTS = Path(__file__).parent / "results"
# the selected and dense radius-edge models, the model with a pusher edge to every particle, and the first one
MODELS = ("rope_graph_model.npz", "rope_graph_dense.npz", "rope_graph_model_allpusher.npz",
          "rope_graph_model_nowander.npz")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--episodes", type=int, default=20)
    ap.add_argument("--horizon", type=int, default=5)
    ap.add_argument("--models", default=",".join(MODELS),
                    help="comma-separated model files (relative to benchmarks/results/ unless absolute)")
    ap.add_argument("--out", default=str(RESULTS / "rope_model_drift.json"))
    args = ap.parse_args()
    graphs = {name: GraphNetwork.load(RESULTS / name, field="--models") for name in args.models.split(",")}
    n = 8
    env = gym.make("controlkit/Rope-v0", n_particles=n, segment_length=0.03, goal_in_obs=False)
    step = float(env.unwrapped.step_size)
    rows: dict[str, dict[str, list[float]]] = {}
    for i in range(args.episodes):
        env.reset(seed=10000 + i)
        start = env.unwrapped.state()
        x0 = as_graph_states(start, n)
        pts0 = start[: 2 * n].reshape(n, 2)
        away = start[2 * n:] - pts0.mean(0)
        away = away / max(float(np.linalg.norm(away)), 1e-9)
        for kind, action in (("still", np.zeros(2)), ("away", step * away / np.abs(away).max())):
            actions = np.tile(action, (args.horizon, 1))
            env.reset(seed=10000 + i)
            for a in actions:
                env.step(a.astype(np.float32))
            real = np.linalg.norm(env.unwrapped.particles() - pts0, axis=1).mean()
            rows.setdefault(f"real/{kind}", {}).setdefault("displacement_m", []).append(float(real))
            for name, g in graphs.items():
                x = x0
                for a in actions:  # the graph read at every state (what training's one-step loss sees)
                    x = g.step(x, a)
                switched = x[: 4 * n].reshape(n, 4)[:, :2] - pts0
                pred = g.compact_at(x0).rollout(x0, actions)[-1][: 4 * n].reshape(n, 4)[:, :2]
                moved = pred - pts0
                row = rows.setdefault(f"{name}/{kind}", {})
                row.setdefault("displacement_m", []).append(float(np.linalg.norm(moved, axis=1).mean()))
                row.setdefault("displacement_switched_m", []).append(float(np.linalg.norm(switched, axis=1).mean()))
                if kind == "away":
                    along = moved @ (action / np.linalg.norm(action))
                    row.setdefault("along_pusher_m", []).append(float(along.mean()))
    env.close()
    out = {"command": "MUJOCO_GL=egl .venv/bin/python benchmarks/rope_model_drift.py" + "".join(
        f" --{k.replace('_', '-')} {v}" for k, v in vars(args).items() if v != ap.get_default(k)),
        "load_average": os.getloadavg(), "horizon": args.horizon, "episodes": args.episodes,
        "rows": {k: {m: dict(zip(("mean", "ci95"), mean_ci95(v))) for m, v in row.items()}
                 for k, row in rows.items()}}
    Path(args.out).write_text(json.dumps(out, indent=2))
    for k, row in out["rows"].items():
        print(f"{k:42s} " + "  ".join(f"{m} {100 * v['mean']:.2f} ± {100 * v['ci95']:.2f} cm" for m, v in row.items()))


if __name__ == "__main__":
    main()

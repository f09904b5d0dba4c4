"""Learn the 16-ReLU sparse dynamics model of the T shape (Push-T) and measure its 10-step position and heading error.

The model is the one ``experiments/push_t_pose.yaml`` learns (its seed and its ``data``, ``model``, ``train`` and
``sparsify`` blocks, read from the file): contact-rich data from the greedy pusher pushing the T towards random
targets with noise, a dense ReLU model in pusher-relative coordinates, sparsified round by round down to 16 ReLUs
per step, folded back to the world frame. ``planning_quality.py --tasks pushT`` plans on it too.

Besides the pipeline's validation rollout error it reports what the planners depend on, on fresh held-out push
data (other seeds than the training data): the object's position error (m) and heading error (rad) after 10
open-loop steps of the model, for the selected sparse model and the dense one, next to how far the T really
moved in those 10 steps; and the object motion the model predicts in one step while the pusher is more than 12 cm
away (truly none).

Run (a few CPU minutes):
``.venv/bin/python benchmarks/pusht_model.py [--seed 0] [--out benchmarks/results/pusht_model.npz] [--schedule 64,48,32]``
(writes the model and ``<out>.json`` next to it with its rollout errors and timings; ``--schedule`` sparsifies
further or less than the experiment does, e.g. to 16 ReLUs).
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import yaml
from _table import RESULTS, report
from controlkit.envs.tabletop import wrap_angle

import controlkit  # noqa: F401
from controlkit.models.network import CompactNetwork
from controlkit.runner.kinds.model_based_control import ModelBasedControlConfig, learn_model

EXPERIMENT = Path(__file__).resolve().parent.parent / "experiments" / "push_t_pose.yaml"
HORIZON = 10  # open-loop steps of the error measurement (the planners' horizon)
FAR = 0.12  # m: the pusher this far from the T's origin cannot touch it (the T's radius is 6.7 cm)


def config_from_experiment(seed: int, schedule: list[int] | None = None) -> dict:
    """The learning part of the Push-T experiment, with a greedy planner only (no closed loop is run here);
    ``schedule`` replaces its sparsification schedule (ReLUs kept per round)."""
    exp = yaml.safe_load(EXPERIMENT.read_text())
    keep = {k: exp[k] for k in ("env_kwargs", "data", "model", "train", "sparsify")}
    if schedule is not None:
        keep["sparsify"] = {**keep["sparsify"], "schedule": list(schedule)}
    return {**keep, "seed": seed, "planners": {"greedy": {"type": "greedy"}}, "episodes": 1, "frames": False}


def held_out_errors(nets: dict[str, CompactNetwork], env_kwargs: dict, seed: int, trajectories: int = 40,
                    steps: int = 25) -> dict[str, dict[str, float]]:
    """10-step position/heading errors and far-pusher drift of each net on fresh push-through data of the T."""
    from controlkit.models.data import collect
    from controlkit.tasks.pushing.greedy import PushThroughExplorer
    from controlkit.tasks.pushing.task import push_data_kwargs

    kwargs = push_data_kwargs(env_kwargs)
    data = collect("controlkit/Push-v0", trajectories, steps, seed, behaviour=PushThroughExplorer(
        kwargs.get("shape", "t"), float(kwargs.get("step_size", 0.03))), env_kwargs=kwargs)
    s, a = data.states, data.actions
    starts = [(i, t) for i in range(s.shape[0]) for t in range(0, s.shape[1] - HORIZON - 1, 3)]
    moved = [np.linalg.norm(s[i, t + HORIZON, :2] - s[i, t, :2]) for i, t in starts]
    far = np.linalg.norm(s[:, :-1, :2] - s[:, :-1, 4:6], axis=-1) > FAR
    out = {"true_10_step_move_median_m": float(np.median(moved)), "starts": len(starts),
           "far_pusher_steps": int(far.sum())}
    for name, net in nets.items():
        pos, head = [], []
        for i, t in starts:
            end, true = net.rollout(s[i, t], a[i, t:t + HORIZON])[-1], s[i, t + HORIZON]
            pos.append(np.linalg.norm(end[:2] - true[:2]))
            head.append(abs(wrap_angle(np.arctan2(end[3], end[2]) - np.arctan2(true[3], true[2]))))
        drift = np.linalg.norm(net.step(s[:, :-1][far], a[far])[:, :2] - s[:, :-1][far][:, :2], axis=1)
        out[name] = {"position_error_median_m": float(np.median(pos)), "position_error_p90_m": float(np.quantile(pos, 0.9)),
                     "heading_error_median_rad": float(np.median(head)),
                     "heading_error_p90_rad": float(np.quantile(head, 0.9)),
                     "far_pusher_step_drift_median_m": float(np.median(drift))}
    return out


def main(seed: int, out: Path, schedule: list[int] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    cfg = config_from_experiment(seed, schedule)
    config = ModelBasedControlConfig(name="pusht_model", **cfg)
    log = logging.getLogger("pusht_model")
    with tempfile.TemporaryDirectory() as tmp:
        # the pipeline writes every sparsify round into a run folder; only the selected model is kept
        ctx = SimpleNamespace(seed=seed, log=log.info, path=lambda name: Path(tmp) / name, progress=lambda it, **_: it)
        t0, c0 = time.perf_counter(), time.process_time()
        net, facts = learn_model(config, ctx)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        dense = CompactNetwork.load(Path(tmp) / "model_dense.npz")
        out.parent.mkdir(parents=True, exist_ok=True)
        part = out.with_suffix(".part.npz")
        net.save(part)
        os.replace(part, out)  # atomic: a half-written model never looks whole
    # held-out data from another stream than the training data's (which used seed itself)
    errors = held_out_errors({"sparse": net, "dense": dense}, cfg["env_kwargs"], seed + 12345)
    log.info(f"10-step errors on held-out pushes: {errors}")
    facts.pop("file"), facts.pop("dense_file")
    rows = facts.pop("rounds")
    report(out.stem, rows, {"model_file": os.path.relpath(out, RESULTS.parent.parent), "seed": seed,
                            "experiment": os.path.relpath(EXPERIMENT, RESULTS.parent.parent), "config": cfg,
                            "model": facts, "held_out_10_step": errors, "wall_s": wall, "cpu_s": cpu,
                            "load_average_after": os.getloadavg()[0]})


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(RESULTS / "pusht_model.npz"))
    ap.add_argument("--schedule", default=None,
                    help="ReLUs kept per sparsification round, e.g. 64,48,32,24,16 (default: the experiment's)")
    args = ap.parse_args()
    main(args.seed, Path(args.out), None if args.schedule is None else [int(v) for v in args.schedule.split(",")])

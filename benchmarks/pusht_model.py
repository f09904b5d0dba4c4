"""Learn the 16-ReLU sparse dynamics model of the T shape that ``planning_quality.py --tasks pushT`` plans on.

The library's pushing pipeline (:func:`controlkit.runner.kinds.model_based_control.learn_model`: contact-rich
data from the greedy pusher pushing the T towards random targets with noise, a dense ReLU model in pusher-relative
coordinates, sparsified round by round down to 16 ReLUs per step, folded back to the world frame) on
``controlkit/Push-v0`` with ``shape="t"``. Smaller than the box model of ``experiments/push_mip_mpc.yaml`` (fewer
trajectories, 64-wide layers, shorter training) so it learns in a few CPU minutes; the orientation is in the
state ``[x, y, cos θ, sin θ, pusher x, pusher y]`` like the box's.

Run (seed 0; a few minutes on one core):
``.venv/bin/python benchmarks/pusht_model.py [--seed 0] [--out benchmarks/results/pusht_model.npz]``
(writes the model and ``benchmarks/results/pusht_model.json`` with its rollout errors and timings).
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

from _table import RESULTS, report

import controlkit  # noqa: F401
from controlkit.runner.kinds.model_based_control import ModelBasedControlConfig, learn_model

# The box model's recipe (experiments/push_mip_mpc.yaml) shrunk to a few CPU minutes; same last round: 16 ReLUs.
CONFIG = {
    "env_kwargs": {"shape": "t", "position_tolerance": 0.02, "orientation_tolerance": 0.3},
    "data": {"trajectories": 300, "steps": 30, "behaviour": "push"},
    "model": {"hidden": [64, 64], "frame": "pusher"},
    "train": {"epochs": 25, "patience": 6, "rollout_steps": 8},
    "sparsify": {"schedule": [32, 24, 16], "search_epochs": 3, "finetune_epochs": 12, "tolerance": 3.0},
    "planners": {"greedy": {"type": "greedy"}},
    "episodes": 1,
    "frames": False,
}


def main(seed: int, out: Path) -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    config = ModelBasedControlConfig(seed=seed, name="pusht_model", **CONFIG)
    log = logging.getLogger("pusht_model")
    with tempfile.TemporaryDirectory() as tmp:
        # the pipeline writes every sparsify round into a run folder; only the selected model is kept
        ctx = SimpleNamespace(seed=seed, log=log.info, path=lambda name: Path(tmp) / name, progress=lambda it, **_: it)
        t0, c0 = time.perf_counter(), time.process_time()
        net, facts = learn_model(config, ctx)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        out.parent.mkdir(parents=True, exist_ok=True)
        part = out.with_suffix(".part.npz")
        net.save(part)
        os.replace(part, out)  # atomic: a half-written model never looks whole
    facts.pop("file"), facts.pop("dense_file")
    rows = facts.pop("rounds")
    report(out.stem, rows, {"model_file": os.path.relpath(out, RESULTS.parent.parent), "seed": seed,
                            "config": CONFIG, "model": facts, "wall_s": wall, "cpu_s": cpu,
                            "load_average_after": os.getloadavg()[0]})


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(RESULTS / "pusht_model.npz"))
    args = ap.parse_args()
    main(args.seed, Path(args.out))

"""Training time of the twin neural controllers against the issue's limit of 300 s per twin.

For each ``twin_control`` experiment file: load its ABM data (collected once and cached under
``runs/twin_control_training/``, since data collection is excluded from the target), split it by seed as the
experiment does, fit both surrogates (discrete ReLU, neural ODE) and train the neural controller through the one
the file chooses — the same functions and settings ``controlkit run`` uses. Prints per twin: the fit time of the
chosen surrogate, the controller's training time, their sum (the measured quantity) and its ratio to the 300 s
limit, the other surrogate's fit time, and both surrogates' held-out rollout errors (mean NRMSE over the
observables). ``--evaluate N`` also deploys the trained controller on N ABM replicates (the experiment's own
evaluation seeds) and prints its cost, so a faster setting can be checked for the cost it reaches. The machine's
load average is recorded next to the timings.

    .venv/bin/python benchmarks/twin_control_training.py                    # all three twins, 1 torch thread
    .venv/bin/python benchmarks/twin_control_training.py --threads 1 2 --twins twin_immune
    .venv/bin/python benchmarks/twin_control_training.py --set controller.iterations=150 --evaluate 10

Writes ``benchmarks/results/twin_control_training.json``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from _table import report  # noqa: E402

LIMIT_S = 300.0
TWINS = ("twin_predator_prey", "twin_metabolic", "twin_immune")


def _data(config, name: str, cache: Path):
    """The experiment's ABM data, from the cache or collected (and cached) now; the collection time if collected."""
    from controlkit.models.data import load_dataset, save_dataset
    from controlkit.runner.kinds.twin_control import collect_config_data

    path = cache / f"{name}_seed{config.seed}_n{config.data.trajectories}_data.npz"
    if path.is_file():
        return load_dataset(path), 0.0
    t0 = time.perf_counter()
    data = collect_config_data(config, quiet=False)
    save_dataset(data, path)
    return data, time.perf_counter() - t0


def measure(name: str, threads: int, overrides: list[str], evaluate_n: int, cache: Path) -> dict:
    """Fit both surrogates and train the controller of experiment ``name``; time each stage."""
    import torch
    from controlkit.twins.deploy import evaluate
    from controlkit.twins.neural_control import train_controller

    from controlkit.runner import load_config
    from controlkit.runner.kinds.twin_control import EVAL, build_task, component_settings, fit_surrogates

    config = load_config(ROOT / "experiments" / f"{name}.yaml", overrides)
    data, collect_s = _data(config, name, cache)
    torch.set_num_threads(threads)
    task = build_task(config)
    _, ctrl_settings = component_settings(config)
    train, val = data.split(config.data.val_fraction, config.seed)
    fits = fit_surrogates(config, train, val)
    chosen = fits[ctrl_settings.surrogate]
    starts = train.states[:, 0]
    ctrl, res = train_controller(chosen.model, task, starts, ctrl_settings, seed=config.seed,
                                 obs_scale=np.maximum(starts.mean(0), 1.0))
    total = chosen.train_time_s + res.train_time_s
    row = {"twin": config.twin, "threads": threads, "through": ctrl_settings.surrogate,
           "fit_s": round(chosen.train_time_s, 1), "controller_s": round(res.train_time_s, 1),
           "total_s": round(total, 1), "limit_s": LIMIT_S, "total/limit": round(total / LIMIT_S, 3)}
    for kind, fit in fits.items():
        if kind != ctrl_settings.surrogate:
            row[f"{kind}_fit_s"] = round(fit.train_time_s, 1)
    for kind, fit in fits.items():
        row[f"{kind}_val_nrmse"] = round(float(np.mean(fit.val_nrmse)), 3)
        row[f"{kind}_epochs"] = fit.epochs
    row["fit_cpu_s"], row["controller_cpu_s"] = round(chosen.train_cpu_s, 1), round(res.train_cpu_s, 1)
    row["surrogate_cost"] = round(res.losses[-1], 4)
    if evaluate_n:
        base = config.seed * 1_000_000 + EVAL
        s = evaluate(task, ctrl, range(base, base + evaluate_n), workers=config.workers).summary()
        row["abm_cost"], row["abm_ci95"] = round(s["cost_mean"], 4), round(s["cost_ci95"], 4)
    row["load_avg_1min"] = round(os.getloadavg()[0], 2)
    if collect_s:
        row["data_collect_s (excluded)"] = round(collect_s, 1)
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--twins", nargs="+", default=list(TWINS), help="experiment file stems under experiments/")
    p.add_argument("--threads", type=int, nargs="+", default=[1], help="torch thread counts to compare")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="config overrides, e.g. "
                   "controller.iterations=150 (applied to every twin)")
    p.add_argument("--evaluate", type=int, default=0, metavar="N", help="also deploy on N ABM replicates")
    p.add_argument("--cache", default=str(ROOT / "runs" / "twin_control_training"), help="ABM data cache folder")
    args = p.parse_args()
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    rows = []
    for name in args.twins:
        for threads in args.threads:
            rows.append(measure(name, threads, args.set, args.evaluate, cache))
            print(rows[-1], flush=True)  # a long run shows each twin as it finishes
    report("twin_control_training", rows, {"limit_s": LIMIT_S, "overrides": args.set,
                                           "command": " ".join(["benchmarks/twin_control_training.py", *sys.argv[1:]])})


if __name__ == "__main__":
    main()

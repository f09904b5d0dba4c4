"""Does uncertainty change the decision? Risk-neutral vs risk-averse neural control of the immune twin under
parameter uncertainty, side by side on the same ABM replicates.

One ABM data set is collected over parameter draws (infectivity and virus production each scaled by a uniform
factor in [0.7, 1.3] per trajectory). From it, three neural controllers are trained with the same seed and
settings as ``experiments/twin_immune.yaml`` (neural ODE surrogate, 300 Adam steps):

- ``single/mean``: one surrogate, risk-neutral loss (the experiment's default route);
- ``ensemble/mean``: an ensemble of 5 surrogates fitted on bootstrap resamples, risk-neutral loss;
- ``ensemble/cvar``: the same ensemble, mean-CVaR loss (alpha 0.1, weight 0.5).

Each is deployed, with no treatment as the reference, on the same fresh ABM replicates whose parameters are drawn
from the same distribution. Reported per method: mean cost with its 95 % CI, CVaR (mean of the worst 10 %) with a
bootstrap 95 % CI, cost quantiles, probability of failure (not recovered at the end, Clopper-Pearson 95 % CI),
the total dose, and paired differences against ``single/mean``. The machine's load average is recorded.

    .venv/bin/python benchmarks/twin_risk.py                 # about 10-20 min on 2 busy cores
    .venv/bin/python benchmarks/twin_risk.py --quick         # a smoke run (minutes, numbers meaningless)

Writes ``benchmarks/results/twin_risk.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SPREAD = {"infectivity": 0.3, "virus_production": 0.3}
DATA, EVAL = 100_000, 400_000


def _cvar_ci(costs: np.ndarray, alpha: float, seed: int) -> list[float]:
    from controlkit.twins.uncertainty import cvar
    from scipy.stats import bootstrap

    res = bootstrap((costs,), lambda x, axis=-1: np.apply_along_axis(lambda r: cvar(r, alpha), axis, x),
                    n_resamples=2000, method="percentile", random_state=seed)
    return [float(res.confidence_interval.low), float(res.confidence_interval.high)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run")
    parser.add_argument("--replicates", type=int, default=40, help="evaluation replicates (parameter draws)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import torch
    from controlkit.twins.baselines import ConstantTwinController
    from controlkit.twins.deploy import evaluate_many, perturbed_params
    from controlkit.twins.neural_control import train_controller
    from controlkit.twins.surrogate import collect_data, fit_surrogate
    from controlkit.twins.uncertainty import EnsembleSurrogate, fit_ensemble, risk_summary

    from controlkit.core.stats import mean_ci95
    from controlkit.runner.kinds.twin_control import build_task, component_settings
    from controlkit.runner.registry import load_config

    torch.set_num_threads(1)
    config = load_config(ROOT / "experiments" / "twin_immune.yaml")
    task = build_task(config)
    sur, ctrl_settings = component_settings(config)
    n_traj, members, reps = config.data.trajectories, 5, args.replicates
    if args.quick:
        n_traj, members, reps = 8, 2, 4
        sur = sur.model_copy(update={"train": sur.train.model_copy(update={"epochs": 3})})
        ctrl_settings = ctrl_settings.model_copy(update={"iterations": 10})
    base = args.seed * 1_000_000
    load0 = os.getloadavg()
    times: dict[str, float] = {}

    t0 = time.perf_counter()
    seeds = range(base + DATA, base + DATA + n_traj)
    data = collect_data(task, seeds, params=[perturbed_params(task, SPREAD, s) for s in seeds],
                        workers=args.workers)
    train, val = data.split(config.data.val_fraction, args.seed)
    times["data_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    kind = ctrl_settings.surrogate
    single = fit_surrogate(kind, train, val, sur, seed=args.seed)
    times["single_fit_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    fits = fit_ensemble(kind, train, val, sur, members, seed=args.seed)
    ensemble = EnsembleSurrogate([f.model for f in fits])
    times["ensemble_fit_s"] = time.perf_counter() - t0

    starts = train.states[:, 0]
    scale = np.maximum(starts.mean(0), 1.0)
    routes = {"single/mean": (single.model, "mean"), "ensemble/mean": (ensemble, "mean"),
              "ensemble/cvar": (ensemble, "cvar")}
    controllers = {"none": ConstantTwinController(task.bounds[0])}
    for name, (model, risk) in routes.items():
        t0 = time.perf_counter()
        settings = ctrl_settings.model_copy(update={"risk": risk, "cvar_alpha": 0.1, "cvar_weight": 0.5})
        controllers[name], _ = train_controller(model, task, starts, settings, seed=args.seed, obs_scale=scale)
        times[f"{name}_train_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    evals = evaluate_many(task, controllers, range(base + EVAL, base + EVAL + reps), spread=SPREAD,
                          workers=args.workers, quiet=False, desc="ABM replicates")
    times["evaluation_s"] = time.perf_counter() - t0

    ref = evals["single/mean"].costs
    methods = {}
    for name, ev in evals.items():
        costs = ev.costs
        mean, ci = mean_ci95(costs)
        risk = risk_summary(costs, [e.outcomes for e in ev.episodes], alpha=0.1)
        risk["cvar_ci95"] = _cvar_ci(costs, 0.1, args.seed)
        diff_mean, diff_ci = mean_ci95(costs - ref)
        methods[name] = {"cost_mean": mean, "cost_ci95": ci, "risk": risk,
                         "total_dose_mean": float(np.mean([e.outcomes["total_dose"] for e in ev.episodes])),
                         "paired_vs_single_mean": {"mean": diff_mean, "ci95": diff_ci},
                         "worst_seeds": [int(ev.episodes[i].seed) for i in np.argsort(costs)[::-1][:4]]}
    out = {"twin": "immune", "config": "experiments/twin_immune.yaml", "quick": args.quick, "spread": SPREAD,
           "trajectories": n_traj, "members": members, "replicates": reps, "cvar_alpha": 0.1,
           "ensemble_member_val_nrmse_mean": [float(np.mean(f.val_nrmse)) for f in fits],
           "single_val_nrmse_mean": float(np.mean(single.val_nrmse)), "methods": methods, "timings": times,
           "load_average_start": load0, "load_average_end": os.getloadavg()}
    path = ROOT / "benchmarks" / "results" / ("twin_risk_quick.json" if args.quick else "twin_risk.json")
    path.write_text(json.dumps(out, indent=2))
    print(f"{'method':14s} {'mean ± CI':>18s} {'CVaR10 [CI]':>24s} {'P(fail) [CI]':>22s} {'dose':>7s} "
          f"{'paired vs single/mean':>22s}")
    for name, m in methods.items():
        r, d = m["risk"], m["paired_vs_single_mean"]
        print(f"{name:14s} {m['cost_mean']:9.4f} ± {m['cost_ci95']:.4f} {r['cvar']:8.4f} "
              f"[{r['cvar_ci95'][0]:.3f}, {r['cvar_ci95'][1]:.3f}] {r.get('failure_probability', float('nan')):6.3f} "
              f"[{r['failure_ci95'][0]:.2f}, {r['failure_ci95'][1]:.2f}] {m['total_dose_mean']:7.1f} "
              f"{d['mean']:+9.4f} ± {d['ci95']:.4f}")
    print(f"load average {load0} -> {os.getloadavg()}; wrote {path}")


if __name__ == "__main__":
    main()

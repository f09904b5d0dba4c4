"""Wall time of the full ``sparsify_pendulum`` pipeline and each stage's share.

Runs ``experiments/sparsify_pendulum.yaml`` through the experiment runner (collect -> dense -> sparsify ->
export), once per requested torch thread count, and prints per stage: seconds and share of the total. The
reference ("limit") is the dense model's own training: the table gives the sparsification's cost as a multiple
of it. The machine's load average is recorded, since timings on a shared machine are pessimistic.

The peer for accuracy is the obvious alternative to sparsifying: a small dense ReLU network trained from scratch
on the same data with the same ReLU count (``--baselines``, hidden sizes per network), trained with the same
settings but ``--baseline-epochs`` epochs. The table puts its 10-step validation error beside the sparse round
with that many ReLUs.

``--capacity N`` adds a probe: 32-ReLU layouts with fixed forms trained from scratch on N fresh trajectories.

    .venv/bin/python benchmarks/sparsify_pipeline.py --baselines   # the committed JSON (timing and curve only)
    .venv/bin/python benchmarks/sparsify_pipeline.py --baselines 16,16 8,8,8,8   # with the small dense peers
    .venv/bin/python benchmarks/sparsify_pipeline.py --threads 1 2 --baselines --capacity 1200
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

from controlkit.core.io import atomic_write_json
from controlkit.runner import load_config
from controlkit.runner.run import run_experiment

RELU_REDUCTION_TARGET = 8.0

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("collect_s", "dense_s", "sparsify_s", "export_s")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default=str(ROOT / "experiments" / "sparsify_pendulum.yaml"))
    p.add_argument("--threads", type=int, nargs="+", default=[1], help="torch thread counts to compare")
    p.add_argument("--out", default=str(ROOT / "runs"), help="root of the run folders")
    p.add_argument("--baselines", nargs="*", default=["32,32", "16,16"],
                   help="hidden sizes of small dense nets trained from scratch (comma-separated per net)")
    p.add_argument("--baseline-epochs", type=int, default=300)
    p.add_argument("--capacity", type=int, default=0, metavar="N",
                   help="capacity probe: train the 32-ReLU shapes of CAPACITY_NETS with fixed forms on N fresh "
                        "trajectories (0: skip)")
    p.add_argument("--capacity-epochs", type=int, default=40)
    p.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "sparsify_pipeline.json"),
                   help="where to write the results")
    args = p.parse_args()

    results = []
    for threads in args.threads:
        config = load_config(args.config, [f"torch_threads={threads}"])
        load_before = os.getloadavg()
        t0, cpu0 = time.perf_counter(), time.process_time()
        run = run_experiment(config, out=args.out, quiet=True)
        wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        s = run.summary
        stages = {k.removesuffix("_s"): s["timings"][k] for k in STAGES}
        stages_cpu = {k.removesuffix("_s"): s["timings"][k.replace("_s", "_cpu_s")] for k in STAGES}
        results.append({
            "torch_threads": threads,
            "wall_s": wall,
            # CPU seconds of this process: close to the wall time the run would take on an idle machine.
            "cpu_s": cpu,
            "stages_s": stages,
            "stages_cpu_s": stages_cpu,
            "stage_share": {k: v / wall for k, v in stages.items()},
            "sparsify_over_dense": stages["sparsify"] / stages["dense"],
            "load_average_before": load_before,
            "load_average_after": os.getloadavg(),
            "run_dir": str(run.run_dir),
            "relus_dense": s["relus_dense"],
            "relus_sparse": s["relus_sparse"],
            "identity_neurons": s["identity_neurons"],
            "val_error_dense": s["val_error_dense"],
            "val_error_dense_before_polish": s["val_error_dense_before_polish"],
            "dense_polish_iterations": s["dense_polish_iterations"],
            "val_error_sparse": s["val_error_sparse"],
            "relu_reduction": s["relu_reduction"],
            "error_ratio": s["error_ratio"],
            # The project's target: 8x fewer ReLUs within the run's error tolerance of the dense model.
            "target_met": bool(s["relu_reduction"] >= RELU_REDUCTION_TARGET and s["within_tolerance"]),
        })

    baselines = _baselines(results[0], [[int(h) for h in b.split(",")] for b in args.baselines], args.baseline_epochs)
    capacity = _capacity(results[0], args.capacity, args.capacity_epochs) if args.capacity else []

    print(f"{'threads':>7} {'stage':>9} {'seconds':>9} {'share':>7} {'CPU s':>8}")
    for r in results:
        for stage, sec in r["stages_s"].items():
            print(f"{r['torch_threads']:>7} {stage:>9} {sec:9.1f} {r['stage_share'][stage]:7.1%} "
                  f"{r['stages_cpu_s'][stage]:8.1f}")
        print(f"{r['torch_threads']:>7} {'total':>9} {r['wall_s']:9.1f}   (CPU {r['cpu_s']:.1f} s; "
              f"sparsify = {r['sparsify_over_dense']:.1f}x "
              f"dense training; load avg {r['load_average_before'][0]:.1f} -> {r['load_average_after'][0]:.1f})")
        print(f"{'':>7} result: {r['relus_sparse']} ReLUs vs dense {r['relus_dense']} ({r['relu_reduction']:.1f}x "
              f"fewer), 10-step val MSE ratio {r['error_ratio']:.2f}, target met: {r['target_met']}; dense "
              f"{r['val_error_dense']:.3g} ({r['val_error_dense_before_polish']:.3g} before its "
              f"{r['dense_polish_iterations']} L-BFGS iterations)")
    if baselines:
        print(f"\n{'ReLUs':>6} {'sparsified (10-step MSE)':>25} {'dense from scratch':>19} {'ratio':>6}")
        for b in baselines:
            sparse = b["sparse_val_error"]
            print(f"{b['relus']:>6} {sparse if sparse is not None else float('nan'):25.3g} "
                  f"{b['val_error']:19.3g} {(sparse or float('nan')) / b['val_error']:6.2f}  (hidden {b['hidden']})")
    if capacity:
        print(f"\ncapacity probe: {args.capacity} fresh trajectories, {args.capacity_epochs} epochs, same validation set")
        for c in capacity:
            print(f"{c['relus']:>6} ReLUs {c['val_error']:10.3g}  {c['val_error'] / results[0]['val_error_dense']:6.1f}"
                  f" x dense  ({c['name']})")
    out = atomic_write_json(args.json, {
        "config": str(Path(args.config).relative_to(ROOT)) if Path(args.config).is_relative_to(ROOT) else args.config,
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "note": "shared machine: other jobs ran concurrently, so these wall times are pessimistic",
        "results": results,
        "baselines": baselines,
        "capacity_probe": capacity,
    })
    print(f"written {out}")


def _baselines(result: dict, hiddens: list[list[int]], epochs: int) -> list[dict]:
    """Train small dense nets from scratch on the run's own data and split; compare with its sparse rounds."""
    import json

    import torch

    from controlkit.models.data import load_dataset
    from controlkit.models.dynamics import train_dense

    run_dir = Path(result["run_dir"])
    config = load_config(run_dir / "config.yaml")
    summary = json.loads((run_dir / "summary.json").read_text())
    data = load_dataset(run_dir / summary["dataset_path"])
    train, val = data.split(config.data.val_fraction, seed=config.seed)
    torch.set_num_threads(result["torch_threads"])
    rows = []
    for hidden in hiddens:
        t0 = time.perf_counter()
        settings = config.train.model_copy(update={"epochs": epochs})
        _, fit = train_dense(train, val, hidden, settings, seed=config.seed, residual=config.model.residual)
        sparse = [p["val_error"] for p in summary["curve"][1:] if p["n_relu"] == sum(hidden)]
        rows.append({"hidden": hidden, "relus": sum(hidden), "epochs": fit.epochs, "val_error": fit.best_val_error,
                     "sparse_val_error": sparse[0] if sparse else None, "time_s": time.perf_counter() - t0})
    return rows


CAPACITY_NETS = (
    # (description, hidden sizes, ReLU neurons per layer; the rest of each layer is identity)
    ("2 layers, all ReLU", [16, 16], 16),
    ("2 layers, 16 ReLU + 48 identity each", [64, 64], 16),
    ("4 layers, 8 ReLU + 24 identity each", [32, 32, 32, 32], 8),
)


def _capacity(result: dict, trajectories: int, epochs: int) -> list[dict]:
    """How good can a 32-ReLU net get with plenty of data? Fixed forms, trained from scratch on fresh data.

    More real transitions (labelled by the env itself) bound what distillation from the dense teacher on extra
    sampled inputs could add; the layouts tell whether identity neurons (free in the MILP) and depth help.
    """
    import json

    import numpy as np
    import torch

    from controlkit.models.data import collect, load_dataset
    from controlkit.models.dynamics import DynamicsModel, fit
    from controlkit.models.sparsify import IDENTITY, RELU, NeuronGates, SparsifySettings

    run_dir = Path(result["run_dir"])
    config = load_config(run_dir / "config.yaml")
    summary = json.loads((run_dir / "summary.json").read_text())
    _, val = load_dataset(run_dir / summary["dataset_path"]).split(config.data.val_fraction, seed=config.seed)
    d = config.data
    fresh = collect(config.env, trajectories, d.steps, seed=config.seed + 1000, behaviour=d.behaviour,
                    correlation=d.correlation, scale=d.scale, env_kwargs=config.env_kwargs)
    settings = config.train.model_copy(update={"epochs": epochs, "batch_size": 512, "lr": 3e-3, "patience": 10})
    torch.set_num_threads(result["torch_threads"])
    rows = []
    for name, hidden, relus in CAPACITY_NETS:
        t0 = time.perf_counter()
        model = DynamicsModel(fresh.nx, fresh.nu, hidden, residual=config.model.residual, seed=config.seed)
        model.fit_normalisation(fresh)
        gates = NeuronGates(hidden, SparsifySettings(schedule=[sum(hidden)]), seed=config.seed)
        for modes, n in zip(gates.modes, hidden):
            modes.copy_(torch.as_tensor(np.where(np.arange(n) < relus, RELU, IDENTITY)))
        out = fit(model, fresh, val, settings, seed=config.seed + 1, gates=gates)
        rows.append({"name": name, "hidden": hidden, "relus": relus * len(hidden), "epochs": out.epochs,
                     "val_error": out.best_val_error, "time_s": time.perf_counter() - t0})
    return rows


if __name__ == "__main__":
    main()

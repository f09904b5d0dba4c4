"""Wall time of the full ``sparsify_pendulum`` pipeline and each stage's share.

Runs ``experiments/sparsify_pendulum.yaml`` through the experiment runner (collect -> dense -> sparsify ->
export), once per requested torch thread count, and prints per stage: seconds and share of the total. The
reference ("limit") is the dense model's own training: the table gives the sparsification's cost as a multiple
of it. The machine's load average is recorded, since timings on a shared machine are pessimistic.

    .venv/bin/python benchmarks/sparsify_pipeline.py            # threads 1
    .venv/bin/python benchmarks/sparsify_pipeline.py --threads 1 2
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

from controlkit._io import atomic_write_json
from controlkit.config import load_config
from controlkit.run import run_experiment

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("collect_s", "dense_s", "sparsify_s", "export_s")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default=str(ROOT / "experiments" / "sparsify_pendulum.yaml"))
    p.add_argument("--threads", type=int, nargs="+", default=[1], help="torch thread counts to compare")
    p.add_argument("--out", default=str(ROOT / "runs"), help="root of the run folders")
    args = p.parse_args()

    results = []
    for threads in args.threads:
        config = load_config(args.config, [f"torch_threads={threads}"])
        load_before = os.getloadavg()
        t0 = time.perf_counter()
        run = run_experiment(config, out=args.out, quiet=True)
        wall = time.perf_counter() - t0
        s = run.summary
        stages = {k.removesuffix("_s"): s["timings"][k] for k in STAGES}
        results.append({
            "torch_threads": threads,
            "wall_s": wall,
            "stages_s": stages,
            "stage_share": {k: v / wall for k, v in stages.items()},
            "sparsify_over_dense": stages["sparsify"] / stages["dense"],
            "load_average_before": load_before,
            "load_average_after": os.getloadavg(),
            "run_dir": str(run.run_dir),
            "relus_dense": s["relus_dense"],
            "relus_sparse": s["relus_sparse"],
            "identity_neurons": s["identity_neurons"],
            "val_error_dense": s["val_error_dense"],
            "val_error_sparse": s["val_error_sparse"],
            "relu_reduction": s["relu_reduction"],
            "error_ratio": s["error_ratio"],
            "target_met": s["target_met"],
        })

    print(f"{'threads':>7} {'stage':>9} {'seconds':>9} {'share':>7}")
    for r in results:
        for stage, sec in r["stages_s"].items():
            print(f"{r['torch_threads']:>7} {stage:>9} {sec:9.1f} {r['stage_share'][stage]:7.1%}")
        print(f"{r['torch_threads']:>7} {'total':>9} {r['wall_s']:9.1f}   (sparsify = {r['sparsify_over_dense']:.1f}x "
              f"dense training; load avg {r['load_average_before'][0]:.1f} -> {r['load_average_after'][0]:.1f})")
        print(f"{'':>7} result: {r['relus_sparse']} ReLUs vs dense {r['relus_dense']} ({r['relu_reduction']:.1f}x "
              f"fewer), 10-step val MSE ratio {r['error_ratio']:.2f}, target met: {r['target_met']}")
    out = atomic_write_json(ROOT / "benchmarks" / "results" / "sparsify_pipeline.json", {
        "config": str(Path(args.config).relative_to(ROOT)) if Path(args.config).is_relative_to(ROOT) else args.config,
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "note": "shared machine: other jobs ran concurrently, so these wall times are pessimistic",
        "results": results,
    })
    print(f"written {out}")


if __name__ == "__main__":
    main()

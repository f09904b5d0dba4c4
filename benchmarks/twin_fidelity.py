"""Fidelity of the predator–prey twin to the companion study's averaged NetLogo runs (255×255, 2500/1250).

Two settings, each compared on the populations averaged over a window of ticks and over seeds:

- uncontrolled (dataset I, ``Dados01.mat``): mean of ticks 800–1000;
- 2 % of the sheep removed per tick from tick 1000 (dataset IV, ``DadosConSheep2.mat``): mean of ticks 2000–2500.

Target: sheep and wolves within 5 % of NetLogo's 100-run averages in both settings. The NetLogo data are the copies
in ``tests/data/twins/`` (source and licence there).

Run: ``.venv/bin/python benchmarks/twin_fidelity.py [--seeds 4] [--side 255]``; writes
``benchmarks/results/twin_fidelity.json``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _table import report  # noqa: E402
from controlkit.twins.companion import load_netlogo_averages, steady_state  # noqa: E402

from controlkit.core.stats import mean_ci95  # noqa: E402

DATA = ROOT / "tests" / "data" / "twins"
SETTINGS = {
    "uncontrolled": {"file": "Dados01.mat", "cull_sheep": 0.0, "window": (800, 1000)},
    "sheep_cull_2pct": {"file": "DadosConSheep2.mat", "cull_sheep": 0.02, "window": (2000, 2500)},
}
TOLERANCE = 0.05


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=4, help="twin replicates per setting")
    ap.add_argument("--side", type=int, default=255, help="world side (255 = the companion's)")
    args = ap.parse_args()
    rows = []
    load = os.getloadavg()[0]
    for name, s in SETTINGS.items():
        ref = load_netlogo_averages(DATA / s["file"])[s["window"][0]:s["window"][1]].mean(0)
        t0 = time.perf_counter()
        runs = np.array([steady_state(args.side, seed, s["cull_sheep"], window=s["window"]).mean
                         for seed in range(args.seeds)])
        wall = time.perf_counter() - t0
        for j, species in enumerate(("sheep", "wolves")):
            mean, ci = mean_ci95(runs[:, j])
            err = mean / ref[j] - 1
            rows.append({"setting": name, "species": species, "netlogo": round(float(ref[j]), 1),
                         "twin_mean": round(mean, 1), "twin_ci95": round(ci, 1), "rel_error": round(err, 4),
                         "within_5pct": bool(abs(err) <= TOLERANCE), "seeds": args.seeds,
                         "per_seed": [round(float(v), 1) for v in runs[:, j]], "wall_s": round(wall, 1)})
    report("twin_fidelity", rows, {"side": args.side, "tolerance": TOLERANCE, "load_avg_1min": load,
                                   "command": "benchmarks/twin_fidelity.py " + " ".join(sys.argv[1:])})


if __name__ == "__main__":
    main()

"""MIP-MPC compiler vs OMLT's big-M formulation (Pyomo), same network, horizon, solver (HiGHS) and optimum.

For each network and horizon: build and solve the MPC MILP (L1 tracking cost) with
  - ours: interval bounds, stable neurons eliminated, vectorised assembly, one highspy passModel call;
  - ours+LP: the same plus LP tightening of every step's unstable neurons (its time counts as build time);
  - OMLT: one ``OmltBlock`` with ``ReluBigMFormulation`` per step, chained by Pyomo constraints, solved by Pyomo's
    ``appsi_highs``. OMLT has no multi-step helper, so each step's network gets our interval state box as its
    input bounds (OMLT then propagates its own interval bounds inside the network).
Then per-step receding-horizon time with and without the shifted-plan MIP start.

Run:  .venv/bin/python benchmarks/mip_vs_omlt.py            (add --quick for a 2-minute smoke run)
Trained compact networks (``CompactNetwork.save`` files) can be added with ``--model PATH`` (all-ReLU layers only
for OMLT, which has one activation per layer).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _table import report  # noqa: E402

from controlkit._milp_bounds import ibp  # noqa: E402
from controlkit._milp_highs import HighsMILP  # noqa: E402
from controlkit._milp_pyomo import configured_solver  # noqa: E402
from controlkit.mpc import MIPMPC  # noqa: E402
from controlkit.network import CompactNetwork  # noqa: E402

NX, NU = 4, 2
REPS = 5  # builds timed per row (median); large build-only OMLT rows are timed once
LAMBDA = 0.01


def random_net(hidden: list[int], seed: int) -> CompactNetwork:
    """Random residual MLP (the anchor measurements' kind: 4 states, 2 inputs)."""
    rng = np.random.default_rng(seed)
    sizes = [NX + NU, *hidden, NX]
    w = [0.5 * rng.normal(size=(sizes[i + 1], sizes[i])) / np.sqrt(sizes[i]) for i in range(len(sizes) - 1)]
    b = [0.1 * rng.normal(size=sizes[i + 1]) for i in range(len(sizes) - 1)]
    return CompactNetwork(w, b, [np.ones(h, bool) for h in hidden], NX, NU)


def omlt_plan(net: CompactNetwork, horizon: int, x0, goal, time_limit: float, gap: float, solve: bool = True) -> dict:
    """Build the same MPC problem with OMLT blocks in Pyomo and (unless ``solve`` is False) solve it with HiGHS."""
    import pyomo.environ as pyo
    from omlt import OmltBlock
    from omlt.neuralnet import NetworkDefinition, ReluBigMFormulation
    from omlt.neuralnet.layer import DenseLayer, InputLayer

    mpc = MIPMPC(net, horizon, -np.ones(NU), np.ones(NU), control_weight=LAMBDA)
    boxes = ibp(mpc.problem, x0)
    t0 = time.perf_counter()
    m = pyo.ConcreteModel()
    T, S, J = range(horizon), range(NX), range(NU)
    m.x = pyo.Var(range(horizon + 1), S)
    m.u = pyo.Var(T, J, bounds=(-1.0, 1.0))
    m.e = pyo.Var(T, S, within=pyo.NonNegativeReals)
    m.v = pyo.Var(T, J, within=pyo.NonNegativeReals)
    m.nn = OmltBlock(T)
    for t in T:
        lo = np.concatenate([boxes.x_lo[t], -np.ones(NU)])
        hi = np.concatenate([boxes.x_hi[t], np.ones(NU)])
        nd = NetworkDefinition(scaled_input_bounds={i: (float(lo[i]), float(hi[i])) for i in range(NX + NU)})
        prev = InputLayer([NX + NU])
        nd.add_layer(prev)
        for k, (w, b) in enumerate(zip(net.weights, net.biases)):
            act = "relu" if k < len(net.relu_masks) else "linear"
            layer = DenseLayer([w.shape[1]], [w.shape[0]], w.T, b, activation=act)
            nd.add_layer(layer)
            nd.add_edge(prev, layer)
            prev = layer
        m.nn[t].build_formulation(ReluBigMFormulation(nd))
    m.link_x = pyo.Constraint(T, S, rule=lambda m, t, i: m.nn[t].inputs[i] == m.x[t, i])
    m.link_u = pyo.Constraint(T, J, rule=lambda m, t, j: m.nn[t].inputs[NX + j] == m.u[t, j])
    m.dyn = pyo.Constraint(T, S, rule=lambda m, t, i: m.x[t + 1, i] == m.x[t, i] + m.nn[t].outputs[i])
    m.init = pyo.Constraint(S, rule=lambda m, i: m.x[0, i] == float(x0[i]))
    m.ep = pyo.Constraint(T, S, rule=lambda m, t, i: m.e[t, i] >= m.x[t + 1, i] - float(goal[i]))
    m.em = pyo.Constraint(T, S, rule=lambda m, t, i: m.e[t, i] >= float(goal[i]) - m.x[t + 1, i])
    m.vp = pyo.Constraint(T, J, rule=lambda m, t, j: m.v[t, j] >= m.u[t, j])
    m.vm = pyo.Constraint(T, J, rule=lambda m, t, j: m.v[t, j] >= -m.u[t, j])
    m.obj = pyo.Objective(expr=pyo.quicksum(m.e[t, i] for t in T for i in S)
                          + LAMBDA * pyo.quicksum(m.v[t, j] for t in T for j in J))
    build = time.perf_counter() - t0
    n_bin = sum(1 for v in m.component_data_objects(pyo.Var) if v.is_binary())
    if not solve:
        return {"build_s": build, "binaries": n_bin}
    opt, kwargs = configured_solver("appsi_highs", time_limit, gap)
    t1 = time.perf_counter()
    res = opt.solve(m, load_solutions=False, **kwargs)
    solve = time.perf_counter() - t1
    tc = str(res.solver.termination_condition)
    obj, gap = float("nan"), float("nan")
    if len(res.solution):
        m.solutions.load_from(res)
        obj = float(pyo.value(m.obj))
        lower = res.problem.lower_bound
        if lower is not None and np.isfinite(lower):
            gap = (obj - lower) / max(abs(obj), 1e-9)
    return {"build_s": build, "solve_s": solve, "binaries": n_bin, "objective": obj, "gap": gap, "status": tc}


def ours_plan(net, horizon, x0, goal, time_limit, gap, tighten: bool) -> dict:
    mpc = MIPMPC(net, horizon, -np.ones(net.nu), np.ones(net.nu), control_weight=LAMBDA, time_limit=time_limit,
                 mip_gap=gap, tighten_steps=horizon if tighten else 0)
    plan = mpc.plan(x0, goal)
    ex = plan.extras
    return {"build_s": ex["bounds_time_s"] + ex["build_time_s"], "solve_s": ex["solver_time_s"],
            "binaries": ex["binaries"], "objective": plan.objective, "gap": plan.gap, "status": plan.status.value}


def ours_build(net, horizon, x0, goal) -> dict:
    """Interval bounds + assembly + passModel, without solving."""
    mpc = MIPMPC(net, horizon, -np.ones(net.nu), np.ones(net.nu), control_weight=LAMBDA)
    t0 = time.perf_counter()
    bounds = mpc.bounds(x0)
    milp = HighsMILP(mpc.problem, bounds, x0, mpc.problem.check_goal(goal))
    return {"build_s": time.perf_counter() - t0, "binaries": milp.n_binaries}


def median_build(build, *args, reps: int) -> dict:
    """Median build time over ``reps`` builds: single millisecond timings on a shared machine are mostly jitter."""
    runs = [build(*args) for _ in range(reps)]
    return {**runs[0], "build_s": float(np.median([r["build_s"] for r in runs]))}


def receding(net, horizon, x0, goal, steps, time_limit, gap, warm: bool, tighten: int) -> dict:
    mpc = MIPMPC(net, horizon, -np.ones(NU), np.ones(NU), control_weight=LAMBDA, time_limit=time_limit,
                 mip_gap=gap, goal=goal, warm_start=warm, tighten_steps=tighten)
    x, times, solves, rebuilt = np.asarray(x0, float), [], [], 0
    for _ in range(steps):
        u = mpc.act(x)
        times.append(mpc.last_step.compute_time_s)
        solves.append(mpc.last_step.solve_time_s or 0.0)
        rebuilt += bool(mpc.last_plan.extras.get("rebuilt")) if mpc.last_step.fallback is None else 0
        x = net.step(x, u)
    return {"mean_step_s": float(np.mean(times)), "max_step_s": float(np.max(times)), "rebuilds": rebuilt,
            "final_error": float(np.abs(x - goal).sum())}


def plot(rows: list[dict], path: Path) -> None:
    """Build and solve times per (network, horizon), log scale, as a small PNG for the docs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from controlkit._io import save_figure

    fig, axes = plt.subplots(1, 2, figsize=(12, 4), gridspec_kw={"width_ratios": [3, 2]})
    tags = ("ours", "ours_lp", "omlt")
    for ax, what in ((axes[0], "build_s"), (axes[1], "solve_s")):
        sel = [r for r in rows if f"omlt_{what}" in r]
        x = np.arange(len(sel))
        for i, tag in enumerate(tags):
            ax.bar(x + (i - (len(tags) - 1) / 2) * 0.8 / len(tags), [r.get(f"{tag}_{what}", np.nan) for r in sel],
                   0.8 / len(tags), label=tag.replace("_lp", "+LP"))
        ax.set_xticks(x, [f"{r['net']} H={r['H']}" for r in sel], fontsize=7, rotation=60, ha="right")
        ax.set_yscale("log")
        ax.set_ylabel(f"{what.split('_')[0]} time [s]")
        ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path, dpi=80)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes and horizons only")
    parser.add_argument("--model", action="append", default=[], help="CompactNetwork .npz to add")
    parser.add_argument("--time-limit", type=float, default=30.0)
    parser.add_argument("--gap", type=float, default=1e-4)
    parser.add_argument("--step-time-limit", type=float, default=5.0, help="per-step limit in the receding loop")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    logging.getLogger("pyomo").setLevel(logging.ERROR)  # OMLT's scaled-input initial values trip W1002 warnings
    nets = {"relu8": random_net([8], 0), "relu16": random_net([16], 1), "relu8x2": random_net([8, 8], 2)}
    horizons = [5, 10, 20]
    if args.quick:
        nets, horizons = {"relu8": nets["relu8"]}, [5, 10]
    for path in args.model:
        nets[Path(path).stem] = CompactNetwork.load(path)
    build_only = {} if args.quick else {"relu64x2": random_net([64, 64], 3), "relu128x2": random_net([128, 128], 4)}
    # warm-up: first-call costs (HiGHS instance, Pyomo/OMLT imports) are paid once per process, not per model
    ours_build(nets["relu8"], 2, np.zeros(NX), np.zeros(NX))
    omlt_plan(nets["relu8"], 2, np.zeros(NX), np.zeros(NX), 1.0, args.gap, solve=False)
    rows = []
    for name, net in build_only.items():
        for H in horizons:
            ours = median_build(ours_build, net, H, np.zeros(NX), np.full(NX, 0.5), reps=REPS)
            om = median_build(omlt_plan, net, H, np.zeros(NX), np.full(NX, 0.5), 0.0, args.gap, False, reps=1)
            row = {"net": name, "relu_per_step": net.n_relu, "H": H, "ours_build_s": ours["build_s"],
                   "ours_binaries": ours["binaries"], "omlt_build_s": om["build_s"], "omlt_binaries": om["binaries"],
                   "build_speedup": om["build_s"] / ours["build_s"], "solved": False}
            rows.append(row)
            print(row, flush=True)
    for name, net in nets.items():
        x0 = np.zeros(net.nx)
        goal = np.full(net.nx, 0.5)
        for H in horizons:
            ours = ours_plan(net, H, x0, goal, args.time_limit, args.gap, tighten=False)
            lp = ours_plan(net, H, x0, goal, args.time_limit, args.gap, tighten=True)
            row = {"net": name, "relu_per_step": net.n_relu, "H": H, "solved": True}
            ours["build_s"] = median_build(ours_build, net, H, x0, goal, reps=REPS)["build_s"]
            for tag, r in (("ours", ours), ("ours_lp", lp)):
                row.update({f"{tag}_{k}": v for k, v in r.items()})
            if net.n_identity == 0 and net.nx == NX and net.nu == NU:
                om = omlt_plan(net, H, x0, goal, args.time_limit, args.gap)
                om["build_s"] = median_build(omlt_plan, net, H, x0, goal, 0.0, args.gap, False, reps=REPS - 1)["build_s"]
                row.update({f"omlt_{k}": v for k, v in om.items()})
                row["build_speedup"] = om["build_s"] / ours["build_s"]
                row["solve_speedup"] = om["solve_s"] / ours["solve_s"]
                row["solve_speedup_lp"] = om["solve_s"] / lp["solve_s"]
                row["obj_rel_diff"] = abs(om["objective"] - ours["objective"]) / max(abs(ours["objective"]), 1e-9)
            rows.append(row)
            print({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}, flush=True)
    rec_rows = []
    net = nets["relu8"]
    for tighten in (0, 10):
        for warm in (True, False):
            r = receding(net, 10, np.zeros(NX), np.full(NX, 0.5), 6 if args.quick else 10, args.step_time_limit,
                         args.gap, warm, tighten)
            rec_rows.append({"net": "relu8", "H": 10, "lp_tighten_steps": tighten, "warm_start": warm, **r})
            print(rec_rows[-1], flush=True)
    print()
    report("mip_vs_omlt", rows, extra={"receding_horizon": rec_rows, "time_limit_s": args.time_limit,
                                       "mip_gap": args.gap, "command": " ".join(sys.argv)})
    plot(rows, Path(__file__).resolve().parents[1] / "docs" / "img" / "mip_vs_omlt.png")


if __name__ == "__main__":
    main()

"""MIP-MPC compiler vs OMLT's big-M formulation (Pyomo), same network, horizon, solver (HiGHS) and optimum.

For each network and horizon: build and solve the MPC MILP (L1 tracking cost) with
  - base: symbolic (zonotope) bounds intersected with interval bounds, stable neurons eliminated, vectorised
    assembly, one highspy passModel call, no LP tightening (``tighten_steps=0``);
  - +LP: the same plus LP tightening of every step's unstable neurons within ``--tighten-time`` seconds;
  - +start: base plus a MIP start found by the region descent (``polish_lps``) from the zero action sequence;
  - auto: the default of ``MIPMPC`` (``tighten_steps="auto"``): that start, then LP tightening over the
    relaxation cut off at the start's objective, nearest-to-stable neurons first, within a quarter of the limit;
  - OMLT: one ``OmltBlock`` with ``ReluBigMFormulation`` per step, chained by Pyomo constraints, solved by Pyomo's
    ``appsi_highs``. OMLT has no multi-step helper, so each step's block gets our interval state box as its input
    bounds (OMLT then propagates its own interval bounds inside the network). OMLT has one activation per layer:
    an identity neuron ``a`` is given to it as the always-active ReLU ``relu(a - l) + l`` (``l`` its interval
    lower bound at that step), which is exact; OMLT gives it a binary that HiGHS's presolve can fix.
Every solve uses the same HiGHS options (one thread, the gap, the time limit). What is timed: "build" is, for us,
a fresh ``MIPMPC`` (validation), the bounds, the assembly and ``passModel``, for OMLT the Pyomo model from
``ConcreteModel()`` to the objective (its translation to HiGHS happens inside its solve call, so it counts as
solve); fastest of 5 builds each. "prep" is all our time before the solver starts (bounds, LPs, start, build);
"solve" the solver call; "total" = prep + solve for us and build + solve for OMLT.
``ibp_binaries`` is what interval bounds alone leave unstable. Cases: random residual MLPs (4 states, 2 inputs,
``x0 = 0``, goal 0.5, actions in [-1, 1]) and trained sparse models on their own task, all in the repository: the
push model (``examples/models/push_box.npz``: push the object 10 cm, pusher steps of 3 cm) and two sparsified
Pendulum-v1 models (``results/mip_bench_pendulum_*.npz``: swing-up from hanging to upright, torque in [-2, 2]);
``--model`` adds more. Then per-step receding-horizon time with and without the shifted-plan MIP start.

Run:  .venv/bin/python benchmarks/mip_vs_omlt.py          (the full table; writes results/mip_vs_omlt.json + plot)
      .venv/bin/python benchmarks/mip_vs_omlt.py --quick  (the target rows, 10 s limits, under 10 minutes;
                                                           writes results/mip_vs_omlt_quick.json)
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # one BLAS thread, like HiGHS: the machine is shared and timings compare

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import logging  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _table import report  # noqa: E402

from controlkit.models.network import CompactNetwork  # noqa: E402
from controlkit.planning import MIPMPC  # noqa: E402
from controlkit.planning.milp.bounds import ibp  # noqa: E402
from controlkit.planning.milp.highs import HighsMILP  # noqa: E402
from controlkit.planning.milp.pyomo_backend import configured_solver  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
NX, NU = 4, 2
REPS = 5  # builds timed per row (fastest counts); large build-only OMLT rows are timed once
LAMBDA = 0.01


@dataclasses.dataclass
class Case:
    """A network and the MPC problem it is benchmarked on."""

    net: CompactNetwork
    u_high: np.ndarray
    x0: np.ndarray
    goal: np.ndarray
    x_high: np.ndarray | None = None  # symmetric state bounds, None = unbounded
    weights: np.ndarray | None = None
    terminal_weight: float = 1.0

    def mpc(self, horizon: int, **kw) -> MIPMPC:
        xh = self.x_high
        return MIPMPC(self.net, horizon, -self.u_high, self.u_high, None if xh is None else -xh, xh,
                      state_weights=self.weights, control_weight=LAMBDA, terminal_weight=self.terminal_weight, **kw)


def random_net(hidden: list[int], seed: int) -> CompactNetwork:
    """Random residual MLP (the anchor measurements' kind: 4 states, 2 inputs)."""
    rng = np.random.default_rng(seed)
    sizes = [NX + NU, *hidden, NX]
    w = [0.5 * rng.normal(size=(sizes[i + 1], sizes[i])) / np.sqrt(sizes[i]) for i in range(len(sizes) - 1)]
    b = [0.1 * rng.normal(size=sizes[i + 1]) for i in range(len(sizes) - 1)]
    return CompactNetwork(w, b, [np.ones(h, bool) for h in hidden], NX, NU)


def random_case(hidden: list[int], seed: int) -> Case:
    return Case(random_net(hidden, seed), np.ones(NU), np.zeros(NX), np.full(NX, 0.5))


def trained_case(path: str | Path) -> Case:
    """A trained model on its own task: Push (6 states, 2 actions) or Pendulum (3 states, 1 action)."""
    net = CompactNetwork.load(path)
    if net.nx == 6 and net.nu == 2:  # object x, y, cos, sin, pusher x, y (push_mip_mpc.yaml's cost and bounds)
        return Case(net, np.full(2, 0.03), np.array([0.05, 0.0, 1.0, 0.0, -0.05, 0.0]),
                    np.array([0.15, 0.05, 1.0, 0.0, 0.1, 0.05]), np.array([0.35, 0.35, 1.0, 1.0, 0.3, 0.3]),
                    np.array([1.0, 1.0, 0.0, 0.0, 0.2, 0.2]), terminal_weight=5.0)
    if net.nx == 3 and net.nu == 1:  # cos, sin, angular velocity: swing up from hanging down
        return Case(net, np.array([2.0]), np.array([-1.0, 0.0, 0.0]), np.array([1.0, 0.0, 0.0]),
                    np.array([1.05, 1.05, 8.0]))  # cos, sin with slack: learned models drift past +-1
    raise SystemExit(f"{path}: no benchmark task for a model with nx={net.nx}, nu={net.nu}")


def _omlt_layers(net: CompactNetwork, shift: list[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray, str]]:
    """The network as OMLT dense layers; identity neuron ``a`` becomes ``relu(a - l) + l`` with ``l = shift``."""
    layers, carry = [], np.zeros(net.weights[0].shape[1])
    for k, (w, b) in enumerate(zip(net.weights, net.biases)):
        b = b + w @ carry
        if k == len(net.relu_masks):
            layers.append((w, b, "linear"))
            break
        ident = ~net.relu_masks[k]
        carry = np.where(ident, shift[k], 0.0)
        layers.append((w, b - carry, "relu"))
    return layers


def omlt_plan(case: Case, horizon: int, time_limit: float, gap: float, solve: bool = True) -> dict:
    """Build the same MPC problem with OMLT blocks in Pyomo and (unless ``solve`` is False) solve it with HiGHS."""
    import pyomo.environ as pyo
    from omlt import OmltBlock
    from omlt.neuralnet import NetworkDefinition, ReluBigMFormulation
    from omlt.neuralnet.layer import DenseLayer, InputLayer

    net, x0 = case.net, case.x0
    nx, nu = net.nx, net.nu
    mpc = case.mpc(horizon)
    p = mpc.problem
    goal, w = p.check_goal(case.goal), p.step_weights
    boxes = ibp(p, x0)
    t0 = time.perf_counter()
    m = pyo.ConcreteModel()
    T, S, J = range(horizon), range(nx), range(nu)
    xb = (lambda m, t, i: (None, None)) if case.x_high is None else (
        lambda m, t, i: (-float(case.x_high[i]), float(case.x_high[i])) if t else (None, None))
    m.x = pyo.Var(range(horizon + 1), S, bounds=xb)
    m.u = pyo.Var(T, J, bounds=lambda m, t, j: (-float(case.u_high[j]), float(case.u_high[j])))
    m.e = pyo.Var(T, S, within=pyo.NonNegativeReals)
    m.v = pyo.Var(T, J, within=pyo.NonNegativeReals)
    m.nn = OmltBlock(T)
    for t in T:
        lo = np.concatenate([boxes.x_lo[t], -case.u_high])
        hi = np.concatenate([boxes.x_hi[t], case.u_high])
        nd = NetworkDefinition(scaled_input_bounds={i: (float(lo[i]), float(hi[i])) for i in range(nx + nu)})
        prev = InputLayer([nx + nu])
        nd.add_layer(prev)
        for wk, bk, act in _omlt_layers(net, boxes.pre_lo[t]):
            layer = DenseLayer([wk.shape[1]], [wk.shape[0]], wk.T, bk, activation=act)
            nd.add_layer(layer)
            nd.add_edge(prev, layer)
            prev = layer
        m.nn[t].build_formulation(ReluBigMFormulation(nd))
    m.link_x = pyo.Constraint(T, S, rule=lambda m, t, i: m.nn[t].inputs[i] == m.x[t, i])
    m.link_u = pyo.Constraint(T, J, rule=lambda m, t, j: m.nn[t].inputs[nx + j] == m.u[t, j])
    m.dyn = pyo.Constraint(T, S, rule=lambda m, t, i: m.x[t + 1, i] == m.x[t, i] + m.nn[t].outputs[i])
    m.init = pyo.Constraint(S, rule=lambda m, i: m.x[0, i] == float(x0[i]))
    m.ep = pyo.Constraint(T, S, rule=lambda m, t, i: m.e[t, i] >= m.x[t + 1, i] - float(goal[t, i]))
    m.em = pyo.Constraint(T, S, rule=lambda m, t, i: m.e[t, i] >= float(goal[t, i]) - m.x[t + 1, i])
    m.vp = pyo.Constraint(T, J, rule=lambda m, t, j: m.v[t, j] >= m.u[t, j])
    m.vm = pyo.Constraint(T, J, rule=lambda m, t, j: m.v[t, j] >= -m.u[t, j])
    m.obj = pyo.Objective(expr=pyo.quicksum(float(w[t, i]) * m.e[t, i] for t in T for i in S if w[t, i])
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
    return {"build_s": build, "solve_s": solve, "total_s": build + solve, "binaries": n_bin, "objective": obj,
            "gap": gap, "status": tc}


VARIANTS = ("base", "lp", "start", "auto")


def ours_plan(case: Case, horizon: int, time_limit: float, gap: float, variant: str, tighten_time: float) -> dict:
    """Plan once with one of ``VARIANTS`` (see the module docstring)."""
    kw: dict = {"tighten_steps": 0}
    warm = None
    if variant == "lp":
        kw.update(tighten_steps=horizon, tighten_time=tighten_time)
    elif variant == "start":
        kw.update(polish_lps=20)
        warm = np.zeros((horizon, case.net.nu))
    elif variant == "auto":
        kw = {}
    plan = case.mpc(horizon, time_limit=time_limit, mip_gap=gap, **kw).plan(case.x0, case.goal, warm_start=warm)
    ex = plan.extras
    solve = ex.get("solver_time_s", 0.0)
    out = {"prep_s": plan.solve_time_s - solve, "solve_s": solve, "total_s": plan.solve_time_s,
           "binaries": ex["binaries"], "objective": plan.objective, "gap": plan.gap, "status": plan.status.value}
    if variant in ("start", "auto"):  # LPs of the region descent and of the cutoff tightening
        out["lps"] = ex.get("polish_lps", 0) + ex.get("tighten_lps", 0)
    return out


def ours_build(case: Case, horizon: int) -> dict:
    """A fresh ``MIPMPC`` (validation), its bounds (symbolic propagation), assembly and passModel; no solve."""
    t0 = time.perf_counter()
    mpc = case.mpc(horizon)
    bounds = mpc.bounds(case.x0)
    milp = HighsMILP(mpc.problem, bounds, case.x0, mpc.problem.check_goal(case.goal))
    return {"build_s": time.perf_counter() - t0, "binaries": milp.n_binaries}


def best_build(build, *args, reps: int) -> dict:
    """Fastest of ``reps`` builds: on a shared machine other jobs only ever add time to a millisecond timing."""
    runs = [build(*args) for _ in range(reps)]
    return {**runs[0], "build_s": float(np.min([r["build_s"] for r in runs]))}


def receding(case: Case, horizon: int, steps: int, time_limit: float, gap: float, warm: bool,
             tighten: int | str) -> dict:
    mpc = case.mpc(horizon, time_limit=time_limit, mip_gap=gap, goal=case.goal, warm_start=warm,
                   tighten_steps=tighten)
    x, times, rebuilt = case.x0.copy(), [], 0
    for _ in range(steps):
        u = mpc.act(x)
        times.append(mpc.last_step.compute_time_s)
        rebuilt += bool(mpc.last_plan.extras.get("rebuilt")) if mpc.last_step.fallback is None else 0
        x = case.net.step(x, u)
    return {"mean_step_s": float(np.mean(times)), "max_step_s": float(np.max(times)), "rebuilds": rebuilt,
            "final_error": float(mpc.problem.state_weights @ np.abs(x - case.goal))}


def plot(rows: list[dict], path: Path) -> None:
    """Build and solve times per (network, horizon), log scale, as a small PNG for the docs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from controlkit.core.io import save_figure

    fig, axes = plt.subplots(1, 2, figsize=(12, 4), gridspec_kw={"width_ratios": [3, 2]})
    for ax, what, tags in ((axes[0], "build_s", ("base", "omlt")), (axes[1], "total_s", ("base", "auto", "omlt"))):
        sel = [r for r in rows if f"omlt_{what}" in r]
        x = np.arange(len(sel))
        for i, tag in enumerate(tags):
            ax.bar(x + (i - (len(tags) - 1) / 2) * 0.8 / len(tags), [r.get(f"{tag}_{what}", np.nan) for r in sel],
                   0.8 / len(tags), label="ours" if tag == "base" and what == "build_s" else tag)
        ax.set_xticks(x, [f"{r['net']} H={r['H']}" for r in sel], fontsize=7, rotation=60, ha="right")
        ax.set_yscale("log")
        ax.set_ylabel("build time [s]" if what == "build_s" else "plan time (build + solve) [s]")
        ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path, dpi=80)
    plt.close(fig)


MODELS = {"push_box": ROOT / "examples" / "models" / "push_box.npz",
          "pendulum_8relu": ROOT / "benchmarks" / "results" / "mip_bench_pendulum_8relu.npz",
          "pendulum_48relu": ROOT / "benchmarks" / "results" / "mip_bench_pendulum_48relu.npz"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the target rows only (under 10 minutes)")
    parser.add_argument("--model", action="append", default=[], help="CompactNetwork .npz to add (push or pendulum)")
    parser.add_argument("--time-limit", type=float, default=None, help="seconds per solve (30; --quick: 10)")
    parser.add_argument("--gap", type=float, default=1e-4)
    parser.add_argument("--tighten-time", type=float, default=None, help="LP budget of +LP (10; --quick: 5)")
    parser.add_argument("--step-time-limit", type=float, default=None, help="receding loop limit (5; --quick: 2)")
    args = parser.parse_args()
    for name, full, quick in (("time_limit", 30.0, 10.0), ("tighten_time", 10.0, 5.0), ("step_time_limit", 5.0, 2.0)):
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)
    import torch

    torch.set_num_threads(1)
    logging.getLogger("pyomo").setLevel(logging.ERROR)  # OMLT's scaled-input initial values trip W1002 warnings
    cases = {"relu8": random_case([8], 0), "relu16": random_case([16], 1), "relu8x2": random_case([8, 8], 2)}
    horizons = {name: [5, 10, 20] for name in cases}
    build_only = {"relu64x2": random_case([64, 64], 3), "relu128x2": random_case([128, 128], 4)}
    models = dict(MODELS)
    for path in args.model:
        models[Path(path).stem if Path(path).stem != "compact_model" else Path(path).parent.parent.name] = path
    if args.quick:
        cases, horizons = {"relu8": cases["relu8"]}, {"relu8": [5, 10]}
        build_only = {"relu128x2": build_only["relu128x2"]}
    for name, path in models.items():
        cases[name] = trained_case(path)
        horizons[name] = ([5] if name == "push_box" else [5, 10]) if args.quick else [5, 10, 20]
    # warm-up: first-call costs (HiGHS instance, Pyomo/OMLT imports) are paid once per process, not per model
    warm = random_case([8], 0)
    ours_build(warm, 2)
    omlt_plan(warm, 2, 1.0, args.gap, solve=False)
    rows = []
    for name, case in build_only.items():
        for H in [10] if args.quick else [5, 10, 20]:
            ours = best_build(ours_build, case, H, reps=REPS)
            om = best_build(omlt_plan, case, H, 0.0, args.gap, False, reps=1)
            row = {"net": name, "relu_per_step": case.net.n_relu, "H": H, "base_build_s": ours["build_s"],
                   "base_binaries": ours["binaries"], "omlt_build_s": om["build_s"], "omlt_binaries": om["binaries"],
                   "build_speedup": om["build_s"] / ours["build_s"], "solved": False}
            rows.append(row)
            print(row, flush=True)
    for name, case in cases.items():
        for H in horizons[name]:
            mpc = case.mpc(H)
            row = {"net": name, "relu_per_step": case.net.n_relu, "identity_per_step": case.net.n_identity, "H": H,
                   "solved": True, "ibp_binaries": ibp(mpc.problem, case.x0).count(mpc.problem)["binaries"]}
            results = {v: ours_plan(case, H, args.time_limit, args.gap, v, args.tighten_time) for v in VARIANTS}
            results["base"]["build_s"] = best_build(ours_build, case, H, reps=REPS)["build_s"]
            om = omlt_plan(case, H, args.time_limit, args.gap)
            om["build_s"] = best_build(omlt_plan, case, H, 0.0, args.gap, False, reps=REPS - 1)["build_s"]
            om["total_s"] = om["build_s"] + om["solve_s"]
            results["omlt"] = om
            for tag, r in results.items():
                row.update({f"{tag}_{k}": v for k, v in r.items()})
            row["build_speedup"] = om["build_s"] / results["base"]["build_s"]
            for v in VARIANTS:
                row[f"solve_speedup_{v}"] = om["solve_s"] / results[v]["solve_s"]
                row[f"total_speedup_{v}"] = om["total_s"] / results[v]["total_s"]
            row["obj_rel_diff"] = abs(om["objective"] - results["auto"]["objective"]) / max(
                abs(results["auto"]["objective"]), 1e-9)
            rows.append(row)
            print({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}, flush=True)
    rec_rows = []
    steps = 6 if args.quick else 10
    for name in ("relu8", "pendulum_8relu"):
        for tighten in (0, "auto"):
            for warm_start in (True, False):
                r = receding(cases[name], 10, steps, args.step_time_limit, args.gap, warm_start, tighten)
                rec_rows.append({"net": name, "H": 10, "steps": steps, "tighten": tighten,
                                 "warm_start": warm_start, **r})
                print(rec_rows[-1], flush=True)
    print()
    # --quick re-measures the target rows without overwriting the full table and its plot
    report("mip_vs_omlt_quick" if args.quick else "mip_vs_omlt", rows,
           extra={"receding_horizon": rec_rows, "time_limit_s": args.time_limit, "mip_gap": args.gap,
                  "tighten_time_s": args.tighten_time, "step_time_limit_s": args.step_time_limit,
                  "command": " ".join(sys.argv)})
    if not args.quick:
        plot(rows, ROOT / "docs" / "img" / "mip_vs_omlt.png")


if __name__ == "__main__":
    main()

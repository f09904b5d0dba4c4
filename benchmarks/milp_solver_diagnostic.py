"""Solver or relaxation? The same planning MILPs in HiGHS, SCIP and through the Pyomo backend, with their bounds.

For fixed cases of ``planning_quality.py`` (same tasks, models, costs and case states) the MILP that the
benchmark's MIP variants solve -- propagated neuron bounds, the start = the region descent from the pipeline's
candidates -- is handed with the same MIP start, gap (1e-4) and an equal deterministic limit (``--nodes``
branch-and-bound nodes; a wall-clock ``--limit`` only as a safety net; the CPU seconds of every solve are recorded)
to:

- HiGHS (``highspy``, as MIP-MPC solves it): the dual bound after the root node (a separate solve stopped at one
  node) and after the limit, the incumbent, nodes;
- SCIP (``pyscipopt``, :func:`controlkit.planning.milp.scip.solve_scip`): root and final dual bound, incumbent,
  nodes;
- the Pyomo backend (:class:`~controlkit.planning.milp.pyomo_backend.PyomoMILP`) with ``appsi_highs`` (takes the
  MIP start) and ``scip_direct`` (Pyomo passes it no start): incumbent and final dual bound;
- the relaxation itself: the LP bound (no cuts) with the propagated bounds, the unstable binaries and their
  big-M widths ``u - l``; then the same after LP tightening of every neuron with the start's cost as cutoff
  (optimality-based bound tightening) and HiGHS on that tightened MILP under the same limit.

Lower bounds are reported as a share of the best known plan (the lowest incumbent here, or the planning-quality
reference of the case if lower): 1.0 = a certificate.

Run (about a minute of CPU per case at H = 5, 100 nodes; the JSON is rewritten after every case):
``.venv/bin/python benchmarks/milp_solver_diagnostic.py [--cases push:5:0,push:5:1,push:10:0,...] [--nodes 100]``
(writes benchmarks/results/milp_solver_diagnostic.json).
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import os
import time
from typing import Any

import numpy as np
import torch
from _table import RESULTS, report
from planning_quality import MODEL, TASKS, WORK, make_cases, mip_planner, model_files

import controlkit  # noqa: F401
from controlkit.planning.milp import HighsMILP, assemble, solve_scip, tighten_lp
from controlkit.planning.milp.bounds import UNSTABLE
from controlkit.planning.milp.pyomo_backend import PyomoMILP
from controlkit.tasks.pushing import load_network

log = logging.getLogger("milp_solver_diagnostic")
DEFAULT_CASES = "push:5:0,push:5:1,obstacle:5:0,pushT:5:0,push:10:0,obstacle:10:0,pushT:10:0"
GAP = 1e-4


def bigm_widths(problem, bounds) -> np.ndarray:
    """``u - l`` of every unstable ReLU over the horizon (the big-M constants' spread)."""
    widths = []
    for t, layers in enumerate(bounds.classes(problem)):
        for k, cls in enumerate(layers):
            uns = cls == UNSTABLE
            widths.append(bounds.pre_hi[t][k][uns] - bounds.pre_lo[t][k][uns])
    return np.concatenate(widths) if widths else np.zeros(0)


def highs_solve(problem, bounds, x0, goal, start, limit: float | None, **options) -> dict[str, Any]:
    """One HiGHS solve of the compiled MILP from ``start``: incumbent, dual bound, nodes, wall and CPU seconds."""
    milp = HighsMILP(problem, bounds, x0, goal, time_limit=limit, mip_gap=GAP, options=options or None)
    c0 = time.process_time()
    res = milp.solve(start)
    info = milp.h.getInfo()
    relaxation = bool(options.get("solve_relaxation"))
    return {"objective": res.objective, "dual_bound": res.objective if relaxation else float(info.mip_dual_bound),
            "nodes": None if relaxation else int(info.mip_node_count), "wall_s": res.solve_time_s,
            "cpu_s": time.process_time() - c0, "status": res.status.value, "binaries": milp.n_binaries}


def pyomo_solve(problem, bounds, x0, goal, start, solver: str, limit: float, nodes: int) -> dict[str, Any]:
    """The Pyomo backend with ``solver`` and a node limit: incumbent and final dual bound (Pyomo reports no node
    count)."""
    milp = PyomoMILP(problem, bounds, x0, goal, solver, time_limit=limit, mip_gap=GAP)
    if solver == "appsi_highs":
        milp.opt.highs_options = {"mip_max_nodes": nodes}
    else:  # scip_direct: SCIP's own parameter names
        milp.opt.options["limits/nodes"] = nodes
    c0 = time.process_time()
    res = milp.solve(start)
    ok = np.isfinite(res.objective)
    dual = res.objective - res.gap * max(abs(res.objective), 1e-10) if ok and res.gap is not None else float("nan")
    return {"objective": res.objective, "dual_bound": dual, "wall_s": res.solve_time_s,
            "cpu_s": time.process_time() - c0, "status": res.status.value, "mip_start": milp.warm_start_capable}


def diagnose(net, task, case, horizon: int, nodes: int, limit: float) -> dict[str, Any]:
    """Every solver and relaxation number for one case."""
    planner = mip_planner("descent", net, task, case, {**WORK[1.0], "passes": {"mppi": 1}}, 1.0, False)
    planner.reset(seed=case.index)
    p = planner.problem
    x0, goal = case.x, p.check_goal(case.goal)
    descent = planner.plan(x0, goal, warm_start=np.tile(planner.safe_action, (horizon, 1)))
    actions = descent.actions
    bounds = planner.bounds(x0)
    start_cost = float(p.objective(p.net.rollout(x0, actions), actions, goal))
    start = HighsMILP(p, bounds, x0, goal).start_vector(x0, actions, goal, bounds)
    arrays, _ = assemble(p, bounds, x0, goal)
    widths = bigm_widths(p, bounds)
    out: dict[str, Any] = {"start_cost": start_cost, "binaries": int(widths.size),
                           "bigm_width_median": float(np.median(widths)) if widths.size else 0.0}
    out["lp"] = highs_solve(p, bounds, x0, goal, None, None, solve_relaxation=True)
    out["highs_root"] = highs_solve(p, bounds, x0, goal, start, None, mip_max_nodes=1)
    out["highs"] = highs_solve(p, bounds, x0, goal, start, limit, mip_max_nodes=nodes)
    c0, t0 = time.process_time(), time.perf_counter()
    scip = solve_scip(arrays, start=start, time_limit=limit, node_limit=nodes, mip_gap=GAP, seed=0)
    out["scip"] = {"objective": scip.objective, "dual_bound": scip.dual_bound, "root_dual_bound": scip.root_dual_bound,
                   "nodes": scip.nodes, "wall_s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0,
                   "status": scip.status, "start_accepted": scip.start_accepted}
    out["pyomo_appsi_highs"] = pyomo_solve(p, bounds, x0, goal, start, "appsi_highs", limit, nodes)
    out["pyomo_scip_direct"] = pyomo_solve(p, bounds, x0, goal, None, "scip_direct", limit, nodes)
    # the relaxation with LP-tightened bounds (every neuron, the start's cost as cutoff)
    t0, c0 = time.perf_counter(), time.process_time()
    tight, n_lp = tighten_lp(p, x0, copy.deepcopy(bounds), goal=goal, cutoff=start_cost)
    tw = bigm_widths(p, tight)
    out["tightened"] = {"lps": n_lp, "wall_s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0,
                        "binaries": int(tw.size), "bigm_width_median": float(np.median(tw)) if tw.size else 0.0}
    tight_start = HighsMILP(p, tight, x0, goal).start_vector(x0, actions, goal, tight)
    out["lp_tightened"] = highs_solve(p, tight, x0, goal, None, None, solve_relaxation=True)
    out["highs_root_tightened"] = highs_solve(p, tight, x0, goal, tight_start, None, mip_max_nodes=1)
    out["highs_tightened"] = highs_solve(p, tight, x0, goal, tight_start, limit, mip_max_nodes=nodes)
    return out


SOLVERS = ("highs", "scip", "pyomo_appsi_highs", "pyomo_scip_direct", "highs_tightened")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", default=DEFAULT_CASES, help="task:H:case, comma-separated")
    ap.add_argument("--nodes", type=int, default=100, help="branch-and-bound nodes per solve, every solver")
    ap.add_argument("--limit", type=float, default=600.0, help="safety net: wall-clock seconds per solve")
    ap.add_argument("--reference", default="planning_quality", help="result whose per-case references count as "
                    "best known plans too ('' = none)")
    ap.add_argument("--out", default="milp_solver_diagnostic")
    ap.add_argument("--markdown", default="", help="comma-separated results to print as one Markdown table instead "
                    "of running")
    args = ap.parse_args()
    if args.markdown:
        return markdown(args.markdown.split(","))
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(1)
    specs = []
    for item in (c for c in args.cases.split(",") if c):
        task_name, h, i = item.split(":")
        if task_name not in TASKS:
            raise SystemExit(f"--cases: unknown task {task_name!r}; valid: {', '.join(TASKS)}")
        specs.append((task_name, int(h), int(i)))
    known: dict[tuple, float] = {}
    ref_file = RESULTS / f"{args.reference}.json"
    if args.reference and ref_file.exists():
        known = {(r["task"], r["H"], r["case"]): r["reference"] for r in json.loads(ref_file.read_text())["references"]}
    files = model_files(str(MODEL))
    load_before = os.getloadavg()[0]
    rows, details = [], []
    for task_name, horizon, index in specs:
        cases, task, env = make_cases(task_name, index + 1, horizon)
        out = diagnose(load_network(files[task_name]), task, cases[index], horizon, args.nodes, args.limit)
        env.close()
        incumbents = [out[s]["objective"] for s in SOLVERS] + [out["start_cost"]]
        best = min([v for v in incumbents if np.isfinite(v)] + [known.get((task_name, horizon, index), np.inf)])
        out.update(task=task_name, H=horizon, case=index, best_known=best)
        details.append(out)
        for solver in ("lp", "highs_root", *SOLVERS, "lp_tightened", "highs_root_tightened"):
            r = out[solver]
            rows.append({"task": task_name, "H": horizon, "case": index, "solver": solver,
                         "binaries": out["tightened"]["binaries"] if "tightened" in solver else out["binaries"],
                         "root_bound/best": share(r.get("root_dual_bound"), best),
                         "bound/best": share(r["dual_bound"], best),
                         "incumbent/best": share(r["objective"], best) if solver not in ("lp", "lp_tightened") else None,
                         "nodes": r.get("nodes"), "wall_s": r["wall_s"], "cpu_s": r["cpu_s"]})
        log.info("%s H=%d case %d, bound / best known: LP %.3f, HiGHS root %.3f, HiGHS %.3f, SCIP %.3f (root %.3f); "
                 "tightened: LP %.3f, HiGHS %.3f", task_name, horizon, index,
                 *(out[k]["dual_bound"] / best for k in ("lp", "highs_root", "highs", "scip")),
                 out["scip"]["root_dual_bound"] / best, out["lp_tightened"]["dual_bound"] / best,
                 out["highs_tightened"]["dual_bound"] / best)
        report(args.out, rows, {"nodes": args.nodes, "limit_s": args.limit, "mip_gap": GAP, "cases": specs,
                                "details": details, "load_average_before": load_before,
                                "load_average_after": os.getloadavg()[0],
                                "note": "Equal node limits (HiGHS mip_max_nodes, SCIP limits/nodes); cpu_s is "
                                        "what each solve took. bound/best: the solver's proven lower bound over the "
                                        "best known plan (1 = certified)."})


def markdown(names: list[str]) -> None:
    """One Markdown row per case: binaries and big-M widths, then every lower bound / best known plan."""
    print("| case | binaries (tightened) | big-M width, median (tightened) | LP | HiGHS root | HiGHS | SCIP root "
          "| SCIP | Pyomo appsi_highs | Pyomo scip_direct (no start) | tightened: LP / root / HiGHS | CPU s: HiGHS / SCIP |")
    print("|---|" + "---|" * 11)
    for name in names:
        data = json.loads((RESULTS / f"{name}.json").read_text())
        for d in data["details"]:
            b = d["best_known"]

            def f(key: str, field: str = "dual_bound", d=d, b=b) -> str:
                v = share(d[key].get(field), b)
                return "—" if v is None else f"{v:.3f}"

            t = d["tightened"]
            print(f"| {d['task']} H = {d['H']} #{d['case']} | {d['binaries']} ({t['binaries']}) | "
                  f"{d['bigm_width_median']:.1f} ({t['bigm_width_median']:.1f}) | {f('lp')} | {f('highs_root')} | "
                  f"{f('highs')} | {f('scip', 'root_dual_bound')} | {f('scip')} | {f('pyomo_appsi_highs')} | "
                  f"{f('pyomo_scip_direct')} | {f('lp_tightened')} / {f('highs_root_tightened')} / "
                  f"{f('highs_tightened')} | {d['highs']['cpu_s']:.1f} / {d['scip']['cpu_s']:.1f} |")


def share(value: float | None, best: float) -> float | None:
    """``value / best`` when ``value`` is a finite number, else None."""
    return float(value) / best if value is not None and np.isfinite(value) else None


if __name__ == "__main__":
    main()

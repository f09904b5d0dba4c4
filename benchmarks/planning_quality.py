"""Planning quality on the learned pushing model: planned cost per planner at equal work, against the best plan.

Modelled on BaB-ND's protocol: fixed cases (a pushing state and its goal), every planner plans once per case and
work level, and the plan's cost on the model (the MILP's objective, rolled through the network; a plan that
breaks a hard constraint pays 1000 per unit on top) is compared with the proven optimum -- a long offline solve
(MIP-MPC from the best plan found, LP-tightened bounds, no gap tolerance) where it finishes -- or else with the
best plan any planner found. Lower is better; 1.0 = optimal.

Tasks:
- ``push``: the box pushed to its goal (cost as the pipeline's: position 1, pusher 0.2, terminal x5); states after
  a seeded number of greedy steps, so the pusher is near the box.
- ``obstacle``: the keep-out square of ``experiments/push_keepout.yaml`` between the box and its goal, priced
  (1000 per metre of depth per step) on the real goal -- no routed waypoint, so a plan must choose a side.
- ``pushT``: the T to a pose (goal rotation up to pi/4, orientation weight 0.1) on the 32-ReLU T model of
  ``experiments/push_t_pose.yaml`` that ``benchmarks/pusht_model.py`` learns (``benchmarks/results/pusht_model.npz``).

Planners (all from the same shifted start = the safe action, same seeds):
MPPI, CEM and gradient shooting (anytime: repeated warm-started passes, the best kept); ``starts_only`` (best of
the candidate starts: safe, greedy on the model, MPPI -- no MILP); ``descent`` (the region descent from the best
start); ``descent_k4`` (from the 4 best candidates, MPPI's elites among them); ``mip`` (MIP-MPC as the pipeline:
candidates, descent, HiGHS branch and bound); ``mip_heur`` (the same with HiGHS's heuristic effort 0.3);
``lns_window`` / ``lns_switching`` / ``lns_hamming`` (the neighbourhood search after the descent, no branch and
bound after it: ``branch_and_bound=False``); ``hop`` (``descent_k4``, then basin hopping over activation regions:
``search="hop"``, LPs only); ``mppi_descent`` / ``mppi_lns_window`` / ``mppi_hop`` (the same with the MPPI
candidate given as many iterations as the MPPI planner gets at that budget).

Work levels stand for the budgets 0.05, 0.3, 1 and 10 s: each sets the sampler passes (the budget over a pass's
CPU time, ``PASS_S``), branch-and-bound nodes, neighbourhood slices of ``SLICE_NODES`` nodes and hops
(``WORK``). The
MILP's work does not shrink to the small budgets: one branch-and-bound node (the root's cuts and heuristics) costs
seconds on the push model. In this default
deterministic mode nothing depends on the clock: the same run gives the same numbers. The CPU seconds each plan
took are recorded next to its cost. ``--wall`` gives each planner the budget as wall-clock limits instead
(marked ``time_limited`` in the JSON).

Per MIP variant the JSON reports the share of cases where the global search (anything after the region descent)
improved the plan, and the median certified gap.

Run (the default grid: H = 5, budgets 0.3 and 1 s, 5 cases per task; about an hour on 2 loaded cores):
``.venv/bin/python benchmarks/planning_quality.py [--cases 5] [--first-case 0] [--horizons 5] [--budgets 0.3,1]
[--tasks push,obstacle,pushT] [--reference-limit 30] [--planners ...] [--wall] [--out NAME]``
(writes benchmarks/results/NAME.json and docs/img/NAME.png). Slices of the grid run as separate processes and
``--merge A,B,... --out NAME`` combines them (one reference per case: the lowest, proven where a part proved it);
``--markdown NAME`` prints the tables of a result. The published run's calls are in docs/mip_mpc.md ("Planning
quality").
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from _table import RESULTS, report

import controlkit  # noqa: F401
from controlkit.core.controller import Status
from controlkit.tasks.pushing import CostConfig, GreedyPusher, PlannerSpec, Task, load_network, make_planner

log = logging.getLogger("planning_quality")
ROOT = Path(__file__).resolve().parent.parent
MODEL = RESULTS / "push_mip_step_model.npz"
T_MODEL = RESULTS / "pusht_model.npz"  # benchmarks/pusht_model.py
BUDGETS = (0.05, 0.3, 1.0, 10.0)
# Work per budget level: sampler passes, branch-and-bound nodes, neighbourhood slices (of SLICE_NODES nodes).
WORK = {
    0.05: {"nodes": 1, "slices": 0, "hops": 2},
    0.3: {"nodes": 1, "slices": 1, "hops": 10},
    1.0: {"nodes": 10, "slices": 3, "hops": 30},
    10.0: {"nodes": 200, "slices": 24, "hops": 300},
}
# CPU seconds of one sampler pass at H = 5 on this machine (scaled by H / 5): passes = budget / this.
PASS_S = {"mppi": 0.01, "cem": 0.005, "gradient": 0.03}
SLICE_NODES = 20
POLISH_LPS = 50
SAMPLERS = {
    "mppi": PlannerSpec(type="mppi", n_samples=200, iterations=5, temperature=0.003, noise_std=0.3),
    "cem": PlannerSpec(type="cem", n_samples=100, iterations=5, elite_frac=0.1),
    "gradient": PlannerSpec(type="gradient", iterations=20, lr=0.005, n_restarts=8),
}
MIP_VARIANTS = {
    "starts_only": {},
    "descent": {"branch_and_bound": False},
    "descent_k4": {"polish_starts": 4, "branch_and_bound": False},
    "mip": {},
    "mip_heur": {"highs_options": {"mip_heuristic_effort": 0.3}},
    # branch and bound after optimality-based tightening: every unstable neuron's bounds LP-tightened over the
    # relaxation cut off at the descent's cost (tighten_steps="auto" with a time budget that never binds, so it
    # stays deterministic)
    "mip_tight": {"tighten_steps": "auto", "tighten_time": 1e6},
    "lns_window": {"search": "window", "search_size": 2, "branch_and_bound": False},
    "lns_switching": {"search": "switching", "search_size": 24, "branch_and_bound": False},
    "lns_hamming": {"search": "hamming", "search_size": 4, "branch_and_bound": False},
    # the MPPI candidate gets as many MPPI iterations as the MPPI planner at this budget
    "mppi_descent": {"branch_and_bound": False, "mppi_budget": True},
    "mppi_lns_window": {"search": "window", "search_size": 2, "branch_and_bound": False, "mppi_budget": True},
    # basin hopping over activation regions (LPs only) after the descent from the 4 best starts: the global step
    # that needs no MILP solve
    "hop": {"search": "hop", "search_size": 3, "polish_starts": 4, "branch_and_bound": False},
    "mppi_hop": {"search": "hop", "search_size": 3, "polish_starts": 4, "branch_and_bound": False,
                 "mppi_budget": True},
}
PLANNERS = (*SAMPLERS, *MIP_VARIANTS)
# lns_hamming and mip_heur run on request (--planners): one slice of local branching cost 4-5 s of CPU at H = 5
# and found nothing the window search did not; mip_heur gave the same plans as mip on all 8 cases of the first run
DEFAULT_PLANNERS = tuple(n for n in PLANNERS if n not in ("lns_hamming", "mip_heur", "mip_tight"))
# The variants whose MILP work (a branch-and-bound root, or neighbourhood slices) costs CPU seconds per plan
# whatever the work level; the cheap ones (samplers, candidates, descent) fit a control step.
COSTLY = ("mip", "mip_heur", "mip_tight", "lns_window", "lns_switching", "lns_hamming", "mppi_lns_window")
# task: (env kwargs, cost kwargs, model file)
TASKS = {
    "push": ({"orientation_tolerance": 3.1416}, {}, MODEL),
    "obstacle": ({"orientation_tolerance": 3.1416, "keep_out": [-0.05, -0.05, 0.05, 0.05], "keep_out_crossing": True,
                  "goal_distance": [0.24, 0.3]},
                 {"keep_out_margin": 0.02, "keep_out_penalty": 1000.0}, MODEL),
    # the T to a pose: goal rotation up to pi/4 (the env's default); a 45 degree error (|cos - 1| + |sin| = 1)
    # costs as much as 10 cm of position error
    "pushT": ({"shape": "t", "orientation_tolerance": 0.3}, {"orientation_weight": 0.1}, T_MODEL),
}
_HARD = 1e3  # per unit of hard-constraint violation, as the candidate starts are scored


@dataclasses.dataclass
class Case:
    task: str
    index: int
    x: np.ndarray
    goal: np.ndarray


def make_cases(task_name: str, n: int, horizon: int, seed: int = 0) -> tuple[list[Case], Task, Any]:
    """``n`` fixed states: episode ``seed + 10_000 + i`` after a seeded number of greedy steps."""
    env_kwargs, cost_kwargs, _ = TASKS[task_name]
    env = gym.make("controlkit/Push-v0", goal_in_obs=False, **env_kwargs)
    task = Task(env.unwrapped, CostConfig(horizon=horizon, pusher_weight=0.2, terminal_weight=5.0, **cost_kwargs))
    rng = np.random.default_rng(seed)
    cases = []
    for i in range(n):
        env.reset(seed=seed + 10_000 + i)
        task.reset()
        greedy = GreedyPusher(env.unwrapped.shape, env.unwrapped.step_size)
        for _ in range(int(rng.integers(2, 12))):
            x, goal = task.state_goal()
            env.step(greedy.action(x, goal[:2]).astype(np.float32))
        x, goal = task.state_goal()
        cases.append(Case(task_name, i, x, goal))
    return cases, task, env


def score(problem, x: np.ndarray, actions: np.ndarray, goal: np.ndarray) -> float:
    """The MILP objective of ``actions`` on the network, plus ``_HARD`` per unit of hard-constraint violation."""
    states = problem.net.rollout(x, actions)
    g = problem.check_goal(goal)
    return float(problem.objective(states, actions, g)) + _HARD * float(problem.violation(states, hard_only=True))


def run_sampler(name: str, net, task: Task, case: Case, work: dict, budget: float, wall: bool) -> dict[str, Any]:
    """Anytime sampler: warm-started passes (a fixed number, or until the budget is spent), the best kept."""
    planner = make_planner(name, SAMPLERS[name], net, task, seed=case.index)
    planner.reset(seed=case.index)
    p = planner.problem
    best, best_cost, warm = None, np.inf, np.tile(planner.safe_action, (p.horizon, 1))
    t0, c0, passes = time.perf_counter(), time.process_time(), 0
    while True:
        plan = planner.plan(case.x, case.goal, warm_start=warm)
        passes += 1
        cost = score(p, case.x, plan.actions, case.goal)
        if cost < best_cost:
            best, best_cost = plan.actions, cost
        warm = best
        if (time.perf_counter() - t0 >= budget) if wall else passes >= work["passes"][name]:
            break
    return {"cost": best_cost, "cpu_s": time.process_time() - c0, "wall_s": time.perf_counter() - t0,
            "passes": passes, "time_limited": wall}, best


def mip_spec(name: str, work: dict, budget: float, wall: bool) -> PlannerSpec:
    """The spec of MIP variant ``name`` at this work level (candidates safe + greedy + MPPI 200 x 5, as the
    pipeline)."""
    extra = dict(MIP_VARIANTS[name])
    lns = "search" in extra
    warm_iterations = 5 * work["passes"]["mppi"] if extra.pop("mppi_budget", False) else 5
    extra["polish_lps"] = 0 if name == "starts_only" else POLISH_LPS
    if lns and extra["search"] == "hop":
        extra.update(search_slices=work["hops"])  # each hop descends with the same LP budget
    elif lns:
        extra.update(search_slices=work["slices"], search_nodes=SLICE_NODES)
        if work["slices"] == 0:
            extra["search"] = "none"
    opts = {**extra.pop("highs_options", {}), "mip_max_nodes": work["nodes"]}
    if wall:
        kw = dict(time_limit=budget, tighten_steps=0)
        opts.pop("mip_max_nodes")
    else:
        kw = dict(time_limit=None, tighten_steps=0)
    kw.update({k: extra.pop(k) for k in ("tighten_steps", "tighten_time") if k in extra})
    return PlannerSpec(type="mip_mpc", mip_gap=1e-4, starts=["safe", "greedy"], warm_samples=200,
                       warm_iterations=warm_iterations, highs_options=opts, **kw, **extra)


def mip_planner(name: str, net, task: Task, case: Case, work: dict, budget: float, wall: bool):
    """The MIP variant ``name`` at this work level, seeded by the case."""
    return make_planner(name, mip_spec(name, work, budget, wall), net, task, seed=case.index)


def work_key(name: str, work: dict, budget: float, wall: bool) -> tuple | None:
    """What planner ``name`` does at this work level, or None under wall-clock budgets. Two levels with the same
    key give the same plan in the deterministic mode (e.g. ``mip`` runs one branch-and-bound node at 0.05 and at
    0.3 s), so the plan is computed once and its row reused."""
    if wall:
        return None
    if name in SAMPLERS:
        return name, work["passes"][name]
    return name, mip_spec(name, work, budget, wall).model_dump_json()


def searches(name: str) -> bool:
    """Whether the MIP variant ``name`` runs a global search (branch and bound or neighbourhood slices) after the
    region descent."""
    if name not in MIP_VARIANTS or name == "starts_only":
        return False
    extra = MIP_VARIANTS[name]
    return extra.get("branch_and_bound", True) or "search" in extra


def run_mip(name: str, net, task: Task, case: Case, work: dict, budget: float, wall: bool):
    planner = mip_planner(name, net, task, case, work, budget, wall)
    planner.reset(seed=case.index)
    p = planner.problem
    safe = np.tile(planner.safe_action, (p.horizon, 1))
    t0, c0 = time.perf_counter(), time.process_time()
    if name == "starts_only":  # the candidates alone, no MILP
        cands = planner.candidates(case.x, p.check_goal(case.goal), safe)
        costs = {k: score(p, case.x, a, case.goal) for k, a in cands.items()}
        best = min(costs, key=costs.get)
        return {"cost": costs[best], "cpu_s": time.process_time() - c0, "wall_s": time.perf_counter() - t0,
                "start": best, "time_limited": False}, cands[best]
    plan = planner.plan(case.x, case.goal, warm_start=safe)
    cpu, elapsed = time.process_time() - c0, time.perf_counter() - t0
    ex = plan.extras
    start_cost = min(ex["start_scores"].values())
    if plan.status in (Status.OK, Status.SUBOPTIMAL):
        actions = plan.actions
    else:  # no MILP plan: the step would apply the best candidate
        actions = planner._best_start
    cost = score(p, case.x, actions, case.goal)
    descent = ex.get("polish_objective", start_cost)
    local = min(start_cost, descent if np.isfinite(descent) else np.inf)
    row = {"cost": cost, "cpu_s": cpu, "wall_s": elapsed, "start_cost": start_cost, "descent_cost": local,
           "status": plan.status.value, "gap": plan.gap if plan.gap is not None else float("nan"),
           "binaries": ex.get("binaries"), "time_limited": bool(ex.get("time_limited", wall))}
    if not wall and "tighten_time_s" in ex:  # mip_tight: time-limited only if its tightening ran out of time
        row.update(time_limited=ex["tighten_time_s"] >= planner.tighten_time, tighten_lps=ex.get("tighten_lps"))
    if searches(name):  # the MILP or the search ran after the descent
        row["search_improved"] = bool(cost < local - 1e-7 * (1.0 + abs(local)))
        row["lns_improvements"] = ex.get("search_improvements", 0)
    return row, actions


def reference(net, task: Task, case: Case, best_actions: np.ndarray, limit: float) -> dict[str, Any]:
    """A long solve from the best plan found: LP-tightened bounds, gap 1e-6; proven if it ends optimal."""
    spec = PlannerSpec(type="mip_mpc", mip_gap=1e-6, time_limit=limit, tighten_steps="auto", tighten_time=0.2 * limit)
    planner = make_planner("reference", spec, net, task, seed=0)
    t0 = time.perf_counter()
    plan = planner.plan(case.x, case.goal, warm_start=best_actions)
    p = planner.problem
    ok = plan.status in (Status.OK, Status.SUBOPTIMAL)
    cost = score(p, case.x, plan.actions, case.goal) if ok else float("inf")
    return {"cost": cost, "proven": plan.status is Status.OK, "gap": plan.gap, "wall_s": time.perf_counter() - t0,
            "binaries": plan.extras.get("binaries")}


def model_files(box_model: str) -> dict[str, str]:
    """The network file each task plans on (``--model`` replaces the box model of ``push`` and ``obstacle``)."""
    return {t: str(box_model if spec[2] == MODEL else spec[2]) for t, spec in TASKS.items()}


def reference_row(task_name: str, horizon: int, case: int, best: float, best_by: str, ref: dict) -> dict[str, Any]:
    """The reference of one case and where it comes from: a proven optimum, the offline solve's incumbent, or the
    best plan a planner found (named)."""
    if ref["proven"] and ref["cost"] <= best + 1e-6 * (1.0 + abs(best)):
        source = "proven optimum"
    elif ref["cost"] < best:
        source = "offline solve (not proven)"
    else:
        source = f"best found ({best_by})"
    return {"task": task_name, "H": horizon, "case": case, "best_found": best, "best_by": best_by,
            "reference": min(best, ref["cost"]), "proven": bool(ref["proven"]), "source": source,
            "reference_gap": ref.get("gap"), "binaries": ref.get("binaries"), "reference_wall_s": ref.get("wall_s")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(MODEL), help="the box model (push, obstacle); pushT uses " + T_MODEL.name)
    ap.add_argument("--cases", type=int, default=5, help="cases per task and horizon (BaB-ND uses 20)")
    ap.add_argument("--first-case", type=int, default=0, help="index of the first case (to split a run)")
    ap.add_argument("--horizons", default="5")
    ap.add_argument("--budgets", default="0.3,1", help=f"any of {', '.join(map(str, BUDGETS))}")
    ap.add_argument("--tasks", default="push,obstacle")
    ap.add_argument("--planners", default=",".join(DEFAULT_PLANNERS))
    ap.add_argument("--reference-limit", type=float, default=30.0, help="seconds of the offline solve (0 = none)")
    ap.add_argument("--wall", action="store_true", help="wall-clock budgets instead of the deterministic work")
    ap.add_argument("--out", default="planning_quality")
    ap.add_argument("--refine", default="", help="re-run the offline solve (--reference-limit seconds, from the "
                    "descent's plan) for every case of this result and keep the better reference")
    ap.add_argument("--merge", default="", help="comma-separated result names (e.g. runs of one task each, in "
                    "parallel) to combine into --out instead of running")
    ap.add_argument("--markdown", default="", help="print the Markdown tables of this result instead of running")
    args = ap.parse_args()
    if args.markdown:
        return markdown(args.markdown)
    if args.merge:
        return merge([m for m in args.merge.split(",") if m], args.out)
    if args.refine:
        return refine(args.refine, args.model, args.reference_limit)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(1)
    budgets = [float(b) for b in args.budgets.split(",")]
    planners = [s for s in args.planners.split(",") if s]
    tasks = [s for s in args.tasks.split(",") if s]
    for label, got, valid in (("--budgets", budgets, BUDGETS), ("--planners", planners, PLANNERS),
                              ("--tasks", tasks, tuple(TASKS))):
        bad = [g for g in got if g not in valid]
        if bad:
            raise SystemExit(f"{label}: unknown {bad}; valid: {', '.join(map(str, valid))}")
    files = model_files(args.model)
    nets = {t: load_network(files[t]) for t in tasks}
    load_before = os.getloadavg()[0]
    runs, refs = [], []
    for task_name in tasks:
        net = nets[task_name]
        for horizon in (int(h) for h in args.horizons.split(",")):
            cases, task, env = make_cases(task_name, args.first_case + args.cases, horizon)
            for case in cases[args.first_case:]:
                best, best_by, best_actions = np.inf, "", None
                done: dict[tuple, tuple[float, dict, np.ndarray]] = {}  # work_key -> (budget, row, plan)
                for budget in budgets:
                    scale = horizon / 5
                    work = {**WORK[budget], "passes": {k: max(1, round(budget / (v * scale)))
                                                       for k, v in PASS_S.items()}}
                    for name in planners:
                        key = work_key(name, work, budget, args.wall)
                        if key in done:  # the same work as at a lower budget: the same plan
                            first, row, actions = done[key]
                            row = {**row, "same_work_as": first}
                        else:
                            fn = run_sampler if name in SAMPLERS else run_mip
                            row, actions = fn(name, net, task, case, work, budget, args.wall)
                            if key is not None:
                                done[key] = (budget, row, actions)
                        if row["cost"] < best:
                            best, best_by, best_actions = row["cost"], f"{name} at {budget:g}", actions
                        runs.append({"task": task_name, "H": horizon, "case": case.index, "budget": budget,
                                     "planner": name, **row})
                        log.info("%s H=%d case %d budget %g %-14s cost %.5f cpu %.2fs", task_name, horizon,
                                 case.index, budget, name, row["cost"], row["cpu_s"])
                ref = {"cost": float("inf"), "proven": False}
                if args.reference_limit > 0:  # from the best plan any planner found
                    ref = reference(net, task, case, best_actions, args.reference_limit)
                    log.info("%s H=%d case %d reference %.5f proven %s (%.0fs)", task_name, horizon, case.index,
                             ref["cost"], ref["proven"], ref["wall_s"])
                refs.append(reference_row(task_name, horizon, case.index, best, best_by, ref))
            env.close()
    rows = summarise(runs, refs, budgets, planners)
    extra = {"model_files": {t: os.path.relpath(files[t], ROOT) for t in tasks},
             "mode": "wall" if args.wall else "deterministic",
             "work": {str(b): WORK[b] for b in budgets}, "sampler_pass_cpu_s_at_H5": PASS_S,
             "slice_nodes": SLICE_NODES, "polish_lps": POLISH_LPS, "first_case": args.first_case,
             "cases_per_task": args.cases, "horizons": args.horizons, "tasks": tasks,
             "reference_limit_s": args.reference_limit, "load_average_before": load_before,
             "load_average_after": os.getloadavg()[0], "references": refs, "runs": runs,
             "targets": targets(runs, refs)}
    report(args.out, rows, extra)
    plot(rows, ROOT / "docs" / "img" / f"{args.out}.png")


def refine(name: str, model: str, limit: float) -> None:
    """A longer offline solve per case of result ``name``; its reference becomes the better of the two."""
    import json

    torch.set_num_threads(1)
    data = json.loads((RESULTS / f"{name}.json").read_text())
    files = model_files(model)
    refs = {(r["task"], r["H"], r["case"]): r for r in data["references"]}
    for task_name, horizon in sorted({(t, h) for t, h, _ in refs}):
        net = load_network(files[task_name])
        n = 1 + max(c for t, h, c in refs if (t, h) == (task_name, horizon))
        cases, task, env = make_cases(task_name, n, horizon)
        for case in cases:
            if (task_name, horizon, case.index) not in refs:
                continue
            planner = mip_planner("descent", net, task, case, {**WORK[1.0], "passes": {"mppi": 1}}, 1.0, False)
            planner.reset(seed=case.index)
            start = planner.plan(case.x, case.goal, warm_start=np.tile(planner.safe_action, (horizon, 1)))
            ref = reference(net, task, case, start.actions, limit)
            r = refs[(task_name, horizon, case.index)]
            log.info("%s H=%d case %d refined %.5f proven %s (was %.5f)", task_name, horizon, case.index,
                     ref["cost"], ref["proven"], r["reference"])
            if ref["cost"] <= r["reference"] + 1e-9:
                new = reference_row(task_name, horizon, case.index, r["best_found"], r.get("best_by", ""), ref)
                r.update(reference=min(r["reference"], ref["cost"]), proven=new["proven"], source=new["source"],
                         reference_gap=ref["gap"], reference_wall_s=ref["wall_s"], refined_limit_s=limit)
        env.close()
    data["references"] = list(refs.values())
    budgets = sorted({r["budget"] for r in data["runs"]})
    planners = list(dict.fromkeys(r["planner"] for r in data["runs"]))
    data["rows"] = summarise(data["runs"], data["references"], budgets, planners)
    extra = {k: v for k, v in data.items() if k not in ("rows", "machine")}
    report(name, data["rows"], extra)


def merge_references(refs: list[dict]) -> list[dict]:
    """One reference per case from several runs: the lowest cost; proven when a run proved an optimum that no
    run beat (beyond the solver's tolerance)."""
    best: dict[tuple, dict] = {}
    for r in refs:
        key = (r["task"], r["H"], r["case"])
        if key not in best or r["reference"] < best[key]["reference"]:
            best[key] = dict(r)
    for r in refs:
        b = best[(r["task"], r["H"], r["case"])]
        if r["proven"] and r["reference"] <= b["reference"] + 1e-6 * (1.0 + abs(b["reference"])) and not b["proven"]:
            b.update(proven=True, source="proven optimum", reference_gap=r.get("reference_gap"),
                     reference_wall_s=r.get("reference_wall_s"))
    return list(best.values())


def merge(names: list[str], out: str) -> None:
    """Combine the runs and references of earlier result files (same work levels) into one result."""
    import json

    parts = [json.loads((RESULTS / f"{n}.json").read_text()) for n in names]
    runs = [r for part in parts for r in part["runs"]]
    refs = merge_references([r for part in parts for r in part["references"]])
    budgets = sorted({r["budget"] for r in runs})
    planners = list(dict.fromkeys(r["planner"] for r in runs))
    rows = summarise(runs, refs, budgets, planners)
    extra = {k: v for k, v in parts[0].items() if k not in ("rows", "runs", "references", "machine")}
    files: dict[str, str] = {}
    for part in parts:
        files.update(part.get("model_files", {}))
    extra.update(tasks=list(dict.fromkeys(t for part in parts for t in part["tasks"])), model_files=files,
                 horizons=sorted({r["H"] for r in runs}), merged_from=names, references=refs, runs=runs,
                 targets=targets(runs, refs),
                 cases_per_task=None, first_case=None,
                 reference_limit_s=[part["reference_limit_s"] for part in parts],
                 load_average_before=[part["load_average_before"] for part in parts],
                 load_average_after=[part["load_average_after"] for part in parts])
    report(out, rows, extra)
    plot(rows, ROOT / "docs" / "img" / f"{out}.png")


def markdown(name: str) -> None:
    """Print Markdown tables of result ``name``, per task and horizon: per planner, the median and worst cost /
    reference at each budget, the share of cases the global search improved and the median certified gap. Where
    planners ran on different cases, a second table compares them on the cases they all ran."""
    import json

    data = json.loads((RESULTS / f"{name}.json").read_text())
    runs, refs = data["runs"], data["references"]
    for task_name, horizon in sorted({(r["task"], r["H"]) for r in runs}):
        mine = [r for r in runs if (r["task"], r["H"]) == (task_name, horizon)]
        budgets = sorted({r["budget"] for r in mine})
        planners = list(dict.fromkeys(r["planner"] for r in mine))
        per_planner = [{r["case"] for r in mine if r["planner"] == n} for n in planners]
        common = set.intersection(*per_planner)
        subsets = [(None, mine)]
        if any(c != common for c in per_planner) and common:
            subsets.append((sorted(common), [r for r in mine if r["case"] in common]))
        for cases, sel_runs in subsets:
            sel = summarise(sel_runs, refs, budgets, planners)
            used = {r["case"] for r in sel_runs}
            proven = sum(r["proven"] for r in refs if (r["task"], r["H"]) == (task_name, horizon) and r["case"] in used)
            where = "all cases" if cases is None else f"the cases every planner ran: {cases}"
            print(f"\n**{task_name}, H = {horizon}**, {where} (reference = proven optimum in {proven} of {len(used)}, "
                  "otherwise the best plan found)\n")
            print("| planner | " + " | ".join(f"{b:g} s: median / worst, within 1 % (cases)" for b in budgets)
                  + " | improved by the search | certified gap (median) | certified within 1 % | CPU s at the top"
                  " budget (median) |")
            print("|---|" + "---|" * (len(budgets) + 4))
            for name_ in planners:
                by_b = {r["budget"]: r for r in sel if r["planner"] == name_}
                if not by_b:
                    continue
                cells = [f"{by_b[b]['rel_median']:.3f} / {by_b[b]['rel_worst']:.3f}, {by_b[b]['within_1pct']:.0%} "
                         f"({by_b[b]['cases']})" if b in by_b else "—" for b in budgets]
                top = by_b[max(by_b)]
                improved = ", ".join(f"{by_b[b]['search_improved']:.0%}" for b in budgets
                                     if b in by_b and "search_improved" in by_b[b])
                gaps = [by_b[b].get("gap_median") for b in budgets if b in by_b and by_b[b].get("gap_median") is not None]
                certified = ", ".join(f"{by_b[b]['certified_1pct']:.0%}" for b in budgets
                                      if b in by_b and by_b[b].get("gap_median") is not None)
                print(f"| {name_} | " + " | ".join(cells) + f" | {improved} | "
                      + (f"{gaps[-1]:.2f}" if gaps else "") + f" | {certified} | {top['cpu_median_s']:.2f} |")
    print_targets(targets(runs, refs))


def targets(runs: list[dict], refs: list[dict], budget: float = 1.0) -> dict[str, Any]:
    """Issue #19's plan-quality targets at the ``budget`` work level, over every case that ran.

    ``certificate``: per planner and horizon, over all tasks' cases, the share within 1 % of the reference and the
    share certified within 1 % by the MILP's own gap (target at H = 5: >= 80 % and >= 50 %). ``ratios``: on
    ``obstacle`` and ``pushT`` at H >= 10, per MILP variant (branch and bound or a neighbourhood search), its planned
    cost over MPPI's, over ``starts_only``'s, over the descent's and over the best of those two, per case (target:
    <= 0.5x MPPI and <= 0.9x the best of ``starts_only`` and the descent), with the median and the share of cases
    meeting it.
    """
    ref = {(r["task"], r["H"], r["case"]): r for r in refs}
    at = [r for r in runs if r["budget"] == budget]
    cert: list[dict] = []
    for horizon in sorted({r["H"] for r in at}):
        for name in dict.fromkeys(r["planner"] for r in at if r["H"] == horizon):
            sel = [r for r in at if (r["H"], r["planner"]) == (horizon, name)]
            rel = np.array([r["cost"] / ref[(r["task"], horizon, r["case"])]["reference"] for r in sel])
            row = {"H": horizon, "planner": name, "cases": len(sel), "tasks": sorted({r["task"] for r in sel}),
                   "within_1pct": float(np.mean(rel <= 1.01)), "rel_median": float(np.median(rel)),
                   "proven_refs": int(sum(ref[(r["task"], horizon, r["case"])]["proven"] for r in sel))}
            if searches(name) and "gap" in sel[0]:
                gaps = np.array([r["gap"] for r in sel], dtype=float)
                row["certified_1pct"] = float(np.mean(np.nan_to_num(gaps, nan=1.0) <= 0.01))
            cert.append(row)
    ratios: list[dict] = []
    cost = {(r["task"], r["H"], r["case"], r["planner"]): r["cost"] for r in at}
    for task_name, horizon in sorted({(r["task"], r["H"]) for r in at if r["task"] in ("obstacle", "pushT")
                                      and r["H"] >= 10}):
        cases = sorted({r["case"] for r in at if (r["task"], r["H"]) == (task_name, horizon)})
        for name in dict.fromkeys(r["planner"] for r in at if (r["task"], r["H"]) == (task_name, horizon)):
            if not searches(name):
                continue
            row: dict[str, Any] = {"task": task_name, "H": horizon, "planner": name}
            for base in ("mppi", "starts_only", "descent", "best_local"):
                r_ = []
                for c in cases:
                    mine = cost.get((task_name, horizon, c, name))
                    if base == "best_local":
                        ks = [cost.get((task_name, horizon, c, b)) for b in ("starts_only", "descent")]
                        other = None if None in ks else min(ks)
                    else:
                        other = cost.get((task_name, horizon, c, base))
                    if mine is not None and other is not None:
                        r_.append(mine / other)
                if r_:
                    goal = 0.5 if base == "mppi" else 0.9
                    row[f"vs_{base}"] = {"cases": len(r_), "median": float(np.median(r_)), "best": float(min(r_)),
                                         "worst": float(max(r_)), "meets": float(np.mean(np.array(r_) <= goal))}
            ratios.append(row)
    return {"budget": budget, "certificate": cert, "ratios": ratios}


def print_targets(t: dict[str, Any]) -> None:
    """Markdown tables of :func:`targets`."""
    print(f"\n**Targets at the {t['budget']:g} s work level**, all tasks' cases\n")
    print("| H | planner | cases | proven references | cost / reference (median) | within 1 % | certified within 1 % |")
    print("|---|---|---|---|---|---|---|")
    for r in t["certificate"]:
        cert = f"{r['certified_1pct']:.0%}" if "certified_1pct" in r else "—"
        print(f"| {r['H']} | {r['planner']} | {r['cases']} | {r['proven_refs']} | {r['rel_median']:.3f} | "
              f"{r['within_1pct']:.0%} | {cert} |")
    if t["ratios"]:
        print("\n| task | H | MILP variant | vs MPPI: median (best-worst), <= 0.5x | vs starts_only | vs descent | "
              "vs the best of both: median (best-worst), <= 0.9x |")
        print("|---|---|---|---|---|---|---|")
        for r in t["ratios"]:
            cells = [_ratio_cell(r.get(f"vs_{k}"), k in ("mppi", "best_local"))
                     for k in ("mppi", "starts_only", "descent", "best_local")]
            print(f"| {r['task']} | {r['H']} | {r['planner']} | " + " | ".join(cells) + " |")


def _ratio_cell(v: dict | None, with_share: bool) -> str:
    """``median (best-worst)`` of a cost ratio, with the share of cases meeting the target if ``with_share``."""
    if v is None:
        return "—"
    text = f"{v['median']:.3f} ({v['best']:.3f}–{v['worst']:.3f})"
    return text + (f", {v['meets']:.0%} of {v['cases']}" if with_share else "")


def summarise(runs: list[dict], refs: list[dict], budgets: list[float], planners: list[str]) -> list[dict]:
    """Per task, horizon, budget and planner: cost / reference (median, mean, worst, share within 1 %), CPU seconds,
    and for the MIP variants the share of cases the global search improved and the median certified gap."""
    ref = {(r["task"], r["H"], r["case"]): r for r in refs}
    rows = []
    for task_name in sorted({r["task"] for r in runs}):
        for horizon in sorted({r["H"] for r in runs}):
            for budget in budgets:
                for name in planners:
                    sel = [r for r in runs if (r["task"], r["H"], r["budget"], r["planner"]) ==
                           (task_name, horizon, budget, name)]
                    if not sel:
                        continue
                    rel = np.array([r["cost"] / ref[(task_name, horizon, r["case"])]["reference"] for r in sel])
                    proven = [ref[(task_name, horizon, r["case"])]["proven"] for r in sel]
                    row = {"task": task_name, "H": horizon, "budget": budget, "planner": name, "cases": len(sel),
                           "rel_median": float(np.median(rel)), "rel_mean": float(np.mean(rel)),
                           "rel_worst": float(np.max(rel)), "within_1pct": float(np.mean(rel <= 1.01)),
                           "proven_refs": int(sum(proven)),
                           "cpu_median_s": float(np.median([r["cpu_s"] for r in sel]))}
                    if searches(name) and "search_improved" in sel[0]:
                        gaps = np.array([r["gap"] for r in sel], dtype=float)
                        row.update(search_improved=float(np.mean([r["search_improved"] for r in sel])),
                                   gap_median=float(np.nanmedian(gaps)) if np.isfinite(gaps).any() else None,
                                   certified_1pct=float(np.mean(np.nan_to_num(gaps, nan=1.0) <= 0.01)))
                    rows.append(row)
    return rows


def plot(rows: list[dict], path: Path) -> None:
    """Median cost / reference vs budget: one panel per task (columns) and horizon (rows), one line per planner
    (dashed: samplers, solid: the candidates, the descent and the MIP variants; hollow markers: a budget that ran
    on fewer cases than the line)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = sorted({r["task"] for r in rows})
    horizons = sorted({r["H"] for r in rows})
    fig, axes = plt.subplots(len(horizons), len(tasks), figsize=(4.2 * len(tasks) + 2.4, 3.4 * len(horizons)),
                             squeeze=False)
    names = list(dict.fromkeys(r["planner"] for r in rows))
    cmap = plt.get_cmap("tab20")
    budgets = sorted({r["budget"] for r in rows})
    handles = {}
    for (i, horizon), (j, task_name) in ((a, b) for a in enumerate(horizons) for b in enumerate(tasks)):
        ax = axes[i][j]
        top = 1.0
        for k, name in enumerate(names):
            sel = sorted((r for r in rows if (r["task"], r["H"], r["planner"]) == (task_name, horizon, name)),
                         key=lambda r: r["budget"])
            if sel:
                style = "--" if name in SAMPLERS else "-"
                top = max(top, *(r["rel_median"] for r in sel))
                # one line over the budgets that ran on as many cases as the first; the others (the 10 s level
                # on fewer cases) as hollow markers, so a line never joins medians over different cases
                same = [r for r in sel if r["cases"] == sel[0]["cases"]]
                other = [r for r in sel if r["cases"] != sel[0]["cases"]]
                marker, color = "os^Dv<>ph*"[k % 10], cmap(k % 20)
                (line,) = ax.plot([r["budget"] for r in same], [r["rel_median"] for r in same], style, marker=marker,
                                  ms=4, color=color, label=name)
                if other:
                    ax.plot([r["budget"] for r in other], [r["rel_median"] for r in other], linestyle="none",
                            marker=marker, ms=6, mfc="none", color=color)
                handles[name] = line
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_ylim(0.98, max(1.1, min(top * 1.1, 10.0)))
        ax.set_xticks(budgets, [f"{b:g}" for b in budgets])
        ax.minorticks_off()
        ticks = [t for t in (1.0, 1.05, 1.1, 1.25, 1.5, 2.0, 3.0, 5.0, 10.0) if t <= ax.get_ylim()[1]]
        ax.set_yticks(ticks, [f"{t:g}" for t in ticks])
        ax.set_title(f"{task_name}, H = {horizon}", fontsize=10)
        ax.axhline(1.0, color="k", lw=0.8)
        ax.grid(True, alpha=0.3)
        if i == len(horizons) - 1:
            ax.set_xlabel("budget (s; work level)")
        if j == 0:
            ax.set_ylabel("planned cost / reference (median)")
    fig.legend(list(handles.values()), list(handles), fontsize=8, loc="center right")
    fig.tight_layout(rect=(0, 0, 1 - 2.2 / fig.get_figwidth(), 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    print(f"written {path}")


if __name__ == "__main__":
    main()

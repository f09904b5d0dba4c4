"""The region descent: LPs over the actions alone (``RegionLP``) vs LPs of the full MILP with its binaries fixed.

The region descent of MIP-MPC (``polish_lps``) solves one LP per activation region. Side by side, from the same
states and start plans, with the same HiGHS: the descent of :func:`controlkit.planning.milp.region.region_descent`
(a condensed LP over the actions, rebuilt per region) and the same descent on the full compiled MILP with every
binary fixed to the region (built once per state, made continuous once, then only the binaries' bounds change from
region to region, so HiGHS re-optimises from the last basis: the implementation the condensed LP replaced). Both
visit the same regions when each LP's optimum is unique; the JSON records how many descents end at the same
objective, the largest relative difference, the LP sizes and the median time per LP.

Cases: ``--states`` seeded Push-v0 start states per model at H = ``--horizon``, each with ``--starts`` random start
plans in the action box and at most ``--max-lps`` LPs per descent. Models: the 32-ReLU T model
(``benchmarks/results/pusht_model.npz``, Push-T cost) and the 16-ReLU box model
(``benchmarks/results/push_mip_step_model.npz``, push cost).

Run: ``.venv/bin/python benchmarks/region_lp.py``  (writes benchmarks/results/region_lp.json)
"""

from __future__ import annotations

import argparse
import time

import highspy
import numpy as np
from _table import RESULTS, report
from controlkit.envs.push import PushEnv

from controlkit.planning.milp.highs import HighsMILP
from controlkit.planning.milp.region import BORDER, RegionLP, region_descent
from controlkit.tasks.pushing import CostConfig, PlannerSpec, Task, load_network, make_planner

MODELS = {
    "pushT (32 ReLUs)": ("t", RESULTS / "pusht_model.npz", {"orientation_weight": 0.1}),
    "push (16 ReLUs)": ("box", RESULTS / "push_mip_step_model.npz", {}),
}


def _full_descent(milp: HighsMILP, x0, actions, goal, bounds, max_lps: int) -> tuple[float, int]:
    """The same descent on the full compiled MILP (the implementation the condensed LP replaced), as the baseline.

    The binaries are made continuous once, then fixed per region through their bounds, so each LP re-optimises
    from the last one's basis where HiGHS can. Returns the final objective and the number of LPs.
    """
    h, lay = milp.h, milp.layout
    ints = np.flatnonzero([int(v) for v in h.getLp().integrality_]).astype(np.int32)
    saved_lo = np.asarray(h.getLp().col_lower_)[ints]
    saved_hi = np.asarray(h.getLp().col_upper_)[ints]
    h.changeColsIntegrality(ints.size, ints, np.full(ints.size, highspy.HighsVarType.kContinuous))
    z_cols = np.concatenate([c for row in lay.z_cols for c in row] + [np.zeros(0, int)]).astype(np.int32)
    pos = np.searchsorted(ints, z_cols)
    a_cols = np.concatenate([c for row in lay.a_cols for c in row] + [np.zeros(0, int)]).astype(int)
    best, best_obj, n_lp, prev_z = np.asarray(actions, float), np.inf, 0, None
    try:
        while n_lp < max_lps:
            val = milp.start_vector(x0, best, goal, bounds)
            fixed = val[ints]
            if prev_z is not None:
                fixed[pos] = np.where(np.abs(val[a_cols]) <= BORDER, 1.0 - prev_z, fixed[pos])
            fixed = np.clip(fixed, saved_lo, saved_hi)
            if prev_z is not None and np.array_equal(fixed[pos], prev_z):
                break
            prev_z = fixed[pos].copy()
            h.changeColsBounds(ints.size, ints, fixed, fixed)
            h.run()
            n_lp += 1
            if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
                break
            obj = float(h.getInfo().objective_function_value)
            if obj >= best_obj - 1e-9 * (1.0 + abs(best_obj)):
                break
            best_obj, best = obj, np.clip(np.asarray(h.getSolution().col_value)[lay.u_cols], milp.problem.u_low,
                                          milp.problem.u_high)
    finally:
        h.changeColsBounds(ints.size, ints, saved_lo, saved_hi)
        h.changeColsIntegrality(ints.size, ints, np.full(ints.size, highspy.HighsVarType.kInteger))
    return best_obj, n_lp


def main(states: int = 8, starts: int = 4, horizon: int = 10, max_lps: int = 10) -> None:
    rows = []
    for label, (shape, path, cost_kw) in MODELS.items():
        env = PushEnv(shape=shape, goal_in_obs=False)
        net = load_network(path)
        rng = np.random.default_rng(0)
        t_full, t_region, diffs, lps, same = [], [], [], [0, 0], 0
        for s in range(states):
            env.reset(seed=s)
            task = Task(env, CostConfig(horizon=horizon, pusher_weight=0.2, terminal_weight=5.0, **cost_kw))
            mip = make_planner("mip", PlannerSpec(type="mip_mpc", time_limit=None, tighten_steps=0), net, task,
                               seed=0)
            p = mip.problem
            x0, goal = task.state_goal()
            x0, goal = p.check_state(x0), p.check_goal(goal)
            bounds = mip.bounds(x0)
            milp = HighsMILP(p, bounds, x0, goal)
            sizes = {"full_rows": milp.n_rows, "full_cols": milp.n_cols}
            for _ in range(starts):
                a = rng.uniform(p.u_low, p.u_high, size=(horizon, p.nu))
                t0 = time.perf_counter()
                want, n_full = _full_descent(milp, x0, a, goal, bounds, max_lps)
                t1 = time.perf_counter()
                _, got, n_region = region_descent(p, bounds, x0, a, goal, max_lps)
                t2 = time.perf_counter()
                t_full.append((t1 - t0) / max(n_full, 1))
                t_region.append((t2 - t1) / max(n_region, 1))
                lps[0] += n_full
                lps[1] += n_region
                same += int(abs(got - want) <= 1e-7 * max(1.0, abs(want)))
                diffs.append(abs(got - want) / max(1.0, abs(want)))
            lp = RegionLP(p, bounds, x0, goal)
            lp.solve(lp.pattern(a), lp.sides(a))
            sizes.update(region_rows=lp.h.getLp().num_row_, region_cols=lp.h.getLp().num_col_)
        rows.append({"model": label, "horizon": horizon, "descents": len(t_full), "lps_full": lps[0],
                     "lps_region": lps[1], **sizes,
                     "full_ms_per_lp": 1e3 * float(np.median(t_full)),
                     "region_ms_per_lp": 1e3 * float(np.median(t_region)),
                     "speedup": float(np.median(t_full) / np.median(t_region)),
                     "same_result": same, "max_rel_objective_diff": float(max(diffs))})
        env.close()
    report("region_lp", rows, {"states": states, "starts": starts, "horizon": horizon, "max_lps": max_lps,
                               "load_average": list(__import__("os").getloadavg())})


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--states", type=int, default=8)
    ap.add_argument("--starts", type=int, default=4, help="random start plans per state")
    ap.add_argument("--horizon", type=int, default=10)
    ap.add_argument("--max-lps", type=int, default=10, help="LPs per descent at most")
    args = ap.parse_args()
    main(args.states, args.starts, args.horizon, args.max_lps)

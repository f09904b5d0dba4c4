"""What limits the model-based planners on the obstacle task: plan quality on the model, or the model itself.

Two measurements on ``experiments/push_obstacle.yaml`` (the 16-ReLU push model, its cost, route and seeds):

1. **Logged states** (``--states``): run ``starts_only`` (the candidates MIP-MPC starts from, applied as they
   are) in closed loop on the first ``--episodes`` episodes and keep every ``--every``-th state with its goal.
   From each, plan again with a long offline search on the same model and cost:

   - ``offline_mip``: MIP-MPC from the best of the candidates plus 1 000 x 10 MPPI samples, the region descent
     (100 LPs) from the 8 best of them, the sliding-window neighbourhood search (30 slices, 2 steps free, 1 000
     nodes each), then HiGHS branch and bound for ``--bb-time`` s;
   - ``mppi_big``: MPPI 4 000 x 10 warm-started from the applied plan.

   Each plan is scored on the model (the objective every planner minimises) and its actions are replayed in the
   simulator (the same MuJoCo scene, with the obstacle) and scored with the same objective. ``sim_mppi`` plans
   on the simulator itself (64 x 3 samples from the applied plan): a plan that is good on the real system.
   Plan-quality headroom is the model cost of the applied plan over the best one found; model error is the gap
   between a plan's cost on the model and in the simulator, and whether plans that are better on the model are
   better in the simulator.

2. **Closed loop** (``--closed-loop``): ``sim_mppi`` (MPPI on the simulator, 32 x 2: the ceiling a perfect model
   gives this cost and horizon) and ``mppi_10x`` (5 000 x 5 on the model) on the same episodes.

Run (about 15 minutes on 2 loaded cores):
``MUJOCO_GL=egl .venv/bin/python benchmarks/obstacle_diagnosis.py --episodes 6 --every 4``
writes ``benchmarks/results/obstacle_diagnosis.json``; ``--model FILE --out NAME`` diagnoses another model (e.g. the
one trained with on-policy aggregation, ``experiments/push_obstacle_aggregate.yaml``) into ``NAME.json``.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from _table import report

import controlkit  # noqa: F401
from controlkit.core.controller import Controller
from controlkit.core.seeding import spawn_seeds
from controlkit.runner.registry import load_config
from controlkit.tasks.pushing import PlannerSpec, SimDynamics, Task, load_network, make_planner, run_episode, summarise

HERE = Path(__file__).resolve().parent
MODEL = HERE / "results" / "push_mip_step_model.npz"
EXPERIMENT = HERE.parent / "experiments" / "push_obstacle.yaml"
OFFLINE = PlannerSpec(type="mip_mpc", time_limit=10.0, mip_gap=1e-4, starts=["safe", "greedy"], warm_samples=1000,
                      warm_iterations=10, polish_lps=100, polish_starts=8, search="window", search_size=2,
                      search_slices=30, search_nodes=1000)
MPPI_BIG = PlannerSpec(type="mppi", n_samples=4000, iterations=10, temperature=0.003, noise_std=0.3)
SIM_MPPI = PlannerSpec(type="sim_mppi", n_samples=64, iterations=3, temperature=0.003, noise_std=0.3)
CLOSED = {"sim_mppi": PlannerSpec(type="sim_mppi", n_samples=32, iterations=2, temperature=0.003, noise_std=0.3),
          "mppi_10x": PlannerSpec(type="mppi", n_samples=5000, iterations=5, temperature=0.003, noise_std=0.3)}


class _Logger(Controller):
    """Passes every call to ``inner`` and keeps each step's state, goal and applied plan."""

    def __init__(self, inner: Controller) -> None:
        self.inner, self.rows, self.goal = inner, [], None

    def reset(self, seed: int | None = None) -> None:
        super().reset(seed)
        self.inner.reset(seed)

    def set_goal(self, goal) -> None:
        self.goal = np.asarray(goal, dtype=np.float64)
        self.inner.set_goal(goal)

    @property
    def last_plan(self):
        return self.inner.last_plan

    def _act(self, obs):
        a = self.inner.act(obs)
        plan = self.inner.last_plan
        if self.inner.last_step.fallback is None and plan is not None:
            self.rows.append((np.asarray(obs, dtype=np.float64).copy(), self.goal.copy(), plan.actions.copy()))
        return a, self.inner.last_step


def _scores(problem, sim: SimDynamics, x0: np.ndarray, goal: np.ndarray, actions: np.ndarray) -> dict[str, float]:
    """The plan's objective on the model and in the simulator, and where its last predicted position misses."""
    model_x = problem.net.rollout(x0, actions)
    sim_x = sim.rollout(x0, actions)
    g = problem.check_goal(goal)
    return {"model": float(problem.objective(model_x, actions, g)), "sim": float(problem.objective(sim_x, actions, g)),
            # without the keep-out price: how close the plan really brings the object to its target
            "model_track": float(problem.cost(model_x, actions, g)), "sim_track": float(problem.cost(sim_x, actions, g)),
            "end_error": float(np.linalg.norm(model_x[-1, :2] - sim_x[-1, :2]))}


def logged_states(config, net, task: Task, env, seeds: list[int], every: int, bb_time: float) -> dict:
    """Part 1: plan quality and model error on the states ``starts_only`` visits."""
    applied = _Logger(make_planner("starts_only", config.planners["starts_only"], net, task, seed=config.seed))
    for seed in seeds:
        run_episode(env, task, applied, seed)
    picked = applied.rows[::every]
    offline = make_planner("offline", PlannerSpec(**{**OFFLINE.kwargs(), "type": "mip_mpc", "time_limit": bb_time}),
                           net, task, seed=1)
    big = make_planner("mppi_big", MPPI_BIG, net, task, seed=2)
    sim_planner = make_planner("sim_mppi", SIM_MPPI, net, task, seed=3)
    p = offline.problem
    sim = SimDynamics(task.env.shape, task.env.friction, getattr(task.env, "obstacle", None))
    rows = []
    for i, (x0, goal, actions) in enumerate(picked):
        t0 = time.perf_counter()
        offline.reset(0)
        off = offline.plan(x0, goal, warm_start=actions)
        t_off = time.perf_counter() - t0
        big.reset(0)
        mb = big.plan(x0, goal, warm_start=actions)
        sm = sim_planner.plan(x0, goal, warm_start=actions)
        row = {"state": i, "offline_time_s": t_off, "offline_search_improvements": off.extras.get("search_improvements"),
               "offline_gap": off.gap, "offline_status": off.status.value}
        for name, a in (("applied", actions), ("offline_mip", off.actions), ("mppi_big", mb.actions),
                        ("sim_mppi", sm.actions)):
            if not np.isfinite(a).all():
                continue
            for k, v in _scores(p, sim, x0, goal, a).items():
                row[f"{name}_{k}"] = v
        rows.append(row)
        print(f"state {i + 1}/{len(picked)}: applied {row['applied_model']:.4f} offline "
              f"{row.get('offline_mip_model', np.nan):.4f} mppi_big {row['mppi_big_model']:.4f} | sim: applied "
              f"{row['applied_sim']:.4f} offline {row.get('offline_mip_sim', np.nan):.4f} sim_mppi "
              f"{row['sim_mppi_sim']:.4f} ({t_off:.1f} s)", flush=True)
    return {"rows": rows, **_headline(rows)}


def _headline(rows: list[dict]) -> dict:
    """Medians and shares over the logged states (see the module docstring)."""
    get = lambda k: np.array([r.get(k, np.nan) for r in rows], dtype=float)  # noqa: E731
    applied_m, applied_s = get("applied_model"), get("applied_sim")
    best_m = np.nanmin(np.stack([applied_m, get("offline_mip_model"), get("mppi_big_model")]), axis=0)
    gain = 1.0 - best_m / applied_m  # share of the applied plan's model cost a better plan saves
    better = gain > 0.05
    off_m, off_s = get("offline_mip_model"), get("offline_mip_sim")
    return {
        "states": len(rows),
        "model_cost_applied_over_best_median": float(np.nanmedian(applied_m / best_m)),
        "share_states_best_5pct_better_on_model": float(np.mean(better)),
        "offline_mip_over_applied_model_median": float(np.nanmedian(off_m / applied_m)),
        "offline_mip_over_applied_sim_median": float(np.nanmedian(off_s / applied_s)),
        "share_offline_better_in_sim_where_better_on_model": (
            float(np.mean((off_s < applied_s)[off_m < 0.95 * applied_m])) if np.any(off_m < 0.95 * applied_m)
            else None),
        "offline_mip_over_applied_sim_track_median": float(np.nanmedian(get("offline_mip_sim_track")
                                                                         / get("applied_sim_track"))),
        "share_offline_better_in_sim_track_where_better_on_model": (
            float(np.mean((get("offline_mip_sim_track") < get("applied_sim_track"))[off_m < 0.95 * applied_m]))
            if np.any(off_m < 0.95 * applied_m) else None),
        "share_states_sim_enters_grown_box": float(np.mean(applied_s > get("applied_sim_track") + 1e-9)),
        "applied_sim_over_model_median": float(np.nanmedian(applied_s / applied_m)),
        "applied_sim_track_over_model_track_median": float(np.nanmedian(get("applied_sim_track")
                                                                         / get("applied_model_track"))),
        "applied_end_error_median_m": float(np.nanmedian(get("applied_end_error"))),
        "applied_end_error_p90_m": float(np.nanquantile(get("applied_end_error"), 0.9)),
        "sim_mppi_over_applied_sim_median": float(np.nanmedian(get("sim_mppi_sim") / applied_s)),
        "sim_mppi_over_applied_sim_track_median": float(np.nanmedian(get("sim_mppi_sim_track")
                                                                      / get("applied_sim_track"))),
    }


def closed_loop(config, net, task: Task, env, seeds: list[int], names: list[str]) -> list[dict]:
    """Part 2: the simulator-MPPI ceiling and ten times MPPI's samples on the model, same episodes."""
    out = []
    for name in names:
        planner = make_planner(name, CLOSED[name], net, task, seed=config.seed)
        t0 = time.perf_counter()
        s = summarise([run_episode(env, task, planner, seed) for seed in seeds])
        out.append({"planner": name, "success": s["success_rate"], "success_ci95": s["success_ci95"],
                    "final_distance_mean": s["final_distance_mean"], "steps_mean": s["steps_mean"],
                    "step_time_median_s": s["step_time_median_s"], "wall_s": time.perf_counter() - t0})
        print(out[-1], flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=6)
    parser.add_argument("--every", type=int, default=4, help="keep every N-th logged state")
    parser.add_argument("--bb-time", type=float, default=5.0, help="HiGHS seconds after the offline search")
    parser.add_argument("--closed-loop", default="sim_mppi,mppi_10x", help="comma-separated: " + ", ".join(CLOSED))
    parser.add_argument("--no-states", action="store_true", help="skip part 1")
    parser.add_argument("--model", default=str(MODEL), help="the model file (default: the 16-ReLU push model)")
    parser.add_argument("--out", default="obstacle_diagnosis")
    args = parser.parse_args()
    torch.set_num_threads(1)
    model = Path(args.model).resolve()
    config = load_config(EXPERIMENT, [f"model.file={model}"])
    net = load_network(model)
    env = gym.make(config.env, max_episode_steps=config.max_steps, goal_in_obs=False, **config.env_kwargs)
    task = Task(env.unwrapped, config.cost)
    seeds = spawn_seeds(config.seed, config.episodes, "episodes")[: args.episodes]  # the experiment's first episodes
    load = os.getloadavg()
    t0 = time.perf_counter()
    states = None if args.no_states else logged_states(config, net, task, env, seeds, args.every, args.bb_time)
    names = [n for n in args.closed_loop.split(",") if n]
    loop = closed_loop(config, net, task, env, seeds, names)
    env.close()
    rows = [{k: v for k, v in states.items() if k != "rows"}] if states else []
    report(args.out, rows + loop, {
        "command": "MUJOCO_GL=egl .venv/bin/python benchmarks/obstacle_diagnosis.py " + " ".join(
            f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items()
            if k not in ("no_states", "out") and not (k == "model" and model == MODEL)),
        "experiment": str(EXPERIMENT.relative_to(HERE.parent)), "model": _relative(model),
        "seeds": seeds, "logged_states": states, "closed_loop": loop, "load_average_before": load,
        "load_average_after": os.getloadavg(), "wall_s": time.perf_counter() - t0,
        "time_limited": "offline_mip uses wall-clock limits (10 s branch and bound)"})


def _relative(path: Path) -> str:
    """``path`` relative to the repository when it is inside it."""
    try:
        return str(path.relative_to(HERE.parent))
    except ValueError:
        return str(path)


if __name__ == "__main__":
    main()

"""Real-time loop costs, side by side in one run.

1. Loop overhead: run_loop + Fallback around a trivial controller and plant, vs the bare Python loop doing the
   same read/act/write (the physical floor). Target: overhead <= 50 us per step (median).
2. Exported numpy NCAP vs the torch module, one observation per call. Target: >= 10x faster.
3. A 100 Hz loop served by MIP-MPC behind AsyncPlanner (planning at its own pace) vs the same loop with a
   trivial controller (the machine's own jitter floor). Target: p99 jitter <= 2 ms.

Run: ``.venv/bin/python benchmarks/loop_latency.py``  (writes benchmarks/results/loop_latency.json)
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from _table import report

from controlkit import ConstantController
from controlkit.core.fallback import Fallback
from controlkit.core.loop import run_loop


class NullPlant:
    def __init__(self) -> None:
        self.obs = np.zeros(4)

    def read(self):
        return self.obs

    def write(self, action) -> None:
        self.last = action


def _bare_loop_s(ctrl, plant, steps: int) -> float:
    t0 = time.perf_counter()
    for _ in range(steps):
        plant.write(ctrl.act(plant.read()))
    return (time.perf_counter() - t0) / steps


def _run_loop_s(ctrl, plant, steps: int) -> float:
    # A rate far above what Python reaches, so the loop never sleeps and wall time / steps is its own cost.
    return run_loop(ctrl, plant, rate_hz=1e7, steps=steps).wall_s / steps


def loop_overhead(steps: int = 20000) -> list[dict]:
    import gymnasium as gym

    space = gym.spaces.Box(-1.0, 1.0, shape=(2,))
    rows = []
    bare = np.median([_bare_loop_s(ConstantController(space), NullPlant(), steps) for _ in range(3)])
    for label, deadline in (("Fallback inline", None), ("Fallback, 5 ms deadline (thread)", 0.005)):
        ctrl = Fallback(ConstantController(space), safe_action=[0.0, 0.0], action_low=-1, action_high=1,
                        deadline_s=deadline)
        per_step = np.median([_run_loop_s(ctrl, NullPlant(), steps) for _ in range(3)])
        overhead_us = (per_step - bare) * 1e6
        rows.append({"case": f"run_loop + {label}", "per_step_us": per_step * 1e6, "bare_loop_us": bare * 1e6,
                     "overhead_us": overhead_us, "target_us": 50.0, "overhead/target": overhead_us / 50.0})
    return rows


def ncap_export(n_calls: int = 3000) -> list[dict]:
    import torch
    from controlkit.policies import NCAPPolicy

    torch.set_num_threads(1)
    policy = NCAPPolicy(n_joints=5)
    numpy_policy = policy.to_numpy()
    obs = np.random.default_rng(0).normal(size=policy.layout.size)
    obs_t = torch.as_tensor(obs, dtype=torch.float32)

    def torch_call(k):
        with torch.no_grad():
            return policy(obs_t, k)

    def timed(fn) -> float:
        for k in range(100):
            fn(k)
        t0 = time.perf_counter()
        for k in range(n_calls):
            fn(k)
        return (time.perf_counter() - t0) / n_calls

    t_torch = min(timed(torch_call) for _ in range(3))
    t_numpy = min(timed(lambda k: numpy_policy(obs, k)) for _ in range(3))
    return [{"case": "NCAP act, batch 1 (6 links)", "torch_us": t_torch * 1e6, "numpy_us": t_numpy * 1e6,
             "speedup": t_torch / t_numpy, "target_speedup": 10.0}]


class ModelPlant:
    """A simulated plant whose dynamics are the planner's own network (so the plan is exact)."""

    def __init__(self, net, x0) -> None:
        self.net, self.x = net, np.asarray(x0, dtype=float)

    def read(self):
        return self.x

    def write(self, action) -> None:
        self.x = self.net.step(self.x, action)


def _wait_for_first_plan(ctrl, x0, timeout_s: float = 60.0) -> None:
    """Start-up (a child process importing controlkit, the first MILP build) is not part of the loop's rate."""
    deadline = time.perf_counter() + timeout_s
    while ctrl.last_plan is None and time.perf_counter() < deadline:
        ctrl.act(x0)
        time.sleep(0.01)


def async_mip_mpc(seconds: float = 10.0) -> list[dict]:
    import gymnasium as gym

    from controlkit.core.async_planner import AsyncPlanner
    from controlkit.models.network import CompactNetwork
    from controlkit.planning import MIPMPC

    # The sparse pushing model shipped with the examples (8 ReLU + 63 identity neurons per step).
    net = CompactNetwork.load(Path(__file__).resolve().parents[1] / "examples" / "models" / "push_box.npz")
    nu = net.nu
    x0 = np.array([0.0, 0.0, 1.0, 0.0, -0.06, 0.0])  # box at the centre, pusher behind it
    goal = np.array([0.1, 0.0, 1.0, 0.0, 0.04, 0.0])
    x_high = np.array([0.35, 0.35, 1.0, 1.0, 0.3, 0.3])
    mpc = MIPMPC(net, horizon=5, u_low=[-0.03] * nu, u_high=[0.03] * nu, x_low=-x_high, x_high=x_high,
                 state_weights=[1, 1, 0, 0, 0.2, 0.2], time_limit=0.05)
    rows = []
    floor = run_loop(ConstantController(gym.spaces.Box(-1.0, 1.0, shape=(nu,))),
                     ModelPlant(net, x0), rate_hz=100, duration_s=seconds)
    rows.append({"case": "100 Hz loop, trivial controller (floor)", "jitter_p99_ms": floor.jitter["p99"] * 1e3,
                 "jitter_max_ms": floor.jitter["max"] * 1e3, "latency_p99_ms": floor.latency["p99"] * 1e3,
                 "skipped_ticks": floor.skipped_ticks})
    for mode in ("thread", "process"):
        ctrl = AsyncPlanner(mpc, goal=goal, plan_dt=0.1, safe_action=np.zeros(nu), mode=mode)
        try:
            _wait_for_first_plan(ctrl, x0)
            rep = run_loop(ctrl, ModelPlant(net, x0), rate_hz=100, duration_s=seconds)
        finally:
            ctrl.close()
        rows.append({"case": f"100 Hz loop, AsyncPlanner[{mode}](MIP-MPC push model, H=5)",
                     "jitter_p99_ms": rep.jitter["p99"] * 1e3, "jitter_max_ms": rep.jitter["max"] * 1e3,
                     "latency_p99_ms": rep.latency["p99"] * 1e3, "skipped_ticks": rep.skipped_ticks,
                     "plan_rate_hz": ctrl.plans_done / rep.wall_s, "target_jitter_p99_ms": 2.0,
                     "jitter_p99/target": rep.jitter["p99"] * 1e3 / 2.0})
    return rows


def main() -> None:
    rows = loop_overhead() + ncap_export() + async_mip_mpc()
    report("loop_latency", rows)


if __name__ == "__main__":
    main()

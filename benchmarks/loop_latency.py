"""Real-time loop costs, side by side in one run.

1. Loop overhead: run_loop + Fallback around a trivial controller and plant, vs the bare Python loop doing the
   same read/act/write (the physical floor). Target: overhead <= 50 us per step (median).
2. Exported numpy NCAP vs the torch module, one observation per call. Target: >= 10x faster.

Run: ``.venv/bin/python benchmarks/loop_latency.py``  (writes benchmarks/results/loop_latency.json)
"""

from __future__ import annotations

import time

import numpy as np
from _table import report

from controlkit import ConstantController
from controlkit.fallback import Fallback
from controlkit.loop import run_loop


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


def main() -> None:
    rows = loop_overhead() + ncap_export()
    report("loop_latency", rows)


if __name__ == "__main__":
    main()

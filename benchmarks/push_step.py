"""Push-v0 / Sort-v0 step cost vs bare MuJoCo, side by side in one run.

Each env step runs ``N_SUBSTEPS`` (150) physics steps: 20 set-point moves of 5 steps, then 50 settling steps.
The floor is the same 150 physics steps of the same compiled model done by one ``mj_step(model, data, 150)``
call with no Python around it. The ratio ``env / bare`` is the env's overhead factor (target: a small factor,
<= 1.5). Random actions in a fixed seeded sequence; the median over repeats is reported.

Run: ``.venv/bin/python benchmarks/push_step.py``  (writes benchmarks/results/push_step.json)
"""

from __future__ import annotations

import time

import mujoco
import numpy as np
from _table import report
from controlkit.envs.push import PushEnv
from controlkit.envs.sort import SortEnv
from controlkit.envs.tabletop import N_SUBSTEPS


def _env_step_s(env, actions: np.ndarray) -> float:
    env.reset(seed=0)
    t0 = time.perf_counter()
    for a in actions:
        _, _, terminated, _, _ = env.step(a)
        if terminated:  # keep the object on the table; a reset is not part of a step's cost
            env.reset(seed=0)
    return (time.perf_counter() - t0) / len(actions)


def _bare_step_s(env, actions: np.ndarray) -> float:
    env.reset(seed=0)
    model, data = env.table.model, env.table.data
    t0 = time.perf_counter()
    for a in actions:
        data.ctrl[:] = np.clip(data.ctrl + a, -0.28, 0.28)
        mujoco.mj_step(model, data, nstep=N_SUBSTEPS)
    return (time.perf_counter() - t0) / len(actions)


def main(steps: int = 300, repeats: int = 5) -> None:
    rows = []
    actions = np.random.default_rng(0).uniform(-0.03, 0.03, (steps, 2)).astype(np.float32)
    for label, env in (("Push-v0 (box)", PushEnv()), ("Push-v0 (T, keep-out)", PushEnv(shape="t", keep_out=[
            -0.04, -0.04, 0.04, 0.04], start_region=0.2)), ("Sort-v0 (3 boxes)", SortEnv(n_objects=3))):
        env_s = np.median([_env_step_s(env, actions) for _ in range(repeats)])
        bare_s = np.median([_bare_step_s(env, actions) for _ in range(repeats)])
        rows.append({"env": label, "physics_steps": N_SUBSTEPS, "env_step_ms": env_s * 1e3,
                     "bare_mj_step_ms": bare_s * 1e3, "ratio": env_s / bare_s,
                     "sim_s_per_wall_s": N_SUBSTEPS * env.table.model.opt.timestep / env_s})
        env.close()
    report("push_step", rows, {"steps": steps, "repeats": repeats, "target_ratio": 1.5})


if __name__ == "__main__":
    main()

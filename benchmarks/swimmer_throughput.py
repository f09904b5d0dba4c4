"""Swimmer throughput: env steps per second with policies in the loop vs bare MuJoCo stepping of the same body.

One control step is 15 physics steps. "bare" is ``mujoco.mj_step(model, data, 15)`` on the swimmer's model,
replaying the torques an NCAP episode produced (same trajectory as the NCAP row); every other row is a full
loop (policy -> env.step -> observation, reward). Each row is the best of ``--repeats`` timed runs of ``--steps``
control steps (the best run is the least disturbed on a shared machine). Target (issue 6): NCAP in the loop >= 70 % of bare.

    .venv/bin/python benchmarks/swimmer_throughput.py            # table + benchmarks/results/swimmer_throughput.json
"""

from __future__ import annotations

import argparse
import platform
import time
from collections.abc import Callable
from pathlib import Path

import gymnasium as gym
import mujoco
import numpy as np
import torch
from controlkit.envs.swimmer import N_SUBSTEPS, SwimmerEnv
from controlkit.policies import MLPPolicy, NCAPPolicy

import controlkit  # noqa: F401  (registers controlkit/Swimmer-v0)
from controlkit.core.io import atomic_write_json

RESULTS = Path(__file__).parent / "results" / "swimmer_throughput.json"


def _best_rate(loop: Callable[[int], None], steps: int, repeats: int) -> float:
    loop(min(steps, 200))  # warm-up (lazy caches, first-touch allocations)
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        loop(steps)
        best = min(best, time.perf_counter() - t0)
    return steps / best


def bare_loop(n_links: int, actions: np.ndarray) -> Callable[[int], None]:
    """Replay ``actions`` (one episode of NCAP's torques) with ``mj_step`` only: the same trajectory as the
    NCAP loop, so both pay for the same constraint work at the joint limits."""
    env = SwimmerEnv(n_links)
    model, data = env.model, env.data

    def loop(steps: int) -> None:
        for k in range(steps):
            if k % len(actions) == 0:
                env.reset(seed=0)
            data.ctrl[:] = actions[k % len(actions)]
            mujoco.mj_step(model, data, N_SUBSTEPS)

    return loop


def env_loop(env, act: Callable[[np.ndarray], np.ndarray], reset: Callable[[], None] = lambda: None):
    def loop(steps: int) -> None:
        for k in range(steps):
            if k % 1000 == 0:  # episodes are 1000 steps, each from the same seed as the bare replay
                obs, _ = env.reset(seed=0)
                reset()
            obs, *_ = env.step(act(obs))

    return loop


def ncap_actions(n_links: int) -> np.ndarray:
    env, policy = SwimmerEnv(n_links), NCAPPolicy(n_links - 1)
    obs, _ = env.reset(seed=0)
    policy.reset()
    actions = []
    for _ in range(1000):
        actions.append(policy.act(obs))
        obs, *_ = env.step(actions[-1])
    return np.array(actions)


def measure(n_links: int, steps: int, repeats: int) -> list[dict]:
    nj = n_links - 1
    zero = np.zeros(nj, dtype=np.float32)
    ncap = NCAPPolicy(nj)
    mlp = MLPPolicy(nj + 3 * n_links, nj, hidden=(256, 256))
    torch_step = [0]

    def ncap_torch(obs):
        with torch.no_grad():
            a = ncap(torch.as_tensor(obs), torch_step[0]).numpy()
        torch_step[0] += 1
        return a

    rows = [
        ("bare mj_step x15 (NCAP's torques)", bare_loop(n_links, ncap_actions(n_links))),
        ("env, zero action", env_loop(SwimmerEnv(n_links), lambda o: zero)),
        ("env + NCAP controller (numpy)", env_loop(SwimmerEnv(n_links), ncap.act, ncap.reset)),
        ("gym.make env + NCAP controller", env_loop(gym.make("controlkit/Swimmer-v0", n_links=n_links), ncap.act,
                                                    ncap.reset)),
        ("env + NCAP torch forward", env_loop(SwimmerEnv(n_links), ncap_torch, lambda: torch_step.__setitem__(0, 0))),
        ("env + MLP 256x256 controller", env_loop(SwimmerEnv(n_links), mlp.act)),
    ]
    out = []
    bare = None
    for name, loop in rows:
        rate = _best_rate(loop, steps, repeats)
        bare = bare or rate
        out.append({"n_links": n_links, "loop": name, "steps_per_s": rate, "ratio_to_bare": rate / bare,
                    "us_per_step": 1e6 / rate})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3000, help="control steps per timed run")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--links", type=int, nargs="+", default=[6, 14])
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = [r for n in args.links for r in measure(n, args.steps, args.repeats)]
    print(f"{'links':>5}  {'loop':34s} {'steps/s':>9} {'us/step':>8} {'vs bare':>8}")
    for r in rows:
        print(f"{r['n_links']:>5}  {r['loop']:34s} {r['steps_per_s']:>9.0f} {r['us_per_step']:>8.1f} "
              f"{r['ratio_to_bare']:>7.0%}")
    ncap6 = next(r for r in rows if r["n_links"] == args.links[0] and r["loop"] == "env + NCAP controller (numpy)")
    episode_s = 1000 / rows[0]["steps_per_s"]
    print(f"\n{args.links[0]}-link: one 1000-step episode = {episode_s:.3f} s of bare MuJoCo; NCAP in the loop at "
          f"{ncap6['ratio_to_bare']:.0%} of bare (target >= 70%)")
    atomic_write_json(RESULTS, {
        "rows": rows, "target_ratio": 0.7, "ncap_ratio": ncap6["ratio_to_bare"],
        "episode_s_bare": episode_s, "steps": args.steps, "repeats": args.repeats,
        "machine": {"python": platform.python_version(), "platform": platform.platform(),
                    "mujoco": mujoco.__version__},
    })
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()

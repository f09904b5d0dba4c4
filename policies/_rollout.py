"""Episode rollouts of torch-free policies (the fast path used by ES, evaluation, transfer and benchmarks)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from controlkit.envs.swimmer import SwimmerEnv

NumpyPolicy = Callable[[np.ndarray, int], np.ndarray]  # NCAPNumpy / MLPNumpy: policy(obs, step) -> action


def episode_return(policy: NumpyPolicy, env: SwimmerEnv, seed: int, steps: int = 1000) -> float:
    """Undiscounted return of one episode started with ``env.reset(seed=seed)``."""
    obs, _ = env.reset(seed=seed)
    total = 0.0
    for k in range(steps):
        obs, reward, *_ = env.step(policy(obs, k))
        total += reward
    return total


def record_episode(policy: Any, env: SwimmerEnv, seed: int, steps: int = 1000,
                   frames_every: int | None = None) -> dict[str, Any]:
    """One episode with everything a figure needs: observations, actions, rewards, head positions, frames.

    With an :class:`~controlkit.policies.export.NCAPNumpy` policy, the B-neuron and muscle activity is
    recorded too (``activity``: dict of ``(steps, n_joints)`` arrays).
    """
    obs, _ = env.reset(seed=seed)
    out: dict[str, list] = {"obs": [], "actions": [], "rewards": [], "head_xy": [], "frames": []}
    activity: dict[str, list] = {}
    with_activity = hasattr(policy, "weights") and isinstance(policy.weights, dict)
    for k in range(steps):
        if with_activity:
            action, act = policy(obs, k, activity=True)
            for name, value in act.items():
                activity.setdefault(name, []).append(value)
        else:
            action = policy(obs, k)
        if frames_every and k % frames_every == 0:
            out["frames"].append(env.render())
        out["obs"].append(obs)
        out["actions"].append(action)
        out["head_xy"].append(env.data.qpos[:2].copy())
        obs, reward, *_ = env.step(action)
        out["rewards"].append(reward)
    result: dict[str, Any] = {k: np.asarray(v) for k, v in out.items() if k != "frames"}
    result["frames"] = out["frames"]
    result["activity"] = {k: np.asarray(v) for k, v in activity.items()}
    result["return"] = float(np.sum(result["rewards"]))
    return result


def evaluate(policy: NumpyPolicy, env: SwimmerEnv, seeds: Sequence[int]) -> list[float]:
    """Returns of one episode per seed."""
    return [episode_return(policy, env, int(s)) for s in seeds]

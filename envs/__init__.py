"""controlkit's Gymnasium environments, registered under the ``controlkit/`` namespace on import.

``import controlkit`` (or ``gymnasium.make("controlkit.envs:controlkit/Name-v0")``) is all a user needs. To add an env,
append its registration to ``_ENVS``; the test suite then runs ``check_env`` on it automatically.
"""

from __future__ import annotations

import inspect

import gymnasium as gym

# Each entry is passed to gymnasium.register as keyword arguments.
_ENVS: list[dict] = [
    {"id": "controlkit/Swimmer-v0", "entry_point": "controlkit.envs.swimmer:SwimmerEnv", "max_episode_steps": 1000},
    {"id": "controlkit/Push-v0", "entry_point": "controlkit.envs.push:PushEnv", "max_episode_steps": 60},
    {"id": "controlkit/Sort-v0", "entry_point": "controlkit.envs.sort:SortEnv", "max_episode_steps": 300},
    {"id": "controlkit/Rope-v0", "entry_point": "controlkit.envs.rope:RopeEnv", "max_episode_steps": 100},
    # One wrapper class for every twin; max_episode_steps is the twin's default task horizon (its decisions).
    {"id": "controlkit/PredatorPrey-v0", "entry_point": "controlkit.envs.twin_envs:TwinEnv",
     "kwargs": {"twin": "predator_prey"}, "max_episode_steps": 30},
    {"id": "controlkit/ImmuneTwin-v0", "entry_point": "controlkit.envs.twin_envs:TwinEnv",
     "kwargs": {"twin": "immune"}, "max_episode_steps": 28},
    {"id": "controlkit/Metabolic-v0", "entry_point": "controlkit.envs.twin_envs:TwinEnv",
     "kwargs": {"twin": "metabolic"}, "max_episode_steps": 40},
    {"id": "controlkit/ImmunePK-v0", "entry_point": "controlkit.envs.twin_envs:TwinEnv",
     "kwargs": {"twin": "immune_pk"}, "max_episode_steps": 28},
]


def register_envs() -> None:
    """Register every controlkit env with gymnasium under the ``controlkit/`` namespace only (idempotent).

    A bare id such as ``Swimmer-v0`` stays free for other packages: ``gym.make("Swimmer-v0")`` never returns ours.
    Gymnasium's import-then-look-up form names the namespace too: ``gym.make("controlkit.envs:controlkit/Swimmer-v0")``.
    """
    for entry in _ENVS:
        if entry["id"] not in gym.registry:
            gym.register(**entry)


def env_ids() -> list[str]:
    """The ids controlkit registers."""
    return [entry["id"] for entry in _ENVS]


def describe_envs() -> str:
    """One block per env: its id and its constructor keyword arguments with defaults (what ``controlkit envs`` prints)."""
    from gymnasium.envs.registration import load_env_creator

    if not _ENVS:
        return "no controlkit environments are registered yet"
    blocks = []
    for entry in _ENVS:
        spec = gym.spec(entry["id"])
        params = inspect.signature(load_env_creator(spec.entry_point)).parameters
        args = [
            f"{name}={spec.kwargs.get(name, p.default)!r}"
            for name, p in params.items()
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and name != "self"
        ]
        steps = f"  (max_episode_steps={spec.max_episode_steps})" if spec.max_episode_steps else ""
        blocks.append(f"{spec.id}{steps}\n    " + ", ".join(args))
    return "\n".join(blocks)


register_envs()

__all__ = ["describe_envs", "env_ids", "register_envs"]

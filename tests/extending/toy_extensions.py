"""A user's own package, as docs/extending.md shows it: an env, a controller, a planner and an experiment kind.

The tests import it by its ``module:Name`` paths from YAML, the way a user's code plugs in without editing
controlkit.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from pydantic import Field, PositiveInt

from controlkit import ExperimentConfig, ExperimentKind, Plan, Status, StepInfo
from controlkit.core import Controller
from controlkit.planning import RecedingHorizonPlanner


class DriftEnv(gym.Env):
    """A point on a line that drifts by the action; reward is minus the distance to 0."""

    observation_space = gym.spaces.Box(-10.0, 10.0, (1,), np.float32)
    action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.x = self.np_random.uniform(-5, 5, 1).astype(np.float32)
        return self.x.copy(), {}

    def step(self, action):
        self.x = np.clip(self.x + np.asarray(action, np.float32), -10, 10).astype(np.float32)
        return self.x.copy(), -float(abs(self.x[0])), bool(abs(self.x[0]) < 0.05), False, {}


gym.register("Drift-v0", entry_point=DriftEnv, max_episode_steps=20)


class Homing(Controller):
    """Steps towards 0 by at most ``gain`` per step."""

    def __init__(self, gain: float = 1.0) -> None:
        self.gain = gain

    def _act(self, obs: Any) -> tuple[np.ndarray, StepInfo]:
        return np.clip(-np.asarray(obs, np.float32), -self.gain, self.gain), StepInfo()


def homing(env: gym.Env, gain: float = 1.0) -> Controller:
    """The controller factory the runner calls: ``factory(env, **controller_kwargs)``."""
    return Homing(gain)


class HoldPlanner(RecedingHorizonPlanner):
    """The simplest planner: hold the safe action over the horizon, scored on the model."""

    def plan(self, x0: Any, goal: Any, warm_start: np.ndarray | None = None) -> Plan:
        p = self.problem
        actions = np.tile(self.safe_action, (p.horizon, 1))
        states = p.net.rollout(p.check_state(x0), actions)
        cost = float(p.objective(states, actions, p.check_goal(goal)))
        return Plan(actions, states, cost, Status.OK, 0.0)


class CountConfig(ExperimentConfig):
    kind: str = "toy_extensions:COUNT"
    n: PositiveInt = Field(10, description="How many random digits to add.")


def run_count(config: CountConfig, ctx) -> dict:
    total = 0
    for i in ctx.progress(range(config.n), desc="counting"):
        total += int(ctx.rng.integers(10))
        ctx.metric(step=i, total=total)
    return {"total": total}


COUNT = ExperimentKind("count", CountConfig, run_count, "add random digits")

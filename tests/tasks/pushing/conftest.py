"""Shared set-up of the pushing tests."""

import numpy as np
import pytest

from controlkit.tasks.pushing import CostConfig, PlannerSpec, Task, make_planner


@pytest.fixture
def greedy_episode():
    """Run the greedy pusher on an env already reset to its start for at most ``steps`` steps (stopping at
    success); returns the last step's ``info``."""

    def run(env, steps: int = 40) -> dict:
        task = Task(env, CostConfig(horizon=3))
        greedy = make_planner("g", PlannerSpec(type="greedy"), None, task, seed=0)
        for _ in range(steps):
            x, goal = task.state_goal()
            greedy.set_goal(goal)
            _, _, _, _, info = env.step(np.asarray(greedy.act(x), dtype=np.float32))
            if info["success"]:
                break
        return info

    return run

"""MIP-MPC pushing a box in a 10 Hz loop, and the same MIP-MPC behind AsyncPlanner serving a 100 Hz loop.

The planner plans on a sparse learned model of Push-v0 shipped with the examples (8 ReLU + 63 identity neurons,
trained by the pushing pipeline, `kind: model_based_control`, on the box); its MILP is solved by HiGHS with a
time limit that fits the period. Each plan step of the model is one 0.3 s env step; the loop's period is the
wall-clock budget.

    python examples/mip_mpc_push_loop.py                   # 10 Hz: 40 steps
    python examples/mip_mpc_push_loop.py --async-100hz     # AsyncPlanner, 100 Hz loop for 4 s
    python examples/mip_mpc_push_loop.py --steps 5         # the short form the test suite runs
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402

import controlkit  # noqa: E402,F401  registers controlkit/Push-v0
from controlkit import Controller  # noqa: E402
from controlkit.core.async_planner import AsyncPlanner  # noqa: E402
from controlkit.core.loop import GymPlant, run_loop  # noqa: E402
from controlkit.models.network import CompactNetwork  # noqa: E402
from controlkit.planning import MIPMPC  # noqa: E402
from controlkit.tasks.pushing import CostConfig, Task  # noqa: E402

MODEL = Path(__file__).resolve().parent / "models" / "push_box.npz"


class TaskPlant(GymPlant):
    """Push-v0 as a plant whose reading is the planning problem: the state and the goal (with pre-push point).

    With ``step_every_s`` the env advances one step per that much wall time (the latest action written then is
    applied), so a 100 Hz loop drives the 0.3 s quasi-static push steps at the model's pace.
    """

    def __init__(self, env, task: Task, seed: int, step_every_s: float | None = None) -> None:
        super().__init__(env, seed=seed)
        self.task, self.step_every_s, self._last = task, step_every_s, time.perf_counter()

    def read(self):
        return self.task.state_goal()

    def write(self, action) -> None:
        if self.step_every_s is None or time.perf_counter() - self._last >= self.step_every_s:
            self._last = time.perf_counter()
            super().write(action)


class GoalTracking(Controller):
    """Hands each reading's goal to the planner, then asks it for the action at the reading's state."""

    def __init__(self, planner) -> None:
        self.planner = planner

    def reset(self, seed=None) -> None:
        super().reset(seed)
        self.planner.reset(seed)

    def _act(self, reading):
        x, goal = reading
        self.planner.set_goal(goal)
        action = self.planner.act(x)
        return action.astype(np.float32), self.planner.last_step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40, help="10 Hz loop steps")
    parser.add_argument("--async-100hz", action="store_true", help="AsyncPlanner behind a 100 Hz loop instead")
    parser.add_argument("--seconds", type=float, default=4.0, help="duration of the 100 Hz loop")
    args = parser.parse_args()

    env = gym.make("controlkit/Push-v0", shape="box", goal_in_obs=False)
    task = Task(env.unwrapped, CostConfig(horizon=5))
    net = CompactNetwork.load(MODEL)
    step = env.unwrapped.step_size
    x_high = np.array([0.35, 0.35, 1.0, 1.0, 0.3, 0.3])
    mpc = MIPMPC(net, horizon=task.cost.horizon, u_low=[-step] * 2, u_high=[step] * 2, x_low=-x_high, x_high=x_high,
                 state_weights=task.weights(), time_limit=0.05)
    if args.async_100hz:
        plant = TaskPlant(env, task, seed=0, step_every_s=0.1)
        x, goal = task.state_goal()
        planner = AsyncPlanner(mpc, goal=goal, plan_dt=0.1, safe_action=np.zeros(2))
        ctrl = GoalTracking(planner)
        try:
            report = run_loop(ctrl, plant, rate_hz=100, duration_s=args.seconds)
        finally:
            planner.close()
        print(report)
        print(f"plans computed: {planner.plans_done}; env steps: {plant.writes}")
    else:
        plant = TaskPlant(env, task, seed=0)
        ctrl = GoalTracking(mpc)
        ctrl.reset(seed=0)
        report = run_loop(ctrl, plant, rate_hz=10, steps=args.steps)
        print(report)
    x, _ = task.state_goal()
    print(f"object {np.linalg.norm(x[:2] - env.unwrapped.goal[:2]):.3f} m from its goal")


if __name__ == "__main__":
    main()

"""MPPI over the true simulator: the pushing pipeline's perfect-model reference (planner type ``sim_mppi``)."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch

from controlkit.planning.samplers import MPPIPlanner
from controlkit.tasks.pushing.greedy import SimDynamics


class SimMPPIPlanner(MPPIPlanner):
    """MPPI (same knobs and cost as :class:`~controlkit.planning.samplers.MPPIPlanner`) whose rollouts run in MuJoCo.

    The network passed in only fixes the problem's sizes; every sampled sequence is simulated in
    :class:`SimDynamics`, so this planner shows the success the cost and horizon allow with a perfect model.
    ``Plan.states`` are the simulated states of the chosen sequence.

    Args:
        *args: Problem arguments of :class:`~controlkit.planning.mip_mpc.MIPMPC`.
        sim: The simulator the rollouts run in.
        **kwargs: MPPI and problem arguments.
    """

    def __init__(self, *args: Any, sim: SimDynamics, **kwargs: Any) -> None:
        self.sim = sim
        super().__init__(*args, **kwargs)

    def _rollout(self, x0: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        x = x0.numpy()
        return torch.as_tensor(np.stack([self.sim.rollout(x, a) for a in actions.numpy()]))

    def plan(self, x0: Any, goal: Any, warm_start: np.ndarray | None = None):
        plan = super().plan(x0, goal, warm_start)
        states = self.sim.rollout(plan.states[0], plan.actions)
        cost = float(self.problem.cost(states, plan.actions, self.problem.check_goal(goal)))
        return dataclasses.replace(plan, states=states, objective=cost)

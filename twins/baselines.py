"""Baselines the neural controller is compared with, on the same task, objective and replicates.

- no control and the best constant control (grid search on the ABM itself);
- bang-bang feedback (every control at a bound, switched on the observables; the rule is the objective's);
- optimal control solved on the surrogate, open loop, lifted to the ABM (the companion paper's route);
- MIP-MPC in receding horizon on a ReLU surrogate compiled to a MILP (:class:`controlkit.planning.mip_mpc.MIPMPC`, HiGHS);
- PPO (stable-baselines3) on the twin's gym env (:class:`controlkit.envs.twin_envs.TwinEnv`, whose reward is the
  same objective), with a stated sample budget.

Each returns a :class:`~controlkit.core.controller.Controller`, so :func:`controlkit.twins.deploy.evaluate` scores
them all alike.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from controlkit.twins.deploy import evaluate_many
from controlkit.twins.neural_control import mlp_forward, straight_through_round, surrogate_cost
from controlkit.twins.objectives import TwinTask

from controlkit.core.controller import Controller, StepInfo
from controlkit.core.errors import ControlkitError


class ConstantTwinController(Controller):
    """The same decision at every step."""

    def __init__(self, u: Sequence[float]) -> None:
        self.u = np.asarray(u, dtype=float)

    def _act(self, obs: Any) -> tuple[np.ndarray, StepInfo]:
        return self.u.copy(), StepInfo()


class ScheduleController(Controller):
    """An open-loop schedule: decision ``k`` at the ``k``-th call after ``reset`` (the last one repeated after)."""

    def __init__(self, schedule: np.ndarray) -> None:
        self.schedule = np.asarray(schedule, dtype=float)
        self.k = 0

    def reset(self, seed: int | None = None) -> None:
        super().reset(seed)
        self.k = 0

    def _act(self, obs: Any) -> tuple[np.ndarray, StepInfo]:
        u = self.schedule[min(self.k, len(self.schedule) - 1)]
        self.k += 1
        return u.copy(), StepInfo()


class BangBangController(Controller):
    """The task objective's bang-bang feedback rule on the admissible bounds."""

    def __init__(self, task: TwinTask) -> None:
        self.task = task
        self.low, self.high = task.bounds

    def _act(self, obs: Any) -> tuple[np.ndarray, StepInfo]:
        return self.task.objective.bang_bang(np.asarray(obs, dtype=float), self.low, self.high), StepInfo()


def best_constant(task: TwinTask, levels: int, seeds: Sequence[int], executor: str = "local",
                  workers: int | None = 1) -> tuple[ConstantTwinController, list[dict[str, Any]], int]:
    """Grid search of constant decisions on the ABM: ``levels`` values per control, each scored on ``seeds``.

    Returns:
        The best constant controller, the table of ``{"u", "cost_mean"}`` per grid point, and the ABM ticks used.
    """
    low, high = task.bounds
    axes = [np.linspace(lo, hi, levels) for lo, hi in zip(low, high)]
    if task.integer:
        axes = [np.unique(np.round(a)) for a in axes]
    grid = [np.array(u) for u in itertools.product(*axes)]
    evals = evaluate_many(task, {str(i): ConstantTwinController(u) for i, u in enumerate(grid)}, seeds,
                          executor=executor, workers=workers)
    table = [{"u": u.tolist(), "cost_mean": float(evals[str(i)].costs.mean())} for i, u in enumerate(grid)]
    best = min(table, key=lambda r: r["cost_mean"])
    return ConstantTwinController(best["u"]), table, len(grid) * len(seeds) * (task.burn_in + task.ticks)


def best_few_switch(task: TwinTask, levels: int, switch_points: Sequence[int], seeds: Sequence[int],
                    executor: str = "local", workers: int | None = 1
                    ) -> tuple[ScheduleController, list[dict[str, Any]], int]:
    """Grid search of one-switch schedules on the ABM: decision ``a`` for the first ``m`` decisions, then ``b``
    (``a``, ``b`` on a ``levels``-per-control grid, ``m`` in ``switch_points``), each scored on ``seeds``.

    Constant schedules are included (``a == b``), so the result is never worse on ``seeds`` than the best constant
    of the same grid. This is the "full antiviral for the first day, then stop" kind of rule a clinician would try.

    Returns:
        The best schedule as an open-loop controller, the table of ``{"first", "then", "switch", "cost_mean"}``
        and the ABM ticks used.

    Raises:
        ControlkitError: a switch point outside ``1 .. decisions - 1``.
    """
    for m in switch_points:
        if not 1 <= int(m) < task.decisions:
            raise ControlkitError(f"few_switch.switch_points: {m} is not in 1..{task.decisions - 1} (decisions).")
    low, high = task.bounds
    axes = [np.linspace(lo, hi, levels) for lo, hi in zip(low, high)]
    if task.integer:
        axes = [np.unique(np.round(a)) for a in axes]
    grid = [np.array(u) for u in itertools.product(*axes)]
    schedules, rows = [], []
    for m in sorted({int(m) for m in switch_points}):
        for a, b in itertools.product(grid, grid):
            if m != min(int(p) for p in switch_points) and np.array_equal(a, b):
                continue  # a constant schedule is the same whatever the switch point: score it once
            schedules.append(np.vstack([np.tile(a, (m, 1)), np.tile(b, (task.decisions - m, 1))]))
            rows.append({"first": a.tolist(), "then": b.tolist(), "switch": m})
    evals = evaluate_many(task, {str(i): ScheduleController(sc) for i, sc in enumerate(schedules)}, seeds,
                          executor=executor, workers=workers)
    for i, row in enumerate(rows):
        row["cost_mean"] = float(evals[str(i)].costs.mean())
    best = int(np.argmin([r["cost_mean"] for r in rows]))
    return (ScheduleController(schedules[best]), rows,
            len(schedules) * len(seeds) * (task.burn_in + task.ticks))


def open_loop_optimal(surrogate, task: TwinTask, x0: np.ndarray, iterations: int = 300, lr: float = 0.05,
                      seed: int = 0) -> tuple[ScheduleController, float]:
    """Optimise one decision schedule on the surrogate from ``x0`` (Adam on sigmoid-scaled parameters, integer
    decisions rounded straight-through) and return it as an open-loop controller with its predicted cost."""
    low, high = (torch.as_tensor(b, dtype=torch.float32) for b in task.bounds)
    gen = torch.Generator().manual_seed(seed)
    z = (-2.0 + 0.1 * torch.randn(task.decisions, low.numel(), generator=gen)).requires_grad_(True)
    x0_t = torch.as_tensor(np.asarray(x0, dtype=np.float32))[None]
    for p in surrogate.parameters():
        p.requires_grad_(False)
    opt = torch.optim.Adam([z], lr=lr)

    def schedule() -> torch.Tensor:
        u = low + (high - low) * torch.sigmoid(z)
        return straight_through_round(u) if task.integer else u

    loss = None
    for _ in range(iterations):
        u = schedule()[None]
        x, states = x0_t, []
        for k in range(task.decisions):
            x = torch.clamp(surrogate.step(x, u[:, k]), min=0.0)
            states.append(x)
        loss = surrogate_cost(task, x0_t, torch.stack(states, 1), u).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    for p in surrogate.parameters():
        p.requires_grad_(True)
    return ScheduleController(schedule().detach().numpy()), float(loss.item())


class SurrogateMPCController(Controller):
    """MIP-MPC on a ReLU surrogate in receding horizon (the MILP is built lazily, so the controller pickles).

    Args:
        net: The surrogate as a :class:`~controlkit.models.network.CompactNetwork`.
        task: The control task (its objective must have an L1 form, see ``Objective.l1_form``).
        horizon: Decisions planned ahead.
        time_limit: Seconds per MILP solve; ``None``: no wall-clock limit and no time-budgeted bound tightening, so
            every plan depends only on the model and the state (same numbers under any machine load; HiGHS runs
            one thread and stops at ``mip_gap``).
        mip_gap: Relative gap at which HiGHS stops.
    """

    def __init__(self, net, task: TwinTask, horizon: int = 4, time_limit: float | None = 1.0,
                 mip_gap: float = 1e-3) -> None:
        self.net, self.task = net, task
        self.goal, self.q, rate_w = task.objective.l1_form(net.nx)
        self.control_weight = rate_w * task.rate_scale()
        self.horizon, self.mip_gap = int(horizon), float(mip_gap)
        self.time_limit = None if time_limit is None else float(time_limit)
        self._mpc = None
        self.solve_times: list[float] = []

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_mpc"] = None  # HiGHS objects do not pickle; rebuilt on first use
        return state

    def reset(self, seed: int | None = None) -> None:
        super().reset(seed)
        if self._mpc is None:
            from controlkit.planning.mip_mpc import MIPMPC

            low, high = self.task.bounds
            self._mpc = MIPMPC(self.net, self.horizon, low, high, x_low=np.zeros(self.net.nx),
                               state_weights=self.q, control_weight=self.control_weight,
                               time_limit=self.time_limit, mip_gap=self.mip_gap, goal=self.goal,
                               # the automatic tightening spends a wall-clock budget: off when deterministic
                               **({"tighten_steps": 0} if self.time_limit is None else {}))
        self._mpc.reset(seed)

    def _act(self, obs: Any) -> tuple[np.ndarray, StepInfo]:
        t0 = time.perf_counter()
        u = self._mpc.act(np.asarray(obs, dtype=float))
        self.solve_times.append(time.perf_counter() - t0)
        return u, self._mpc.last_step

    def diagnose(self, states: np.ndarray) -> dict[str, Any]:
        """Plan once from each of ``states`` and report what limits the MILP: binaries (unstable ReLUs over the
        horizon), the share of solves stopped by the time limit, the relative gap left and the solve time."""
        self.reset(0)
        plans = [self._mpc.plan(np.asarray(x, dtype=float), self.goal) for x in states]
        gaps = np.array([np.nan if p.gap is None else p.gap for p in plans], dtype=float)
        return {"plans": len(plans),
                "binaries_mean": float(np.mean([p.extras.get("binaries", 0) for p in plans])),
                "time_limit_share": float(np.mean([p.status == "suboptimal" for p in plans])),
                "gap_median": float(np.nanmedian(gaps)) if np.isfinite(gaps).any() else None,
                "solve_time_median_s": float(np.median([p.solve_time_s for p in plans]))}


class PPOTwinController(Controller):
    """A trained PPO policy's deterministic action (its actor MLP copied to numpy, so it pickles to workers),
    acting through the twin env's observation and action maps (:class:`controlkit.envs.twin_envs.TwinEnv`)."""

    def __init__(self, policy, task: TwinTask, obs_scale: np.ndarray) -> None:
        lin = [m for m in policy.mlp_extractor.policy_net if isinstance(m, torch.nn.Linear)] + [policy.action_net]
        self.weights = [m.weight.detach().double().numpy().copy() for m in lin]
        self.biases = [m.bias.detach().double().numpy().copy() for m in lin]
        self.task, self.obs_scale = task, np.asarray(obs_scale, dtype=float)
        self.k = 0

    def reset(self, seed: int | None = None) -> None:
        super().reset(seed)
        self.k = 0

    def _act(self, obs: Any) -> tuple[np.ndarray, StepInfo]:
        from controlkit.envs.twin_envs import action_to_control

        x = np.append(np.asarray(obs, dtype=float) / self.obs_scale, self.k / self.task.decisions)
        action = mlp_forward(self.weights, self.biases, x)
        self.k += 1
        return action_to_control(self.task, action), StepInfo()


def train_ppo(task: TwinTask, timesteps: int, seed: int, n_steps: int = 256, batch_size: int = 64,
              lr: float = 3e-4) -> tuple[PPOTwinController, int, float]:
    """Train PPO (stable-baselines3, MLP policy) for ``timesteps`` decisions on the task's twin env.

    Returns:
        The controller, the ABM ticks consumed (burn-ins included) and the wall time.
    """
    from controlkit.envs.twin_envs import TwinEnv

    from controlkit.core.extras import require

    PPO = require("stable_baselines3", "the ppo method (stable-baselines3)").PPO

    t0 = time.perf_counter()
    env = TwinEnv(task=task)
    env.reset(seed=seed + 10_000_000)  # twin seeds drawn from here on, disjoint from the evaluation's
    model = PPO("MlpPolicy", env, n_steps=n_steps, batch_size=batch_size, learning_rate=lr, seed=seed,
                device="cpu", verbose=0, policy_kwargs={"net_arch": [64, 64], "activation_fn": torch.nn.Tanh})
    model.learn(total_timesteps=int(timesteps))
    return PPOTwinController(model.policy, task, env.observation_scale), env.ticks_simulated, time.perf_counter() - t0


__all__ = ["BangBangController", "ConstantTwinController", "PPOTwinController", "ScheduleController",
           "SurrogateMPCController", "best_constant", "best_few_switch", "open_loop_optimal", "train_ppo"]

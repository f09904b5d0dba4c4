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

import copy
import dataclasses
import itertools
import random
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
    acting through the twin env's observation and action maps (:class:`controlkit.envs.twin_envs.TwinEnv`) and,
    when PPO trained on normalised observations, the running mean and variance it had at the end (frozen).
    """

    def __init__(self, policy, task: TwinTask, obs_scale: np.ndarray, obs_mean: np.ndarray | None = None,
                 obs_var: np.ndarray | None = None, clip_obs: float = 10.0) -> None:
        lin = [m for m in policy.mlp_extractor.policy_net if isinstance(m, torch.nn.Linear)] + [policy.action_net]
        self.weights = [m.weight.detach().double().numpy().copy() for m in lin]
        self.biases = [m.bias.detach().double().numpy().copy() for m in lin]
        self.task, self.obs_scale = task, np.asarray(obs_scale, dtype=float)
        self.obs_mean = None if obs_mean is None else np.asarray(obs_mean, dtype=float).copy()
        # SB3's VecNormalize divides by sqrt(var + 1e-8) and clips; the same here, so the actor sees what it saw
        self.obs_std = None if obs_var is None else np.sqrt(np.asarray(obs_var, dtype=float) + 1e-8)
        self.clip_obs = float(clip_obs)
        self.k = 0

    def reset(self, seed: int | None = None) -> None:
        super().reset(seed)
        self.k = 0

    def _act(self, obs: Any) -> tuple[np.ndarray, StepInfo]:
        from controlkit.envs.twin_envs import action_to_control

        x = np.append(np.asarray(obs, dtype=float) / self.obs_scale, self.k / self.task.decisions)
        if self.obs_mean is not None:
            x = np.clip((x - self.obs_mean) / self.obs_std, -self.clip_obs, self.clip_obs)
        action = mlp_forward(self.weights, self.biases, x)
        self.k += 1
        return action_to_control(self.task, action), StepInfo()


@dataclasses.dataclass
class PPOResult:
    """What :func:`train_ppo` returns.

    Attributes:
        controller: The trained policy as a controller.
        abm_ticks: ABM ticks simulated for training (burn-ins included), at most the budget.
        wall_s: Training wall time (learning-curve evaluations included).
        episodes: Training episodes.
        settings: The PPO settings used (n_steps, batch size, ... as sized to the budget).
        curve: The learning curve: ``episodes`` (ABM ticks used so far and the cost of each training episode,
            under the exploring policy) and ``checkpoints`` (ABM ticks used so far and the mean and 95 % CI of the
            deterministic policy's cost on fixed held-out seeds).
    """

    controller: PPOTwinController
    abm_ticks: int
    wall_s: float
    episodes: int
    settings: dict[str, Any]
    curve: dict[str, list]


def _pooled_env_class():
    """A :class:`~controlkit.envs.twin_envs.TwinEnv` whose episodes start from a pool of burnt-in twins (built
    lazily; every episode a deep copy with its own random streams), so a tick budget pays each burn-in once; it
    records each episode's cost against the ticks simulated so far."""
    from controlkit.envs.twin_envs import TwinEnv

    class PooledTwinEnv(TwinEnv):
        def __init__(self, task: TwinTask, pool: int) -> None:
            super().__init__(task=task)
            self.pool_size, self.pool = int(pool), []
            self.episode_costs: list[tuple[int, float]] = []
            self._cost = 0.0

        def reset(self, *, seed: int | None = None, options: dict | None = None):
            if not self.task.burn_in or self.pool_size <= 0 or len(self.pool) < self.pool_size:
                obs, info = super().reset(seed=seed, options=options)
                if self.task.burn_in and self.pool_size > 0:
                    self.pool.append(copy.deepcopy(self.twin))
            else:
                super(TwinEnv, self).reset(seed=seed)  # gymnasium's seeding alone: no fresh twin
                self.twin = copy.deepcopy(self.pool[int(self.np_random.integers(len(self.pool)))])
                stream = int(self.np_random.integers(2**63))
                self.twin.rng = np.random.default_rng(stream)  # the copy's own randomness from here on
                self.twin.random = random.Random(stream)
                self._k = 0
                obs, info = self.observation(self.twin.observe(), 0), {"twin_seed": None}
            self._cost = 0.0
            return obs, info

        def step(self, action):
            obs, reward, terminated, truncated, info = super().step(action)
            self._cost -= reward
            if terminated:
                self.episode_costs.append((self.ticks_simulated, self._cost))
            return obs, reward, terminated, truncated, info

    return PooledTwinEnv


def train_ppo(task: TwinTask, abm_ticks: int, seed: int, *, updates: int = 16, minibatches: int = 4,
              n_epochs: int = 10, lr: float = 3e-4, gamma: float = 0.99, gae_lambda: float = 0.95,
              ent_coef: float = 0.0, log_std_init: float = -1.0, net_arch: Sequence[int] = (64, 64),
              pool: int = 8, normalize: bool = True, curve_points: int = 8, curve_seeds: Sequence[int] = (),
              ) -> PPOResult:
    """Train PPO (stable-baselines3, MLP policy) on the task's twin env within a budget of ABM ticks.

    The budget is in ABM ticks, as the surrogate route's data is counted, burn-ins included. The first ``pool``
    episodes burn in a fresh twin each and keep it; later episodes start from deep copies of those (each with its
    own random stream), so the budget buys ``E = (abm_ticks - pool * burn_in) // ticks`` episodes. The rollout
    buffer is sized to the budget: ``n_steps`` holds ``m = max(1, E // updates)`` whole episodes and PPO runs
    ``E // m`` whole rollouts (SB3 always completes one), so the policy is updated about ``updates`` times, with
    ``minibatches`` minibatches per epoch. Observations (the twin env's scaled observables and the elapsed
    fraction of the horizon) and rewards are normalised by running statistics (SB3's ``VecNormalize``); the
    controller keeps the final observation statistics.

    Args:
        task: The control task.
        abm_ticks: Tick budget (e.g. the neural controller's data ticks).
        seed: Seed of PPO and of the training twins.
        updates: Target number of policy updates.
        minibatches: Minibatches per epoch.
        n_epochs: Epochs per update.
        lr: Adam learning rate.
        gamma: Discount (the horizon is finite and the elapsed fraction is observed).
        gae_lambda: GAE lambda.
        ent_coef: Entropy bonus.
        log_std_init: Initial log standard deviation of the Gaussian policy on the ``[-1, 1]`` action box.
        net_arch: Hidden widths of the actor and the critic (tanh).
        pool: Burnt-in twins kept for later episodes (0: a fresh burn-in every episode).
        normalize: Normalise observations and rewards by running statistics.
        curve_points: Learning-curve checkpoints (about evenly spaced in ticks, plus the start and the end).
        curve_seeds: Seeds on which each checkpoint scores the deterministic policy (none: no checkpoints);
            these evaluation ticks are not counted in the budget.

    Returns:
        A :class:`PPOResult`.

    Raises:
        ControlkitError: a budget too small for one episode.
    """
    from controlkit.twins.deploy import run_episode

    from controlkit.core.extras import require
    from controlkit.core.stats import mean_ci95

    sb3 = require("stable_baselines3", "the ppo method (stable-baselines3)")
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    pool = min(int(pool), max(1, int(abm_ticks) // (task.burn_in + task.ticks))) if task.burn_in else 0
    episodes = (int(abm_ticks) - pool * task.burn_in) // task.ticks
    if episodes < 1:
        raise ControlkitError(f"ppo.abm_ticks: {abm_ticks} ticks do not buy one episode of {task.burn_in} burn-in "
                              f"+ {task.ticks} controlled ticks.")
    per_update = max(1, episodes // int(updates))
    episodes -= episodes % per_update  # SB3 always completes a rollout: whole rollouts only, so the budget holds
    n_steps = per_update * task.decisions
    # the divisor of n_steps nearest n_steps / minibatches: SB3 warns of (and trains on) a truncated last minibatch
    batch = min((d for d in range(2, n_steps + 1) if n_steps % d == 0), key=lambda d: abs(d - n_steps / minibatches),
                default=n_steps)
    settings = {"abm_ticks_budget": int(abm_ticks), "episodes": episodes, "pool": pool, "n_steps": n_steps,
                "batch_size": batch, "n_epochs": n_epochs, "lr": lr, "gamma": gamma, "gae_lambda": gae_lambda,
                "ent_coef": ent_coef, "log_std_init": log_std_init, "net_arch": list(net_arch),
                "normalize": normalize}

    t0 = time.perf_counter()
    torch.manual_seed(seed)  # SB3 samples actions from torch's global generator
    env = _pooled_env_class()(task, pool)  # SB3 resets it with ``seed``; later twin seeds come from its generator
    vec = DummyVecEnv([lambda: env])
    if normalize:
        vec = VecNormalize(vec, norm_obs=True, norm_reward=True, gamma=gamma)
    model = sb3.PPO("MlpPolicy", vec, n_steps=n_steps, batch_size=batch, n_epochs=n_epochs, learning_rate=lr,
                    gamma=gamma, gae_lambda=gae_lambda, ent_coef=ent_coef, seed=seed, device="cpu", verbose=0,
                    policy_kwargs={"net_arch": list(net_arch), "activation_fn": torch.nn.Tanh,
                                   "log_std_init": log_std_init})

    def controller() -> PPOTwinController:
        rms = vec.obs_rms if normalize else None
        return PPOTwinController(model.policy, task, env.observation_scale, None if rms is None else rms.mean,
                                 None if rms is None else rms.var)

    checkpoints: list[list[float]] = []

    def checkpoint() -> None:
        if curve_seeds:
            costs = np.array([run_episode(task, controller(), s).cost for s in curve_seeds])
            checkpoints.append([env.ticks_simulated, *mean_ci95(costs)])

    every = max(1, int(abm_ticks) // max(1, int(curve_points)))

    class Curve(BaseCallback):
        def _on_training_start(self) -> None:
            self.next = every
            checkpoint()

        def _on_rollout_start(self) -> None:
            if env.ticks_simulated >= self.next:
                checkpoint()
                self.next = env.ticks_simulated + every

        def _on_step(self) -> bool:
            return True

    model.learn(total_timesteps=episodes * task.decisions, callback=Curve())
    if not checkpoints or checkpoints[-1][0] != env.ticks_simulated:
        checkpoint()
    curve = {"episodes": [[int(t), float(c)] for t, c in env.episode_costs],
             "checkpoints": checkpoints, "checkpoint_seeds": list(map(int, curve_seeds))}
    return PPOResult(controller(), env.ticks_simulated, time.perf_counter() - t0, len(env.episode_costs), settings,
                     curve)


__all__ = ["BangBangController", "ConstantTwinController", "PPOTwinController", "ScheduleController",
           "PPOResult", "SurrogateMPCController", "best_constant", "best_few_switch", "open_loop_optimal", "train_ppo"]

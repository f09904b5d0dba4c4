"""Closed-loop deployment of a controller on the ABM itself, over stochastic replicates and perturbed parameters.

One episode: a fresh twin from the replicate's seed, ``burn_in`` ticks without control, then ``decisions`` times:
observe the twin's observables, ask the controller, turn the decision into per-tick ABM controls
(:meth:`TwinTask.schedule`) and run them. The objective is scored at every tick. Replicates run through
:func:`controlkit.core.executors.map_tasks`, so they parallelise locally or on Ray and come back in seed order.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from controlkit.twins.objectives import TwinTask

from controlkit.core.controller import Controller
from controlkit.core.executors import map_tasks
from controlkit.core.stats import mean_ci95


@dataclasses.dataclass
class Episode:
    """One ABM episode under a controller.

    Attributes:
        seed: Twin seed.
        cost: Objective averaged over the controlled ticks.
        parts: Each (unweighted) term averaged over the controlled ticks.
        outcomes: The objective's outcome numbers.
        obs: Observables at every controlled tick ``(ticks + 1, n_obs)`` (row 0: end of burn-in).
        decisions: The controller's decisions ``(decisions, n_u)``.
        abm_steps: Ticks simulated (burn-in included).
        params: Parameter overrides of this replicate (perturbations).
    """

    seed: int
    cost: float
    parts: dict[str, float]
    outcomes: dict[str, float]
    obs: np.ndarray
    decisions: np.ndarray
    abm_steps: int
    params: dict[str, float]


def run_episode(task: TwinTask, controller: Controller, seed: int, params: Mapping[str, Any] | None = None) -> Episode:
    """Deploy ``controller`` on a fresh twin (seed ``seed``, optional parameter overrides) for the task's horizon."""
    twin = task.make_twin(seed, params)
    if task.burn_in:
        twin.run(None, steps=task.burn_in)
    controller.reset(seed)
    obs = [twin.observe()]
    ticks, decisions = [], []
    for _ in range(task.decisions):
        u = task.admissible(controller.act(obs[-1]))
        sched = task.schedule(u)
        obs.extend(twin.run(sched)[1:])
        ticks.append(sched)
        decisions.append(u)
    obs_arr, ctrl = np.asarray(obs), np.concatenate(ticks)
    episode = score_episode(task, seed, obs_arr, ctrl, np.asarray(decisions), dict(params or {}))
    # The twin's own outcome numbers over the controlled window (e.g. clearance day after treatment start).
    for k, v in twin.summarize(obs_arr).items():
        episode.outcomes.setdefault(k, float(v))
    return episode


def score_episode(task: TwinTask, seed: int, obs: np.ndarray, ctrl: np.ndarray, decisions: np.ndarray,
                  params: dict[str, float]) -> Episode:
    """Score per-tick observables and controls with the task's objective."""
    parts = {k: float(v) for k, v in task.objective.episode_terms(obs[:-1], obs[1:], ctrl).items()}
    cost = float(sum(task.objective.weights[k] * v for k, v in parts.items()))
    return Episode(seed, cost, parts, task.objective.outcomes(obs, ctrl), obs, decisions,
                   task.burn_in + task.ticks, params)


@dataclasses.dataclass
class Evaluation:
    """Replicates of one controller on the ABM."""

    episodes: list[Episode]

    @property
    def costs(self) -> np.ndarray:
        return np.array([e.cost for e in self.episodes])

    def summary(self) -> dict[str, Any]:
        """``cost_mean``, ``cost_ci95``, ``cost_std``, each part's and outcome's mean and CI half-width."""
        mean, ci = mean_ci95(self.costs)
        out: dict[str, Any] = {"replicates": len(self.episodes), "cost_mean": mean, "cost_ci95": ci,
                               "cost_std": float(np.std(self.costs, ddof=1)) if len(self.episodes) > 1 else 0.0,
                               "cost_min": float(self.costs.min()), "cost_max": float(self.costs.max())}
        for group in ("parts", "outcomes"):
            keys = getattr(self.episodes[0], group)
            out[group] = {}
            for k in keys:
                # Outcomes such as a clearance day are NaN in replicates where the event never happened.
                vals = np.array([getattr(e, group)[k] for e in self.episodes], dtype=float)
                m, c = mean_ci95(vals[np.isfinite(vals)])
                out[group][k] = {"mean": m, "ci95": c, "n": int(np.isfinite(vals).sum())}
        return out

    def band(self, column: int) -> tuple[np.ndarray, np.ndarray]:
        """Mean and standard deviation over replicates of one observable per tick."""
        arr = np.stack([e.obs[:, column] for e in self.episodes])
        return arr.mean(0), arr.std(0)


def perturbed_params(task: TwinTask, spread: Mapping[str, float], seed: int) -> dict[str, float]:
    """Twin parameters each scaled by an independent uniform factor in ``[1 - s, 1 + s]`` (seeded).

    Probabilities stay within [0, 1]; integer parameters are rounded.
    """
    rng = np.random.default_rng([seed, 7919])
    base = task.make_twin(0).params
    out = {}
    for name in sorted(spread):
        value = getattr(base, name)
        v = value * rng.uniform(1 - spread[name], 1 + spread[name])
        out[name] = int(round(v)) if isinstance(value, (int, np.integer)) else float(v)
    return out


def evaluate(task: TwinTask, controller: Controller, seeds: Sequence[int],
             spread: Mapping[str, float] | None = None, executor: str = "local", workers: int | None = 1,
             desc: str | None = None, quiet: bool = True) -> Evaluation:
    """Deploy ``controller`` once per seed (with perturbed parameters when ``spread`` is given).

    Args:
        task: The control task.
        controller: Any :class:`~controlkit.core.controller.Controller`; it must pickle when ``workers > 1``.
        seeds: One replicate per seed.
        spread: Parameter name -> relative half-width of its uniform perturbation (``None``: nominal model).
        executor: ``"local"`` or ``"ray"`` (see :func:`controlkit.core.executors.map_tasks`).
        workers: Parallel workers.
        desc: Progress-bar label.
        quiet: Hide the progress bar.
    """
    return evaluate_many(task, {"_": controller}, seeds, spread, executor, workers, desc, quiet)["_"]


def evaluate_many(task: TwinTask, controllers: Mapping[str, Controller], seeds: Sequence[int],
                  spread: Mapping[str, float] | None = None, executor: str = "local", workers: int | None = 1,
                  desc: str | None = None, quiet: bool = True) -> dict[str, Evaluation]:
    """:func:`evaluate` for several controllers on the same seeds, in one batch of tasks (one worker pool)."""
    params = {int(s): perturbed_params(task, spread, int(s)) if spread else None for s in seeds}
    args = [(task, c, int(s), params[int(s)]) for c in controllers.values() for s in seeds]
    episodes = map_tasks(run_episode, args, executor=executor, workers=workers, desc=desc, quiet=quiet)
    n = len(seeds)
    return {name: Evaluation(episodes[i * n:(i + 1) * n]) for i, name in enumerate(controllers)}

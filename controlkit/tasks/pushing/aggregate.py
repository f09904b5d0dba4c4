"""On-policy data aggregation for the learned pushing model (DAgger for system identification).

A model learned from exploration data is least accurate where the planners take the object, and an optimiser
finds exactly those errors (Ross & Bagnell 2012, "Agnostic system identification for model-based reinforcement
learning"; the data loops of PETS and MBPO). :func:`aggregate` closes that loop: after the first model it runs
the model-based planners in closed loop on the task itself, with Gaussian exploration noise on every applied
action, adds the transitions to the data, retrains and re-sparsifies, and repeats for a few rounds. Every
round's data is measured before it is learned from: the 10-step position error of the model that drove the
round on the states its own loop visited (a held-out, on-policy error).

The pieces work alone too: :class:`ActionRecorder` (a planner with noise and a record of what it applied),
:func:`closed_loop_data` (closed-loop episodes as :class:`~controlkit.models.data.TransitionData`) and
:func:`rollout_position_errors` (a model's open-loop error along recorded trajectories).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, PositiveInt

from controlkit.core.controller import Controller, StepInfo
from controlkit.core.seeding import spawn_seeds
from controlkit.models.data import TransitionData, concatenate
from controlkit.models.network import CompactNetwork
from controlkit.tasks.pushing.task import EpisodeResult, Task, run_episode

logger = logging.getLogger(__name__)

ERROR_STEPS = 10  # the horizon of the reported open-loop error (the planners' H on the obstacle task)
_STREAM = 100  # spawn stream of round 1's episode seeds (round r: _STREAM + r), apart from the runner's streams


class AggregateConfig(BaseModel):
    """``data.aggregate`` of ``kind: model_based_control``: rounds of closed-loop data added to the training set."""

    model_config = ConfigDict(extra="forbid")

    rounds: PositiveInt = Field(2, description="Rounds of collect on-policy -> retrain -> re-sparsify.")
    episodes: PositiveInt = Field(20, description="Closed-loop episodes per round, shared in turn by `planners`.")
    planners: list[str] = Field(["starts_only", "mppi"], min_length=1, description="Names from the experiment's "
                                "`planners` that drive the loop (planners on the learned model, not greedy).")
    noise: float = Field(0.3, ge=0, description="Std of the Gaussian noise added to every applied action, in "
                         "units of the env's step_size (then clipped to the action box): exploration round the "
                         "planners' own paths.")
    steps: PositiveInt | None = Field(None, description="Steps per episode (default: the experiment's max_steps).")
    repeat: PositiveInt = Field(1, description="Each on-policy trajectory enters the training set this many times "
                                "(weights the small on-policy share against the exploration data).")


class ActionRecorder(Controller):
    """Runs ``inner``, adds Gaussian noise to its action (clipped to ``±step_size``) and records what it applied.

    ``actions`` holds the applied actions of the current episode (cleared by :meth:`reset`). With ``noise=0`` the
    inner action passes through untouched. The noise stream is seeded from the episode seed, apart from any
    randomness of the inner planner.
    """

    def __init__(self, inner: Controller, step_size: float, noise: float = 0.0) -> None:
        self.inner, self.step, self.noise = inner, float(step_size), float(noise)
        self.actions: list[np.ndarray] = []
        self._rng = np.random.default_rng(0)

    def reset(self, seed: int | None = None) -> None:
        super().reset(seed)
        self.inner.reset(seed)
        self._rng = np.random.default_rng(np.random.SeedSequence(0 if seed is None else seed, spawn_key=(1,)))
        self.actions = []

    def set_goal(self, goal: Any) -> None:
        self.inner.set_goal(goal)

    @property
    def last_plan(self):
        """The inner planner's last plan (``None`` for a planner without one)."""
        return getattr(self.inner, "last_plan", None)

    def _act(self, obs: Any) -> tuple[np.ndarray, StepInfo]:
        action = np.asarray(self.inner.act(obs))
        if self.noise > 0:
            noisy = action + self._rng.normal(0.0, self.noise * self.step, action.shape)
            action = np.clip(noisy, -self.step, self.step).astype(action.dtype)
        self.actions.append(np.array(action, dtype=np.float64).reshape(-1))
        return action, self.inner.last_step


def episodes_data(episodes: Sequence[EpisodeResult], actions: Sequence[Sequence[np.ndarray]],
                  metadata: dict[str, Any] | None = None) -> TransitionData:
    """Closed-loop episodes (their world-frame states) and the actions applied in them as one dataset."""
    parts = []
    for ep, acts in zip(episodes, actions):
        a = np.asarray(acts, dtype=np.float64).reshape(len(acts), -1)
        parts.append(TransitionData(ep.states[None, : len(a) + 1], a[None], np.array([len(a)])))
    return concatenate(parts, metadata or {})


def closed_loop_data(env: gym.Env, task: Task, planners: Sequence[tuple[str, Controller]], seeds: Sequence[int],
                     noise: float, progress: Callable | None = None,
                     desc: str = "aggregate") -> tuple[TransitionData, list[EpisodeResult], list[str]]:
    """Run one closed-loop episode per seed, the planners taking turns, with exploration noise on every action.

    Returns:
        The transitions (world-frame states, applied actions), the episodes, and which planner ran each.
    """
    recorders = [(name, ActionRecorder(p, task.env.step_size, noise)) for name, p in planners]
    episodes, actions, names = [], [], []
    it = range(len(seeds)) if progress is None else progress(range(len(seeds)), desc=desc)
    for i in it:
        name, rec = recorders[i % len(recorders)]
        episodes.append(run_episode(env, task, rec, seeds[i]))
        actions.append(list(rec.actions))
        names.append(name)
    meta = {"behaviour": "closed_loop", "planners": [n for n, _ in planners], "noise": noise, "seeds": list(seeds)}
    return episodes_data(episodes, actions, meta), episodes, names


def rollout_position_errors(net: CompactNetwork, data: TransitionData, steps: int = ERROR_STEPS) -> np.ndarray:
    """The object's position error (m) after ``steps`` open-loop model steps, from every window of ``data``.

    Each window starts at a recorded state and replays the recorded actions through ``net``; the error is the
    distance between the predicted and the recorded object position (state entries 0 and 1) at its end.
    """
    x0, acts, targets = data.windows(steps)
    if not len(x0):
        return np.zeros(0)
    x = x0
    for t in range(steps):
        x = net.step(x, acts[:, t])
    return np.linalg.norm(x[:, :2] - targets[:, -1, :2], axis=1)


def error_quantiles(errors: np.ndarray, prefix: str = "rollout_error_10") -> dict[str, float | int | None]:
    """Median and 90th percentile of ``errors`` (``None`` when there are none) and how many windows."""
    errors = np.asarray(errors, dtype=np.float64)
    if not errors.size:
        return {f"{prefix}_median": None, f"{prefix}_p90": None, f"{prefix}_windows": 0}
    return {f"{prefix}_median": float(np.median(errors)), f"{prefix}_p90": float(np.quantile(errors, 0.9)),
            f"{prefix}_windows": int(errors.size)}


@dataclasses.dataclass
class AggregateResult:
    """What :func:`aggregate` returns.

    Attributes:
        net: The last round's model.
        data: Every transition it was trained on (the initial data and each round's, world frame, before
            ``repeat``).
        models: The model of every round, the initial one first.
        on_policy: Each round's closed-loop data (world frame), in order.
        rounds: One row per round (its data, the held-out error of the model that collected it, the new model).
    """

    net: CompactNetwork
    data: TransitionData
    models: list[CompactNetwork]
    on_policy: list[TransitionData]
    rounds: list[dict[str, Any]]


def aggregate(
    net: CompactNetwork,
    data: TransitionData,
    config: AggregateConfig,
    env: gym.Env,
    task: Task,
    make_planners: Callable[[CompactNetwork, int], list[tuple[str, Controller]]],
    train: Callable[[TransitionData, int], tuple[CompactNetwork, dict[str, Any]]],
    seed: int,
    progress: Callable | None = None,
) -> AggregateResult:
    """``config.rounds`` rounds of: closed loop on the current model -> add the data -> retrain and re-sparsify.

    Args:
        net: The model learned from ``data`` (round 0).
        data: Its training data, world-frame states.
        config: Rounds, episodes, planners, noise, repeat.
        env: The task's env (its own dynamics, obstacle and goal distribution); ``max_episode_steps`` caps episodes.
        task: The task on ``env`` (cost, keep-out boxes, route) that every planner plans with.
        make_planners: Builds the collecting planners on a model (``(model, round) -> [(name, planner)]``).
        train: Learns a model from world-frame data (``(data, round) -> (model, facts)``).
        seed: Root seed: round ``r``'s episodes use spawn stream ``100 + r`` of it, so rounds share no episodes
            and the same seed gives the same data and models.
        progress: Optional progress-bar wrapper (the runner's, shown on a terminal only).
    """
    models, on_policy, rows = [net], [], []
    for r in range(1, config.rounds + 1):
        seeds = spawn_seeds(seed, config.episodes, _STREAM + r)
        new, episodes, names = closed_loop_data(env, task, make_planners(net, r), seeds, config.noise, progress,
                                                desc=f"aggregate round {r}")
        # Measured before it is learned from: how wrong the collecting model is along its own (noisy) loop.
        held_out = error_quantiles(rollout_position_errors(net, new))
        on_policy.append(new)
        repeated = [d for d in on_policy for _ in range(config.repeat)]
        net, facts = train(concatenate([data, *repeated]), r)
        models.append(net)
        rows.append({"round": r, "episodes": len(episodes), "transitions_added": new.n_transitions,
                     "transitions_total": data.n_transitions + sum(d.n_transitions for d in on_policy),
                     "collection_success": float(np.mean([e.success for e in episodes])),
                     "collection_planners": names, **{f"held_out_{k}": v for k, v in held_out.items()}, **facts})
        logger.info("aggregate round %d: %d transitions added (success %.0f%% with noise), the collecting model's "
                    "10-step error on them %s m (median); retrained: %d ReLU", r, new.n_transitions,
                    100 * rows[-1]["collection_success"], _fmt(held_out["rollout_error_10_median"]), net.n_relu)
    return AggregateResult(net, concatenate([data, *on_policy]), models, on_policy, rows)


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.4f}"


__all__ = ["ERROR_STEPS", "ActionRecorder", "AggregateConfig", "AggregateResult", "aggregate", "closed_loop_data",
           "episodes_data", "error_quantiles", "rollout_position_errors"]

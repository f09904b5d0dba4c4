"""One Gymnasium wrapper for every registered twin: ``controlkit/PredatorPrey-v0``, ``controlkit/ImmuneTwin-v0``,
``controlkit/Metabolic-v0``, and any twin a user registers with :func:`controlkit.twins.register_twin`.

An episode is the twin's control task (:func:`controlkit.twins.make_task`): a fresh twin, ``burn_in`` uncontrolled
ticks, then ``decisions`` env steps of ``interval`` ticks each.

- **Observation**: the twin's observables divided by :meth:`~controlkit.twins.TwinModel.observation_scale`
  (``normalize=True``; raw counts otherwise), followed by the elapsed fraction of the horizon ``k / decisions``
  (the task has a finite horizon, so time is part of the state). ``env.observable_names`` names the columns.
- **Action**: a float32 Box ``[-1, 1]^n_u``, mapped affinely onto the task's admissible controls (``-1`` = lower
  bound, ``+1`` = upper bound; rounded to whole agents where the twin counts agents). Finite actions outside the
  Box are clipped into it; NaN/inf or a wrong shape raise a ControlkitError.
- **Reward**: minus the twin's objective (:class:`~controlkit.twins.objectives.Objective`, the one ``twin_control``
  optimises) summed over the step's ticks and divided by the horizon's ticks, so an episode's return is exactly
  minus the ``twin_control`` cost of the same decisions on the same seed. An objective of the whole episode
  (``PER_TICK = False``: the paper's J1 and J2) pays minus its increase over the trajectory so far instead, with
  the same property.
- **End**: ``terminated`` after ``decisions`` steps and never earlier: an extinct population or a failed tissue
  keeps paying the objective until the horizon, so ending an episode early is never a way to a better return.
- **Seeding**: ``reset(seed=s)`` builds a twin with seed ``s``; ``reset()`` draws it from the env's generator.
- **Rendering**: ``render_mode="rgb_array"`` returns the twin's grid picture, enlarged to at least 200 pixels.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from controlkit.twins._common import upscale
from controlkit.twins.objectives import TwinTask
from controlkit.twins.registry import make_task

from controlkit.core.errors import ControlkitError


def action_to_control(task: TwinTask, action: Any) -> np.ndarray:
    """The admissible control of ``task`` for an action in ``[-1, 1]^n_u``: clipped into the Box, mapped affinely
    onto ``task.bounds`` (-1 = low, +1 = high) and rounded where the twin counts agents.

    Raises:
        ControlkitError: a wrong shape or a non-finite value.
    """
    low, high = task.bounds
    a = np.asarray(action, dtype=np.float64)
    if a.shape != low.shape:
        raise ControlkitError(f"action: expected shape {low.shape}, got {a.shape}.")
    if not np.all(np.isfinite(a)):
        raise ControlkitError(f"action: must be finite, got {a.tolist()}.")
    return task.admissible(low + (np.clip(a, -1.0, 1.0) + 1.0) / 2.0 * (high - low))


def control_to_action(task: TwinTask, control: Any) -> np.ndarray:
    """The action in ``[-1, 1]^n_u`` that :func:`action_to_control` maps to ``control``."""
    low, high = task.bounds
    span = np.where(high > low, high - low, 1.0)
    return (2.0 * (np.asarray(control, dtype=float) - low) / span - 1.0).astype(np.float32)


class TwinEnv(gym.Env):
    """A registered twin's control task as a Gymnasium env (see the module docstring).

    Args:
        twin: Registered twin name, or ``"package.module:SPEC"``.
        params: Twin parameter overrides (on top of the twin's task defaults).
        weights: Objective term weights (unknown terms raise).
        objective: Objective settings (e.g. ``{"target": [200, 40]}`` for predator–prey).
        burn_in: Uncontrolled ticks at every reset (default: the twin's task).
        interval: Ticks per env step (default: the twin's task).
        decisions: Env steps per episode (default: the twin's task). The registered ids cap episodes at the
            default through ``max_episode_steps``; pass ``max_episode_steps`` to ``gym.make`` with a longer horizon.
        apply: ``"pulse"`` or ``"hold"`` (default: the twin's task).
        u_high: Tighter upper control bounds (default: the twin's task).
        normalize: Divide the observables by the twin's fixed observation scale.
        render_mode: ``None`` or ``"rgb_array"``.
        task: A ready :class:`~controlkit.twins.objectives.TwinTask` instead of the fields above.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 8}

    def __init__(self, twin: str | None = None, params: Mapping[str, Any] | None = None,
                 weights: Mapping[str, float] | None = None, objective: Mapping[str, Any] | None = None,
                 burn_in: int | None = None, interval: int | None = None, decisions: int | None = None,
                 apply: str | None = None, u_high: Sequence[float] | None = None, normalize: bool = True,
                 render_mode: str | None = None, task: TwinTask | None = None) -> None:
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ControlkitError(f"render_mode: unknown value {render_mode!r}; valid choices: rgb_array.")
        if task is None:
            if twin is None:
                raise ControlkitError("twin: name the twin (e.g. 'predator_prey') or pass a task.")
            task = make_task(twin, params, weights, objective, burn_in=burn_in, interval=interval,
                             decisions=decisions, apply=apply, u_high=u_high)
        self.task = task
        self.normalize = bool(normalize)
        self.render_mode = render_mode
        self.twin = task.make_twin(0)  # validates the parameters now and fixes the spaces
        self.observable_names = (*self.twin.observables(), "time_fraction")
        self.observation_scale = (self.twin.observation_scale() if self.normalize
                                  else np.ones(len(self.twin.observables())))
        self.ticks_simulated = 0  # every ABM tick this env ran (burn-ins included): a sample budget
        self.low, self.high = task.bounds
        self.action_space = gym.spaces.Box(-1.0, 1.0, shape=self.low.shape, dtype=np.float32)
        self.observation_space = gym.spaces.Box(0.0, np.inf, shape=(len(self.observable_names),), dtype=np.float32)
        self._k = 0

    # -- the maps a controller trained on this env needs outside it ---------------------------------------------
    def observation(self, twin_obs: np.ndarray, k: int) -> np.ndarray:
        """The env observation of the twin's observables ``twin_obs`` at decision ``k``."""
        scaled = np.asarray(twin_obs, dtype=float) / self.observation_scale
        return np.append(scaled, k / self.task.decisions).astype(np.float32)

    def decision(self, action: Any) -> np.ndarray:
        """The admissible twin control of an action in ``[-1, 1]^n_u`` (see :func:`action_to_control`)."""
        return action_to_control(self.task, action)

    def action_of(self, control: Any) -> np.ndarray:
        """The action that :meth:`decision` maps to the twin control ``control``."""
        return control_to_action(self.task, control)

    # -- gymnasium ------------------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        twin_seed = seed if seed is not None else int(self.np_random.integers(2**31 - 1))
        self.twin = self.task.make_twin(twin_seed)
        if self.task.burn_in:
            self.twin.run(None, steps=self.task.burn_in)
        self.ticks_simulated += self.task.burn_in
        self._k = 0
        self._controls: list[np.ndarray] = []
        self._episode_cost = 0.0
        return self.observation(self.twin.observe(), 0), {"twin_seed": twin_seed}

    def step(self, action):
        u = self.decision(action)
        sched = self.task.schedule(u)
        traj = self.twin.run(sched)
        self.ticks_simulated += len(sched)
        objective = self.task.objective
        if objective.PER_TICK:
            cost = float(np.sum(objective.cost(traj[:-1], traj[1:], sched))) / self.task.ticks
        else:
            # An objective of the whole episode (a ratio, a steady-state window): pay its increase over the
            # trajectory so far, so the rewards still sum to minus the episode's objective.
            obs = self.twin.trajectory()[self.task.burn_in:]
            self._controls.append(sched)
            total = float(objective.episode_cost(obs[:-1], obs[1:], np.concatenate(self._controls)))
            cost, self._episode_cost = total - self._episode_cost, total
        self._k += 1
        terminated = self._k >= self.task.decisions
        info: dict[str, Any] = {"control": u, "tick": self.twin.steps}
        if terminated:
            info["outcome"] = self.twin.summarize(self.twin.trajectory()[self.task.burn_in:])
        return self.observation(traj[-1], self._k), -cost, terminated, False, info

    def render(self):
        if self.render_mode != "rgb_array":
            return None
        img = self.twin.grid_image()
        return upscale(img, max(1, math.ceil(200 / max(img.shape[:2]))))


__all__ = ["TwinEnv", "action_to_control", "control_to_action"]

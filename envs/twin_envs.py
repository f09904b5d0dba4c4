"""Gymnasium wrappers of the digital twins: ``controlkit/PredatorPrey-v0``, ``controlkit/ImmuneTwin-v0``,
``controlkit/Metabolic-v0``.

Common to all three:

- **Observation**: the twin's observables (``twin.observables()`` names the columns) as a float32 Box; with
  ``normalize=True`` (default) each is divided by a fixed, documented magnitude so values are O(1).
- **Action**: the twin's controls as a float32 Box with the twin's bounds. Finite actions outside the Box are
  **clipped** into it (an RL policy's Gaussian samples routinely overshoot); NaN/inf or a wrong shape raise a
  ControlkitError. The twin itself (``twin.step``) never clips: it rejects out-of-bound controls.
- **Step**: one env step holds the action for ``ticks_per_step`` twin ticks; the reward is minus the sum of the
  twin's per-tick control cost over them (documented per env). The episode is truncated after
  ``episode_steps`` env steps.
- **Seeding**: ``reset(seed=s)`` builds a fresh twin with seed ``s``; ``reset()`` without a seed draws the twin's
  seed from the env's seeded generator, so a seeded sequence of episodes is reproducible.
- **Rendering**: ``render_mode="rgb_array"`` returns the twin's grid picture, enlarged to at least 200 pixels.
"""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np
from controlkit.twins import (
    ImmuneTwin,
    MetabolicPathway,
    PredatorPrey,
    immune_cost,
    metabolic_cost,
    predator_prey_cost,
)
from controlkit.twins._common import TwinModel, upscale

from controlkit.core.errors import ControlkitError


class TwinEnv(gym.Env):
    """Base wrapper: a twin class, its parameters and a per-tick cost make an env (subclasses fill in the cost)."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 8}
    twin_cls: type[TwinModel]

    def __init__(self, params: dict[str, Any] | None, ticks_per_step: int, episode_steps: int, normalize: bool,
                 render_mode: str | None) -> None:
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ControlkitError(f"render_mode: unknown value {render_mode!r}; valid choices: rgb_array.")
        for name, value in (("ticks_per_step", ticks_per_step), ("episode_steps", episode_steps)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ControlkitError(f"{name}: must be an integer >= 1, got {value!r}.")
        self.params = dict(params or {})
        self.ticks_per_step = int(ticks_per_step)
        self.episode_steps = int(episode_steps)
        self.normalize = normalize
        self.render_mode = render_mode
        # A throw-away twin validates the parameters now and fixes the spaces.
        self.twin: TwinModel = self.twin_cls(self.params, seed=0)
        low, high = self.twin.control_bounds()
        self.action_space = gym.spaces.Box(low.astype(np.float32), high.astype(np.float32), dtype=np.float32)
        n = len(self.twin.observables())
        self.observation_space = gym.spaces.Box(0.0, np.inf, shape=(n,), dtype=np.float32)
        self._obs_scale = self.obs_scale() if normalize else np.ones(n)
        self._steps = 0

    def obs_scale(self) -> np.ndarray:
        """Magnitude each observable is divided by when ``normalize=True``."""
        raise NotImplementedError

    def tick_cost(self, before: np.ndarray, after: np.ndarray, control: np.ndarray) -> float:
        """Control objective of one twin tick (the reward is minus its sum over the env step)."""
        raise NotImplementedError

    def _warm_up(self) -> None:
        """Hook run after each reset (e.g. a burn-in)."""

    def _obs(self) -> np.ndarray:
        return (self.twin.observe() / self._obs_scale).astype(np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        twin_seed = seed if seed is not None else int(self.np_random.integers(2**31 - 1))
        self.twin = self.twin_cls(self.params, seed=twin_seed)
        self._warm_up()
        self._steps = 0
        return self._obs(), {"twin_seed": twin_seed}

    def step(self, action):
        a = np.asarray(action, dtype=np.float64)
        if a.shape != self.action_space.shape:
            raise ControlkitError(f"action: expected shape {self.action_space.shape}, got {a.shape}.")
        if not np.all(np.isfinite(a)):
            raise ControlkitError(f"action: must be finite, got {a.tolist()}.")
        u = np.clip(a, self.action_space.low, self.action_space.high)
        cost = 0.0
        for _ in range(self.ticks_per_step):
            before = self.twin.observe()
            self.twin.step(u)
            cost += self.tick_cost(before, self.twin.observe(), u)
        self._steps += 1
        terminated = self._terminated()
        truncated = not terminated and self._steps >= self.episode_steps
        return self._obs(), float(-cost), terminated, truncated, {"control": u, "tick": self.twin.steps}

    def _terminated(self) -> bool:
        return False

    def render(self):
        if self.render_mode != "rgb_array":
            return None
        img = self.twin.grid_image()
        return upscale(img, max(1, math.ceil(200 / max(img.shape[:2]))))


class PredatorPreyEnv(TwinEnv):
    """Wolf–sheep–grass under culling (:class:`~controlkit.twins.PredatorPrey`), one tick per step.

    Reward per tick: ``-(|sheep - s*| / s* + |wolves - w*| / w* + effort_weight * removals / (s* + w*))`` with
    ``target = (s*, w*)`` and removals the expected animals culled (``predator_prey_cost``). The episode ends
    (terminated) when both species are extinct. Normalisation divides sheep and wolves by the target and grass by
    the number of cells.

    Args:
        params: PredatorPrey parameters (e.g. ``{"removal": "count"}``).
        target: Populations to reach and hold ``(sheep, wolves)``.
        effort_weight: Weight of the culling effort.
        burn_in: Uncontrolled ticks run at every reset before the first observation (the paper uses 1000).
        episode_steps: Env steps per episode.
        ticks_per_step: Twin ticks per env step.
        normalize: Scale observations to O(1).
        render_mode: ``None`` or ``"rgb_array"``.
    """

    twin_cls = PredatorPrey

    def __init__(self, params: dict[str, Any] | None = None, target: tuple[float, float] = (100.0, 40.0),
                 effort_weight: float = 1.0, burn_in: int = 0, episode_steps: int = 500, ticks_per_step: int = 1,
                 normalize: bool = True, render_mode: str | None = None) -> None:
        if len(target) != 2 or min(target) <= 0:
            raise ControlkitError(f"target: expected two positive populations (sheep, wolves), got {target!r}.")
        if isinstance(burn_in, bool) or not isinstance(burn_in, int) or burn_in < 0:
            raise ControlkitError(f"burn_in: must be an integer >= 0, got {burn_in!r}.")
        self.target = (float(target[0]), float(target[1]))
        self.effort_weight = float(effort_weight)
        self.burn_in = burn_in
        super().__init__(params, ticks_per_step, episode_steps, normalize, render_mode)

    def obs_scale(self) -> np.ndarray:
        p = self.twin.params
        return np.array([self.target[0], self.target[1], p.width * p.height])

    def tick_cost(self, before, after, control) -> float:
        return predator_prey_cost(after, control, self.target, self.effort_weight,
                                  self.twin.params.removal == "fraction")

    def _warm_up(self) -> None:
        if self.burn_in:
            self.twin.run(None, steps=self.burn_in)

    def _terminated(self) -> bool:
        obs = self.twin.observe()
        return bool(obs[0] == 0 and obs[1] == 0)


class ImmuneTwinEnv(TwinEnv):
    """Antiviral and anti-inflammatory dosing of the :class:`~controlkit.twins.ImmuneTwin`.

    One env step is a dosing interval (default 6 h = 36 ticks) over which the doses are held; an episode is 14
    days (56 steps). Reward per tick: ``-((1 - healthy fraction) + dose_weight * (antiviral + anti_inflammatory))
    / ticks_per_step`` (``immune_cost``; the division keeps an env step's reward O(1)). The episode terminates
    when the tissue has failed (healthy fraction below ``fatal_healthy_fraction``); at the end of an episode
    ``info["outcome"]`` holds the twin's summary (``recovered``, ``peak_damage``, ``clearance_day``, ...).
    Normalisation divides cell counts and field totals by the number of cells and immune counts by 100.

    Args:
        params: ImmuneTwin parameters (e.g. ``{"width": 31, "height": 31}``).
        dose_weight: Weight of the total dose in the cost.
        ticks_per_step: Ticks per dosing interval.
        episode_steps: Dosing intervals per episode.
        normalize: Scale observations to O(1).
        render_mode: ``None`` or ``"rgb_array"``.
    """

    twin_cls = ImmuneTwin

    def __init__(self, params: dict[str, Any] | None = None, dose_weight: float = 0.1, ticks_per_step: int = 36,
                 episode_steps: int = 56, normalize: bool = True, render_mode: str | None = None) -> None:
        self.dose_weight = float(dose_weight)
        super().__init__(params, ticks_per_step, episode_steps, normalize, render_mode)

    def obs_scale(self) -> np.ndarray:
        p = self.twin.params
        cells = float(p.width * p.height)
        return np.array([cells] * 4 + [100.0] * 3 + [cells] * 3)

    def tick_cost(self, before, after, control) -> float:
        p = self.twin.params
        return immune_cost(after, control, p.width * p.height, self.dose_weight) / self.ticks_per_step

    def _terminated(self) -> bool:
        return self.twin.failed

    def step(self, action):
        obs, reward, terminated, truncated, info = super().step(action)
        if terminated or truncated:
            info["outcome"] = self.twin.summarize(self.twin.trajectory())
        return obs, reward, terminated, truncated, info


class MetabolicEnv(TwinEnv):
    """Substrate feeding of the :class:`~controlkit.twins.MetabolicPathway` (default ``scale=0.05``).

    Reward per tick: ``(R made this tick) / scale - inflow_weight * inflow`` (``metabolic_cost``): yield of the
    desired end product against the substrate spent. Normalisation divides every molecule count by the initial
    number of molecules of all species, and the two enzyme counts by the number of enzymes of one type.

    Args:
        params: MetabolicPathway parameters (default ``{"scale": 0.05}``).
        inflow_weight: Cost of one unit of inflow per tick.
        ticks_per_step: Ticks per env step.
        episode_steps: Env steps per episode.
        normalize: Scale observations to O(1).
        render_mode: ``None`` or ``"rgb_array"``.
    """

    twin_cls = MetabolicPathway

    def __init__(self, params: dict[str, Any] | None = None, inflow_weight: float = 0.01, ticks_per_step: int = 5,
                 episode_steps: int = 200, normalize: bool = True, render_mode: str | None = None) -> None:
        self.inflow_weight = float(inflow_weight)
        super().__init__({"scale": 0.05, **(params or {})}, ticks_per_step, episode_steps, normalize, render_mode)

    def obs_scale(self) -> np.ndarray:
        m = self.twin
        total = max(1.0, float(m.observe()[:5].sum()))
        return np.array([total] * 5 + [max(1.0, m.enz_type.size / 4.0)] * 2)

    def tick_cost(self, before, after, control) -> float:
        return metabolic_cost(before, after, control, self.twin.area_scale, self.inflow_weight)

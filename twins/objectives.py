"""Control tasks on the twins: what is controlled, when, and at what cost.

A :class:`TwinTask` fixes the twin (class + parameters), a burn-in without control, the decision interval (ticks
between two observations of the controller), the horizon in decisions, how a decision becomes per-tick ABM
controls (``pulse``: whole animals removed at the first tick of the interval; ``hold``: the value held for every
tick) and the :class:`Objective`.

Every objective is a weighted sum of named terms averaged over the ticks of the horizon. The term formulas are
written once with operators that numpy arrays and torch tensors share, so the cost the controller is trained on
(through the surrogate, at decision points) is the same formula the ABM is scored with (at every tick).
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from controlkit.core.errors import ControlkitError, choices_error

APPLY_MODES = ("pulse", "hold")


class Objective:
    """A weighted sum of named cost terms of (observables, per-tick control rate).

    Subclasses set :attr:`TWIN`, :attr:`TERMS` (name -> default weight) and implement :meth:`terms`,
    :meth:`outcomes` and :meth:`bang_bang`.

    Args:
        weights: Term name -> weight; unnamed terms keep their default, unknown names raise.
    """

    TWIN: ClassVar[str]
    TERMS: ClassVar[dict[str, float]]

    def __init__(self, weights: Mapping[str, float] | None = None) -> None:
        self.weights = dict(self.TERMS)
        for name, value in (weights or {}).items():
            if name not in self.TERMS:
                raise ControlkitError(f"objective.weights.{name}: unknown term of the {self.TWIN} objective; "
                                      f"valid terms: {', '.join(self.TERMS)}.")
            if not float(value) >= 0:
                raise ControlkitError(f"objective.weights.{name}: must be >= 0, got {value!r}.")
            self.weights[name] = float(value)

    def terms(self, prev: Any, obs: Any, rate: Any) -> dict[str, Any]:
        """Per-tick term values: observables ``prev`` before and ``obs`` after a tick (``(..., n_obs)``), control
        rate ``rate`` ``(..., n_u)``. Over a decision interval, ``obs - prev`` is divided by the interval's ticks
        by the caller, so differences are per tick either way."""
        raise NotImplementedError

    #: The episode cost is the mean over ticks of a per-tick cost (so a gym reward can be paid per step). An
    #: objective of the whole episode (a ratio of sums, a steady-state window) sets this False and overrides
    #: :meth:`episode_terms`.
    PER_TICK: ClassVar[bool] = True

    def cost(self, prev: Any, obs: Any, rate: Any) -> Any:
        """Weighted sum of :meth:`terms` (same shape as ``obs[..., 0]``; numpy or torch)."""
        return sum(self.weights[k] * v for k, v in self.terms(prev, obs, rate).items())

    def episode_terms(self, prev: Any, obs: Any, rate: Any) -> dict[str, Any]:
        """Each term over an episode: ``prev``/``obs`` ``(..., T, n_obs)`` and ``rate`` ``(..., T, n_u)`` give
        values of shape ``(...)`` (numpy or torch). Default: each per-tick term averaged over the ``T`` ticks."""
        return {k: v.mean(-1) for k, v in self.terms(prev, obs, rate).items()}

    def episode_cost(self, prev: Any, obs: Any, rate: Any) -> Any:
        """The episode's cost: the weighted sum of :meth:`episode_terms` (what deployment, the surrogate loss
        and the gym return all score)."""
        return sum(self.weights[k] * v for k, v in self.episode_terms(prev, obs, rate).items())

    def outcomes(self, obs: np.ndarray, controls: np.ndarray) -> dict[str, float]:
        """Outcome numbers of one ABM episode (per-tick observables ``(T + 1, n_obs)`` and controls ``(T, n_u)``)."""
        raise NotImplementedError

    def bang_bang(self, obs: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
        """The bang-bang feedback rule: every control at one of its bounds, switched on the observables."""
        raise NotImplementedError

    @classmethod
    def settings_from_twin(cls, twin: Any) -> dict[str, Any]:
        """Objective settings implied by a twin built from the task's parameters (used where not set)."""
        return {}

    def l1_form(self, nx: int) -> tuple[np.ndarray, np.ndarray, float]:
        """``(goal, state_weights, rate_weight)`` when the cost is ``sum_i q_i |x_i - g_i| + lam sum_j |rate_j|``
        (the form MIP-MPC optimises exactly).

        Raises:
            ControlkitError: the objective has no such form.
        """
        raise ControlkitError(f"methods: mip_mpc needs an objective that is a weighted L1 distance plus an L1 "
                              f"control cost; the {self.TWIN} objective is not.")

    def describe(self) -> dict[str, Any]:
        """JSON-able description (twin, weights and settings)."""
        return {"twin": self.TWIN, "weights": dict(self.weights)}


class PredatorPreyObjective(Objective):
    """Reach and hold a target population pair with little removal effort.

    ``tracking = |sheep - s*| / s* + |wolves - w*| / w*``; ``effort = removals per tick / (s* + w*)``, where
    removals are the counts culled (count mode) or the expected culls ``rate * population`` (fraction mode).

    Args:
        weights: ``tracking`` (default 1) and ``effort`` (default 50).
        target: ``(s*, w*)``.
        fraction: Controls are per-animal removal probabilities rather than counts.
    """

    TWIN = "predator_prey"
    TERMS = {"tracking": 1.0, "effort": 50.0}

    def __init__(self, weights: Mapping[str, float] | None = None, target: tuple[float, float] = (220.0, 35.0),
                 fraction: bool = False) -> None:
        super().__init__(weights)
        if len(target) != 2 or not all(float(t) > 0 for t in target):
            raise ControlkitError(f"objective.target: need two positive populations (sheep, wolves), got {target!r}.")
        self.target = (float(target[0]), float(target[1]))
        self.fraction = fraction

    def terms(self, prev: Any, obs: Any, rate: Any) -> dict[str, Any]:
        s, w = obs[..., 0], obs[..., 1]
        ts, tw = self.target
        removals = rate[..., 0] * s + rate[..., 1] * w if self.fraction else rate[..., 0] + rate[..., 1]
        return {"tracking": abs(s - ts) / ts + abs(w - tw) / tw, "effort": removals / (ts + tw)}

    def outcomes(self, obs: np.ndarray, controls: np.ndarray) -> dict[str, float]:
        half = obs[obs.shape[0] // 2:]
        removed = controls[:, 0] * obs[:-1, 0] + controls[:, 1] * obs[:-1, 1] if self.fraction else controls.sum(1)
        return {
            "mean_sheep_2nd_half": float(half[:, 0].mean()),
            "mean_wolves_2nd_half": float(half[:, 1].mean()),
            "abs_err_sheep_2nd_half": float(np.abs(half[:, 0] - self.target[0]).mean()),
            "abs_err_wolves_2nd_half": float(np.abs(half[:, 1] - self.target[1]).mean()),
            "removed_total": float(removed.sum()),
            "extinct": float(obs[-1, 0] == 0 or obs[-1, 1] == 0),
        }

    def bang_bang(self, obs: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
        # Cull a species at the maximum while it is above its target, not at all otherwise.
        above = np.asarray(obs[:2], dtype=float) > np.asarray(self.target)
        return np.where(above, high, low)

    def l1_form(self, nx: int) -> tuple[np.ndarray, np.ndarray, float]:
        if self.fraction:
            return super().l1_form(nx)  # removals = rate * population is bilinear
        goal, q = np.zeros(nx), np.zeros(nx)
        goal[:2] = self.target
        q[:2] = self.weights["tracking"] / np.asarray(self.target)
        return goal, q, self.weights["effort"] / sum(self.target)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "target": list(self.target), "fraction": self.fraction}


class MetabolicObjective(Objective):
    """Maximise the product R made per substrate fed, with bounded inflow.

    Per tick, in molecules at scale 1 (counts divided by ``scale``): ``product = -(R made)``, ``side_product =
    T made``, ``inflow = S fed`` (the control). With the default weights the cost is ``inflow_weight * S fed -
    R made``, so feeding pays only where it turns into R at a yield above ``inflow_weight`` R per S.

    Args:
        weights: ``product`` (1), ``side_product`` (0), ``inflow`` (0.02).
        scale: The twin's ``scale`` (counts are divided by it).
        s_low: Substrate level (molecules of S at scale 1) below which the bang-bang rule feeds at the maximum.
            The default, 15 000, was the best of 5 000, 15 000 and 40 000 on two seeds outside every experiment's
            evaluation block (fed mode, 40 decisions of 10 ticks).
    """

    TWIN = "metabolic"
    TERMS = {"product": 1.0, "side_product": 0.0, "inflow": 0.02}

    def __init__(self, weights: Mapping[str, float] | None = None, scale: float = 1.0, s_low: float = 15_000.0) -> None:
        super().__init__(weights)
        if not float(scale) > 0:
            raise ControlkitError(f"objective.scale: must be > 0 (the twin's scale), got {scale!r}.")
        if not float(s_low) >= 0:
            raise ControlkitError(f"objective.s_low: must be >= 0 (molecules of S at scale 1), got {s_low!r}.")
        self.scale, self.s_low = float(scale), float(s_low)

    def terms(self, prev: Any, obs: Any, rate: Any) -> dict[str, Any]:
        return {"product": -(obs[..., 3] - prev[..., 3]) / self.scale,
                "side_product": (obs[..., 4] - prev[..., 4]) / self.scale, "inflow": rate[..., 0]}

    def outcomes(self, obs: np.ndarray, controls: np.ndarray) -> dict[str, float]:
        made_r = (obs[-1, 3] - obs[0, 3]) / self.scale
        made_t = (obs[-1, 4] - obs[0, 4]) / self.scale
        fed = float(controls[:, 0].sum())
        return {"R_made": float(made_r), "T_made": float(made_t), "S_fed": fed,
                "R_per_S_fed": float(made_r / fed) if fed > 0 else float("nan"),
                "selectivity_R": float(made_r / (made_r + made_t)) if made_r + made_t > 0 else float("nan")}

    def bang_bang(self, obs: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
        # Keep the substrate stocked: feed at the maximum while S is below s_low, not at all above it. (A rule on
        # the inhibited A enzymes never switched: 0-3 of them are inhibited at any time at the default scales.)
        return np.where(obs[0] / self.scale < self.s_low, high, low)

    @classmethod
    def settings_from_twin(cls, twin: Any) -> dict[str, Any]:
        return {"scale": twin.params.scale}

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "scale": self.scale, "s_low": self.s_low}


class ImmuneObjective(Objective):
    """Minimise tissue damage and time to clearance with little drug.

    Per tick: ``damage = 1 - healthy / cells``; ``infection = infected / cells`` (a differentiable stand-in for
    the time to clearance: every tick with infected cells costs); ``dose = antiviral + anti_inflammatory``.

    Args:
        weights: ``damage`` (1), ``infection`` (5), ``dose`` (0.05).
        cells: Epithelial cells of the grid (``width * height``).
    """

    TWIN = "immune"
    TERMS = {"damage": 1.0, "infection": 5.0, "dose": 0.05}

    def __init__(self, weights: Mapping[str, float] | None = None, cells: int = 51 * 51) -> None:
        super().__init__(weights)
        if not int(cells) > 0:
            raise ControlkitError(f"objective.cells: must be a positive number of grid cells, got {cells!r}.")
        self.cells = int(cells)

    def terms(self, prev: Any, obs: Any, rate: Any) -> dict[str, Any]:
        return {"damage": 1 - obs[..., 0] / self.cells, "infection": obs[..., 1] / self.cells,
                "dose": rate[..., 0] + rate[..., 1]}

    def outcomes(self, obs: np.ndarray, controls: np.ndarray) -> dict[str, float]:
        return {"final_damage": float(1 - obs[-1, 0] / self.cells), "peak_damage": float(1 - obs[:, 0].min() / self.cells),
                "infected_ticks": float(np.count_nonzero(obs[1:, 1] > 0)), "total_dose": float(controls.sum())}

    def bang_bang(self, obs: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
        # Full antiviral while any cell is infected; full anti-inflammatory while pro- exceeds anti-inflammatory.
        return np.array([high[0] if obs[1] > 0 else low[0], high[1] if obs[8] > obs[9] else low[1]])

    def l1_form(self, nx: int) -> tuple[np.ndarray, np.ndarray, float]:
        goal, q = np.zeros(nx), np.zeros(nx)
        goal[0] = self.cells  # |healthy - cells| = cells - healthy
        q[0] = self.weights["damage"] / self.cells
        q[1] = self.weights["infection"] / self.cells
        return goal, q, self.weights["dose"]

    @classmethod
    def settings_from_twin(cls, twin: Any) -> dict[str, Any]:
        return {"cells": twin.params.width * twin.params.height}

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "cells": self.cells}


class SteadyStateObjective(PredatorPreyObjective):
    """J1 of the source paper: the distance of the populations to a target pair at steady state.

    ``steady = ((sheep - s*) / s*)^2 + ((wolves - w*) / w*)^2`` averaged over the last ``window`` fraction of
    the horizon (the steady state of a stochastic ABM is a window average, not one tick), plus an optional
    ``effort`` term as in :class:`PredatorPreyObjective` (weight 0 by default: J1 alone). Registered with the
    ``predator_prey_paper`` twin (:mod:`controlkit.twins.companion`).

    Args:
        weights: ``steady`` (default 1) and ``effort`` (default 0).
        target: ``(s*, w*)`` in the twin's own counts.
        fraction: Controls are per-animal removal probabilities (the companion's culls) rather than counts.
        window: Fraction of the horizon, at its end, over which the steady-state distance is averaged.
    """

    TWIN = "predator_prey_paper"
    TERMS = {"steady": 1.0, "effort": 0.0}
    PER_TICK = False

    def __init__(self, weights: Mapping[str, float] | None = None, target: tuple[float, float] = (445.0, 107.0),
                 fraction: bool = True, window: float = 0.5) -> None:
        super().__init__(weights, target, fraction)
        if not 0 < float(window) <= 1:
            raise ControlkitError(f"objective.window: must lie in (0, 1] (a fraction of the horizon), got {window!r}.")
        self.window = float(window)

    def terms(self, prev: Any, obs: Any, rate: Any) -> dict[str, Any]:
        parts = super().terms(prev, obs, rate)
        ts, tw = self.target
        return {"steady": ((obs[..., 0] - ts) / ts) ** 2 + ((obs[..., 1] - tw) / tw) ** 2,
                "effort": parts["effort"]}

    def episode_terms(self, prev: Any, obs: Any, rate: Any) -> dict[str, Any]:
        per_tick = self.terms(prev, obs, rate)
        n = per_tick["steady"].shape[-1]
        start = min(n - 1, int((1 - self.window) * n))
        return {"steady": per_tick["steady"][..., start:].mean(-1), "effort": per_tick["effort"].mean(-1)}

    def l1_form(self, nx: int) -> tuple[np.ndarray, np.ndarray, float]:
        return Objective.l1_form(self, nx)  # a squared distance: not the L1 form MIP-MPC optimises

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "window": self.window}


class YieldRatioObjective(Objective):
    """J2 of the source paper: the substrate washed out per product washed out, ``sum_t S_t / sum_t (R_t + T_t)``.

    Under dilution every free molecule leaves at the same rate, so this is the companion's ratio of S lost to
    R and T harvested over the run (their ``Met_Pathway_dataset_*_wDil_wFeed.m`` returns it; the dilution rate
    cancels). Lower is better. On the companion's fitted ODE a constant inflow of about 1 S per tick minimises
    it (3.74 against 3.82 without inflow and 4.18 at 3 per tick over 50 000 ticks), so neither bound wins
    trivially. ``inflow`` (weight 0 by default) adds the mean inflow as a cost. Registered with the
    ``metabolic_paper`` twin (:mod:`controlkit.twins.companion`).

    Args:
        weights: ``ratio`` (default 1) and ``inflow`` (default 0).
        scale: The twin's area scale (the bang-bang threshold is in molecules at scale 1).
        s_low: Free S (at scale 1) below which the bang-bang rule feeds at the maximum.
    """

    TWIN = "metabolic_paper"
    TERMS = {"ratio": 1.0, "inflow": 0.0}
    PER_TICK = False

    def __init__(self, weights: Mapping[str, float] | None = None, scale: float = 1.0, s_low: float = 1250.0) -> None:
        super().__init__(weights)
        if not float(scale) > 0:
            raise ControlkitError(f"objective.scale: must be > 0 (the twin's area scale), got {scale!r}.")
        if not float(s_low) >= 0:
            raise ControlkitError(f"objective.s_low: must be >= 0 (molecules of S at scale 1), got {s_low!r}.")
        self.scale, self.s_low = float(scale), float(s_low)

    @staticmethod
    def _ratio(s: Any, products: Any) -> Any:
        return s / (products + 1.0)  # + 1 molecule: an empty pathway gives a large ratio, not a division by 0

    def terms(self, prev: Any, obs: Any, rate: Any) -> dict[str, Any]:
        return {"ratio": self._ratio(obs[..., 0], obs[..., 3] + obs[..., 4]), "inflow": rate[..., 0]}

    def episode_terms(self, prev: Any, obs: Any, rate: Any) -> dict[str, Any]:
        return {"ratio": self._ratio(obs[..., 0].sum(-1), (obs[..., 3] + obs[..., 4]).sum(-1)),
                "inflow": rate[..., 0].mean(-1)}

    def outcomes(self, obs: np.ndarray, controls: np.ndarray) -> dict[str, float]:
        after = obs[1:]
        return {"J2": float(self._ratio(after[:, 0].sum(), (after[:, 3] + after[:, 4]).sum())),
                "S_fed": float(controls[:, 0].sum()),
                "mean_S": float(after[:, 0].mean() / self.scale),
                "mean_R_plus_T": float((after[:, 3] + after[:, 4]).mean() / self.scale)}

    def bang_bang(self, obs: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
        # Hold the free substrate near s_low: feed at the maximum below it, not at all above it.
        return np.where(obs[0] / self.scale < self.s_low, high, low)

    @classmethod
    def settings_from_twin(cls, twin: Any) -> dict[str, Any]:
        return {"scale": twin.area_scale}

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "scale": self.scale, "s_low": self.s_low}


def make_objective(twin: str, weights: Mapping[str, float] | None = None, twin_params: Mapping[str, Any] | None = None,
                   **settings: Any) -> Objective:
    """The objective of ``twin`` with term ``weights`` and objective-specific ``settings`` (e.g. ``target``);
    settings the twin's parameters imply (``scale``, ``cells``) are filled in from ``twin_params``."""
    from controlkit.twins.registry import get_twin

    spec = get_twin(twin)
    cls = spec.objective
    implied = cls.settings_from_twin(spec.model(dict(twin_params or {}), seed=0))
    settings = {**implied, **settings}
    valid = [n for n in inspect.signature(cls).parameters if n != "weights"]
    for key in settings:
        if key not in valid:
            raise ControlkitError(f"objective.{key}: unknown setting of the {twin} objective; valid: "
                                  f"weights, {', '.join(valid)}.")
    return cls(weights, **settings)


@dataclasses.dataclass(frozen=True)
class TwinTask:
    """A twin, its control timing and its objective.

    Attributes:
        twin: Registered twin name (see :func:`controlkit.twins.twin_names`).
        params: Twin parameter overrides.
        objective: The cost.
        burn_in: Ticks without control before the controller starts (the state it starts from varies by seed).
        interval: Ticks between two decisions.
        decisions: Horizon in decisions (``decisions * interval`` ticks under control).
        apply: ``"pulse"``: the decision is applied at the first tick of the interval and 0 afterwards (whole
            animals removed once per interval); ``"hold"``: held for every tick of the interval.
        u_high: Optional tighter upper bounds of the admissible controls (default: the twin's own bounds).
    """

    twin: str
    params: Mapping[str, Any]
    objective: Objective
    burn_in: int = 500
    interval: int = 10
    decisions: int = 30
    apply: str = "pulse"
    u_high: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        from controlkit.twins.registry import get_twin

        name = get_twin(self.twin).name
        if self.objective.TWIN != name:
            raise ControlkitError(f"objective: a {self.objective.TWIN} objective cannot score the {name} twin.")
        if self.apply not in APPLY_MODES:
            raise choices_error("apply", self.apply, APPLY_MODES)
        for name in ("burn_in", "interval", "decisions"):
            v = getattr(self, name)
            if not isinstance(v, (int, np.integer)) or v < (0 if name == "burn_in" else 1):
                raise ControlkitError(f"{name}: must be an integer >= {0 if name == 'burn_in' else 1}, got {v!r}.")
        low, high = self._twin_bounds()
        if self.u_high is not None:
            uh = np.asarray(self.u_high, dtype=float)
            if uh.shape != high.shape or np.any(uh <= low) or np.any(uh > high):
                raise ControlkitError(f"u_high: need {high.size} values in ({low.tolist()}, {high.tolist()}], "
                                      f"got {list(self.u_high)}.")

    def make_twin(self, seed: int, params: Mapping[str, Any] | None = None):
        """A fresh twin with the task's parameters (plus ``params`` overrides, e.g. a perturbation)."""
        from controlkit.twins.registry import get_twin

        return get_twin(self.twin).model({**self.params, **(params or {})}, seed=int(seed))

    def _twin_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        return self.make_twin(0).control_bounds()

    @property
    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """``(low, high)`` of the admissible decision controls."""
        low, high = self._twin_bounds()
        return low, (high if self.u_high is None else np.asarray(self.u_high, dtype=float))

    @property
    def integer(self) -> bool:
        """Controls are whole numbers of agents (the twin's count mode)."""
        return self.params.get("removal") == "count"

    @property
    def ticks(self) -> int:
        """Ticks under control."""
        return self.decisions * self.interval

    def schedule(self, u: np.ndarray) -> np.ndarray:
        """Per-tick ABM controls ``(interval, n_u)`` of one decision ``u``."""
        u = np.asarray(u, dtype=float)
        if self.apply == "hold":
            return np.tile(u, (self.interval, 1))
        out = np.zeros((self.interval, u.size))
        out[0] = u
        return out

    def rate_scale(self) -> float:
        """Factor from a decision to its mean per-tick control rate (``1 / interval`` for pulses)."""
        return 1.0 / self.interval if self.apply == "pulse" else 1.0

    def admissible(self, u: Any) -> np.ndarray:
        """Clip into the admissible box and round when controls are integer."""
        low, high = self.bounds
        u = np.clip(np.asarray(u, dtype=float).reshape(low.shape), low, high)
        return np.round(u) if self.integer else u

    def describe(self) -> dict[str, Any]:
        """JSON-able description."""
        low, high = self.bounds
        return {"twin": self.twin, "params": dict(self.params), "objective": self.objective.describe(),
                "burn_in": self.burn_in, "interval": self.interval, "decisions": self.decisions,
                "apply": self.apply, "u_low": low.tolist(), "u_high": high.tolist(), "integer": self.integer}

"""Machinery every twin shares: parameter resolution, control validation, seeding, ``step``/``run``, data collection.

A twin is a :class:`mesa.Model` whose randomness all flows from Mesa's seeded ``model.rng`` and whose populations
and fields are held in numpy (structure-of-arrays rows for agents, :class:`~mesa.discrete_space.PropertyLayer`
arrays for fields) so that one step is a handful of vectorised operations instead of one Python call per agent.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any, ClassVar

import numpy as np
from controlkit.twins._mesa import DataCollector, PropertyLayer, mesa

from controlkit.core.errors import ControlkitError


@dataclasses.dataclass(frozen=True)
class ControlSpec:
    """One control input of a twin.

    Attributes:
        name: Short identifier (used in error messages, env docs and plots).
        low: Smallest admissible value.
        high: Largest admissible value.
        description: What the control does, with its unit.
    """

    name: str
    low: float
    high: float
    description: str = ""


def resolve_params(cls: type, params: Any, overrides: Mapping[str, Any]) -> Any:
    """Build a frozen parameter dataclass from ``params`` (instance, mapping or None) plus keyword overrides.

    Raises:
        ControlkitError: an unknown parameter name (the message lists the valid ones) or a value that the
            dataclass's ``validate()`` rejects.
    """
    names = [f.name for f in dataclasses.fields(cls)]
    if params is None:
        base: dict[str, Any] = {}
    elif isinstance(params, cls):
        base = dataclasses.asdict(params)
    elif isinstance(params, Mapping):
        base = dict(params)
    else:
        raise ControlkitError(f"params: expected a {cls.__name__} or a mapping, got {type(params).__name__}.")
    base.update(overrides)
    for key in base:
        if key not in names:
            raise ControlkitError(f"params.{key}: unknown parameter of {cls.__name__}; valid: {', '.join(names)}.")
    resolved = cls(**base)
    resolved.validate()
    return resolved


def check_range(field: str, value: float, low: float = -math.inf, high: float = math.inf) -> None:
    """Raise a ControlkitError naming ``field`` unless ``low <= value <= high`` (and finite where bounded)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ControlkitError(f"params.{field}: expected a number, got {value!r}.")
    if not (low <= value <= high) or math.isnan(value):
        raise ControlkitError(f"params.{field}: must lie in [{low}, {high}], got {value!r}.")


def check_int(field: str, value: Any, low: int = 0) -> None:
    """Raise a ControlkitError naming ``field`` unless ``value`` is an integer ``>= low``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ControlkitError(f"params.{field}: must be an integer >= {low}, got {value!r}.")


def group_ranks(groups: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A uniformly random rank ``0..k-1`` of each element among the ``k`` elements sharing its group id.

    This is how the twins replay Mesa's shuffled, one-agent-at-a-time activation without a Python loop: when
    agents in one cell compete for the same resource (sheep for a grass patch, wolves for the sheep on their
    cell, enzymes for substrate molecules), the agent of rank ``r`` in a random order gets the ``r``-th unit, so
    the outcome has exactly the distribution of the sequential update.
    """
    n = groups.shape[0]
    perm = rng.permutation(n)
    order = perm[np.argsort(groups[perm], kind="stable")]
    g = groups[order]
    idx = np.arange(n)
    starts = np.maximum.accumulate(np.where(np.r_[True, g[1:] != g[:-1]] if n else np.zeros(0, bool), idx, 0))
    ranks = np.empty(n, dtype=np.int64)
    ranks[order] = idx - starts
    return ranks


def field_layer(name: str, shape: tuple[int, int], value: float | int = 0.0, dtype=np.float64) -> PropertyLayer:
    """A Mesa PropertyLayer filled with ``value``; twins read and write its ``data`` array in place."""
    return PropertyLayer.from_data(name, np.full(shape, value, dtype=dtype))


def upscale(image: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour enlargement of an ``(H, W, 3)`` image so small grids render at a viewable size."""
    return np.repeat(np.repeat(image, factor, axis=0), factor, axis=1)


class TwinModel(mesa.Model):
    """Base class of the controllable twins.

    Subclasses set :attr:`Params` (a frozen dataclass with a ``validate()`` method) and :attr:`OBSERVABLES`, and
    implement ``_setup()``, ``_controls()``, ``_advance(control)``, ``_observe()``, ``grid_image()`` and
    ``summarize(trajectory)``.

    Args:
        params: A ``Params`` instance or a mapping of parameter overrides (default: all defaults).
        seed: Seed for Mesa's random generators (same seed, same trajectory).
        rng: A numpy Generator or seed-like, as Mesa 3 accepts; give ``seed`` or ``rng``, not both.
        **overrides: Individual parameters by name (take precedence over ``params``).
    """

    Params: ClassVar[type]
    OBSERVABLES: ClassVar[tuple[str, ...]]

    def __init__(self, params: Any = None, *, seed: int | None = None, rng: Any = None, **overrides: Any) -> None:
        if seed is not None and rng is not None:
            raise ControlkitError("seed, rng: give one of them, not both.")
        super().__init__(seed=seed, rng=rng)
        self.params = resolve_params(self.Params, params, overrides)
        self.controls: tuple[ControlSpec, ...] = self._controls()
        self._low = np.array([c.low for c in self.controls], dtype=float)
        self._high = np.array([c.high for c in self.controls], dtype=float)
        self.last_control = np.zeros(len(self.controls))
        self._setup()
        self._obs = self._observe()
        self._initial_obs = self._obs.copy()
        self.datacollector = DataCollector(
            model_reporters={name: partial(_observable, i) for i, name in enumerate(self.OBSERVABLES)}
        )
        self.datacollector.collect(self)

    # -- the public, programmatic API -------------------------------------------------------------------------
    @classmethod
    def observables(cls) -> tuple[str, ...]:
        """Names of the observables, in the column order of :meth:`observe` and :meth:`run`."""
        return cls.OBSERVABLES

    @property
    def control_names(self) -> tuple[str, ...]:
        """Names of the control inputs, in the order :meth:`step` expects them."""
        return tuple(c.name for c in self.controls)

    def control_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """``(low, high)`` arrays of the admissible control values."""
        return self._low.copy(), self._high.copy()

    def observation_scale(self) -> np.ndarray:
        """A fixed magnitude per observable (from the parameters, not the state), so ``observe() / scale`` is O(1);
        the twin gym env and observation models divide by it. Default: the observables at construction, at
        least 1."""
        return np.maximum(np.abs(self._initial_obs), 1.0)

    def observe(self) -> np.ndarray:
        """The current observables as a float array (a copy)."""
        return self._obs.copy()

    def step(self, control: Sequence[float] | np.ndarray | None = None) -> None:  # type: ignore[override]
        """Advance one tick under ``control`` (``None`` = all zeros).

        Mesa wraps ``step`` (to count :attr:`steps`) and drops return values; read the state with :meth:`observe`.

        Raises:
            ControlkitError: wrong shape, NaN, or a value outside :meth:`control_bounds`.
        """
        u = self.check_control(control)
        self.last_control = u
        self._advance(u)
        self._obs = self._observe()
        self.datacollector.collect(self)

    def run(self, controls: Sequence | np.ndarray | None = None, steps: int | None = None) -> np.ndarray:
        """Run a control schedule; return the observables ``(T + 1, n_obs)``, row 0 being the current state.

        Args:
            controls: ``(T, n_controls)`` per-tick controls, or one ``(n_controls,)`` vector held for ``steps``
                ticks, or ``None`` (no control) for ``steps`` ticks.
            steps: Number of ticks when ``controls`` is a single vector or ``None``.
        """
        schedule = self.check_schedule(controls, steps)
        out = np.empty((schedule.shape[0] + 1, len(self.OBSERVABLES)))
        out[0] = self._obs
        for t, u in enumerate(schedule):
            self.step(u)  # Mesa's step wrapper drops return values, so read the state back
            out[t + 1] = self._obs
        return out

    def trajectory(self) -> np.ndarray:
        """Every observable the DataCollector recorded since construction, ``(steps + 1, n_obs)``."""
        data = self.datacollector.model_vars
        return np.column_stack([np.asarray(data[name], dtype=float) for name in self.OBSERVABLES])

    def check_control(self, control: Sequence[float] | np.ndarray | None) -> np.ndarray:
        """Validate one control vector and return it as a float array."""
        n = len(self.controls)
        if control is None:
            return np.zeros(n)
        try:
            u = np.asarray(control, dtype=float)
        except (TypeError, ValueError):
            raise ControlkitError(f"control: expected {n} numbers ({', '.join(self.control_names)}), "
                                  f"got {control!r}.") from None
        if u.ndim == 0 and n == 1:
            u = u.reshape(1)
        if u.shape != (n,):
            raise ControlkitError(f"control: expected shape ({n},) for ({', '.join(self.control_names)}), "
                                  f"got shape {u.shape}.")
        for i, spec in enumerate(self.controls):
            if not math.isfinite(u[i]):
                raise ControlkitError(f"control[{i}] ({spec.name}): must be finite, got {u[i]}.")
            if not spec.low <= u[i] <= spec.high:
                raise ControlkitError(f"control[{i}] ({spec.name}): must lie in [{spec.low}, {spec.high}], "
                                      f"got {u[i]}.")
        return u

    def check_schedule(self, controls: Sequence | np.ndarray | None, steps: int | None) -> np.ndarray:
        """Validate a whole schedule up front (so a bad value at tick 900 fails before tick 1)."""
        n = len(self.controls)
        if controls is None or np.ndim(controls) == 1 or (n == 1 and np.ndim(controls) == 0):
            if steps is None or isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 0:
                raise ControlkitError(f"steps: a non-negative integer is needed with a constant control, got {steps!r}.")
            u = self.check_control(controls)
            return np.tile(u, (int(steps), 1))
        sched = np.asarray(controls, dtype=float)
        if sched.ndim != 2 or sched.shape[1] != n:
            raise ControlkitError(f"controls: expected shape (T, {n}), got {sched.shape}.")
        if steps is not None and steps != sched.shape[0]:
            raise ControlkitError(f"steps: {steps} disagrees with the {sched.shape[0]} rows of controls.")
        for row in sched:
            self.check_control(row)
        return sched

    # -- what subclasses implement ----------------------------------------------------------------------------
    def _setup(self) -> None:
        raise NotImplementedError

    def _controls(self) -> tuple[ControlSpec, ...]:
        raise NotImplementedError

    def _advance(self, control: np.ndarray) -> None:
        raise NotImplementedError

    def _observe(self) -> np.ndarray:
        raise NotImplementedError

    def grid_image(self) -> np.ndarray:
        """An ``(H, W, 3)`` uint8 picture of the space (one pixel per cell)."""
        raise NotImplementedError

    def summarize(self, trajectory: np.ndarray) -> dict[str, float]:
        """Outcome statistics of one trajectory of observables (as returned by :meth:`run`)."""
        raise NotImplementedError


def _observable(index: int, model: TwinModel) -> float:
    return float(model._obs[index])

"""What is measured of a twin: which observables, how noisy, how often, how late.

A controller or a filter of a real patient sees neither the twin's internal counts nor every tick: it sees a few
observables, sampled every ``interval`` ticks, each with multiplicative noise, and each sample arrives ``delay``
ticks after it was taken. :class:`ObservationModel` turns a twin's per-tick trajectory into exactly those
measurements, and scores a prediction against a measurement (the likelihood a particle filter weighs with).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from controlkit.core.errors import ControlkitError


@dataclasses.dataclass(frozen=True)
class ObservationModel:
    """Measured observables, Gaussian noise proportional to the value, sampling interval and delay.

    A measurement of the true value ``x`` is ``y = x + noise * max(x, floor) * e`` with ``e ~ N(0, 1)``,
    truncated at 0 (counts and concentrations are non-negative); ``floor`` keeps a zero count measurable with some
    noise. Samples are taken at ticks ``interval, 2 * interval, ...`` after the start and become available
    ``delay`` ticks later.

    Attributes:
        observables: Names of the measured observables (a subset of the twin's ``observables()``).
        noise: Relative noise standard deviation, one value or one per measured observable.
        interval: Ticks between two samples.
        delay: Ticks between taking a sample and seeing it.
        floor: Smallest value the noise scales with, one value or one per measured observable.
    """

    observables: tuple[str, ...]
    noise: float | tuple[float, ...] = 0.1
    interval: int = 10
    delay: int = 0
    floor: float | tuple[float, ...] = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "observables", tuple(self.observables))
        if not self.observables:
            raise ControlkitError("observation.observables: measure at least one observable.")
        for name in ("noise", "floor"):
            v = np.broadcast_to(np.asarray(getattr(self, name), dtype=float), (len(self.observables),))
            if np.any(~np.isfinite(v)) or np.any(v < 0) or (name == "floor" and np.any(v <= 0)):
                raise ControlkitError(f"observation.{name}: must be {'> 0' if name == 'floor' else '>= 0'} "
                                      f"and finite, got {getattr(self, name)!r}.")
        if isinstance(self.interval, bool) or not isinstance(self.interval, (int, np.integer)) or self.interval < 1:
            raise ControlkitError(f"observation.interval: must be an integer >= 1, got {self.interval!r}.")
        if isinstance(self.delay, bool) or not isinstance(self.delay, (int, np.integer)) or self.delay < 0:
            raise ControlkitError(f"observation.delay: must be an integer >= 0, got {self.delay!r}.")

    def columns(self, twin_observables: Sequence[str]) -> np.ndarray:
        """Indices of the measured observables among a twin's.

        Raises:
            ControlkitError: a measured name the twin does not have (the message lists the twin's).
        """
        names = list(twin_observables)
        for name in self.observables:
            if name not in names:
                raise ControlkitError(f"observation.observables: {name!r} is not an observable of this twin; "
                                      f"valid: {', '.join(names)}.")
        return np.array([names.index(n) for n in self.observables])

    def sample_ticks(self, ticks: int) -> np.ndarray:
        """Ticks (1-based, counted from the start of a trajectory of ``ticks`` ticks) at which samples are taken."""
        return np.arange(self.interval, ticks + 1, self.interval)

    def measure(self, trajectory: np.ndarray, twin_observables: Sequence[str],
                rng: np.random.Generator) -> np.ndarray:
        """Noisy samples ``(n_samples, n_measured)`` of a per-tick trajectory ``(ticks + 1, n_obs)`` (row 0 = start),
        taken at :meth:`sample_ticks`."""
        true = self.true_values(trajectory, twin_observables)
        return self.add_noise(true, rng)

    def true_values(self, trajectory: np.ndarray, twin_observables: Sequence[str]) -> np.ndarray:
        """The noise-free values at the sample ticks ``(n_samples, n_measured)``."""
        trajectory = np.asarray(trajectory, dtype=float)
        return trajectory[self.sample_ticks(trajectory.shape[0] - 1)][:, self.columns(twin_observables)]

    def add_noise(self, true: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """``true`` (``(..., n_measured)``) with this model's noise."""
        sd = self._sd(true)
        return np.maximum(true + sd * rng.standard_normal(np.shape(true)), 0.0)

    def log_likelihood(self, measured: np.ndarray, predicted: np.ndarray) -> np.ndarray:
        """Log-density of ``measured`` (``(n_measured,)``) given each row of noise-free ``predicted``
        (``(n, n_measured)``), up to a constant; truncation at 0 is ignored (it only matters for values near 0)."""
        predicted = np.atleast_2d(np.asarray(predicted, dtype=float))
        sd = self._sd(predicted)
        z = (np.asarray(measured, dtype=float) - predicted) / sd
        return -0.5 * np.sum(z**2, axis=-1) - np.sum(np.log(sd), axis=-1)

    def available(self, sample_tick: int) -> int:
        """The tick at which a sample taken at ``sample_tick`` is seen."""
        return int(sample_tick) + int(self.delay)

    def _sd(self, values: np.ndarray) -> np.ndarray:
        noise = np.asarray(self.noise, dtype=float)
        floor = np.asarray(self.floor, dtype=float)
        sd = noise * np.maximum(np.asarray(values, dtype=float), floor)
        return np.maximum(sd, 1e-9 * floor)  # noise 0: a (numerically) exact measurement

    def describe(self) -> dict:
        """JSON-able description."""
        return {"observables": list(self.observables), "noise": self.noise, "interval": self.interval,
                "delay": self.delay, "floor": self.floor}


__all__ = ["ObservationModel"]

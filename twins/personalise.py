"""Personalising a twin to one patient: calibrate hidden parameters from measured data, update as data arrive, and
choose the control that is best for *this* patient rather than for the population.

The pieces, each callable alone:

- :class:`ParameterPrior`: the population — a uniform box over named twin parameters.
- :func:`pilot_measurements`: run a twin (a patient or a simulation) through the task's uncontrolled burn-in and
  measure it through an :class:`~controlkit.twins.observation.ObservationModel`; what a clinic has before treatment.
- :func:`train_posterior`: amortised simulation-based inference (neural posterior estimation with the ``sbi``
  library) from prior draws and their simulated measurements; ``posterior.sample((n,), x=...)`` then calibrates
  any patient in well under a second.
- :func:`cost_table` and :class:`CostSurface`: the cost of each candidate control on twins drawn from the prior,
  smoothed by a quadratic regression in the parameters, so the expected cost under any distribution of parameters
  (the prior, a patient's posterior, a particle filter's weighted particles) is a mean over its samples.
- :class:`ParticleFilter`: replicate twins with parameters from the posterior, propagated under the applied
  controls and re-weighted by each measurement (sequential importance resampling); the measure → update → re-plan
  loop of :func:`run_filtered_episode` re-plans from its current weights at every decision.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from controlkit.twins.objectives import TwinTask
from controlkit.twins.observation import ObservationModel

from controlkit.core.errors import ControlkitError


@dataclasses.dataclass(frozen=True)
class ParameterPrior:
    """Independent uniform priors over named twin parameters (a patient population).

    Attributes:
        bounds: Parameter name -> ``(low, high)``.
    """

    bounds: Mapping[str, tuple[float, float]]

    def __post_init__(self) -> None:
        if not self.bounds:
            raise ControlkitError("prior: name at least one parameter with its (low, high) range.")
        for name, b in self.bounds.items():
            if len(b) != 2 or not float(b[0]) < float(b[1]):
                raise ControlkitError(f"prior.{name}: need (low, high) with low < high, got {b!r}.")

    @property
    def names(self) -> list[str]:
        """Parameter names, in the column order of :meth:`sample`."""
        return list(self.bounds)

    @property
    def low(self) -> np.ndarray:
        return np.array([float(self.bounds[n][0]) for n in self.names])

    @property
    def high(self) -> np.ndarray:
        return np.array([float(self.bounds[n][1]) for n in self.names])

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``(n, k)`` parameter draws."""
        return rng.uniform(self.low, self.high, size=(n, len(self.names)))

    def params(self, theta: Sequence[float]) -> dict[str, float]:
        """Twin parameter overrides of one draw."""
        return {name: float(v) for name, v in zip(self.names, theta)}

    def check(self, task: TwinTask) -> None:
        """Raise a ControlkitError naming a prior parameter the task's twin lacks or cannot take."""
        base = task.make_twin(0).params
        for name in self.names:
            if not hasattr(base, name):
                raise ControlkitError(f"prior.{name}: not a parameter of the {task.twin} twin.")
        task.make_twin(0, self.params(self.low))
        task.make_twin(0, self.params(self.high))


def pilot_measurements(task: TwinTask, obs: ObservationModel, params: Mapping[str, Any], seed: int):
    """Run a fresh twin (seed ``seed``, parameter overrides ``params``) through the task's burn-in and measure it.

    Only samples already available at the end of the burn-in (taken at least ``obs.delay`` ticks before it) are
    returned. The noise is drawn from a generator seeded by ``seed``, independent of the twin's own stream.

    Returns:
        ``(twin, measured, true)``: the twin at the end of the burn-in, the measured samples ``(n, n_measured)``
        and their noise-free values.
    """
    twin = task.make_twin(seed, params)
    traj = twin.run(None, steps=task.burn_in)
    true = obs.true_values(traj, twin.observables())
    keep = obs.sample_ticks(task.burn_in) + obs.delay <= task.burn_in
    true = true[keep]
    measured = obs.add_noise(true, np.random.default_rng([int(seed), 104729]))
    return twin, measured, true


def features(measured: np.ndarray) -> np.ndarray:
    """The summary of a measured series SBI conditions on: ``log1p`` of every sample, flattened (counts span
    orders of magnitude; the log makes their noise comparable)."""
    return np.log1p(np.asarray(measured, dtype=float)).reshape(-1)


def simulate_feature(task: TwinTask, obs: ObservationModel, prior: ParameterPrior, theta: np.ndarray,
                     seed: int) -> np.ndarray:
    """:func:`features` of the pilot measurements of one prior draw (a module-level task for worker pools)."""
    return features(pilot_measurements(task, obs, prior.params(theta), seed)[1])


def train_posterior(prior: ParameterPrior, thetas: np.ndarray, xs: np.ndarray, seed: int,
                    density_estimator: str = "maf", max_epochs: int = 300):
    """Neural posterior estimation (``sbi.inference.NPE``) on simulated pairs ``(theta, x)``.

    Returns:
        An ``sbi`` posterior: ``.sample((n,), x=x_o)`` and ``.log_prob(theta, x=x_o)`` for any measured ``x_o``.
    """
    import torch

    from controlkit.core.extras import require

    NPE = require("sbi.inference", "train_posterior (simulation-based inference, sbi)").NPE
    from sbi.utils import BoxUniform

    torch.manual_seed(seed)
    box = BoxUniform(low=torch.as_tensor(prior.low, dtype=torch.float32),
                     high=torch.as_tensor(prior.high, dtype=torch.float32))
    inference = NPE(prior=box, density_estimator=density_estimator, show_progress_bars=False, tracker=_NoTracker())
    inference.append_simulations(torch.as_tensor(thetas, dtype=torch.float32),
                                 torch.as_tensor(xs, dtype=torch.float32))
    inference.train(max_num_epochs=max_epochs, training_batch_size=min(100, len(thetas)))
    return inference.build_posterior()


class _NoTracker:
    """An ``sbi`` training tracker that records nothing (the default writes TensorBoard logs into ./sbi-logs of
    whatever folder the user runs from)."""

    log_dir = None

    def log_metric(self, name: str, value: float, step: int | None = None) -> None:
        pass

    def log_metrics(self, metrics: dict, step: int | None = None) -> None:
        pass

    def log_params(self, params: dict) -> None:
        pass

    def add_figure(self, name: str, figure: Any, step: int | None = None) -> None:
        pass

    def flush(self) -> None:
        pass


def posterior_samples(posterior, x: np.ndarray, n: int, seed: int) -> np.ndarray:
    """``(n, k)`` samples of ``posterior`` given the features ``x`` (seeded)."""
    import torch

    torch.manual_seed(seed)
    with torch.no_grad():
        out = posterior.sample((n,), x=torch.as_tensor(x, dtype=torch.float32), show_progress_bars=False)
    return out.numpy().astype(float)


def control_grid(task: TwinTask, levels: int) -> np.ndarray:
    """Constant decisions on a ``levels``-per-control grid over the task's admissible box."""
    low, high = task.bounds
    axes = [np.linspace(lo, hi, levels) for lo, hi in zip(low, high)]
    if task.integer:
        axes = [np.unique(np.round(a)) for a in axes]
    return np.array(list(itertools.product(*axes)))


def constant_cost(task: TwinTask, params: Mapping[str, Any], seed: int, u: np.ndarray) -> float:
    """The task cost of one constant decision on a fresh twin (burn-in included, as every episode)."""
    from controlkit.twins.baselines import ConstantTwinController
    from controlkit.twins.deploy import run_episode

    return run_episode(task, ConstantTwinController(u), seed, params).cost


def cost_table(task: TwinTask, prior: ParameterPrior, thetas: np.ndarray, controls: np.ndarray,
               seeds: Sequence[int], executor: str = "local", workers: int | None = 1) -> np.ndarray:
    """Cost of each constant control on a twin per parameter draw: ``(len(thetas), len(controls))``.

    Draw ``m`` uses seed ``seeds[m]`` for every control (common random numbers).
    """
    from controlkit.core.executors import map_tasks

    args = [(task, prior.params(th), int(s), u) for th, s in zip(thetas, seeds) for u in controls]
    costs = map_tasks(constant_cost, args, executor=executor, workers=workers, desc="cost table")
    return np.asarray(costs, dtype=float).reshape(len(thetas), len(controls))


class CostSurface:
    """Per control, a quadratic regression of the cost on the (prior-normalised) parameters.

    Smooths the replicate noise of :func:`cost_table` so that expected costs under narrow posteriors do not
    hinge on the few table rows that happen to fall inside them.
    """

    def __init__(self, prior: ParameterPrior, thetas: np.ndarray, costs: np.ndarray, ridge: float = 1e-3) -> None:
        self.prior = prior
        z = self._basis(thetas)
        # Ridge-regularised least squares, one column of coefficients per control.
        a = z.T @ z + ridge * np.eye(z.shape[1])
        self.coef = np.linalg.solve(a, z.T @ costs)
        self.residual_sd = float(np.std(costs - z @ self.coef))

    def _basis(self, thetas: np.ndarray) -> np.ndarray:
        t = (np.atleast_2d(thetas) - self.prior.low) / (self.prior.high - self.prior.low) * 2 - 1
        cols = [np.ones(len(t))] + [t[:, i] for i in range(t.shape[1])]
        cols += [t[:, i] * t[:, j] for i in range(t.shape[1]) for j in range(i, t.shape[1])]
        return np.column_stack(cols)

    def predict(self, thetas: np.ndarray) -> np.ndarray:
        """Predicted cost ``(n, n_controls)`` of every control at each parameter row."""
        return self._basis(thetas) @ self.coef

    def best(self, thetas: np.ndarray, weights: np.ndarray | None = None) -> int:
        """Index of the control with the lowest expected cost over ``thetas`` (optionally weighted)."""
        pred = self.predict(thetas)
        w = np.full(len(pred), 1.0 / len(pred)) if weights is None else np.asarray(weights) / np.sum(weights)
        return int(np.argmin(w @ pred))


class ParticleFilter:
    """Sequential importance resampling over replicate twins.

    Each particle is a twin of its own parameters (and random stream); between measurements every particle runs
    the controls the patient received; a measurement re-weights the particles by the observation likelihood of
    their noise-free values, and the set is resampled (systematic resampling, twins deep-copied) when the
    effective sample size falls below half the particles.

    Args:
        twins: The particles' twins, all at the same tick as the patient.
        thetas: Their parameters ``(n, k)``.
        obs: The observation model.
        rng: Generator for resampling.
        log_weights: Initial log-weights (default: equal).
    """

    def __init__(self, twins: list, thetas: np.ndarray, obs: ObservationModel, rng: np.random.Generator,
                 log_weights: np.ndarray | None = None) -> None:
        self.twins, self.thetas, self.obs, self.rng = list(twins), np.asarray(thetas, dtype=float), obs, rng
        self.cols = obs.columns(self.twins[0].observables())
        self.log_w = np.zeros(len(self.twins)) if log_weights is None else np.asarray(log_weights, dtype=float)
        self.resamples = 0

    @property
    def weights(self) -> np.ndarray:
        """Normalised weights."""
        w = np.exp(self.log_w - self.log_w.max())
        return w / w.sum()

    @property
    def ess(self) -> float:
        """Effective sample size ``1 / sum(w^2)``."""
        return float(1.0 / np.sum(self.weights**2))

    def advance(self, schedule: np.ndarray) -> np.ndarray:
        """Run every particle under the per-tick ``schedule``; return their trajectories ``(n, T + 1, n_obs)``."""
        return np.stack([twin.run(schedule) for twin in self.twins])

    def update(self, measured: np.ndarray, predicted: np.ndarray) -> None:
        """Re-weight by one measurement (``predicted``: each particle's noise-free values ``(n, n_measured)``)."""
        self.log_w = self.log_w + self.obs.log_likelihood(measured, predicted)
        if self.ess < len(self.twins) / 2:
            self._resample()

    def _resample(self) -> None:
        n = len(self.twins)
        positions = (self.rng.random() + np.arange(n)) / n
        idx = np.minimum(np.searchsorted(np.cumsum(self.weights), positions), n - 1)
        twins = []
        for i in idx:
            twin = copy.deepcopy(self.twins[i])
            # A copy must not replay its source's randomness: give it its own stream.
            twin.rng = np.random.default_rng(self.rng.integers(2**63))
            twins.append(twin)
        self.twins, self.thetas, self.log_w = twins, self.thetas[idx], np.zeros(n)
        self.resamples += 1

    def mean(self) -> np.ndarray:
        """Weighted mean of the particles' parameters."""
        return self.weights @ self.thetas


def run_filtered_episode(task: TwinTask, patient, pf: ParticleFilter, surface: CostSurface, controls: np.ndarray,
                         noise_rng: np.random.Generator) -> dict[str, Any]:
    """Measure → update → re-plan over the task's horizon, from the end of the burn-in.

    At every decision the controller re-plans (the constant control of lowest expected cost under the filter's
    current weights), applies it to the patient and to every particle, and each sample the observation model
    takes during the interval updates the filter once it is available (samples held back by the delay are used
    at a later decision).

    Returns:
        ``cost`` (the task's objective over the controlled ticks), ``decisions``, the filter's parameter means
        after each decision and its resampling count.
    """
    from controlkit.twins.deploy import score_episode

    cols = pf.cols
    obs_hist, ctrl_hist, decisions, means = [patient.observe()], [], [], []
    pending: list[tuple[int, np.ndarray, np.ndarray]] = []  # (available tick, measured, particles' values)
    for k in range(task.decisions):
        u = task.admissible(controls[surface.best(pf.thetas, pf.weights)])
        sched = task.schedule(u)
        traj = patient.run(sched)
        ptraj = pf.advance(sched)
        start = k * task.interval
        for j in range(1, task.interval + 1):
            if (start + j) % pf.obs.interval == 0:
                measured = pf.obs.add_noise(traj[j, cols], noise_rng)
                pending.append((pf.obs.available(start + j), measured, ptraj[:, j, cols]))
        now = start + task.interval
        for item in [p for p in pending if p[0] <= now]:
            pf.update(item[1], item[2])
            pending.remove(item)
        obs_hist.extend(traj[1:])
        ctrl_hist.append(sched)
        decisions.append(u)
        means.append(pf.mean())
    ep = score_episode(task, -1, np.asarray(obs_hist), np.concatenate(ctrl_hist), np.asarray(decisions), {})
    return {"cost": ep.cost, "decisions": np.asarray(decisions), "param_means": np.asarray(means),
            "resamples": pf.resamples}


__all__ = ["CostSurface", "ParameterPrior", "ParticleFilter", "control_grid", "constant_cost", "cost_table",
           "features", "pilot_measurements", "posterior_samples", "run_filtered_episode", "simulate_feature",
           "train_posterior"]

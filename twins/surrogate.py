"""Differentiable surrogates of a twin's observables under control, fitted to ABM data.

Data: each trajectory is one seed: the burn-in without control, then an *exciting* schedule of decisions
(random piecewise-constant levels or a chirp), observed at every decision point. It is stored as a
:class:`controlkit.models.data.TransitionData` (states = observables at decision points, actions = decisions), so the
toolkit's trajectory split, windows and training loop apply unchanged.

Two surrogates, both mapping (observables, decision) at one decision point to the observables at the next:

- ``discrete``: the toolkit's ReLU dynamics model (:class:`controlkit.models.dynamics.DynamicsModel`, residual), which
  :func:`to_compact` exports for the MILP compiler (MIP-MPC baseline);
- ``ode``: a neural ODE ``dz/dtau = f(z, u)`` on normalised observables, integrated over one decision interval
  (``tau`` in [0, 1]) with a fixed-step solver (RK4 or Euler, ``substeps`` steps per decision) — the metamodel of
  the source paper.

Both are trained by :func:`controlkit.models.dynamics.fit` (one-step plus multi-step rollout loss, early stopping on
held-out seeds).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import numpy as np
import torch
from controlkit.twins.objectives import TwinTask
from pydantic import BaseModel, ConfigDict, Field, PositiveInt
from torch import nn

from controlkit.core.errors import ControlkitError, choices_error
from controlkit.core.executors import map_tasks
from controlkit.models.data import TransitionData
from controlkit.models.dynamics import DynamicsModel, TrainSettings, fit

SURROGATES = ("discrete", "ode")
SOLVERS = ("rk4", "euler")
SCHEDULES = ("piecewise", "chirp")


# -- data ---------------------------------------------------------------------------------------------------------
def exciting_schedule(kind: str, decisions: int, low: np.ndarray, high: np.ndarray, integer: bool,
                      rng: np.random.Generator) -> np.ndarray:
    """An exciting decision schedule ``(decisions, n_u)``.

    ``piecewise``: levels held for 1-6 decisions, each uniform in ``[low, low + a (high - low)]`` with a
    per-trajectory amplitude ``a`` in [0.2, 1] (so small controls are as well covered as large ones).
    ``chirp``: ``low + a (high - low) (1 + sin(phase + 2 pi (f0 k + (f1 - f0) k^2 / (2 D)))) / 2`` per control,
    frequencies sweeping from ``f0`` to ``f1`` (cycles per decision).
    """
    nu = low.size
    amp = rng.uniform(0.2, 1.0, nu)
    if kind == "piecewise":
        out = np.empty((decisions, nu))
        for j in range(nu):
            k = 0
            while k < decisions:
                hold = int(rng.integers(1, 7))
                out[k:k + hold, j] = rng.uniform(0, amp[j])
                k += hold
    elif kind == "chirp":
        k = np.arange(decisions)[:, None]
        f0, f1 = rng.uniform(0.01, 0.1, nu), rng.uniform(0.1, 0.5, nu)
        phase = rng.uniform(0, 2 * np.pi, nu)
        out = amp * 0.5 * (1 + np.sin(phase + 2 * np.pi * (f0 * k + (f1 - f0) * k**2 / (2 * decisions))))
    else:
        raise choices_error("data.schedules", kind, SCHEDULES)
    u = low + out * (high - low)
    return np.round(u) if integer else u


def _trajectory(task: TwinTask, seed: int, kind: str, decisions: int,
                params: Mapping[str, Any] | None = None) -> tuple[np.ndarray, np.ndarray]:
    low, high = task.bounds
    sched = exciting_schedule(kind, decisions, low, high, task.integer, np.random.default_rng([seed, 1]))
    twin = task.make_twin(seed, params)
    if task.burn_in:
        twin.run(None, steps=task.burn_in)
    states = [twin.observe()]
    for u in sched:
        states.append(twin.run(task.schedule(u))[-1])
    return np.asarray(states), sched


def collect_data(task: TwinTask, seeds: Sequence[int], decisions: int | None = None,
                 schedules: Sequence[str] = SCHEDULES, executor: str = "local", workers: int | None = 1,
                 quiet: bool = True, params: Sequence[Mapping[str, Any]] | None = None) -> TransitionData:
    """ABM trajectories under exciting schedules, one per seed (schedules alternate over the seeds).

    Args:
        task: The control task (twin, burn-in, interval, bounds).
        seeds: Twin seeds (also seed the schedules).
        decisions: Decisions per trajectory (default: the task's horizon).
        schedules: Kinds cycled over the seeds.
        executor, workers: Passed to :func:`controlkit.core.executors.map_tasks`.
        quiet: Hide the progress bar.
        params: Twin parameter overrides per trajectory, cycled over the seeds (draws from a parameter
            distribution, e.g. :func:`~controlkit.twins.deploy.perturbed_params` or a posterior), so the
            surrogate learns the dynamics over that distribution; ``None``: the task's parameters.

    The metadata records ``abm_steps`` (ticks simulated, burn-in included) and the seeds.
    """
    decisions = task.decisions if decisions is None else int(decisions)
    for s in schedules:
        if s not in SCHEDULES:
            raise choices_error("data.schedules", s, SCHEDULES)
    args = [(task, int(s), schedules[i % len(schedules)], decisions, params[i % len(params)] if params else None)
            for i, s in enumerate(seeds)]
    out = map_tasks(_trajectory, args, executor=executor, workers=workers, desc="ABM data", quiet=quiet)
    states = np.stack([o[0] for o in out])
    actions = np.stack([o[1] for o in out])
    meta = {"twin": task.twin, "seeds": [int(s) for s in seeds], "decisions": decisions,
            "interval": task.interval, "abm_steps": len(seeds) * (task.burn_in + decisions * task.interval)}
    return TransitionData(states, actions, np.full(len(seeds), decisions), meta)


# -- the neural ODE -----------------------------------------------------------------------------------------------

def tanh_mlp(sizes: Sequence[int], seed: int) -> nn.Sequential:
    """Linear layers with tanh between them, initialised from ``seed`` without touching torch's global stream."""
    layers: list[nn.Module] = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(nn.Linear(a, b))
            if i < len(sizes) - 2:
                layers.append(nn.Tanh())
    return nn.Sequential(*layers)

def _rk4(f: Callable[[torch.Tensor], torch.Tensor], z: torch.Tensor, h: float) -> torch.Tensor:
    k1 = f(z)
    k2 = f(z + 0.5 * h * k1)
    k3 = f(z + 0.5 * h * k2)
    k4 = f(z + h * k3)
    return z + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)


def _euler(f: Callable[[torch.Tensor], torch.Tensor], z: torch.Tensor, h: float) -> torch.Tensor:
    return z + h * f(z)


_STEPPERS = {"rk4": _rk4, "euler": _euler}


class ODESurrogate(nn.Module):
    """Neural ODE on normalised observables; one decision = integrating ``tau`` over [0, 1] in fixed steps.

    The decision is held over the interval, so a fixed-step solver on the decision grid is all the model needs;
    it is written out here rather than called through torchdiffeq's ``odeint`` because at one or two steps per
    decision ``odeint``'s per-call set-up (input checks, solver object, time grid) cost about 60 % on top of the
    network evaluations, and training calls it once per decision of every rollout.

    Offers the interface :func:`controlkit.models.dynamics.fit` trains (``step``, ``rollout``, ``one_step_loss``,
    ``rollout_loss``, ``fit_normalisation``) so both surrogates share one training loop.

    Args:
        nx: Number of observables.
        nu: Number of controls.
        hidden: Hidden layer sizes of ``f`` (tanh, so the vector field is smooth).
        substeps: Solver steps per decision.
        solver: ``"rk4"`` (4 evaluations of ``f`` per step) or ``"euler"`` (1).
        seed: Seeds the weight initialisation.
    """

    def __init__(self, nx: int, nu: int, hidden: Sequence[int] = (64, 64), substeps: int = 1, solver: str = "rk4",
                 seed: int = 0) -> None:
        super().__init__()
        if solver not in _STEPPERS:
            raise choices_error("surrogate.solver", solver, SOLVERS)
        self.nx, self.nu, self.hidden, self.substeps, self.solver = nx, nu, list(hidden), int(substeps), solver
        self.f = tanh_mlp([nx + nu, *self.hidden, nx], seed)
        # Start from a slow vector field so early rollouts do not blow up.
        self.f[-1].weight.data.mul_(0.1)
        self.f[-1].bias.data.zero_()
        for name, size in (("x_mean", nx), ("x_std", nx), ("u_mean", nu), ("u_std", nu)):
            self.register_buffer(name, torch.zeros(size) if "mean" in name else torch.ones(size))

    @property
    def in_std(self) -> torch.Tensor:
        return torch.cat([self.x_std, self.u_std])

    def fit_normalisation(self, data: TransitionData) -> None:
        """Mean and std of observables and decisions in the (training) data."""
        x, u, _ = data.transitions()
        for name, arr in (("x", x), ("u", u)):
            std = arr.std(0)
            getattr(self, f"{name}_mean").copy_(torch.as_tensor(arr.mean(0)))
            getattr(self, f"{name}_std").copy_(torch.as_tensor(np.where(std > 1e-8, std, 1.0)))

    def step(self, x: torch.Tensor, u: torch.Tensor, gates: Any = None) -> torch.Tensor:
        """Observables one decision later (raw units)."""
        z = (x - self.x_mean) / self.x_std
        un = (u - self.u_mean) / self.u_std
        stepper, h = _STEPPERS[self.solver], 1.0 / self.substeps
        for _ in range(self.substeps):
            z = stepper(lambda zz: self.f(torch.cat([zz, un], dim=-1)), z, h)
        return z * self.x_std + self.x_mean

    def rollout(self, x0: torch.Tensor, actions: torch.Tensor, gates: Any = None) -> torch.Tensor:
        """States ``(B, H, nx)`` after each of ``actions`` ``(B, H, nu)``."""
        states, x = [], x0
        for t in range(actions.shape[1]):
            x = self.step(x, actions[:, t])
            states.append(x)
        return torch.stack(states, dim=1)

    def one_step_loss(self, x: torch.Tensor, u: torch.Tensor, xn: torch.Tensor, gates: Any = None) -> torch.Tensor:
        """MSE of the next state in units of each observable's std."""
        return torch.mean(((self.step(x, u) - xn) / self.x_std) ** 2)

    def rollout_loss(self, x0: torch.Tensor, actions: torch.Tensor, targets: torch.Tensor,
                     gates: Any = None) -> torch.Tensor:
        """MSE of the rolled-out states in units of each observable's std."""
        return torch.mean(((self.rollout(x0, actions) - targets) / self.x_std) ** 2)


# -- fitting --------------------------------------------------------------------------------------------------------
class SurrogateSettings(BaseModel):
    """How a surrogate is built and trained (the ``surrogate:`` block of a ``twin_control`` experiment)."""

    model_config = ConfigDict(extra="forbid")

    hidden: list[PositiveInt] = Field(default_factory=lambda: [64, 64], description="Hidden layer sizes.")
    substeps: PositiveInt = Field(1, description="Solver steps per decision (neural ODE only).")
    solver: Literal["rk4", "euler"] = Field("rk4", description="Fixed-step ODE solver (neural ODE only).")
    members: PositiveInt = Field(1, description="Surrogates in the ensemble the controller trains through "
                                                "(controlkit.twins.uncertainty.fit_ensemble); 1: a single one.")
    bootstrap: bool = Field(True, description="Fit each ensemble member on a bootstrap resample of the training "
                                              "trajectories (else all on the same data, different seeds).")
    mechanistic: bool = Field(False, description="Also fit the twin's mechanistic ODE metamodel "
                                                 "(controlkit.twins.mechanistic, the companion's form) by least "
                                                 "squares and report its held-out error beside the neural ones.")
    mechanistic_evaluations: PositiveInt = Field(100, description="Residual evaluations of the mechanistic fit "
                                                                  "(scipy max_nfev).")
    train: TrainSettings = Field(
        default_factory=lambda: TrainSettings(epochs=150, batch_size=128, lr=3e-3, rollout_steps=8,
                                              rollout_weight=1.0, patience=25, eval_steps=15),
        description="Training settings (controlkit.models.dynamics.TrainSettings).")


@dataclasses.dataclass
class SurrogateFit:
    """A fitted surrogate and its held-out errors.

    Attributes:
        kind: ``"discrete"`` or ``"ode"``.
        model: The torch module (``step``/``rollout`` in raw units).
        epochs: Epochs trained.
        val_rmse: Held-out RMSE per observable of open-loop rollouts over the whole data horizon (raw units).
        val_nrmse: ``val_rmse`` divided by each observable's std in the held-out data.
        one_step_nrmse: Held-out one-step RMSE over std, per observable.
        train_time_s: Wall time of the fit.
        train_cpu_s: CPU time of the fit (this process; less inflated than wall time on a loaded machine).
        details: Kind-specific facts of the fit (the mechanistic metamodel's parameters and residuals).
    """

    kind: str
    model: nn.Module
    epochs: int
    val_rmse: list[float]
    val_nrmse: list[float]
    one_step_nrmse: list[float]
    train_time_s: float
    train_cpu_s: float
    details: dict[str, Any] = dataclasses.field(default_factory=dict)

    def report(self) -> dict[str, Any]:
        """Everything but the model and the timings (which are not reproducible)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in ("model", "train_time_s", "train_cpu_s")}


def make_surrogate(kind: str, nx: int, nu: int, settings: SurrogateSettings, seed: int) -> nn.Module:
    """An untrained surrogate of ``kind``."""
    if kind == "discrete":
        return DynamicsModel(nx, nu, settings.hidden, residual=True, seed=seed)
    if kind == "ode":
        return ODESurrogate(nx, nu, settings.hidden, settings.substeps, settings.solver, seed=seed)
    raise choices_error("surrogate.kind", kind, SURROGATES)


@torch.no_grad()
def heldout_errors(model: nn.Module, val: TransitionData) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(rmse, nrmse, one_step_nrmse)`` per observable: open-loop rollouts from each held-out trajectory's start
    over its whole length, and one-step predictions."""
    x0 = torch.as_tensor(val.states[:, 0], dtype=torch.float32)
    acts = torch.as_tensor(val.actions, dtype=torch.float32)
    pred = model.rollout(x0, acts).numpy()
    truth = val.states[:, 1:]
    std = np.where(truth.reshape(-1, val.nx).std(0) > 1e-8, truth.reshape(-1, val.nx).std(0), 1.0)
    rmse = np.sqrt(((pred - truth) ** 2).reshape(-1, val.nx).mean(0))
    x, u, xn = (torch.as_tensor(a, dtype=torch.float32) for a in val.transitions())
    one = np.sqrt(((model.step(x, u).numpy() - xn.numpy()) ** 2).mean(0)) / std
    return rmse, rmse / std, one


def fit_surrogate(kind: str, train: TransitionData, val: TransitionData, settings: SurrogateSettings, seed: int,
                  progress: Callable | None = None) -> SurrogateFit:
    """Build and train a surrogate of ``kind`` on ``train``, early-stopped and scored on held-out ``val``."""
    import time

    t0, c0 = time.perf_counter(), time.process_time()
    model = make_surrogate(kind, train.nx, train.nu, settings, seed)
    model.fit_normalisation(train)
    steps = min(settings.train.eval_steps, int(val.lengths.min()))
    tr = settings.train.model_copy(update={"eval_steps": steps,
                                           "rollout_steps": min(settings.train.rollout_steps, int(train.lengths.min()))})
    result = fit(model, train, val, tr, seed=seed + 1, progress=progress)
    rmse, nrmse, one = heldout_errors(model, val)
    return SurrogateFit(kind, model, result.epochs, rmse.tolist(), nrmse.tolist(), one.tolist(),
                        time.perf_counter() - t0, time.process_time() - c0)


def to_compact(model: DynamicsModel, metadata: dict[str, Any] | None = None):
    """Export a dense discrete surrogate (every hidden neuron ReLU) as a MILP-ready CompactNetwork."""
    from controlkit.models.sparsify import RELU, export_compact

    if not isinstance(model, DynamicsModel):
        raise ControlkitError("surrogate: only the 'discrete' (ReLU) surrogate compiles to a MILP; "
                              f"got {type(model).__name__}.")
    return export_compact(model, [np.full(h, RELU) for h in model.hidden], metadata)


def naive_nrmse(val: TransitionData) -> list[float]:
    """Held-out error of the constant prediction ``x_t = x_0`` (a floor any surrogate should beat)."""
    truth = val.states[:, 1:]
    pred = np.repeat(val.states[:, :1], truth.shape[1], axis=1)
    std = truth.reshape(-1, val.nx).std(0)
    std = np.where(std > 1e-8, std, 1.0)
    return (np.sqrt(((pred - truth) ** 2).reshape(-1, val.nx).mean(0)) / std).tolist()


__all__ = ["SOLVERS", "SURROGATES", "ODESurrogate", "SurrogateFit", "SurrogateSettings", "collect_data", "exciting_schedule",
           "fit_surrogate", "heldout_errors", "make_surrogate", "naive_nrmse", "to_compact"]

"""Mechanistic ODE metamodels of the companion study, fitted to twin data by least squares (scipy).

Fonseca et al. approximate each ABM by an ODE whose form follows the ABM's mechanism and fit its parameters to
averaged ABM runs (their "Case 1"; ``MetPw_Case1_Mech_C.m``, ``SWG_Case1_Mech_I_V.m``). Here the same forms,
written from their equations:

- **Metabolic pathway** (:data:`METABOLIC_FORM`, state S, P, Q, R, T in molecules at scale 1): saturable rate
  laws with competitive product terms, ``F_A = k_A S/K_S / (1 + S/K_S + P/K_P + R/K_R)`` (S -> P, inhibited by
  P and R), ``F_E = k_E P/K / (1 + P/K + Q/K')`` (P -> Q), ``F_I = k_I Q/K / (1 + Q/K + R/K')`` (Q -> R) and
  ``F_O`` (P -> T, a basal and an R-activated branch, inhibited by T); ``dS = u - F_A - D S``,
  ``dP = F_A - F_E - F_O - D P``, ``dQ = F_E - F_I - D Q``, ``dR = F_I - D R``, ``dT = F_O - D T`` with the
  inflow ``u`` (the control) and the twin's dilution ``D`` (known, not fitted). 17 parameters.
- **Predator–prey** (:data:`PREDATOR_PREY_FORM`, state grass, sheep, wolves in the companion's 255×255 world):
  ``dG = a G - b G^2 - c G S``, ``dS = d G S - e S - f S W - u_s S``, ``dW = g S W - h W - u_w W`` with the
  per-animal cull probabilities ``u_s, u_w`` (the controls). 8 parameters.

:func:`fit_mechanistic` starts from the companion's published best fit, fits the log-parameters with
:func:`scipy.optimize.least_squares` to open-loop rollouts over whole training trajectories (residuals in units
of each observable's std, as the neural surrogates are scored), and returns a :class:`MechanisticSurrogate`: a
torch module with the neural surrogates' interface (``step``, ``rollout``), so held-out errors, the neural
controller and open-loop optimisation use it unchanged. Observables outside the ODE state (the pathway's
regulation counts) are held at their last value.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from controlkit.twins.objectives import TwinTask
from torch import nn

from controlkit.core.errors import ControlkitError
from controlkit.models.data import TransitionData


def _metabolic_field(x: Any, u: Any, p: Any, dilution: float) -> list[Any]:
    s, pp, q, r, t = x
    fa = p[0] * s / p[1] / (1 + s / p[1] + pp / p[2] + r / p[3])
    fe = p[4] * pp / p[5] / (1 + pp / p[5] + q / p[6])
    fi = p[7] * q / p[8] / (1 + q / p[8] + r / p[9])
    act = r / p[13]
    fo = (p[10] * pp / p[11] + p[12] * act * pp / p[14]) / (1 + pp / p[11] + t / p[15]
                                                            + act * (1 + pp / p[14] + t / p[16]))
    return [u[0] - fa - dilution * s, fa - fe - fo - dilution * pp, fe - fi - dilution * q, fi - dilution * r,
            fo - dilution * t]


def _predator_prey_field(x: Any, u: Any, p: Any, dilution: float) -> list[Any]:
    g, s, w = x
    return [p[0] * g - p[1] * g * g - p[2] * g * s,
            p[3] * g * s - p[4] * s - p[5] * s * w - u[0] * s,
            p[6] * s * w - p[7] * w - u[1] * w]


@dataclasses.dataclass(frozen=True)
class MechanisticForm:
    """One mechanistic ODE form.

    Attributes:
        name: Short name (reported in summaries).
        field: ``field(state list, control list, parameters, dilution) -> derivative list``; only arithmetic, so
            the same function runs on numpy arrays and torch tensors.
        state: Observable name of each ODE state variable, in the field's order.
        initial: The companion's best-fit parameters (the start of the fit).
        max_step: Largest solver step in ticks (fixed-step RK4; the fastest rates here are ~0.01-0.2 per tick).
    """

    name: str
    field: Callable[..., list[Any]]
    state: tuple[str, ...]
    initial: tuple[float, ...]
    max_step: float


METABOLIC_FORM = MechanisticForm(
    "metabolic_pathway", _metabolic_field, ("S", "P", "Q", "R", "T"),
    (2.64446640558550, 6914.65232751257, 24119.1733356704, 1291.78780305338, 3.34356194466207, 3594.79818496842,
     17601.6585503908, 2.57390072789384, 8489.16090388438, 21221.0908879279, 0.302156187324374, 1568.14536443261,
     8.97847898824731, 351.513289087267, 2323.27749676967, 2.61913653349181e26, 123792.255792294),
    max_step=50.0)
PREDATOR_PREY_FORM = MechanisticForm(
    "predator_prey", _predator_prey_field, ("grass", "sheep", "wolves"),
    (0.209782211319144, 4.50613392290133e-06, 2.38108020743778e-05, 1.27393787122488e-06, 0.00854743569403738,
     1.37641724324446e-05, 1.50182377649022e-05, 0.0633574675792873),
    max_step=5.0)


def form_for(task: TwinTask) -> tuple[MechanisticForm, float, float]:
    """The mechanistic form of a task's twin, the factor from the twin's counts to the form's units, and the
    dilution rate.

    Raises:
        ControlkitError: the twin has no mechanistic form, or its controls do not enter the form.
    """
    from controlkit.twins.metabolic_companion import CompanionPathway
    from controlkit.twins.predator_prey import PredatorPrey

    twin = task.make_twin(0)
    if task.apply != "hold":
        raise ControlkitError("surrogate: the mechanistic metamodel needs controls held over each interval "
                              f"(task.apply: hold), got {task.apply!r}.")
    if isinstance(twin, CompanionPathway):
        return METABOLIC_FORM, 1.0 / twin.area_scale, float(twin.params.dilution)
    if isinstance(twin, PredatorPrey) and twin.params.removal == "fraction":
        from controlkit.twins.companion import COMPANION_SIDE

        return PREDATOR_PREY_FORM, COMPANION_SIDE**2 / (twin.params.width * twin.params.height), 0.0
    raise ControlkitError(f"surrogate: no mechanistic metamodel for the {task.twin} twin; it exists for "
                          "metabolic_paper (the companion's pathway) and predator_prey with removal: fraction "
                          "(e.g. predator_prey_paper).")


def _rk4(field: Callable, z: list, u: list, p: Any, dilution: float, h: float, steps: int, floor: Callable) -> list:
    for _ in range(steps):
        k1 = field(z, u, p, dilution)
        k2 = field([a + 0.5 * h * b for a, b in zip(z, k1)], u, p, dilution)
        k3 = field([a + 0.5 * h * b for a, b in zip(z, k2)], u, p, dilution)
        k4 = field([a + h * b for a, b in zip(z, k3)], u, p, dilution)
        z = [floor(a + h / 6 * (b1 + 2 * b2 + 2 * b3 + b4)) for a, b1, b2, b3, b4 in zip(z, k1, k2, k3, k4)]
    return z


class MechanisticSurrogate(nn.Module):
    """A fitted mechanistic ODE as a surrogate of a twin's observables over one decision interval.

    Args:
        form: The ODE form.
        params: Its parameters (positive).
        columns: Index of each ODE state variable among the twin's observables.
        unit: Factor from the twin's counts to the form's units.
        dilution: Dilution rate of the form (metabolic pathway).
        interval: Ticks per decision (the decision is held over them).
    """

    def __init__(self, form: MechanisticForm, params: np.ndarray, columns: list[int], unit: float,
                 dilution: float, interval: int) -> None:
        super().__init__()
        self.form, self.columns, self.unit, self.dilution = form, list(columns), float(unit), float(dilution)
        self.steps = max(1, math.ceil(interval / form.max_step))
        self.h = interval / self.steps
        # a copy: torch.as_tensor would share the caller's array, and a later fit would overwrite it
        self.register_buffer("params", torch.tensor(np.asarray(params, dtype=float)))

    def step(self, x: torch.Tensor, u: torch.Tensor, gates: Any = None) -> torch.Tensor:
        """Observables one decision later (the twin's units); columns outside the ODE are held."""
        p = self.params.to(x.dtype)
        z = [x[..., c] * self.unit for c in self.columns]
        uu = [u[..., j] for j in range(u.shape[-1])]
        z = _rk4(self.form.field, z, uu, p, self.dilution, self.h, self.steps, lambda a: torch.clamp(a, min=0.0))
        out = x.clone()
        out[..., self.columns] = torch.stack(z, dim=-1) / self.unit
        return out

    def rollout(self, x0: torch.Tensor, actions: torch.Tensor, gates: Any = None) -> torch.Tensor:
        """States ``(B, H, nx)`` after each of ``actions`` ``(B, H, nu)``."""
        states, x = [], x0
        for t in range(actions.shape[1]):
            x = self.step(x, actions[:, t])
            states.append(x)
        return torch.stack(states, dim=1)

    def simulate(self, x0: np.ndarray, actions: np.ndarray, params: np.ndarray | None = None) -> np.ndarray:
        """Numpy open-loop rollout ``(B, H, n_state)`` of the ODE state (form units) from observables ``x0``."""
        p = self.params.numpy() if params is None else params
        z = [np.asarray(x0[:, c], dtype=float) * self.unit for c in self.columns]
        out = []
        for k in range(actions.shape[1]):
            uu = [actions[:, k, j] for j in range(actions.shape[2])]
            z = _rk4(self.form.field, z, uu, p, self.dilution, self.h, self.steps, lambda a: np.maximum(a, 0.0))
            out.append(np.stack(z, axis=-1))
        return np.stack(out, axis=1)


@dataclasses.dataclass
class MechanisticFit:
    """A fitted mechanistic metamodel and how the fit went.

    Attributes:
        model: The surrogate.
        initial_params: The companion's best fit the fit started from.
        params: The fitted parameters.
        initial_cost: Mean squared normalised residual on the training data at the start.
        cost: The same after the fit.
        evaluations: Residual evaluations scipy used.
        fit_time_s: Wall time.
    """

    model: MechanisticSurrogate
    initial_params: list[float]
    params: list[float]
    initial_cost: float
    cost: float
    evaluations: int
    fit_time_s: float


def fit_mechanistic(task: TwinTask, train: TransitionData, observables: tuple[str, ...], max_evaluations: int = 200,
                    fit: bool = True) -> MechanisticFit:
    """Fit the task's mechanistic form to ``train`` by least squares on open-loop rollouts.

    Args:
        task: The control task (its twin picks the form; its interval sets the decision step).
        train: Training trajectories (observables at decision points, decisions).
        observables: The twin's observable names (to find the ODE's columns).
        max_evaluations: Budget of residual evaluations (``max_nfev``; deterministic, unlike a time limit).
        fit: ``False`` keeps the companion's parameters (a reference point).
    """
    from scipy.optimize import least_squares

    t0 = time.perf_counter()
    form, unit, dilution = form_for(task)
    columns = [observables.index(name) for name in form.state]
    p0 = np.asarray(form.initial, dtype=float)
    model = MechanisticSurrogate(form, p0, columns, unit, dilution, task.interval)
    truth = train.states[:, 1:][..., columns] * unit
    std = truth.reshape(-1, len(columns)).std(0)
    std = np.where(std > 1e-8, std, 1.0)
    x0, acts = train.states[:, 0], train.actions

    def residuals(log_p: np.ndarray) -> np.ndarray:
        pred = model.simulate(x0, acts, np.exp(log_p))
        r = ((pred - truth) / std).ravel()
        return np.where(np.isfinite(r), r, 1e3)  # a diverging trial point is a bad fit, not a crash

    start = residuals(np.log(p0))
    if fit:
        result = least_squares(residuals, np.log(p0), method="trf", x_scale=1.0, max_nfev=max_evaluations)
        params, end, nfev = np.exp(result.x), result.fun, int(result.nfev)
    else:
        params, end, nfev = p0, start, 1
    model.params.copy_(torch.as_tensor(params))
    return MechanisticFit(model, list(form.initial), params.tolist(), float(np.mean(start**2)), float(np.mean(end**2)),
                          nfev, time.perf_counter() - t0)


__all__ = ["METABOLIC_FORM", "PREDATOR_PREY_FORM", "MechanisticFit", "MechanisticForm", "MechanisticSurrogate",
           "fit_mechanistic", "form_for"]


def fit_mechanistic_surrogate(task: TwinTask, train: TransitionData, val: TransitionData,
                              max_evaluations: int = 100) -> Any:
    """:func:`fit_mechanistic` scored like the neural surrogates: a
    :class:`~controlkit.twins.surrogate.SurrogateFit` (held-out open-loop errors per observable) whose
    ``details`` report the fit (the form, the companion's and the fitted parameters, the training residual
    before and after, the held-out NRMSE over the ODE's own observables)."""
    from controlkit.twins.surrogate import SurrogateFit, heldout_errors

    c0 = time.process_time()
    observables = task.make_twin(0).observables()
    fit = fit_mechanistic(task, train, observables, max_evaluations)
    rmse, nrmse, one = heldout_errors(fit.model, val)
    cols = fit.model.columns
    details = {"form": fit.model.form.name, "state": list(fit.model.form.state),
               "companion_params": fit.initial_params, "params": fit.params,
               "train_mse_companion_params": fit.initial_cost, "train_mse_fitted": fit.cost,
               "evaluations": fit.evaluations, "modelled_columns": cols,
               "val_nrmse_modelled_mean": float(np.mean(nrmse[cols]))}
    return SurrogateFit("mechanistic", fit.model, fit.evaluations, rmse.tolist(), nrmse.tolist(), one.tolist(),
                        fit.fit_time_s, time.process_time() - c0, details)


__all__ += ["fit_mechanistic_surrogate"]

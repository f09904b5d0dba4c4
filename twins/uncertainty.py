"""Uncertainty that changes decisions: surrogate ensembles, risk measures of replicate costs, a risk-averse loss.

- **Ensembles.** :func:`fit_ensemble` fits ``K`` surrogates of one kind, each on a bootstrap resample of the
  training trajectories (whole seeds drawn with replacement) and from its own initialisation seed, so their
  disagreement measures what the data leave open. :class:`EnsembleSurrogate` steps a batch with the members in
  turn (row ``i`` of ``B`` by member ``floor(i K / B)``), so a controller trained through it sees every member's
  dynamics in every batch.
- **Risk measures.** :func:`cvar` is the mean of the worst ``alpha`` fraction of costs (at least one);
  :func:`risk_summary` reports it next to the mean, with cost quantiles and the probability of failure (a 95 %
  Clopper-Pearson interval) when the episodes report a failure outcome.
- **Risk-averse training.** :func:`risk_loss` is the batch mean (``"mean"``) or a mean-CVaR mixture of the
  batch's rollout costs (``"cvar"``): the controller is then trained mostly on its worst rollouts, across start
  states and ensemble members. The mean term stays in (weight ``1 - cvar_weight``) because the worst rollouts
  alone often carry no gradient (a population already extinct costs the same whatever the control does), and
  pure CVaR descent then stalls.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from controlkit.twins.surrogate import ODESurrogate, SurrogateFit, SurrogateSettings, fit_surrogate
from torch import nn

from controlkit.core.errors import ControlkitError, choices_error
from controlkit.models.data import TransitionData

RISKS = ("mean", "cvar")
# Outcome names that mark a failed replicate (1.0) in the built-in twins: the immune patient not recovered, an
# extinct population.
FAILURE_OUTCOMES = ("failed", "extinct")
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


def check_alpha(alpha: float, field: str = "cvar_alpha") -> float:
    """``alpha`` as a float in (0, 1], or a ControlkitError naming ``field``."""
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 < alpha <= 1:
        raise ControlkitError(f"{field}: the worst fraction of costs CVaR averages, in (0, 1]; got {alpha!r}.")
    return float(alpha)


def cvar(costs: Any, alpha: float = 0.1) -> Any:
    """Mean of the worst (largest) ``ceil(alpha * n)`` costs: a float for numpy input, a tensor (differentiable)
    for a torch tensor."""
    alpha = check_alpha(alpha)
    if isinstance(costs, torch.Tensor):
        k = max(1, math.ceil(alpha * costs.numel()))
        return torch.topk(costs.reshape(-1), k).values.mean()
    x = np.sort(np.asarray(costs, dtype=float).ravel())[::-1]
    if x.size == 0:
        return float("nan")
    return float(x[:max(1, math.ceil(alpha * x.size))].mean())


def risk_loss(costs: torch.Tensor, risk: str = "mean", alpha: float = 0.1, weight: float = 0.5) -> torch.Tensor:
    """The training loss of a batch of rollout costs: their mean (``"mean"``), or
    ``(1 - weight) * mean + weight * CVaR_alpha`` (``"cvar"``; ``weight = 1`` is pure CVaR)."""
    if risk == "mean":
        return costs.mean()
    if risk == "cvar":
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0 <= weight <= 1:
            raise ControlkitError(f"controller.cvar_weight: the CVaR share of the loss, in [0, 1]; got {weight!r}.")
        return (1 - weight) * costs.mean() + weight * cvar(costs, alpha)
    raise choices_error("controller.risk", risk, RISKS)


def failure_flags(outcomes: Sequence[dict[str, float]]) -> tuple[str | None, np.ndarray | None]:
    """``(name, flags)`` of the first outcome of :data:`FAILURE_OUTCOMES` every episode reports; ``(None, None)``
    when the twin reports none."""
    for name in FAILURE_OUTCOMES:
        if outcomes and all(name in o for o in outcomes):
            return name, np.array([float(o[name]) > 0.5 for o in outcomes])
    return None, None


def risk_summary(costs: Sequence[float], outcomes: Sequence[dict[str, float]] | None = None,
                 alpha: float = 0.1) -> dict[str, Any]:
    """Risk statistics of replicate costs: ``cvar`` (mean of the worst ``alpha``), ``var`` (the ``1 - alpha``
    quantile), ``quantiles`` (5, 25, 50, 75, 95 %), and, when the outcomes mark failures, ``failure_probability``
    with its 95 % Clopper-Pearson interval and the outcome it was read from."""
    from scipy.stats import binomtest

    x = np.asarray(costs, dtype=float)
    out: dict[str, Any] = {"alpha": alpha, "cvar": cvar(x, alpha), "var": float(np.quantile(x, 1 - alpha)),
                           "quantiles": {f"p{round(100 * q)}": float(np.quantile(x, q)) for q in QUANTILES}}
    name, flags = failure_flags(list(outcomes or []))
    if flags is not None:
        ci = binomtest(int(flags.sum()), flags.size).proportion_ci(0.95)
        out.update(failure_outcome=name, failure_probability=float(flags.mean()),
                   failure_ci95=[float(ci.low), float(ci.high)])
    return out


class EnsembleSurrogate(nn.Module):
    """``K`` surrogates behind one ``step``/``rollout``: row ``i`` of a batch of ``B`` is stepped by member
    ``floor(i K / B)`` (contiguous blocks), so every member gets an equal share of each batch.

    Args:
        members: Fitted surrogates with ``step(x, u)`` in raw units.
    """

    def __init__(self, members: Sequence[nn.Module]) -> None:
        super().__init__()
        if not members:
            raise ControlkitError("surrogate.members: an ensemble needs at least one member.")
        self.members = nn.ModuleList(members)

    def step(self, x: torch.Tensor, u: torch.Tensor, gates: Any = None) -> torch.Tensor:
        k = len(self.members)
        xs, us = torch.tensor_split(x, k), torch.tensor_split(u, k)
        return torch.cat([m.step(a, b) for m, a, b in zip(self.members, xs, us)])

    rollout = ODESurrogate.rollout  # the same loop over self.step

    @torch.no_grad()
    def disagreement(self, x0: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """Standard deviation across members of open-loop rollouts ``(B, H, nx)`` from the same starts."""
        x = torch.as_tensor(x0, dtype=torch.float32)
        a = torch.as_tensor(actions, dtype=torch.float32)
        preds = torch.stack([m.rollout(x, a) for m in self.members])
        return preds.std(0).numpy()


def bootstrap(data: TransitionData, rng: np.random.Generator) -> TransitionData:
    """A resample of whole trajectories, drawn with replacement (the same number as ``data``)."""
    return data.subset(rng.integers(0, data.n_trajectories, data.n_trajectories))


def fit_ensemble(kind: str, train: TransitionData, val: TransitionData, settings: SurrogateSettings, members: int,
                 seed: int, resample: bool = True) -> list[SurrogateFit]:
    """``members`` surrogates of ``kind``, member ``k`` fitted from initialisation seed ``seed + 1000 k`` on a
    bootstrap resample of ``train`` (or on ``train`` itself with ``resample=False``), each scored on ``val``.

    Member 0 with ``resample=False`` is exactly :func:`~controlkit.twins.surrogate.fit_surrogate` with ``seed``.
    """
    if isinstance(members, bool) or not isinstance(members, int) or members < 1:
        raise ControlkitError(f"surrogate.members: a positive number of surrogates, got {members!r}.")
    streams = np.random.SeedSequence([seed, 4242]).spawn(members)
    fits = []
    for k in range(members):
        data = bootstrap(train, np.random.default_rng(streams[k])) if resample else train
        fits.append(fit_surrogate(kind, data, val, settings, seed=seed + 1000 * k))
    return fits


__all__ = ["FAILURE_OUTCOMES", "QUANTILES", "RISKS", "EnsembleSurrogate", "bootstrap", "check_alpha", "cvar",
           "failure_flags", "fit_ensemble", "risk_loss", "risk_summary"]

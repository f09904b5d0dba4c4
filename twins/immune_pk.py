"""Treatment realism for the immune twin: dose units, one-compartment pharmacokinetics, dose and toxicity limits.

:class:`ImmunePKTwin` is the :class:`~controlkit.twins.ImmuneTwin` (same tissue, cells and fields, registered as
``immune_pk``) with a plasma compartment per drug between the dose and its effect:

- **Dose units.** Each control is an infusion rate as a fraction of the drug's ``*_max_rate`` (mg/h), held for
  the 10-minute tick, so a decision of 0.5 held for 6 hours gives ``0.5 * max_rate * 6`` mg.
- **Pharmacokinetics** (one compartment, first-order elimination): ``dC/dt = R / V - k C`` with infusion rate
  ``R`` (mg/h), volume of distribution ``V`` (L) and ``k = ln 2 / half_life`` (1/h), integrated exactly over
  each tick (the rate is constant within it).
- **Effect through the concentration** (Emax): the drug acts with ``C / (C + EC50)`` of its maximal effect in
  place of the dose fraction of the plain twin, so an infusion takes hours to act and keeps acting after it
  stops.
- **Limits as constraints**: a cumulative dose limit ``*_max_total`` (mg over the run) and a toxicity limit
  ``*_toxic_conc`` (mg/L). The twin is the infusion pump and never breaks either: a tick's infusion is cut to
  the largest rate that keeps the concentration at or below the toxic level at the tick's end (the
  concentration moves monotonically within a tick, so then at every moment of it) and within the dose left.
  Every controller, env and experiment therefore runs inside the limits; the objective still prices the dose
  *requested*, so a controller learns not to ask for what the pump refuses.

Observables: the ImmuneTwin's ten, then ``antiviral_conc`` and ``anti_inflammatory_conc`` (mg/L) and
``antiviral_given`` and ``anti_inflammatory_given`` (cumulative mg), so a controller sees the drug already in the
body and the budget spent. With both limits infinite (the defaults) nothing is ever cut.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
from controlkit.twins._common import ControlSpec, check_range
from controlkit.twins.immune import STEPS_PER_DAY, ImmuneParams, ImmuneTwin
from controlkit.twins.objectives import ImmuneObjective
from controlkit.twins.registry import IMMUNE, TwinSpec

from controlkit.core.errors import ControlkitError

DRUGS = ("antiviral", "anti_inflammatory")
PK_FIELDS = ("max_rate", "volume", "half_life", "ec50", "max_total", "toxic_conc")
TICK_HOURS = 24.0 / STEPS_PER_DAY


def concentration_step(conc: np.ndarray, rate: np.ndarray, volume: np.ndarray, half_life: np.ndarray,
                       hours: float) -> np.ndarray:
    """Plasma concentration (mg/L) after ``hours`` of infusion at ``rate`` (mg/h) from ``conc``: the exact
    solution of ``dC/dt = rate / volume - ln2 / half_life * C``."""
    k = math.log(2.0) / np.asarray(half_life, dtype=float)
    decay = np.exp(-k * hours)
    return conc * decay + rate / (volume * k) * (1.0 - decay)


def admissible_rate(conc: np.ndarray, requested: np.ndarray, volume: np.ndarray, half_life: np.ndarray,
                    hours: float, toxic_conc: np.ndarray, remaining: np.ndarray) -> np.ndarray:
    """The largest infusion rate up to ``requested`` (mg/h) that ends the step at or below ``toxic_conc`` and gives
    at most ``remaining`` mg."""
    k = math.log(2.0) / np.asarray(half_life, dtype=float)
    decay = np.exp(-k * hours)
    gain = (1.0 - decay) / (volume * k)  # concentration per unit rate at the step's end
    with np.errstate(invalid="ignore"):
        toxic_cap = np.where(np.isfinite(toxic_conc), (toxic_conc - conc * decay) / gain, np.inf)
    return np.clip(np.minimum(requested, np.minimum(toxic_cap, remaining / hours)), 0.0, None)


@dataclasses.dataclass(frozen=True)
class ImmunePKParams(ImmuneParams):
    """:class:`~controlkit.twins.ImmuneParams` plus, per drug (``antiviral_*``, ``anti_inflammatory_*``):

    Attributes:
        antiviral_max_rate: Infusion rate (mg/h) of a control of 1.
        antiviral_volume: Volume of distribution (L).
        antiviral_half_life: Elimination half-life (h).
        antiviral_ec50: Plasma concentration (mg/L) of half the maximal effect (``antiviral_efficacy``).
        antiviral_max_total: Cumulative dose limit over the run (mg; ``inf``: none).
        antiviral_toxic_conc: Concentration the plasma level must never exceed (mg/L; ``inf``: none).

    and the same six for ``anti_inflammatory_`` (defaults 1 mg/h, 40 L, 4 h, 0.04 mg/L, no limits; the
    antiviral's are 25 mg/h, 50 L, 6 h, 1 mg/L, no limits).
    """

    antiviral_max_rate: float = 25.0
    antiviral_volume: float = 50.0
    antiviral_half_life: float = 6.0
    antiviral_ec50: float = 1.0
    antiviral_max_total: float = math.inf
    antiviral_toxic_conc: float = math.inf
    anti_inflammatory_max_rate: float = 1.0
    anti_inflammatory_volume: float = 40.0
    anti_inflammatory_half_life: float = 4.0
    anti_inflammatory_ec50: float = 0.04
    anti_inflammatory_max_total: float = math.inf
    anti_inflammatory_toxic_conc: float = math.inf

    def validate(self) -> None:
        """The immune parameters, then every drug parameter: a positive number (the limits may be ``inf``)."""
        super().validate()
        for drug in DRUGS:
            for field in PK_FIELDS:
                name = f"{drug}_{field}"
                value = getattr(self, name)
                check_range(name, value, 0.0, math.inf if field in ("max_total", "toxic_conc") else 1e12)
                if not value > 0:
                    raise ControlkitError(f"params.{name}: must be > 0, got {value!r}.")

    def drug(self, field: str) -> np.ndarray:
        """``(antiviral, anti_inflammatory)`` values of one PK field, e.g. ``drug("half_life")``."""
        return np.array([getattr(self, f"{d}_{field}") for d in DRUGS], dtype=float)


class ImmunePKTwin(ImmuneTwin):
    """The immune twin with plasma pharmacokinetics, dose units and dose/toxicity limits (module docstring).

    Example:
        >>> twin = ImmunePKTwin(seed=0, antiviral_max_total=300.0)
        >>> traj = twin.run([1.0, 0.0], steps=144)           # ask for the maximal antiviral rate for a day
        >>> float(traj[-1, twin.observables().index("antiviral_given")])   # the pump stops at the limit
        300.0
    """

    Params = ImmunePKParams
    OBSERVABLES = (*ImmuneTwin.OBSERVABLES, "antiviral_conc", "anti_inflammatory_conc", "antiviral_given",
                   "anti_inflammatory_given")

    def _controls(self) -> tuple[ControlSpec, ...]:
        p = self.params
        return (ControlSpec("antiviral", 0.0, 1.0, f"antiviral infusion rate (fraction of {p.antiviral_max_rate} "
                                                   "mg/h)"),
                ControlSpec("anti_inflammatory", 0.0, 1.0, "anti-inflammatory infusion rate (fraction of "
                                                           f"{p.anti_inflammatory_max_rate} mg/h)"))

    def _setup(self) -> None:
        super()._setup()
        self.conc = np.zeros(2)            # mg/L
        self.given = np.zeros(2)           # mg so far
        self.cut_ticks = np.zeros(2, int)  # ticks whose infusion the limits cut
        self.peak_conc = np.zeros(2)

    def _drug_effects(self, control: np.ndarray) -> tuple[float, float]:
        p = self.params
        requested = np.asarray(control, dtype=float) * p.drug("max_rate")
        rate = admissible_rate(self.conc, requested, p.drug("volume"), p.drug("half_life"), TICK_HOURS,
                               p.drug("toxic_conc"), p.drug("max_total") - self.given)
        self.cut_ticks += rate < requested * (1 - 1e-9)
        self.conc = concentration_step(self.conc, rate, p.drug("volume"), p.drug("half_life"), TICK_HOURS)
        toxic = p.drug("toxic_conc")
        self.conc = np.minimum(self.conc, toxic)  # rounding only: the rate was chosen to end at or below it
        self.given = np.minimum(self.given + rate * TICK_HOURS, p.drug("max_total"))
        self.peak_conc = np.maximum(self.peak_conc, self.conc)
        effect = self.conc / (self.conc + p.drug("ec50"))
        return float(effect[0]), float(effect[1])

    def _observe(self) -> np.ndarray:
        return np.concatenate([super()._observe(), self.conc, self.given])

    def observation_scale(self) -> np.ndarray:
        """The ImmuneTwin's scales, then the steady-state concentration at the maximal rate and a day's maximal
        dose (mg)."""
        p = self.params
        steady = p.drug("max_rate") * p.drug("half_life") / (p.drug("volume") * math.log(2.0))
        return np.concatenate([super().observation_scale(), steady, p.drug("max_rate") * 24.0])

    def summarize(self, trajectory: np.ndarray) -> dict[str, Any]:
        """The ImmuneTwin's outcomes plus, per drug, the mg given over the trajectory and the peak concentration."""
        out = super().summarize(trajectory)
        n = len(ImmuneTwin.OBSERVABLES)
        for i, drug in enumerate(DRUGS):
            out[f"{drug}_mg"] = float(trajectory[-1, n + 2 + i] - trajectory[0, n + 2 + i])
            out[f"{drug}_peak_conc"] = float(trajectory[:, n + i].max())
        return out


class ImmunePKObjective(ImmuneObjective):
    """The immune objective (damage, infection, dose *requested*) on :class:`ImmunePKTwin`; its outcomes add
    the mg given, the peak concentrations and the share of ticks whose request the limits cut.

    Args:
        weights: ``damage`` (1), ``infection`` (5), ``dose`` (0.05).
        cells: Epithelial cells of the grid.
        max_rate: ``(antiviral, anti_inflammatory)`` mg/h of a control of 1 (to tell delivered from requested).
    """

    TWIN = "immune_pk"

    def __init__(self, weights=None, cells: int = 51 * 51, max_rate: tuple[float, float] = (25.0, 1.0)) -> None:
        super().__init__(weights, cells)
        self.max_rate = np.asarray(max_rate, dtype=float)

    def outcomes(self, obs: np.ndarray, controls: np.ndarray) -> dict[str, float]:
        out = super().outcomes(obs, controls)
        n = len(ImmuneTwin.OBSERVABLES)
        delivered = np.diff(obs[:, n + 2:n + 4], axis=0) / (self.max_rate * TICK_HOURS)
        for i, drug in enumerate(DRUGS):
            out[f"{drug}_mg"] = float(obs[-1, n + 2 + i] - obs[0, n + 2 + i])
            out[f"{drug}_peak_conc"] = float(obs[:, n + i].max())
            out[f"{drug}_cut_share"] = float(np.mean(delivered[:, i] < controls[:, i] - 1e-9))
        return out

    @classmethod
    def settings_from_twin(cls, twin: Any) -> dict[str, Any]:
        return {**super().settings_from_twin(twin), "max_rate": tuple(twin.params.drug("max_rate").tolist())}

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "max_rate": self.max_rate.tolist()}


# The immune twin's control task and measurements (docs/twins/immune_pk.md).
IMMUNE_PK = TwinSpec("immune_pk", ImmunePKTwin, ImmunePKObjective, params=IMMUNE.params, task=IMMUNE.task,
                     observation=IMMUNE.observation)


__all__ = ["DRUGS", "IMMUNE_PK", "ImmunePKObjective", "ImmunePKParams", "ImmunePKTwin", "admissible_rate",
           "concentration_step"]

"""ImmuneTwin: viral infection of lung epithelium with innate immune response, under antiviral and
anti-inflammatory dosing. In the spirit of An & Cockrell's CBIABM (Viruses 2021), reduced to three fields.

One tick is 10 minutes; 14 days are 2016 ticks. Each tick, in this order:

1. **Infection.** A healthy epithelial cell becomes infected with probability ``1 - exp(-infectivity * V)``,
   ``V`` the virus on its cell.
2. **Infected cells** shed ``virus_production * (1 - antiviral_efficacy * antiviral)`` virus, secrete the
   pro-inflammatory cytokine, and die (lysis) with probability ``1 / infected_lifetime``. Healthy cells in
   inflamed tissue die of bystander injury with a probability rising steeply with the local pro-inflammatory
   level (``cytokine_toxicity``).
3. **Immune cells** (macrophages, NK cells, neutrophils; rows of numpy arrays) move one Moore step, up the
   pro-inflammatory gradient with probability ``chemotaxis`` and at random otherwise; then act on their cell:
   macrophages engulf virus and clear dead cells, NK cells and neutrophils kill infected cells, neutrophils
   also damage healthy cells (oxidative burst) in proportion to local inflammation. Activated cells secrete
   cytokines; macrophages also secrete the anti-inflammatory cytokine.
4. **Recruitment** from the blood: Poisson numbers of each type, with a mean saturating in the total
   pro-inflammatory cytokine, enter at cells drawn in proportion to it. Immune cells die at type-specific rates.
5. **Repair.** Macrophages clear dead cells (``dead`` -> ``regrowing``); a regrowing site becomes healthy when
   a healthy neighbour divides into it.
6. **Fields** (virus, pro-inflammatory, anti-inflammatory; Mesa ``PropertyLayer`` arrays) diffuse and decay.

Controls, each in [0, 1] (dose as a fraction of the maximal dose, held for the tick; the gym wrapper holds it
for a 6-hour dosing interval): ``antiviral`` scales viral shedding by ``1 - antiviral_efficacy * dose``;
``anti_inflammatory`` scales pro-inflammatory secretion by ``1 - anti_inflammatory_efficacy * dose`` at the
price of slower clearance (recruitment and killing scaled by ``1 - clearance_penalty * dose``).

Outcome: the patient has **recovered** at the end of the horizon when no infected cell remains, the virus
total is below ``clearance_virus``, and at least ``recovered_healthy_fraction`` of the tissue is healthy; it has
**failed** when the healthy fraction ever drops below ``fatal_healthy_fraction`` or it has not recovered at
the end.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
from controlkit.twins._common import ControlSpec, TwinModel, check_int, check_range, field_layer
from controlkit.twins._fields import diffuse

from controlkit.core.errors import ControlkitError

HEALTHY, INFECTED, DEAD, REGROWING = 0, 1, 2, 3
MACROPHAGE, NK, NEUTROPHIL = 0, 1, 2
IMMUNE_TYPES = ("macrophages", "nk_cells", "neutrophils")
STEPS_PER_DAY = 144  # 10-minute ticks
# Moore neighbourhood plus the own cell (index 0), as (dy, dx).
_MOORE = np.array([[0, 0], [-1, -1], [-1, 0], [-1, 1], [0, -1], [0, 1], [1, -1], [1, 0], [1, 1]])
_VON_NEUMANN = np.array([[-1, 0], [1, 0], [0, -1], [0, 1]])


@dataclasses.dataclass(frozen=True)
class ImmuneParams:
    """Parameters of :class:`ImmuneTwin`; rates are per 10-minute tick, fields in arbitrary units per cell.

    Defaults follow the CBIABM's setting (51x51 epithelium, 10-minute steps, inoculum within its 25-150 range,
    lifetimes of innate cells of hours to days); the rate constants are reasoned, not fitted, and chosen so that
    the untreated baseline sits between clearance and collapse, which is where dosing matters.

    Attributes:
        width: Tissue width in cells (torus).
        height: Tissue height in cells (torus).
        initial_inoculum: Epithelial cells infected at tick 0 (distinct random cells; CBIABM range 25-150).
        resident_macrophages: Tissue-resident macrophages at tick 0 (distinct random cells).
        infectivity: Infection hazard per unit of virus on a healthy cell.
        virus_production: Virus shed per infected cell per tick (untreated).
        infected_lifetime: Mean ticks from infection to lysis (18 h).
        virus_diffusion: Diffusion rate of virus (fraction to each neighbour per tick).
        virus_decay: Fraction of free virus lost per tick (about 4 h half-life).
        cytokine_diffusion: Diffusion rate of both cytokines.
        pro_decay: Fraction of the pro-inflammatory cytokine lost per tick.
        anti_decay: Fraction of the anti-inflammatory cytokine lost per tick.
        pro_infected: Pro-inflammatory secretion of an infected cell per tick.
        pro_dead: Pro-inflammatory (DAMP) release of a dead, uncleared cell per tick.
        pro_immune: Pro-inflammatory secretion of an activated immune cell per tick.
        anti_macrophage: Anti-inflammatory secretion of an activated macrophage per tick.
        anti_half: Anti-inflammatory level at which pro-inflammatory secretion is halved.
        chemotaxis: Probability that an immune cell follows the pro-inflammatory gradient rather than a random step.
        macrophage_uptake: Fraction of the virus on its cell a macrophage engulfs per tick.
        macrophage_clearance: Probability per tick that a macrophage clears the dead cell it stands on.
        nk_kill: Probability per tick that an NK cell kills the infected cell it stands on.
        neutrophil_kill: Probability per tick that a neutrophil kills the infected cell it stands on.
        neutrophil_uptake: Fraction of the virus on its cell a neutrophil removes per tick.
        neutrophil_damage: Probability per tick, at saturating inflammation, that a neutrophil kills the healthy
            cell it stands on (collateral damage).
        damage_half: Local pro-inflammatory level at which collateral damage is half its maximum.
        cytokine_toxicity: Probability per tick, at saturating inflammation, that a healthy cell dies of
            inflammatory (bystander) injury, the damage the anti-inflammatory drug prevents.
        toxicity_half: Local pro-inflammatory level at which the bystander injury is half its maximum (Hill
            coefficient 2: little injury in mild inflammation, much in a cytokine storm).
        recruit_macrophages: Maximal macrophage recruitment per tick.
        recruit_nk: Maximal NK-cell recruitment per tick.
        recruit_neutrophils: Maximal neutrophil recruitment per tick.
        recruit_half: Total pro-inflammatory cytokine at which recruitment is half maximal.
        lifetime_macrophage: Mean lifetime of a recruited macrophage (ticks; 3 days). Residents do not die.
        lifetime_nk: Mean lifetime of an NK cell (ticks; 2 days).
        lifetime_neutrophil: Mean lifetime of a neutrophil (ticks; 1 day).
        max_immune_cells: Cap on recruited cells of all types together (keeps a step bounded).
        regrowth: Probability per tick that a healthy neighbour divides into a regrowing site (scaled by the
            fraction of its 4 neighbours that are healthy).
        antiviral_efficacy: Fraction of viral shedding blocked at full antiviral dose.
        anti_inflammatory_efficacy: Fraction of pro-inflammatory secretion blocked at full anti-inflammatory dose.
        clearance_penalty: Fraction by which a full anti-inflammatory dose slows recruitment and killing.
        clearance_virus: Virus total below which the virus counts as cleared.
        recovered_healthy_fraction: Healthy fraction needed at the end to count as recovered.
        fatal_healthy_fraction: Healthy fraction below which the run has failed (irrecoverable damage).
    """

    width: int = 51
    height: int = 51
    initial_inoculum: int = 75
    resident_macrophages: int = 60
    infectivity: float = 0.02
    virus_production: float = 0.15
    infected_lifetime: float = 108.0
    virus_diffusion: float = 0.15
    virus_decay: float = 0.03
    cytokine_diffusion: float = 0.2
    pro_decay: float = 0.05
    anti_decay: float = 0.02
    pro_infected: float = 0.3
    pro_dead: float = 0.1
    pro_immune: float = 0.1
    anti_macrophage: float = 0.05
    anti_half: float = 2.0
    chemotaxis: float = 0.7
    macrophage_uptake: float = 0.5
    macrophage_clearance: float = 0.3
    nk_kill: float = 0.2
    neutrophil_kill: float = 0.1
    neutrophil_uptake: float = 0.3
    neutrophil_damage: float = 0.02
    damage_half: float = 2.0
    cytokine_toxicity: float = 0.01
    toxicity_half: float = 1.5
    recruit_macrophages: float = 0.3
    recruit_nk: float = 0.5
    recruit_neutrophils: float = 1.0
    recruit_half: float = 200.0
    lifetime_macrophage: float = 432.0
    lifetime_nk: float = 288.0
    lifetime_neutrophil: float = 144.0
    max_immune_cells: int = 2000
    regrowth: float = 0.01
    antiviral_efficacy: float = 0.9
    anti_inflammatory_efficacy: float = 0.8
    clearance_penalty: float = 0.3
    clearance_virus: float = 1.0
    recovered_healthy_fraction: float = 0.6
    fatal_healthy_fraction: float = 0.3

    def validate(self) -> None:
        """Raise a ControlkitError naming the first invalid parameter."""
        check_int("width", self.width, 3)
        check_int("height", self.height, 3)
        cells = self.width * self.height
        for name in ("initial_inoculum", "resident_macrophages"):
            check_int(name, getattr(self, name))
            if getattr(self, name) > cells:
                raise ControlkitError(f"params.{name}: {getattr(self, name)} exceeds the {cells} cells of a "
                                      f"{self.width}x{self.height} tissue; enlarge the grid or lower it.")
        check_int("max_immune_cells", self.max_immune_cells)
        probabilities = ("chemotaxis", "macrophage_uptake", "macrophage_clearance", "nk_kill", "neutrophil_kill",
                         "neutrophil_uptake", "neutrophil_damage", "cytokine_toxicity", "regrowth", "virus_decay",
                         "pro_decay", "anti_decay", "antiviral_efficacy", "anti_inflammatory_efficacy", "clearance_penalty",
                         "recovered_healthy_fraction", "fatal_healthy_fraction")
        for name in probabilities:
            check_range(name, getattr(self, name), 0.0, 1.0)
        for name in ("infected_lifetime", "lifetime_macrophage", "lifetime_nk", "lifetime_neutrophil"):
            check_range(name, getattr(self, name), 1.0)
        positive = ("infectivity", "virus_production", "virus_diffusion", "cytokine_diffusion", "pro_infected",
                    "pro_dead", "pro_immune", "anti_macrophage", "anti_half", "damage_half", "toxicity_half",
                    "recruit_macrophages",
                    "recruit_nk", "recruit_neutrophils", "recruit_half", "clearance_virus")
        for name in positive:
            check_range(name, getattr(self, name), 0.0)
        for name in ("anti_half", "damage_half", "toxicity_half", "recruit_half"):
            if getattr(self, name) <= 0:
                raise ControlkitError(f"params.{name}: must be > 0, got {getattr(self, name)}.")


class ImmuneTwin(TwinModel):
    """Viral infection of a lung epithelium with innate immunity, controlled by two drug doses.

    Controls: ``antiviral`` and ``anti_inflammatory`` doses in [0, 1]. Observables (in this order): epithelial
    cell counts (``healthy``, ``infected``, ``dead``, ``regrowing``), immune cell counts (``macrophages``,
    ``nk_cells``, ``neutrophils``) and field totals (``virus``, ``pro_inflammatory``, ``anti_inflammatory``).

    Example:
        >>> twin = ImmuneTwin(seed=0)
        >>> traj = twin.run([0.5, 0.0], steps=2016)       # half-dose antiviral for 14 days
        >>> twin.summarize(traj)["recovered"] in (0.0, 1.0)
        True
    """

    Params = ImmuneParams
    OBSERVABLES = ("healthy", "infected", "dead", "regrowing", *IMMUNE_TYPES, "virus", "pro_inflammatory",
                   "anti_inflammatory")

    def _controls(self) -> tuple[ControlSpec, ...]:
        return (ControlSpec("antiviral", 0.0, 1.0, "antiviral dose (fraction of the maximal dose)"),
                ControlSpec("anti_inflammatory", 0.0, 1.0, "anti-inflammatory dose (fraction of the maximal dose)"))

    def _setup(self) -> None:
        p = self.params
        shape = (p.height, p.width)
        self.cells = p.width * p.height
        rng = self.rng
        # Epithelial state per cell and the three fields are Mesa PropertyLayers over the tissue.
        self.epithelium = field_layer("epithelium", shape, HEALTHY, np.int8)
        self.epithelium.data.reshape(-1)[rng.choice(self.cells, p.initial_inoculum, replace=False)] = INFECTED
        self.virus = field_layer("virus", shape)
        self.pro = field_layer("pro_inflammatory", shape)
        self.anti = field_layer("anti_inflammatory", shape)
        start = rng.choice(self.cells, p.resident_macrophages, replace=False)
        # Immune cells as rows: type, position, and whether a resident (residents do not die).
        self.kind = np.full(p.resident_macrophages, MACROPHAGE, dtype=np.int8)
        self.y, self.x = (a.astype(np.int64) for a in np.divmod(start, p.width))
        self.resident = np.ones(p.resident_macrophages, dtype=bool)
        self.min_healthy_fraction = self._healthy_fraction()

    # -- one tick -----------------------------------------------------------------------------------------------
    def _advance(self, control: np.ndarray) -> None:
        p = self.params
        rng = self.rng
        antiviral, anti_inflammatory = self._drug_effects(control)
        clearance = 1.0 - p.clearance_penalty * anti_inflammatory
        epi = self.epithelium.data.reshape(-1)
        virus = self.virus.data.reshape(-1)
        pro = self.pro.data.reshape(-1)
        anti = self.anti.data.reshape(-1)
        # Anti-inflammatory cytokine and drug both damp every pro-inflammatory secretion.
        damp = (1.0 - p.anti_inflammatory_efficacy * anti_inflammatory) / (1.0 + anti / p.anti_half)

        # 1. infection
        healthy = epi == HEALTHY
        infect = healthy & (rng.random(self.cells) < -np.expm1(-p.infectivity * virus))
        # 2. shedding, secretion, lysis (cells infected this tick start next tick)
        infected = epi == INFECTED
        virus[infected] += p.virus_production * (1.0 - p.antiviral_efficacy * antiviral)
        pro[infected] += p.pro_infected * damp[infected]
        dead = epi == DEAD
        pro[dead] += p.pro_dead * damp[dead]
        lyse = infected & (rng.random(self.cells) < 1.0 / p.infected_lifetime)
        # bystander injury of healthy cells in inflamed tissue
        pro2 = np.square(pro)
        injured = healthy & ~infect & (rng.random(self.cells) < p.cytokine_toxicity * pro2 / (pro2 + p.toxicity_half ** 2))
        epi[infect] = INFECTED
        epi[lyse | injured] = DEAD

        # 3. immune cells move and act
        self._move()
        flat = self.y * p.width + self.x
        self._act(flat, epi, virus, pro, anti, damp, clearance)

        # 4. recruitment and death of immune cells
        self._turnover(pro, clearance)

        # 5. repair: a healthy neighbour divides into a cleared site
        regrowing = np.flatnonzero(epi == REGROWING)
        if regrowing.size:
            ry, rx = np.divmod(regrowing, p.width)
            grid = self.epithelium.data
            healthy_nb = sum((grid[(ry + dy) % p.height, (rx + dx) % p.width] == HEALTHY) for dy, dx in _VON_NEUMANN)
            epi[regrowing[rng.random(regrowing.size) < p.regrowth * healthy_nb / 4.0]] = HEALTHY

        # 6. fields
        diffuse(self.virus.data, p.virus_diffusion, p.virus_decay)
        diffuse(self.pro.data, p.cytokine_diffusion, p.pro_decay)
        diffuse(self.anti.data, p.cytokine_diffusion, p.anti_decay)
        self.min_healthy_fraction = min(self.min_healthy_fraction, self._healthy_fraction())

    def _drug_effects(self, control: np.ndarray) -> tuple[float, float]:
        """Each drug's effect this tick as a fraction of its maximum: here the dose itself (no pharmacokinetics;
        :class:`~controlkit.twins.immune_pk.ImmunePKTwin` puts a plasma concentration in between)."""
        return control[0], control[1]

    def _move(self) -> None:
        p = self.params
        rng = self.rng
        n = self.kind.size
        # Tiny noise breaks ties (flat fields) at random instead of always towards the first neighbour.
        vals = self.pro.data[(self.y[:, None] + _MOORE[:, 0]) % p.height, (self.x[:, None] + _MOORE[:, 1]) % p.width]
        up = np.argmax(vals + 1e-9 * rng.random(vals.shape), axis=1)
        step = np.where(rng.random(n) < p.chemotaxis, up, rng.integers(1, 9, size=n))
        self.y = (self.y + _MOORE[step, 0]) % p.height
        self.x = (self.x + _MOORE[step, 1]) % p.width

    def _act(self, flat, epi, virus, pro, anti, damp, clearance) -> None:
        p = self.params
        rng = self.rng
        kind = self.kind
        counts = [np.bincount(flat[kind == k], minlength=self.cells) for k in range(3)]
        # Engulfing: each macrophage / neutrophil on a cell removes its fraction of what is left there.
        virus *= (1.0 - p.macrophage_uptake) ** counts[MACROPHAGE] * (1.0 - p.neutrophil_uptake) ** counts[NEUTROPHIL]
        state = epi[flat]
        draw = rng.random(flat.size)
        # A cell dies if any killer on it succeeds; independent draws make the activation order irrelevant.
        kill_p = np.select([kind == NK, kind == NEUTROPHIL], [p.nk_kill, p.neutrophil_kill], 0.0) * clearance
        killed = flat[(state == INFECTED) & (draw < kill_p)]
        local_pro = pro[flat]
        burst = p.neutrophil_damage * local_pro / (local_pro + p.damage_half)
        collateral = flat[(kind == NEUTROPHIL) & (state == HEALTHY) & (draw < burst)]
        cleared = flat[(kind == MACROPHAGE) & (state == DEAD) & (draw < p.macrophage_clearance * clearance)]
        epi[killed] = DEAD
        epi[collateral] = DEAD
        epi[cleared] = REGROWING
        # Cells activated by virus, an infected or a dead cell on their site secrete cytokines.
        active = (virus[flat] > 0.1) | (state == INFECTED) | (state == DEAD)
        pro += np.bincount(flat[active], minlength=self.cells) * p.pro_immune * damp
        anti += np.bincount(flat[active & (kind == MACROPHAGE)], minlength=self.cells) * p.anti_macrophage

    def _turnover(self, pro: np.ndarray, clearance: float) -> None:
        p = self.params
        rng = self.rng
        lifetimes = np.array([p.lifetime_macrophage, p.lifetime_nk, p.lifetime_neutrophil])
        survive = self.resident | (rng.random(self.kind.size) >= 1.0 / lifetimes[self.kind])
        self.kind, self.y, self.x, self.resident = (a[survive] for a in (self.kind, self.y, self.x, self.resident))
        total = float(pro.sum())
        drive = clearance * total / (total + p.recruit_half)
        means = np.array([p.recruit_macrophages, p.recruit_nk, p.recruit_neutrophils]) * drive
        new = rng.poisson(means)
        room = max(0, p.max_immune_cells - int((~self.resident).sum()))
        if new.sum() > room:  # the cap binds: keep the proportions, drop the excess
            new = np.floor(new * room / new.sum()).astype(np.int64)
        n = int(new.sum())
        if n == 0 or total <= 0:
            return
        where = rng.choice(self.cells, n, p=pro / total)
        y, x = np.divmod(where, p.width)
        self.kind = np.concatenate([self.kind, np.repeat(np.arange(3, dtype=np.int8), new)])
        self.y = np.concatenate([self.y, y])
        self.x = np.concatenate([self.x, x])
        self.resident = np.concatenate([self.resident, np.zeros(n, dtype=bool)])

    # -- observation, pictures, outcomes ---------------------------------------------------------------------
    def _healthy_fraction(self) -> float:
        return float(np.count_nonzero(self.epithelium.data == HEALTHY)) / self.cells

    def _observe(self) -> np.ndarray:
        epi = np.bincount(self.epithelium.data.reshape(-1), minlength=4)
        immune = np.bincount(self.kind, minlength=3)
        fields = [self.virus.data.sum(), self.pro.data.sum(), self.anti.data.sum()]
        return np.concatenate([epi, immune, fields]).astype(float)

    def observation_scale(self) -> np.ndarray:
        """Cells of the grid for the four epithelial counts and the three field totals, 100 for immune cells."""
        cells = float(self.params.width * self.params.height)
        return np.array([cells] * 4 + [100.0] * 3 + [cells] * 3)

    @property
    def failed(self) -> bool:
        """Whether the healthy fraction has dropped below ``fatal_healthy_fraction`` at any tick so far."""
        return self.min_healthy_fraction < self.params.fatal_healthy_fraction

    def grid_image(self) -> np.ndarray:
        """Healthy tissue pink, infected red, dead dark grey, regrowing light grey; virus tints blue;
        macrophages yellow, NK cells cyan, neutrophils white."""
        palette = np.array([[236, 170, 170], [200, 30, 30], [60, 60, 60], [190, 190, 190]], dtype=float)
        img = palette[self.epithelium.data]
        tint = np.clip(self.virus.data / 5.0, 0, 1)[..., None]
        img = img * (1 - 0.6 * tint) + np.array([40, 60, 220]) * 0.6 * tint
        colours = np.array([[240, 200, 0], [0, 210, 210], [255, 255, 255]], dtype=float)
        img[self.y, self.x] = colours[self.kind]
        return img.astype(np.uint8)

    def summarize(self, trajectory: np.ndarray) -> dict[str, Any]:
        """Outcome of one trajectory (columns as :meth:`observables`).

        Returns ``recovered`` (1.0/0.0, the criterion in the module docstring), ``failed`` (= not recovered),
        ``fatal_damage`` (the healthy fraction fell below the fatal threshold), peak and final damage (1 - healthy
        fraction), ``clearance_day`` (first day with no infected cell and the virus below ``clearance_virus``;
        NaN if never) and the peak virus total.
        """
        p = self.params
        cells = p.width * p.height
        healthy = trajectory[:, 0] / cells
        cleared = (trajectory[:, 1] == 0) & (trajectory[:, 7] < p.clearance_virus)
        fatal = bool(healthy.min() < p.fatal_healthy_fraction)
        recovered = bool(cleared[-1] and healthy[-1] >= p.recovered_healthy_fraction and not fatal)
        first = np.flatnonzero(cleared)
        return {
            "recovered": float(recovered),
            "failed": float(not recovered),
            "fatal_damage": float(fatal),
            "peak_damage": float(1.0 - healthy.min()),
            "final_damage": float(1.0 - healthy[-1]),
            "clearance_day": float(first[0] / STEPS_PER_DAY) if first.size else float("nan"),
            "peak_virus": float(trajectory[:, 7].max()),
        }

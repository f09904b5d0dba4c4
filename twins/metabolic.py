"""MetabolicPathway: the regulated pathway S -> P -> Q -> R, P -> T as molecules and enzymes on a torus.

The pathway of the companion surrogate-control paper: enzyme A turns S into P, E turns P into Q, I turns Q into R,
and O diverts P into the side product T. The end product R regulates the pathway: it binds A and inhibits it
(feedback inhibition) and binds O and activates it (feed-forward diversion to T).

Space is a continuous torus divided into unit cells (100 x 100 at ``scale=1``). Each tick, in this order:

1. **Inflow.** ``Poisson(inflow * scale)`` new S molecules appear at uniform random positions (the control).
2. **Motion.** Molecules move ``molecule_speed`` (1.0) and enzymes ``enzyme_speed`` (0.1) in a uniformly random
   direction (integer degrees, as NetLogo's ``rt random 360``).
3. **Complexes resolve.** An enzyme holding a substrate converts it and releases the product with probability
   ``p_react``, or releases the substrate unchanged with probability ``p_release``.
4. **Regulation.** An A or O carrying an R releases it with probability ``p_unbind_r``; a free A (no substrate)
   or an O without R binds an R of its cell with probability ``p_bind_r``. A with R bound cannot bind S; O binds
   P at ``o_basal`` times the normal rate until activated by R.
5. **Binding.** A free enzyme binds one of its substrate molecules in its cell with probability ``p_bind``.

Competition for the same molecules (E and O for P, A and O for R, several enzymes of one cell) is resolved by a
random matching (:func:`~controlkit.twins._common.group_ranks`), exactly as shuffled sequential activation
would. Molecules and enzymes are rows of numpy arrays; a molecule bound in a complex is held by its enzyme.
Without inflow the number of molecules (free + bound) is conserved.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
from controlkit.twins._common import ControlSpec, TwinModel, check_int, check_range, field_layer, group_ranks

from controlkit.core.errors import ControlkitError

SPECIES = ("S", "P", "Q", "R", "T")
S, P, Q, R, T = range(5)
ENZYMES = ("A", "E", "I", "O")
A, E, I, O = range(4)  # noqa: E741  (the enzyme names of the published pathway)
HOLE = -1  # species code of an empty molecule row
SUBSTRATE = np.array([S, P, Q, P])  # what each enzyme binds
PRODUCT = np.array([P, Q, R, T])  # what it makes of it
REFERENCE_SIDE = 100  # torus side at scale 1
_DIRECTIONS = np.column_stack([np.cos(np.radians(np.arange(360))), np.sin(np.radians(np.arange(360)))])


def check_pathway_basics(params: Any) -> None:
    """Check what every pathway twin's parameters share: scale, initial counts, speeds and the inflow bound."""
    check_range("scale", params.scale, 0.0, 1.0)
    if params.scale <= 0:
        raise ControlkitError(f"params.scale: must be in (0, 1], got {params.scale}.")
    for name in ("initial_S", "initial_P", "initial_Q", "initial_R", "initial_T", "enzymes_each"):
        check_int(name, getattr(params, name))
    for name in ("molecule_speed", "enzyme_speed", "max_inflow"):
        check_range(name, getattr(params, name), 0.0)


@dataclasses.dataclass(frozen=True)
class MetabolicParams:
    """Parameters of :class:`MetabolicPathway`.

    Initial counts and speeds are the published ones (100 x 100 torus; S 80 000, P 20 000, Q 20 000, R 10, T 10;
    200 of each enzyme; molecules move 1.0 and enzymes 0.1 per tick). The per-tick reaction probabilities are
    reasoned (a few to tens of percent, as in NetLogo's enzyme-kinetics models), not taken from the paper.

    Attributes:
        scale: Shrinks the torus area and every initial count by this factor (densities, hence per-molecule
            kinetics, are preserved; the side is rounded to whole cells). 1.0 = the published system.
        initial_S: Initial S molecules at scale 1.
        initial_P: Initial P molecules at scale 1.
        initial_Q: Initial Q molecules at scale 1.
        initial_R: Initial R molecules at scale 1.
        initial_T: Initial T molecules at scale 1.
        enzymes_each: Molecules of each enzyme (A, E, I, O) at scale 1.
        molecule_speed: Distance a molecule moves per tick.
        enzyme_speed: Distance an enzyme moves per tick.
        p_bind: Probability per tick that a free enzyme binds a substrate molecule of its cell.
        p_react: Probability per tick that a complex converts its substrate and releases the product.
        p_release: Probability per tick that a complex releases its substrate unchanged.
        p_bind_r: Probability per tick that a free A or an unactivated O binds an R of its cell.
        p_unbind_r: Probability per tick that a bound R comes off its A or O.
        o_basal: Binding rate of O without R, as a fraction of ``p_bind``.
        max_inflow: Upper bound of the inflow control (S molecules per tick at scale 1).
    """

    scale: float = 1.0
    initial_S: int = 80_000
    initial_P: int = 20_000
    initial_Q: int = 20_000
    initial_R: int = 10
    initial_T: int = 10
    enzymes_each: int = 200
    molecule_speed: float = 1.0
    enzyme_speed: float = 0.1
    p_bind: float = 0.5
    p_react: float = 0.2
    p_release: float = 0.05
    p_bind_r: float = 0.05
    p_unbind_r: float = 0.05
    o_basal: float = 0.1
    max_inflow: float = 1000.0

    def validate(self) -> None:
        """Raise a ControlkitError naming the first invalid parameter."""
        check_pathway_basics(self)
        for name in ("p_bind", "p_react", "p_release", "p_bind_r", "p_unbind_r", "o_basal"):
            check_range(name, getattr(self, name), 0.0, 1.0)
        if self.p_react + self.p_release > 1.0:
            raise ControlkitError(f"params.p_react + p_release: must not exceed 1, got "
                                  f"{self.p_react} + {self.p_release}.")


class MetabolicPathway(TwinModel):
    """The regulated pathway S -> P -> Q -> R, P -> T, controlled by the substrate inflow.

    Control: ``inflow``, mean S molecules added per tick at scale 1 (the twin adds ``Poisson(inflow * scale)``).
    Observables: total molecules of ``S, P, Q, R, T`` (free and bound), and ``A_inhibited`` / ``O_activated``
    (enzymes carrying an R).

    Example:
        >>> twin = MetabolicPathway(seed=0, scale=0.05)
        >>> traj = twin.run([20.0], steps=200)
        >>> twin.observables()[:5]
        ('S', 'P', 'Q', 'R', 'T')
    """

    Params = MetabolicParams
    OBSERVABLES = (*SPECIES, "A_inhibited", "O_activated")

    def _controls(self) -> tuple[ControlSpec, ...]:
        return (ControlSpec("inflow", 0.0, float(self.params.max_inflow),
                            "mean S molecules added per tick at scale 1"),)

    def _setup(self) -> None:
        p = self.params
        rng = self.rng
        self.side = max(2, round(REFERENCE_SIDE * math.sqrt(p.scale)))
        area = (self.side / REFERENCE_SIDE) ** 2  # the realised scale, after rounding the side
        counts = [round(n * area) for n in (p.initial_S, p.initial_P, p.initial_Q, p.initial_R, p.initial_T)]
        self.area_scale = area
        # Molecule rows: species (HOLE marks a free slot left by a molecule that was bound, refilled by the next
        # molecule released or added, so the big arrays are never compacted), position, cell.
        self.mol_type = np.repeat(np.arange(5, dtype=np.int8), counts)
        self.mol_xy = (rng.random((self.mol_type.size, 2)) * self.side).astype(np.float32)
        n_enz = round(p.enzymes_each * area)
        self.enz_type = np.repeat(np.arange(4, dtype=np.int8), n_enz)
        self.enz_xy = (rng.random((self.enz_type.size, 2)) * self.side).astype(np.float32)
        self.mol_cell = self._cells(self.mol_xy)
        self.enz_cell = self._cells(self.enz_xy)
        self._mol_steps = (p.molecule_speed * _DIRECTIONS).astype(np.float32)
        self._enz_steps = (p.enzyme_speed * _DIRECTIONS).astype(np.float32)
        self.cargo = np.full(self.enz_type.size, -1, dtype=np.int8)  # substrate held in a complex, -1 = none
        self.regulated = np.zeros(self.enz_type.size, dtype=bool)  # an R is bound (A inhibited / O activated)
        self.added = 0  # S molecules that flowed in during the last tick
        self.produced = np.zeros(5, dtype=np.int64)  # molecules of each species made by reactions, cumulative
        # Molecules per unit cell, refreshed each tick: a Mesa PropertyLayer for pictures and analysis.
        self.density = field_layer("molecules", (self.side, self.side), 0, np.int64)
        self._update_density()

    # -- one tick -----------------------------------------------------------------------------------------------
    def _advance(self, control: np.ndarray) -> None:
        p = self.params
        rng = self.rng
        self.added = int(rng.poisson(control[0] * self.area_scale)) if control[0] > 0 else 0
        if self.added:
            self._add(np.full(self.added, S, np.int8), rng.random((self.added, 2)) * self.side)
        self._move(self.mol_xy, self._mol_steps)
        self._move(self.enz_xy, self._enz_steps)
        self.mol_cell = self._cells(self.mol_xy)
        self.enz_cell = self._cells(self.enz_xy)
        self._resolve_complexes()
        self._regulate()
        bind_p = np.full(self.enz_type.size, p.p_bind)
        bind_p[(self.enz_type == O) & ~self.regulated] *= p.o_basal
        free = (self.cargo < 0) & ~((self.enz_type == A) & self.regulated)
        # E and O compete for P: which of them picks first is random each tick, so neither is favoured.
        order = [A, I, *(rng.permutation([E, O]))]
        for k in order:
            chosen = np.flatnonzero(free & (self.enz_type == k))
            enz, mol = self._match(chosen, bind_p[chosen], SUBSTRATE[k])
            self.cargo[enz] = SUBSTRATE[k]
            self._remove(mol)
        self._update_density()

    def _move(self, xy: np.ndarray, steps: np.ndarray) -> None:
        """Move every row by one of the 360 precomputed ``steps`` (one per integer heading), in place."""
        if xy.shape[0]:
            xy += steps[self.rng.integers(360, size=xy.shape[0], dtype=np.int16)]
            np.mod(xy, np.float32(self.side), out=xy)

    def _cells(self, xy: np.ndarray) -> np.ndarray:
        # min() guards the float wrap-around (x % side can round up to side itself).
        ij = np.minimum(xy.astype(np.int64), self.side - 1)
        return ij[:, 1] * self.side + ij[:, 0]

    def _resolve_complexes(self) -> None:
        p = self.params
        busy = np.flatnonzero(self.cargo >= 0)
        draw = self.rng.random(busy.size)
        react, release = busy[draw < p.p_react], busy[(draw >= p.p_react) & (draw < p.p_react + p.p_release)]
        products = PRODUCT[self.enz_type[react]].astype(np.int8)
        np.add.at(self.produced, products, 1)
        self._add(np.concatenate([products, self.cargo[release]]),
                  np.concatenate([self.enz_xy[react], self.enz_xy[release]]))
        self.cargo[react] = -1
        self.cargo[release] = -1

    def _regulate(self) -> None:
        p = self.params
        rng = self.rng
        regulators = (self.enz_type == A) | (self.enz_type == O)
        off = np.flatnonzero(regulators & self.regulated & (rng.random(self.enz_type.size) < p.p_unbind_r))
        self.regulated[off] = False
        self._add(np.full(off.size, R, np.int8), self.enz_xy[off])
        # A can take an R only while it holds no substrate; A and O compete for R on equal terms.
        chosen = np.flatnonzero(regulators & ~self.regulated & ((self.enz_type == O) | (self.cargo < 0)))
        enz, mol = self._match(chosen, np.full(chosen.size, p.p_bind_r), R)
        self.regulated[enz] = True
        self._remove(mol)

    def _match(self, enzymes: np.ndarray, prob: np.ndarray, species: int) -> tuple[np.ndarray, np.ndarray]:
        """Pair binding enzymes with distinct molecules of ``species`` in their cells, uniformly at random."""
        rng = self.rng
        trying = enzymes[rng.random(enzymes.size) < prob]
        if trying.size == 0:
            return trying, trying
        ecell = self.enz_cell[trying]
        ncells = self.side * self.side
        wanted = np.bincount(ecell, minlength=ncells)
        cand = np.flatnonzero(self.mol_type == species)
        cand = cand[wanted[self.mol_cell[cand]] > 0]
        mcell = self.mol_cell[cand]
        supply = np.bincount(mcell, minlength=ncells)
        erank = group_ranks(ecell, rng)
        mrank = group_ranks(mcell, rng)
        ok_e = erank < supply[ecell]
        ok_m = mrank < wanted[mcell]
        # The enzyme of rank r in a cell takes the molecule of rank r there: sort both by (cell, rank) and pair.
        e_sel, m_sel = trying[ok_e], cand[ok_m]
        e_key = ecell[ok_e] * (ncells + 1) + erank[ok_e]
        m_key = mcell[ok_m] * (ncells + 1) + mrank[ok_m]
        return e_sel[np.argsort(e_key)], m_sel[np.argsort(m_key)]

    def _add(self, types: np.ndarray, xy: np.ndarray) -> None:
        if not types.size:
            return
        xy = xy.astype(np.float32)
        cells = self._cells(xy)
        holes = np.flatnonzero(self.mol_type == HOLE)[: types.size]
        k = holes.size
        self.mol_type[holes], self.mol_xy[holes], self.mol_cell[holes] = types[:k], xy[:k], cells[:k]
        if k < types.size:
            self.mol_type = np.concatenate([self.mol_type, types[k:].astype(np.int8)])
            self.mol_xy = np.concatenate([self.mol_xy, xy[k:]])
            self.mol_cell = np.concatenate([self.mol_cell, cells[k:]])

    def _remove(self, rows: np.ndarray) -> None:
        self.mol_type[rows] = HOLE

    @property
    def free_molecules(self) -> np.ndarray:
        """Row indices of the free (unbound) molecules."""
        return np.flatnonzero(self.mol_type != HOLE)

    def _update_density(self) -> None:
        cells = self.mol_cell[self.mol_type != HOLE]
        self.density.data[:] = np.bincount(cells, minlength=self.side ** 2).reshape(self.side, self.side)

    # -- observation, pictures, outcomes ---------------------------------------------------------------------
    def observation_scale(self) -> np.ndarray:
        """The molecules of the default batch start (120 020 at scale 1) for the five species, the enzymes of one
        type for the two regulated-enzyme counts."""
        molecules = max(1.0, 120_020 * self.area_scale)
        return np.array([molecules] * 5 + [max(1.0, self.enz_type.size / 4.0)] * 2)

    def _observe(self) -> np.ndarray:
        free = np.bincount(self.mol_type[self.mol_type != HOLE], minlength=5)
        bound = np.bincount(self.cargo[self.cargo >= 0], minlength=5)
        regulators = self.regulated.sum()
        totals = free + bound
        totals[R] += regulators
        a_inh = np.count_nonzero(self.regulated & (self.enz_type == A))
        return np.concatenate([totals, [a_inh, regulators - a_inh]]).astype(float)

    def grid_image(self) -> np.ndarray:
        """Molecule density in greys, each cell tinted by its most common species (S blue, P green, Q orange,
        R red, T purple); enzymes white."""
        rows = self.free_molecules
        n = self.side ** 2
        per = np.zeros((5, n))
        np.add.at(per, (self.mol_type[rows], self.mol_cell[rows]), 1)
        colours = np.array([[60, 90, 220], [60, 170, 60], [240, 150, 30], [220, 30, 30], [150, 60, 200]], float)
        dominant = colours[per.argmax(axis=0)]
        level = np.clip(per.sum(axis=0) / max(1.0, 2 * per.sum() / n), 0, 1)[:, None]
        img = (dominant * level).reshape(self.side, self.side, 3)
        img.reshape(-1, 3)[self.enz_cell] = 255
        return img.astype(np.uint8)

    def summarize(self, trajectory: np.ndarray) -> dict[str, Any]:
        """Yield statistics of one trajectory: final counts, R made per S consumed (the yield of the desired
        product), and the selectivity R / (R + T) of what left P downstream."""
        start, end = trajectory[0], trajectory[-1]
        made_r, made_t = end[R] - start[R], end[T] - start[T]
        # S consumed = S lost + S added; S added is not observable, so use the mass balance: every molecule
        # added is S, and molecules are otherwise conserved.
        added = trajectory[-1, :5].sum() - trajectory[0, :5].sum()
        consumed_s = start[S] + added - end[S]
        return {
            **{f"final_{s}": float(end[i]) for i, s in enumerate(SPECIES)},
            "S_added": float(added),
            "yield_R_per_S": float(made_r / consumed_s) if consumed_s > 0 else float("nan"),
            "selectivity_R": float(made_r / (made_r + made_t)) if made_r + made_t > 0 else float("nan"),
        }

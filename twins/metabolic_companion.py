"""CompanionPathway: the companion study's metabolic-pathway ABM, rule for rule, on numpy arrays.

Fonseca et al. ("Optimal control of agent-based models via surrogate modeling", PLOS Comp. Biol. 2025; code:
LaboratoryForSystemsMedicine/Metamodeling-and-Control-of-Medical-Digital-Twins_2024, MIT) built the regulated
pathway S -> P -> Q -> R, P -> T in MATLAB. This twin re-implements its rules (read from their
``Met_Pathway_dataset_*.m``; the code here is our own):

- **Agents.** Free molecules of S, P, Q, R, T on a continuous 100 x 100 torus with unit cells (patches), and
  200 each of the enzymes A, E, I, O. An enzyme is always in one *state*: free, or a complex with what it holds.
  A: ``A + S <-> AS -> AP <-> A + P`` and the dead end ``A + R <-> AR`` (product inhibition by R, and A also
  binds its own product P); E: ``E + P <-> EP -> EQ <-> E + Q``; I: ``I + Q <-> IQ -> IR <-> I + R``;
  O (activated by R): ``O + P <-> OP -> OT <-> O + T``, ``O + R <-> OR``, ``OR + P <-> ORP -> ORT <-> OR + T``,
  ``OP + R <-> ORP``, ``OT + R <-> ORT``. Each arrow has its own probability per tick, in percent
  (:class:`CompanionPathwayParams`, the companion's values by default).
- **One tick**, in the companion's order: every molecule moves 1.0 and every enzyme 0.1 in a uniformly random
  direction; *binding*: the free enzymes A, then E, I, O, then the complexes OR, OP, OT (each kind in random
  order) try the molecules of their patch in random order, each with its binding probability, and take the
  first that succeeds; *separation*: every complex that did not just form draws once and releases or converts
  (products appear at the complex's position); *feeding*: ``inflow`` S molecules appear at random positions (the
  fractional part carried to the next tick, as the companion does); *dilution*: every free molecule that was
  already there at the start of the tick leaves with probability ``dilution``.
- An agent changes at most once per tick (the companion flags new agents until the tick ends).

Observables are the free molecules (what the companion records) and two regulation counts. Within a kind, the
random order of enzymes sharing a patch is replayed in rounds (rank 0 of every patch, then rank 1, ...), so
competition for the molecules of a patch has the distribution of the sequential loop.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
from controlkit.twins._common import ControlSpec, TwinModel, check_range, group_ranks
from controlkit.twins.metabolic import check_pathway_basics

from controlkit.core.errors import ControlkitError

SPECIES = ("S", "P", "Q", "R", "T")
S, P, Q, R, T = range(5)
HOLE = -1  # species code of an empty molecule row
REFERENCE_SIDE = 100
# Enzyme states: the four free enzymes and their complexes.
STATES = ("A", "AS", "AP", "AR", "E", "EP", "EQ", "I", "IQ", "IR", "O", "OP", "OT", "OR", "ORP", "ORT")
(A, AS, AP, AR, E, EP, EQ, I, IQ, IR, O, OP, OT, OR, ORP, ORT) = range(len(STATES))  # noqa: E741

# Binding, in the companion's order: (binder state, ((molecule species, probability parameter, new state), ...)).
BINDING = (
    (A, ((S, "bind_AS", AS), (P, "bind_AP", AP), (R, "bind_AR", AR))),
    (E, ((P, "bind_EP", EP), (Q, "bind_EQ", EQ))),
    (I, ((Q, "bind_IQ", IQ), (R, "bind_IR", IR))),
    (O, ((P, "bind_OP", OP), (T, "bind_OT", OT), (R, "bind_OR", OR))),
    (OR, ((P, "bind_ORP", ORP), (T, "bind_ORT", ORT))),
    (OP, ((R, "bind_OR", ORP),)),
    (OT, ((R, "bind_OR", ORT),)),
)
# Separation: complex state -> ((probability parameter, new state, molecule released or HOLE), ...), the
# outcomes of one draw in the companion's order (their probabilities stack: first [0, p1), then [p1, p1 + p2), ...).
SEPARATION = {
    AS: (("release_AS", A, S), ("cat_AS", AP, HOLE)),
    AP: (("release_AP", A, P),),
    AR: (("release_AR", A, R),),
    EP: (("release_EP", E, P), ("cat_EP", EQ, HOLE)),
    EQ: (("release_EQ", E, Q),),
    IQ: (("release_IQ", I, Q), ("cat_IQ", IR, HOLE)),
    IR: (("release_IR", I, R),),
    OP: (("release_OP", O, P), ("cat_OP", OT, HOLE)),
    OT: (("release_OT", O, T),),
    ORP: (("release_ORP", OR, P), ("cat_ORP", ORT, HOLE), ("release_OR", OP, R)),
    ORT: (("release_ORT", OR, T), ("release_OR", OT, R)),
    OR: (("release_OR", O, R),),
}
RATE_FIELDS = tuple(sorted({r[1] for _, rules in BINDING for r in rules}
                           | {r[0] for rules in SEPARATION.values() for r in rules}))


@dataclasses.dataclass(frozen=True)
class CompanionPathwayParams:
    """Parameters of :class:`CompanionPathway`; the defaults are the companion's continuous-mode script.

    Rates are probabilities per tick **in percent** (the companion's ``rand*100 < k``). ``bind_*``: a free enzyme
    (or complex) and a molecule of its patch form the complex; ``release_*``: a complex lets go of what it holds;
    ``cat_*``: a complex converts its substrate into the product it still holds. ``bind_OR``/``release_OR`` is
    the activator R on every form of O (O, OP, OT), as in the companion.

    Attributes:
        scale: Shrinks the torus area and every initial count by this factor (densities, hence per-molecule
            kinetics, are kept; the side is rounded to whole cells). 1.0 = the companion's 100 x 100 system.
        initial_S: Initial S molecules at scale 1 (80 000).
        initial_P: Initial P molecules at scale 1 (20 000).
        initial_Q: Initial Q molecules at scale 1 (20 000).
        initial_R: Initial R molecules at scale 1 (10).
        initial_T: Initial T molecules at scale 1 (10).
        enzymes_each: Molecules of each enzyme A, E, I, O at scale 1 (200).
        molecule_speed: Distance a molecule moves per tick (1.0).
        enzyme_speed: Distance an enzyme or complex moves per tick (0.1).
        dilution: Probability per tick that a free molecule leaves (0.0005 in continuous mode, 0 in batch mode).
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
    dilution: float = 0.0005
    max_inflow: float = 10.0
    bind_AS: float = 4.0
    bind_AP: float = 2.0
    bind_AR: float = 8.0
    release_AS: float = 2.0
    release_AP: float = 4.0
    release_AR: float = 1.0
    cat_AS: float = 2.0
    bind_EP: float = 8.0
    bind_EQ: float = 2.0
    release_EP: float = 2.0
    release_EQ: float = 4.0
    cat_EP: float = 3.0
    bind_IQ: float = 2.0
    bind_IR: float = 2.0
    release_IQ: float = 0.5
    release_IR: float = 4.0
    cat_IQ: float = 2.0
    bind_OP: float = 4.0
    bind_OT: float = 2.0
    bind_OR: float = 16.0
    release_OP: float = 2.0
    release_OT: float = 4.0
    release_OR: float = 1.0
    cat_OP: float = 2.0
    bind_ORP: float = 32.0
    bind_ORT: float = 1.0
    release_ORP: float = 1.0
    release_ORT: float = 8.0
    cat_ORP: float = 10.0

    def validate(self) -> None:
        """Raise a ControlkitError naming the first invalid parameter."""
        check_pathway_basics(self)
        check_range("dilution", self.dilution, 0.0, 1.0)
        for name in RATE_FIELDS:
            check_range(name, getattr(self, name), 0.0, 100.0)
        for state, rules in SEPARATION.items():
            total = sum(getattr(self, r[0]) for r in rules)
            if total > 100.0:
                raise ControlkitError(f"params.{' + '.join(r[0] for r in rules)}: the outcomes of complex "
                                      f"{STATES[state]} must not exceed 100 % per tick, got {total}.")


class CompanionPathway(TwinModel):
    """The companion study's metabolic-pathway ABM, controlled by the substrate inflow.

    Control: ``inflow``, S molecules added per tick at scale 1 (``inflow * area`` per tick, the fractional part
    carried over). Observables: free molecules of ``S, P, Q, R, T`` (as the companion records them),
    ``A_inhibited`` (A holding an R) and ``O_activated`` (O holding an R: OR, ORP, ORT).

    Example:
        >>> twin = CompanionPathway(seed=0, scale=0.01)
        >>> traj = twin.run([1.0], steps=100)
        >>> traj.shape
        (101, 7)
    """

    Params = CompanionPathwayParams
    OBSERVABLES = (*SPECIES, "A_inhibited", "O_activated")

    def _controls(self) -> tuple[ControlSpec, ...]:
        return (ControlSpec("inflow", 0.0, float(self.params.max_inflow),
                            "S molecules added per tick at scale 1"),)

    def _setup(self) -> None:
        p = self.params
        self.side = max(2, round(REFERENCE_SIDE * math.sqrt(p.scale)))
        self.area_scale = (self.side / REFERENCE_SIDE) ** 2
        counts = [round(n * self.area_scale) for n in (p.initial_S, p.initial_P, p.initial_Q, p.initial_R,
                                                       p.initial_T)]
        # Rows of molecules (HOLE marks a free row, refilled by the next molecule made) and of enzymes.
        self.mol_type = np.repeat(np.arange(5, dtype=np.int8), counts)
        self.mol_xy = self._hypercube(self.mol_type.size)
        n_enz = round(p.enzymes_each * self.area_scale)
        self.state = np.repeat(np.array([A, E, I, O], dtype=np.int8), n_enz)
        self.enz_xy = self._hypercube(self.state.size)
        self.feed_carry = 0.0
        self._tables()

    def _hypercube(self, n: int) -> np.ndarray:
        """Latin-hypercube positions (the companion places its agents with ``lhsdesign``)."""
        rng = self.rng
        if n == 0:
            return np.zeros((0, 2), np.float32)
        grid = np.column_stack([(rng.permutation(n) + rng.random(n)) / n for _ in range(2)])
        return (grid * self.side).astype(np.float32)

    def _tables(self) -> None:
        """Per-state lookup tables of the binding and separation rules, from the parameters."""
        p = self.params
        self._binding = []
        for state, rules in BINDING:
            prob, new = np.zeros(5), np.full(5, -1, np.int8)
            for species, name, target in rules:
                prob[species], new[species] = getattr(p, name) / 100.0, target
            self._binding.append((state, prob, new))
        n = len(STATES)
        self._cum = np.full((n, 3), -1.0)  # cumulative outcome probabilities; -1: no outcome
        self._next = np.zeros((n, 3), np.int8)
        self._released = np.full((n, 3), HOLE, np.int8)
        for state, rules in SEPARATION.items():
            total = 0.0
            for j, (name, target, released) in enumerate(rules):
                total += getattr(p, name) / 100.0
                self._cum[state, j], self._next[state, j], self._released[state, j] = total, target, released

    # -- one tick ---------------------------------------------------------------------------------------------
    def _advance(self, control: np.ndarray) -> None:
        p = self.params
        self._move(self.mol_xy, p.molecule_speed)
        self._move(self.enz_xy, p.enzyme_speed)
        active = np.ones(self.state.size, dtype=bool)  # enzymes that have not changed this tick
        self._bind(active)
        new_types, new_xy = self._separate(active)
        self.feed_carry += float(control[0]) * self.area_scale
        fed = int(math.floor(self.feed_carry + 1e-9))
        self.feed_carry -= fed
        if fed:
            new_types = np.concatenate([new_types, np.full(fed, S, np.int8)])
            new_xy = np.concatenate([new_xy, self.rng.random((fed, 2)).astype(np.float32) * self.side])
        present = np.flatnonzero(self.mol_type != HOLE)  # molecules made this tick are not diluted yet
        if p.dilution > 0 and present.size:
            k = int(self.rng.binomial(present.size, p.dilution))
            if k:
                self.mol_type[self.rng.choice(present, size=k, replace=False)] = HOLE
        self._add(new_types, new_xy)

    def _move(self, xy: np.ndarray, speed: float) -> None:
        if xy.shape[0] and speed > 0:
            angle = self.rng.random(xy.shape[0], dtype=np.float32) * np.float32(2 * np.pi)
            xy[:, 0] += np.float32(speed) * np.cos(angle)
            xy[:, 1] += np.float32(speed) * np.sin(angle)
            np.mod(xy, np.float32(self.side), out=xy)

    def _cells(self, xy: np.ndarray) -> np.ndarray:
        # min() guards the float wrap-around (x % side can round up to side itself).
        ij = np.minimum(xy.astype(np.int64), self.side - 1)
        return ij[:, 1] * self.side + ij[:, 0]

    def _bind(self, active: np.ndarray) -> None:
        """Binding of molecules by enzymes (and by the complexes OR, OP, OT) of the same patch."""
        rng = self.rng
        ncell = self.side * self.side
        ecell = self._cells(self.enz_xy)
        occupied = np.zeros(ncell, dtype=bool)
        occupied[ecell] = True
        mol_cell = self._cells(self.mol_xy)
        cand = np.flatnonzero(occupied[mol_cell] & (self.mol_type != HOLE))  # molecules next to an enzyme
        ctype, ccell = self.mol_type[cand], mol_cell[cand]
        taken = np.zeros(cand.size, dtype=bool)
        owner = np.full(ncell, -1, dtype=np.int64)
        for state, prob, new in self._binding:
            binders = np.flatnonzero(active & (self.state == state))
            if binders.size == 0:
                continue
            rank = group_ranks(ecell[binders], rng)
            for r in range(int(rank.max()) + 1):
                b = binders[rank == r]  # at most one binder per patch in a round
                owner[ecell[b]] = np.arange(b.size)
                o = owner[ccell]
                owner[ecell[b]] = -1
                tries = np.flatnonzero((o >= 0) & ~taken & (prob[ctype] > 0))
                hit = tries[rng.random(tries.size) < prob[ctype[tries]]]
                if hit.size == 0:
                    continue
                # Each binder takes one of its successful molecules, uniformly (= the first success in a
                # random order, as the companion's loop does).
                hit = hit[np.lexsort((rng.random(hit.size), o[hit]))]
                first = np.r_[True, o[hit][1:] != o[hit][:-1]]
                chosen = hit[first]
                who = b[o[chosen]]
                taken[chosen] = True
                self.mol_type[cand[chosen]] = HOLE
                self.state[who] = new[ctype[chosen]]
                active[who] = False

    def _separate(self, active: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Release and conversion of the complexes that did not form this tick; returns the released molecules."""
        busy = np.flatnonzero(active & (self._cum[self.state, 0] >= 0))
        cum = self._cum[self.state[busy]]
        u = self.rng.random(busy.size)
        j = (u[:, None] >= np.where(cum >= 0, cum, np.inf)).sum(1)  # index of the outcome u falls in
        hit = j < (cum >= 0).sum(1)
        busy, j = busy[hit], j[hit]
        states = self.state[busy]
        released = self._released[states, j]
        self.state[busy] = self._next[states, j]
        out = released != HOLE
        return released[out], self.enz_xy[busy[out]].copy()

    def _add(self, types: np.ndarray, xy: np.ndarray) -> None:
        if not types.size:
            return
        holes = np.flatnonzero(self.mol_type == HOLE)[: types.size]
        k = holes.size
        self.mol_type[holes], self.mol_xy[holes] = types[:k], xy[:k]
        if k < types.size:
            self.mol_type = np.concatenate([self.mol_type, types[k:]])
            self.mol_xy = np.concatenate([self.mol_xy, xy[k:]])

    # -- observation, pictures, outcomes ---------------------------------------------------------------------
    def enzyme_states(self) -> dict[str, int]:
        """How many enzymes are in each state (free A, AS, AP, ..., ORT)."""
        counts = np.bincount(self.state, minlength=len(STATES))
        return {name: int(c) for name, c in zip(STATES, counts)}

    def observation_scale(self) -> np.ndarray:
        """The molecules of the companion's start (120 020 at scale 1) for the five species, the enzymes of one
        kind for the two regulation counts."""
        molecules = max(1.0, 120_020 * self.area_scale)
        return np.array([molecules] * 5 + [max(1.0, self.state.size / 4.0)] * 2)

    def _observe(self) -> np.ndarray:
        free = np.bincount(self.mol_type[self.mol_type != HOLE], minlength=5)
        states = np.bincount(self.state, minlength=len(STATES))
        return np.concatenate([free, [states[AR], states[OR] + states[ORP] + states[ORT]]]).astype(float)

    def grid_image(self) -> np.ndarray:
        """Molecule density in greys, each cell tinted by its most common species (S blue, P green, Q orange,
        R red, T purple); enzymes white."""
        rows = np.flatnonzero(self.mol_type != HOLE)
        n = self.side**2
        per = np.zeros((5, n))
        np.add.at(per, (self.mol_type[rows], self._cells(self.mol_xy[rows])), 1)
        colours = np.array([[60, 90, 220], [60, 170, 60], [240, 150, 30], [220, 30, 30], [150, 60, 200]], float)
        dominant = colours[per.argmax(axis=0)]
        level = np.clip(per.sum(axis=0) / max(1.0, 2 * per.sum() / n), 0, 1)[:, None]
        img = (dominant * level).reshape(self.side, self.side, 3)
        img.reshape(-1, 3)[self._cells(self.enz_xy)] = 255
        return img.astype(np.uint8)

    def summarize(self, trajectory: np.ndarray) -> dict[str, Any]:
        """Final free counts and the companion's yield ratio of the run: S washed out per R + T washed out
        (``sum S / sum (R + T)`` over the ticks; the dilution rate cancels)."""
        end = trajectory[-1]
        products = trajectory[:, R].sum() + trajectory[:, T].sum()
        return {**{f"final_{s}": float(end[i]) for i, s in enumerate(SPECIES)},
                "S_out_per_product_out": float(trajectory[:, S].sum() / products) if products > 0 else float("nan")}


__all__ = ["BINDING", "SEPARATION", "STATES", "CompanionPathway", "CompanionPathwayParams"]

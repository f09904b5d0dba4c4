"""Wolf–sheep–grass predator–prey twin with per-tick culling controls.

Rules (Wilensky's NetLogo model, as in the companion surrogate-control paper): each tick, after the cull, every
sheep (in random order) moves one step (NetLogo's correlated random walk by default), loses 1 energy, eats the
grass of its cell if grown (+``sheep_gain_from_food``; the patch is eaten-brown for the next ``grass_regrowth_time``
ticks and can be eaten again ``grass_regrowth_time + 1`` ticks later, as in NetLogo), dies
below 0 energy, else reproduces with probability ``sheep_reproduce`` (energy halves, one offspring); then every
wolf (in random order) does the same, eating one random sheep of its cell if there is one. Offspring act from the
next tick on, as in Mesa's example.

Animals are rows of numpy arrays (:class:`Herd`); :func:`~controlkit.twins._common.group_ranks` replays the
shuffled one-at-a-time activation exactly in distribution, so one tick is a few vectorised operations whatever
the population. Grass is a Mesa ``PropertyLayer`` of regrowth countdowns.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
from controlkit.twins._common import ControlSpec, TwinModel, check_int, check_range, field_layer, group_ranks

from controlkit.core.errors import ControlkitError

REMOVAL_MODES = ("fraction", "count")
MOVEMENTS = ("netlogo", "grid")
# von Neumann moves (dy, dx), as Mesa's WolfSheep example grid (OrthogonalVonNeumannGrid).
_MOVES = np.array([[-1, 0], [1, 0], [0, -1], [0, 1]])


@dataclasses.dataclass(frozen=True)
class PredatorPreyParams:
    """Parameters of :class:`PredatorPrey` (defaults: the classic NetLogo/Mesa wolf–sheep model).

    Attributes:
        width: Grid width (cells, torus).
        height: Grid height (cells, torus).
        initial_sheep: Sheep at tick 0, on distinct random cells (so at most width*height).
        initial_wolves: Wolves at tick 0, on distinct random cells.
        sheep_reproduce: Per-tick reproduction probability of a sheep (4 %).
        wolf_reproduce: Per-tick reproduction probability of a wolf (5 %).
        sheep_gain_from_food: Energy a sheep gains from a grass patch (4).
        wolf_gain_from_food: Energy a wolf gains from a sheep (20).
        grass_regrowth_time: Ticks for an eaten patch to regrow (30).
        removal: ``"fraction"``: controls are per-animal removal probabilities in [0, 1];
            ``"count"``: controls are numbers of animals removed (rounded to the nearest integer).
        max_removal_count: Upper control bound in ``"count"`` mode.
        movement: ``"netlogo"``: continuous positions and NetLogo's correlated random walk (``rt random 50
            lt random 50 fd 1``), the rules of the companion models; ``"grid"``: one cell in a uniformly random
            von Neumann direction per tick, the lattice walk of Mesa's grid examples.
    """

    width: int = 51
    height: int = 51
    initial_sheep: int = 100
    initial_wolves: int = 50
    sheep_reproduce: float = 0.04
    wolf_reproduce: float = 0.05
    sheep_gain_from_food: float = 4.0
    wolf_gain_from_food: float = 20.0
    grass_regrowth_time: int = 30
    removal: str = "fraction"
    max_removal_count: int = 50
    movement: str = "netlogo"

    def validate(self) -> None:
        """Raise a ControlkitError naming the first invalid parameter."""
        check_int("width", self.width, 1)
        check_int("height", self.height, 1)
        check_int("initial_sheep", self.initial_sheep)
        check_int("initial_wolves", self.initial_wolves)
        cells = self.width * self.height
        for name in ("initial_sheep", "initial_wolves"):
            if getattr(self, name) > cells:
                raise ControlkitError(f"params.{name}: {getattr(self, name)} animals do not fit on distinct cells "
                                      f"of a {self.width}x{self.height} grid ({cells} cells); enlarge the grid.")
        check_range("sheep_reproduce", self.sheep_reproduce, 0.0, 1.0)
        check_range("wolf_reproduce", self.wolf_reproduce, 0.0, 1.0)
        check_range("sheep_gain_from_food", self.sheep_gain_from_food, 0.0)
        check_range("wolf_gain_from_food", self.wolf_gain_from_food, 0.0)
        check_int("grass_regrowth_time", self.grass_regrowth_time, 1)
        if self.removal not in REMOVAL_MODES:
            raise ControlkitError(f"params.removal: unknown value {self.removal!r}; valid choices: "
                                  f"{', '.join(REMOVAL_MODES)}.")
        check_int("max_removal_count", self.max_removal_count, 0)
        if self.movement not in MOVEMENTS:
            raise ControlkitError(f"params.movement: unknown value {self.movement!r}; valid choices: "
                                  f"{', '.join(MOVEMENTS)}.")


@dataclasses.dataclass
class Herd:
    """One species as rows of arrays: continuous position, heading (radians), energy, flat cell index."""

    xy: np.ndarray
    heading: np.ndarray
    energy: np.ndarray
    cell: np.ndarray

    @property
    def size(self) -> int:
        """Number of animals."""
        return self.energy.size

    def select(self, rows: np.ndarray) -> Herd:
        """The animals at ``rows`` (a boolean mask or indices), as a new table."""
        return Herd(self.xy[rows], self.heading[rows], self.energy[rows], self.cell[rows])

    def extend(self, other: Herd) -> Herd:
        """This table followed by ``other``'s rows."""
        return Herd(*(np.concatenate([a, b]) for a, b in zip(dataclasses.astuple(self), dataclasses.astuple(other))))


class PredatorPrey(TwinModel):
    """Wolf–sheep–grass model controlled by culling.

    Controls (per tick, applied before the animals act): ``cull_sheep`` and ``cull_wolves``, either removal
    probabilities per animal (``removal="fraction"``) or numbers of animals (``removal="count"``).
    Observables: ``sheep``, ``wolves``, ``grass`` (number of grown patches).

    Example:
        >>> twin = PredatorPrey(seed=0)
        >>> traj = twin.run([0.0, 0.01], steps=100)   # cull 1 % of the wolves per tick
        >>> traj.shape
        (101, 3)
    """

    Params = PredatorPreyParams
    OBSERVABLES = ("sheep", "wolves", "grass")

    def _controls(self) -> tuple[ControlSpec, ...]:
        p = self.params
        if p.removal == "fraction":
            return (ControlSpec("cull_sheep", 0.0, 1.0, "probability that each sheep is removed this tick"),
                    ControlSpec("cull_wolves", 0.0, 1.0, "probability that each wolf is removed this tick"))
        hi = float(p.max_removal_count)
        return (ControlSpec("cull_sheep", 0.0, hi, "sheep removed this tick (rounded)"),
                ControlSpec("cull_wolves", 0.0, hi, "wolves removed this tick (rounded)"))

    def _setup(self) -> None:
        p = self.params
        self.cells = p.width * p.height
        rng = self.rng
        # Distinct starting cells per species, uniform positions inside them, random headings; energies uniform in
        # [0, 2 * gain) as in NetLogo and Mesa.
        self.sheep = self._herd(p.initial_sheep, p.sheep_gain_from_food)
        self.wolves = self._herd(p.initial_wolves, p.wolf_gain_from_food)
        grown = rng.random((p.height, p.width)) < 0.5
        # Ticks until the patch is grown again (0 = grown), held as a Mesa PropertyLayer.
        self.grass = field_layer("grass_countdown", (p.height, p.width), 0, np.int64)
        self.grass.data[:] = np.where(grown, 0, rng.integers(1, p.grass_regrowth_time + 1, size=grown.shape))
        self.removed = np.zeros(2, dtype=np.int64)

    def _herd(self, n: int, gain: float) -> Herd:
        rng = self.rng
        cell = rng.choice(self.cells, n, replace=False)
        y, x = np.divmod(cell, self.params.width)
        xy = np.column_stack([x, y]) + (rng.random((n, 2)) if self.params.movement == "netlogo" else 0.5)
        return Herd(xy, rng.random(n) * 2 * np.pi, rng.random(n) * 2 * gain, cell)

    # -- one tick -----------------------------------------------------------------------------------------------
    def _advance(self, control: np.ndarray) -> None:
        n_s, n_w = self.sheep.size, self.wolves.size
        self.sheep = self.sheep.select(self._cull(n_s, control[0]))
        self.wolves = self.wolves.select(self._cull(n_w, control[1]))
        self.removed[:] = (n_s - self.sheep.size, n_w - self.wolves.size)
        self._sheep_phase()
        self._wolf_phase()
        grass = self.grass.data
        grass[grass > 0] -= 1

    def _cull(self, n: int, u: float) -> np.ndarray:
        keep = np.ones(n, dtype=bool)
        if n == 0 or u <= 0:
            return keep
        if self.params.removal == "fraction":
            keep &= self.rng.random(n) >= u
        else:
            keep[self.rng.choice(n, min(int(round(u)), n), replace=False)] = False
        return keep

    def _move(self, herd: Herd) -> None:
        p = self.params
        rng = self.rng
        if p.movement == "netlogo":
            # NetLogo's wiggle: rt random 50 lt random 50 fd 1 (integer degrees), a correlated random walk.
            herd.heading += np.radians(rng.integers(50, size=herd.size) - rng.integers(50, size=herd.size))
            herd.xy[:, 0] = (herd.xy[:, 0] + np.sin(herd.heading)) % p.width
            herd.xy[:, 1] = (herd.xy[:, 1] + np.cos(herd.heading)) % p.height
        else:
            d = _MOVES[rng.integers(4, size=herd.size)]
            herd.xy[:, 0] = (herd.xy[:, 0] + d[:, 1]) % p.width
            herd.xy[:, 1] = (herd.xy[:, 1] + d[:, 0]) % p.height
        herd.cell = self._cell_index(herd.xy)

    def _cell_index(self, xy: np.ndarray) -> np.ndarray:
        w, h = self.params.width, self.params.height
        # min() guards the float wrap-around (x % w can round up to w itself).
        return np.minimum(xy[:, 1].astype(np.int64), h - 1) * w + np.minimum(xy[:, 0].astype(np.int64), w - 1)

    def _sheep_phase(self) -> None:
        p = self.params
        sheep = self.sheep
        self._move(sheep)
        sheep.energy -= 1.0
        grass = self.grass.data.reshape(-1)
        hungry = np.flatnonzero(grass[sheep.cell] == 0)
        # Of the sheep standing on a grown patch, the first in the random activation order eats it.
        eaters = hungry[group_ranks(sheep.cell[hungry], self.rng) == 0]
        sheep.energy[eaters] += p.sheep_gain_from_food
        # NetLogo checks a brown patch's countdown before decrementing it, so a patch eaten at tick t is green
        # again only at the end of tick t + regrowth_time: one more tick than the countdown's value says.
        grass[sheep.cell[eaters]] = p.grass_regrowth_time + 1
        self.sheep = self._survive_and_breed(sheep, p.sheep_reproduce)

    def _wolf_phase(self) -> None:
        p = self.params
        wolves, sheep = self.wolves, self.sheep
        self._move(wolves)
        wolves.energy -= 1.0
        prey = np.bincount(sheep.cell, minlength=self.cells)
        # The r-th wolf of a cell (random order) finds a sheep left iff the cell held more than r sheep.
        eats = group_ranks(wolves.cell, self.rng) < prey[wolves.cell]
        wolves.energy[eats] += p.wolf_gain_from_food
        meals = np.bincount(wolves.cell[eats], minlength=self.cells)
        at_risk = np.flatnonzero(meals[sheep.cell] > 0)
        eaten = at_risk[group_ranks(sheep.cell[at_risk], self.rng) < meals[sheep.cell[at_risk]]]
        alive = np.ones(sheep.size, dtype=bool)
        alive[eaten] = False
        self.sheep = sheep.select(alive)
        self.wolves = self._survive_and_breed(wolves, p.wolf_reproduce)

    def _survive_and_breed(self, herd: Herd, p_breed: float) -> Herd:
        draw = self.rng.random(herd.size)
        alive = herd.energy >= 0.0
        herd, draw = herd.select(alive), draw[alive]
        breed = draw < p_breed
        herd.energy[breed] *= 0.5
        young = herd.select(breed)
        if self.params.movement == "netlogo" and young.size:
            # NetLogo: hatch 1 [ rt random-float 360 fd 1 ]
            young.heading = self.rng.random(young.size) * 2 * np.pi
            young.xy[:, 0] = (young.xy[:, 0] + np.sin(young.heading)) % self.params.width
            young.xy[:, 1] = (young.xy[:, 1] + np.cos(young.heading)) % self.params.height
            young.cell = self._cell_index(young.xy)
        return herd.extend(young)

    # -- observation, pictures, outcomes ---------------------------------------------------------------------
    def _observe(self) -> np.ndarray:
        return np.array([self.sheep.size, self.wolves.size, np.count_nonzero(self.grass.data == 0)], float)

    def observation_scale(self) -> np.ndarray:
        """Initial sheep, initial wolves and the number of grass patches (each at least 1)."""
        p = self.params
        return np.maximum([p.initial_sheep, p.initial_wolves, self.cells], 1.0)

    def population_grid(self) -> tuple[np.ndarray, np.ndarray]:
        """``(sheep, wolves)`` per cell as ``(height, width)`` integer arrays."""
        shape = (self.params.height, self.params.width)
        return (np.bincount(self.sheep.cell, minlength=self.cells).reshape(shape),
                np.bincount(self.wolves.cell, minlength=self.cells).reshape(shape))

    def grid_image(self) -> np.ndarray:
        """Grown grass green, eaten grass brown, sheep white, wolves black (wolves drawn over sheep)."""
        sheep, wolves = self.population_grid()
        img = np.where((self.grass.data == 0)[..., None], [[[60, 160, 60]]], [[[140, 100, 60]]]).astype(np.uint8)
        img[sheep > 0] = (245, 245, 245)
        img[wolves > 0] = (20, 20, 20)
        return img

    def summarize(self, trajectory: np.ndarray) -> dict[str, Any]:
        """Final and mean populations over the second half, and whether each species went extinct."""
        half = trajectory[trajectory.shape[0] // 2:]
        return {
            "final_sheep": float(trajectory[-1, 0]),
            "final_wolves": float(trajectory[-1, 1]),
            "mean_sheep_2nd_half": float(half[:, 0].mean()),
            "mean_wolves_2nd_half": float(half[:, 1].mean()),
            "sheep_extinct": float(trajectory[-1, 0] == 0),
            "wolves_extinct": float(trajectory[-1, 1] == 0),
        }

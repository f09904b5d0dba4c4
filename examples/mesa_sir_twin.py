"""Bring your own ABM: a plain Mesa 3 epidemic model, wrapped as a controllable twin in a few lines.

The model below is ordinary Mesa 3 code with no controlkit in it: people are ``CellAgent``s walking on an
``OrthogonalMooreGrid``, kept in ``model.agents`` and stepped through AgentSets. The bottom of the file wraps it:
a vaccination campaign as the control, the three compartments as observables, an objective, and a registered
spec. With this folder on ``PYTHONPATH`` the twin runs everywhere a built-in one does: ``twin: "mesa_sir_twin:SPEC"``
in the ``twin_simulate`` and ``twin_control`` experiments, ``gymnasium.make("controlkit/MesaSIR-v0")``.
"""

from __future__ import annotations

import numpy as np
from controlkit.twins import ControlSpec, Objective, TwinSpec, register_twin, wrap_mesa_model
from mesa import Model
from mesa.discrete_space import CellAgent, OrthogonalMooreGrid

from controlkit.core.errors import ControlkitError

SUSCEPTIBLE, INFECTED, RECOVERED = 0, 1, 2


# -- the user's model: plain Mesa 3 ---------------------------------------------------------------------------------
class Person(CellAgent):
    """One person: a health state and a cell; moves to a random neighbouring cell each step."""

    def __init__(self, model: Model, cell, state: int) -> None:
        super().__init__(model)
        self.cell = cell
        self.state = state

    def move(self) -> None:
        self.cell = self.cell.neighborhood.select_random_cell()

    def catch(self) -> None:
        """A susceptible person is infected by each infected person on the same cell with probability beta."""
        if self.state == SUSCEPTIBLE:
            k = sum(1 for a in self.cell.agents if a.state == INFECTED)
            if k and self.random.random() < 1 - (1 - self.model.infection) ** k:
                self.state = INFECTED

    def recover(self) -> None:
        if self.state == INFECTED and self.random.random() < self.model.recovery:
            self.state = RECOVERED


class EpidemicModel(Model):
    """SIR on a torus: people walk, infection on shared cells, recovery at a constant rate."""

    def __init__(self, people: int = 150, width: int = 15, height: int = 15, initial_infected: int = 5,
                 infection: float = 0.25, recovery: float = 0.05, seed: int | None = None) -> None:
        super().__init__(seed=seed)
        if not 0 < initial_infected <= people:
            raise ValueError(f"initial_infected must be in 1..people, got {initial_infected}")
        self.infection, self.recovery = infection, recovery
        self.grid = OrthogonalMooreGrid((width, height), torus=True, random=self.random)
        cells = list(self.grid.all_cells)
        for i in range(people):
            Person(self, self.random.choice(cells), INFECTED if i < initial_infected else SUSCEPTIBLE)

    def step(self) -> None:
        self.agents.shuffle_do("move")
        self.agents.shuffle_do("catch")
        self.agents.shuffle_do("recover")


# -- the wrapper: control, observables, objective, registration ------------------------------------------------------
def vaccinate(model: EpidemicModel, u: np.ndarray) -> None:
    """Each susceptible person is vaccinated (moved to recovered) with probability ``u[0]`` this step."""
    for person in model.agents.select(lambda a: a.state == SUSCEPTIBLE):
        if model.random.random() < u[0]:
            person.state = RECOVERED


def compartments(model: EpidemicModel) -> dict[str, int]:
    counts = model.agents.groupby("state").count()
    return {"susceptible": counts.get(SUSCEPTIBLE, 0), "infected": counts.get(INFECTED, 0),
            "recovered": counts.get(RECOVERED, 0)}


def check_params(p) -> None:
    for name in ("infection", "recovery"):
        if not 0.0 <= getattr(p, name) <= 1.0:
            raise ControlkitError(f"params.{name}: a probability in [0, 1], got {getattr(p, name)}.")


EpidemicTwin = wrap_mesa_model(
    "EpidemicTwin", EpidemicModel, observables=("susceptible", "infected", "recovered"),
    controls=[ControlSpec("vaccination", 0.0, 0.2, "probability that each susceptible person is vaccinated per step")],
    apply_control=vaccinate, observe=compartments, validate=check_params)


class EpidemicObjective(Objective):
    """Few infected people with little vaccination: ``infected / people`` plus ``vaccination`` rate per step."""

    TWIN = "mesa_sir"
    TERMS = {"infection": 1.0, "vaccination": 0.5}

    def __init__(self, weights=None, people: int = 150) -> None:
        super().__init__(weights)
        self.people = int(people)

    def terms(self, prev, obs, rate):
        return {"infection": obs[..., 1] / self.people, "vaccination": rate[..., 0]}

    def outcomes(self, obs, controls):
        return {"peak_infected": float(obs[:, 1].max()), "final_susceptible": float(obs[-1, 0])}

    def bang_bang(self, obs, low, high):
        return np.where(obs[1] > 0, high, low)  # vaccinate at the maximum while anyone is infected

    @classmethod
    def settings_from_twin(cls, twin):
        return {"people": twin.params.people}


SPEC = register_twin(TwinSpec("mesa_sir", EpidemicTwin, EpidemicObjective,
                              task={"burn_in": 5, "interval": 5, "decisions": 8, "apply": "hold"},
                              env_id="controlkit/MesaSIR-v0"))

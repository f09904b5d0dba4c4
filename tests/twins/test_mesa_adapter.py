"""Bring your own ABM: a plain Mesa 3 model (CellAgents on an OrthogonalMooreGrid, AgentSets) wrapped by
wrap_mesa_model runs through the twin machinery: seeded replay of the raw model, both twin experiments from
YAML (also in spawned workers), the gym env, pictures of both kinds of Mesa grid, and named errors."""

import csv
import json
import pickle
from pathlib import Path

import gymnasium as gym
import mesa
import numpy as np
import pytest
from controlkit.twins import get_twin, grid_picture, make_task, wrap_mesa_model
from gymnasium.utils.env_checker import check_env
from mesa.space import MultiGrid

import controlkit  # noqa: F401
from controlkit.core.errors import ControlkitError
from controlkit.runner.registry import load_config
from controlkit.runner.run import run_experiment

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture()
def sir(monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLES))  # also for spawned workers, which inherit sys.path
    import mesa_sir_twin

    return mesa_sir_twin


class Wealth(mesa.Model):
    """Boltzmann wealth on a legacy mesa.space.MultiGrid: agents give one coin to a random agent on their cell."""

    def __init__(self, n: int = 30, width: int = 6, height: int = 5, rng=None) -> None:
        super().__init__(rng=rng)
        self.grid = MultiGrid(width, height, torus=True)
        for _ in range(n):
            agent = mesa.Agent(self)
            agent.wealth = 1
            self.grid.place_agent(agent, (self.random.randrange(width), self.random.randrange(height)))
        self.tax = 0.0

    def step(self) -> None:
        for agent in self.agents.shuffle():
            others = self.grid.get_cell_list_contents([agent.pos])
            if agent.wealth > 0:
                self.random.choice(others).wealth += 1
                agent.wealth -= 1


def _wealth_observe(model):
    w = np.array(model.agents.get("wealth"), dtype=float)
    return {"richest": w.max(), "poor": float(np.sum(w == 0)), "extra": 1.0}


def _tax(model, u):
    model.tax = float(u[0])


WealthTwin = wrap_mesa_model("WealthTwin", Wealth, observables=("richest", "poor"), controls=[("tax", 0.0, 1.0)],
                             apply_control=_tax, observe=_wealth_observe)


def test_wrapped_twin_replays_the_raw_model_with_its_seed(sir):
    twin = sir.EpidemicTwin(seed=3)
    traj = twin.run([0.05], steps=25)
    raw = sir.EpidemicModel(seed=3)
    rows = [sir.compartments(raw)]
    for _ in range(25):
        sir.vaccinate(raw, np.array([0.05]))
        raw.step()
        rows.append(sir.compartments(raw))
    np.testing.assert_array_equal(traj, [[r[k] for k in twin.observables()] for r in rows])
    assert len(twin.abm.agents) == 150 and traj[:, :].sum(1).tolist() == [150.0] * 26  # people are conserved
    assert not np.array_equal(traj, sir.EpidemicTwin(seed=4).run([0.05], steps=25))
    np.testing.assert_array_equal(twin.trajectory(), traj)  # the DataCollector saw the same
    out = twin.summarize(traj)
    assert out["peak_infected"] == traj[:, 1].max() and out["final_recovered"] == traj[-1, 2]


def test_vaccination_control_changes_the_epidemic(sir):
    none = np.mean([sir.EpidemicTwin(seed=s).run([0.0], steps=40)[-1, 0] for s in range(3)])
    full = np.mean([sir.EpidemicTwin(seed=s).run([0.2], steps=40)[-1, 0] for s in range(3)])
    assert full < 0.2 * none  # vaccination empties the susceptible pool


def test_parameters_come_from_the_constructor_and_are_checked(sir):
    twin = sir.EpidemicTwin({"people": 60}, seed=0, initial_infected=2)
    assert twin.params.people == 60 and twin.params.initial_infected == 2 and len(twin.abm.agents) == 60
    assert isinstance(sir.EpidemicTwin(infection=1, seed=0).params.infection, float)  # int accepted for a float
    with pytest.raises(ControlkitError, match=r"params.foo: unknown parameter of EpidemicTwin.Params; valid: people"):
        sir.EpidemicTwin(foo=1)
    with pytest.raises(ControlkitError, match=r"params.people: expected int"):
        sir.EpidemicTwin(people=2.5)
    with pytest.raises(ControlkitError, match=r"params.infection: a probability"):
        sir.EpidemicTwin(infection=1.5)
    with pytest.raises(ControlkitError, match=r"params: EpidemicModel rejected .*initial_infected must be"):
        sir.EpidemicTwin(initial_infected=0)
    with pytest.raises(ControlkitError, match=r"control\[0\] \(vaccination\): must lie in \[0.0, 0.2\]"):
        sir.EpidemicTwin(seed=0).step([0.5])


def test_wrapping_errors_are_named():
    kw = {"observables": ("richest",), "controls": [("tax", 0.0, 1.0)], "apply_control": _tax,
          "observe": _wealth_observe}

    class NoSeed(mesa.Model):
        def __init__(self, n: int = 3) -> None:
            super().__init__()

    with pytest.raises(ControlkitError, match="model_cls: NoSeed.__init__ takes neither seed nor rng"):
        wrap_mesa_model("T", NoSeed, **kw)
    with pytest.raises(ControlkitError, match="model_cls: expected a mesa.Model subclass"):
        wrap_mesa_model("T", dict, **kw)
    with pytest.raises(ControlkitError, match=r"controls\[0\] \(tax\): need finite bounds with low < high"):
        wrap_mesa_model("T", Wealth, **{**kw, "controls": [("tax", 1.0, 0.0)]})
    with pytest.raises(ControlkitError, match=r"params.speed: not a keyword parameter .* valid: n, width, height"):
        wrap_mesa_model("T", Wealth, params={"speed": 2}, **kw)
    missing = wrap_mesa_model("T", Wealth, **{**kw, "observables": ("richest", "gini")})
    with pytest.raises(ControlkitError, match="observe: returned no value for observable 'gini'; it returned "
                                              "richest, poor, extra"):
        missing(seed=0)


def test_legacy_mesa_space_grid_and_rng_argument():
    twin = WealthTwin(seed=1, n=20)
    traj = twin.run([0.1], steps=10)
    assert traj.shape == (11, 2) and twin.abm.tax == 0.1  # extra observe() keys are ignored
    np.testing.assert_array_equal(traj, WealthTwin(seed=1, n=20).run([0.1], steps=10))
    img = twin.grid_image()
    occupied = {tuple(a.pos) for a in twin.abm.agents}
    assert img.shape == (5, 6, 3) and np.count_nonzero(img.any(axis=2)) == len(occupied)
    assert pickle.loads(pickle.dumps(WealthTwin)) is WealthTwin  # by reference, like a namedtuple

    class Gridless(mesa.Model):
        def __init__(self, seed=None) -> None:
            super().__init__(seed=seed)

    with pytest.raises(ControlkitError, match="render: Gridless has no 2-D Mesa grid"):
        grid_picture(Gridless(seed=0))


def test_discrete_space_picture_shows_every_occupied_cell(sir):
    twin = sir.EpidemicTwin(seed=0)
    img = twin.grid_image()
    occupied = {a.cell.coordinate for a in twin.abm.agents}
    assert img.shape == (15, 15, 3) and np.count_nonzero(img.any(axis=2)) == len(occupied)


def test_gym_env_of_the_wrapped_model(sir):
    assert get_twin("mesa_sir_twin:SPEC").model is sir.EpidemicTwin
    env = gym.make("controlkit/MesaSIR-v0", render_mode="rgb_array")
    assert env.spec.max_episode_steps == 8
    check_env(env.unwrapped, skip_render_check=False)
    task = make_task("mesa_sir")
    assert task.objective.people == 150 and task.bounds[1].tolist() == [0.2]


def test_both_twin_experiments_run_the_wrapped_model_from_yaml(sir, tmp_path):
    sim = tmp_path / "sim.yaml"
    # two workers: replicates run in spawned processes, which import the user's module by name
    sim.write_text('kind: twin_simulate\nseed: 0\ntwin: "mesa_sir_twin:SPEC"\nsteps: 20\nreplicates: 2\n'
                   "params: {people: 80}\nworkers: 2\narms:\n  none: {control: [0.0]}\n  vaccinate: {control: [0.1]}\n")
    summary = run_experiment(load_config(sim), out=tmp_path, quiet=True).summary
    assert json.dumps(summary)
    arms = summary["arms"]
    assert arms["vaccinate"]["final_mean"]["susceptible"] < arms["none"]["final_mean"]["susceptible"]
    assert sum(arms["none"]["final_mean"].values()) == 80
    # a replicate's recorded seed gives the same numbers in this process
    rows = list(csv.DictReader(next(tmp_path.rglob("metrics.csv")).open()))
    seed = int(next(r["seed"] for r in rows if r["arm"] == "vaccinate" and r["replicate"] == "0"))
    local = sir.EpidemicTwin({"people": 80}, seed=seed).run([0.1], steps=20)[-1]
    npz = np.load(next(tmp_path.rglob("trajectories.npz")))
    np.testing.assert_array_equal(npz["vaccinate"][0, -1], local)

    # the example's own twin_control file, shrunk to test size through command-line style overrides
    small = ["data.trajectories=6", "surrogate.hidden=[8]", "surrogate.train.epochs=3", "controller.iterations=5",
             "controller.surrogate=discrete", "methods=[none,bang_bang,neural]", "evaluation.replicates=3",
             "evaluation.perturbed_replicates=0", "workers=1"]
    result = run_experiment(load_config(EXAMPLES / "mesa_sir_twin.yaml", small), out=tmp_path, quiet=True)
    methods = result.summary["methods"]
    assert set(methods) == {"none", "bang_bang", "neural"}
    assert all(np.isfinite(m["cost_mean"]) for m in methods.values())
    assert methods["bang_bang"]["parts"]["vaccination"]["mean"] > 0 == methods["none"]["parts"]["vaccination"]["mean"]

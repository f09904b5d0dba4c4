"""The immune twin with pharmacokinetics: the plasma compartment solves its ODE, the twin without drug is the
immune twin, dose and toxicity limits hold under any request, the env and an episode respect them, bad drug
parameters are named."""

import math

import gymnasium as gym
import numpy as np
import pytest
from controlkit.twins import ImmuneTwin, make_task, run_episode
from controlkit.twins.baselines import ConstantTwinController
from controlkit.twins.immune_pk import TICK_HOURS, ImmunePKTwin, admissible_rate, concentration_step
from gymnasium.utils.env_checker import check_env
from scipy.integrate import solve_ivp

import controlkit  # noqa: F401  registers the envs
from controlkit.core.errors import ControlkitError

SMALL = {"width": 21, "height": 21, "initial_inoculum": 20, "resident_macrophages": 10}
N = len(ImmuneTwin.OBSERVABLES)  # the PK columns follow: conc (2), given (2)


def test_concentration_step_solves_the_one_compartment_ode():
    rates = np.array([10.0, 10.0, 0.0, 4.0, 0.0, 0.0])  # mg/h, one value per hour
    volume, half_life = 50.0, 6.0
    conc = np.zeros(1)
    exact = []
    for r in rates:
        conc = concentration_step(conc, np.array([r]), volume, half_life, 1.0)
        exact.append(conc[0])
    k = math.log(2) / half_life
    sol = solve_ivp(lambda t, c: rates[min(int(t), 5)] / volume - k * c, (0, 6), [0.0], t_eval=np.arange(1, 7),
                    max_step=0.01, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(exact, sol.y[0], rtol=1e-5)
    # steady state of a constant infusion: rate / (volume k)
    ss = concentration_step(np.zeros(1), np.array([10.0]), volume, half_life, 500.0)
    np.testing.assert_allclose(ss, 10.0 / (volume * k))


def test_admissible_rate_stops_at_the_toxic_level_and_the_budget():
    conc, v, h = np.array([1.0]), np.array([50.0]), np.array([6.0])
    cap = admissible_rate(conc, np.array([1e6]), v, h, 1.0, np.array([2.0]), np.array([np.inf]))
    np.testing.assert_allclose(concentration_step(conc, cap, v, h, 1.0), [2.0])
    assert admissible_rate(conc, np.array([3.0]), v, h, 1.0, np.array([2.0]), np.array([np.inf]))[0] == 3.0
    assert admissible_rate(conc, np.array([30.0]), v, h, 0.5, np.array([np.inf]), np.array([5.0]))[0] == 10.0
    assert admissible_rate(np.array([3.0]), np.array([5.0]), v, h, 1.0, np.array([2.0]), np.array([9.0]))[0] == 0.0


def test_without_drug_the_pk_twin_is_the_immune_twin():
    plain = ImmuneTwin(seed=4, **SMALL).run([0.0, 0.0], steps=150)
    pk = ImmunePKTwin(seed=4, **SMALL).run([0.0, 0.0], steps=150)
    np.testing.assert_array_equal(pk[:, :N], plain)
    assert not pk[:, N:].any()
    assert ImmunePKTwin.observables()[N:] == ("antiviral_conc", "anti_inflammatory_conc", "antiviral_given",
                                             "anti_inflammatory_given")


def test_drug_acts_through_the_concentration():
    twin = ImmunePKTwin(seed=1, **SMALL)
    sched = np.zeros((72, 2))
    sched[:36, 0] = 1.0  # six hours of full antiviral infusion, then stop
    traj = twin.run(sched)
    conc = traj[:, N]
    assert np.all(np.diff(conc[:37]) > 0)  # rises during the infusion
    p = twin.params
    k = math.log(2) / p.antiviral_half_life
    np.testing.assert_allclose(conc[72], conc[36] * math.exp(-k * 36 * TICK_HOURS))  # first-order elimination
    np.testing.assert_allclose(traj[-1, N + 2], 6 * p.antiviral_max_rate)  # mg given = rate x hours
    # less virus than untreated on the same seed
    untreated = ImmunePKTwin(seed=1, **SMALL).run(np.zeros((72, 2)))
    assert traj[-1, 7] < untreated[-1, 7]


def test_limits_hold_whatever_is_requested():
    twin = ImmunePKTwin(seed=2, antiviral_max_total=120.0, anti_inflammatory_toxic_conc=0.05, **SMALL)
    traj = twin.run([1.0, 1.0], steps=288)
    assert traj[:, N + 2].max() == pytest.approx(120.0) and np.all(np.diff(traj[:, N + 2]) >= 0)
    assert traj[:, N + 1].max() <= 0.05 + 1e-12
    assert twin.cut_ticks[0] > 0 and twin.cut_ticks[1] > 0
    # after the budget is spent the antiviral is eliminated
    stop = int(np.argmax(traj[:, N + 2] >= 120.0 - 1e-9))
    assert traj[-1, N] < traj[stop, N]
    out = twin.summarize(traj)
    assert out["antiviral_mg"] == pytest.approx(120.0) and out["anti_inflammatory_peak_conc"] <= 0.05 + 1e-12


def test_episode_and_env_run_inside_the_limits():
    params = {**SMALL, "antiviral_max_total": 100.0, "antiviral_toxic_conc": 1.5}
    task = make_task("immune_pk", params=params, burn_in=6, interval=12, decisions=6)
    assert task.objective.max_rate.tolist() == [25.0, 1.0]
    ep = run_episode(task, ConstantTwinController([1.0, 0.0]), seed=0)
    assert ep.outcomes["antiviral_mg"] <= 100.0 + 1e-9 and ep.outcomes["antiviral_peak_conc"] <= 1.5 + 1e-12
    assert 0 < ep.outcomes["antiviral_cut_share"] <= 1 and ep.outcomes["anti_inflammatory_cut_share"] == 0
    assert ep.parts["dose"] == pytest.approx(1.0)  # the objective prices the dose requested
    env = gym.make("controlkit/ImmunePK-v0", params=params, burn_in=6, interval=12, decisions=6)
    check_env(env.unwrapped)
    env.reset(seed=0)
    for _ in range(6):
        obs, *_ = env.step(np.ones(2, dtype=np.float32))
    conc_scale = env.unwrapped.observation_scale[N]
    assert obs[N] * conc_scale <= 1.5 + 1e-5


@pytest.mark.parametrize("field, value, match", [
    ("antiviral_half_life", 0.0, r"params.antiviral_half_life: must be > 0"),
    ("anti_inflammatory_toxic_conc", -1.0, r"params.anti_inflammatory_toxic_conc: must lie in"),
    ("antiviral_max_total", float("nan"), r"params.antiviral_max_total: must lie in"),
    ("anti_inflammatory_ec50", "high", r"params.anti_inflammatory_ec50: expected a number"),
    ("antiviral_volume", math.inf, r"params.antiviral_volume: must lie in"),
])
def test_bad_drug_parameters_are_named(field, value, match):
    with pytest.raises(ControlkitError, match=match):
        ImmunePKTwin(**{field: value})

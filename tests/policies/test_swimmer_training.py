"""Tiny training runs: ES (both methods) and PPO move the parameters and log a learning curve."""

import numpy as np
import pytest
import torch
from controlkit.envs.swimmer import SwimmerEnv
from controlkit.policies import MLPPolicy, NCAPPolicy
from controlkit.policies.train_es import centred_ranks, get_flat, train_es

from controlkit.core.errors import ControlkitError


@pytest.mark.parametrize("method", ["openai", "cma"])
def test_tiny_es_run(method):
    pol = NCAPPolicy(2)
    before = get_flat(pol)
    curve = train_es(pol, SwimmerEnv(3), total_steps=4000, population=2, sigma=0.05, lr=0.1, method=method,
                     eval_every=2000, eval_seeds=(100,), seed=0)
    assert curve.env_steps == [0, 2000, 4000]
    assert not np.allclose(get_flat(pol), before)
    again = NCAPPolicy(2)
    train_es(again, SwimmerEnv(3), total_steps=4000, population=2, sigma=0.05, lr=0.1, method=method,
             eval_every=2000, eval_seeds=(100,), seed=0)
    np.testing.assert_array_equal(get_flat(again), get_flat(pol))  # same seed, same numbers


def test_es_trains_an_mlp_too():
    pol = MLPPolicy(3 * 3 + 2, 2, hidden=(8,))
    before = get_flat(pol)
    train_es(pol, SwimmerEnv(3), total_steps=2000, population=2, eval_every=2000, eval_seeds=(1,))
    assert not np.allclose(get_flat(pol), before)


def test_centred_ranks():
    np.testing.assert_allclose(centred_ranks(np.array([10.0, -3.0, 4.0])), [0.5, -0.5, 0.0])


def test_es_bad_inputs():
    with pytest.raises(ControlkitError, match="population"):
        train_es(NCAPPolicy(2), SwimmerEnv(3), 1000, population=3)
    with pytest.raises(ControlkitError, match="method"):
        train_es(NCAPPolicy(2), SwimmerEnv(3), 1000, method="sgd")


def test_tiny_ppo_run_with_ncap_actor():
    from controlkit.policies.train_ppo import train_ppo

    torch.set_num_threads(1)
    actor, curve = train_ppo("ncap", total_steps=1000, n_links=3, n_envs=2, n_steps=250, batch_size=125,
                             n_epochs=2, learning_rate=0.01, eval_every=10_000, eval_seeds=(5,), seed=0)
    assert isinstance(actor, NCAPPolicy) and actor.time_obs
    assert curve.env_steps[0] == 0 and curve.env_steps[-1] == 1000
    assert sum(p.numel() for p in actor.parameters()) == 4
    assert any(abs(p.item()) != 1.0 for p in actor.weights.values())  # PPO moved the circuit


@pytest.mark.slow
def test_ncap_es_passes_850_within_50k_steps():
    """The issue's target on one seed (the 5-seed number is in docs/ncap.md): about 15 s on an idle core."""
    pol = NCAPPolicy(5)
    curve = train_es(pol, SwimmerEnv(6), total_steps=50_000, sigma=0.05, lr=0.1, eval_every=8000, seed=0)
    assert curve.env_steps[-1] <= 50_000
    assert curve.mean[-1] >= 850

"""Small random ReLU networks shared by the MPC tests."""

import numpy as np
import pytest

from controlkit.models.network import CompactNetwork


def random_net(hidden, nx=3, nu=2, seed=0, scale=0.5, identity_frac=0.0, residual=True):
    """A random residual MLP whose hidden neurons are ReLU (or identity with probability ``identity_frac``)."""
    rng = np.random.default_rng(seed)
    sizes = [nx + nu, *hidden, nx]
    weights = [scale * rng.normal(size=(sizes[i + 1], sizes[i])) / np.sqrt(sizes[i]) for i in range(len(sizes) - 1)]
    biases = [0.1 * rng.normal(size=sizes[i + 1]) for i in range(len(sizes) - 1)]
    masks = [rng.random(h) >= identity_frac for h in hidden]
    return CompactNetwork(weights, biases, masks, nx, nu, residual=residual)


@pytest.fixture
def small_net():
    return random_net([6, 6], nx=3, nu=2, seed=2, identity_frac=0.3)


@pytest.fixture
def make_net():
    """The random network factory, for tests that need other sizes."""
    return random_net

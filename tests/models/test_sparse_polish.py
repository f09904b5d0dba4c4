"""Fine-tuning on the kept neurons only (narrow copy) and the full-batch L-BFGS polish, on real Pendulum data."""

import copy

import numpy as np
import pytest
import torch

from controlkit.models._sparse_compact import narrow_copy, write_back
from controlkit.models.data import collect
from controlkit.models.dynamics import DynamicsModel, TrainSettings, fit, polish, rollout_mse, train_dense
from controlkit.models.sparsify import IDENTITY, RELU, REMOVED, NeuronGates, SparsifySettings, _finetune, fixed_gates


@pytest.fixture(scope="module")
def split():
    torch.set_num_threads(1)
    return collect("Pendulum-v1", 12, 30, seed=4).split(0.25, seed=0)


def _masked(train, seed=0):
    model = DynamicsModel(train.nx, train.nu, [24, 16], seed=seed)
    model.fit_normalisation(train)
    rng = np.random.default_rng(seed)
    modes = [torch.as_tensor(rng.choice([RELU, IDENTITY, REMOVED], size=n)) for n in model.hidden]
    return model, modes


def test_narrow_copy_predicts_like_the_masked_model_and_writes_back(split):
    train, _ = split
    model, modes = _masked(train)
    keep = [m != REMOVED for m in modes]
    small = narrow_copy(model, keep)
    assert small.hidden == [int(k.sum()) for k in keep] < model.hidden
    x, u, _ = (torch.as_tensor(a, dtype=torch.float32) for a in train.transitions())
    with torch.no_grad():
        want = model.step(x, u, fixed_gates(modes))
        got = small.step(x, u, fixed_gates([m[k] for m, k in zip(modes, keep)]))
    torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-5)
    with torch.no_grad():
        for lin in small.linears:
            lin.weight.mul_(2.0)
    before = copy.deepcopy(model.state_dict())
    write_back(model, small, keep)
    w = model.linears[1].weight
    k0, k1 = keep
    assert torch.equal(w[k1][:, k0], small.linears[1].weight)
    # Removed neurons' rows and columns are left alone.
    old = before["linears.1.weight"]
    assert torch.equal(w[~k1], old[~k1]) and torch.equal(w[:, ~k0], old[:, ~k0])


def test_narrow_finetune_matches_the_full_width_finetune(split):
    train, val = split
    settings = TrainSettings(epochs=3, batch_size=32, rollout_steps=3, eval_steps=5)
    narrow, modes = _masked(train)
    full = copy.deepcopy(narrow)
    result = _finetune(narrow, modes, train, val, settings, seed=3, epochs=3, lr=1e-3, polish_iterations=0)
    gates = NeuronGates(full.hidden, SparsifySettings(schedule=[8]), seed=0)
    for m, saved in zip(gates.modes, modes):
        m.copy_(saved)
    reference = fit(full, train, val, settings, seed=3, gates=gates, epochs=3, lr=1e-3)
    assert result.epochs == reference.epochs == 3
    np.testing.assert_allclose(result.history, reference.history, rtol=1e-3)
    g = fixed_gates(modes)
    assert rollout_mse(narrow, val, 5, g) == pytest.approx(rollout_mse(full, val, 5, g), rel=1e-3)


def test_polish_lowers_the_error_and_keeps_the_best_weights(split):
    train, val = split
    settings = TrainSettings(epochs=15, batch_size=32, rollout_steps=3, eval_steps=5)
    model, fitted = train_dense(train, val, [16, 16], settings, seed=0)
    start = rollout_mse(model, val, 5)
    result = polish(model, train, val, settings, iterations=60, eval_every=10, previous=fitted)
    assert 0 < result.polish_iterations <= 60 and result.epochs == fitted.epochs
    assert len(result.history) > len(fitted.history)
    assert result.best_val_error == pytest.approx(rollout_mse(model, val, 5), rel=1e-6)
    assert result.best_val_error < 0.9 * start  # 15 Adam epochs leave a lot for L-BFGS on this tiny net
    # train_dense runs the same polish when the settings ask for it (here on every other rollout window).
    again, fitted_again = train_dense(train, val, [16, 16], settings.model_copy(
        update={"polish_iterations": 60, "polish_window_stride": 2}), seed=0)
    assert 0 < fitted_again.polish_iterations <= 60 and fitted_again.best_val_error < 0.9 * start


def test_warm_restart_adds_a_cycle_and_never_loses_the_first(split):
    train, val = split
    settings = TrainSettings(epochs=10, batch_size=32, rollout_steps=3, eval_steps=5)
    _, once = train_dense(train, val, [16, 16], settings, seed=0)
    model, twice = train_dense(train, val, [16, 16], settings.model_copy(update={"restart_epochs": 6}), seed=0)
    assert twice.epochs == 16 and len(twice.history) == 16 and twice.history[:10] == once.history
    assert twice.best_val_error == min(twice.history) <= once.best_val_error
    assert rollout_mse(model, val, 5) == pytest.approx(twice.best_val_error, rel=1e-6)

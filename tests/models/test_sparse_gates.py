"""The three-form neuron relaxation: Gumbel-softmax samples, the penalty ordering, commits along a schedule."""

import numpy as np
import pytest
import torch

from controlkit.core.errors import ControlkitError
from controlkit.models.sparsify import IDENTITY, RELU, REMOVED, NeuronGates, SparsifySettings


def _gates(hidden=(40, 40), **kw):
    return NeuronGates(list(hidden), SparsifySettings(**kw), seed=0)


def test_relaxation_samples_all_three_forms_and_passes_gradients():
    gates = _gates(init_logit=0.0)  # equal logits: every form is likely
    sample = gates.sample()
    assert [g.shape for g in sample] == [(40, 2), (40, 2)]
    forms = torch.cat([torch.where(g[:, 0] > 0.5, RELU, torch.where(g[:, 1] > 0.5, IDENTITY, REMOVED))
                       for g in sample])
    assert set(forms.tolist()) == {RELU, IDENTITY, REMOVED}
    # Hard samples: each coefficient is exactly 0 or 1 and at most one is 1 (both 0 = removed).
    flat = torch.cat(sample).detach()
    assert torch.all((flat == 0) | (flat == 1)) and torch.all(flat.sum(1) <= 1)
    # Straight-through: a loss on the hard sample reaches every logit.
    loss = sum((g * torch.randn(g.shape, generator=torch.Generator().manual_seed(1))).sum() for g in sample)
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in gates.logits)


def test_same_seed_same_samples():
    a, b = _gates(init_logit=0.0), _gates(init_logit=0.0)
    assert all(torch.equal(x, y) for x, y in zip(a.sample(), b.sample()))


def test_penalty_orders_relu_over_identity_over_removed():
    values = []
    for form in (RELU, IDENTITY, REMOVED):
        gates = _gates(sparsity_weight=1.0, identity_cost=0.3)
        with torch.no_grad():
            for logit in gates.logits:
                logit.zero_()
                logit[:, form] = 50.0
        values.append(float(gates.penalty().detach()))
    assert values[0] == pytest.approx(80.0) and values[1] == pytest.approx(24.0) and values[2] == pytest.approx(0.0)


def test_commit_keeps_the_most_confident_relus_and_forms_only_move_forward():
    gates = _gates(hidden=(6, 4))
    with torch.no_grad():
        gates.logits[0].copy_(torch.tensor([[5, 0, 0], [4, 0, 0], [0, 3, 0], [0, 0, 3], [3, 0, 0], [1, 0, 0.]]))
        gates.logits[1].copy_(torch.tensor([[2, 0, 0], [0, 0, 2], [0, 0, 2], [0, 0, 2.]]))
    gates.commit(3)
    assert gates.modes[0].tolist() == [RELU, RELU, IDENTITY, REMOVED, RELU, IDENTITY]
    # Layer 1 would lose all neurons but the ReLU one; it keeps it.
    assert gates.modes[1].tolist() == [IDENTITY, REMOVED, REMOVED, REMOVED]
    assert gates.counts() == {"relu": 3, "identity": 3, "removed": 4}
    gates.reset_logits()
    probs = gates.probs()
    # A removed neuron can never come back, an identity neuron never becomes ReLU again.
    assert torch.all(probs[0][3] == torch.tensor([0.0, 0.0, 1.0]))
    assert probs[0][2, RELU] == 0 and probs[0][2, IDENTITY] > 0.5
    assert all(torch.all(g[m == REMOVED] == 0) for g, m in zip(gates.sample(), gates.modes))


def test_layers_keep_at_least_one_neuron():
    gates = _gates(hidden=(3, 3))
    with torch.no_grad():
        for logit in gates.logits:
            logit.copy_(torch.tensor([[0.0, 0.0, 5.0]] * 3))
    gates.commit(1)
    assert [int((m != REMOVED).sum()) for m in gates.modes] == [1, 1]


def test_schedule_validation():
    with pytest.raises(ValueError, match="strictly decrease; it does not at 32 -> 64"):
        SparsifySettings(schedule=[128, 32, 64])
    with pytest.raises(ControlkitError, match="sparsify.schedule: first target 300 ReLUs exceeds the network's 256"):
        SparsifySettings(schedule=[300, 100]).check_network([128, 128])
    assert np.all(np.diff(SparsifySettings().schedule) < 0)


def test_operating_point_is_the_fewest_relus_within_tolerance():
    from controlkit.models.sparsify import RoundResult, SparsifyResult, select_operating_point

    def point(i, relus, err):
        return RoundResult(i, relus, relus, 0, 0, err / 5, err, 1, state={}, modes=[])

    rounds = [point(0, 256, 1.0), point(1, 128, 1.2), point(2, 64, 1.6), point(3, 32, 1.4), point(4, 16, 3.0)]
    assert select_operating_point(rounds, 1.5) == 3
    assert SparsifyResult(rounds, select_operating_point(rounds, 1.5), 1.5).target_met
    assert select_operating_point(rounds, 1.1) == 0
    assert not SparsifyResult(rounds, 0, 1.1).target_met

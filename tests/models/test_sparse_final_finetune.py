"""The optional final fine-tune: one round, the one that could move the operating point to fewer ReLUs."""

import numpy as np
import torch

from controlkit.models.data import collect
from controlkit.models.dynamics import TrainSettings, rollout_mse, train_dense
from controlkit.models.sparsify import SparsifySettings, fixed_gates, sparsify


def _run(**settings):
    torch.set_num_threads(1)
    data = collect("Pendulum-v1", 10, 25, seed=0)
    train, val = data.split(0.2, seed=0)
    dense_settings = TrainSettings(epochs=20, batch_size=16, rollout_steps=3, eval_steps=5)
    model, _ = train_dense(train, val, [16, 16], dense_settings, seed=0)
    ts = TrainSettings(epochs=1, rollout_steps=3, eval_steps=5)  # rounds far from converged: worse than dense
    seen = []
    sp = SparsifySettings(schedule=[16, 8, 2], search_epochs=1, finetune_epochs=1, **settings)
    return model, val, sparsify(model, train, val, sp, ts, seed=0, on_round=seen.append), seen


def test_final_finetune_retrains_the_smallest_candidate_and_keeps_the_better():
    # tolerance 1 and an unbounded window: every round worse than the dense model is a candidate.
    _, _, plain, _ = _run(tolerance=1.0)
    model, val, result, seen = _run(tolerance=1.0, final_finetune_epochs=4, final_finetune_within=1e9)
    dense = plain.rounds[0].val_rollout
    candidates = [r for r in plain.rounds[1:] if r.val_rollout > dense and r.n_relu < plain.best.n_relu]
    assert candidates, "the tiny run should leave a round worse than the dense model"
    target = min(candidates, key=lambda r: r.n_relu)
    extra = seen[len(plain.rounds):]
    assert len(extra) == 1 and extra[0].final_finetune and extra[0].round == target.round
    assert target.epochs < extra[0].epochs <= target.epochs + 4
    # Same seed, same rounds before the final fine-tune; the round is replaced only if it got better.
    kept = result.rounds[target.round]
    assert kept.val_rollout == min(target.val_rollout, extra[0].val_rollout)
    assert [r.val_rollout for i, r in enumerate(result.rounds) if i != target.round] == \
        [r.val_rollout for i, r in enumerate(plain.rounds) if i != target.round]
    # The recorded state reproduces the recorded error.
    model.load_state_dict(kept.state)
    assert np.isclose(rollout_mse(model, val, 5, fixed_gates(kept.modes)), kept.val_rollout)


def test_no_final_finetune_without_a_candidate():
    _, _, result, seen = _run(final_finetune_epochs=4, final_finetune_within=1.0)  # window (1.5x, 1x]: empty
    assert len(seen) == len(result.rounds) and not any(r.final_finetune for r in seen)


def test_final_finetune_goes_on_to_the_next_round_until_one_meets_the_tolerance():
    # tolerance 1: no final fine-tune can meet it, so two rounds get one, the fewest ReLUs first.
    _, _, plain, _ = _run(tolerance=1.0)
    _, _, result, seen = _run(tolerance=1.0, final_finetune_epochs=2, final_finetune_within=1e9,
                              final_finetune_rounds=2)
    extra = seen[len(plain.rounds):]
    order = sorted((r for r in plain.rounds[1:] if r.val_rollout > plain.rounds[0].val_rollout),
                   key=lambda r: r.n_relu)
    assert [r.round for r in extra] == [r.round for r in order[:2]] and all(r.final_finetune for r in extra)
    # A tolerance between the first candidate's error before and after its fine-tune: it now meets it, so the
    # final fine-tune stops there (same seeds, same fine-tune).
    dense, before = plain.rounds[0].val_rollout, plain.rounds[extra[0].round].val_rollout
    assert extra[0].val_rollout < before
    tolerance = (extra[0].val_rollout * before) ** 0.5 / dense
    _, _, met, seen = _run(tolerance=tolerance, final_finetune_epochs=2, final_finetune_within=1e9,
                           final_finetune_rounds=2)
    assert [r.round for r in seen if r.final_finetune] == [extra[0].round]
    assert met.best.round == extra[0].round

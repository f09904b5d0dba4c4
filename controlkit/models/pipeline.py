"""One function from transitions to a sparse model: split, train the dense ReLU model, sparsify it.

Every experiment that learns dynamics (``kind: sparsify``, ``kind: model_based_control``) calls
:func:`learn_sparse_model`, so the two cannot drift apart; each then exports the rounds it needs with
:meth:`LearnedModel.compact`.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from typing import Any

from controlkit.models.data import TransitionData
from controlkit.models.dynamics import DynamicsModel, FitResult, TrainSettings, train_dense
from controlkit.models.network import CompactNetwork
from controlkit.models.sparsify import RoundResult, SparsifyResult, SparsifySettings, export_compact, sparsify


@dataclasses.dataclass
class LearnedModel:
    """What :func:`learn_sparse_model` returns.

    Attributes:
        model: The torch model (left at the state of the last sparsify round it ran).
        dense_fit: The dense training's record (epochs, validation history).
        result: Every sparsify round, the dense point and the selected operating point (``result.best``).
        train, val: The trajectory split used.
        timings: Wall and CPU seconds of the two stages (``dense_s``, ``dense_cpu_s``, ``sparsify_s``, ...).
    """

    model: DynamicsModel
    dense_fit: FitResult
    result: SparsifyResult
    train: TransitionData
    val: TransitionData
    timings: dict[str, float]

    def compact(self, point: RoundResult | None = None, metadata: dict[str, Any] | None = None) -> CompactNetwork:
        """Export one point of the schedule (default: the selected one) as a :class:`CompactNetwork`."""
        point = self.result.best if point is None else point
        self.model.load_state_dict(point.state)
        return export_compact(self.model, point.modes, metadata)


def learn_sparse_model(
    data: TransitionData,
    hidden: Sequence[int],
    train_settings: TrainSettings,
    sparsify_settings: SparsifySettings,
    seed: int,
    val_fraction: float = 0.2,
    residual: bool = True,
    on_round: Callable[[RoundResult], None] | None = None,
    progress: Callable | None = None,
) -> LearnedModel:
    """Split ``data`` by trajectories, train a dense ReLU model of ``hidden`` sizes, then sparsify it.

    Args:
        data: Transitions (states as the model should see them: apply any change of coordinates first).
        hidden: Hidden layer sizes of the dense model.
        train_settings: Dense training (and fine-tuning) settings.
        sparsify_settings: The ReLU schedule and the tolerance the operating point is selected with.
        seed: Seeds the split, the initialisation and the training.
        val_fraction: Share of trajectories held out for early stopping and selection.
        residual: Predict the change of state rather than the next state.
        on_round: Called after each sparsify round (for logging and metrics).
        progress: Optional progress-bar wrapper (the runner's, shown on a terminal only).
    """
    train, val = data.split(val_fraction, seed)
    # Wall and CPU seconds per stage: CPU is what a stage takes on an idle core, wall includes waiting for one.
    clock = [time.perf_counter(), time.process_time()]
    timings: dict[str, float] = {}

    def done(stage: str) -> None:
        wall, cpu = time.perf_counter(), time.process_time()
        timings[f"{stage}_s"], timings[f"{stage}_cpu_s"] = wall - clock[0], cpu - clock[1]
        clock[:] = [wall, cpu]

    model, fit = train_dense(train, val, hidden, train_settings, seed, residual=residual, progress=progress)
    done("dense")
    result = sparsify(model, train, val, sparsify_settings, train_settings, seed, on_round=on_round,
                      progress=progress)
    done("sparsify")
    return LearnedModel(model, fit, result, train, val, timings)

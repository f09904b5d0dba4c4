"""Sparsify a trained dynamics model: every hidden neuron becomes ReLU, identity or removed.

Each neuron carries three logits (ReLU, identity, removed). During a round's search phase the forms are drawn
as hard Gumbel-softmax samples (straight-through gradients, temperature annealed) and the logits train jointly
with the weights under a sparsity penalty in which a ReLU costs more than an identity and an identity more than
a removal. At the end of the round the ``target`` neurons most sure to be ReLU stay ReLU, the others become
identity or removed (whichever their logits prefer), and the weights are fine-tuned with these forms fixed.
Rounds follow a decreasing schedule of ReLU counts; forms only ever move ReLU -> identity -> removed.
Finally :func:`export_compact` turns the masked model into a :class:`~controlkit.models.network.CompactNetwork`.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt, PositiveInt, field_validator
from torch import nn

from controlkit.core.errors import ControlkitError
from controlkit.models._sparse_compact import narrow_copy, write_back
from controlkit.models.data import TransitionData
from controlkit.models.dynamics import DynamicsModel, FitResult, Gates, TrainSettings, fit, polish, rollout_mse
from controlkit.models.network import CompactNetwork

RELU, IDENTITY, REMOVED = 0, 1, 2
FORMS = ("relu", "identity", "removed")


class SparsifySettings(BaseModel):
    """The sparsification schedule and relaxation (also the ``sparsify:`` block of the experiment)."""

    model_config = ConfigDict(extra="forbid")

    schedule: list[PositiveInt] = Field(
        [128, 64, 48, 32, 24, 16], min_length=1, description="ReLU count after each round; strictly decreasing.")
    search_epochs: PositiveInt = Field(8, description="Epochs of joint weight + gate-logit training per round.")
    finetune_epochs: PositiveInt = Field(60, description="Maximum fine-tuning epochs per round (early stopping).")
    temperature_start: float = Field(1.0, gt=0, description="Gumbel-softmax temperature at a round's start.")
    temperature_end: float = Field(0.3, gt=0, description="Temperature at the end of a round's search.")
    sparsity_weight: float = Field(1e-3, ge=0, description="Weight of the sparsity penalty (sum over neurons).")
    identity_cost: float = Field(0.2, ge=0, lt=1, description="Penalty of an identity neuron; a ReLU costs 1.")
    weight_lr: float = Field(
        2e-3, gt=0, description="Adam learning rate of the weights in each round (cosine-decayed within the "
        "round). A low rate keeps the round near the dense weights but cannot repair what a commit removed.")
    gate_lr: float = Field(0.05, gt=0, description="Adam learning rate of the gate logits.")
    init_logit: float = Field(2.0, ge=0, description="Logit of a neuron's current form when a round starts.")
    tolerance: float = Field(1.5, ge=1, description="Operating point: fewest ReLUs with val error <= tolerance x dense.")
    final_finetune_epochs: NonNegativeInt = Field(
        0, description="After the schedule, fine-tune a round this many more epochs (0: off; no early stopping, "
        "the best epoch is kept): the one with the fewest ReLUs that misses the tolerance but is within "
        "final_finetune_within x dense and has fewer ReLUs than the current operating point (then the next, up to "
        "final_finetune_rounds). It replaces that round if it got better.")
    final_finetune_within: float = Field(
        3.0, ge=1, description="Error bound (x dense) for a round to get the final fine-tune.")
    final_finetune_rounds: PositiveInt = Field(
        1, description="At most this many rounds get the final fine-tune, the fewest ReLUs first; it stops at the "
        "first that meets the tolerance.")
    polish_iterations: NonNegativeInt = Field(
        0, description="Full-batch L-BFGS iterations after each round's fine-tune (0: none); see "
        "controlkit.models.dynamics.polish.")
    final_polish_iterations: NonNegativeInt = Field(
        0, description="Full-batch L-BFGS iterations after the final fine-tune's Adam epochs (0: none).")
    min_neurons_per_layer: NonNegativeInt = Field(1, description="Never remove the last neurons of a layer.")

    @field_validator("schedule")
    @classmethod
    def _decreasing(cls, v: list[int]) -> list[int]:
        bad = [f"{a} -> {b}" for a, b in zip(v, v[1:]) if b >= a]
        if bad:
            raise ValueError(f"the schedule must strictly decrease; it does not at {', '.join(bad)}")
        return v

    def check_network(self, hidden: Sequence[int], field: str = "sparsify.schedule") -> None:
        """Raise a ControlkitError if the schedule starts above the network's neuron count."""
        if self.schedule[0] > sum(hidden):
            raise ControlkitError(f"{field}: first target {self.schedule[0]} ReLUs exceeds the network's "
                                  f"{sum(hidden)} hidden neurons (hidden sizes {list(hidden)}).")


def fixed_gates(modes: Sequence[np.ndarray | torch.Tensor], dtype: torch.dtype = torch.float32) -> Gates:
    """Gates that apply fixed forms (0 ReLU, 1 identity, 2 removed), one array of forms per hidden layer."""
    return [nn.functional.one_hot(torch.as_tensor(m, dtype=torch.long), 3).to(dtype)[:, :2] for m in modes]


class NeuronGates(nn.Module):
    """Per-neuron form logits, their Gumbel-softmax samples, the committed forms and the sparsity penalty.

    Args:
        hidden: Hidden layer sizes of the model being gated.
        settings: Penalty weights, initial logit.
        seed: Seeds the Gumbel noise.
    """

    def __init__(self, hidden: Sequence[int], settings: SparsifySettings, seed: int) -> None:
        super().__init__()
        self.settings = settings
        self.temperature = settings.temperature_start
        self.logits = nn.ParameterList(nn.Parameter(torch.zeros(n, 3)) for n in hidden)
        for k, n in enumerate(hidden):
            self.register_buffer(f"modes{k}", torch.full((n,), RELU, dtype=torch.long))
        self._gen = torch.Generator().manual_seed(seed)
        self.reset_logits()

    @property
    def modes(self) -> list[torch.Tensor]:
        """Committed form of each neuron, one long tensor per layer (0 ReLU, 1 identity, 2 removed)."""
        return [getattr(self, f"modes{k}") for k in range(len(self.logits))]

    def counts(self) -> dict[str, int]:
        """Number of neurons in each committed form."""
        flat = torch.cat(self.modes)
        return {f: int((flat == i).sum()) for i, f in enumerate(FORMS)}

    def _allowed(self, k: int) -> torch.Tensor:
        # Forms only move forward (ReLU -> identity -> removed), so each round searches within the last one's.
        return torch.arange(3)[None, :] >= self.modes[k][:, None]

    def _masked_logits(self, k: int) -> torch.Tensor:
        return self.logits[k].masked_fill(~self._allowed(k), float("-inf"))

    def reset_logits(self) -> None:
        """Start a round: the current form gets ``init_logit``, the other allowed forms 0."""
        with torch.no_grad():
            for k, logit in enumerate(self.logits):
                logit.copy_(self.settings.init_logit * nn.functional.one_hot(self.modes[k], 3).float())

    def probs(self) -> list[torch.Tensor]:
        """Softmax over the allowed forms, per neuron."""
        return [torch.softmax(self._masked_logits(k), dim=1) for k in range(len(self.logits))]

    def sample(self) -> Gates:
        """Hard Gumbel-softmax sample of every neuron's form (straight-through gradient to the logits)."""
        gates = []
        for k in range(len(self.logits)):
            logits = self._masked_logits(k)
            u = torch.rand(logits.shape, generator=self._gen).clamp_(1e-10, 1.0 - 1e-7)
            soft = torch.softmax((logits - torch.log(-torch.log(u))) / self.temperature, dim=1)
            hard = nn.functional.one_hot(soft.argmax(dim=1), 3).to(soft.dtype)
            gates.append((hard - soft.detach() + soft)[:, :2])
        return gates

    def fixed(self) -> Gates:
        """The committed forms as gates (no randomness, no gradient)."""
        return fixed_gates(self.modes)

    def penalty(self) -> torch.Tensor:
        """``sparsity_weight * sum(P(ReLU) + identity_cost * P(identity))`` over all neurons."""
        cost = torch.tensor([1.0, self.settings.identity_cost, 0.0])
        return self.settings.sparsity_weight * sum((p * cost).sum() for p in self.probs())

    def commit(self, target: int) -> None:
        """Fix forms for a round: at most ``target`` ReLUs (the most confident), others identity or removed."""
        probs = [p.detach() for p in self.probs()]
        flat_p = torch.cat(probs)
        flat_mode = torch.cat(self.modes)
        prefer = flat_p.argmax(dim=1)
        relu_score = torch.where((flat_mode == RELU) & (prefer == RELU), flat_p[:, RELU], torch.tensor(-1.0))
        keep = torch.zeros_like(flat_mode, dtype=torch.bool)
        n_keep = min(target, int((relu_score >= 0).sum()))
        keep[torch.argsort(relu_score, descending=True, stable=True)[:n_keep]] = True
        # Neurons that stop being ReLU go to identity or removed, whichever their logits prefer.
        rest = torch.where(flat_p[:, IDENTITY] >= flat_p[:, REMOVED], IDENTITY, REMOVED)
        rest = torch.maximum(rest, flat_mode)
        new = torch.where(keep, torch.full_like(flat_mode, RELU), rest)
        start = 0
        for k, m in enumerate(self.modes):
            layer = new[start:start + len(m)]
            self._keep_layer_alive(layer, probs[k])
            m.copy_(layer)
            start += len(m)

    def _keep_layer_alive(self, layer: torch.Tensor, probs: torch.Tensor) -> None:
        need = min(self.settings.min_neurons_per_layer, len(layer)) - int((layer != REMOVED).sum())
        if need > 0:
            candidates = torch.argsort(probs[:, IDENTITY] - 2.0 * (layer != REMOVED).float(), descending=True)
            layer[candidates[:need]] = IDENTITY


@dataclasses.dataclass
class RoundResult:
    """One point of the accuracy-sparsity curve (round 0 is the dense model)."""

    round: int
    target: int
    n_relu: int
    n_identity: int
    n_removed: int
    val_one_step: float
    val_rollout: float
    epochs: int
    state: dict[str, Any] = dataclasses.field(repr=False)
    modes: list[np.ndarray] = dataclasses.field(repr=False)
    polish_iterations: int = 0
    final_finetune: bool = False

    def row(self) -> dict[str, Any]:
        """The round as a flat metrics row."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in ("state", "modes")}


@dataclasses.dataclass
class SparsifyResult:
    """All rounds and the selected operating point."""

    rounds: list[RoundResult]
    selected: int
    tolerance: float

    @property
    def dense(self) -> RoundResult:
        return self.rounds[0]

    @property
    def best(self) -> RoundResult:
        return self.rounds[self.selected]

    @property
    def target_met(self) -> bool:
        """Whether some sparsified round (not only the dense model) is within ``tolerance`` x the dense error."""
        return self.selected > 0


class _FixedForms:
    """A :class:`~controlkit.models.dynamics.GateSource` with fixed forms only (nothing to learn)."""

    def __init__(self, modes: Sequence[np.ndarray | torch.Tensor]) -> None:
        self._gates = fixed_gates(modes)

    def fixed(self) -> Gates:
        return self._gates


def _finetune(model: DynamicsModel, modes: Sequence[torch.Tensor], train: TransitionData, val: TransitionData,
              settings: TrainSettings, seed: int, epochs: int, lr: float, polish_iterations: int) -> FitResult:
    # Fixed forms: train only the kept neurons (a narrow copy, same gradients), then the optional L-BFGS polish.
    # Other models with the same interface (e.g. controlkit.models.graph.GraphDynamics) train at full width: removed
    # neurons get zero gradient there too, so only the speed differs.
    if not isinstance(model, DynamicsModel):
        forms = _FixedForms(modes)
        result = fit(model, train, val, settings, seed=seed, gates=forms, epochs=epochs, lr=lr)
        if polish_iterations:
            result = polish(model, train, val, settings, gates=forms, iterations=polish_iterations, previous=result)
        return result
    keep = [m != REMOVED for m in modes]
    small = narrow_copy(model, keep)
    forms = _FixedForms([m[k] for m, k in zip(modes, keep)])
    result = fit(small, train, val, settings, seed=seed, gates=forms, epochs=epochs, lr=lr)
    if polish_iterations:
        result = polish(small, train, val, settings, gates=forms, iterations=polish_iterations, previous=result)
    write_back(model, small, keep)
    return result


def _record(model: DynamicsModel, gates: NeuronGates, val: TransitionData, steps: int, index: int, target: int,
            epochs: int, polish_iterations: int = 0) -> RoundResult:
    fixed = gates.fixed()
    counts = gates.counts()
    return RoundResult(
        round=index, target=target, n_relu=counts["relu"], n_identity=counts["identity"],
        n_removed=counts["removed"], val_one_step=rollout_mse(model, val, 1, fixed),
        val_rollout=rollout_mse(model, val, steps, fixed), epochs=epochs, polish_iterations=polish_iterations,
        state=copy.deepcopy(model.state_dict()), modes=[m.numpy().copy() for m in gates.modes],
    )


def select_operating_point(rounds: Sequence[RoundResult], tolerance: float) -> int:
    """Index of the round with the fewest ReLUs whose rollout error is within ``tolerance`` x the dense one.

    If no sparsified round qualifies, the dense model (index 0) is the operating point.
    """
    limit = tolerance * rounds[0].val_rollout
    ok = [i for i, r in enumerate(rounds) if r.val_rollout <= limit]
    return min(ok, key=lambda i: (rounds[i].n_relu, rounds[i].val_rollout))


def sparsify(
    model: DynamicsModel,
    train: TransitionData,
    val: TransitionData,
    settings: SparsifySettings,
    train_settings: TrainSettings,
    seed: int,
    on_round: Callable[[RoundResult], None] | None = None,
    progress: Callable | None = None,
) -> SparsifyResult:
    """Run the schedule on a trained dense ``model`` (modified in place; it ends at the last round, or at the
    last round that got a final fine-tune if ``settings.final_finetune_epochs`` is set).

    Args:
        model: Trained dense model.
        train: Training trajectories.
        val: Validation trajectories (early stopping, curve).
        settings: Schedule, relaxation, penalty.
        train_settings: Batch size, learning rate, rollout loss, patience, evaluation horizon.
        seed: Seeds the Gumbel noise and minibatch order.
        on_round: Called with each :class:`RoundResult` as it completes (round 0 = dense), and once more for the
            result of each final fine-tune (``final_finetune`` True), kept in ``rounds`` only if it is better.
        progress: Optional iterator wrapper for the rounds.

    Raises:
        ControlkitError: if the schedule starts above the model's hidden neuron count.
    """
    settings.check_network(model.hidden)
    gates = NeuronGates(model.hidden, settings, seed=seed)
    steps = train_settings.eval_steps
    rounds = [_record(model, gates, val, steps, 0, model.n_relu, 0)]
    if on_round:
        on_round(rounds[0])
    ratio = settings.temperature_end / settings.temperature_start

    def anneal(epoch: int, n: int) -> None:
        gates.temperature = settings.temperature_start * ratio ** (epoch / max(1, n - 1))

    targets = enumerate(settings.schedule, start=1)
    for index, target in (targets if progress is None else progress(targets, total=len(settings.schedule),
                                                                        desc="rounds")):
        gates.reset_logits()
        fit(model, train, val, train_settings, seed=seed + 2 * index, gates=gates, learn_gates=True,
            epochs=settings.search_epochs, lr=settings.weight_lr, gate_lr=settings.gate_lr, on_epoch=anneal)
        gates.commit(target)
        tuned = _finetune(model, gates.modes, train, val, train_settings, seed=seed + 2 * index + 1,
                          epochs=settings.finetune_epochs, lr=settings.weight_lr,
                          polish_iterations=settings.polish_iterations)
        rounds.append(_record(model, gates, val, steps, index, target, settings.search_epochs + tuned.epochs,
                              tuned.polish_iterations))
        if on_round:
            on_round(rounds[-1])
    if settings.final_finetune_epochs:
        _final_finetune(model, gates, rounds, train, val, settings, train_settings, seed + 2 * len(rounds), on_round)
    return SparsifyResult(rounds, select_operating_point(rounds, settings.tolerance), settings.tolerance)


def _final_finetune(model: DynamicsModel, gates: NeuronGates, rounds: list[RoundResult], train: TransitionData,
                    val: TransitionData, settings: SparsifySettings, train_settings: TrainSettings, seed: int,
                    on_round: Callable[[RoundResult], None] | None) -> None:
    # The rounds' fine-tunes are short to keep the curve cheap; the budget goes to the rounds that could move the
    # operating point to fewer ReLUs, the fewest first, until one of them meets the tolerance.
    dense, selected = rounds[0].val_rollout, rounds[select_operating_point(rounds, settings.tolerance)]
    candidates = sorted((i for i, r in enumerate(rounds) if i > 0 and r.n_relu < selected.n_relu
                         and settings.tolerance * dense < r.val_rollout <= settings.final_finetune_within * dense),
                        key=lambda j: rounds[j].n_relu)
    # No early stopping here: the cosine-decayed learning rate makes most of its progress in the last epochs,
    # which a patience rule cuts off (the best weights are still the ones kept).
    no_stop = train_settings.model_copy(update={"patience": settings.final_finetune_epochs})
    for n, i in enumerate(candidates[:settings.final_finetune_rounds]):
        model.load_state_dict(rounds[i].state)
        for mode, saved in zip(gates.modes, rounds[i].modes):
            mode.copy_(torch.as_tensor(saved))
        tuned = _finetune(model, gates.modes, train, val, no_stop, seed=seed + n,
                          epochs=settings.final_finetune_epochs, lr=settings.weight_lr,
                          polish_iterations=settings.final_polish_iterations)
        again = _record(model, gates, val, train_settings.eval_steps, rounds[i].round, rounds[i].target,
                        rounds[i].epochs + tuned.epochs, rounds[i].polish_iterations + tuned.polish_iterations)
        again.final_finetune = True
        if on_round:
            on_round(again)
        if again.val_rollout < rounds[i].val_rollout:
            rounds[i] = again
        if again.val_rollout <= settings.tolerance * dense:
            break


def export_compact(model: DynamicsModel, modes: Sequence[np.ndarray | torch.Tensor],
                   metadata: dict[str, Any] | None = None) -> CompactNetwork:
    """The masked model as a :class:`CompactNetwork` on raw ``[x, u]``.

    Removed neurons are dropped (their rows and the next layer's columns), identity neurons keep a False mask,
    input normalisation is folded into the first layer and output de-normalisation into the last, so
    ``net.step(x, u)`` equals ``model.step(x, u, fixed gates)`` up to float rounding.
    """
    modes = [np.asarray(m) for m in modes]
    if [len(m) for m in modes] != model.hidden:
        raise ControlkitError(f"export: modes sizes {[len(m) for m in modes]} != hidden sizes {model.hidden}.")
    weights = [lin.weight.detach().double().numpy().copy() for lin in model.linears]
    biases = [lin.bias.detach().double().numpy().copy() for lin in model.linears]
    in_mean, in_std = model.in_mean.double().numpy(), model.in_std.double().numpy()
    out_mean, out_std = model.out_mean.double().numpy(), model.out_std.double().numpy()
    # W (x - m) / s + b = (W / s) x + (b - W (m / s))
    biases[0] = biases[0] - weights[0] @ (in_mean / in_std)
    weights[0] = weights[0] / in_std[None, :]
    # s (W h + b) + m = (s W) h + (s b + m)
    weights[-1] = out_std[:, None] * weights[-1]
    biases[-1] = out_std * biases[-1] + out_mean
    masks = []
    for k, m in enumerate(modes):
        keep = m != REMOVED
        weights[k], biases[k] = weights[k][keep], biases[k][keep]
        weights[k + 1] = weights[k + 1][:, keep]
        masks.append(m[keep] == RELU)
    return CompactNetwork(weights, biases, masks, nx=model.nx, nu=model.nu, residual=model.residual,
                          metadata=dict(metadata or {}))


def export_gap(model: DynamicsModel, modes: Sequence[np.ndarray], net: CompactNetwork, x: np.ndarray,
               u: np.ndarray) -> float:
    """Largest absolute difference of next-state predictions between the masked model (float64) and ``net``."""
    ref = copy.deepcopy(model).double()
    with torch.no_grad():
        want = ref.step(torch.as_tensor(x, dtype=torch.float64), torch.as_tensor(u, dtype=torch.float64),
                        fixed_gates(modes, torch.float64)).numpy()
    return float(np.max(np.abs(net.step(x, u) - want)))


__all__ = [
    "FORMS",
    "IDENTITY",
    "RELU",
    "REMOVED",
    "NeuronGates",
    "RoundResult",
    "SparsifyResult",
    "SparsifySettings",
    "export_compact",
    "export_gap",
    "fixed_gates",
    "select_operating_point",
    "sparsify",
]

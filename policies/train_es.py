"""Evolution strategies for NCAP and MLP swimmers: antithetic sampling, centred-rank shaping, Adam (OpenAI-ES).

Each iteration draws ``population / 2`` Gaussian directions, scores ``theta ± sigma * eps`` on the same episode
seed (common random numbers: a pair differs only by its perturbation), turns the returns into centred ranks and
steps Adam along the estimated gradient. Episodes run through the policy's numpy form, so an iteration costs the
physics plus microseconds of policy. The original NCAP work used population 8, sigma 0.02, Adam lr 0.01.
Optionally ``method="cma"`` runs CMA-ES (the ``cma`` library) instead, suitable for NCAP's few parameters.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

import numpy as np
import torch
from controlkit.envs.swimmer import EPISODE_STEPS, SwimmerEnv
from controlkit.policies._rollout import episode_return, evaluate
from torch import nn

from controlkit.core.errors import ControlkitError, choices_error

ES_METHODS = ("openai", "cma")


@dataclasses.dataclass
class TrainingCurve:
    """Evaluation returns of the current (mean) policy against training env steps."""

    env_steps: list[int] = dataclasses.field(default_factory=list)
    returns: list[list[float]] = dataclasses.field(default_factory=list)  # per evaluation episode
    wall_s: list[float] = dataclasses.field(default_factory=list)

    def add(self, steps: int, returns: list[float], wall_s: float) -> None:
        self.env_steps.append(int(steps))
        self.returns.append([float(r) for r in returns])
        self.wall_s.append(float(wall_s))

    @property
    def mean(self) -> np.ndarray:
        return np.array([np.mean(r) for r in self.returns])


def get_flat(module: nn.Module) -> np.ndarray:
    """All trainable parameters as one float64 vector."""
    return torch.nn.utils.parameters_to_vector(module.parameters()).detach().double().numpy().copy()


def set_flat(module: nn.Module, vec: np.ndarray) -> None:
    """Copy ``vec`` into the parameters in place (so their version counters move and cached forms refresh)."""
    i = 0
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.as_tensor(vec[i:i + p.numel()], dtype=p.dtype).view_as(p))
            i += p.numel()


def _score(module: nn.Module, vec: np.ndarray, env: SwimmerEnv, seed: int) -> float:
    set_flat(module, vec)
    return episode_return(module.to_numpy(), env, seed)


def centred_ranks(x: np.ndarray) -> np.ndarray:
    """Ranks scaled to [-0.5, 0.5] (ties broken by order): shaping that ignores the returns' scale."""
    ranks = np.empty(len(x))
    ranks[np.argsort(x, kind="stable")] = np.arange(len(x))
    return ranks / max(len(x) - 1, 1) - 0.5


def train_es(
    policy: nn.Module,
    env: SwimmerEnv,
    total_steps: int,
    population: int = 8,
    sigma: float = 0.02,
    lr: float = 0.01,
    method: str = "openai",
    seed: int = 0,
    eval_every: int = 10_000,
    eval_seeds: tuple[int, ...] = tuple(range(10_000, 10_005)),
    callback: Callable[[int, float], None] | None = None,
) -> TrainingCurve:
    """Train ``policy`` (NCAPPolicy or MLPPolicy, in place) for ``total_steps`` env steps.

    Args:
        policy: A module with ``to_numpy()``; its parameters are updated in place.
        env: The (unwrapped) swimmer env episodes run in.
        total_steps: Training budget in env steps (evaluation episodes are not counted).
        population: Episodes per iteration, an even number (``population / 2`` antithetic pairs).
        sigma: Perturbation scale.
        lr: Adam step size.
        method: ``"openai"`` (antithetic, rank-shaped, Adam) or ``"cma"`` (CMA-ES, ``sigma`` as initial step).
        seed: Seed of the perturbations and of the training episodes.
        eval_every: Evaluate the current policy every this many training env steps (and at 0 and the end).
        eval_seeds: Episode seeds of each evaluation (fixed, so curve points are comparable).
        callback: Called as ``callback(env_steps, mean_eval_return)`` after each evaluation.

    Returns:
        The learning curve.
    """
    if method not in ES_METHODS:
        raise choices_error("method", method, ES_METHODS)
    if population < 2 or population % 2:
        raise ControlkitError(f"population: must be an even number >= 2, got {population}.")
    if sigma <= 0 or lr <= 0:
        raise ControlkitError(f"sigma/lr: must be > 0, got sigma={sigma}, lr={lr}.")
    rng = np.random.default_rng(seed)
    curve = TrainingCurve()
    t0 = time.perf_counter()
    steps = 0

    def record() -> None:
        rets = evaluate(policy.to_numpy(), env, eval_seeds)
        curve.add(steps, rets, time.perf_counter() - t0)
        if callback is not None:
            callback(steps, float(np.mean(rets)))

    record()
    if method == "cma":
        from controlkit.core.extras import require

        cma = require("cma", "ES with method 'cma'")
        es = cma.CMAEvolutionStrategy(get_flat(policy), sigma, {"popsize": population, "verbose": -9,
                                                                "seed": int(rng.integers(1, 2**31 - 1))})
    else:
        opt = torch.optim.Adam(policy.parameters(), lr=lr)
    while steps + population * EPISODE_STEPS <= total_steps:  # never exceed the budget
        if method == "cma":
            cands = es.ask()
            sd = int(rng.integers(2**31 - 1))  # one seed per generation: candidates meet the same episode
            es.tell(cands, [-_score(policy, np.asarray(c), env, sd) for c in cands])
            set_flat(policy, es.result.xfavorite)  # the distribution mean is the policy we report
        else:
            _openai_es_step(policy, opt, env, population, sigma, rng)
        prev, steps = steps, steps + population * EPISODE_STEPS
        if steps // eval_every > prev // eval_every or steps + population * EPISODE_STEPS > total_steps:
            record()
    return curve


def _openai_es_step(policy: nn.Module, opt: torch.optim.Optimizer, env: SwimmerEnv, population: int,
                    sigma: float, rng: np.random.Generator) -> None:
    theta = get_flat(policy)
    eps = rng.standard_normal((population // 2, theta.size))
    seeds = rng.integers(2**31 - 1, size=population // 2)
    returns = np.array([[_score(policy, theta + s * sigma * e, env, int(sd)) for s in (1.0, -1.0)]
                        for e, sd in zip(eps, seeds)])
    u = centred_ranks(returns.ravel()).reshape(returns.shape)
    grad = ((u[:, 0] - u[:, 1]) @ eps) / (population * sigma)
    set_flat(policy, theta)
    i = 0
    for p in policy.parameters():  # Adam minimises, so it gets the negative ascent direction
        p.grad = torch.as_tensor(-grad[i:i + p.numel()], dtype=p.dtype).view_as(p).clone()
        i += p.numel()
    opt.step()


__all__ = ["ES_METHODS", "TrainingCurve", "centred_ranks", "get_flat", "set_flat", "train_es"]

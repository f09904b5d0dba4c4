"""PPO (stable-baselines3) with an NCAP or MLP actor and an MLP critic.

SB3's ``ActorCriticPolicy`` computes ``action_net(latent_pi)`` for the Gaussian mean. :class:`ModuleActorPolicy`
makes ``latent_pi`` the raw observation and ``action_net`` our actor module (NCAP or MLP), keeps SB3's MLP for
the critic only, and fixes the action std (0.1 in the original NCAP runs) so both actors train under identical
settings. The swimmer env runs with ``time_obs=True`` so the actor sees the step index (NCAP's oscillator clock)
even across SB3's automatic resets.

On the discount: swimmer rewards arrive every step but a stroke pays off over seconds; with gamma 0.99 the
effective horizon is 100 steps (3 s) and PPO on gymnasium's Swimmer is known to stall. We default to 0.995 and
expose it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import controlkit.envs  # noqa: F401  (registers controlkit/Swimmer-v0 for make_vec_env)
import numpy as np
import torch
from controlkit.envs.swimmer import SwimmerEnv
from controlkit.policies._rollout import evaluate
from controlkit.policies.mlp import MLPPolicy
from controlkit.policies.ncap import NCAPPolicy
from controlkit.policies.train_es import TrainingCurve

try:
    from stable_baselines3 import PPO
except ImportError as _exc:  # an optional extra: say which one installs it
    from controlkit.core.extras import missing_extra

    raise missing_extra("stable_baselines3", "PPO training (stable-baselines3)") from _exc
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.policies import ActorCriticPolicy
from torch import nn

from controlkit.core.errors import choices_error

ACTORS = ("ncap", "mlp")


class _CriticOnlyExtractor(nn.Module):
    """SB3's extractor slot: the actor latent is the observation itself, the critic latent an MLP of it."""

    def __init__(self, obs_dim: int, critic_arch: tuple[int, ...]) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for a, b in zip((obs_dim, *critic_arch[:-1]), critic_arch):
            layers += [nn.Linear(a, b), nn.Tanh()]
        self.critic = nn.Sequential(*layers)
        self.latent_dim_pi = obs_dim
        self.latent_dim_vf = critic_arch[-1]

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return features, self.critic(features)

    def forward_actor(self, features: torch.Tensor) -> torch.Tensor:
        return features

    def forward_critic(self, features: torch.Tensor) -> torch.Tensor:
        return self.critic(features)


class ModuleActorPolicy(ActorCriticPolicy):
    """SB3 actor-critic policy whose actor is an :class:`NCAPPolicy` or :class:`MLPPolicy`.

    Extra policy kwargs:
        actor: ``"ncap"`` or ``"mlp"``.
        actor_kwargs: Passed to ``NCAPPolicy.for_env``-style construction (``n_joints``, ``time_obs`` are set here).
        critic_arch: Hidden widths of the critic MLP.
        fixed_std: Fixed action std (``None`` learns it, from SB3's ``log_std_init``).
    """

    def __init__(self, observation_space, action_space, lr_schedule, actor: str = "ncap",
                 actor_kwargs: dict[str, Any] | None = None, critic_arch: tuple[int, ...] = (256, 256),
                 fixed_std: float | None = 0.1, **kwargs: Any) -> None:
        if actor not in ACTORS:
            raise choices_error("actor", actor, ACTORS)
        self._actor_kind, self._actor_kwargs = actor, dict(actor_kwargs or {})
        self._critic_arch, self._fixed_std = tuple(critic_arch), fixed_std
        super().__init__(observation_space, action_space, lr_schedule, **kwargs)

    def _build_mlp_extractor(self) -> None:
        self.mlp_extractor = _CriticOnlyExtractor(self.features_dim, self._critic_arch)

    def _build(self, lr_schedule) -> None:
        super()._build(lr_schedule)
        obs_dim, act_dim = self.features_dim, int(np.prod(self.action_space.shape))
        if self._actor_kind == "ncap":
            self.action_net = NCAPPolicy(act_dim, time_obs=True, **self._actor_kwargs)
        else:
            self.action_net = MLPPolicy(obs_dim, act_dim, **self._actor_kwargs)
        if self._fixed_std is not None:
            self.log_std = nn.Parameter(torch.full((act_dim,), float(np.log(self._fixed_std))), requires_grad=False)
        self.optimizer = self.optimizer_class(
            [p for p in self.parameters() if p.requires_grad], lr=lr_schedule(1), **self.optimizer_kwargs)


class _EvalCallback(BaseCallback):
    """Evaluate the deterministic actor (its numpy form) every ``every`` env steps."""

    def __init__(self, every: int, env: SwimmerEnv, seeds: tuple[int, ...], curve: TrainingCurve,
                 on_eval: Callable[[int, float], None] | None) -> None:
        super().__init__()
        self.every, self.env, self.seeds, self.curve, self.on_eval = every, env, seeds, curve, on_eval
        self.next, self.t0 = 0, time.perf_counter()

    def evaluate_now(self) -> None:
        rets = evaluate(self.model.policy.action_net.to_numpy(), self.env, self.seeds)
        self.curve.add(self.num_timesteps, rets, time.perf_counter() - self.t0)
        self.next = self.num_timesteps + self.every
        if self.on_eval is not None:
            self.on_eval(self.num_timesteps, float(np.mean(rets)))

    def _on_training_start(self) -> None:
        self.evaluate_now()

    def _on_step(self) -> bool:
        if self.num_timesteps >= self.next:
            self.evaluate_now()
        return True


def train_ppo(
    actor: str,
    total_steps: int,
    n_links: int = 6,
    task: str = "swim",
    seed: int = 0,
    gamma: float = 0.995,
    n_envs: int = 4,
    n_steps: int = 500,
    batch_size: int = 250,
    n_epochs: int = 10,
    learning_rate: float = 3e-4,
    fixed_std: float | None = 0.1,
    actor_kwargs: dict[str, Any] | None = None,
    critic_arch: tuple[int, ...] = (256, 256),
    eval_every: int = 10_000,
    eval_seeds: tuple[int, ...] = tuple(range(10_000, 10_005)),
    callback: Callable[[int, float], None] | None = None,
) -> tuple[nn.Module, TrainingCurve]:
    """Train an ``actor`` (``"ncap"`` or ``"mlp"``) with PPO on an ``n_links`` swimmer's ``task``.

    Returns:
        The trained actor module (NCAPPolicy or MLPPolicy, built with ``time_obs=True``) and its learning curve.
    """
    if actor not in ACTORS:
        raise choices_error("actor", actor, ACTORS)
    torch.manual_seed(seed)  # SB3 samples actions from torch's global generator
    vec = make_vec_env("controlkit/Swimmer-v0", n_envs=n_envs, seed=seed,
                       env_kwargs={"n_links": n_links, "task": task, "time_obs": True})
    model = PPO(
        ModuleActorPolicy, vec, gamma=gamma, n_steps=n_steps, batch_size=batch_size, n_epochs=n_epochs,
        learning_rate=learning_rate, seed=seed, device="cpu", verbose=0,
        policy_kwargs={"actor": actor, "actor_kwargs": actor_kwargs, "critic_arch": tuple(critic_arch),
                       "fixed_std": fixed_std},
    )
    curve = TrainingCurve()
    cb = _EvalCallback(eval_every, SwimmerEnv(n_links, task=task, time_obs=True), eval_seeds, curve, callback)
    model.learn(total_timesteps=total_steps, callback=cb)
    if curve.env_steps[-1] != model.num_timesteps:
        cb.evaluate_now()
    vec.close()
    return model.policy.action_net, curve


__all__ = ["ACTORS", "ModuleActorPolicy", "train_ppo"]

"""Experiment kind ``rollout``: run a registered controller on any gymnasium env and report return statistics."""

from __future__ import annotations

import time
from typing import Any

import gymnasium as gym
import numpy as np
from pydantic import Field, PositiveInt, field_validator, model_validator

from controlkit.core.controllers import CONTROLLERS, make_controller
from controlkit.core.errors import ControlkitError
from controlkit.core.stats import mean_ci95
from controlkit.runner.config import EnvId, ExperimentConfig, check_env_builds
from controlkit.runner.registry import ExperimentKind
from controlkit.runner.run import RunContext


class RolloutConfig(ExperimentConfig):
    """Run ``controller`` on ``env`` for ``episodes`` episodes."""

    kind: str = "rollout"
    env: EnvId = Field(description="Gymnasium env id, e.g. Pendulum-v1 or controlkit/Swimmer-v0.")
    env_kwargs: dict[str, Any] = Field(default_factory=dict, description="Keyword arguments for gymnasium.make.")
    controller: str = Field("random", description="Registered controller name (see controlkit.controller_names) "
                            "or a 'package.module:factory' path.")
    controller_kwargs: dict[str, Any] = Field(default_factory=dict)
    episodes: PositiveInt = Field(10, description="Number of episodes; episode seeds are spawned from seed.")
    max_steps: PositiveInt | None = Field(None, description="Cap on steps per episode (default: the env's).")

    @field_validator("controller")
    @classmethod
    def _known_controller(cls, v: str) -> str:
        try:
            CONTROLLERS.get(v)
        except ControlkitError as exc:
            raise ValueError(str(exc).removeprefix("controller: ")) from None
        return v

    @model_validator(mode="after")
    def _env_and_controller_work(self) -> RolloutConfig:
        # One reset and one step before the run starts: bad keyword values fail here, not in the run folder.
        env = check_env_builds(self.env, self.env_kwargs)
        try:
            controller = make_controller(self.controller, env, **self.controller_kwargs)
            try:
                obs, _ = env.reset(seed=0)
                controller.reset(seed=0)
                env.step(controller.act(obs))
            except (TypeError, ValueError) as exc:
                raise ControlkitError(f"env_kwargs, controller_kwargs: the first step of {self.env} with "
                                      f"{self.controller} fails ({type(exc).__name__}: {exc}).") from None
        finally:
            env.close()
        return self


def run(config: RolloutConfig, ctx: RunContext) -> dict[str, Any]:
    env = gym.make(config.env, max_episode_steps=config.max_steps, **config.env_kwargs)
    controller = make_controller(config.controller, env, **config.controller_kwargs)
    returns, lengths, act_times = [], [], []
    for ep, seed in enumerate(ctx.progress(ctx.seeds(config.episodes, "episodes"), desc="episodes")):
        obs, _ = env.reset(seed=seed)
        controller.reset(seed=seed)
        total, steps, done = 0.0, 0, False
        ep_act = []
        while not done:
            t0 = time.perf_counter()
            action = controller.act(obs)
            ep_act.append(time.perf_counter() - t0)
            obs, reward, terminated, truncated, _ = env.step(action)
            total += float(reward)
            steps += 1
            done = terminated or truncated
        returns.append(total)
        lengths.append(steps)
        act_times += ep_act
        ctx.metric(episode=ep, seed=seed, episode_return=total, length=steps, time_act_mean_s=float(np.mean(ep_act)))
    env.close()
    mean, ci = mean_ci95(returns)
    _plot(ctx, returns, config)
    return {
        "env": config.env,
        "controller": config.controller,
        "episodes": config.episodes,
        "return_mean": mean,
        "return_ci95": ci,
        "return_std": float(np.std(returns, ddof=1)) if len(returns) > 1 else 0.0,
        "return_min": float(np.min(returns)),
        "return_max": float(np.max(returns)),
        "length_mean": float(np.mean(lengths)),
        "timings": {"act_median_s": float(np.median(act_times)), "act_p95_s": float(np.percentile(act_times, 95))},
    }


def _plot(ctx: RunContext, returns: list[float], config: RolloutConfig) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.bar(np.arange(len(returns)), returns, color="tab:blue", alpha=0.8, label="episode return")
    ax.axhline(float(np.mean(returns)), color="k", ls="--", label=f"mean {np.mean(returns):.1f}")
    ax.set(xlabel="episode", ylabel="return", title=f"{config.controller} on {config.env}")
    ax.legend()
    ctx.savefig(fig, "returns.png")


def report(summary: dict[str, Any]) -> str:
    return (
        f"{summary['controller']} on {summary['env']}: return {summary['return_mean']:.2f} "
        f"± {summary['return_ci95']:.2f} (95% CI) over {summary['episodes']} episodes"
    )


KIND = ExperimentKind("rollout", RolloutConfig, run, "run a controller on a gym env, report returns", report)

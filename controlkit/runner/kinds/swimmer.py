"""Experiment kind ``swimmer``: train NCAP and MLP policies on N-link swimmers, compare, transfer, ablate.

Each entry of ``policies`` is trained ``replicates`` times (training seeds spawned from ``seed``) with ES or
PPO, evaluated every ``eval_every`` env steps on fixed episode seeds, and (NCAP with weight sharing) evaluated
at every body length in ``transfer_links`` without retraining. The summary holds, per policy: parameter count,
return at each evaluation budget (mean and 95 % CI over replicates), env steps to reach ``threshold``, best
return, and transfer returns per length. Plots: learning curves with bands, transfer bars, a frame strip and the
neuron-activity figure of the first NCAP policy.
"""

from __future__ import annotations

import time
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, PositiveInt, field_validator, model_validator

from controlkit.core.executors import map_tasks
from controlkit.core.extras import require
from controlkit.core.stats import mean_ci95
from controlkit.runner.config import ExperimentConfig
from controlkit.runner.registry import ExperimentKind
from controlkit.runner.run import RunContext


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NCAPOptions(_Strict):
    """Circuit switches (see ``NCAPPolicy``)."""

    oscillator_period: PositiveInt = Field(60, description="Head oscillator period in control steps (> 0).")
    proprioception: bool = True
    oscillator: bool = True
    weight_sharing: bool = True
    sign_constraints: bool = True
    constant_init: bool = True
    navigation: Literal["hardcoded", "learned"] | None = Field(None, description="Target controller (navigate).")
    n_turn_joints: PositiveInt = 1


class MLPOptions(_Strict):
    hidden: list[PositiveInt] = Field([256, 256], description="Hidden layer widths.")
    activation: Literal["tanh", "relu"] = "tanh"


class ESOptions(_Strict):
    method: Literal["openai", "cma"] = "openai"
    population: PositiveInt = Field(8, description="Episodes per iteration (even; antithetic pairs).")
    sigma: float = Field(0.02, gt=0)
    lr: float = Field(0.01, gt=0, description="Adam step size (openai method).")

    @field_validator("population")
    @classmethod
    def _even(cls, v: int) -> int:
        if v % 2:
            raise ValueError("must be even (antithetic pairs)")
        return v


class PPOOptions(_Strict):
    gamma: float = Field(0.995, gt=0, le=1, description="Discount; 0.99 is short-sighted on swimmers.")
    n_envs: PositiveInt = 4
    n_steps: PositiveInt = 500
    batch_size: PositiveInt = 250
    n_epochs: PositiveInt = 10
    learning_rate: float = Field(3e-4, gt=0)
    fixed_std: float | None = Field(0.1, gt=0, description="Fixed action std; null learns it.")
    critic_arch: list[PositiveInt] = [256, 256]


class PolicySpec(_Strict):
    """One policy arm of the experiment."""

    name: str = Field(description="Label in plots and the summary.")
    type: Literal["ncap", "mlp"]
    trainer: Literal["es", "ppo", "none"] = Field("es", description="'none' evaluates the initial policy only.")
    total_steps: int = Field(50_000, ge=0, description="Training budget in env steps.")
    eval_every: PositiveInt | None = Field(None, description="Default: the experiment's eval_every.")
    replicates: PositiveInt | None = Field(None, description="Default: the experiment's replicates.")
    ncap: NCAPOptions = NCAPOptions()
    mlp: MLPOptions = MLPOptions()
    es: ESOptions = ESOptions()
    ppo: PPOOptions = PPOOptions()


class SwimmerConfig(ExperimentConfig):
    """Train and compare swimmer policies."""

    kind: str = "swimmer"
    task: Literal["swim", "navigate"] = "swim"
    n_links: int = Field(6, ge=3, description="Body length used for training.")
    policies: list[PolicySpec] = Field(min_length=1, description="Policy arms.")
    replicates: PositiveInt = Field(5, description="Training seeds per policy.")
    eval_every: PositiveInt = Field(10_000, description="Evaluate every this many training env steps.")
    eval_episodes: PositiveInt = Field(5, description="Episodes per evaluation (fixed seeds 10000, 10001, ...).")
    threshold: float = Field(850.0, description="Return threshold for 'env steps to reach'.")
    transfer_links: list[int] = Field([], description="Body lengths for zero-shot transfer (NCAP with sharing).")
    figures: bool = Field(True, description="Frame strip and activity figure (needs MUJOCO_GL=egl for frames).")
    workers: PositiveInt = Field(1, description="Parallel training processes (the local executor).")

    @field_validator("transfer_links")
    @classmethod
    def _lengths(cls, v: list[int]) -> list[int]:
        if any(n < 3 for n in v):
            raise ValueError("every body length must be >= 3")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> SwimmerConfig:
        names = [p.name for p in self.policies]
        if len(set(names)) != len(names):
            raise ValueError(f"policies: names must be unique, got {names}")
        for p in self.policies:
            if p.type == "ncap" and (p.ncap.navigation is not None) != (self.task == "navigate"):
                raise ValueError(f"policies[{p.name}].ncap.navigation: set it (hardcoded or learned) exactly when "
                                 "task is navigate")
            if p.type == "ncap" and p.ncap.n_turn_joints > self.n_links - 1:
                raise ValueError(f"policies[{p.name}].ncap.n_turn_joints: at most n_links - 1")
            if p.trainer == "ppo":  # a missing extra fails here, not in a worker after the other arms trained
                require("stable_baselines3", f"policies[{p.name}].trainer ppo (stable-baselines3)")
        require("mujoco", "the swimmer kind (MuJoCo)")
        return self


def _eval_seeds(n: int) -> tuple[int, ...]:
    return tuple(range(10_000, 10_000 + n))


def _build(spec: PolicySpec, n_links: int, task: str, time_obs: bool, seed: int):
    from controlkit.envs.swimmer import SwimmerLayout
    from controlkit.policies import MLPPolicy, NCAPPolicy

    if spec.type == "ncap":
        return NCAPPolicy(n_links - 1, time_obs=time_obs, seed=seed, **spec.ncap.model_dump())
    lay = SwimmerLayout(n_links, task, time_obs)
    return MLPPolicy(lay.size, n_links - 1, hidden=spec.mlp.hidden, activation=spec.mlp.activation, seed=seed)


def train_replicate(spec_d: dict[str, Any], cfg_d: dict[str, Any], seed: int) -> dict[str, Any]:
    """Train one policy arm with one seed; returns its curve, numpy weights and transfer returns (picklable)."""
    import torch

    from controlkit.envs.swimmer import SwimmerEnv
    from controlkit.policies import evaluate
    from controlkit.policies.train_es import TrainingCurve, train_es

    torch.set_num_threads(1)
    spec, cfg = PolicySpec.model_validate(spec_d), SwimmerConfig.model_validate(cfg_d)
    eval_seeds, eval_every = _eval_seeds(cfg.eval_episodes), spec.eval_every or cfg.eval_every
    t0 = time.perf_counter()
    if spec.trainer == "ppo":
        from controlkit.policies.train_ppo import train_ppo

        actor_kwargs = spec.ncap.model_dump() if spec.type == "ncap" else spec.mlp.model_dump()
        actor_kwargs["seed"] = seed
        ppo = spec.ppo.model_dump()
        ppo["critic_arch"] = tuple(ppo["critic_arch"])
        policy, curve = train_ppo(spec.type, spec.total_steps, n_links=cfg.n_links, task=cfg.task, seed=seed,
                                  actor_kwargs=actor_kwargs, eval_every=eval_every, eval_seeds=eval_seeds, **ppo)
        time_obs = True
    else:
        time_obs = False
        policy = _build(spec, cfg.n_links, cfg.task, time_obs, seed)
        env = SwimmerEnv(cfg.n_links, task=cfg.task)
        if spec.trainer == "es" and spec.total_steps > 0:
            curve = train_es(policy, env, spec.total_steps, seed=seed, eval_every=eval_every,
                             eval_seeds=eval_seeds, **spec.es.model_dump())
        else:
            curve = TrainingCurve()
            curve.add(0, evaluate(policy.to_numpy(), env, eval_seeds), 0.0)
    train_s = time.perf_counter() - t0
    transfer: dict[int, list[float]] = {}
    if spec.type == "ncap" and spec.ncap.weight_sharing:
        for n in cfg.transfer_links:
            other = policy.with_n_joints(n - 1)
            transfer[n] = evaluate(other.to_numpy(), SwimmerEnv(n, task=cfg.task, time_obs=time_obs), eval_seeds)
    return {
        "seed": seed, "env_steps": curve.env_steps, "returns": curve.returns, "train_s": train_s,
        "params": int(sum(p.numel() for p in policy.parameters() if p.requires_grad)),
        "numpy": policy.to_numpy(), "transfer": transfer,
    }


def run(config: SwimmerConfig, ctx: RunContext) -> dict[str, Any]:
    cfg_d = config.model_dump(mode="json")
    # Every policy trains on the same independent seeds of the run (common random numbers across policies).
    seeds = ctx.seeds(max(spec.replicates or config.replicates for spec in config.policies), "training")
    jobs = [(spec.model_dump(mode="json"), cfg_d, seeds[r])
            for spec in config.policies for r in range(spec.replicates or config.replicates)]
    ctx.log(f"{len(jobs)} training runs ({len(config.policies)} policies), {config.workers} worker(s)")
    results = map_tasks(train_replicate, jobs, workers=config.workers, desc="train", quiet=ctx.quiet)
    summary: dict[str, Any] = {"task": config.task, "n_links": config.n_links, "threshold": config.threshold,
                               "replicates": config.replicates, "eval_episodes": config.eval_episodes,
                               "policies": {}, "timings": {}}
    per_policy: dict[str, list[dict[str, Any]]] = {}
    for (spec_d, _, _), res in zip(jobs, results):
        per_policy.setdefault(spec_d["name"], []).append(res)
        name = spec_d["name"]
        res["numpy"].save(ctx.path(f"policies/{name}_seed{res['seed']}.npz"))
        for steps, rets in zip(res["env_steps"], res["returns"]):
            ctx.metric(policy=name, seed=res["seed"], env_steps=steps, eval_return=float(np.mean(rets)),
                       time_train_s=res["train_s"])
    for spec in config.policies:
        reps = per_policy[spec.name]
        summary["policies"][spec.name] = _policy_summary(spec, reps, config)
        summary["timings"][f"{spec.name}_train_s_mean"] = float(np.mean([r["train_s"] for r in reps]))
        s = summary["policies"][spec.name]
        ctx.log(f"{spec.name}: {s['params']} params, final {s['final_return']['mean']:.1f} "
                f"± {s['final_return']['ci95']:.1f}, best {s['best_return']:.1f}, "
                f"steps to {config.threshold:g}: {s['env_steps_to_threshold']}")
    _plot_curves(ctx, config, summary)
    if config.transfer_links:
        _plot_transfer(ctx, config, summary)
    if config.figures:
        first = next((s for s in config.policies if s.type == "ncap"), None)
        if first is not None:
            _figures(ctx, config, per_policy[first.name][0]["numpy"], first.name)
    return summary


def _policy_summary(spec: PolicySpec, reps: list[dict[str, Any]], config: SwimmerConfig) -> dict[str, Any]:
    steps = reps[0]["env_steps"]
    means = np.array([[np.mean(r) for r in rep["returns"]] for rep in reps])  # (replicates, evals)
    curve = []
    for j, s in enumerate(steps):
        m, ci = mean_ci95(means[:, j])
        curve.append({"env_steps": s, "mean": m, "ci95": ci})
    reach = next((c["env_steps"] for c in curve if c["mean"] >= config.threshold), None)
    per_seed_reach = [next((s for s, v in zip(steps, row) if v >= config.threshold), None) for row in means]
    final_m, final_ci = mean_ci95(means[:, -1])
    out: dict[str, Any] = {
        "type": spec.type, "trainer": spec.trainer, "params": reps[0]["params"], "total_steps": spec.total_steps,
        "replicates": len(reps),
        "curve": curve, "final_return": {"mean": final_m, "ci95": final_ci},
        "initial_return": curve[0]["mean"], "best_return": float(max(c["mean"] for c in curve)),
        "best_return_env_steps": int(max(curve, key=lambda c: c["mean"])["env_steps"]),
        "env_steps_to_threshold": reach, "env_steps_to_threshold_per_seed": per_seed_reach,
    }
    if reps[0]["transfer"]:
        transfer = {}
        for n in reps[0]["transfer"]:
            vals = [float(np.mean(rep["transfer"][n])) for rep in reps]
            m, ci = mean_ci95(vals)
            transfer[str(n)] = {"mean": m, "ci95": ci, "fraction_of_train_length": m / final_m if final_m else None}
        out["transfer"] = transfer
    return out


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _plot_curves(ctx: RunContext, config: SwimmerConfig, summary: dict[str, Any]) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, s in summary["policies"].items():
        x = np.array([c["env_steps"] for c in s["curve"]])
        m = np.array([c["mean"] for c in s["curve"]])
        ci = np.array([c["ci95"] for c in s["curve"]])
        line, = ax.plot(x, m, marker="o", ms=3, label=f"{name} ({s['params']:,} params)")
        ax.fill_between(x, m - ci, m + ci, color=line.get_color(), alpha=0.2)
    ax.axhline(config.threshold, color="k", ls=":", lw=1, label=f"threshold {config.threshold:g}")
    if max(max(c["env_steps"] for c in s["curve"]) for s in summary["policies"].values()) > 200_000:
        ax.set_xscale("symlog", linthresh=10_000)  # linear up to 10k, then logarithmic: both budgets readable
    ax.set_xlim(left=0)
    ax.set_ylim(-25, 1025)  # returns lie in [0, 1000]; a t-interval over 2-3 seeds may not
    ax.set(xlabel="training env steps", ylabel=f"return ({config.task}, {config.n_links} links)",
           title="learning curves, mean ± 95% CI over seeds")
    ax.legend(fontsize=8)
    ctx.savefig(fig, "learning_curves.png")


def _plot_transfer(ctx: RunContext, config: SwimmerConfig, summary: dict[str, Any]) -> None:
    plt = _plt()
    arms = {k: v for k, v in summary["policies"].items() if "transfer" in v}
    if not arms:
        return
    fig, ax = plt.subplots(figsize=(8, 3.8))
    width = 0.8 / len(arms)
    lengths = config.transfer_links
    for i, (name, s) in enumerate(arms.items()):
        m = [s["transfer"][str(n)]["mean"] for n in lengths]
        ci = [s["transfer"][str(n)]["ci95"] for n in lengths]
        ax.bar(np.arange(len(lengths)) + i * width, m, width, yerr=ci, capsize=2, label=name)
    ax.set_xticks(np.arange(len(lengths)) + 0.4 - width / 2, [str(n) for n in lengths])
    ax.set(xlabel="body length (links) at test time", ylabel="return",
           title=f"zero-shot transfer, trained at {config.n_links} links")
    ax.legend(fontsize=8)
    ctx.savefig(fig, "transfer.png")


def _figures(ctx: RunContext, config: SwimmerConfig, policy, name: str) -> None:
    """Frame strip and B-neuron/muscle activity of one trained NCAP episode."""
    from controlkit.envs.swimmer import SwimmerEnv
    from controlkit.policies import record_episode

    plt = _plt()
    steps, every = 150, 30
    env = SwimmerEnv(config.n_links, task=config.task, time_obs=policy.time_obs, render_mode="rgb_array",
                     width=240, height=180)
    try:
        rec = record_episode(policy, env, seed=_eval_seeds(1)[0], steps=steps, frames_every=every)
    except Exception as exc:  # noqa: BLE001  no OpenGL here: keep the activity figure, say why frames are missing
        ctx.log(f"frame strip skipped ({type(exc).__name__}: {exc}); set MUJOCO_GL=egl for offscreen rendering")
        env = SwimmerEnv(config.n_links, task=config.task, time_obs=policy.time_obs)
        rec = record_episode(policy, env, seed=_eval_seeds(1)[0], steps=steps)
    env.close()
    if rec["frames"]:
        fig, axes = plt.subplots(1, len(rec["frames"]), figsize=(2.2 * len(rec["frames"]), 1.9))
        for k, (ax, frame) in enumerate(zip(axes, rec["frames"])):
            ax.imshow(frame)
            ax.set_axis_off()
            ax.set_title(f"t = {k * every * 0.03:.1f} s", fontsize=8)
        fig.suptitle(f"{name} swimming ({config.n_links} links)", fontsize=9)
        ctx.savefig(fig, "frame_strip.png")
    act = rec["activity"]
    t = np.arange(steps) * 0.03
    n = policy.n_joints
    limit = 2 * np.pi / (n + 1)
    panels = [
        ("joint angle / limit", rec["obs"][:, :n] / limit, "coolwarm"),
        ("B-neurons: dorsal - ventral", act["b_d"] - act["b_v"], "coolwarm"),
        ("muscles: dorsal - ventral (torque)", act["m_d"] - act["m_v"], "coolwarm"),
    ]
    fig, axes = plt.subplots(len(panels) + 1, 1, figsize=(7, 7), sharex=True)
    for ax, (title, data, cmap) in zip(axes, panels):
        im = ax.imshow(data.T, aspect="auto", cmap=cmap, vmin=-1, vmax=1, extent=(t[0], t[-1], n - 0.5, -0.5),
                       interpolation="nearest")
        ax.set(ylabel="joint (0 = head)", title=title)
        fig.colorbar(im, ax=ax, fraction=0.03)
    for j, style in ((0, "-"), (n // 2, "--")):
        axes[-1].plot(t, act["b_d"][:, j], style, color="tab:red", label=f"b_d joint {j}")
        axes[-1].plot(t, act["b_v"][:, j], style, color="tab:blue", label=f"b_v joint {j}")
    axes[-1].set(xlabel="time (s)", ylabel="activation", title="B-neurons of the head and a mid-body joint")
    axes[-1].legend(fontsize=7, ncol=4, loc="upper right")
    fig.suptitle(f"{name}: the wave travels head to tail", fontsize=10)
    ctx.savefig(fig, "activity.png")


def report(summary: dict[str, Any]) -> str:
    lines = [f"swimmer {summary['task']} ({summary['n_links']} links):"]
    for name, s in summary["policies"].items():
        line = (f"  {name:16s} {s['params']:>7,} params  {s['replicates']} seeds  initial {s['initial_return']:6.1f}  final "
                f"{s['final_return']['mean']:6.1f} ± {s['final_return']['ci95']:5.1f}  best {s['best_return']:6.1f}"
                f"  steps to {summary['threshold']:g}: {s['env_steps_to_threshold']}")
        if "transfer" in s:
            line += "  transfer: " + " ".join(f"{n}:{v['mean']:.0f}" for n, v in s["transfer"].items())
        lines.append(line)
    return "\n".join(lines)


KIND = ExperimentKind("swimmer", SwimmerConfig, run,
                      "train NCAP/MLP swimmers (ES or PPO): learning curves, transfer, ablations", report)

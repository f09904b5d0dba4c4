"""Experiment kind ``model_based_control``: learn sparse pushing dynamics, then compare planners in closed loop.

The pipeline reads top to bottom:

1. **Collect** transitions on ``controlkit/Push-v0`` (the same object, friction and step size as the evaluated
   env) with an exploring pusher that mostly heads for the object, so that contacts are common.
2. **Train** a dense ReLU model of the world-frame state ``[x, y, cos θ, sin θ, pusher x, pusher y]``
   (:mod:`controlkit.models.dynamics`). With ``model.frame: pusher`` it learns in pusher-relative coordinates
   (object position minus pusher position), as the paper's models do; that change of coordinates is linear, so
   it is folded into the first and last layer afterwards and every planner sees a world-frame network.
3. **Sparsify** it (:mod:`controlkit.models.sparsify`) and export the selected
   :class:`~controlkit.models.network.CompactNetwork` (saved as ``model.npz`` in the run folder).
4. **Evaluate** every planner in ``planners`` in closed loop on the real env: same network, horizon, cost and
   constraints for all, identical seeded initial states. The cost is the L1 objective of
   :mod:`controlkit.planning.mip_mpc` on the object position (and orientation, if weighted) plus a small pull of the pusher
   towards the pre-push point behind the object, which every planner shares. On ``controlkit/Sort-v0`` the
   same one-object model pushes one box at a time: a task layer (:mod:`controlkit.tasks.pushing.sort_task`) picks the box
   and the point to push it towards, and moves the pusher round the other boxes to it (compositional sorting).

``summary.json`` has ``controllers.<name>`` with ``success_rate``, ``final_distance_mean``,
``final_distance_ci95``, ``step_time_median_s``, ``step_time_p95_s``, ``fallbacks``, ``violations`` and more;
plots are ``trajectories.png``, ``distance.png``, ``step_times.png`` and ``frames.png``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Literal

import gymnasium as gym
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, PositiveInt, field_validator, model_validator

from controlkit.core.controller import Controller
from controlkit.models.network import CompactNetwork
from controlkit.runner.config import EnvId, ExperimentConfig, check_env_builds, check_env_kwargs
from controlkit.runner.registry import ExperimentKind
from controlkit.runner.run import RunContext
from controlkit.tasks.pushing.aggregate import (
    ActionRecorder,
    AggregateConfig,
    aggregate,
    episodes_data,
    error_quantiles,
    rollout_position_errors,
)
from controlkit.tasks.pushing.greedy import PushThroughExplorer
from controlkit.tasks.pushing.plots import plot_all
from controlkit.tasks.pushing.task import (
    NU,
    NX,
    CostConfig,
    EpisodeResult,
    PlannerSpec,
    PushExplorer,
    Task,
    fold_frame,
    frame_matrix,
    load_network,
    make_planner,
    push_data_kwargs,
    run_episode,
    summarise,
    task_params,
)

TASK_ENVS = ("controlkit/Push-v0", "controlkit/Sort-v0")


class DataConfig(BaseModel):
    """Transitions collected on Push-v0 for learning the dynamics."""

    model_config = ConfigDict(extra="forbid")

    trajectories: PositiveInt = Field(300, description="Episodes of exploration.")
    steps: PositiveInt = Field(30, description="Transitions per episode.")
    behaviour: Literal["aim", "push"] = Field(
        "aim", description="aim: head for a point near the object with probability `aim`, plus noise; push: the "
        "greedy pusher pushing the object through it towards random targets, plus noise (contact-rich).")
    aim: float = Field(0.7, ge=0, le=1, description="behaviour aim: probability that a step heads for the object.")
    noise: float = Field(0.4, ge=0, description="behaviour push: noise innovation std in units of step_size.")
    val_fraction: float = Field(0.15, gt=0, lt=1, description="Trajectories held out for early stopping.")
    aggregate: AggregateConfig | None = Field(
        None, description="On-policy data aggregation after the first model (Push-v0): rounds of closed-loop "
        "episodes of the named planners with exploration noise, added to the data, then retrain and re-sparsify "
        "(controlkit.tasks.pushing.aggregate). None: the first model is the model.")


class ModelConfig(BaseModel):
    """The dynamics network."""

    model_config = ConfigDict(extra="forbid")

    hidden: list[PositiveInt] = Field([64, 64], min_length=1, description="Hidden layer sizes of the dense model.")
    frame: Literal["pusher", "world"] = Field("pusher", description="Coordinates the model learns in.")
    file: str | None = Field(None, description="Load this model.npz (from an earlier run) instead of learning one.")


def _default_planners() -> dict[str, PlannerSpec]:
    return {
        "mip_mpc": PlannerSpec(type="mip_mpc", time_limit=0.2, mip_gap=1e-3),
        "mppi": PlannerSpec(type="mppi", n_samples=500, iterations=5, temperature=0.003),
        "cem": PlannerSpec(type="cem", n_samples=250, iterations=5),
        "gradient": PlannerSpec(type="gradient", iterations=50, lr=0.005, n_restarts=8),
        "random": PlannerSpec(type="random", n_samples=2500),
    }


class ModelBasedControlConfig(ExperimentConfig):
    """Collect → train → sparsify → closed-loop comparison of planners on the learned sparse model."""

    kind: str = "model_based_control"
    env: EnvId = Field("controlkit/Push-v0", description="The evaluated env: controlkit/Push-v0 or controlkit/Sort-v0.")
    env_kwargs: dict[str, Any] = Field(default_factory=dict, description="Keyword arguments of the evaluated env.")
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: dict[str, Any] = Field(default_factory=dict, description="controlkit.models.dynamics.TrainSettings fields.")
    sparsify: dict[str, Any] = Field(default_factory=dict, description="controlkit.models.sparsify.SparsifySettings fields.")
    cost: CostConfig = Field(default_factory=CostConfig)
    planners: dict[str, PlannerSpec] = Field(default_factory=_default_planners, min_length=1)
    episodes: PositiveInt = Field(10, description="Closed-loop episodes per planner (same seeded starts for all).")
    max_steps: PositiveInt = Field(40, description="Steps per episode.")
    frames: bool = Field(True, description="Render a frame strip of episode 0 per planner (needs MUJOCO_GL=egl).")

    @field_validator("env")
    @classmethod
    def _task_env(cls, v: str) -> str:
        if v not in TASK_ENVS:
            raise ValueError(f"model_based_control runs on {', '.join(TASK_ENVS)}")
        return v

    @model_validator(mode="after")
    def _check(self) -> ModelBasedControlConfig:
        check_env_kwargs(self.env, self.env_kwargs)
        for key in ("goal_in_obs", "frame", "render_mode"):
            if key in self.env_kwargs:
                raise ValueError(f"env_kwargs.{key} is set by the pipeline (it reads the env's world-frame state)")
        if self.env_kwargs.get("keep_out") is not None and self.env_kwargs.get("obstacle") is not None:
            raise ValueError("env_kwargs: the planners avoid one box; give keep_out or obstacle, not both")
        if self.env_kwargs.get("keep_out") is None and self.env_kwargs.get("obstacle") is None:
            for key in ("keep_out_penalty", "keep_out_route"):
                if getattr(self.cost, key) is not None:
                    raise ValueError(f"cost.{key} needs a keep-out box (env_kwargs.keep_out or env_kwargs.obstacle)")
        from controlkit.models.dynamics import TrainSettings
        from controlkit.models.sparsify import SparsifySettings

        for name, spec in self.planners.items():
            if spec.type == "sim_mppi" and self.env != "controlkit/Push-v0":
                raise ValueError(f"planners.{name}: sim_mppi simulates one object; it runs on Push-v0 only")
            allowed = task_params(spec.type)
            unknown = sorted(set(spec.kwargs()) - allowed)
            if unknown:
                raise ValueError(f"planners.{name}: {spec.type} takes no {', '.join(unknown)}; valid: "
                                 f"{', '.join(sorted(allowed))}")
        _check_aggregate(self)
        TrainSettings(**self.train)
        SparsifySettings(**self.sparsify).check_network(self.model.hidden, field="sparsify.schedule")
        _check_before_run(self)
        return self


MODEL_FREE = ("greedy", "sim_mppi")  # planners that do not plan on the learned model


def _check_aggregate(config: ModelBasedControlConfig) -> None:
    """``data.aggregate`` needs a model learned in this run, on Push-v0, driven by planners on that model."""
    agg = config.data.aggregate
    if agg is None:
        return
    if config.env != "controlkit/Push-v0":
        raise ValueError("data.aggregate: on-policy aggregation runs on controlkit/Push-v0 only")
    if config.model.file is not None:
        raise ValueError("data.aggregate: needs the model learned in this run (model.file: null); it retrains on "
                         "the run's own data")
    valid = sorted(n for n, spec in config.planners.items() if spec.type not in MODEL_FREE)
    for name in agg.planners:
        if name not in valid:
            raise ValueError(f"data.aggregate.planners: {name!r} is not a planner on the learned model of this "
                             f"experiment; valid: {', '.join(valid) or '(none)'}")


def _check_before_run(config: ModelBasedControlConfig) -> None:
    """What would otherwise fail only after data, model and sparsification: the model file, the data split, the
    env's keyword values and every planner's knobs (each planner is built once on a small stand-in network)."""
    from controlkit.models.data import check_split

    if config.model.file is not None:
        load_network(config.model.file)
    else:
        check_split(config.data.trajectories, config.data.val_fraction)
    env = check_env_builds(config.env, {**config.env_kwargs, "goal_in_obs": False})
    try:
        task = Task(env.unwrapped, config.cost)
        rng = np.random.default_rng(0)
        stand_in = CompactNetwork([rng.normal(size=(4, NX + NU)), rng.normal(size=(NX, 4))],
                                  [np.zeros(4), np.zeros(NX)], [np.ones(4, bool)], NX, NU, True)
        for name, spec in config.planners.items():
            make_planner(name, spec, stand_in, task, seed=0)
    finally:
        env.close()


def learn_model(config: ModelBasedControlConfig, ctx: RunContext) -> tuple[CompactNetwork, dict[str, Any]]:
    """Collect, train, sparsify and export (or load ``model.file``), then aggregate on-policy data if asked.

    Returns the world-frame network the planners use and the facts for ``summary.json`` (with ``aggregate``: every
    round's data, held-out error and model, and ``initial_file``, the model before aggregation).
    """
    if config.model.file is not None:
        net = load_network(config.model.file)
        return net, {"file": config.model.file, "n_relu": net.n_relu, "n_identity": net.n_identity,
                     "hidden": net.hidden_sizes}
    import torch

    from controlkit.models.data import collect

    torch.set_num_threads(1)  # the same model whether learn_model runs alone or inside run()
    t0 = time.perf_counter()
    push_kwargs = push_data_kwargs(config.env_kwargs)
    step = float(config.env_kwargs.get("step_size", 0.03))
    if config.data.behaviour == "push":
        explorer: Controller = PushThroughExplorer(push_kwargs.get("shape", "box"), step, config.data.noise)
    else:
        explorer = PushExplorer(step, config.data.aim)
    data = collect("controlkit/Push-v0", config.data.trajectories, config.data.steps, ctx.seed,
                   behaviour=explorer, env_kwargs=push_kwargs, progress=ctx.progress)
    timings = {"collect_s": time.perf_counter() - t0}
    ctx.log(f"collected {data.n_transitions} transitions; training a dense {config.model.hidden} model")
    net, facts = _learn(config, ctx, data, "")
    timings.update(facts.pop("timings"))
    if config.data.aggregate is not None:
        net, facts["aggregate"] = _aggregate(config, ctx, net, data, facts)
        facts.update({k: facts["aggregate"]["rounds"][-1][k] for k in _ROUND_FACTS})
        timings["aggregate_s"] = facts["aggregate"].pop("wall_s")
        net.save(ctx.path("model.npz"))
    facts["timings"] = timings
    return net, facts


_ROUND_FACTS = ("transitions", "n_relu", "n_identity", "n_removed", "val_rollout_dense", "val_rollout_sparse",
                "within_tolerance", "rounds")


def _learn(config: ModelBasedControlConfig, ctx: RunContext, data, prefix: str) -> tuple[CompactNetwork, dict[str, Any]]:
    """Train and sparsify on world-frame ``data``; save ``{prefix}model.npz`` (and, without a prefix, the dense
    model and every sparsify round); return the world-frame network and its facts."""
    from controlkit.models.data import TransitionData
    from controlkit.models.dynamics import TrainSettings
    from controlkit.models.pipeline import learn_sparse_model
    from controlkit.models.sparsify import SparsifySettings

    t = frame_matrix() if config.model.frame == "pusher" else np.eye(NX)
    data = TransitionData(data.states @ t.T, data.actions, data.lengths, data.metadata)
    learned = learn_sparse_model(
        data, config.model.hidden, TrainSettings(**config.train), SparsifySettings(**config.sparsify), ctx.seed,
        val_fraction=config.data.val_fraction,
        on_round=lambda r: ctx.log(f"sparsify round {r.round}: {r.n_relu} ReLU, {r.n_identity} identity, val "
                                   f"rollout MSE {r.val_rollout:.3g}"),
        progress=ctx.progress)
    result = learned.result
    meta = {"env": "controlkit/Push-v0", "env_kwargs": push_data_kwargs(config.env_kwargs),
            "frame": config.model.frame, "seed": ctx.seed}
    # The dense model and every round too: closed-loop runs on them (model.file=) separate what sparsification
    # costs from what learning costs, and show success against the ReLU budget.
    points = [] if prefix else [("model_dense.npz", result.dense)] + [
        (f"model_relu{r.n_relu}.npz", r) for r in result.rounds[1:]]
    for name, point in [*points, (f"{prefix}model.npz", result.best)]:
        net = fold_frame(learned.compact(point, {**meta, "val_rollout": point.val_rollout}), t)
        net.save(ctx.path(name))
    best = result.best
    facts = {
        "file": str(ctx.path(f"{prefix}model.npz")), "dense_file": str(ctx.path("model_dense.npz")),
        "hidden": config.model.hidden, "frame": config.model.frame,
        "transitions": data.n_transitions, "dense_epochs": learned.dense_fit.epochs,
        "n_relu": net.n_relu, "n_identity": net.n_identity, "n_removed": best.n_removed,
        "val_rollout_dense": result.dense.val_rollout, "val_rollout_sparse": best.val_rollout,
        "within_tolerance": result.target_met, "rounds": [r.row() for r in result.rounds],
        "timings": {"train_s": learned.timings["dense_s"], "sparsify_s": learned.timings["sparsify_s"]},
    }
    return net, facts


def _aggregate(config: ModelBasedControlConfig, ctx: RunContext, net: CompactNetwork, data,
               facts: dict[str, Any]) -> tuple[CompactNetwork, dict[str, Any]]:
    """``data.aggregate``: closed-loop rounds on the task's own env, each followed by retraining on all data."""
    agg = config.data.aggregate
    t0 = time.perf_counter()
    net.save(ctx.path("model_round0.npz"))
    env = gym.make(config.env, max_episode_steps=agg.steps or config.max_steps, goal_in_obs=False,
                   **config.env_kwargs)
    task = Task(env.unwrapped, config.cost)

    def planners(model: CompactNetwork, r: int) -> list[tuple[str, Controller]]:
        seed = ctx.seeds(r + 1, 5)[r]  # one independent planner seed per round
        return [(name, make_planner(name, config.planners[name], model, task, seed=seed)) for name in agg.planners]

    def train(all_data, r: int) -> tuple[CompactNetwork, dict[str, Any]]:
        ctx.log(f"aggregate round {r}: retraining on {all_data.n_transitions} transitions")
        model, f = _learn(config, ctx, all_data, f"model_round{r}_")
        f.pop("timings")
        return model, {"file": f["file"], "n_relu": f["n_relu"], "n_identity": f["n_identity"],
                       "val_rollout_sparse": f["val_rollout_sparse"], "_facts": f}

    try:
        result = aggregate(net, data, agg, env, task, planners, train, ctx.seed, progress=ctx.progress)
    finally:
        env.close()
    from controlkit.models.data import concatenate, save_dataset

    save_dataset(concatenate(result.on_policy, {"behaviour": "closed_loop", **agg.model_dump()}),
                 ctx.path("onpolicy_data.npz"))
    rounds = [{"round": 0, "transitions": facts["transitions"], "file": str(ctx.path("model_round0.npz")),
               "n_relu": facts["n_relu"], "n_identity": facts["n_identity"],
               "val_rollout_sparse": facts["val_rollout_sparse"]}]
    for row in result.rounds:
        f = row.pop("_facts")
        rounds.append({**row, **{k: f[k] for k in _ROUND_FACTS}})
    return result.net, {**agg.model_dump(), "initial_file": str(ctx.path("model_round0.npz")),
                        "data_file": str(ctx.path("onpolicy_data.npz")), "rounds": rounds,
                        "wall_s": time.perf_counter() - t0}


def run(config: ModelBasedControlConfig, ctx: RunContext) -> dict[str, Any]:
    import torch

    torch.set_num_threads(1)  # the planners' small networks: a second thread only contends (also with model.file)
    net, model_facts = learn_model(config, ctx)
    ctx.log(f"model: {net.n_relu} ReLU and {net.n_identity} identity neurons, hidden sizes {net.hidden_sizes}")
    env = gym.make(config.env, max_episode_steps=config.max_steps, goal_in_obs=False,
                   render_mode="rgb_array" if config.frames else None, width=160, height=160, **config.env_kwargs)
    task = Task(env.unwrapped, config.cost)
    seeds = ctx.seeds(config.episodes, "episodes")  # the same starts for every planner
    applied: dict[str, list[list[np.ndarray]]] = {name: [] for name in config.planners}  # per episode

    def build(name: str) -> ActionRecorder:
        return ActionRecorder(make_planner(name, config.planners[name], net, task, seed=ctx.seed), task.env.step_size)

    try:
        results, eval_s = evaluate_planners(
            env, task, build, list(config.planners), seeds, ctx, render_first=config.frames,
            on_episode=lambda name, planner, ep: applied[name].append(list(planner.actions)),
            extra_metrics=lambda ep: {"violations": ep.violations})
    finally:
        env.close()
    controllers = {name: summarise(eps) for name, eps in results.items()}
    if config.env == "controlkit/Push-v0":  # on Sort the task moves the pusher itself on transit steps
        _loop_errors(controllers, results, applied, net, model_facts)
    plots = plot_all(ctx.savefig, task, results)
    timings = {**model_facts.pop("timings", {}), "evaluate_s": eval_s}
    return {
        "env": config.env,
        "env_kwargs": config.env_kwargs,
        "episodes": config.episodes,
        "max_steps": config.max_steps,
        "horizon": config.cost.horizon,
        "seeds": seeds,
        "model": model_facts,
        "controllers": controllers,
        "plots": [str(p) for p in plots],
        "timings": timings,
    }


def evaluate_planners(
    env: gym.Env,
    task: Any,
    build: Callable[[str], Controller],
    names: list[str],
    seeds: list[int],
    ctx: RunContext,
    render_first: bool = False,
    on_episode: Callable[[str, Controller, EpisodeResult], None] | None = None,
    extra_metrics: Callable[[EpisodeResult], dict[str, Any]] | None = None,
) -> tuple[dict[str, list[EpisodeResult]], dict[str, float]]:
    """Every named planner (made by ``build``) in closed loop on the same seeded episodes: one metrics row per
    episode, one log line per planner.

    Args:
        env: The env the episodes run in (not closed here).
        task: The task that reads the env's state and goal (:class:`Task` or a graph task).
        build: Makes the planner of a name.
        names: The planners, in order.
        seeds: One episode per seed, the same for every planner.
        ctx: The run's context (progress bars, metrics, log).
        render_first: Render the first episode of each planner.
        on_episode: Called after every episode with the planner's name, the planner and the episode.
        extra_metrics: More metric columns of an episode, written after ``fallbacks``.

    Returns:
        The episodes and the wall seconds of each planner.
    """
    results: dict[str, list[EpisodeResult]] = {}
    eval_s: dict[str, float] = {}
    for name in names:
        planner = build(name)
        t0 = time.perf_counter()
        results[name] = []
        for i, seed in enumerate(ctx.progress(seeds, desc=name)):
            ep = run_episode(env, task, planner, seed, render=render_first and i == 0)
            results[name].append(ep)
            if on_episode is not None:
                on_episode(name, planner, ep)
            ctx.metric(planner=name, episode=i, seed=seed, success=ep.success, final_distance=ep.final_distance,
                       steps=len(ep.step_times), fallbacks=ep.fallbacks,
                       **(extra_metrics(ep) if extra_metrics is not None else {}),
                       time_step_median_s=float(np.median(ep.step_times)))
        eval_s[name] = time.perf_counter() - t0
        s = summarise(results[name])
        ctx.log(f"{name}: success {s['success_rate']:.0%}, final distance {s['final_distance_mean']:.4f} "
                f"± {s['final_distance_ci95']:.4f}, median step {1e3 * s['step_time_median_s']:.1f} ms")
    return results, eval_s


def _loop_errors(controllers: dict[str, dict[str, Any]], results: dict[str, list[EpisodeResult]],
                 applied: dict[str, list[list[np.ndarray]]], net: CompactNetwork, model_facts: dict[str, Any]) -> None:
    """Add the model's 10-step open-loop position error along each planner's own episodes (``rollout_error_10_*``)
    and, after aggregation, the error of the model before it on the same episodes (``initial_rollout_error_10_*``)."""
    initial = model_facts.get("aggregate", {}).get("initial_file")
    before = load_network(initial) if initial else None
    for name, eps in results.items():
        data = episodes_data(eps, applied[name])
        controllers[name].update(error_quantiles(rollout_position_errors(net, data)))
        if before is not None:
            controllers[name].update(error_quantiles(rollout_position_errors(before, data), "initial_rollout_error_10"))


def report(summary: dict[str, Any]) -> str:
    """The table the CLI prints: one row per planner, then where the plots are."""
    m = summary["model"]
    obstacle = summary.get("env_kwargs", {}).get("obstacle") is not None  # steps against it, per planner
    w = max(12, *(len(n) + 1 for n in summary["controllers"]))
    lines = [f"{summary['env']}: {summary['episodes']} episodes per planner, horizon {summary['horizon']}, model "
             f"with {m['n_relu']} ReLU + {m['n_identity']} identity neurons",
             f"{'planner':<{w}}{'success [95% CI]':>18}{'final dist (m)':>22}{'median step':>13}{'p95 step':>11}"
             f"{'fallbacks':>11}{'violations':>12}" + (f"{'obstacle':>10}" if obstacle else "")]
    for name, c in summary["controllers"].items():
        lo, hi = c.get("success_ci95", (float("nan"),) * 2)
        success = f"{c['success_rate']:.0%} [{lo:.0%}-{hi:.0%}]"
        lines.append(f"{name:<{w}}{success:>18}"
                     f"{c['final_distance_mean']:>13.4f} ± {c['final_distance_ci95']:<6.4f}"
                     f"{1e3 * c['step_time_median_s']:>10.1f} ms{1e3 * c['step_time_p95_s']:>8.1f} ms"
                     f"{c['fallbacks']:>11d}{c['violations']:>12d}"
                     + (f"{c.get('obstacle_contacts', 0):>10d}" if obstacle else ""))
    if summary["plots"]:
        lines.append("plots: " + ", ".join(summary["plots"]))
    return "\n".join(lines)


KIND = ExperimentKind("model_based_control", ModelBasedControlConfig, run,
                      "learn sparse pushing dynamics, compare MIP-MPC with MPPI/CEM/gradient/random in closed loop",
                      report)

__all__ = ["KIND", "ModelBasedControlConfig", "learn_model"]

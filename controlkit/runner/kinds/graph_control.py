"""Experiment kind ``graph_control``: plan on a graph dynamics model in closed loop, no task layer.

A graph model (:class:`~controlkit.models.graph.GraphNetwork`, a file written by ``benchmarks/sort_graph_model.py``
or ``benchmarks/rope_graph_model.py``) is compiled for the env's nodes with the interaction graph fixed at each
plan's first state, and every planner in ``planners`` plans on it with one cost over all nodes:

- ``controlkit/Sort-v0``: every box to its region, the pusher to the pre-push point of the cheapest unsorted box
  (:func:`controlkit.tasks.pushing.graph_sort.sort_goal`); ``mip_mpc`` is MIP-MPC from candidate starts
  (:class:`~controlkit.tasks.pushing.graph_sort.SortMIP`).
- ``controlkit/Rope-v0``: every particle to its target point, the pusher weakly behind the particle farthest from
  its target (:func:`controlkit.tasks.pushing.rope_task.rope_goal`); ``mip_mpc`` is
  :class:`~controlkit.tasks.pushing.starts.PipelineMIP`.

Everything that can be wrong is checked before the run folder exists: the model file (missing, not a graph model,
trained on another env, rope particle count or segment length, or box shape), the env's keyword values (box count,
the rope target's shape) and every planner's knobs (each planner is built once on the real model and env).

``summary.json`` has ``controllers.<name>`` as ``model_based_control`` has (``success_rate``,
``final_distance_mean``, ``final_distance_ci95``, ``step_time_median_s``, ...); plots are ``errors.png`` and, on
the rope, ``rope_shapes.png``.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt, field_validator, model_validator

from controlkit.core.errors import ControlkitError, choices_error
from controlkit.runner.config import EnvId, ExperimentConfig, check_env_builds
from controlkit.runner.registry import ExperimentKind
from controlkit.runner.run import RunContext

GRAPH_ENVS = ("controlkit/Sort-v0", "controlkit/Rope-v0")
GRAPH_PLANNERS = ("mip_mpc", "mppi", "cem", "gradient", "random")  # the planner types that plan on a network


class GraphPlannerSpec(BaseModel):
    """One planner: its registered ``type`` and its own knobs (checked by building it before the run)."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(description="A registered planner type: mip_mpc, mppi, cem, gradient, random, ...")

    def knobs(self) -> dict[str, Any]:
        """The planner's own arguments (everything but ``type``)."""
        return dict(self.model_extra or {})


class GraphModelConfig(BaseModel):
    """The graph model file."""

    model_config = ConfigDict(extra="forbid")

    file: str = Field(description="A GraphNetwork .npz (benchmarks/sort_graph_model.py, benchmarks/rope_graph_model.py).")


class GraphCostConfig(BaseModel):
    """The cost over all nodes, the same for every planner."""

    model_config = ConfigDict(extra="forbid")

    horizon: PositiveInt = Field(10, description="Planning horizon (steps).")
    pusher_weight: float = Field(0.3, ge=0, description="Weight of the pusher's pull towards its goal point.")
    terminal_weight: PositiveFloat = Field(5.0, description="Weight of the last step's state cost.")


def _default_planners() -> dict[str, GraphPlannerSpec]:
    return {"mppi": GraphPlannerSpec(type="mppi", n_samples=500, iterations=5, temperature=0.003, noise_std=0.3)}


class GraphControlConfig(ExperimentConfig):
    """Closed-loop comparison of planners on a graph dynamics model (Sort-v0 boxes or Rope-v0 particles)."""

    kind: str = "graph_control"
    env: EnvId = Field("controlkit/Rope-v0", description="controlkit/Sort-v0 or controlkit/Rope-v0.")
    env_kwargs: dict[str, Any] = Field(default_factory=dict, description="Keyword arguments of the env.")
    model: GraphModelConfig
    cost: GraphCostConfig = Field(default_factory=GraphCostConfig)
    planners: dict[str, GraphPlannerSpec] = Field(default_factory=_default_planners, min_length=1)
    episodes: PositiveInt = Field(5, description="Closed-loop episodes per planner (same seeded starts for all).")
    max_steps: PositiveInt = Field(40, description="Steps per episode.")

    @field_validator("env")
    @classmethod
    def _graph_env(cls, v: str) -> str:
        if v not in GRAPH_ENVS:
            raise ValueError(f"graph_control runs on {', '.join(GRAPH_ENVS)}")
        return v

    @model_validator(mode="after")
    def _check(self) -> GraphControlConfig:
        for key in ("goal_in_obs", "render_mode"):
            if key in self.env_kwargs:
                raise ValueError(f"env_kwargs.{key} is set by the runner (it reads the env's world-frame state)")
        _check_before_run(self)
        return self


def _setup(config: GraphControlConfig, env: gym.Env):
    """The loaded graph model, the task and a builder of each named planner for ``env`` (unwrapped)."""
    from controlkit.models.graph import GraphNetwork
    from controlkit.tasks.pushing.graph_sort import GraphSortTask, make_graph_planner
    from controlkit.tasks.pushing.rope_task import RopeTask, make_rope_planner

    graph = GraphNetwork.load(config.model.file, field="model.file")
    base = env.unwrapped
    rope = config.env == "controlkit/Rope-v0"
    task = RopeTask(base) if rope else GraphSortTask(base)
    make = make_rope_planner if rope else make_graph_planner
    c = config.cost

    def build(name: str, seed: int):
        spec = config.planners[name]
        if spec.type not in GRAPH_PLANNERS:
            raise choices_error(f"planners.{name}.type", spec.type, GRAPH_PLANNERS)
        try:
            return make(spec.type, graph, base, horizon=c.horizon, seed=seed, pusher_weight=c.pusher_weight,
                        terminal_weight=c.terminal_weight, **spec.knobs())
        except ControlkitError as exc:  # a planner's own message names its argument: prefix the planner's field
            msg = str(exc)
            if msg.startswith(f"planners.{spec.type}:"):  # graph_planner names the type; the YAML names the entry
                raise ControlkitError(f"planners.{name}:{msg.split(':', 1)[1]}") from None
            if msg.startswith(("model.file", "env", "planners.")):
                raise
            raise ControlkitError(f"planners.{name}.{msg}") from None

    return graph, task, build


def _check_before_run(config: GraphControlConfig) -> None:
    """Model file, env values and every planner, checked on the real model and env before any folder exists."""
    env = check_env_builds(config.env, {**config.env_kwargs, "goal_in_obs": False})
    try:
        _, _, build = _setup(config, env)
        for name in config.planners:
            build(name, 0)
    finally:
        env.close()


def run(config: GraphControlConfig, ctx: RunContext) -> dict[str, Any]:
    import torch

    from controlkit.runner.kinds.model_based_control import evaluate_planners
    from controlkit.tasks.pushing import summarise
    from controlkit.tasks.pushing.graph_plots import plot_errors, plot_rope_shapes

    torch.set_num_threads(1)
    env = gym.make(config.env, max_episode_steps=config.max_steps, goal_in_obs=False, **config.env_kwargs)
    graph, task, build = _setup(config, env)
    seeds = ctx.seeds(config.episodes, "episodes")  # the same starts for every planner
    targets: list[np.ndarray] = []

    def keep_target(name, planner, ep) -> None:  # the rope's target of each episode, for the shapes plot
        if len(targets) < len(seeds) and hasattr(env.unwrapped, "target"):
            targets.append(env.unwrapped.target.copy())

    try:
        results, eval_s = evaluate_planners(env, task, lambda name: build(name, ctx.seed), list(config.planners),
                                            seeds, ctx, on_episode=keep_target)
    finally:
        env.close()
    rope = config.env == "controlkit/Rope-v0"
    plots = [plot_errors(ctx.savefig, results, "shape error (cm)" if rope else "distance to regions (cm)")]
    if rope:
        plots.append(plot_rope_shapes(ctx.savefig, results, targets, env.unwrapped.n_particles))
    return {
        "env": config.env,
        "env_kwargs": config.env_kwargs,
        "episodes": config.episodes,
        "max_steps": config.max_steps,
        "horizon": config.cost.horizon,
        "seeds": seeds,
        "model": {"file": config.model.file, "n_relu": graph.n_relu, "n_identity": graph.n_identity,
                  **{k: v for k, v in graph.metadata.items() if k != "config"}},
        "controllers": {name: summarise(eps) for name, eps in results.items()},
        "plots": [str(p) for p in plots],
        "timings": {"evaluate_s": eval_s},
    }


def report(summary: dict[str, Any]) -> str:
    """The table the CLI prints: one row per planner, then where the plots are."""
    m = summary["model"]
    w = max(12, *(len(n) + 1 for n in summary["controllers"]))
    lines = [f"{summary['env']}: {summary['episodes']} episodes per planner, horizon {summary['horizon']}, graph model "
             f"with {m['n_relu']} ReLU + {m['n_identity']} identity neurons (shared MLPs)",
             f"{'planner':<{w}}{'success [95% CI]':>18}{'final dist (m)':>22}{'median step':>13}{'p95 step':>11}"
             f"{'fallbacks':>11}"]
    for name, c in summary["controllers"].items():
        lo, hi = c["success_ci95"]
        success = f"{c['success_rate']:.0%} [{lo:.0%}-{hi:.0%}]"
        lines.append(f"{name:<{w}}{success:>18}"
                     f"{c['final_distance_mean']:>13.4f} ± {c['final_distance_ci95']:<6.4f}"
                     f"{1e3 * c['step_time_median_s']:>10.1f} ms{1e3 * c['step_time_p95_s']:>8.1f} ms"
                     f"{c['fallbacks']:>11d}")
    if summary["plots"]:
        lines.append("plots: " + ", ".join(summary["plots"]))
    return "\n".join(lines)


KIND = ExperimentKind("graph_control", GraphControlConfig, run,
                      "plan on a graph dynamics model (Sort-v0 boxes, Rope-v0 particles): MIP-MPC vs MPPI/CEM",
                      report)

__all__ = ["KIND", "GraphControlConfig"]

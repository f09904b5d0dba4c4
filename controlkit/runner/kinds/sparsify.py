"""Experiment kind ``sparsify``: collect data -> train a dense ReLU model -> sparsify along a schedule -> export.

Each stage is a plain function of :mod:`controlkit.models.data`, :mod:`controlkit.models.dynamics` and
:mod:`controlkit.models.sparsify`; this module only wires them to the runner (metrics per round, the accuracy-sparsity
curve, the saved compact network).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, PositiveInt, model_validator

from controlkit.core.errors import ControlkitError
from controlkit.models.dynamics import TrainSettings
from controlkit.models.sparsify import SparsifySettings
from controlkit.runner.config import EnvId, ExperimentConfig, check_env_kwargs
from controlkit.runner.registry import ExperimentKind
from controlkit.runner.run import RunContext

MODEL_FILE = "compact_model.npz"
DATA_FILE = "dataset.npz"


class DataSettings(BaseModel):
    """Where the transitions come from."""

    model_config = ConfigDict(extra="forbid")

    file: str | None = Field(None, description="Load this dataset (.npz from save_dataset) instead of collecting.")
    behaviour: Literal["random", "correlated"] = Field(
        "correlated", description="Behaviour policy: uniform random, or AR(1) temporally correlated noise.")
    trajectories: PositiveInt = Field(150, description="Episodes to collect.")
    steps: PositiveInt = Field(100, description="Transitions per episode (fewer if the env terminates).")
    correlation: float = Field(0.9, ge=0, lt=1, description="AR(1) coefficient of the correlated behaviour.")
    scale: float = Field(0.7, gt=0, description="Noise scale of the correlated behaviour (half-widths of the box).")
    val_fraction: float = Field(0.2, gt=0, lt=1, description="Share of trajectories held out for validation.")


class ModelSettings(BaseModel):
    """The dense dynamics model."""

    model_config = ConfigDict(extra="forbid")

    hidden: list[PositiveInt] = Field([256, 256], min_length=1, description="Hidden layer sizes (all ReLU).")
    residual: bool = Field(True, description="Predict the change of state rather than the next state.")


class SparsifyConfig(ExperimentConfig):
    """Learn a sparse ReLU dynamics model of ``env`` and export it as a compact network."""

    kind: str = "sparsify"
    env: EnvId = Field(description="Gymnasium env id with a bounded Box action space, e.g. Pendulum-v1.")
    env_kwargs: dict[str, Any] = Field(default_factory=dict, description="Keyword arguments for gymnasium.make.")
    data: DataSettings = Field(default_factory=DataSettings)
    model: ModelSettings = Field(default_factory=ModelSettings)
    train: TrainSettings = Field(default_factory=TrainSettings)
    sparsify: SparsifySettings = Field(default_factory=SparsifySettings)
    torch_threads: PositiveInt = Field(1, description="torch.set_num_threads during the run (small nets: 1).")

    @model_validator(mode="after")
    def _consistent(self) -> SparsifyConfig:
        from controlkit.models.data import check_split, load_dataset, make_env

        check_env_kwargs(self.env, self.env_kwargs)
        env = make_env(self.env, **self.env_kwargs)
        nx, nu = env.observation_space.shape[0], int(np.prod(env.action_space.shape))
        env.close()
        self.sparsify.check_network(self.model.hidden)
        longest, n_traj = self.data.steps, self.data.trajectories
        if self.data.file is not None:
            data = load_dataset(self.data.file, nx=nx, nu=nu, field="data.file")
            longest, n_traj = int(data.lengths.max(initial=0)), data.n_trajectories
        check_split(n_traj, self.data.val_fraction)
        if self.train.eval_steps > longest:
            raise ControlkitError(f"train.eval_steps: {self.train.eval_steps}-step validation needs trajectories "
                                  f"that long; the data has at most {longest} steps (data.steps or data.file).")
        return self


def run(config: SparsifyConfig, ctx: RunContext) -> dict[str, Any]:
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(config.torch_threads)
    try:
        return _run(config, ctx)
    finally:
        torch.set_num_threads(threads)


def _run(config: SparsifyConfig, ctx: RunContext) -> dict[str, Any]:
    from controlkit.models.data import collect, load_dataset, save_dataset
    from controlkit.models.pipeline import learn_sparse_model
    from controlkit.models.sparsify import export_gap

    timings: dict[str, float] = {}
    stage = _StageClock(timings)
    if config.data.file is not None:
        data = load_dataset(config.data.file, field="data.file")
        data_path = str(Path(config.data.file).resolve())
    else:
        d = config.data
        data = collect(config.env, d.trajectories, d.steps, seed=ctx.seed, behaviour=d.behaviour,
                       correlation=d.correlation, scale=d.scale, env_kwargs=config.env_kwargs, progress=ctx.progress)
        save_dataset(data, ctx.path(DATA_FILE))
        data_path = DATA_FILE
    stage.done("collect")
    ctx.log(f"data: {data.n_transitions} transitions in {data.n_trajectories} trajectories, nx={data.nx}, "
            f"nu={data.nu}; training a dense {config.model.hidden} model")

    last = [time.perf_counter()]

    def on_round(r) -> None:
        now = time.perf_counter()
        ctx.metric(**r.row(), time_round_s=now - last[0])
        last[0] = now
        ctx.log(f"round {r.round}: {r.n_relu} ReLU / {r.n_identity} identity / {r.n_removed} removed, "
                f"val MSE 1-step {r.val_one_step:.3g}, {config.train.eval_steps}-step {r.val_rollout:.3g}")

    learned = learn_sparse_model(data, config.model.hidden, config.train, config.sparsify, ctx.seed,
                                 val_fraction=config.data.val_fraction, residual=config.model.residual,
                                 on_round=on_round, progress=ctx.progress)
    timings.update(learned.timings)
    stage.restart()  # the learning stages timed themselves
    model, dense_fit, result, train, val = learned.model, learned.dense_fit, learned.result, learned.train, learned.val
    # fit records one validation error per Adam epoch, then one per polish check: the Adam-only dense error.
    before_polish = min(dense_fit.history[:dense_fit.epochs])

    best, dense = result.best, result.dense
    net = learned.compact(best, metadata={
        "env": config.env, "env_kwargs": config.env_kwargs, "hidden_dense": config.model.hidden,
        "round": best.round, "seed": ctx.seed, "schedule": config.sparsify.schedule,
        "val_error_rollout": best.val_rollout, "val_error_one_step": best.val_one_step,
        "eval_steps": config.train.eval_steps, "data": data.metadata,
    })
    net.save(ctx.path(MODEL_FILE))
    x_val, u_val, _ = val.transitions()
    export_diff = export_gap(model, best.modes, net, x_val, u_val)
    stage.done("export")

    reduction = dense.n_relu / max(best.n_relu, 1)
    ratio = best.val_rollout / dense.val_rollout
    summary = {
        "env": config.env,
        "relus_dense": dense.n_relu,
        "relus_sparse": best.n_relu,
        "identity_neurons": best.n_identity,
        "removed_neurons": best.n_removed,
        "val_error_dense": dense.val_rollout,
        "val_error_sparse": best.val_rollout,
        "val_one_step_dense": dense.val_one_step,
        "val_one_step_sparse": best.val_one_step,
        "eval_steps": config.train.eval_steps,
        "relu_reduction": reduction,
        "error_ratio": ratio,
        "tolerance": config.sparsify.tolerance,
        "within_tolerance": bool(ratio <= config.sparsify.tolerance),
        "selected_round": best.round,
        "dense_epochs": dense_fit.epochs,
        "dense_polish_iterations": dense_fit.polish_iterations,
        "val_error_dense_before_polish": before_polish,
        "curve": [{"n_relu": r.n_relu, "n_identity": r.n_identity, "val_error": r.val_rollout,
                   "val_one_step": r.val_one_step, "final_finetune": r.final_finetune} for r in result.rounds],
        "export_max_abs_diff": export_diff,
        "model_path": MODEL_FILE,
        "dataset_path": data_path,
        "train_trajectories": train.n_trajectories,
        "val_trajectories": val.n_trajectories,
        "timings": timings,
    }
    ctx.savefig(plot_curve(summary), "accuracy_sparsity.png")
    return summary


class _StageClock:
    """Writes ``<stage>_s`` (wall) and ``<stage>_cpu_s`` (this process's CPU) for consecutive stages.

    CPU seconds are what a stage would take on an idle core; wall seconds on a shared machine include waiting.
    """

    def __init__(self, timings: dict[str, float]) -> None:
        self.timings = timings
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def restart(self) -> None:
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def done(self, stage: str) -> None:
        wall, cpu = time.perf_counter(), time.process_time()
        self.timings[f"{stage}_s"], self.timings[f"{stage}_cpu_s"] = wall - self.wall, cpu - self.cpu
        self.wall, self.cpu = wall, cpu


def plot_curve(summary: dict[str, Any]):
    """The accuracy-sparsity curve of a ``sparsify`` run, drawn from its summary (a matplotlib Figure)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    curve = summary["curve"]
    relus = [p["n_relu"] for p in curve]
    dense, best = curve[0], curve[summary["selected_round"]]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(relus, [p["val_error"] for p in curve], "o-", color="tab:blue",
            label=f"{summary['eval_steps']}-step val MSE")
    ax.plot(relus, [p["val_one_step"] for p in curve], "s--", color="tab:gray", ms=4, label="1-step val MSE")
    ax.plot([dense["n_relu"]], [dense["val_error"]], "*", color="tab:red", ms=16, label="dense model")
    ax.axhline(summary["tolerance"] * dense["val_error"], color="tab:red", ls=":", lw=1,
               label=f"{summary['tolerance']:g} x dense")
    ax.plot([best["n_relu"]], [best["val_error"]], "o", mfc="none", mec="k", ms=14, mew=1.5,
            label=f"selected: {best['n_relu']} ReLUs")
    ax.set(xscale="log", yscale="log", xlabel="ReLU neurons", ylabel="validation MSE (raw units)",
           title=f"Accuracy vs sparsity, {summary['env']}")
    ticks = sorted(set(relus))
    ax.set_xticks(ticks, [str(n) for n in ticks], fontsize=8)
    ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def report(summary: dict[str, Any]) -> str:
    return (
        f"sparse model: {summary['relus_sparse']} ReLUs + {summary['identity_neurons']} identity "
        f"(dense {summary['relus_dense']}, {summary['relu_reduction']:.1f}x fewer); {summary['eval_steps']}-step "
        f"val MSE {summary['val_error_sparse']:.3g} vs dense {summary['val_error_dense']:.3g} "
        f"({summary['error_ratio']:.2f}x, tolerance {summary['tolerance']:g}x)"
    )


KIND = ExperimentKind("sparsify", SparsifyConfig, run,
                      "learn ReLU dynamics, sparsify neurons to ReLU/identity/removed, export", report)

"""Experiment kind ``twin_simulate``: N seeded replicates of a twin under a fixed control schedule, per arm.

Each arm (default: one, ``baseline``) may override the twin's parameters and the control schedule. Replicate
``i`` of every arm uses the same seed, the run's ``i``-th spawned replicate seed (common random numbers, so arms
differ by their settings, not their luck). Replicates run in parallel through
:func:`controlkit.core.executors.map_tasks` (a local process pool, or Ray).

Outputs: ``trajectories.npz`` (``<arm>`` -> ``(replicates, steps + 1, observables)`` arrays, plus ``observables``),
``trajectories.png`` (mean and 95 % bands per observable), ``metrics.csv`` (one row per replicate with its
outcome statistics), and a summary with the mean and 95 % confidence interval of every outcome statistic.
"""

from __future__ import annotations

import io
import time
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt, PositiveInt, field_validator, model_validator
from scipy import stats as _st

from controlkit.core.errors import ControlkitError
from controlkit.core.executors import map_tasks
from controlkit.core.io import atomic_write_bytes
from controlkit.core.stats import mean_ci95
from controlkit.runner.config import ExperimentConfig
from controlkit.runner.registry import ExperimentKind
from controlkit.runner.run import RunContext


class Segment(BaseModel):
    """From tick ``start`` on, hold ``control`` (until the next segment's start)."""

    model_config = ConfigDict(extra="forbid")
    start: NonNegativeInt
    control: list[float]


class Arm(BaseModel):
    """Overrides for one arm: parameters merged over the experiment's, and its own control or schedule."""

    model_config = ConfigDict(extra="forbid")
    params: dict[str, Any] = Field(default_factory=dict, description="Parameter overrides for this arm.")
    control: list[float] | None = Field(None, description="Constant control (replaces the experiment's).")
    schedule: list[Segment] | None = Field(None, description="Piecewise-constant schedule (replaces it).")


class TwinSimulateConfig(ExperimentConfig):
    """Simulate ``twin`` for ``steps`` ticks, ``replicates`` times per arm."""

    kind: str = "twin_simulate"
    twin: str = Field(description="Registered twin name (immune, metabolic, predator_prey) or "
                                  "'package.module:SPEC' naming a controlkit.twins.TwinSpec.")
    params: dict[str, Any] = Field(default_factory=dict, description="Twin parameter overrides (all arms).")
    steps: PositiveInt = Field(description="Ticks per replicate.")
    control: list[float] | None = Field(None, description="Constant control per tick (default: all zeros).")
    schedule: list[Segment] | None = Field(None, description="Piecewise-constant control; first start must be 0.")
    arms: dict[str, Arm] = Field(default_factory=lambda: {"baseline": Arm()},
                                 description="Named settings compared side by side (default: one baseline arm).")
    replicates: PositiveInt = Field(10, description="Seeded replicates per arm (seeds spawned from seed).")
    executor: Literal["local", "ray"] = Field("local", description="Where replicates run.")
    workers: PositiveInt | None = Field(None, description="Parallel workers (default: CPU count).")

    @field_validator("twin")
    @classmethod
    def _registered(cls, v: str) -> str:
        from controlkit.twins import get_twin

        get_twin(v)  # raises a ControlkitError naming `twin` and the registered names
        return v

    @model_validator(mode="after")
    def _check_arms(self) -> TwinSimulateConfig:
        if not self.arms:
            raise ValueError("arms: give at least one arm (or omit the key for a single baseline arm)")
        for name in self.arms:
            # Build each arm's twin and schedule once so a bad parameter or control fails before any run.
            _arm_setup(self, name)
        return self


def _arm_setup(config: TwinSimulateConfig, arm_name: str) -> tuple[dict[str, Any], np.ndarray]:
    """The merged parameters and the validated ``(steps, n_controls)`` schedule of one arm."""
    from controlkit.twins import make_twin

    arm = config.arms[arm_name]
    params = {**config.params, **arm.params}
    where = f"arms.{arm_name}." if arm.params else ""
    try:
        twin = make_twin(config.twin, params, seed=0)
    except ControlkitError as exc:
        raise ControlkitError(f"{where}{exc}") from None
    control, schedule = (arm.control, arm.schedule) if (arm.control or arm.schedule) else (config.control,
                                                                                            config.schedule)
    if control is not None and schedule is not None:
        raise ControlkitError(f"control, schedule: give one of them (arm {arm_name!r}), not both.")
    try:
        if schedule is not None:
            sched = _expand(schedule, config.steps, len(twin.controls))
            return params, twin.check_schedule(sched, config.steps)
        return params, twin.check_schedule(control, config.steps)
    except ControlkitError as exc:
        raise ControlkitError(f"arm {arm_name!r}: {exc} (controls are {', '.join(twin.control_names)})") from None


def _expand(schedule: list[Segment], steps: int, n: int) -> np.ndarray:
    starts = [s.start for s in schedule]
    if not starts or starts[0] != 0 or any(b <= a for a, b in zip(starts, starts[1:])):
        raise ControlkitError(f"schedule: segment starts must begin at 0 and increase, got {starts}.")
    out = np.zeros((steps, n))
    for seg, end in zip(schedule, starts[1:] + [steps]):
        if len(seg.control) != n:
            raise ControlkitError(f"schedule[start={seg.start}].control: expected {n} values, got {len(seg.control)}.")
        out[seg.start:end] = seg.control
    return out


def simulate_replicate(twin: str, params: dict[str, Any], seed: int, schedule: np.ndarray):
    """Run one replicate; return ``(trajectory, outcome dict, wall seconds)`` (a module-level task function)."""
    from controlkit.twins import make_twin

    t0 = time.perf_counter()
    model = make_twin(twin, params, seed=seed)
    traj = model.run(schedule)
    return traj, model.summarize(traj), time.perf_counter() - t0


def bands(trajs: np.ndarray) -> dict[str, np.ndarray]:
    """Mean, 95 % t-interval of the mean, and 2.5-97.5 percentiles over replicates (axis 0)."""
    n = trajs.shape[0]
    mean = trajs.mean(axis=0)
    half = (trajs.std(axis=0, ddof=1) / np.sqrt(n) * _st.t.ppf(0.975, n - 1)) if n > 1 else np.zeros_like(mean)
    return {"mean": mean, "ci_low": mean - half, "ci_high": mean + half,
            "p2_5": np.percentile(trajs, 2.5, axis=0), "p97_5": np.percentile(trajs, 97.5, axis=0)}


def run(config: TwinSimulateConfig, ctx: RunContext) -> dict[str, Any]:
    from controlkit.twins import get_twin

    names = get_twin(config.twin).model.observables()
    arms = {name: _arm_setup(config, name) for name in config.arms}
    tasks, index = [], []
    seeds = ctx.seeds(config.replicates, "replicates")
    for arm, (params, schedule) in arms.items():
        for i in range(config.replicates):
            tasks.append((config.twin, params, seeds[i], schedule))
            index.append((arm, i))
    ctx.log(f"{config.twin}: {len(arms)} arm(s) x {config.replicates} replicates x {config.steps} ticks")
    results = map_tasks(simulate_replicate, tasks, executor=config.executor, workers=config.workers,
                        desc="replicates", quiet=ctx.quiet)
    trajs: dict[str, list[np.ndarray]] = {arm: [] for arm in arms}
    outcomes: dict[str, list[dict[str, float]]] = {arm: [] for arm in arms}
    walls = []
    for (arm, i), (traj, outcome, wall) in zip(index, results):
        trajs[arm].append(traj)
        outcomes[arm].append(outcome)
        walls.append(wall)
        ctx.metric(arm=arm, replicate=i, seed=seeds[i], **outcome, time_wall_s=wall)
    stacked = {arm: np.stack(v) for arm, v in trajs.items()}
    buf = io.BytesIO()
    np.savez_compressed(buf, observables=np.array(names), **stacked)
    atomic_write_bytes(ctx.path("trajectories.npz"), buf.getvalue())
    _plot(ctx, config, names, stacked)
    summary: dict[str, Any] = {"twin": config.twin, "steps": config.steps, "replicates": config.replicates,
                               "observables": list(names), "arms": {}}
    for arm in arms:
        final = stacked[arm][:, -1, :]
        stats = {}
        for key in outcomes[arm][0]:
            values = np.array([o[key] for o in outcomes[arm]], dtype=float)
            values = values[~np.isnan(values)]
            mean, ci = mean_ci95(values)
            stats[key] = {"mean": mean, "ci95": ci, "n": int(values.size)}
        summary["arms"][arm] = {
            "outcomes": stats,
            "final_mean": {name: float(final[:, j].mean()) for j, name in enumerate(names)},
        }
    ticks = config.steps * len(tasks)
    summary["timings"] = {"replicate_wall_mean_s": float(np.mean(walls)),
                          "ticks_per_s_per_worker": float(ticks / np.sum(walls))}
    return summary


def _plot(ctx: RunContext, config: TwinSimulateConfig, names, stacked: dict[str, np.ndarray]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from controlkit.twins.immune import STEPS_PER_DAY

    per_day = config.twin == "immune"
    t = np.arange(config.steps + 1) / (STEPS_PER_DAY if per_day else 1)
    cols = min(4, len(names))
    rows = -(-len(names) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.4 * rows), squeeze=False, sharex=True)
    for arm, colour in zip(stacked, plt.rcParams["axes.prop_cycle"].by_key()["color"] * 4):
        b = bands(stacked[arm])
        for j, name in enumerate(names):
            ax = axes.flat[j]
            ax.fill_between(t, b["p2_5"][:, j], b["p97_5"][:, j], color=colour, alpha=0.12, lw=0)
            ax.fill_between(t, b["ci_low"][:, j], b["ci_high"][:, j], color=colour, alpha=0.35, lw=0)
            ax.plot(t, b["mean"][:, j], color=colour, lw=1.2, label=arm if j == 0 else None)
            ax.set_title(name, fontsize=9)
    for ax in axes.flat[len(names):]:
        ax.axis("off")
    for ax in axes[-1]:
        ax.set_xlabel("day" if per_day else "tick")
    fig.suptitle(f"{config.twin}: mean, 95% CI of the mean (dark), 2.5-97.5% of replicates (light); "
                 f"n={config.replicates}", fontsize=9)
    axes.flat[0].legend(fontsize=7)
    fig.tight_layout()
    ctx.savefig(fig, "trajectories.png")


def report(summary: dict[str, Any]) -> str:
    lines = [f"{summary['twin']}: {summary['replicates']} replicates x {summary['steps']} ticks per arm"]
    for arm, data in summary["arms"].items():
        stats = ", ".join(f"{k} {v['mean']:.3g} ± {v['ci95']:.2g}" for k, v in data["outcomes"].items())
        lines.append(f"  {arm}: {stats}")
    return "\n".join(lines)


KIND = ExperimentKind("twin_simulate", TwinSimulateConfig, run,
                      "replicates of a digital twin under a fixed control schedule, with 95% bands", report)

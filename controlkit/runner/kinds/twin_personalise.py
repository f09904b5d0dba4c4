"""Experiment kind ``twin_personalise``: personalise a twin to synthetic patients and control each one with it.

Reads top to bottom:

1. The population is a prior over hidden twin parameters; each synthetic patient is a twin with parameters drawn
   from it and its own seed. What is known of a patient is its pilot data: the task's uncontrolled burn-in,
   measured through the observation model (only the measured observables, noisy, sampled, delayed).
2. Calibration: neural posterior estimation (``sbi``) trained once on simulations from the prior (amortised);
   each patient's posterior is then a conditional sample. Reported: the share of patients whose 90 % posterior
   interval covers each hidden parameter, and the seconds spent (simulations, training, per patient).
3. Decisions: the cost of each constant control on twins drawn from the prior (one table, common random numbers),
   smoothed per control by a quadratic regression in the parameters. The *population-tuned* control is best on
   average over the table; the *personalised* one is best in expectation under the patient's posterior; the
   *oracle* one is best at the patient's true parameters (a reference no clinic has); the *filtered* controller
   (optional) runs a particle filter over replicate twins from the posterior and re-plans at every decision from
   its updated weights (measure → update → re-plan).
4. Every controller continues the same patient from the end of its pilot (deep copies: same state, same random
   stream), so the comparison is paired; the summary holds each method's cost with a 95 % CI and the paired
   difference and ratio of personalised vs population-tuned.
"""

from __future__ import annotations

import copy
import os
import time
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, PositiveInt, model_validator

from controlkit.core.errors import ControlkitError
from controlkit.runner.config import ExperimentConfig
from controlkit.runner.registry import ExperimentKind
from controlkit.runner.run import RunContext

# Seed blocks (offsets from seed * 1e6) keep simulations, the cost table, patients and particles apart.
SIMS, TABLE, PATIENTS, PARTICLES = 100_000, 200_000, 300_000, 400_000
METHODS = ("population", "personalised", "oracle", "filtered")


class _Block(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TaskSettings(_Block):
    """Control timing; unset fields take the twin's defaults."""

    burn_in: PositiveInt | None = Field(None, description="Pilot ticks (uncontrolled, measured) before control.")
    interval: PositiveInt | None = None
    decisions: PositiveInt | None = None
    apply: Literal["pulse", "hold"] | None = None
    u_high: list[float] | None = None


class ObservationSettings(_Block):
    """:class:`controlkit.twins.ObservationModel` fields; unset fields take the twin's defaults."""

    observables: list[str] | None = None
    noise: float | list[float] | None = None
    interval: PositiveInt | None = None
    delay: int | None = Field(None, ge=0)
    floor: float | list[float] | None = None


class SBISettings(_Block):
    simulations: PositiveInt = Field(400, description="Prior draws simulated to train the posterior estimator.")
    density_estimator: Literal["maf", "nsf", "mdn"] = "maf"
    max_epochs: PositiveInt = Field(300, description="Training epochs at most (early stopping on held-out data).")
    posterior_samples: PositiveInt = Field(1000, description="Samples per patient's posterior.")


class ControlSettings(_Block):
    levels: PositiveInt = Field(3, description="Grid values per control (constant decisions).")
    table_draws: PositiveInt = Field(48, description="Prior draws the cost table is simulated on.")


class FilterSettings(_Block):
    particles: int = Field(0, ge=0, description="Particles of the filtered controller (0: not run).")


class TwinPersonaliseConfig(ExperimentConfig):
    """Personalisation of a twin to synthetic patients: calibration, coverage, personalised vs population control."""

    kind: str = "twin_personalise"
    twin: str = Field(description="Registered twin name or 'package.module:SPEC'.")
    params: dict[str, Any] = Field(default_factory=dict, description="Twin parameter overrides.")
    task: TaskSettings = Field(default_factory=TaskSettings)
    objective: dict[str, Any] = Field(default_factory=dict, description="Objective settings and weights.")
    observation: ObservationSettings = Field(default_factory=ObservationSettings)
    prior: dict[str, tuple[float, float]] = Field(description="Hidden parameter -> (low, high): the population.")
    patients: PositiveInt = Field(30, description="Synthetic patients.")
    sbi: SBISettings = Field(default_factory=SBISettings)
    control: ControlSettings = Field(default_factory=ControlSettings)
    filter: FilterSettings = Field(default_factory=FilterSettings)
    executor: Literal["local", "ray"] = "local"
    workers: PositiveInt = Field(2, description="Parallel ABM workers.")

    @model_validator(mode="after")
    def _consistent(self) -> TwinPersonaliseConfig:
        from controlkit.core.extras import require

        task, obs, prior = build(self)  # raises ControlkitError naming the field
        require("sbi", "kind: twin_personalise (simulation-based inference, sbi)")  # before any simulation
        prior.check(task)
        obs.columns(task.make_twin(0).observables())
        if len(obs.sample_ticks(task.burn_in)) == 0:
            raise ControlkitError(f"observation.interval: {obs.interval} ticks leave no sample in a pilot of "
                                  f"task.burn_in = {task.burn_in} ticks.")
        return self


def build(config: TwinPersonaliseConfig):
    """``(task, observation model, prior)`` of a config."""
    from controlkit.twins.personalise import ParameterPrior
    from controlkit.twins.registry import make_observation, make_task

    settings = dict(config.objective)
    weights = settings.pop("weights", None)
    task = make_task(config.twin, config.params, weights, settings, **config.task.model_dump())
    obs = make_observation(config.twin, **config.observation.model_dump())
    return task, obs, ParameterPrior({k: tuple(v) for k, v in config.prior.items()})


def patient_pilot(task, obs, prior, theta, seed):
    """A patient's twin at the end of its pilot and the pilot's measured features (a worker task)."""
    from controlkit.twins.personalise import features, pilot_measurements

    twin, measured, _ = pilot_measurements(task, obs, prior.params(theta), seed)
    return twin, features(measured), measured


def continue_constant(task, twin, u) -> float:
    """Cost of holding decision ``u`` on a copy of a patient's twin from the end of its pilot (a worker task)."""
    from controlkit.twins.baselines import ConstantTwinController
    from controlkit.twins.deploy import score_episode

    twin = copy.deepcopy(twin)
    ctrl = ConstantTwinController(u)
    obs, sched = [twin.observe()], []
    for _ in range(task.decisions):
        s = task.schedule(task.admissible(ctrl.act(obs[-1])))
        obs.extend(twin.run(s)[1:])
        sched.append(s)
    return score_episode(task, -1, np.asarray(obs), np.concatenate(sched), np.zeros((task.decisions, len(u))),
                         {}).cost


def filtered_patient(task, obs, prior, twin, measured, thetas, seeds, surface, controls, seed) -> dict[str, Any]:
    """The measure → update → re-plan controller on a copy of one patient (a worker task)."""
    from controlkit.twins.personalise import ParticleFilter, pilot_measurements, run_filtered_episode

    twins, log_w = [], []
    for th, s in zip(thetas, seeds):
        p_twin, _, p_true = pilot_measurements(task, obs, prior.params(th), int(s))
        twins.append(p_twin)
        log_w.append(sum(float(obs.log_likelihood(m, t[None])[0]) for m, t in zip(measured, p_true)))
    pf = ParticleFilter(twins, thetas, obs, np.random.default_rng([seed, 1]), np.asarray(log_w))
    return run_filtered_episode(task, copy.deepcopy(twin), pf, surface, controls, np.random.default_rng([seed, 2]))


def run(config: TwinPersonaliseConfig, ctx: RunContext) -> dict[str, Any]:
    import torch

    from controlkit.core.executors import map_tasks
    from controlkit.core.stats import mean_ci95
    from controlkit.twins.personalise import (
        CostSurface,
        control_grid,
        cost_table,
        posterior_samples,
        simulate_feature,
        train_posterior,
    )

    torch.set_num_threads(1)
    task, obs, prior = build(config)
    base = ctx.seed * 1_000_000
    par = {"executor": config.executor, "workers": config.workers}
    rng = np.random.default_rng([ctx.seed, 31])
    summary: dict[str, Any] = {"twin": config.twin, "task": task.describe(), "observation": obs.describe(),
                               "prior": {k: list(v) for k, v in prior.bounds.items()},
                               # wall times below move with the machine's load: record it beside them
                               "timings": {"load_average_start": list(os.getloadavg())}}

    # 1-2. calibration: amortised neural posterior estimation on prior simulations
    t0 = time.perf_counter()
    thetas = prior.sample(rng, config.sbi.simulations)
    xs = np.stack(map_tasks(simulate_feature, [(task, obs, prior, th, base + SIMS + i) for i, th in enumerate(thetas)],
                            desc="SBI simulations", quiet=ctx.quiet, **par))
    summary["timings"]["sbi_simulations_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    posterior = train_posterior(prior, thetas, xs, seed=ctx.seed, density_estimator=config.sbi.density_estimator,
                                max_epochs=config.sbi.max_epochs)
    summary["timings"]["sbi_training_s"] = time.perf_counter() - t0
    summary["timings"]["calibration_once_s"] = (summary["timings"]["sbi_simulations_s"]
                                                + summary["timings"]["sbi_training_s"])
    summary["timings"]["load_average_after_calibration"] = list(os.getloadavg())
    ctx.log(f"posterior estimator trained on {len(thetas)} simulations ({summary['timings']['sbi_training_s']:.0f} s)")

    # 3. decisions: cost table on prior draws, smoothed per control
    t0 = time.perf_counter()
    controls = control_grid(task, config.control.levels)
    table_thetas = prior.sample(rng, config.control.table_draws)
    table = cost_table(task, prior, table_thetas, controls,
                       range(base + TABLE, base + TABLE + config.control.table_draws), **par)
    surface = CostSurface(prior, table_thetas, table)
    u_pop = controls[int(np.argmin(table.mean(0)))]
    summary["timings"]["cost_table_s"] = time.perf_counter() - t0
    summary["cost_table"] = {"controls": controls.tolist(), "mean_cost": table.mean(0).tolist(),
                             "surface_residual_sd": surface.residual_sd, "population_control": u_pop.tolist()}
    ctx.log(f"cost table {table.shape}; population-tuned control {u_pop.tolist()}")

    # 4. patients: pilot, posterior, decisions, paired continuation
    p_thetas = prior.sample(rng, config.patients)
    p_seeds = [base + PATIENTS + i for i in range(config.patients)]
    pilots = map_tasks(patient_pilot, [(task, obs, prior, th, s) for th, s in zip(p_thetas, p_seeds)],
                       desc="patient pilots", quiet=ctx.quiet, **par)
    covered, widths, per_patient_s, chosen = [], [], [], {m: [] for m in METHODS}
    post_draws = []
    for i, (_, x, _) in enumerate(pilots):
        t0 = time.perf_counter()
        samples = posterior_samples(posterior, x, config.sbi.posterior_samples, seed=ctx.seed * 7919 + i)
        per_patient_s.append(time.perf_counter() - t0)
        lo, hi = np.quantile(samples, [0.05, 0.95], axis=0)
        covered.append((lo <= p_thetas[i]) & (p_thetas[i] <= hi))
        widths.append((hi - lo) / (prior.high - prior.low))
        chosen["population"].append(u_pop)
        chosen["personalised"].append(controls[surface.best(samples)])
        chosen["oracle"].append(controls[surface.best(p_thetas[i][None])])
        post_draws.append(samples)
    args = [(task, pilots[i][0], chosen[m][i]) for m in ("population", "personalised", "oracle")
            for i in range(config.patients)]
    flat = map_tasks(continue_constant, args, desc="patients", quiet=ctx.quiet, **par)
    costs = {m: np.asarray(flat[k * config.patients:(k + 1) * config.patients])
             for k, m in enumerate(("population", "personalised", "oracle"))}
    if config.filter.particles:
        n = config.filter.particles
        fargs = []
        for i in range(config.patients):
            pick = np.random.default_rng([ctx.seed, 97, i]).choice(len(post_draws[i]), n, replace=False)
            seeds = [base + PARTICLES + i * n + j for j in range(n)]
            fargs.append((task, obs, prior, pilots[i][0], pilots[i][2], post_draws[i][pick], seeds, surface,
                          controls, p_seeds[i]))
        t0 = time.perf_counter()
        res = map_tasks(filtered_patient, fargs, desc="filtered patients", quiet=ctx.quiet, **par)
        summary["timings"]["filtered_s"] = time.perf_counter() - t0
        costs["filtered"] = np.array([r["cost"] for r in res])
        summary["filter"] = {"particles": n, "resamples_mean": float(np.mean([r["resamples"] for r in res]))}

    covered_arr, widths_arr = np.asarray(covered), np.asarray(widths)
    summary["coverage_90"] = {"all": float(covered_arr.mean()),
                              **{name: float(covered_arr[:, j].mean()) for j, name in enumerate(prior.names)}}
    summary["interval_width_over_prior"] = {name: float(widths_arr[:, j].mean()) for j, name in enumerate(prior.names)}
    summary["timings"]["calibration_per_patient_s"] = float(np.mean(per_patient_s))
    summary["methods"] = {}
    for m, c in costs.items():
        mean, ci = mean_ci95(c)
        summary["methods"][m] = {"cost_mean": mean, "cost_ci95": ci}
        for i, v in enumerate(c):
            ctx.metric(method=m, patient=i, cost=float(v))
    pop = costs["population"]
    for m in [k for k in costs if k != "population"]:
        d_mean, d_ci = mean_ci95(costs[m] - pop)
        summary["methods"][m]["paired_diff_vs_population"] = {"mean": d_mean, "ci95": d_ci}
        summary["methods"][m]["ratio_vs_population"] = float(costs[m].mean() / pop.mean()) if pop.mean() else None
    summary["patients"] = config.patients
    _plot(ctx, prior, p_thetas, post_draws, costs)
    return summary


def _plot(ctx: RunContext, prior, truths, draws, costs) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = len(prior.names)
    fig, axes = plt.subplots(1, k + 1, figsize=(4 * (k + 1), 3.4), squeeze=False)
    axes = axes[0]
    for j, name in enumerate(prior.names):
        lo, hi = np.array([np.quantile(d[:, j], [0.05, 0.95]) for d in draws]).T
        med = np.array([np.median(d[:, j]) for d in draws])
        t = truths[:, j]
        axes[j].errorbar(t, med, yerr=[med - lo, hi - med], fmt="o", ms=3, lw=0.8, alpha=0.8)
        axes[j].plot([prior.low[j], prior.high[j]], [prior.low[j], prior.high[j]], "k--", lw=0.8)
        axes[j].set(xlabel=f"true {name}", ylabel="posterior median, 90 % interval", title=name)
    from controlkit.core.stats import mean_ci95

    names = list(costs)
    stats = [mean_ci95(costs[m]) for m in names]
    axes[-1].bar(range(len(names)), [m for m, _ in stats], yerr=[c for _, c in stats], capsize=4,
                 color=[f"C{i}" for i in range(len(names))])
    axes[-1].set_xticks(range(len(names)), names, rotation=20)
    axes[-1].set(ylabel="cost (mean, 95 % CI over patients)", title="control of each patient")
    fig.tight_layout()
    ctx.savefig(fig, "personalise.png")


def report(summary: dict[str, Any]) -> str:
    lines = [f"{summary['twin']}: {summary['patients']} synthetic patients"]
    cov = summary["coverage_90"]
    lines.append("  90 % posterior intervals cover the hidden parameter: "
                 + ", ".join(f"{k} {100 * v:.0f} %" for k, v in cov.items()))
    t = summary["timings"]
    lines.append(f"  calibration: {t['sbi_simulations_s']:.0f} s simulations + {t['sbi_training_s']:.0f} s training "
                 f"(once), {t['calibration_per_patient_s']:.2f} s per patient")
    for name, m in summary["methods"].items():
        extra = ""
        if "paired_diff_vs_population" in m:
            d = m["paired_diff_vs_population"]
            extra = f"   vs population {d['mean']:+.4f} ± {d['ci95']:.4f} (ratio {m['ratio_vs_population']:.2f})"
        lines.append(f"  {name:12s} {m['cost_mean']:.4f} ± {m['cost_ci95']:.4f}{extra}")
    return "\n".join(lines)


KIND = ExperimentKind("twin_personalise", TwinPersonaliseConfig, run,
                      "personalise a twin to synthetic patients (SBI posterior, particle filter) and control each",
                      report)

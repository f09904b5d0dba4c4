"""Plots of a pushing experiment: paths over the table, distance to the goal over time, step times, frames."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from controlkit.core.stats import mean_ci95
from controlkit.tasks.pushing.task import EpisodeResult, Task


def plot_all(save: Callable[[Any, str], Path], task: Task, results: dict[str, list[EpisodeResult]]) -> list[Path]:
    """Trajectories over the goal, distance vs step with 95 % bands, step-time histogram, frame strip.

    ``save(figure, file_name) -> path`` stores each figure (the runner passes ``RunContext.savefig``).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    from controlkit.envs.tabletop import COLOURS, TABLE_HALF

    names = list(results)
    paths = []
    fig, axes = plt.subplots(1, len(names), figsize=(3.2 * len(names), 3.3), squeeze=False)
    for ax, name in zip(axes[0], names):
        for rect, colour in _rects(task):
            ax.add_patch(Rectangle(rect[:2], rect[2] - rect[0], rect[3] - rect[1], color=colour, alpha=0.25))
        for ep in results[name]:
            s = ep.states
            for i in range((s.shape[1] - 2) // 4):
                c = COLOURS[i % len(COLOURS)]
                ax.plot(s[:, 4 * i], s[:, 4 * i + 1], "-", color=c, lw=1, alpha=0.8)
                ax.plot(*s[0, 4 * i:4 * i + 2], "o", color=c, ms=3)
                ax.plot(*s[-1, 4 * i:4 * i + 2], "s" if ep.success else "x", color=c, ms=4)
            if not task.sort:
                ax.plot(*ep.goal[:2], "*", color="k", ms=6)
        ax.set(xlim=(-TABLE_HALF, TABLE_HALF), ylim=(-TABLE_HALF, TABLE_HALF), aspect="equal", title=name,
               xticks=[], yticks=[])
    fig.suptitle("object paths (o start, square success, x failure, * goal)", fontsize=9)
    paths.append(save(fig, "trajectories.png"))

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for name in names:
        eps = results[name]
        n = max(len(e.distances) for e in eps)
        # An episode that ended early keeps its last distance (the object stays where it was left).
        d = np.array([e.distances + [e.distances[-1]] * (n - len(e.distances)) for e in eps])
        stats = [mean_ci95(d[:, t]) for t in range(n)]
        mean, ci = np.array([m for m, _ in stats]), np.array([c for _, c in stats])
        line, = ax.plot(mean, label=name)
        ax.fill_between(np.arange(n), mean - ci, mean + ci, color=line.get_color(), alpha=0.2)
    ax.set(xlabel="step", ylabel="distance to goal (m)", title="distance to goal, mean and 95% CI")
    ax.legend(fontsize=8)
    paths.append(save(fig, "distance.png"))

    fig, ax = plt.subplots(figsize=(6, 3.5))
    all_t = np.concatenate([np.concatenate([e.step_times for e in results[n]]) for n in names])
    bins = np.geomspace(max(all_t.min(), 1e-4), all_t.max() * 1.01, 40)
    for name in names:
        ax.hist(np.concatenate([e.step_times for e in results[name]]), bins=bins, alpha=0.5, label=name)
    ax.set(xscale="log", xlabel="control step time (s)", ylabel="steps", title="step time per planner")
    ax.legend(fontsize=8)
    paths.append(save(fig, "step_times.png"))

    strips = {n: results[n][0].frames for n in names if results[n][0].frames}
    if strips:
        k = 6
        fig, axes = plt.subplots(len(strips), k, figsize=(1.6 * k, 1.7 * len(strips)), squeeze=False)
        for row, (name, frames) in zip(axes, strips.items()):
            pick = np.linspace(0, len(frames) - 1, k).round().astype(int)
            for ax, i in zip(row, pick):
                ax.imshow(frames[i])
                ax.set(xticks=[], yticks=[])
                ax.set_title(f"step {i}", fontsize=7)
            row[0].set_ylabel(name, fontsize=8)
        paths.append(save(fig, "frames.png"))
    return paths


def _rects(task: Task) -> list[tuple[np.ndarray, tuple]]:
    from controlkit.envs.tabletop import COLOURS

    if task.sort:
        return [(r, COLOURS[i % len(COLOURS)]) for i, r in enumerate(task.env.regions)]
    keep_out = getattr(task.env, "keep_out", None)
    return [] if keep_out is None else [(keep_out, (0.9, 0.1, 0.1))]

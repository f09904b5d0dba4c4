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

    from controlkit.envs.tabletop import COLOURS

    names = list(results)
    paths = []
    fig, axes = plt.subplots(1, len(names), figsize=(3.2 * len(names), 3.5), squeeze=False)
    lim = _path_limits(task, results)
    headings = not task.sort and task.cost.orientation_weight > 0
    tick = 0.1 * (lim[0][1] - lim[0][0])  # heading ticks a fixed share of the zoomed view
    episode_colours = plt.get_cmap("tab10").colors
    for ax, name in zip(axes[0], names):
        for rect, colour, solid in _rects(task):
            ax.add_patch(Rectangle(rect[:2], rect[2] - rect[0], rect[3] - rect[1], color=colour,
                                   alpha=0.6 if solid else 0.25))
        box = task.keep_out()
        if box is not None and task.cost.keep_out_margin > 0:  # the grown box the planners avoid
            ax.add_patch(Rectangle(box.low, box.high[0] - box.low[0], box.high[1] - box.low[1], fill=False,
                                   ls="--", lw=0.8, color="0.3"))
        for j, ep in enumerate(results[name]):
            s = ep.states
            for i in range((s.shape[1] - 2) // 4):
                # Push: one colour per episode, its goal in the same colour; Sort: one colour per box.
                c = COLOURS[i % len(COLOURS)] if task.sort else episode_colours[j % len(episode_colours)]
                ax.plot(s[:, 4 * i], s[:, 4 * i + 1], "-", color=c, lw=1, alpha=0.8)
                ax.plot(*s[0, 4 * i:4 * i + 2], "o", color=c, ms=3)
                ax.plot(*s[-1, 4 * i:4 * i + 2], "s" if ep.success else "x", color=c, ms=4)
            if not task.sort:
                ax.plot(*ep.goal[:2], "*", color=c, ms=9, mec="k", mew=0.5)
                if headings:  # the heading matters: a tick along the object's +y axis at the goal and at the end
                    _heading_tick(ax, ep.goal[:2], ep.goal[2], c, ":", tick)
                    _heading_tick(ax, s[-1, :2], np.arctan2(s[-1, 3], s[-1, 2]), c, "-", tick)
        ax.set(xlim=lim[0], ylim=lim[1], aspect="equal", title=name, xlabel="x (m)")
        ax.tick_params(labelsize=7)
    axes[0][0].set_ylabel("y (m)")
    # the legend names only what is drawn
    legend = ["o start, * goal, square success, x failure"]
    if task.keep_out() is not None:
        legend.append("grey: obstacle, dashed: the box the planners avoid")
    if headings:
        legend.append("ticks: heading at the goal (dotted) and at the end (solid)")
    fig.suptitle(f"object paths, one colour per episode ({'; '.join(legend)})" if not task.sort else
                 "object paths (o start, square success, x failure)", fontsize=9)
    paths.append(save(fig, "trajectories.png"))

    fig, ax = plt.subplots(figsize=(6, 3.5))
    # every planner over the same steps: an episode that ended early (on success) keeps its last distance (the
    # object stays where it was left), so a planner whose episodes all ended early still spans the axis
    n = max(len(e.distances) for eps in results.values() for e in eps)
    styles = ["-", "--", ":", "-."]  # identical curves (a MILP that never changes its start) stay visible
    for i, name in enumerate(names):
        d = np.array([e.distances + [e.distances[-1]] * (n - len(e.distances)) for e in results[name]])
        stats = [mean_ci95(d[:, t]) for t in range(n)]
        mean, ci = np.array([m for m, _ in stats]), np.array([c for _, c in stats])
        line, = ax.plot(mean, styles[i % len(styles)], lw=1.6, label=name)
        # the band is clipped to the distances the episodes really had at that step: never below 0 m (the interval
        # is symmetric, the data are not) and never beyond the worst episode (few episodes make t-intervals wide)
        ax.fill_between(np.arange(n), np.maximum(mean - ci, d.min(axis=0)), np.minimum(mean + ci, d.max(axis=0)),
                        color=line.get_color(), alpha=0.1)
    ax.set(xlabel="step", ylabel="distance to goal (m)", title="distance to goal, mean and 95% CI", ylim=(0, None))
    ax.legend(fontsize=8)
    paths.append(save(fig, "distance.png"))

    fig, ax = plt.subplots(figsize=(6, 3.5))
    all_t = np.concatenate([np.concatenate([e.step_times for e in results[n]]) for n in names])
    # log bins over every planner's steps, from the fastest (greedy's ~20 us) to the slowest
    positive = all_t[all_t > 0]
    low = positive.min() if positive.size else 1e-6
    bins = np.geomspace(low * 0.9, max(all_t.max(), low) * 1.1, 40)
    for name in names:
        t = np.concatenate([e.step_times for e in results[name]])
        ax.hist(np.clip(t, bins[0], bins[-1]), bins=bins, alpha=0.5, label=name)
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


def _heading_tick(ax, xy: np.ndarray, theta: float, colour, style: str, length: float) -> None:
    """A short line from ``xy`` along the object's +y axis at heading ``theta`` (for the T: from the stem to the bar)."""
    end = np.asarray(xy) + length * np.array([-np.sin(theta), np.cos(theta)])
    ax.plot([xy[0], end[0]], [xy[1], end[1]], style, color=colour, lw=1.2)


def _rects(task: Task) -> list[tuple[np.ndarray, tuple, bool]]:
    """Rectangles to draw under the paths: ``(rect, colour, solid)`` (Sort regions, keep-out box, obstacle)."""
    from controlkit.envs.tabletop import COLOURS

    if task.sort:
        return [(r, COLOURS[i % len(COLOURS)], False) for i, r in enumerate(task.env.regions)]
    out = []
    keep_out, obstacle = getattr(task.env, "keep_out", None), getattr(task.env, "obstacle", None)
    if keep_out is not None:
        out.append((keep_out, (0.9, 0.1, 0.1), False))
    if obstacle is not None:
        out.append((obstacle, (0.35, 0.35, 0.4), True))
    return out


def _path_limits(task: Task, results: dict[str, list[EpisodeResult]]) -> tuple[tuple[float, float], ...]:
    """Axis limits zoomed to the data: every path, goal and drawn box, plus a small pad, within the table."""
    from controlkit.envs.tabletop import TABLE_HALF

    pts = [e.states[:, [4 * i, 4 * i + 1]] for eps in results.values() for e in eps
           for i in range((e.states.shape[1] - 2) // 4)]
    pts += [e.goal[None, :2] for eps in results.values() for e in eps if e.goal.size]
    pts += [np.reshape(r, (2, 2)) for r, _, _ in _rects(task)]
    box = task.keep_out()
    if box is not None:
        pts.append(np.array([box.low, box.high]))
    xy = np.concatenate(pts)
    lo, hi = xy.min(axis=0), xy.max(axis=0)
    centre, half = (lo + hi) / 2, max(float((hi - lo).max()) / 2 + 0.02, 0.05)
    return tuple((max(c - half, -TABLE_HALF - 0.02), min(c + half, TABLE_HALF + 0.02)) for c in centre)

"""Plots of episodes planned on graph models: rope shapes against their target (one panel per episode and planner),
and the task error over the steps of every episode (any graph task: the rope's shape error, the boxes' distance to
their regions)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np


def plot_rope_shapes(save: Callable[[Any, str], Path] | str | Path, episodes: Mapping[str, Sequence[Any]],
                     targets: Sequence[np.ndarray], n_particles: int, show: int = 4,
                     name: str = "rope_shapes.png") -> Path:
    """Rope shapes against the target for the first ``show`` episodes (rows) of every planner (columns).

    Args:
        save: ``save(fig, name)`` returning the written path (a run's ``savefig``), or a file path.
        episodes: Planner name -> its :class:`~controlkit.tasks.pushing.EpisodeResult` list (states in the
            env's layout ``[particle_i x, y ..., pusher x, y]``), the same seeds for every planner.
        targets: The target points ``(n, 2)`` of each episode.
        n_particles: Particles of the rope.
        show: Episodes to draw.
        name: File name when ``save`` is a callable.

    Returns:
        The PNG's path.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(episodes)
    rows = min(show, min(len(v) for v in episodes.values()))
    fig, axes = plt.subplots(rows, len(names), figsize=(3.0 * len(names), 3.0 * rows), squeeze=False)
    n = n_particles
    for r in range(rows):
        target = np.asarray(targets[r])
        for c, planner in enumerate(names):
            ep = episodes[planner][r]
            ax = axes[r, c]
            start = ep.states[0][: 2 * n].reshape(n, 2)
            end = ep.states[-1][: 2 * n].reshape(n, 2)
            pusher = ep.states[:, 2 * n: 2 * n + 2]
            ax.plot(*target.T, "o-", color="tab:blue", alpha=0.5, lw=3, ms=5, label="target")
            ax.plot(*start.T, ".-", color="0.6", lw=1, label="start")
            ax.plot(*end.T, "o-", color="tab:orange", lw=2, ms=4, label="end")
            ax.plot(*pusher.T, "-", color="tab:green", lw=0.8, alpha=0.7, label="pusher path")
            pts = np.vstack([target, start, end, pusher])
            lo, hi = pts.min(0) - 0.02, pts.max(0) + 0.02
            half = (hi - lo).max() / 2
            mid = (hi + lo) / 2
            ax.set_xlim(mid[0] - half, mid[0] + half)
            ax.set_ylim(mid[1] - half, mid[1] + half)
            ax.set_aspect("equal")
            ax.set_title(f"{planner} (seed {ep.seed})\nshape error {100 * ep.final_distance:.1f} cm", fontsize=9)
            ax.tick_params(labelsize=7)
            if r == rows - 1:
                ax.set_xlabel("x (m)", fontsize=8)
            if c == 0:
                ax.set_ylabel("y (m)", fontsize=8)
    axes[0, 0].legend(fontsize=7, loc="best")
    fig.tight_layout()
    if callable(save):
        path = save(fig, name)
    else:
        from controlkit.core.io import save_figure

        path = save_figure(fig, save)
    plt.close(fig)
    return Path(path)


def plot_errors(save: Callable[[Any, str], Path], episodes: Mapping[str, Sequence[Any]], ylabel: str,
                name: str = "errors.png") -> Path:
    """The task error (``EpisodeResult.distances``) over the steps of every episode, one panel per planner, on a
    shared y axis; the thick line is the mean over the episodes still running."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(episodes)
    fig, axes = plt.subplots(1, len(names), figsize=(3.6 * len(names), 3.0), sharey=True, squeeze=False)
    for ax, planner in zip(axes[0], names):
        curves = [np.asarray(ep.distances) for ep in episodes[planner]]
        for c in curves:
            ax.plot(100 * c, color="tab:blue", alpha=0.3, lw=0.8)
        longest = max(len(c) for c in curves)
        mean = [np.mean([c[t] for c in curves if len(c) > t]) for t in range(longest)]
        ax.plot(100 * np.array(mean), color="tab:red", lw=2, label="mean")
        ax.set_title(planner, fontsize=10)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel(ylabel)
    axes[0, 0].legend(fontsize=8)
    fig.tight_layout()
    return Path(save(fig, name))


__all__ = ["plot_errors", "plot_rope_shapes"]

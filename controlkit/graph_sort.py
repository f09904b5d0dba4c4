"""Sorting on the graph model: data for it, and the cost over all boxes that replaces the task layer's box choice.

- :class:`SortExplorer`: the data behaviour on Sort-v0 -- the greedy pusher on a random box towards its region or a
  random nearby point, with AR(1) noise, switching box and target at random; boxes collide with each other.
- :func:`collect_sort_data`: 2-4 boxes, padded into one :class:`~controlkit.data.TransitionData` for
  :class:`~controlkit.graph.GraphDynamics`.
- :func:`sort_goal`: the planners' goal and weights on Sort-v0: every box towards the centre of its region (boxes
  already sorted are held there), and the pusher towards the pre-push point of the unsorted box that is cheapest
  to reach and sort (its only task knowledge; no legs, no staging waypoints, no transit routing: the graph model
  predicts what the pusher does to the other boxes, and the cost over all boxes prices it).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from controlkit._push_oracle import GreedyPusher, pre_push_point
from controlkit.controller import Controller, StepInfo
from controlkit.data import TransitionData, collect
from controlkit.envs._tabletop import TABLE_HALF, get_shape
from controlkit.errors import ControlkitError
from controlkit.graph import check_objects, objects_in, pad_dataset


class SortExplorer(Controller):
    """Data behaviour on Sort-v0 (world-frame state observation, ``goal_in_obs=False``).

    Args:
        regions: ``(n, 4)`` target rectangles of the env.
        shape: Object shape name.
        step_size: The env's ``step_size``.
        noise: Std of the noise innovation in units of ``step_size``.
        redraw: Probability per step of a new box and target.
        to_region: Probability that a new target is the box's region centre (else a random point 5-25 cm away).
        seed: Seeds choices and noise.
    """

    def __init__(self, regions: np.ndarray, shape: str = "box", step_size: float = 0.03, noise: float = 0.4,
                 redraw: float = 0.04, to_region: float = 0.5, seed: int | None = None) -> None:
        self.regions = np.asarray(regions, dtype=np.float64)
        self._greedy = GreedyPusher(get_shape(shape), step_size)
        self.step, self.noise, self.redraw, self.to_region = float(step_size), float(noise), float(redraw), \
            float(to_region)
        self._rng = np.random.default_rng(seed)
        self._box, self._target, self._eps, self._new = 0, np.zeros(2), np.zeros(2), True

    def reset(self, seed: int | None = None) -> None:
        super().reset(seed)
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        self._eps, self._new = np.zeros(2), True

    def _act(self, obs: Any) -> tuple[np.ndarray, StepInfo]:
        x = np.asarray(obs, dtype=np.float64)
        n = objects_in(x, "observation")
        rng = self._rng
        if self._new or rng.random() < self.redraw:
            self._box = int(rng.integers(n))
            box = x[4 * self._box: 4 * self._box + 2]
            if rng.random() < self.to_region:
                self._target = (self.regions[self._box, :2] + self.regions[self._box, 2:]) / 2
            else:
                phi, d = rng.uniform(-np.pi, np.pi), rng.uniform(0.05, 0.25)
                lim = TABLE_HALF - self._greedy.shape.radius
                self._target = np.clip(box + d * np.array([np.cos(phi), np.sin(phi)]), -lim, lim)
            self._new = False
        one = np.concatenate([x[4 * self._box: 4 * self._box + 4], x[-2:]])
        self._eps = 0.7 * self._eps + self.noise * self.step * rng.normal(size=2)
        a = self._greedy.action(one, self._target) + self._eps
        return np.clip(a, -self.step, self.step).astype(np.float32), StepInfo()


def collect_sort_data(counts: tuple[int, ...] = (2, 3, 4), trajectories: int = 60, steps: int = 100,
                      seed: int = 0, env_kwargs: dict[str, Any] | None = None) -> TransitionData:
    """Sort-v0 transitions with each box count in ``counts`` (``trajectories`` each), padded to 4 boxes.

    Seeds: count ``n`` uses ``seed + 100_000 n`` as its root (trajectory ``i`` resets with that plus ``i``).
    """
    from controlkit.envs.sort import regions

    parts = []
    for n in counts:
        check_objects(n, "counts")
        if n < 2:
            raise ControlkitError(f"counts: Sort-v0 has 2-4 boxes, got {n}.")
        kw = {"goal_in_obs": False, "terminate_on_success": False, **(env_kwargs or {}), "n_objects": n}
        step = float(kw.get("step_size", 0.03))
        behaviour = SortExplorer(regions(n, float(kw.get("region_size", 0.12))), kw.get("shape", "box"), step)
        parts.append((n, collect("controlkit/Sort-v0", trajectories, steps, seed + 100_000 * n, behaviour,
                                 env_kwargs=kw)))
    return pad_dataset(parts)


def sort_goal(x: np.ndarray, regions: np.ndarray, shape: str = "box", pusher_weight: float = 0.3,
              sorted_margin: float = 0.025) -> tuple[np.ndarray, np.ndarray]:
    """Goal and state weights for planning Sort-v0 on the graph model, from the state ``x``.

    Every box's position is pulled to its region centre (weight 1; angles free). The pusher is pulled (weight
    ``pusher_weight``) to the pre-push point of the unsorted box that minimises pusher travel plus the box's
    distance to its region; a box counts as sorted once ``sorted_margin`` inside its region. With every box
    sorted the pusher term is off.

    Returns:
        ``goal`` ``(4 n + 2,)`` and ``weights`` ``(4 n + 2,)``.
    """
    x = np.asarray(x, dtype=np.float64)
    n = objects_in(x, "x")
    regions = np.asarray(regions, dtype=np.float64)
    if regions.shape != (n, 4):
        raise ControlkitError(f"regions: need shape ({n}, 4) for a state with {n} boxes, got {regions.shape}.")
    obj = get_shape(shape)
    centres = (regions[:, :2] + regions[:, 2:]) / 2
    goal, weights = np.zeros_like(x), np.zeros_like(x)
    pusher = x[-2:]
    best, best_cost = None, np.inf
    for i in range(n):
        goal[4 * i: 4 * i + 2] = centres[i]
        weights[4 * i: 4 * i + 2] = 1.0
        xy = x[4 * i: 4 * i + 2]
        inside = np.all((xy >= regions[i, :2] + sorted_margin) & (xy <= regions[i, 2:] - sorted_margin))
        if inside:
            continue
        pre = pre_push_point(x[4 * i: 4 * i + 4], centres[i], obj)
        cost = np.linalg.norm(pre - pusher) + np.linalg.norm(centres[i] - xy)
        if cost < best_cost:
            best, best_cost = pre, cost
    if best is not None:
        goal[-2:], weights[-2:] = best, pusher_weight
    return goal, weights


__all__ = ["SortExplorer", "collect_sort_data", "sort_goal"]

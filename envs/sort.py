"""Compositional object sorting (``controlkit/Sort-v0``): push 2-4 objects, each into its own target region.

Same table, pusher, physics and action as :mod:`controlkit.envs.push`. Object ``i`` belongs in region ``i``, a
square at one corner of the table (drawn in the object's colour). The task is long-horizon and compositional: a
controller sorts the objects one after another, and pushing one may disturb another.

Observation (flat ``float64``)::

    [object_i x, y, cos θ, sin θ for each i | pusher x, y | region_i centre x, y for each i (goal_in_obs=True)]

With ``frame="pusher"`` object and region positions are relative to the pusher. Reward: minus the sum over objects
of the distance (m) from the object's centre to its region (0 inside). ``info`` has ``sorted`` (per object),
``n_sorted``, ``distances`` and ``success`` (every object centre inside its region). Episodes terminate on
success (``terminate_on_success``) or when an object leaves the table.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from controlkit.envs.tabletop import (
    CONTROL_DT,
    PUSHER_RADIUS,
    TABLE_HALF,
    Tabletop,
    TabletopEnv,
    check_frame,
    check_point,
    check_positive,
    check_render,
    get_shape,
    in_rect,
    observation_box,
    pose_features,
    rect_distance,
)

from controlkit.core.errors import ControlkitError

MAX_OBJECTS = 4
REGION_CENTRE = 0.19  # region i is centred at (±0.19, ±0.19), counter-clockwise from the (+, +) corner
START_HALF = 0.12
MAX_TRIES = 1000


def regions(n_objects: int, region_size: float) -> np.ndarray:
    """``(n, 4)`` target rectangles ``[x_low, y_low, x_high, y_high]``, one per object."""
    corners = np.array([[1, 1], [-1, 1], [-1, -1], [1, -1]], dtype=float)[:n_objects] * REGION_CENTRE
    h = region_size / 2
    return np.hstack([corners - h, corners + h])


class SortEnv(TabletopEnv):
    """Push each of ``n_objects`` objects into its own corner region (``controlkit/Sort-v0``).

    Args:
        n_objects: Number of objects, 2 to 4.
        shape: Object shape, ``"box"`` or ``"t"``.
        step_size: Largest pusher displacement per step and axis, metres (> 0).
        friction: Sliding friction coefficient of objects and table (> 0).
        frame: ``"world"`` or ``"pusher"`` (object and region positions relative to the pusher).
        goal_in_obs: Append the region centres to the observation.
        region_size: Side of each square target region, metres (> 0, at most 0.2).
        terminate_on_success: End the episode once every object is sorted.
        render_mode: ``None`` or ``"rgb_array"``.
        width, height: Rendered frame size in pixels (at most 640).

    ``reset(options=...)`` accepts ``objects`` ``(n, 3)`` poses and ``pusher`` ``(x, y)``.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": round(1.0 / CONTROL_DT)}

    def __init__(
        self,
        n_objects: int = 3,
        shape: str = "box",
        step_size: float = 0.03,
        friction: float = 0.4,
        frame: str = "world",
        goal_in_obs: bool = True,
        region_size: float = 0.12,
        terminate_on_success: bool = True,
        render_mode: str | None = None,
        width: int = 320,
        height: int = 320,
    ) -> None:
        if isinstance(n_objects, bool) or not isinstance(n_objects, (int, np.integer)) or not 2 <= n_objects <= 4:
            raise ControlkitError(f"n_objects: must be an integer from 2 to {MAX_OBJECTS}, got {n_objects!r}.")
        self.n_objects = int(n_objects)
        self.shape = get_shape(shape)
        self.step_size = check_positive("step_size", step_size)
        self.friction = check_positive("friction", friction)
        self.frame = check_frame(frame)
        self.goal_in_obs = bool(goal_in_obs)
        if check_positive("region_size", region_size) > 0.2:
            raise ControlkitError(f"region_size: must be at most 0.2 m (regions would overlap), got {region_size!r}.")
        self.regions = regions(self.n_objects, float(region_size))
        self.terminate_on_success = bool(terminate_on_success)
        check_render(render_mode, width, height)
        self.render_mode, self._width, self._height = render_mode, width, height
        self.table = Tabletop([self.shape] * self.n_objects, self.friction, regions=self.regions)
        self.action_space = gym.spaces.Box(-self.step_size, self.step_size, shape=(2,), dtype=np.float32)
        n_obs = 4 * self.n_objects + 2 + (2 * self.n_objects if self.goal_in_obs else 0)
        self.observation_space = observation_box(self.frame, n_obs)

    @property
    def region_centres(self) -> np.ndarray:
        return (self.regions[:, :2] + self.regions[:, 2:]) / 2

    def state(self) -> np.ndarray:
        """World-frame ``[object_i x, y, cos θ, sin θ ..., pusher x, y]``."""
        poses = self.table.object_poses()
        return np.concatenate([*(pose_features(p, np.zeros(2)) for p in poses), self.table.pusher()])

    def _observe(self) -> np.ndarray:
        pusher = self.table.pusher()
        origin = pusher if self.frame == "pusher" else np.zeros(2)
        parts = [pose_features(p, origin) for p in self.table.object_poses()] + [pusher]
        if self.goal_in_obs:
            parts.append((self.region_centres - origin).ravel())
        return np.concatenate(parts)

    def _info(self) -> dict[str, Any]:
        xy = self.table.object_poses()[:, :2]
        inside = [bool(v) for v in in_rect(xy, self.regions)]
        dist = [rect_distance(p, r) for p, r in zip(xy, self.regions)]
        return {"sorted": inside, "n_sorted": sum(inside), "distances": dist, "distance": float(sum(dist)),
                "success": all(inside), "off_table": bool(np.abs(xy).max() > TABLE_HALF)}

    def _sample(self, rng: np.random.Generator, options: dict) -> tuple[np.ndarray, np.ndarray]:
        r = self.shape.radius
        objects = None
        if "objects" in options:
            arr = np.asarray(options["objects"], dtype=np.float64)
            if arr.shape != (self.n_objects, 3):
                raise ControlkitError(f"options.objects: need shape ({self.n_objects}, 3), got {arr.shape}.")
            objects = np.stack([check_point(f"options.objects[{i}]", p, 3, r) for i, p in enumerate(arr)])
        pusher = None if "pusher" not in options else check_point("options.pusher", options["pusher"], 2,
                                                                  PUSHER_RADIUS)
        for _ in range(MAX_TRIES):
            o = objects if objects is not None else np.column_stack(
                [rng.uniform(-START_HALF, START_HALF, (self.n_objects, 2)),
                 rng.uniform(-np.pi, np.pi, self.n_objects)])
            p = pusher if pusher is not None else rng.uniform(-0.2, 0.2, 2)
            gaps = np.linalg.norm(o[:, None, :2] - o[None, :, :2], axis=-1) + np.eye(self.n_objects)
            clear = np.linalg.norm(o[:, :2] - p, axis=1) > r + PUSHER_RADIUS + 0.005
            if objects is None and gaps.min() < 2 * r:
                continue
            if pusher is None and not clear.all():
                continue
            return o, p
        raise ControlkitError("options: no collision-free start found; give objects and pusher apart.")

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """New episode: object poses and pusher position from the seed unless given in ``options``."""
        super().reset(seed=seed)
        objects, pusher = self._sample(self.np_random, dict(options or {}))
        self.table.place(objects, pusher)
        return self._observe(), self._info()


__all__ = ["SortEnv", "regions"]

"""Planar object pushing (``controlkit/Push-v0``): push a box or a T to a goal pose with a cylindrical pusher.

The object slides on the table with Coulomb friction; the pusher is position-driven (see :mod:`.tabletop`).
One step moves the pusher's set-point by the action ``(dx, dy)`` (metres, each within ``±step_size``) and runs
0.3 s of physics (the set-point moves for 0.2 s, then holds), so that the object has stopped when the step
ends (quasi-static pushing; residual speeds stay below 1 mm/s) and the
object pose and the pusher position are the whole state.

Observation (flat ``float64``, see :data:`OBS_OBJECT`, :data:`OBS_PUSHER`, :data:`OBS_GOAL`)::

    [object x, y, cos θ, sin θ | pusher x, y | goal x, y, cos θ, sin θ (goal_in_obs=True)]

With ``frame="pusher"`` the object and goal positions are relative to the pusher (what learned pushing models
use); the pusher's own position stays absolute so the observation is still the whole state.

Reward: minus the mean distance (m) between the object's keypoints and the same keypoints at the goal pose.
``info`` has ``position_error`` (m), ``orientation_error`` (rad, in [0, π]), ``distance`` (the keypoint
distance), ``success`` (position and orientation errors within tolerance), ``keep_out_violation`` (the object's
centre is inside the keep-out rectangle this step), ``keep_out_violations`` (steps in violation so far),
``obstacle_contact`` (the object touches the obstacle at the end of this step) and ``obstacle_contacts`` (such
steps so far).
Episodes terminate on success (``terminate_on_success``) or when the object's centre leaves the table.
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
    check_rect,
    check_render,
    get_shape,
    in_rect,
    keypoints,
    observation_box,
    pose_features,
    wrap_angle,
)

from controlkit.core.errors import ControlkitError

OBS_OBJECT = slice(0, 4)
OBS_PUSHER = slice(4, 6)
OBS_GOAL = slice(6, 10)
MAX_TRIES = 1000


class PushEnv(TabletopEnv):
    """Push one object to a goal pose (``controlkit/Push-v0``).

    Args:
        shape: ``"box"`` (10 x 6 cm) or ``"t"`` (a T, 12 x 9 cm).
        step_size: Largest pusher displacement per step and axis, metres (> 0).
        friction: Sliding friction coefficient of object and table (> 0).
        frame: ``"world"`` or ``"pusher"`` (object and goal positions relative to the pusher).
        goal_in_obs: Append the goal pose to the observation.
        keep_out: ``[x_low, y_low, x_high, y_high]`` the object's centre must not enter, or ``None``.
        keep_out_crossing: Sample start and goal on opposite sides of ``keep_out`` so that the straight line
            between them crosses it (the distance between them still drawn from ``goal_distance``;
            ``start_region`` is then unused). Needs ``keep_out``.
        obstacle: ``[x_low, y_low, x_high, y_high]`` of a fixed box standing on the table (5 cm tall), or
            ``None``. Unlike ``keep_out`` it is physical: the object and the pusher collide with it.
        obstacle_crossing: Sample start and goal on opposite sides of ``obstacle`` (as ``keep_out_crossing``
            does for ``keep_out``), so that a straight push drives the object into it. Needs ``obstacle``.
        start_region: Half-side (m) of the centred square initial object positions are drawn from.
        goal_distance: Range (m) of the distance from the start to the sampled goal position.
        goal_rotation: Largest |rotation| (rad) from the start to the sampled goal orientation.
        position_tolerance: Success radius on the object's position, metres.
        orientation_tolerance: Success bound on the orientation error, radians.
        terminate_on_success: End the episode as soon as the goal is reached.
        render_mode: ``None`` or ``"rgb_array"`` (top-down camera).
        width, height: Rendered frame size in pixels (at most 640).

    ``reset(options=...)`` accepts ``goal`` ``(x, y, θ)``, ``object`` ``(x, y, θ)`` and ``pusher`` ``(x, y)``;
    whatever is not given is sampled from the seed.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": round(1.0 / CONTROL_DT)}

    def __init__(
        self,
        shape: str = "box",
        step_size: float = 0.03,
        friction: float = 0.4,
        frame: str = "world",
        goal_in_obs: bool = True,
        keep_out: list[float] | None = None,
        keep_out_crossing: bool = False,
        obstacle: list[float] | None = None,
        obstacle_crossing: bool = False,
        start_region: float = 0.1,
        goal_distance: tuple[float, float] = (0.05, 0.15),
        goal_rotation: float = np.pi / 4,
        position_tolerance: float = 0.02,
        orientation_tolerance: float = 0.3,
        terminate_on_success: bool = True,
        render_mode: str | None = None,
        width: int = 320,
        height: int = 320,
    ) -> None:
        self.shape = get_shape(shape)
        self.step_size = check_positive("step_size", step_size)
        self.friction = check_positive("friction", friction)
        self.frame = check_frame(frame)
        self.goal_in_obs = bool(goal_in_obs)
        self.keep_out = check_rect("keep_out", keep_out)
        self.keep_out_crossing = bool(keep_out_crossing)
        if self.keep_out_crossing and self.keep_out is None:
            raise ControlkitError("keep_out_crossing: needs a keep_out rectangle to cross, got keep_out=None.")
        self.obstacle = check_rect("obstacle", obstacle)
        self.obstacle_crossing = bool(obstacle_crossing)
        if self.obstacle_crossing and self.obstacle is None:
            raise ControlkitError("obstacle_crossing: needs an obstacle to cross, got obstacle=None.")
        if self.obstacle_crossing and self.keep_out_crossing:
            raise ControlkitError("obstacle_crossing: cannot be combined with keep_out_crossing; choose one box "
                                  "to sample the start and goal across.")
        self.start_region = check_positive("start_region", start_region)
        if self.start_region > TABLE_HALF - self.shape.radius:
            raise ControlkitError(f"start_region: must be at most {TABLE_HALF - self.shape.radius:.3f} m so the "
                                  f"object starts on the table, got {start_region!r}.")
        lo, hi = (float(v) for v in goal_distance)
        if not 0 <= lo <= hi or hi > TABLE_HALF:
            raise ControlkitError(f"goal_distance: need 0 <= low <= high <= {TABLE_HALF}, got {goal_distance!r}.")
        self.goal_distance = (lo, hi)
        if not 0 <= goal_rotation <= np.pi:
            raise ControlkitError(f"goal_rotation: must be in [0, pi], got {goal_rotation!r}.")
        self.goal_rotation = float(goal_rotation)
        self.position_tolerance = check_positive("position_tolerance", position_tolerance)
        self.orientation_tolerance = check_positive("orientation_tolerance", orientation_tolerance)
        self.terminate_on_success = bool(terminate_on_success)
        check_render(render_mode, width, height)
        self.render_mode, self._width, self._height = render_mode, width, height
        self.table = Tabletop([self.shape], self.friction, goal_shapes=[self.shape], keep_out=self.keep_out,
                              obstacle=self.obstacle)
        self.action_space = gym.spaces.Box(-self.step_size, self.step_size, shape=(2,), dtype=np.float32)
        n_obs = OBS_GOAL.stop if self.goal_in_obs else OBS_PUSHER.stop
        self.observation_space = observation_box(self.frame, n_obs)
        self.goal = np.zeros(3)
        self._violations = 0
        self._contacts = 0

    # ---- state -------------------------------------------------------------------------------------------
    def object_pose(self) -> np.ndarray:
        """``(x, y, θ)`` of the object in the world frame."""
        return self.table.object_pose(0)

    def state(self) -> np.ndarray:
        """World-frame state ``[x, y, cos θ, sin θ, pusher x, pusher y]`` (the observation without goal, frame)."""
        return np.concatenate([pose_features(self.object_pose(), np.zeros(2)), self.table.pusher()])

    def goal_state(self) -> np.ndarray:
        """The goal as a state vector ``[x, y, cos θ, sin θ, nan, nan]`` (the pusher has no goal)."""
        return np.concatenate([pose_features(self.goal, np.zeros(2)), [np.nan, np.nan]])

    def _observe(self) -> np.ndarray:
        pusher = self.table.pusher()
        origin = pusher if self.frame == "pusher" else np.zeros(2)
        parts = [pose_features(self.object_pose(), origin), pusher]
        if self.goal_in_obs:
            parts.append(pose_features(self.goal, origin))
        return np.concatenate(parts)

    def errors(self) -> dict[str, float]:
        """Position error (m), orientation error (rad) and keypoint distance (m) to the goal."""
        pose = self.object_pose()
        kp = np.linalg.norm(keypoints(self.shape, pose) - keypoints(self.shape, self.goal), axis=1).mean()
        return {"position_error": float(np.hypot(*(pose[:2] - self.goal[:2]))),
                "orientation_error": float(abs(wrap_angle(pose[2] - self.goal[2]))),
                "distance": float(kp)}

    def _info(self) -> dict[str, Any]:
        info: dict[str, Any] = self.errors()
        info["success"] = bool(info["position_error"] <= self.position_tolerance
                               and info["orientation_error"] <= self.orientation_tolerance)
        pose = self.object_pose()
        violation = bool(self.keep_out is not None and in_rect(pose[:2], self.keep_out))
        self._violations += violation
        contact = self.table.touches_obstacle()
        self._contacts += contact
        info.update(keep_out_violation=violation, keep_out_violations=self._violations,
                    obstacle_contact=contact, obstacle_contacts=self._contacts,
                    off_table=bool(np.abs(pose[:2]).max() > TABLE_HALF), goal=self.goal.copy())
        return info

    # ---- sampling ----------------------------------------------------------------------------------------
    def _clear_of_keep_out(self, xy: np.ndarray, radius: float | None = None) -> bool:
        """Whether a disc of ``radius`` (default: the object's) at ``xy`` stays off the keep-out box and the
        obstacle (a bounding-box test: conservative near their corners)."""
        r = self.shape.radius if radius is None else radius
        return all(not in_rect(xy, rect + np.array([-r, -r, r, r]))
                   for rect in (self.keep_out, self.obstacle) if rect is not None)

    def _pusher_clear(self, xy: np.ndarray) -> bool:
        """Whether the pusher at ``xy`` stays off the obstacle."""
        return self.obstacle is None or not in_rect(xy, self.obstacle + PUSHER_RADIUS * np.array([-1, -1, 1, 1]))

    def _sample(self, rng: np.random.Generator, options: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        margin = self.shape.radius
        obj = None if "object" not in options else check_point("options.object", options["object"], 3, margin)
        goal = None if "goal" not in options else check_point("options.goal", options["goal"], 3, margin)
        pusher = None if "pusher" not in options else check_point("options.pusher", options["pusher"], 2,
                                                                  PUSHER_RADIUS)
        for name, pose in (("options.object", obj), ("options.goal", goal)):
            if pose is not None and not self._clear_of_keep_out(pose[:2]):
                raise ControlkitError(f"{name}: {pose[:2].tolist()} is inside keep_out or obstacle (widened by "
                                      f"the object radius {margin:.3f} m).")
        if pusher is not None and not self._pusher_clear(pusher):
            raise ControlkitError(f"options.pusher: {pusher.tolist()} overlaps the obstacle {self.obstacle.tolist()}.")
        crossing = self.keep_out if self.keep_out_crossing else self.obstacle if self.obstacle_crossing else None
        for _ in range(MAX_TRIES):
            if crossing is not None and obj is None and goal is None:
                o, g = self._crossing_pair(rng, crossing)
            else:
                o = obj if obj is not None else np.array([*rng.uniform(-self.start_region, self.start_region, 2),
                                                          rng.uniform(-np.pi, np.pi)])
                if goal is not None:
                    g = goal
                else:
                    phi, d = rng.uniform(-np.pi, np.pi), rng.uniform(*self.goal_distance)
                    g = np.array([o[0] + d * np.cos(phi), o[1] + d * np.sin(phi),
                                  wrap_angle(o[2] + rng.uniform(-self.goal_rotation, self.goal_rotation))])
            if pusher is not None:
                p = pusher
            else:
                psi, gap = rng.uniform(-np.pi, np.pi), rng.uniform(0.005, 0.03)
                p = o[:2] + (margin + PUSHER_RADIUS + gap) * np.array([np.cos(psi), np.sin(psi)])
            on_table = max(np.abs(o[:2]).max(), np.abs(g[:2]).max()) <= TABLE_HALF - margin
            if (on_table and np.abs(p).max() <= TABLE_HALF - PUSHER_RADIUS and self._pusher_clear(p)
                    and self._clear_of_keep_out(o[:2]) and self._clear_of_keep_out(g[:2])):
                return o, g, p
        raise ControlkitError("keep_out/obstacle/start_region/goal_distance: no start and goal fit on the table "
                              f"outside keep_out and obstacle after {MAX_TRIES} draws; use a smaller box or a larger "
                              "start_region.")

    def _crossing_pair(self, rng: np.random.Generator, r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """A start and a goal pose on opposite sides of the box ``r``, their segment through its middle half."""
        centre, half = (r[:2] + r[2:]) / 2, (r[2:] - r[:2]) / 2
        phi, d, split = rng.uniform(-np.pi, np.pi), rng.uniform(*self.goal_distance), rng.uniform(0.35, 0.65)
        direction = np.array([np.cos(phi), np.sin(phi)])
        through = centre + rng.uniform(-0.5, 0.5, 2) * half  # a point of the box the straight push passes
        theta = rng.uniform(-np.pi, np.pi)
        o = np.array([*(through - split * d * direction), theta])
        g = np.array([*(through + (1 - split) * d * direction),
                      wrap_angle(theta + rng.uniform(-self.goal_rotation, self.goal_rotation))])
        return o, g

    # ---- gymnasium API -----------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """New episode: object, goal and pusher from the seed unless given in ``options``."""
        super().reset(seed=seed)
        obj, self.goal, pusher = self._sample(self.np_random, dict(options or {}))
        self.table.place(obj[None], pusher)
        self.table.show_goal(0, self.goal)
        self._violations = self._contacts = 0
        return self._observe(), self._info()


__all__ = ["OBS_GOAL", "OBS_OBJECT", "OBS_PUSHER", "PushEnv"]

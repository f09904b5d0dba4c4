"""Model-free references for the pushing pipeline: greedy pushing, MPPI over the true simulator, push-through data.

They answer "how good can a planner be with this cost and horizon if the model were perfect?" and give the data
collection a behaviour that pushes the object through the states the planners visit:

- :func:`pre_push_point`: where the pusher touches the object on the side away from a target (the cost's
  pusher term pulls towards it; the greedy pusher goes there and then pushes).
- :class:`GreedyPusher`: go round the object to the pre-push point, then push straight at the target.
- :class:`SimDynamics`: the true step on a private copy of the MuJoCo scene (the world-frame state
  ``[x, y, cos θ, sin θ, pusher x, pusher y]`` is the whole quasi-static state, so placing it reproduces the
  env); :mod:`controlkit.tasks.pushing.sim_mppi` runs MPPI over it.
- :class:`PushThroughExplorer`: the greedy pusher towards random targets plus correlated noise, for data.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from controlkit.core.controller import Controller, StepInfo
from controlkit.envs.tabletop import PUSHER_RADIUS, TABLE_HALF, Shape, Tabletop, get_shape

PRE_PUSH_GAP = 0.002  # m between the pusher and the object's surface at the pre-push point


def surface_reach(shape: Shape, direction: np.ndarray) -> float:
    """Distance from the object's origin to where the ray along ``direction`` (object frame) leaves the shape.

    The farthest exit of the ray from the shape's boxes it crosses. For a single centred box this is
    :meth:`~controlkit.envs.tabletop.Shape.extent`; for a T it is not: the T's symmetric bounding box reaches 3 cm
    past the top of its bar and up to 5 cm past the surface in the notches beside its stem, where a pusher
    placed at the bounding box never touches the T.
    """
    n = np.asarray(direction, dtype=np.float64)
    length = float(np.linalg.norm(n))
    if length < 1e-12:  # no direction (the target on the object's origin): the origin itself
        return 0.0
    n, reach = n / length, 0.0
    for centre, half in shape.boxes:
        enter, leave = -np.inf, np.inf  # the ray t * n (t >= 0) is inside the box for enter <= t <= leave
        for k in range(2):
            lo, hi = centre[k] - half[k], centre[k] + half[k]
            if abs(n[k]) < 1e-12:  # parallel to this slab: inside it everywhere or nowhere
                if not lo <= 0.0 <= hi:
                    enter, leave = np.inf, -np.inf
                continue
            t1, t2 = sorted((lo / n[k], hi / n[k]))
            enter, leave = max(enter, t1), min(leave, t2)
        if leave >= max(enter, 0.0):
            reach = max(reach, leave)
    return reach


def pre_push_point(x: np.ndarray, target: np.ndarray, shape: Shape, gap: float = PRE_PUSH_GAP) -> np.ndarray:
    """The pusher position touching the object (state ``x``) on the side away from ``target`` ``(x, y)``:
    on the line from the target through the object's origin, just outside the object's surface."""
    d = np.asarray(target[:2], dtype=np.float64) - x[:2]
    back = -d / max(float(np.linalg.norm(d)), 1e-9)
    c, s = x[2], x[3]
    reach = surface_reach(shape, np.array([c * back[0] + s * back[1], -s * back[0] + c * back[1]]))
    return x[:2] + (reach + PUSHER_RADIUS + gap) * back


class GreedyPusher(Controller):
    """Go round the object to the pre-push point, then push the object's centre straight at the target.

    No model and no search: a reference for what plain pushing reaches. The goal is the pipeline's
    ``[target x, y, cos, sin, pre-push x, y]`` (:meth:`set_goal`); the state the world-frame 6-vector.

    Args:
        shape: The pushed object's shape (its extent sets the pre-push point and the detour radius).
        step_size: Largest displacement per step and axis (the env's ``step_size``).
        tolerance: The pusher counts as at the pre-push point within this distance (m).
    """

    def __init__(self, shape: Shape, step_size: float, tolerance: float = 0.012) -> None:
        self.shape, self.step, self.tolerance = shape, float(step_size), float(tolerance)
        self.goal: np.ndarray | None = None

    def set_goal(self, goal: Any) -> None:
        self.goal = np.asarray(goal, dtype=np.float64)

    def action(self, x: np.ndarray, target: np.ndarray) -> np.ndarray:
        """The greedy displacement from state ``x`` towards ``target`` ``(x, y)``."""
        obj, pusher = x[:2], x[4:6]
        d = target[:2] - obj
        dist = float(np.linalg.norm(d))
        if dist < 1e-3:
            return np.zeros(2)
        pre = pre_push_point(x, target, self.shape)
        if np.linalg.norm(pre - pusher) <= self.tolerance:
            # Push through the centre; the pull to the pre-push point keeps the contact centred as the object turns.
            a = min(self.step, dist) * d / dist + 0.5 * (pre - pusher)
            return np.clip(a, -self.step, self.step)
        # Approach: circle round the object (clear of it) until the pre-push point is in straight sight.
        clear = self.shape.radius + PUSHER_RADIUS + 0.01
        v, w = pusher - obj, pre - obj
        angle = float(np.arctan2(v[0] * w[1] - v[1] * w[0], v @ w))  # signed angle from pusher to pre-push point
        if abs(angle) > 0.6:
            r = max(float(np.linalg.norm(v)), clear)
            a0 = np.arctan2(v[1], v[0]) + np.sign(angle) * min(abs(angle), 1.5 * self.step / r)
            way = obj + r * np.array([np.cos(a0), np.sin(a0)])
        else:
            way = pre
        return np.clip(way - pusher, -self.step, self.step)

    def _act(self, obs: Any) -> tuple[np.ndarray, StepInfo]:
        x = np.asarray(obs, dtype=np.float64)
        return self.action(x, self.goal[:2]), StepInfo()


class PushThroughExplorer(Controller):
    """Data behaviour: :class:`GreedyPusher` towards a random target near the object, plus AR(1) noise.

    A new target is drawn at each reset and with probability ``redraw`` per step, so the data holds approaches,
    straight pushes, turning pushes and slips. Reads the world-frame Push-v0 observation without goal.

    Args:
        shape: Object shape name (``box`` or ``t``).
        step_size: The env's ``step_size``.
        noise: Std of the noise innovation in units of ``step_size``.
        redraw: Probability per step of a new target.
        seed: Seeds targets and noise.
    """

    def __init__(self, shape: str, step_size: float, noise: float = 0.4, redraw: float = 0.05,
                 seed: int | None = None) -> None:
        self._greedy = GreedyPusher(get_shape(shape), step_size)
        self.step, self.noise, self.redraw = float(step_size), float(noise), float(redraw)
        self._rng = np.random.default_rng(seed)
        self._target = np.zeros(2)
        self._eps = np.zeros(2)
        self._new = True

    def reset(self, seed: int | None = None) -> None:
        super().reset(seed)
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        self._eps = np.zeros(2)
        self._new = True

    def _act(self, obs: Any) -> tuple[np.ndarray, StepInfo]:
        x = np.asarray(obs, dtype=np.float64)
        rng = self._rng
        if self._new or rng.random() < self.redraw:
            phi, d = rng.uniform(-np.pi, np.pi), rng.uniform(0.05, 0.25)
            lim = TABLE_HALF - self._greedy.shape.radius
            self._target = np.clip(x[:2] + d * np.array([np.cos(phi), np.sin(phi)]), -lim, lim)
            self._new = False
        self._eps = 0.7 * self._eps + self.noise * self.step * rng.normal(size=2)
        a = self._greedy.action(x, self._target) + self._eps
        return np.clip(a, -self.step, self.step).astype(np.float32), StepInfo()


class SimDynamics:
    """The true quasi-static pushing step ``x' = sim(x, u)`` on a private copy of the Push-v0 scene.

    Args:
        shape: The object's :class:`Shape`.
        friction: The env's friction coefficient.
        obstacle: The env's fixed obstacle ``[x_low, y_low, x_high, y_high]`` (``None``: a free table), so that
            rollouts meet it as the real object and pusher do.
    """

    def __init__(self, shape: Shape, friction: float, obstacle: np.ndarray | None = None) -> None:
        self.table = Tabletop([shape], friction, obstacle=None if obstacle is None else np.asarray(obstacle))

    def rollout(self, x0: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """States ``(H + 1, 6)`` from ``x0`` under ``actions`` ``(H, 2)``."""
        x0 = np.asarray(x0, dtype=np.float64)
        self.table.place(np.array([[x0[0], x0[1], np.arctan2(x0[3], x0[2])]]), x0[4:6])
        out = [x0]
        for a in actions:
            self.table.push(a)
            pose = self.table.object_pose(0)
            out.append(np.array([pose[0], pose[1], np.cos(pose[2]), np.sin(pose[2]), *self.table.pusher()]))
        return np.stack(out)

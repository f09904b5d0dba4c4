"""Shared machinery of the planar pushing envs: object shapes, the MJCF built from code, pose helpers.

The scene is a square table (the plane ``z = 0``, half-size :data:`TABLE_HALF`), one or more flat objects that
slide on it with Coulomb friction (each a free body made of box geoms), and a cylindrical pusher on two slide
joints driven by stiff, critically damped position actuators. The pusher never touches the table (collision
bits), so it only acts through its contacts with the objects. One control step is :data:`N_SUBSTEPS` physics
steps of :data:`PHYSICS_DT`: the pusher's set-point moves at constant speed (a teleported set-point would kick
the object, which then slides on after the step ends), then holds while everything comes to rest, so the pose of
the objects and the pusher is the whole state (quasi-static pushing). Physics runs in a few
``mj_step(model, data, nstep)`` calls per control step.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import gymnasium as gym

try:
    import mujoco
except ImportError as _exc:  # an optional extra: say which one installs it
    from controlkit.core.extras import missing_extra

    raise missing_extra("mujoco", "controlkit/Push-v0 and Sort-v0 (MuJoCo)") from _exc
import numpy as np

from controlkit.core.errors import ControlkitError, choices_error

TABLE_HALF = 0.3  # m; the table is [-0.3, 0.3]^2
PHYSICS_DT = 0.002
# A control step: the set-point ramps to its target in RAMP_CHUNKS equal moves of CHUNK_STEPS physics steps
# (0.2 s), then holds for SETTLE_STEPS (0.1 s) so that the object has stopped when the step ends.
RAMP_CHUNKS = 20
CHUNK_STEPS = 5
SETTLE_STEPS = 50
N_SUBSTEPS = RAMP_CHUNKS * CHUNK_STEPS + SETTLE_STEPS
CONTROL_DT = N_SUBSTEPS * PHYSICS_DT
PUSHER_RADIUS = 0.015
OBJECT_HALF_HEIGHT = 0.02
OBSTACLE_HALF_HEIGHT = 0.025  # taller than the objects and the pusher's reach above the table: it stops both
FRAMES = ("world", "pusher")


@dataclasses.dataclass(frozen=True)
class Shape:
    """A flat object as a union of axis-aligned boxes in its own frame.

    Attributes:
        name: ``"box"`` or ``"t"``.
        boxes: ``((cx, cy), (hx, hy))`` per box geom, in the object frame.
        keypoints: ``(K, 2)`` points of the object frame whose mean distance to the goal's is the pose distance.
    """

    name: str
    boxes: tuple[tuple[tuple[float, float], tuple[float, float]], ...]
    keypoints: np.ndarray

    def extent(self, direction: np.ndarray) -> float:
        """Distance from the origin to the edge of the shape's bounding box along ``direction`` (object frame)."""
        hx = max(abs(cx) + hx for (cx, _), (hx, _) in self.boxes)
        hy = max(abs(cy) + hy for (_, cy), (_, hy) in self.boxes)
        n = np.abs(np.asarray(direction, dtype=np.float64)) / max(float(np.linalg.norm(direction)), 1e-12)
        return float(min(hx / max(n[0], 1e-12), hy / max(n[1], 1e-12)))

    @property
    def radius(self) -> float:
        """Distance from the object origin to its farthest corner."""
        corners = [np.hypot(abs(cx) + hx, abs(cy) + hy) for (cx, cy), (hx, hy) in self.boxes]
        return float(max(corners))


SHAPES: dict[str, Shape] = {
    "box": Shape("box", (((0.0, 0.0), (0.05, 0.03)),),
                 np.array([[0.05, 0.03], [-0.05, 0.03], [-0.05, -0.03], [0.05, -0.03]])),
    # A T: the bar on top, the stem below; the origin sits where they meet.
    "t": Shape("t", (((0.0, 0.015), (0.06, 0.015)), ((0.0, -0.03), (0.015, 0.03))),
               np.array([[0.06, 0.03], [-0.06, 0.03], [0.0, -0.06], [0.0, 0.0]])),
}
COLOURS = ((0.85, 0.45, 0.15), (0.2, 0.55, 0.85), (0.3, 0.7, 0.3), (0.75, 0.3, 0.7))


def get_shape(name: str) -> Shape:
    """The shape called ``name``; a ControlkitError naming ``shape`` and the choices otherwise."""
    if name not in SHAPES:
        raise choices_error("shape", name, SHAPES)
    return SHAPES[name]


def check_positive(field: str, value: Any) -> float:
    """``value`` as a finite float > 0, else a ControlkitError naming ``field``."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ControlkitError(f"{field}: must be a number > 0, got {value!r}.") from None
    if not np.isfinite(v) or v <= 0:
        raise ControlkitError(f"{field}: must be a finite number > 0, got {value!r}.")
    return v


def check_rect(field: str, rect: Any, margin: float = 0.0) -> np.ndarray | None:
    """``[x_low, y_low, x_high, y_high]`` inside the table (or ``None``), else a ControlkitError naming ``field``."""
    if rect is None:
        return None
    r = np.asarray(rect, dtype=np.float64)
    if r.shape != (4,) or not np.isfinite(r).all() or r[0] >= r[2] or r[1] >= r[3]:
        raise ControlkitError(f"{field}: need [x_low, y_low, x_high, y_high] with low < high, got {rect!r}.")
    if np.abs(r).max() > TABLE_HALF - margin:
        raise ControlkitError(f"{field}: {r.tolist()} leaves the table [-{TABLE_HALF}, {TABLE_HALF}]^2.")
    return r


def check_point(field: str, value: Any, size: int, margin: float) -> np.ndarray:
    """A pose/position given in ``reset(options=...)``: ``size`` finite numbers with x, y on the table."""
    p = np.asarray(value, dtype=np.float64).reshape(-1)
    if p.shape != (size,) or not np.isfinite(p).all():
        raise ControlkitError(f"{field}: need {size} finite numbers, got {value!r}.")
    if np.abs(p[:2]).max() > TABLE_HALF - margin:
        raise ControlkitError(f"{field}: position {p[:2].tolist()} is outside the table "
                              f"(|x|, |y| <= {TABLE_HALF - margin:.3f} m for this object).")
    return p


def wrap_angle(a: np.ndarray | float) -> np.ndarray | float:
    """Angle(s) wrapped into ``[-pi, pi)``."""
    return (np.asarray(a) + np.pi) % (2 * np.pi) - np.pi


def keypoints(shape: Shape, pose: np.ndarray) -> np.ndarray:
    """World positions ``(K, 2)`` of the shape's keypoints at ``pose`` ``(x, y, theta)``."""
    c, s = np.cos(pose[2]), np.sin(pose[2])
    return shape.keypoints @ np.array([[c, s], [-s, c]]) + pose[:2]


def in_rect(xy: np.ndarray, rect: np.ndarray) -> np.ndarray:
    """Whether points ``(..., 2)`` lie inside ``[x_low, y_low, x_high, y_high]`` (boundary included)."""
    xy, r = np.asarray(xy), np.asarray(rect)
    return (xy[..., 0] >= r[..., 0]) & (xy[..., 0] <= r[..., 2]) & (xy[..., 1] >= r[..., 1]) & (xy[..., 1] <= r[..., 3])


def rect_distance(xy: np.ndarray, rect: np.ndarray) -> float:
    """Euclidean distance from a point to a rectangle (0 inside)."""
    dx = max(rect[0] - xy[0], 0.0, xy[0] - rect[2])
    dy = max(rect[1] - xy[1], 0.0, xy[1] - rect[3])
    return float(np.hypot(dx, dy))


def _box_geoms(shape: Shape, prefix: str, rgba: str, extra: str, half_height: float = OBJECT_HALF_HEIGHT) -> str:
    return "".join(
        f'<geom name="{prefix}{k}" type="box" pos="{cx:g} {cy:g} 0" size="{hx:g} {hy:g} {half_height:g}" '
        f'rgba="{rgba}" {extra}/>'
        for k, ((cx, cy), (hx, hy)) in enumerate(shape.boxes)
    )


def _rect_geom(name: str, rect: np.ndarray, rgba: str) -> str:
    cx, cy = (rect[0] + rect[2]) / 2, (rect[1] + rect[3]) / 2
    hx, hy = (rect[2] - rect[0]) / 2, (rect[3] - rect[1]) / 2
    return (f'<geom name="{name}" type="box" pos="{cx:g} {cy:g} 0.0005" size="{hx:g} {hy:g} 0.0005" '
            f'rgba="{rgba}" contype="0" conaffinity="0"/>')


def _obstacle_geom(rect: np.ndarray, friction: float) -> str:
    cx, cy = (rect[0] + rect[2]) / 2, (rect[1] + rect[3]) / 2
    hx, hy = (rect[2] - rect[0]) / 2, (rect[3] - rect[1]) / 2
    return (f'<geom name="obstacle" type="box" pos="{cx:g} {cy:g} {OBSTACLE_HALF_HEIGHT:g}" '
            f'size="{hx:g} {hy:g} {OBSTACLE_HALF_HEIGHT:g}" rgba=".35 .35 .4 1" contype="2" conaffinity="2" '
            f'friction="{friction:g} 0.005 0.0001"/>')


def tabletop_xml(shapes: Sequence[Shape], friction: float, goal_shapes: Sequence[Shape] = (),
                 regions: Sequence[np.ndarray] = (), keep_out: np.ndarray | None = None,
                 obstacle: np.ndarray | None = None, extra_bodies: str = "") -> str:
    """MJCF of the table, the objects ``object0..``, the pusher, goal ghosts (mocap), flat region markers and
    an optional fixed obstacle (a box standing on the table). ``extra_bodies`` is MJCF added to the worldbody
    as is (the rope of :mod:`.rope`; its geoms should use collision bits 3/3 as the objects do).

    Collision bits: table 1/1, objects 3/3, pusher 2/2, obstacle 2/2, so the pusher touches objects and the
    obstacle but never the table, and the objects touch everything.
    """
    objects = []
    for i, shape in enumerate(shapes):
        r, g, b = COLOURS[i % len(COLOURS)]
        objects.append(
            f'<body name="object{i}" pos="0 0 {OBJECT_HALF_HEIGHT:g}"><freejoint name="object{i}"/>'
            + _box_geoms(shape, f"object{i}_", f"{r} {g} {b} 1",
                         f'contype="3" conaffinity="3" friction="{friction:g} 0.005 0.0001"')
            + f'<geom name="object{i}_mark" type="sphere" size="0.006" pos="{shape.keypoints[0][0] * 0.6:g} '
              f'{shape.keypoints[0][1] * 0.6:g} {OBJECT_HALF_HEIGHT:g}" rgba="1 1 1 1" contype="0" conaffinity="0" '
              'mass="0"/>'
            + "</body>"
        )
    ghosts = []
    for i, shape in enumerate(goal_shapes):
        r, g, b = COLOURS[i % len(COLOURS)]
        ghosts.append(f'<body name="goal{i}" mocap="true" pos="0 0 0.001">'
                      + _box_geoms(shape, f"goal{i}_", f"{r} {g} {b} 0.3", 'contype="0" conaffinity="0"', 0.001)
                      + "</body>")
    marks = [_rect_geom(f"region{i}", rect, "{} {} {} 0.25".format(*COLOURS[i % len(COLOURS)]))
             for i, rect in enumerate(regions)]
    if keep_out is not None:
        marks.append(_rect_geom("keep_out", keep_out, "0.9 0.1 0.1 0.35"))
    if obstacle is not None:
        marks.append(_obstacle_geom(obstacle, friction))
    return f"""
<mujoco model="tabletop">
  <option timestep="{PHYSICS_DT}" integrator="implicitfast"/>
  <visual><global offwidth="640" offheight="640"/><quality shadowsize="0"/></visual>
  <asset>
    <texture name="grid" type="2d" builtin="checker" rgb1=".82 .8 .76" rgb2=".76 .74 .7" width="200" height="200"/>
    <material name="table" texture="grid" texrepeat="6 6"/>
  </asset>
  <worldbody>
    <light pos="0 0 2" dir="0 0 -1" directional="true" diffuse=".8 .8 .8"/>
    <camera name="top" pos="0 0 0.85" xyaxes="1 0 0 0 1 0" fovy="40"/>
    <geom name="table" type="plane" size="{TABLE_HALF:g} {TABLE_HALF:g} 0.01" material="table" contype="1"
          conaffinity="1" friction="{friction:g} 0.005 0.0001"/>
    {"".join(marks)}
    {"".join(objects)}
    {"".join(ghosts)}
    {extra_bodies}
    <body name="pusher" pos="0 0 0.025">
      <joint name="pusher_x" type="slide" axis="1 0 0"/>
      <joint name="pusher_y" type="slide" axis="0 1 0"/>
      <geom name="pusher" type="cylinder" size="{PUSHER_RADIUS:g} 0.02" rgba=".25 .25 .3 1" mass="1" contype="2"
            conaffinity="2" friction="0.3 0.005 0.0001"/>
    </body>
  </worldbody>
  <actuator>
    <position name="pusher_x" joint="pusher_x" kp="10000" kv="200" ctrlrange="-{TABLE_HALF:g} {TABLE_HALF:g}"/>
    <position name="pusher_y" joint="pusher_y" kp="10000" kv="200" ctrlrange="-{TABLE_HALF:g} {TABLE_HALF:g}"/>
  </actuator>
</mujoco>
"""


class Tabletop:
    """The compiled scene and the few operations the envs need on it (no name look-ups per step)."""

    def __init__(self, shapes: Sequence[Shape], friction: float, goal_shapes: Sequence[Shape] = (),
                 regions: Sequence[np.ndarray] = (), keep_out: np.ndarray | None = None,
                 obstacle: np.ndarray | None = None, extra_bodies: str = "") -> None:
        self.model = mujoco.MjModel.from_xml_string(tabletop_xml(shapes, friction, goal_shapes, regions, keep_out,
                                                                 obstacle, extra_bodies))
        self.data = mujoco.MjData(self.model)
        self.n_objects = len(shapes)
        self._qadr = [self.model.jnt_qposadr[self.model.joint(f"object{i}").id] for i in range(self.n_objects)]
        self._vadr = [self.model.jnt_dofadr[self.model.joint(f"object{i}").id] for i in range(self.n_objects)]
        self._pq = self.model.jnt_qposadr[self.model.joint("pusher_x").id]
        self._goal_mocap = [self.model.body_mocapid[self.model.body(f"goal{i}").id] for i in range(len(goal_shapes))]
        self._renderer: mujoco.Renderer | None = None
        self._obstacle = self.model.geom("obstacle").id if obstacle is not None else -1
        self._object_bodies = [self.model.body(f"object{i}").id for i in range(self.n_objects)]

    def touches_obstacle(self) -> bool:
        """Whether any object is in contact with the obstacle now (``False`` without an obstacle)."""
        if self._obstacle < 0:
            return False
        n = self.data.ncon
        g1, g2 = self.data.contact.geom1[:n], self.data.contact.geom2[:n]
        other = np.concatenate([g2[g1 == self._obstacle], g1[g2 == self._obstacle]])
        return bool(np.isin(self.model.geom_bodyid[other], self._object_bodies).any())

    def object_pose(self, i: int) -> np.ndarray:
        """``(x, y, theta)`` of object ``i`` (yaw from its quaternion)."""
        q = self.data.qpos[self._qadr[i]:self._qadr[i] + 7]
        w, x, y, z = q[3:]
        return np.array([q[0], q[1], np.arctan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z))])

    def object_poses(self) -> np.ndarray:
        return np.stack([self.object_pose(i) for i in range(self.n_objects)])

    def pusher(self) -> np.ndarray:
        return self.data.qpos[self._pq:self._pq + 2].copy()

    def place(self, poses: np.ndarray, pusher: np.ndarray) -> None:
        """Reset physics and put objects at rest at ``poses`` ``(n, 3)`` and the pusher (and its target) at ``pusher``."""
        mujoco.mj_resetData(self.model, self.data)
        for i, (x, y, th) in enumerate(np.asarray(poses)):
            a = self._qadr[i]
            self.data.qpos[a:a + 7] = [x, y, OBJECT_HALF_HEIGHT, np.cos(th / 2), 0.0, 0.0, np.sin(th / 2)]
        self.data.qpos[self._pq:self._pq + 2] = pusher
        self.data.ctrl[:] = pusher
        mujoco.mj_forward(self.model, self.data)

    def show_goal(self, i: int, pose: np.ndarray) -> None:
        """Move goal ghost ``i`` to ``pose``."""
        m = self._goal_mocap[i]
        self.data.mocap_pos[m] = [pose[0], pose[1], 0.001]
        self.data.mocap_quat[m] = [np.cos(pose[2] / 2), 0.0, 0.0, np.sin(pose[2] / 2)]

    def push(self, displacement: np.ndarray) -> None:
        """Command the pusher to its current position plus ``displacement`` (clipped to the table), then step."""
        start = self.pusher()
        target = np.clip(start + displacement, -TABLE_HALF + PUSHER_RADIUS, TABLE_HALF - PUSHER_RADIUS)
        for k in range(1, RAMP_CHUNKS + 1):
            self.data.ctrl[:] = start + (k / RAMP_CHUNKS) * (target - start)
            mujoco.mj_step(self.model, self.data, nstep=CHUNK_STEPS)
        mujoco.mj_step(self.model, self.data, nstep=SETTLE_STEPS)

    def render(self, width: int, height: int) -> np.ndarray:
        if self._renderer is None:
            self._renderer = mujoco.Renderer(self.model, height, width)
        self._renderer.update_scene(self.data, camera="top")
        return self._renderer.render()

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None


def pose_features(pose: np.ndarray, origin: np.ndarray) -> np.ndarray:
    """``(x, y, cos theta, sin theta)`` with the position relative to ``origin``."""
    return np.array([pose[0] - origin[0], pose[1] - origin[1], np.cos(pose[2]), np.sin(pose[2])])


def observation_box(frame: str, size: int):
    """The observation space: cos/sin and world positions (|x| <= 1 m, far beyond the table) lie in [-1, 1];
    positions relative to the pusher in [-2, 2]."""
    import gymnasium as gym

    bound = 1.0 if frame == "world" else 2.0
    return gym.spaces.Box(-bound, bound, shape=(size,), dtype=np.float64)


def check_frame(frame: str) -> str:
    if frame not in FRAMES:
        raise choices_error("frame", frame, FRAMES)
    return frame


def check_render(render_mode: str | None, width: int, height: int) -> None:
    if render_mode not in (None, "rgb_array"):
        raise choices_error("render_mode", render_mode, ["rgb_array"])
    if not (0 < width <= 640 and 0 < height <= 640):
        raise ControlkitError(f"width/height: must be in (0, 640], got {width} x {height}.")


class TabletopEnv(gym.Env):
    """What Push-v0 and Sort-v0 share: a bounded pusher displacement per step, rendering, closing.

    Subclasses set ``table`` (a :class:`Tabletop`), ``step_size``, ``terminate_on_success``, ``_width``,
    ``_height`` and implement ``_observe()`` and ``_info()`` (with ``distance``, ``success``, ``off_table``).
    """

    def step(self, action):
        a = np.asarray(action, dtype=np.float64)
        if a.shape != (2,) or not np.isfinite(a).all():
            raise ControlkitError(f"action: need 2 finite numbers (dx, dy), got {action!r}.")
        self.table.push(np.clip(a, -self.step_size, self.step_size))
        info = self._info()
        terminated = info["off_table"] or (self.terminate_on_success and info["success"])
        return self._observe(), -info["distance"], terminated, False, info

    def render(self):
        if self.render_mode != "rgb_array":
            return None
        return self.table.render(self._width, self._height)

    def close(self) -> None:
        self.table.close()


"""Deformable rope pushing (``controlkit/Rope-v0``): push a rope lying on the table into a target shape.

Same table, pusher, physics step and action as :mod:`controlkit.envs.push` (see :mod:`.tabletop`). The rope is a
chain of ``n_particles`` capsules (radius :data:`ROPE_RADIUS`, ``segment_length`` long) lying flat on the table:
the first slides on the table and turns about the vertical, each next one hangs on a vertical hinge at the end of
the one before, with joint damping and an optional bending stiffness (``stiffness``, 0 = a limp rope that keeps
the bends it is given). Every capsule slides on the table with Coulomb friction and collides with the pusher and with the
capsules that are not its neighbours. Its particles are the capsule centres.

Observation (flat ``float64``, world frame, see :func:`obs_particles` and :func:`obs_pusher`)::

    [particle_i x, y for each i | pusher x, y | target_i x, y for each i (goal_in_obs=True)]

Target: ``target="line"`` (a straight rope) or ``"arc"`` (a circular arc turning ``arc_angle`` in total), drawn at a
random pose on the table at each reset, or an explicit ``(n_particles, 2)`` array of target points (the same every
episode). Reward: minus the shape error, the mean distance (m) from particle ``i`` to target point ``i``, the smaller
of the two orderings (the rope has no head or tail). ``info`` has ``distance`` (the shape error), ``success``
(``distance <= tolerance``), ``off_table`` (a particle left the table) and ``target``. Episodes terminate on success
(``terminate_on_success``) or when a particle leaves the table.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import mujoco
import numpy as np
from controlkit.envs.tabletop import (
    CONTROL_DT,
    PUSHER_RADIUS,
    TABLE_HALF,
    Tabletop,
    TabletopEnv,
    check_point,
    check_positive,
    check_render,
)

from controlkit.core.errors import ControlkitError, choices_error

ROPE_RADIUS = 0.008  # m, capsule radius
TARGETS = ("line", "arc")
MAX_PARTICLES = 40
MAX_TRIES = 1000
JOINT_LIMIT = 1.5  # rad; a hinge bends at most this far (with the capsule contacts, the rope cannot fold on itself)


def obs_particles(n_particles: int) -> slice:
    """The observation's slice holding the particle positions ``[x_0, y_0, x_1, ...]``."""
    return slice(0, 2 * n_particles)


def obs_pusher(n_particles: int) -> slice:
    """The observation's slice holding the pusher position (right after the particles)."""
    return slice(2 * n_particles, 2 * n_particles + 2)


def chain_points(root: np.ndarray, heading: float, bends: np.ndarray, segment_length: float) -> np.ndarray:
    """Capsule centres ``(n, 2)`` of a chain whose first capsule starts at ``root`` pointing along ``heading``,
    each next one turned by ``bends[i]`` (rad, counter-clockwise) from the one before (``len(bends) = n - 1``)."""
    headings = heading + np.concatenate([[0.0], np.cumsum(bends)])
    dirs = np.column_stack([np.cos(headings), np.sin(headings)])
    starts = np.asarray(root, dtype=np.float64) + segment_length * np.concatenate([[[0.0, 0.0]],
                                                                                    np.cumsum(dirs[:-1], axis=0)])
    return starts + 0.5 * segment_length * dirs


def centred_chain(centre: np.ndarray, heading: float, bends: np.ndarray, segment_length: float) -> np.ndarray:
    """:func:`chain_points` translated so that the mean of the capsule centres is ``centre``."""
    pts = chain_points(np.zeros(2), heading, bends, segment_length)
    return pts - pts.mean(0) + np.asarray(centre, dtype=np.float64)


def shape_error(points: np.ndarray, target: np.ndarray) -> float:
    """Mean distance (m) between ``points`` ``(n, 2)`` and ``target`` ``(n, 2)`` in order, or in reverse order if
    that is smaller (a rope has no head or tail)."""
    fwd = np.linalg.norm(points - target, axis=1).mean()
    rev = np.linalg.norm(points - target[::-1], axis=1).mean()
    return float(min(fwd, rev))


def rope_xml(n_particles: int, segment_length: float, friction: float, damping: float, stiffness: float) -> str:
    """MJCF of the rope (nested bodies ``rope0..``, hinges ``rope_bend1..``) and the target markers (mocap)."""
    geom = (f'type="capsule" fromto="0 0 0 {segment_length:g} 0 0" size="{ROPE_RADIUS:g}" contype="3" '
            f'conaffinity="3" friction="{friction:g} 0.005 0.0001" density="600"')
    joint = (f'type="hinge" axis="0 0 1" damping="{damping:g}" stiffness="{stiffness:g}" limited="true" '
             f'range="-{JOINT_LIMIT:g} {JOINT_LIMIT:g}"')
    xml = ""
    for i in reversed(range(n_particles)):
        shade = 0.55 + 0.3 * (i % 2)
        # The first capsule slides in x, y, z and turns about z only: a free body would roll like a log when the
        # pusher touches it above its axis; with z free, gravity presses the rope onto the table (friction).
        inner = ('<joint name="rope_x" type="slide" axis="1 0 0"/><joint name="rope_y" type="slide" axis="0 1 0"/>'
                 '<joint name="rope_z" type="slide" axis="0 0 1"/><joint name="rope_yaw" type="hinge" axis="0 0 1"/>'
                 if i == 0 else f'<joint name="rope_bend{i}" {joint}/>')
        pos = f"0 0 {ROPE_RADIUS:g}" if i == 0 else f"{segment_length:g} 0 0"
        xml = (f'<body name="rope{i}" pos="{pos}">{inner}<geom name="rope{i}" {geom} '
               f'rgba="0.85 {shade:.2f} 0.2 1"/>{xml}</body>')
    marks = "".join(f'<body name="target{i}" mocap="true" pos="0 0 0.001"><geom type="cylinder" '
                    f'size="{ROPE_RADIUS:g} 0.001" rgba="0.2 0.5 0.9 0.45" contype="0" conaffinity="0"/></body>'
                    for i in range(n_particles))
    return xml + marks


class RopeEnv(TabletopEnv):
    """Push a rope into a target shape (``controlkit/Rope-v0``).

    Args:
        n_particles: Number of capsules (particles), 3 to 40.
        segment_length: Length of each capsule, metres (> 0; the rope is ``n_particles * segment_length`` long and
            must fit on the table).
        target: ``"line"`` or ``"arc"`` (drawn at a random pose every reset), or ``(n_particles, 2)`` target points.
        arc_angle: Total turn of an ``"arc"`` target, radians (in (0, 2π)).
        step_size: Largest pusher displacement per step and axis, metres (> 0).
        friction: Sliding friction coefficient of rope and table (> 0).
        damping: Hinge damping, N·m·s/rad (>= 0).
        stiffness: Hinge bending stiffness towards straight, N·m/rad (>= 0; 0 = limp rope).
        start_bend: Largest |bend| of a hinge in the random initial rope, radians (in [0, 1.5]).
        start_region: Half-side (m) of the centred square the rope's and a sampled target's mean point are drawn
            from.
        goal_in_obs: Append the target points to the observation.
        tolerance: Success bound on the shape error, metres (> 0).
        terminate_on_success: End the episode as soon as the shape error is within ``tolerance``.
        render_mode: ``None`` or ``"rgb_array"`` (top-down camera).
        width, height: Rendered frame size in pixels (at most 640).

    ``reset(options=...)`` accepts ``rope`` ``(x, y, θ)`` (the particles' mean point and the first capsule's
    heading), ``bend`` (``n_particles - 1`` hinge angles, default straight when ``rope`` is given), ``target``
    ``(n_particles, 2)`` and ``pusher`` ``(x, y)``; whatever is not given is sampled from the seed.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": round(1.0 / CONTROL_DT)}

    def __init__(
        self,
        n_particles: int = 12,
        segment_length: float = 0.025,
        target: str | Any = "line",
        arc_angle: float = np.pi / 2,
        step_size: float = 0.03,
        friction: float = 0.4,
        damping: float = 0.002,
        stiffness: float = 0.0,
        start_bend: float = 0.3,
        start_region: float = 0.08,
        goal_in_obs: bool = True,
        tolerance: float = 0.015,
        terminate_on_success: bool = True,
        render_mode: str | None = None,
        width: int = 320,
        height: int = 320,
    ) -> None:
        if isinstance(n_particles, bool) or not isinstance(n_particles, (int, np.integer)) \
                or not 3 <= n_particles <= MAX_PARTICLES:
            raise ControlkitError(f"n_particles: must be an integer from 3 to {MAX_PARTICLES}, got {n_particles!r}.")
        self.n_particles = int(n_particles)
        self.segment_length = check_positive("segment_length", segment_length)
        if self.n_particles * self.segment_length > 1.2 * TABLE_HALF:
            raise ControlkitError(f"segment_length: the rope (n_particles * segment_length = "
                                  f"{self.n_particles * self.segment_length:.3f} m) must be at most "
                                  f"{1.2 * TABLE_HALF:.2f} m long to fit on the table.")
        self.arc_angle = float(arc_angle)
        if not 0 < self.arc_angle < 2 * np.pi:
            raise ControlkitError(f"arc_angle: must be in (0, 2π) radians, got {arc_angle!r}.")
        self.target_kind, self.fixed_target = self._check_target(target)
        self.step_size = check_positive("step_size", step_size)
        self.friction = check_positive("friction", friction)
        self.damping = _check_non_negative("damping", damping)
        self.stiffness = _check_non_negative("stiffness", stiffness)
        self.start_bend = _check_non_negative("start_bend", start_bend)
        if self.start_bend > JOINT_LIMIT:
            raise ControlkitError(f"start_bend: must be at most {JOINT_LIMIT} rad (the hinge limit), got "
                                  f"{start_bend!r}.")
        self.start_region = check_positive("start_region", start_region)
        if self.start_region > TABLE_HALF / 2:
            raise ControlkitError(f"start_region: must be at most {TABLE_HALF / 2:.2f} m so the rope starts on the "
                                  f"table, got {start_region!r}.")
        self.goal_in_obs = bool(goal_in_obs)
        self.tolerance = check_positive("tolerance", tolerance)
        self.terminate_on_success = bool(terminate_on_success)
        check_render(render_mode, width, height)
        self.render_mode, self._width, self._height = render_mode, width, height
        self.table = Tabletop([], self.friction, extra_bodies=rope_xml(self.n_particles, self.segment_length,
                                                                       self.friction, self.damping, self.stiffness))
        model = self.table.model
        self._geoms = np.array([model.geom(f"rope{i}").id for i in range(self.n_particles)])
        self._root = model.jnt_qposadr[model.joint("rope_x").id]  # x, y, z, yaw follow in order
        self._bends = np.array([model.jnt_qposadr[model.joint(f"rope_bend{i}").id]
                                for i in range(1, self.n_particles)], dtype=np.int64)
        self._marks = [model.body_mocapid[model.body(f"target{i}").id] for i in range(self.n_particles)]
        self.action_space = gym.spaces.Box(-self.step_size, self.step_size, shape=(2,), dtype=np.float32)
        n_obs = 4 * self.n_particles + 2 if self.goal_in_obs else 2 * self.n_particles + 2
        # world positions: |x|, |y| <= 1 m, far beyond the table
        self.observation_space = gym.spaces.Box(-1.0, 1.0, shape=(n_obs,), dtype=np.float64)
        self.target = np.zeros((self.n_particles, 2))

    def _check_target(self, target: Any) -> tuple[str, np.ndarray | None]:
        """``(kind, points)``: a sampled ``"line"``/``"arc"`` (points ``None``) or fixed points ``(n, 2)``."""
        if isinstance(target, str):
            if target not in TARGETS:
                raise choices_error("target", target, TARGETS)
            return target, None
        return "points", self._check_points("target", target)

    def _check_points(self, field: str, value: Any) -> np.ndarray:
        try:
            pts = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):
            raise ControlkitError(f"{field}: need 'line', 'arc' or ({self.n_particles}, 2) target points, got "
                                  f"{value!r}.") from None
        if pts.shape != (self.n_particles, 2) or not np.isfinite(pts).all():
            raise ControlkitError(f"{field}: need {self.n_particles} finite (x, y) points, shape "
                                  f"({self.n_particles}, 2) for n_particles={self.n_particles}, got shape "
                                  f"{pts.shape}.")
        if np.abs(pts).max() > TABLE_HALF - ROPE_RADIUS:
            raise ControlkitError(f"{field}: points must lie on the table (|x|, |y| <= "
                                  f"{TABLE_HALF - ROPE_RADIUS:.3f} m), largest is {np.abs(pts).max():.3f}.")
        return pts

    # ---- state -------------------------------------------------------------------------------------------
    def particles(self) -> np.ndarray:
        """World positions ``(n_particles, 2)`` of the capsule centres."""
        return self.table.data.geom_xpos[self._geoms, :2].copy()

    def state(self) -> np.ndarray:
        """World-frame ``[particle_i x, y ..., pusher x, y]`` (the observation without the target)."""
        return np.concatenate([self.particles().ravel(), self.table.pusher()])

    def _observe(self) -> np.ndarray:
        parts = [self.state()]
        if self.goal_in_obs:
            parts.append(self.target.ravel())
        return np.concatenate(parts)

    def _info(self) -> dict[str, Any]:
        pts = self.particles()
        distance = shape_error(pts, self.target)
        return {"distance": distance, "success": bool(distance <= self.tolerance),
                "off_table": bool(np.abs(pts).max() > TABLE_HALF), "target": self.target.copy()}

    # ---- sampling ----------------------------------------------------------------------------------------
    def _fits(self, pts: np.ndarray) -> bool:
        """On the table (with a margin) and not crossing itself (non-neighbour capsule centres apart)."""
        if np.abs(pts).max() > TABLE_HALF - 2 * ROPE_RADIUS:
            return False
        d = np.linalg.norm(pts[:, None] - pts[None], axis=-1)
        far = np.abs(np.arange(len(pts))[:, None] - np.arange(len(pts))[None]) >= 2
        return bool(d[far].min(initial=np.inf) > 2.5 * ROPE_RADIUS)

    def _sample_target(self, rng: np.random.Generator) -> np.ndarray:
        n = self.n_particles
        bend = np.zeros(n - 1) if self.target_kind == "line" else np.full(n - 1, self.arc_angle / (n - 1))
        for _ in range(MAX_TRIES):
            pts = centred_chain(rng.uniform(-self.start_region, self.start_region, 2), rng.uniform(-np.pi, np.pi),
                                bend, self.segment_length)
            if self._fits(pts):
                return pts
        raise ControlkitError("target/arc_angle/start_region: no target shape fits on the table; use a shorter "
                              "rope or a smaller start_region.")

    def _sample_pusher(self, rng: np.random.Generator, pts: np.ndarray) -> np.ndarray:
        """Next to a random particle, on a random side, clear of the whole rope."""
        for _ in range(MAX_TRIES):
            i = rng.integers(self.n_particles)
            psi, gap = rng.uniform(-np.pi, np.pi), rng.uniform(0.005, 0.03)
            p = pts[i] + (ROPE_RADIUS + PUSHER_RADIUS + gap) * np.array([np.cos(psi), np.sin(psi)])
            clear = np.linalg.norm(pts - p, axis=1).min() > ROPE_RADIUS + PUSHER_RADIUS + 0.004
            if clear and np.abs(p).max() <= TABLE_HALF - PUSHER_RADIUS:
                return p
        raise ControlkitError("options: no free place for the pusher next to the rope.")

    def _sample(self, rng: np.random.Generator, options: dict) -> tuple[np.ndarray, float, np.ndarray, np.ndarray,
                                                                        np.ndarray]:
        """``(root, heading, bends, target, pusher)``, each from ``options`` if given, else from ``rng``."""
        n = self.n_particles
        unknown = set(options) - {"rope", "bend", "target", "pusher"}
        if unknown:
            raise choices_error("options", sorted(unknown)[0], ["rope", "bend", "target", "pusher"])
        pose = None if "rope" not in options else check_point("options.rope", options["rope"], 3, 0.0)
        bend = None
        if "bend" in options:
            bend = np.asarray(options["bend"], dtype=np.float64).reshape(-1)
            if bend.shape != (n - 1,) or not np.isfinite(bend).all() or np.abs(bend).max() > JOINT_LIMIT:
                raise ControlkitError(f"options.bend: need {n - 1} hinge angles within ±{JOINT_LIMIT} rad, got "
                                      f"{options['bend']!r}.")
        if "target" in options:
            target = self._check_points("options.target", options["target"])
        elif self.fixed_target is not None:
            target = self.fixed_target.copy()
        else:
            target = self._sample_target(rng)
        for _ in range(MAX_TRIES):
            b = bend if bend is not None else (np.zeros(n - 1) if pose is not None
                                               else rng.uniform(-self.start_bend, self.start_bend, n - 1))
            centre = pose[:2] if pose is not None else rng.uniform(-self.start_region, self.start_region, 2)
            heading = pose[2] if pose is not None else rng.uniform(-np.pi, np.pi)
            pts = centred_chain(centre, heading, b, self.segment_length)
            if self._fits(pts):
                break
            if pose is not None and bend is not None:
                raise ControlkitError("options.rope/options.bend: this rope leaves the table or crosses itself.")
        else:
            raise ControlkitError("start_bend/start_region: no initial rope fits on the table.")
        root = pts[0] - 0.5 * self.segment_length * np.array([np.cos(heading), np.sin(heading)])
        if "pusher" in options:
            pusher = check_point("options.pusher", options["pusher"], 2, PUSHER_RADIUS)
        else:
            pusher = self._sample_pusher(rng, pts)
        return root, heading, b, target, pusher

    # ---- gymnasium API -----------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """New episode: rope, target and pusher from the seed unless given in ``options``."""
        super().reset(seed=seed)
        root, heading, bends, self.target, pusher = self._sample(self.np_random, dict(options or {}))
        self.table.place(np.zeros((0, 3)), pusher)
        data = self.table.data
        data.qpos[self._root:self._root + 4] = [root[0], root[1], 0.0, heading]  # z is relative to the body
        data.qpos[self._bends] = bends
        for m, (x, y) in zip(self._marks, self.target):
            data.mocap_pos[m] = [x, y, 0.001]
        mujoco.mj_forward(self.table.model, data)
        return self._observe(), self._info()


def _check_non_negative(field: str, value: Any) -> float:
    """``value`` as a finite float >= 0, else a ControlkitError naming ``field``."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ControlkitError(f"{field}: must be a number >= 0, got {value!r}.") from None
    if not np.isfinite(v) or v < 0:
        raise ControlkitError(f"{field}: must be a finite number >= 0, got {value!r}.")
    return v


__all__ = ["ROPE_RADIUS", "TARGETS", "RopeEnv", "centred_chain", "chain_points", "obs_particles", "obs_pusher",
           "shape_error"]

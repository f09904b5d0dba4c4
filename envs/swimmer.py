"""N-link planar swimmer in a viscous medium: dm_control's swimmer body and physics, generated for any length.

The body is a chain of ``n_links`` capsules joined by ``n_links - 1`` motorised hinges; the head (link 0) carries
the planar root (slide x, slide y, hinge z). Physics and body match dm_control's ``swimmer`` domain, which the
NCAP paper used: 0.002 s physics step, medium density 3000, contacts off, gear 5e-4, joint limits ±360°/n_links,
one 0.03 s control step = 15 physics steps, 1000 control steps per episode.

Observation (flat ``float64`` vector, see :class:`SwimmerLayout`)::

    [joint angles (n_links-1) | body velocities (3 per link: local v_x, v_y, w_z) | to_target (2, navigate only)
     | episode fraction t/1000 (only with time_obs=True)]

Tasks:
    ``swim``: reward = linear ramp of the head's forward speed, 0 at <= 0 m/s, 1 at >= 0.1 m/s (best return 1000).
    ``navigate``: dm_control's target task: 1 within 0.1 of the target, long-tailed fall-off (margin 0.5).

The control step index is in ``info["step"]`` and, with ``time_obs=True``, the last observation entry.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import gymnasium as gym

try:
    import mujoco
except ImportError as _exc:  # an optional extra: say which one installs it
    from controlkit.core.extras import missing_extra

    raise missing_extra("mujoco", "controlkit/Swimmer-v0 (MuJoCo)") from _exc
import numpy as np

from controlkit.core.errors import ControlkitError, choices_error

TASKS = ("swim", "navigate")
PHYSICS_DT = 0.002
CONTROL_DT = 0.03
N_SUBSTEPS = 15  # CONTROL_DT / PHYSICS_DT
EPISODE_STEPS = 1000  # 30 s
SWIM_SPEED = 0.1  # m/s at which the swim reward saturates
TARGET_SIZE = 0.1


@dataclasses.dataclass(frozen=True)
class SwimmerLayout:
    """Where each quantity sits in the flat observation vector."""

    n_links: int
    task: str = "swim"
    time_obs: bool = False

    @property
    def n_joints(self) -> int:
        return self.n_links - 1

    @property
    def joints(self) -> slice:
        return slice(0, self.n_joints)

    @property
    def body_velocities(self) -> slice:
        return slice(self.n_joints, self.n_joints + 3 * self.n_links)

    @property
    def to_target(self) -> slice | None:
        start = self.body_velocities.stop
        return slice(start, start + 2) if self.task == "navigate" else None

    @property
    def time_index(self) -> int | None:
        """Index of the episode-fraction entry (``step / EPISODE_STEPS``), or ``None``."""
        return self.size - 1 if self.time_obs else None

    @property
    def size(self) -> int:
        return self.n_joints + 3 * self.n_links + (2 if self.task == "navigate" else 0) + int(self.time_obs)


def check_n_links(n_links: Any) -> int:
    """Validate a body length (an integer >= 3) and return it as ``int``."""
    if isinstance(n_links, bool) or not isinstance(n_links, (int, np.integer)):
        raise ControlkitError(f"n_links: must be an integer >= 3, got {n_links!r}.")
    if n_links < 3:
        raise ControlkitError(f"n_links: must be >= 3 (a swimmer needs at least 2 joints), got {n_links}.")
    return int(n_links)


def swimmer_xml(n_links: int) -> str:
    """MJCF of an ``n_links`` swimmer, following dm_control's ``swimmer.xml`` and its ``_make_model``.

    Only the invisible thin boxes carry mass (0.01 each); MuJoCo's inertia-box fluid model
    turns the medium density into drag on them. Visual geoms are massless.
    """
    n_links = check_n_links(n_links)
    limit = 360.0 / n_links
    scale = n_links / 6.0  # tracking cameras move back with body length, as in dm_control
    segments, actuators, sensors = [], [], []
    for i in range(n_links - 1):
        segments.append(
            f'<body name="segment_{i}" pos="0 .1 0">'
            f'<geom class="visual" name="visual_{i}"/><geom class="inertial" name="inertial_{i}"/>'
            f'<site name="site_{i}"/><joint name="joint_{i}" range="{-limit} {limit}"/>'
        )
        actuators.append(f'<motor name="motor_{i}" joint="joint_{i}"/>')
        sensors.append(f'<velocimeter name="velocimeter_{i}" site="site_{i}"/><gyro name="gyro_{i}" site="site_{i}"/>')
    chain = "".join(segments) + "</body>" * (n_links - 1)
    cam1 = " ".join(f"{v * scale:g}" for v in (0.0, -0.2, 0.5))
    cam2 = " ".join(f"{v * scale:g}" for v in (-0.9, 0.5, 0.15))
    return f"""
<mujoco model="swimmer{n_links}">
  <option timestep="{PHYSICS_DT}" density="3000"><flag contact="disable"/></option>
  <visual><global offwidth="640" offheight="480"/><quality shadowsize="1024"/></visual>
  <asset>
    <texture name="grid" type="2d" builtin="checker" rgb1=".1 .2 .3" rgb2=".2 .3 .4" width="300" height="300"
             mark="edge" markrgb=".2 .3 .4"/>
    <material name="grid" texture="grid" texrepeat="1 1" texuniform="true" reflectance=".2"/>
    <material name="self" rgba=".7 .5 .3 1"/>
    <material name="effector" rgba=".7 .4 .2 1"/>
    <material name="eye" rgba="0 .2 1 1"/>
    <material name="target" rgba=".6 .3 .3 1"/>
  </asset>
  <default>
    <default class="swimmer">
      <joint type="hinge" pos="0 -.05 0" axis="0 0 1" limited="true" solreflimit=".05 1" solimplimit="0 .8 .1"
             armature="1e-6"/>
      <default class="inertial"><geom type="box" size=".001 .05 .01" rgba="0 0 0 0" mass=".01"/></default>
      <default class="visual"><geom type="capsule" size=".01" fromto="0 -.05 0 0 .05 0" material="self" mass="0"/>
      </default>
      <site size=".01" rgba="0 0 0 0"/>
    </default>
    <default class="free"><joint limited="false" stiffness="0" armature="0"/></default>
    <motor gear="5e-4" ctrllimited="true" ctrlrange="-1 1"/>
  </default>
  <worldbody>
    <light name="top" pos="0 0 3" dir="0 0 -1" directional="true" diffuse=".6 .6 .6"/>
    <geom name="ground" type="plane" size="{max(2.5, 0.1 * n_links + 2.5):g} {max(2.5, 0.1 * n_links + 2.5):g} 0.1"
          material="grid"/>
    <body name="head" pos="0 0 .05" childclass="swimmer">
      <geom name="head" type="ellipsoid" size=".02 .04 .017" pos="0 -.022 0" material="self" mass="0"/>
      <geom name="nose" type="sphere" pos="0 -.06 0" size=".004" material="effector" mass="0"/>
      <geom name="eyes" type="capsule" fromto="-.006 -.054 .005 .006 -.054 .005" size=".004" material="eye"
            mass="0"/>
      <camera name="tracking1" pos="{cam1}" xyaxes="1 0 0 0 1 1" mode="trackcom" fovy="60"/>
      <camera name="tracking2" pos="{cam2}" xyaxes="0 -1 0 .3 0 1" mode="trackcom" fovy="60"/>
      <joint name="rootx" class="free" type="slide" axis="1 0 0" pos="0 -.05 0"/>
      <joint name="rooty" class="free" type="slide" axis="0 1 0" pos="0 -.05 0"/>
      <joint name="rootz" class="free" type="hinge" axis="0 0 1" pos="0 -.05 0"/>
      <geom name="inertial" class="inertial"/>
      <geom name="visual" class="visual"/>
      <site name="head"/>
      {chain}
    </body>
    <geom name="target" type="sphere" pos="1 1 .05" size="{TARGET_SIZE}" material="target" contype="0"
          conaffinity="0"/>
  </worldbody>
  <actuator>{"".join(actuators)}</actuator>
  <sensor>
    <velocimeter name="head_vel" site="head"/><gyro name="head_gyro" site="head"/>
    {"".join(sensors)}
  </sensor>
</mujoco>
"""


class SwimmerEnv(gym.Env):
    """dm_control's N-link swimmer as a Gymnasium env (``controlkit/Swimmer-v0``).

    Args:
        n_links: Number of body segments (>= 3); the swimmer has ``n_links - 1`` actuated joints.
        task: ``"swim"`` (forward speed) or ``"navigate"`` (reach a random target).
        time_obs: Append the episode fraction ``step / 1000`` to the observation (for policies with a clock).
        render_mode: ``None`` or ``"rgb_array"``.
        width, height: Rendered frame size in pixels (at most 640 x 480).
        camera: Camera name for rendering (``"tracking1"`` top-down, ``"tracking2"`` side view).
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": round(1.0 / CONTROL_DT)}

    def __init__(
        self,
        n_links: int = 6,
        task: str = "swim",
        time_obs: bool = False,
        render_mode: str | None = None,
        width: int = 320,
        height: int = 240,
        camera: str = "tracking1",
    ) -> None:
        self.n_links = check_n_links(n_links)
        if task not in TASKS:
            raise choices_error("task", task, TASKS)
        if render_mode not in (None, *self.metadata["render_modes"]):
            raise choices_error("render_mode", render_mode, self.metadata["render_modes"])
        if not (0 < width <= 640 and 0 < height <= 480):
            raise ControlkitError(f"width/height: must be in (0, 640] x (0, 480], got {width} x {height}.")
        self.task = task
        self.layout = SwimmerLayout(self.n_links, task, bool(time_obs))
        self.render_mode = render_mode
        self.model = mujoco.MjModel.from_xml_string(swimmer_xml(self.n_links))
        if camera not in [self.model.camera(i).name for i in range(self.model.ncam)]:
            raise choices_error("camera", camera, ["tracking1", "tracking2"])
        self.data = mujoco.MjData(self.model)
        self._width, self._height, self._camera = width, height, camera
        self._renderer: mujoco.Renderer | None = None
        nj = self.n_links - 1
        self.action_space = gym.spaces.Box(-1.0, 1.0, shape=(nj,), dtype=np.float32)
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, shape=(self.layout.size,), dtype=np.float64)
        # Views into MuJoCo's arrays, built once so a step does no name lookups.
        self._joint_lo = self.model.jnt_range[3:, 0].copy()
        self._joint_hi = self.model.jnt_range[3:, 1].copy()
        self._sensors = self.data.sensordata.reshape(self.n_links, 6)  # velocimeter xyz, gyro xyz per link
        self._vel_idx = (6 * np.arange(self.n_links)[:, None] + np.array([0, 1, 5])).ravel()  # v_x, v_y, w_z
        self._head = self.model.body("head").id
        self._nose = self.model.geom("nose").id
        self._target = self.model.geom("target").id
        self._step = 0
        self._obs = np.zeros(self.layout.size)

    # ---- physics -------------------------------------------------------------------------------------------
    def _advance(self) -> None:
        """15 physics steps, leaving positions, velocities and sensors up to date for the new state.

        dm_control's legacy step: finish the pending step (``mj_step2``), run ``nstep - 1`` full steps, then
        ``mj_step1`` so sensors describe the state the agent observes (a bare ``mj_step`` leaves them one
        physics step stale). Same trajectory as 15 ``mj_step`` calls, at the cost of 15.
        """
        mujoco.mj_step2(self.model, self.data)
        mujoco.mj_step(self.model, self.data, N_SUBSTEPS - 1)
        mujoco.mj_step1(self.model, self.data)

    def nose_to_target(self) -> np.ndarray:
        """Vector from the nose to the target in the head frame (x, y)."""
        d = self.data
        delta = d.geom_xpos[self._target] - d.geom_xpos[self._nose]
        return delta @ d.xmat[self._head].reshape(3, 3)[:, :2]

    def forward_speed(self) -> float:
        """Head speed along its forward direction (-y in the head frame), m/s."""
        return -float(self._sensors[0, 1])

    def _reward(self) -> float:
        if self.task == "swim":  # min/max on a Python float: np.clip costs more than the rest of the reward
            return min(max(self.forward_speed() / SWIM_SPEED, 0.0), 1.0)
        return _long_tail_tolerance(float(np.linalg.norm(self.nose_to_target())), TARGET_SIZE, 5 * TARGET_SIZE)

    def _observe(self) -> np.ndarray:
        obs, lay = self._obs, self.layout
        obs[lay.joints] = self.data.qpos[3:]
        np.take(self.data.sensordata, self._vel_idx, out=obs[lay.body_velocities])
        if lay.to_target is not None:
            obs[lay.to_target] = self.nose_to_target()
        if lay.time_obs:
            obs[-1] = self._step / EPISODE_STEPS
        return obs.copy()

    # ---- gymnasium API -------------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """Random joint angles within their limits and a random heading (dm_control's initialisation)."""
        super().reset(seed=seed)
        rng = self.np_random
        mujoco.mj_resetData(self.model, self.data)
        self.data.qpos[2] = rng.uniform(-np.pi, np.pi)
        self.data.qpos[3:] = rng.uniform(self._joint_lo, self._joint_hi)
        # The target is drawn in both tasks so the random stream (and thus the body state) is task-independent.
        box = 0.3 if rng.random() < 0.2 else 2.0
        self.model.geom_pos[self._target, :2] = rng.uniform(-box, box, size=2)
        if self.task == "swim":
            self.model.geom_rgba[self._target, 3] = 0.0  # hidden
        mujoco.mj_forward(self.model, self.data)
        self._step = 0
        return self._observe(), self._info()

    def step(self, action):
        action = np.asarray(action, dtype=np.float64)
        if action.shape != self.action_space.shape:
            raise ControlkitError(
                f"action: expected shape {self.action_space.shape} for a {self.n_links}-link swimmer, "
                f"got {action.shape}."
            )
        if not np.all(np.isfinite(action)):  # MuJoCo would zero a NaN control and only log a warning to a file
            raise ControlkitError(f"action: must be finite, got {action.tolist()}.")
        self.data.ctrl[:] = action  # MuJoCo clamps to ctrlrange [-1, 1]
        self._advance()
        self._step += 1
        return self._observe(), self._reward(), False, False, self._info()

    def _info(self) -> dict[str, Any]:
        return {"step": self._step}

    def render(self):
        if self.render_mode != "rgb_array":
            return None
        if self._renderer is None:
            self._renderer = mujoco.Renderer(self.model, self._height, self._width)
        self._renderer.update_scene(self.data, camera=self._camera)
        return self._renderer.render()

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None


def _long_tail_tolerance(x: float, bound: float, margin: float, value_at_margin: float = 0.1) -> float:
    """dm_control ``rewards.tolerance(x, bounds=(0, bound), margin, sigmoid='long_tail')``."""
    if x <= bound:
        return 1.0
    scale = np.sqrt(1.0 / value_at_margin - 1.0)
    d = (x - bound) / margin
    return float(1.0 / ((d * scale) ** 2 + 1.0))


__all__ = ["EPISODE_STEPS", "SwimmerEnv", "SwimmerLayout", "TASKS", "check_n_links", "swimmer_xml"]

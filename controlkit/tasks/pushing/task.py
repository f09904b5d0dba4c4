"""The pushing task as every planner sees it: state and goal from the env, the shared cost, the planners built
on one learned network, and closed-loop episodes.

:class:`Task` turns a ``controlkit/Push-v0`` or ``controlkit/Sort-v0`` situation into the planning problem
``(x, goal)``: the world-frame state ``[x, y, cos θ, sin θ, pusher x, pusher y]`` of the pushed object and the
target with the pre-push point the pusher is pulled towards. On Sort the sequencer picks the box and leg, and the
pusher's transit to it is the task's own move. :func:`make_planner` builds any registered planner on the task's
horizon, bounds, cost and keep-out box; :func:`run_episode` runs one closed-loop episode on the real env.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, PositiveInt, field_validator

from controlkit.core.controller import Controller, StepInfo
from controlkit.core.errors import ControlkitError
from controlkit.core.stats import mean_ci95, proportion_ci95
from controlkit.envs.tabletop import PUSHER_RADIUS, TABLE_HALF, wrap_angle
from controlkit.models.network import CompactNetwork
from controlkit.planning import KeepOut
from controlkit.planning.registry import PLANNERS, get_planner, planner_params, register_planner
from controlkit.tasks.pushing.greedy import GreedyPusher, pre_push_point
from controlkit.tasks.pushing.routing import next_waypoint
from controlkit.tasks.pushing.sort_task import SortSequencer
from controlkit.tasks.pushing.starts import PipelineMIP, StartsOnly

NX, NU = 6, 2  # [x, y, cos θ, sin θ, pusher x, pusher y], [dx, dy]
PUSHER_CLEARANCE = 0.005  # m between the pusher and an obstacle in the planners' pusher box

# Planners the pushing task adds to the registry: the model-free reference, and MPPI on the simulator itself.
register_planner("greedy", GreedyPusher)
PLANNERS.register_path("sim_mppi", "controlkit.tasks.pushing.sim_mppi:SimMPPIPlanner")
# The task's MIP-MPC is MIPMPC plus candidate starts built from the task (greedy pusher, MPPI pass): `type:
# mip_mpc` in a pushing experiment means this class; `starts_only` is its ablation without the MILP.
TASK_PLANNERS: dict[str, type] = {"mip_mpc": PipelineMIP, "starts_only": StartsOnly}
# Set by the task from the env and the cost block, identical for every planner; not a planner's own knob.
TASK_SET = {"model", "horizon", "u_low", "u_high", "x_low", "x_high", "residual", "state_weights",
            "control_weight", "terminal_weight", "keep_out", "goal", "state_fn", "nx", "nu", "state_constraints",
            "shape", "step_size", "sim"}


def planner_class(type_: str) -> type:
    """The class built for planner ``type_`` on this task (the registry's, or the task's own MIP-MPC)."""
    return TASK_PLANNERS.get(type_) or get_planner(type_)


def task_params(type_: str) -> set[str]:
    """Keyword arguments planner ``type_`` takes in a pushing experiment (those the task sets excluded)."""
    return planner_params(planner_class(type_)) - TASK_SET


class CostConfig(BaseModel):
    """The receding-horizon problem every planner solves."""

    model_config = ConfigDict(extra="forbid")

    horizon: PositiveInt = Field(10, description="Planned steps H (the same for every planner).")
    position_weight: float = Field(1.0, gt=0, description="L1 weight of the object position error (per metre).")
    orientation_weight: float = Field(0.0, ge=0, description="L1 weight of the cos θ / sin θ errors (0 = position only).")
    pusher_weight: float = Field(0.2, ge=0, description="L1 weight pulling the pusher to the pre-push point.")
    terminal_weight: float = Field(1.0, ge=0, description="Extra factor on the last step's cost.")
    keep_out_margin: float = Field(0.0, ge=0, description="The planners' keep-out box is the env's keep_out (or its "
                                   "obstacle) grown by this much (m) on every side: room for the learned model's "
                                   "prediction error (and, for an obstacle, for the object's own size).")
    keep_out_penalty: float | None = Field(None, gt=0, description="None: MIP-MPC imposes the keep-out box as a "
                                           "hard constraint (no plan while the object is inside it). A number: every "
                                           "planner pays this much per metre of depth inside it per step (MIP-MPC "
                                           "exactly, by slack variables), so a plan leads back out.")
    keep_out_route: float | None = Field(None, ge=0, description="None: the target is the goal. A number: the "
                                         "target is the next corner of the shortest path round the planners' "
                                         "keep-out box, its corners this far (m) outside it (the goal once in view).")


class PlannerSpec(BaseModel):
    """One planner: its ``type`` and its own constructor knobs (see :mod:`controlkit.planning.mip_mpc`)."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(description="A registered planner type (mip_mpc, mppi, cem, gradient, random, greedy, "
                      "sim_mppi, or one added with register_planner) or a 'package.module:Class' path.")

    @field_validator("type")
    @classmethod
    def _known(cls, v: str) -> str:
        try:
            planner_class(v)
        except ControlkitError as exc:
            raise ValueError(str(exc).removeprefix("planner type: ")) from None
        return v

    def kwargs(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class PushExplorer(Controller):
    """Exploration for data collection: with probability ``aim`` a full step towards a point near the object
    (re-drawn now and then), plus temporally correlated noise; keeps contacts frequent and varied.

    Reads a world-frame Push-v0 observation (object x, y at 0:2, pusher at 4:6).
    """

    def __init__(self, step_size: float, aim: float = 0.7, seed: int | None = None) -> None:
        self.step, self.aim = float(step_size), float(aim)
        self._rng = np.random.default_rng(seed)
        self._offset = np.zeros(2)
        self._noise = np.zeros(2)

    def reset(self, seed: int | None = None) -> None:
        super().reset(seed)
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        self._offset = self._rng.normal(0.0, 0.03, 2)
        self._noise = np.zeros(2)

    def _act(self, obs: Any) -> tuple[np.ndarray, StepInfo]:
        rng = self._rng
        if rng.random() < 0.15:
            self._offset = rng.normal(0.0, 0.03, 2)
        d = obs[0:2] + self._offset - obs[4:6]
        heading = self.step * d / max(float(np.linalg.norm(d)), 1e-6)
        self._noise = 0.8 * self._noise + 0.6 * rng.normal(0.0, self.step, 2)
        action = np.clip(heading * (rng.random() < self.aim) + self._noise, -self.step, self.step)
        return action.astype(np.float32), StepInfo()


def push_data_kwargs(env_kwargs: dict[str, Any]) -> dict[str, Any]:
    """Push-v0 arguments for data collection: the evaluated env's object, friction and step size."""
    shared = {k: env_kwargs[k] for k in ("shape", "friction", "step_size") if k in env_kwargs}
    return {**shared, "goal_in_obs": False, "terminate_on_success": False}


def frame_matrix() -> np.ndarray:
    """``T`` with ``z = T x``: the object position minus the pusher position, the rest unchanged."""
    t = np.eye(NX)
    t[0, 4] = t[1, 5] = -1.0
    return t


def fold_frame(net: CompactNetwork, t: np.ndarray) -> CompactNetwork:
    """The network in world coordinates from one learned on ``z = T x``.

    A residual model ``z' = z + f(z, u)`` is ``x' = x + T^-1 f(T x, u)``: ``T`` folds into the first layer's
    state columns and ``T^-1`` into the last layer, so the number and kind of neurons stay the same.
    """
    if not net.residual:
        raise ControlkitError("model.frame: folding the pusher frame needs a residual network.")
    t_inv = np.linalg.inv(t)
    weights = [w.copy() for w in net.weights]
    biases = [b.copy() for b in net.biases]
    weights[0][:, :net.nx] = weights[0][:, :net.nx] @ t
    weights[-1], biases[-1] = t_inv @ weights[-1], t_inv @ biases[-1]
    return CompactNetwork(weights, biases, net.relu_masks, net.nx, net.nu, True, dict(net.metadata))


def load_network(path: str | Path, nx: int = NX, nu: int = NU, field: str = "model.file") -> CompactNetwork:
    """Read a saved :class:`CompactNetwork` and check it fits the env (``nx`` states, ``nu`` actions).

    Raises:
        ControlkitError: naming ``field`` if the file is missing, unreadable or of other dimensions.
    """
    try:
        net = CompactNetwork.load(path)
    except ControlkitError as exc:
        raise ControlkitError(f"{field}: {exc}") from None
    if (net.nx, net.nu) != (nx, nu):
        raise ControlkitError(f"{field}: {str(path)!r} maps {net.nx} states and {net.nu} actions; this env's "
                              f"planning state needs {nx} states and {nu} actions.")
    return net


@dataclasses.dataclass
class Task:
    """How an env's situation becomes the planning problem ``(x, goal)`` shared by every planner."""

    env: Any  # the unwrapped PushEnv or SortEnv
    cost: CostConfig
    # Sort: which box to push next and where to (its region or a staging waypoint); one per task, kept per episode.
    sequencer: SortSequencer | None = dataclasses.field(default=None, repr=False)

    def __post_init__(self) -> None:
        self._move: np.ndarray | None = None  # Sort: this step's transit move of the pusher (see applied())
        self.pushed = 0  # the object this step's state is about (set by state_goal)
        if self.sort and self.sequencer is None:
            self.sequencer = SortSequencer(self.env.shape, self.env.regions)

    @property
    def sort(self) -> bool:
        return hasattr(self.env, "regions")

    def reset(self) -> None:
        """Start a new episode (Sort: forget the current leg)."""
        self._move = None
        if self.sequencer is not None:
            self.sequencer.reset()

    def applied(self, action: np.ndarray) -> np.ndarray:
        """The action to apply this step: the planner's, except on Sort while the pusher moves freely to the box.

        Those transit moves touch no box (the route keeps clear of all of them), so they need no dynamics model;
        the learned one, which has only seen the pusher near the object, predicts the object moving when the
        pusher is far away, and planners misled by that stall or drive the pusher into a corner. So the task
        moves the pusher along its route for every planner alike and the planners plan every push. (They are
        still asked on transit steps, with the transit as their goal, so their step times cover every step.)
        """
        return action if self._move is None else self._move.astype(np.float32)

    @property
    def in_transit(self) -> bool:
        """Whether this step's action is the task's transit move rather than the planner's (Sort only)."""
        return self._move is not None

    def state_goal(self) -> tuple[np.ndarray, np.ndarray]:
        """World-frame state of the pushed object and the pusher, and the goal with the pre-push point.

        Sort: the sequencer picks the box and the point to push it towards (call once per step).
        """
        full = self.env.state()
        k, via = 0, None
        if self.sort:
            k, aim, via = self.sequencer.subgoal(self.env.table.object_poses(), full[-2:])
        x = np.concatenate([full[4 * k:4 * k + 4], full[-2:]])
        self._move, self.pushed = None, k
        if via is not None:
            # Sort, pusher on its way to the box: a sub-goal of its own (go to the route point, leave the box where
            # it is), and the move itself is the task's (see applied()): straight at the route point, scaled (not
            # clipped) into the action box so that it stays on the clear route.
            d = via - full[-2:]
            self._move = d * min(1.0, self.env.step_size / max(float(np.abs(d).max()), 1e-12))
            return x, np.concatenate([x[:4], via])
        if self.sort:
            target = np.array([*aim, 1.0, 0.0])
        else:
            g = self.env.goal
            target = np.array([g[0], g[1], np.cos(g[2]), np.sin(g[2])])
        box = self.keep_out()
        if box is not None and self.cost.keep_out_route is not None:
            target[:2] = next_waypoint(x[:2], target[:2], box.low, box.high, self.cost.keep_out_route)
        # The pre-push point touches the object on the side away from the target, so the pusher's pull is zero
        # exactly while it pushes the object straight at the target.
        return x, np.concatenate([target, pre_push_point(x, target, self.env.shape)])

    def keep_out(self) -> KeepOut | None:
        """The keep-out box every planner avoids: the env's keep-out box or else its obstacle, grown by
        ``cost.keep_out_margin`` on every side (the box bounds the object's centre, so for an obstacle the margin
        must cover the object's half-size too)."""
        box = getattr(self.env, "keep_out", None)
        if box is None:
            box = getattr(self.env, "obstacle", None)
        if box is None:
            return None
        m = self.cost.keep_out_margin
        return KeepOut((0, 1), tuple(np.asarray(box[:2]) - m), tuple(np.asarray(box[2:]) + m),
                       self.cost.keep_out_penalty)

    def keep_out_boxes(self) -> list[KeepOut]:
        """Every box the planners avoid: :meth:`keep_out` for the object's centre and, with an obstacle, the
        obstacle grown by the pusher's radius (plus ``PUSHER_CLEARANCE``) for the pusher, at the same price.

        The learned model has never met the obstacle: a plan that drives the pusher through it predicts a motion
        the real pusher, stopped at the obstacle's face, never makes, and the next plan repeats it (a pusher stuck
        against the obstacle for the rest of the episode).
        """
        box = self.keep_out()
        obstacle = getattr(self.env, "obstacle", None)
        if box is None:
            return []
        if obstacle is None or getattr(self.env, "keep_out", None) is not None:
            return [box]
        r = PUSHER_RADIUS + PUSHER_CLEARANCE
        pusher = KeepOut((4, 5), tuple(np.asarray(obstacle[:2]) - r), tuple(np.asarray(obstacle[2:]) + r),
                         self.cost.keep_out_penalty)
        return [box, pusher]

    def weights(self) -> np.ndarray:
        c = self.cost
        return np.array([c.position_weight] * 2 + [c.orientation_weight] * 2 + [c.pusher_weight] * 2)

    def position_error(self, info: dict[str, Any]) -> float:
        return float(info["distance"] if self.sort else info["position_error"])


def make_planner(name: str, spec: PlannerSpec, net: CompactNetwork, task: Task, seed: int) -> Controller:
    """Build planner ``spec`` on ``net`` with the task's horizon, bounds, cost and keep-out constraint."""
    step = task.env.step_size
    # Finite state bounds keep interval bounds (and so MILP big-Ms) tight; the table bounds every position. The
    # learned model's cos/sin drift a little past +-1, so bounding them at 1 would make its own rollouts (and so
    # every MIP start) infeasible: they get slack. The pusher keeps the table edge (the env stops it there): a plan
    # that drives it further is not realisable. (Loosening it to 0.35 m for every planner leaves MIP-MPC's push
    # results unchanged and takes MPPI from 10 / 12 to 11 / 12; docs/pushing.md.)
    x_high = np.array([TABLE_HALF + 0.05] * 2 + [1.5, 1.5] + [TABLE_HALF] * 2)
    boxes = task.keep_out_boxes()
    kwargs = spec.kwargs()
    if spec.type == "greedy":
        return GreedyPusher(task.env.shape, step, **kwargs)
    cls = planner_class(spec.type)
    takes = planner_params(cls)
    if "seed" in takes:  # a user's deterministic planner need not take one
        kwargs.setdefault("seed", seed)
    if spec.type in TASK_PLANNERS:
        kwargs["shape"] = task.env.shape  # for the greedy candidate start
    if spec.type == "sim_mppi":
        from controlkit.tasks.pushing.greedy import SimDynamics

        kwargs["sim"] = SimDynamics(task.env.shape, task.env.friction, getattr(task.env, "obstacle", None))
    # The shifted warm start's new tail step: MIP-MPC needs the safe action (a repeated push can leave the state
    # box: an infeasible MIP start); the samplers keep the repeated last action, which served MPPI better.
    if "warm_tail" in takes:
        kwargs.setdefault("warm_tail", "safe" if spec.type in TASK_PLANNERS else "repeat")
    try:
        return cls(
            net, task.cost.horizon, [-step] * NU, [step] * NU, -x_high, x_high, state_weights=task.weights(),
            terminal_weight=task.cost.terminal_weight, keep_out=boxes, **kwargs)
    except TypeError as exc:
        raise ControlkitError(f"planners.{name}: {exc}") from None
    except ControlkitError as exc:  # the planner names its argument; the config path is planners.<name>.<arg>
        raise ControlkitError(f"planners.{name}.{exc}") from None




@dataclasses.dataclass
class EpisodeResult:
    """One closed-loop episode of one planner."""

    seed: int
    success: bool
    final_distance: float
    distances: list[float]  # task distance before the first step and after each step
    states: np.ndarray  # (steps + 1, 4 n_objects + 2) world-frame env states
    step_times: list[float]
    fallbacks: int
    violations: int  # steps with the real object inside the env's keep-out box
    planned_violations: int  # steps whose applied plan breaks the planners' constraints on the model itself
    prediction_errors: list[float]  # per applied plan: distance (m) of the real object from its predicted x_1
    statuses: dict[str, int]
    frames: list[np.ndarray]
    goal: np.ndarray  # Push: the goal pose (x, y, θ); Sort: empty
    obstacle_contacts: int = 0  # steps ending with the object touching the env's obstacle
    time_limited_steps: int = 0  # applied plans that a wall-clock limit could have cut short (machine-dependent)
    improved_steps: int = 0  # applied plans cheaper on the model than the best candidate start (what the MILP added)

    @property
    def final_orientation_error(self) -> float | None:
        """Push: the object's final heading error (rad, in [0, pi]) to the goal pose; Sort: ``None``."""
        if self.goal.size < 3:
            return None
        heading = np.arctan2(self.states[-1, 3], self.states[-1, 2])
        return float(abs(wrap_angle(heading - self.goal[2])))


def run_episode(env: gym.Env, task: Task, planner: Controller, seed: int, render: bool = False) -> EpisodeResult:
    """Reset ``env`` and ``planner`` with ``seed`` and run until the episode ends."""
    _, info = env.reset(seed=seed)
    goal_pose = np.asarray(info.get("goal", []), dtype=np.float64)
    task.reset()
    planner.reset(seed=seed)
    base = env.unwrapped
    distances, states, times, frames = [task.position_error(info)], [base.state()], [], []
    fallbacks, planned, errors, statuses = 0, 0, [], {}
    limited = improved = 0
    if render:
        frames.append(env.render())
    done = False
    while not done:
        x, goal = task.state_goal()
        k = task.pushed
        planner.set_goal(goal)
        action = task.applied(planner.act(x))
        facts = planner.last_step
        times.append(facts.compute_time_s)
        fallbacks += facts.used_fallback
        applied = not (facts.used_fallback or task.in_transit)
        plan = getattr(planner, "last_plan", None) if applied else None  # the plan whose first action was applied
        planned += bool(plan is not None and plan.extras.get("violation", 0.0) > 1e-6)
        if plan is not None:
            limited += bool(plan.extras.get("time_limited", False))
            improved += _beat_starts(plan)
        statuses[facts.status.value] = statuses.get(facts.status.value, 0) + 1
        _, _, terminated, truncated, info = env.step(np.asarray(action, dtype=np.float32))
        distances.append(task.position_error(info))
        states.append(base.state())
        if plan is not None:
            # a one-box model predicts the pushed box in its first two coordinates, a model of the whole state
            # (the graph model) at the box's own place
            j = 4 * k if plan.states.shape[1] == len(states[-1]) else 0
            errors.append(float(np.linalg.norm(states[-1][4 * k:4 * k + 2] - plan.states[1, j:j + 2])))
        if render:
            frames.append(env.render())
        done = terminated or truncated
    return EpisodeResult(seed, bool(info["success"]), distances[-1], distances, np.array(states), times, fallbacks,
                         int(info.get("keep_out_violations", 0)), planned, errors, statuses, frames, goal_pose,
                         int(info.get("obstacle_contacts", 0)), limited, improved)


def _beat_starts(plan) -> bool:
    """Whether a candidate-start planner's plan costs less on the model than its best candidate start."""
    scores = plan.extras.get("start_scores")
    if not scores or not np.isfinite(plan.objective):
        return False
    best = min(scores.values())
    return bool(plan.objective < best - 1e-7 * (1.0 + abs(best)))


def summarise(episodes: list[EpisodeResult]) -> dict[str, Any]:
    """Per-planner statistics over its episodes (the ``controllers.<name>`` block of summary.json)."""
    final = [e.final_distance for e in episodes]
    times = np.concatenate([e.step_times for e in episodes])
    mean, ci = mean_ci95(final)
    statuses: dict[str, int] = {}
    for e in episodes:
        for k, v in e.statuses.items():
            statuses[k] = statuses.get(k, 0) + v
    wins = sum(e.success for e in episodes)
    return {
        "episodes": len(episodes),
        "success_rate": float(np.mean([e.success for e in episodes])),
        "success_ci95": list(proportion_ci95(wins, len(episodes))),  # Wilson interval of the success rate
        "final_distance_mean": mean,
        "final_distance_ci95": ci,
        "final_distance_median": float(np.median(final)),
        **_heading_errors(episodes),
        "steps_mean": float(np.mean([len(e.step_times) for e in episodes])),
        "step_time_median_s": float(np.median(times)),
        "step_time_p95_s": float(np.percentile(times, 95)),
        "fallbacks": int(sum(e.fallbacks for e in episodes)),
        "violations": int(sum(e.violations for e in episodes)),
        "episodes_with_violations": int(sum(e.violations > 0 for e in episodes)),
        "planned_violations": int(sum(e.planned_violations for e in episodes)),
        "obstacle_contacts": int(sum(e.obstacle_contacts for e in episodes)),
        # a wall-clock limit (time_limit, polish_time, search_time, ...) could have cut these plans short: the
        # same seeds can give other numbers on another machine or load; 0 = a deterministic (work-limited) run
        "time_limited_steps": int(sum(e.time_limited_steps for e in episodes)),
        "improved_steps": int(sum(e.improved_steps for e in episodes)),
        **_error_quantiles([x for e in episodes for x in e.prediction_errors]),
        "statuses": statuses,
    }


def _heading_errors(episodes: list[EpisodeResult]) -> dict[str, float | None]:
    """Push: mean and median final heading error (rad) over the episodes (``None`` on Sort, which has no pose goal)."""
    errors = [e.final_orientation_error for e in episodes]
    if any(x is None for x in errors):
        return {"final_orientation_error_mean": None, "final_orientation_error_median": None}
    return {"final_orientation_error_mean": float(np.mean(errors)),
            "final_orientation_error_median": float(np.median(errors))}


def _error_quantiles(errors: list[float]) -> dict[str, float | None]:
    """The learned model's one-step error on the object position along the planners' own closed loop."""
    if not errors:  # model-free planners have no prediction
        return {"prediction_error_median": None, "prediction_error_p90": None}
    return {"prediction_error_median": float(np.median(errors)), "prediction_error_p90": float(np.quantile(errors, 0.9))}

"""Experiment kind ``model_based_control``: learn sparse pushing dynamics, then compare planners in closed loop.

The pipeline reads top to bottom:

1. **Collect** transitions on ``controlkit/Push-v0`` (the same object, friction and step size as the evaluated
   env) with an exploring pusher that mostly heads for the object, so that contacts are common.
2. **Train** a dense ReLU model of the world-frame state ``[x, y, cos θ, sin θ, pusher x, pusher y]``
   (:mod:`controlkit.models.dynamics`). With ``model.frame: pusher`` it learns in pusher-relative coordinates
   (object position minus pusher position), as the paper's models do; that change of coordinates is linear, so
   it is folded into the first and last layer afterwards and every planner sees a world-frame network.
3. **Sparsify** it (:mod:`controlkit.models.sparsify`) and export the selected
   :class:`~controlkit.models.network.CompactNetwork` (saved as ``model.npz`` in the run folder).
4. **Evaluate** every planner in ``planners`` in closed loop on the real env: same network, horizon, cost and
   constraints for all, identical seeded initial states. The cost is the L1 objective of
   :mod:`controlkit.planning.mip_mpc` on the object position (and orientation, if weighted) plus a small pull of the pusher
   towards the pre-push point behind the object, which every planner shares. On ``controlkit/Sort-v0`` the
   same one-object model pushes one box at a time: a task layer (:mod:`controlkit.tasks.pushing.sort_task`) picks the box
   and the point to push it towards, and moves the pusher round the other boxes to it (compositional sorting).

``summary.json`` has ``controllers.<name>`` with ``success_rate``, ``final_distance_mean``,
``final_distance_ci95``, ``step_time_median_s``, ``step_time_p95_s``, ``fallbacks``, ``violations`` and more;
plots are ``trajectories.png``, ``distance.png``, ``step_times.png`` and ``frames.png``.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any, Literal

import gymnasium as gym
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, PositiveInt, field_validator, model_validator

from controlkit.tasks.pushing.routing import next_waypoint
from controlkit.tasks.pushing.starts import PipelineMIP
from controlkit.tasks.pushing.greedy import GreedyPusher, PushThroughExplorer, pre_push_point
from controlkit.tasks.pushing.sort_task import SortSequencer
from controlkit.runner.config import EnvId, ExperimentConfig, check_env_kwargs
from controlkit.core.controller import Controller, StepInfo
from controlkit.envs.tabletop import TABLE_HALF
from controlkit.core.errors import ControlkitError
from controlkit.runner.registry import ExperimentKind
from controlkit.planning import CEMPlanner, GradientPlanner, KeepOut, MPPIPlanner, RandomShootingPlanner
from controlkit.models.network import CompactNetwork
from controlkit.runner.run import RunContext
from controlkit.core.stats import mean_ci95

PLANNER_TYPES = ("mip_mpc", "mppi", "cem", "gradient", "random", "greedy", "sim_mppi")
TASK_ENVS = ("controlkit/Push-v0", "controlkit/Sort-v0")
NX, NU = 6, 2  # [x, y, cos θ, sin θ, pusher x, pusher y], [dx, dy]


class DataConfig(BaseModel):
    """Transitions collected on Push-v0 for learning the dynamics."""

    model_config = ConfigDict(extra="forbid")

    trajectories: PositiveInt = Field(300, description="Episodes of exploration.")
    steps: PositiveInt = Field(30, description="Transitions per episode.")
    behaviour: Literal["aim", "push"] = Field(
        "aim", description="aim: head for a point near the object with probability `aim`, plus noise; push: the "
        "greedy pusher pushing the object through it towards random targets, plus noise (contact-rich).")
    aim: float = Field(0.7, ge=0, le=1, description="behaviour aim: probability that a step heads for the object.")
    noise: float = Field(0.4, ge=0, description="behaviour push: noise innovation std in units of step_size.")
    val_fraction: float = Field(0.15, gt=0, lt=1, description="Trajectories held out for early stopping.")


class ModelConfig(BaseModel):
    """The dynamics network."""

    model_config = ConfigDict(extra="forbid")

    hidden: list[PositiveInt] = Field([64, 64], min_length=1, description="Hidden layer sizes of the dense model.")
    frame: Literal["pusher", "world"] = Field("pusher", description="Coordinates the model learns in.")
    file: str | None = Field(None, description="Load this model.npz (from an earlier run) instead of learning one.")


class CostConfig(BaseModel):
    """The receding-horizon problem every planner solves."""

    model_config = ConfigDict(extra="forbid")

    horizon: PositiveInt = Field(10, description="Planned steps H (the same for every planner).")
    position_weight: float = Field(1.0, gt=0, description="L1 weight of the object position error (per metre).")
    orientation_weight: float = Field(0.0, ge=0, description="L1 weight of the cos θ / sin θ errors (0 = position only).")
    pusher_weight: float = Field(0.2, ge=0, description="L1 weight pulling the pusher to the pre-push point.")
    terminal_weight: float = Field(1.0, ge=0, description="Extra factor on the last step's cost.")
    keep_out_margin: float = Field(0.0, ge=0, description="The planners' keep-out box is the env's grown by this "
                                   "much (m) on every side: room for the learned model's prediction error.")
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

    type: str = Field(description=f"One of {', '.join(PLANNER_TYPES)}.")

    @field_validator("type")
    @classmethod
    def _known(cls, v: str) -> str:
        if v not in PLANNER_TYPES:
            raise ValueError(f"unknown planner type; valid choices: {', '.join(PLANNER_TYPES)}")
        return v

    def kwargs(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


def _default_planners() -> dict[str, PlannerSpec]:
    return {
        "mip_mpc": PlannerSpec(type="mip_mpc", time_limit=0.2, mip_gap=1e-3),
        "mppi": PlannerSpec(type="mppi", n_samples=500, iterations=5, temperature=0.003),
        "cem": PlannerSpec(type="cem", n_samples=250, iterations=5),
        "gradient": PlannerSpec(type="gradient", iterations=50, lr=0.005, n_restarts=8),
        "random": PlannerSpec(type="random", n_samples=2500),
    }


class ModelBasedControlConfig(ExperimentConfig):
    """Collect → train → sparsify → closed-loop comparison of planners on the learned sparse model."""

    kind: str = "model_based_control"
    env: EnvId = Field("controlkit/Push-v0", description="The evaluated env: controlkit/Push-v0 or controlkit/Sort-v0.")
    env_kwargs: dict[str, Any] = Field(default_factory=dict, description="Keyword arguments of the evaluated env.")
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: dict[str, Any] = Field(default_factory=dict, description="controlkit.models.dynamics.TrainSettings fields.")
    sparsify: dict[str, Any] = Field(default_factory=dict, description="controlkit.models.sparsify.SparsifySettings fields.")
    cost: CostConfig = Field(default_factory=CostConfig)
    planners: dict[str, PlannerSpec] = Field(default_factory=_default_planners, min_length=1)
    episodes: PositiveInt = Field(10, description="Closed-loop episodes per planner (same seeded starts for all).")
    max_steps: PositiveInt = Field(40, description="Steps per episode.")
    frames: bool = Field(True, description="Render a frame strip of episode 0 per planner (needs MUJOCO_GL=egl).")

    @field_validator("env")
    @classmethod
    def _task_env(cls, v: str) -> str:
        if v not in TASK_ENVS:
            raise ValueError(f"model_based_control runs on {', '.join(TASK_ENVS)}")
        return v

    @model_validator(mode="after")
    def _check(self) -> ModelBasedControlConfig:
        check_env_kwargs(self.env, self.env_kwargs)
        for key in ("goal_in_obs", "frame", "render_mode"):
            if key in self.env_kwargs:
                raise ValueError(f"env_kwargs.{key} is set by the pipeline (it reads the env's world-frame state)")
        if self.env_kwargs.get("keep_out") is None:
            for key in ("keep_out_penalty", "keep_out_route"):
                if getattr(self.cost, key) is not None:
                    raise ValueError(f"cost.{key} needs a keep-out box (env_kwargs.keep_out)")
        from controlkit.models.dynamics import TrainSettings
        from controlkit.models.sparsify import SparsifySettings

        for name, spec in self.planners.items():
            if spec.type == "sim_mppi" and self.env != "controlkit/Push-v0":
                raise ValueError(f"planners.{name}: sim_mppi simulates one object; it runs on Push-v0 only")
            allowed = _planner_params(MPPIPlanner if spec.type == "sim_mppi" else _PLANNER_CLASSES[spec.type])
            unknown = sorted(set(spec.kwargs()) - allowed)
            if unknown:
                raise ValueError(f"planners.{name}: {spec.type} takes no {', '.join(unknown)}; valid: "
                                 f"{', '.join(sorted(allowed))}")
        TrainSettings(**self.train)
        SparsifySettings(**self.sparsify).check_network(self.model.hidden, field="sparsify.schedule")
        return self


# ---- data ----------------------------------------------------------------------------------------------------
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


def _push_kwargs(env_kwargs: dict[str, Any]) -> dict[str, Any]:
    """Push-v0 arguments for data collection: the evaluated env's object, friction and step size."""
    shared = {k: env_kwargs[k] for k in ("shape", "friction", "step_size") if k in env_kwargs}
    return {**shared, "goal_in_obs": False, "terminate_on_success": False}


# ---- model ---------------------------------------------------------------------------------------------------
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


def learn_model(config: ModelBasedControlConfig, ctx: RunContext) -> tuple[CompactNetwork, dict[str, Any]]:
    """Collect, train, sparsify and export (or load ``model.file``); returns the world-frame network and facts."""
    if config.model.file is not None:
        net = load_network(config.model.file)
        return net, {"file": config.model.file, "n_relu": net.n_relu, "n_identity": net.n_identity,
                     "hidden": net.hidden_sizes}
    import torch

    from controlkit.models.data import TransitionData, collect
    from controlkit.models.dynamics import TrainSettings, train_dense
    from controlkit.models.sparsify import SparsifySettings, export_compact, sparsify

    torch.set_num_threads(1)  # the same model whether learn_model runs alone or inside run()
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    push_kwargs = _push_kwargs(config.env_kwargs)
    step = float(config.env_kwargs.get("step_size", 0.03))
    if config.data.behaviour == "push":
        explorer: Controller = PushThroughExplorer(push_kwargs.get("shape", "box"), step, config.data.noise)
    else:
        explorer = PushExplorer(step, config.data.aim)
    data = collect("controlkit/Push-v0", config.data.trajectories, config.data.steps, ctx.seed,
                   behaviour=explorer, env_kwargs=push_kwargs, progress=ctx.progress)
    timings["collect_s"] = time.perf_counter() - t0
    t = frame_matrix() if config.model.frame == "pusher" else np.eye(NX)
    data = TransitionData(data.states @ t.T, data.actions, data.lengths, data.metadata)
    train, val = data.split(config.data.val_fraction, ctx.seed)
    settings, sp = TrainSettings(**config.train), SparsifySettings(**config.sparsify)
    ctx.log(f"collected {data.n_transitions} transitions; training a dense {config.model.hidden} model")
    t0 = time.perf_counter()
    model, fit = train_dense(train, val, config.model.hidden, settings, ctx.seed, progress=ctx.progress)
    timings["train_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    result = sparsify(model, train, val, sp, settings, ctx.seed,
                      on_round=lambda r: ctx.log(f"sparsify round {r.round}: {r.n_relu} ReLU, {r.n_identity} "
                                                 f"identity, val rollout MSE {r.val_rollout:.3g}"),
                      progress=ctx.progress)
    timings["sparsify_s"] = time.perf_counter() - t0
    meta = {"env": "controlkit/Push-v0", "env_kwargs": push_kwargs, "frame": config.model.frame, "seed": ctx.seed}
    # The dense model and every round too: closed-loop runs on them (model.file=) separate what sparsification
    # costs from what learning costs, and show success against the ReLU budget.
    points = [("model_dense.npz", result.dense)] + [(f"model_relu{r.n_relu}.npz", r) for r in result.rounds[1:]]
    for name, point in [*points, ("model.npz", result.best)]:
        model.load_state_dict(point.state)
        net = fold_frame(export_compact(model, point.modes, {**meta, "val_rollout": point.val_rollout}), t)
        net.save(ctx.path(name))
    best = result.best
    facts = {
        "file": str(ctx.path("model.npz")), "dense_file": str(ctx.path("model_dense.npz")),
        "hidden": config.model.hidden, "frame": config.model.frame,
        "transitions": data.n_transitions, "dense_epochs": fit.epochs,
        "n_relu": net.n_relu, "n_identity": net.n_identity, "n_removed": best.n_removed,
        "val_rollout_dense": result.dense.val_rollout, "val_rollout_sparse": best.val_rollout,
        "sparsity_target_met": result.target_met, "rounds": [r.row() for r in result.rounds],
        "timings": timings,
    }
    return net, facts


# ---- task: state, goal and constraints seen by the planners ---------------------------------------------------
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
        """The keep-out box every planner avoids: the env's, grown by ``cost.keep_out_margin`` on every side."""
        box = getattr(self.env, "keep_out", None)
        if box is None:
            return None
        m = self.cost.keep_out_margin
        return KeepOut((0, 1), tuple(np.asarray(box[:2]) - m), tuple(np.asarray(box[2:]) + m),
                       self.cost.keep_out_penalty)

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
    box = task.keep_out()
    boxes = [] if box is None else [box]
    kwargs = spec.kwargs()
    if spec.type == "greedy":
        return GreedyPusher(task.env.shape, step, **kwargs)
    kwargs.setdefault("seed", seed)
    if spec.type == "mip_mpc":
        kwargs["shape"] = task.env.shape  # for the greedy candidate start
    if spec.type == "sim_mppi":
        from controlkit.tasks.pushing.greedy import SimDynamics

        kwargs["sim"] = SimDynamics(task.env.shape, task.env.friction)
    # The shifted warm start's new tail step: MIP-MPC needs the safe action (a repeated push can leave the state
    # box: an infeasible MIP start); the samplers keep the repeated last action, which served MPPI better.
    kwargs.setdefault("warm_tail", "safe" if spec.type == "mip_mpc" else "repeat")
    try:
        return _PLANNER_CLASSES[spec.type](
            net, task.cost.horizon, [-step] * NU, [step] * NU, -x_high, x_high, state_weights=task.weights(),
            terminal_weight=task.cost.terminal_weight, keep_out=boxes, **kwargs)
    except TypeError as exc:
        raise ControlkitError(f"planners.{name}: {exc}") from None
    except ControlkitError as exc:  # the planner names its argument; the config path is planners.<name>.<arg>
        raise ControlkitError(f"planners.{name}.{exc}") from None


def _planner_params(cls: type) -> set[str]:
    """Keyword arguments a planner class takes (its own and its bases'), minus those the pipeline sets."""
    import inspect

    names: set[str] = set()
    for c in cls.__mro__:
        if "__init__" in vars(c):
            names |= {n for n, p in inspect.signature(c.__init__).parameters.items()
                      if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    return names - _PIPELINE_SET


def _sim_mppi(*args: Any, **kwargs: Any) -> Controller:
    from controlkit.tasks.pushing.sim_mppi import SimMPPIPlanner  # torch: loaded only when this planner is asked for

    return SimMPPIPlanner(*args, **kwargs)


_PLANNER_CLASSES = {"mip_mpc": PipelineMIP, "mppi": MPPIPlanner, "cem": CEMPlanner, "gradient": GradientPlanner,
                    "random": RandomShootingPlanner, "greedy": GreedyPusher, "sim_mppi": _sim_mppi}
# Set by the pipeline from the env and the cost block, identical for every planner.
_PIPELINE_SET = {"self", "model", "horizon", "u_low", "u_high", "x_low", "x_high", "residual", "state_weights",
                 "control_weight", "terminal_weight", "keep_out", "goal", "state_fn", "nx", "nu", "state_constraints",
                 "shape", "step_size", "sim"}


# ---- closed loop ---------------------------------------------------------------------------------------------
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


def run_episode(env: gym.Env, task: Task, planner: Controller, seed: int, render: bool = False) -> EpisodeResult:
    """Reset ``env`` and ``planner`` with ``seed`` and run until the episode ends."""
    _, info = env.reset(seed=seed)
    goal_pose = np.asarray(info.get("goal", []), dtype=np.float64)
    task.reset()
    planner.reset(seed=seed)
    base = env.unwrapped
    distances, states, times, frames = [task.position_error(info)], [base.state()], [], []
    fallbacks, planned, errors, statuses = 0, 0, [], {}
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
        statuses[facts.status.value] = statuses.get(facts.status.value, 0) + 1
        _, _, terminated, truncated, info = env.step(np.asarray(action, dtype=np.float32))
        distances.append(task.position_error(info))
        states.append(base.state())
        if plan is not None:
            errors.append(float(np.linalg.norm(states[-1][4 * k:4 * k + 2] - plan.states[1, :2])))
        if render:
            frames.append(env.render())
        done = terminated or truncated
    return EpisodeResult(seed, bool(info["success"]), distances[-1], distances, np.array(states), times, fallbacks,
                         int(info.get("keep_out_violations", 0)), planned, errors, statuses, frames, goal_pose)


def summarise(episodes: list[EpisodeResult]) -> dict[str, Any]:
    """Per-planner statistics over its episodes (the ``controllers.<name>`` block of summary.json)."""
    final = [e.final_distance for e in episodes]
    times = np.concatenate([e.step_times for e in episodes])
    mean, ci = mean_ci95(final)
    statuses: dict[str, int] = {}
    for e in episodes:
        for k, v in e.statuses.items():
            statuses[k] = statuses.get(k, 0) + v
    return {
        "episodes": len(episodes),
        "success_rate": float(np.mean([e.success for e in episodes])),
        "final_distance_mean": mean,
        "final_distance_ci95": ci,
        "final_distance_median": float(np.median(final)),
        "steps_mean": float(np.mean([len(e.step_times) for e in episodes])),
        "step_time_median_s": float(np.median(times)),
        "step_time_p95_s": float(np.percentile(times, 95)),
        "fallbacks": int(sum(e.fallbacks for e in episodes)),
        "violations": int(sum(e.violations for e in episodes)),
        "episodes_with_violations": int(sum(e.violations > 0 for e in episodes)),
        "planned_violations": int(sum(e.planned_violations for e in episodes)),
        **_error_quantiles([x for e in episodes for x in e.prediction_errors]),
        "statuses": statuses,
    }


def _error_quantiles(errors: list[float]) -> dict[str, float | None]:
    """The learned model's one-step error on the object position along the planners' own closed loop."""
    if not errors:  # model-free planners have no prediction
        return {"prediction_error_median": None, "prediction_error_p90": None}
    return {"prediction_error_median": float(np.median(errors)), "prediction_error_p90": float(np.quantile(errors, 0.9))}


def _targets(controllers: dict[str, dict[str, Any]], specs: dict[str, PlannerSpec]) -> dict[str, Any]:
    """The issue's targets, checked on this run for every MIP-MPC row against the first MPPI and CEM rows."""
    first: dict[str, str] = {}
    for name, spec in specs.items():
        first.setdefault(spec.type, name)
    sampling = [controllers[first[k]] for k in ("mppi", "cem") if k in first]
    out: dict[str, Any] = {}
    for name, spec in specs.items():
        if spec.type != "mip_mpc":
            continue
        mip = controllers[name]
        row: dict[str, Any] = {"mip_success_ge_90pct": mip["success_rate"] >= 0.9,
                               "median_step_le_100ms": mip["step_time_median_s"] <= 0.1}
        for kind in ("mppi", "cem"):
            if kind in first:
                other = controllers[first[kind]]["final_distance_mean"]
                row[f"mip_distance_over_{kind}"] = mip["final_distance_mean"] / other if other > 0 else float("nan")
        if sampling and max(c["violations"] for c in sampling) > 0:
            row["mip_zero_violations_where_sampling_has_some"] = mip["violations"] == 0
        out[name] = row
    return out


def run(config: ModelBasedControlConfig, ctx: RunContext) -> dict[str, Any]:
    import torch

    torch.set_num_threads(1)  # the planners' small networks: a second thread only contends (also with model.file)
    net, model_facts = learn_model(config, ctx)
    ctx.log(f"model: {net.n_relu} ReLU and {net.n_identity} identity neurons, hidden sizes {net.hidden_sizes}")
    env = gym.make(config.env, max_episode_steps=config.max_steps, goal_in_obs=False,
                   render_mode="rgb_array" if config.frames else None, width=160, height=160, **config.env_kwargs)
    task = Task(env.unwrapped, config.cost)
    seeds = [ctx.seed + 10_000 + i for i in range(config.episodes)]
    results: dict[str, list[EpisodeResult]] = {}
    eval_s: dict[str, float] = {}
    try:
        for name, spec in config.planners.items():
            planner = make_planner(name, spec, net, task, seed=ctx.seed)
            t0 = time.perf_counter()
            results[name] = []
            for i, seed in enumerate(ctx.progress(seeds, desc=name)):
                ep = run_episode(env, task, planner, seed, render=config.frames and i == 0)
                results[name].append(ep)
                ctx.metric(planner=name, episode=i, seed=seed, success=ep.success, final_distance=ep.final_distance,
                           steps=len(ep.step_times), fallbacks=ep.fallbacks, violations=ep.violations,
                           time_step_median_s=float(np.median(ep.step_times)))
            eval_s[name] = time.perf_counter() - t0
            s = summarise(results[name])
            ctx.log(f"{name}: success {s['success_rate']:.0%}, final distance {s['final_distance_mean']:.4f} "
                    f"± {s['final_distance_ci95']:.4f}, median step {1e3 * s['step_time_median_s']:.1f} ms")
    finally:
        env.close()
    controllers = {name: summarise(eps) for name, eps in results.items()}
    plots = plot_all(ctx, task, results)
    timings = {**model_facts.pop("timings", {}), "evaluate_s": eval_s}
    return {
        "env": config.env,
        "env_kwargs": config.env_kwargs,
        "episodes": config.episodes,
        "max_steps": config.max_steps,
        "horizon": config.cost.horizon,
        "seeds": seeds,
        "model": model_facts,
        "controllers": controllers,
        "targets": _targets(controllers, config.planners),
        "plots": [str(p) for p in plots],
        "timings": timings,
    }


# ---- plots ---------------------------------------------------------------------------------------------------
def plot_all(ctx: RunContext, task: Task, results: dict[str, list[EpisodeResult]]) -> list[Path]:
    """Trajectories over the goal, distance vs step with 95 % bands, step-time histogram, frame strip."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    from controlkit.envs.tabletop import COLOURS, TABLE_HALF

    names = list(results)
    paths = []
    fig, axes = plt.subplots(1, len(names), figsize=(3.2 * len(names), 3.3), squeeze=False)
    for ax, name in zip(axes[0], names):
        for rect, colour in _rects(task):
            ax.add_patch(Rectangle(rect[:2], rect[2] - rect[0], rect[3] - rect[1], color=colour, alpha=0.25))
        for ep in results[name]:
            s = ep.states
            for i in range((s.shape[1] - 2) // 4):
                c = COLOURS[i % len(COLOURS)]
                ax.plot(s[:, 4 * i], s[:, 4 * i + 1], "-", color=c, lw=1, alpha=0.8)
                ax.plot(*s[0, 4 * i:4 * i + 2], "o", color=c, ms=3)
                ax.plot(*s[-1, 4 * i:4 * i + 2], "s" if ep.success else "x", color=c, ms=4)
            if not task.sort:
                ax.plot(*ep.goal[:2], "*", color="k", ms=6)
        ax.set(xlim=(-TABLE_HALF, TABLE_HALF), ylim=(-TABLE_HALF, TABLE_HALF), aspect="equal", title=name,
               xticks=[], yticks=[])
    fig.suptitle("object paths (o start, square success, x failure, * goal)", fontsize=9)
    paths.append(ctx.savefig(fig, "trajectories.png"))

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for name in names:
        eps = results[name]
        n = max(len(e.distances) for e in eps)
        # An episode that ended early keeps its last distance (the object stays where it was left).
        d = np.array([e.distances + [e.distances[-1]] * (n - len(e.distances)) for e in eps])
        stats = [mean_ci95(d[:, t]) for t in range(n)]
        mean, ci = np.array([m for m, _ in stats]), np.array([c for _, c in stats])
        line, = ax.plot(mean, label=name)
        ax.fill_between(np.arange(n), mean - ci, mean + ci, color=line.get_color(), alpha=0.2)
    ax.set(xlabel="step", ylabel="distance to goal (m)", title="distance to goal, mean and 95% CI")
    ax.legend(fontsize=8)
    paths.append(ctx.savefig(fig, "distance.png"))

    fig, ax = plt.subplots(figsize=(6, 3.5))
    all_t = np.concatenate([np.concatenate([e.step_times for e in results[n]]) for n in names])
    bins = np.geomspace(max(all_t.min(), 1e-4), all_t.max() * 1.01, 40)
    for name in names:
        ax.hist(np.concatenate([e.step_times for e in results[name]]), bins=bins, alpha=0.5, label=name)
    ax.set(xscale="log", xlabel="control step time (s)", ylabel="steps", title="step time per planner")
    ax.legend(fontsize=8)
    paths.append(ctx.savefig(fig, "step_times.png"))

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
        paths.append(ctx.savefig(fig, "frames.png"))
    return paths


def _rects(task: Task) -> list[tuple[np.ndarray, tuple]]:
    from controlkit.envs.tabletop import COLOURS

    if task.sort:
        return [(r, COLOURS[i % len(COLOURS)]) for i, r in enumerate(task.env.regions)]
    keep_out = getattr(task.env, "keep_out", None)
    return [] if keep_out is None else [(keep_out, (0.9, 0.1, 0.1))]


def report(summary: dict[str, Any]) -> str:
    """The table the CLI prints: one row per planner, then where the plots are."""
    m = summary["model"]
    w = max(12, *(len(n) + 1 for n in summary["controllers"]))
    lines = [f"{summary['env']}: {summary['episodes']} episodes per planner, horizon {summary['horizon']}, model "
             f"with {m['n_relu']} ReLU + {m['n_identity']} identity neurons",
             f"{'planner':<{w}}{'success':>9}{'final dist (m)':>22}{'median step':>13}{'p95 step':>11}"
             f"{'fallbacks':>11}{'violations':>12}"]
    for name, c in summary["controllers"].items():
        lines.append(f"{name:<{w}}{c['success_rate']:>9.0%}"
                     f"{c['final_distance_mean']:>13.4f} ± {c['final_distance_ci95']:<6.4f}"
                     f"{1e3 * c['step_time_median_s']:>10.1f} ms{1e3 * c['step_time_p95_s']:>8.1f} ms"
                     f"{c['fallbacks']:>11d}{c['violations']:>12d}")
    if summary["plots"]:
        lines.append("plots: " + ", ".join(summary["plots"]))
    return "\n".join(lines)


KIND = ExperimentKind("model_based_control", ModelBasedControlConfig, run,
                      "learn sparse pushing dynamics, compare MIP-MPC with MPPI/CEM/gradient/random in closed loop",
                      report)

__all__ = ["KIND", "ModelBasedControlConfig", "PushExplorer", "Task", "fold_frame", "learn_model", "load_network",
           "make_planner", "run_episode", "summarise"]

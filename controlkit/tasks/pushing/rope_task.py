"""Shaping the rope on the graph model: the goal over all particles, the task the episode loop runs, the planners.

- :func:`rope_goal`: every particle towards its target point (in the order, or the reverse order, that is nearer:
  the rope has no head or tail, as :func:`controlkit.envs.rope.shape_error`), and the pusher towards the point behind
  the particle that is farthest from its target (a weak guide, weight ``pusher_weight``: with a horizon of a few
  steps a pusher that has drifted away from the rope would otherwise see no cost change at all).
- :class:`RopeTask`: what :func:`controlkit.tasks.pushing.run_episode` asks of a task, on ``controlkit/Rope-v0``.
- :func:`make_rope_planner`: a :class:`~controlkit.planning.graph.GraphPlanner` of any planner type on the
  particle-graph model; ``mip_mpc`` is MIP-MPC from candidate starts
  (:class:`~controlkit.tasks.pushing.starts.PipelineMIP`: the shifted plan, no motion, an MPPI pass) with the
  MILP behind it.
- :func:`check_rope_env`: a graph model file must have been trained on this rope (env, particle count, segment
  length) -- else one :class:`ControlkitError` naming the field.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from controlkit.core.errors import ControlkitError
from controlkit.envs.rope import ROPE_RADIUS
from controlkit.envs.tabletop import PUSHER_RADIUS, TABLE_HALF
from controlkit.models.graph import GraphNetwork, objects_in
from controlkit.tasks.pushing.graph_sort import planner_on_graph
from controlkit.tasks.pushing.rope_data import ENV_ID, as_graph_states
from controlkit.tasks.pushing.starts import PipelineMIP

REACH = TABLE_HALF - PUSHER_RADIUS  # farthest pusher centre coordinate
PARTICLE_LIMIT = TABLE_HALF + 0.05  # particle bound in every plan (5 cm past the table edge, as for boxes)
BEHIND = ROPE_RADIUS + PUSHER_RADIUS + 0.01  # m from a particle's centre to the pusher goal behind it


def rope_weights(n_particles: int, pusher_weight: float = 0.1) -> np.ndarray:
    """State weights of the shaping cost: 1 on every particle position, 0 on the (constant) heading features,
    ``pusher_weight`` on the pusher."""
    return np.array([1.0, 1.0, 0.0, 0.0] * int(n_particles) + [float(pusher_weight)] * 2)


def ordered_target(points: np.ndarray, target: np.ndarray) -> np.ndarray:
    """``target`` ``(n, 2)`` in the order (as given or reversed) whose mean distance to ``points`` is smaller."""
    target = np.asarray(target, dtype=np.float64)
    fwd = np.linalg.norm(points - target, axis=1).mean()
    rev = np.linalg.norm(points - target[::-1], axis=1).mean()
    return target if fwd <= rev else target[::-1].copy()


def rope_goal(x: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The planners' goal ``(4 n + 2,)`` from the graph state ``x`` (:func:`as_graph_states`) and the env's target
    points ``(n, 2)`` (weights: :func:`rope_weights`).

    Raises:
        ControlkitError: ``target`` of another shape than ``(n, 2)`` for a state with ``n`` particles.
    """
    x = np.asarray(x, dtype=np.float64)
    n = objects_in(x, "x", max_objects=None)
    target = np.asarray(target, dtype=np.float64)
    if target.shape != (n, 2):
        raise ControlkitError(f"target: need shape ({n}, 2) for a rope of {n} particles, got {target.shape}.")
    pts = x[: 4 * n].reshape(n, 4)[:, :2]
    tgt = ordered_target(pts, target)
    goal = np.concatenate([np.column_stack([tgt, np.ones(n), np.zeros(n)]).ravel(), x[-2:]])
    gap = tgt - pts
    k = int(np.argmax(np.linalg.norm(gap, axis=1)))
    norm = float(np.linalg.norm(gap[k]))
    if norm > 1e-6:  # behind particle k, as seen from its target
        goal[-2:] = np.clip(pts[k] - BEHIND * gap[k] / norm, -REACH, REACH)
    return goal


class RopeTask:
    """Rope-v0 for planners on the particle-graph model: graph-layout state, :func:`rope_goal`, no task layer.

    Args:
        env: The unwrapped :class:`~controlkit.envs.rope.RopeEnv`.
    """

    in_transit = False
    pushed = 0  # run_episode's prediction error then follows particle 0, at the same place in both layouts

    def __init__(self, env: Any) -> None:
        if not hasattr(env, "n_particles") or not hasattr(env, "target"):
            raise ControlkitError(f"env: the rope task needs {ENV_ID}, got {type(env).__name__}.")
        self.env = env

    def reset(self) -> None:
        """Nothing to forget between episodes (the goal is read from the env at every step)."""

    def state_goal(self) -> tuple[np.ndarray, np.ndarray]:
        """The graph-layout state and this step's goal."""
        x = as_graph_states(self.env.state(), self.env.n_particles)
        return x, rope_goal(x, self.env.target)

    def applied(self, action: np.ndarray) -> np.ndarray:
        return action

    def position_error(self, info: dict[str, Any]) -> float:
        """The shape error (m): mean particle distance to the target."""
        return float(info["distance"])


def check_rope_env(graph: Any, env: Any, field: str = "model.file") -> None:
    """Raise a :class:`ControlkitError` naming ``field`` unless ``graph`` was trained on this rope: Rope-v0, the
    env's ``n_particles`` and ``segment_length`` (the model's message MLP knows one segment length, and its node
    count is that of the data)."""
    if not isinstance(graph, GraphNetwork):
        raise ControlkitError(f"{field}: need a graph model (GraphNetwork), got {type(graph).__name__}.")
    if not hasattr(env, "n_particles"):
        raise ControlkitError(f"env: a rope graph model plans on {ENV_ID}, got {type(env).__name__}.")
    meta = graph.metadata
    if meta.get("env") != ENV_ID:
        raise ControlkitError(f"{field}: the graph model was trained on {meta.get('env')!r}, not {ENV_ID}.")
    if meta.get("n_particles") != env.n_particles:
        raise ControlkitError(f"{field}: the graph model was trained on a rope of {meta.get('n_particles')} "
                              f"particles; the env has env_kwargs.n_particles={env.n_particles}.")
    seg = meta.get("segment_length")
    if seg is not None and abs(float(seg) - env.segment_length) > 1e-9:
        raise ControlkitError(f"{field}: the graph model was trained with segment_length={seg}; the env has "
                              f"env_kwargs.segment_length={env.segment_length}.")


def make_rope_planner(kind: str, graph: Any, env: Any, horizon: int = 5, seed: int = 0, pusher_weight: float = 0.1,
                      terminal_weight: float = 5.0, **knobs: Any):
    """A :class:`~controlkit.planning.graph.GraphPlanner` of type ``kind`` on the rope ``graph`` for the Rope-v0
    ``env``.

    Bounds: particles within ``PARTICLE_LIMIT``, heading features within ±1.5, the pusher on the table; cost
    :func:`rope_weights` with ``terminal_weight`` on the last step. ``mip_mpc`` is
    :class:`~controlkit.tasks.pushing.starts.PipelineMIP` (``knobs`` such as ``time_limit``, ``starts``,
    ``warm_samples``, ``highs_options``); any other registered planner type gets ``knobs`` as its own arguments.

    Raises:
        ControlkitError: unknown ``kind`` or knob, or a graph model that does not match ``env``
            (:func:`check_rope_env`).
    """
    check_rope_env(graph, env)
    n = env.n_particles
    return planner_on_graph(graph, n, kind, env, PARTICLE_LIMIT, rope_weights(n, pusher_weight), horizon,
                            terminal_weight, seed, knobs, PipelineMIP)


__all__ = ["RopeTask", "check_rope_env", "make_rope_planner", "ordered_target", "rope_goal", "rope_weights"]

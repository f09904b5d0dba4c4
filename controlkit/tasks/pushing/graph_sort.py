"""Sorting on the graph model: data for it, and the cost over all boxes that replaces the task layer's box choice.

- :class:`SortExplorer`: the data behaviour on Sort-v0 -- the greedy pusher on a random box towards its region or a
  random nearby point, with AR(1) noise, switching box and target at random; boxes collide with each other.
- :func:`collect_sort_data`: 2-4 boxes, padded into one :class:`~controlkit.models.data.TransitionData` for
  :class:`~controlkit.models.graph.GraphDynamics`.
- :func:`sort_goal`: the planners' goal and weights on Sort-v0: every box towards the centre of its region (boxes
  already sorted are held there), and the pusher towards the pre-push point of the unsorted box that is cheapest
  to reach and sort (its only task knowledge; no legs, no staging waypoints, no transit routing: the graph model
  predicts what the pusher does to the other boxes, and the cost over all boxes prices it).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from controlkit.core.controller import Controller, StepInfo
from controlkit.core.errors import ControlkitError
from controlkit.envs.tabletop import PUSHER_RADIUS, TABLE_HALF, get_shape
from controlkit.models.data import TransitionData, collect
from controlkit.models.graph import check_objects, objects_in, pad_dataset
from controlkit.tasks.pushing.greedy import GreedyPusher, pre_push_point
from controlkit.tasks.pushing.starts import PipelineMIP

REACH = TABLE_HALF - PUSHER_RADIUS  # farthest pusher centre coordinate
# Box centres stay within this in every plan (as in the pushing pipeline: 5 cm past the table edge). A tighter
# bound (0.26, just past the regions) kept plans from pushing boxes to the edge, but a real box beyond it made
# every plan infeasible and the pusher stalled (development run, seed 10000).
BOX_LIMIT = TABLE_HALF + 0.05
BLOCKED_COST = 1.0  # m added to the choice cost of a box whose region holds another box


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

    Seeds: count ``n`` uses ``seed + 100_000 n`` as the root its trajectories' seeds are spawned from.
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


def sort_weights(n_objects: int, pusher_weight: float = 0.3) -> np.ndarray:
    """State weights of the sorting cost: 1 on every box position, 0 on the angles, ``pusher_weight`` on the
    pusher."""
    return np.array([1.0, 1.0, 0.0, 0.0] * check_objects(n_objects) + [pusher_weight] * 2)


def sort_goal(x: np.ndarray, regions: np.ndarray, shape: str = "box",
              sorted_margin: float = 0.025) -> tuple[np.ndarray, int]:
    """The planners' goal on Sort-v0 from the state ``x`` (weights: :func:`sort_weights`).

    Every box's position goal is the centre of its region. The pusher's goal is the pre-push point of the
    unsorted box that minimises pusher travel plus the box's distance to its region, plus ``BLOCKED_COST`` if
    another box's centre lies in its region or within a box radius of it (a box counts as sorted once
    ``sorted_margin`` inside its region); with every box sorted, the pusher's own position.

    Returns:
        ``goal`` ``(4 n + 2,)`` and the index of the box the pusher goal belongs to (-1 if none).
    """
    x = np.asarray(x, dtype=np.float64)
    n = objects_in(x, "x")
    regions = np.asarray(regions, dtype=np.float64)
    if regions.shape != (n, 4):
        raise ControlkitError(f"regions: need shape ({n}, 4) for a state with {n} boxes, got {regions.shape}.")
    obj = get_shape(shape)
    centres = (regions[:, :2] + regions[:, 2:]) / 2
    goal = np.zeros_like(x)
    goal[-2:] = x[-2:]
    best, best_cost = -1, np.inf
    for i in range(n):
        goal[4 * i: 4 * i + 2] = centres[i]
        xy = x[4 * i: 4 * i + 2]
        if np.all((xy >= regions[i, :2] + sorted_margin) & (xy <= regions[i, 2:] - sorted_margin)):
            continue
        # a pre-push point past the pusher's reach (box at the table edge) is moved onto its reach
        pre = np.clip(pre_push_point(x[4 * i: 4 * i + 4], centres[i], obj), -REACH, REACH)
        cost = np.linalg.norm(pre - x[-2:]) + np.linalg.norm(centres[i] - xy)
        # a box whose region another box occupies waits: that box has to leave first
        others = np.delete(x[: 4 * n].reshape(n, 4)[:, :2], i, axis=0)
        if np.any(np.all(np.abs(others - centres[i]) <= (regions[i, 2:] - regions[i, :2]) / 2 + obj.radius, axis=1)):
            cost += BLOCKED_COST
        if cost < best_cost:
            best, best_cost = i, cost
            goal[-2:] = pre
    return goal, best


class SortMIP(PipelineMIP):
    """MIP-MPC from candidate starts on the whole Sort-v0 state (the graph model's compiled network).

    As :class:`~controlkit.tasks.pushing.starts.PipelineMIP`, except that the ``greedy`` candidate drives the box
    the goal's pusher term belongs to (the box whose pre-push point, as :func:`sort_goal` computes it, is the
    pusher goal) towards its own goal position, closed on the model's predictions of every box. Its circling
    approach is what gets the pusher round a box to the far side, which a 10-step L1 cost alone does not reward.
    """

    def target_box(self, x0: np.ndarray, goal: np.ndarray) -> int:
        """The box whose pre-push point towards its goal is nearest the pusher goal."""
        n = objects_in(x0, "x0")
        pres = [np.clip(pre_push_point(x0[4 * i: 4 * i + 4], goal[4 * i: 4 * i + 2], self._greedy.shape),
                        -REACH, REACH) for i in range(n)]
        return int(np.argmin([np.linalg.norm(pre - goal[-2:]) for pre in pres]))

    def greedy_actions(self, x0: np.ndarray, goal: np.ndarray) -> np.ndarray:
        p = self.problem
        g = goal[-1]
        k = self.target_box(x0, g)
        x, out = np.asarray(x0, dtype=np.float64), []
        for _ in range(p.horizon):
            one = np.concatenate([x[4 * k: 4 * k + 4], x[-2:]])
            a = np.clip(self._greedy.action(one, g[4 * k: 4 * k + 2]), p.u_low, p.u_high)
            # its detour round a box near the table edge would leave the pusher's state box: stop at the edge
            a = np.clip(a, -REACH - x[-2:], REACH - x[-2:])
            out.append(a)
            x = p.net.step(x, a)
        return np.array(out)


def make_graph_planner(kind: str, graph: Any, env: Any, horizon: int = 10, seed: int = 0,
                       pusher_weight: float = 0.3, terminal_weight: float = 5.0, **knobs: Any):
    """A :class:`~controlkit.planning.graph.GraphPlanner` of type ``kind`` on ``graph`` for the Sort-v0 ``env``.

    Bounds: box centres within ``BOX_LIMIT``, cos/sin within ±1.5 (the model's drift past ±1), the pusher on the
    table; cost :func:`sort_weights` with ``terminal_weight`` on the last step. ``mip_mpc`` is the pipeline's
    MIP-MPC from candidate starts (:class:`SortMIP`; ``knobs`` such as
    ``time_limit``, ``starts``, ``warm_samples``, ``highs_options``); any other registered planner type
    (:func:`controlkit.planning.get_planner`: ``mppi``, ``cem``, ``gradient``, ``random``, ...) gets ``knobs`` as its
    own arguments.

    Raises:
        ControlkitError: unknown ``kind``, or a graph model that does not match ``env`` (:func:`check_graph_env`).
    """
    check_graph_env(graph, env)
    if kind == "mip_mpc":
        knobs["shape"] = env.shape  # for the greedy candidate start
    n = env.n_objects
    return planner_on_graph(graph, n, kind, env, BOX_LIMIT, sort_weights(n, pusher_weight), horizon, terminal_weight,
                            seed, knobs, SortMIP)


def planner_on_graph(graph: Any, n: int, kind: str, env: Any, position_limit: float, state_weights: np.ndarray,
                     horizon: int, terminal_weight: float, seed: int, knobs: dict[str, Any], mip_class: type) -> Any:
    """A ``GraphPlanner`` of ``kind`` for ``n`` table objects: position and heading boxes, the pusher on the table.

    What sorting and the rope share: every object node ``[x, y, cos, sin]`` within ``position_limit`` (headings
    within 1.5), the pusher within the table, one pusher step of ``env.step_size`` per axis, ``knobs`` completed
    with the seed and the warm tail (``safe`` for the MILP, else ``repeat``).
    """
    from controlkit.planning.graph import graph_planner

    step = float(env.step_size)
    x_high = np.array([position_limit, position_limit, 1.5, 1.5] * n + [TABLE_HALF] * 2)
    problem = dict(horizon=horizon, u_low=[-step] * 2, u_high=[step] * 2, x_low=-x_high, x_high=x_high,
                   state_weights=state_weights, terminal_weight=terminal_weight)
    knobs.setdefault("warm_tail", "safe" if kind == "mip_mpc" else "repeat")
    knobs["seed"] = seed
    return graph_planner(graph, n, kind, problem, knobs, mip_class=mip_class)


class GraphSortTask:
    """Sort-v0 for planners on the graph model: the whole state, :func:`sort_goal` as goal, no task layer.

    It has what :func:`controlkit.tasks.pushing.run_episode` asks of a task (``reset``, ``state_goal``,
    ``applied``, ``in_transit``, ``pushed``, ``position_error``), so graph planners and the task-layer baseline
    run through the same loop and statistics.

    Args:
        env: The unwrapped :class:`~controlkit.envs.sort.SortEnv`.
        sorted_margin: See :func:`sort_goal`.
    """

    in_transit = False

    def __init__(self, env: Any, sorted_margin: float = 0.025) -> None:
        if not hasattr(env, "regions") or not hasattr(env, "n_objects"):
            raise ControlkitError(f"env: the graph sorting task needs controlkit/Sort-v0, got {type(env).__name__}.")
        self.env, self.sorted_margin = env, float(sorted_margin)
        self.pushed = 0

    def reset(self) -> None:
        self.pushed = 0

    def state_goal(self) -> tuple[np.ndarray, np.ndarray]:
        """The world-frame state and this step's goal (call once per step)."""
        x = self.env.state()
        goal, box = sort_goal(x, self.env.regions, self.env.shape.name, self.sorted_margin)
        self.pushed = max(box, 0)
        return x, goal

    def applied(self, action: np.ndarray) -> np.ndarray:
        return action

    def position_error(self, info: dict[str, Any]) -> float:
        """Summed distance (m) of the boxes to their regions."""
        return float(info["distance"])


def check_graph_env(graph: Any, env: Any, field: str = "model.file") -> None:
    """Raise a :class:`ControlkitError` naming ``field`` unless ``graph`` can plan on ``env`` (Sort-v0, its box
    count within the model's range, the shape the model was trained on)."""
    from controlkit.models.graph import GraphNetwork

    if not isinstance(graph, GraphNetwork):
        raise ControlkitError(f"{field}: need a graph model (GraphNetwork), got {type(graph).__name__}.")
    if not hasattr(env, "n_objects"):
        raise ControlkitError(f"env: a graph model plans on controlkit/Sort-v0, got {type(env).__name__}.")
    check_objects(env.n_objects, "env_kwargs.n_objects")
    trained = graph.metadata.get("env")
    if trained is not None and trained != "controlkit/Sort-v0":
        raise ControlkitError(f"{field}: the graph model was trained on {trained!r}, not controlkit/Sort-v0.")
    shape = graph.metadata.get("shape", "box")
    if shape != env.shape.name:
        raise ControlkitError(f"{field}: the graph model was trained on shape {shape!r}; the env has "
                              f"env_kwargs.shape={env.shape.name!r}.")


__all__ = [
    "GraphSortTask", "SortExplorer", "SortMIP", "check_graph_env", "collect_sort_data", "make_graph_planner", "sort_goal",
    "sort_weights",
]

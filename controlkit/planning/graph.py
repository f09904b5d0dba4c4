"""Receding-horizon planning on a graph dynamics model with the interaction graph fixed over each plan's horizon.

At every plan, :class:`GraphPlanner` reads the interaction graph present at ``x0`` -- the node-node edges (boxes of
Sort-v0 or particles of Rope-v0, any number) and the pusher's edges to the nodes within the model's
``pusher_radius`` (:meth:`~controlkit.models.graph.GraphNetwork.interactions`) --, compiles the graph model with
that graph into a :class:`~controlkit.models.network.CompactNetwork`
(:meth:`~controlkit.models.graph.GraphNetwork.compact`) and plans with an ordinary planner on it: MIP-MPC, MPPI,
CEM, gradient or random shooting, built by a factory the caller passes. One inner planner is kept per graph, so
MIP-MPC updates its compiled MILP in place as long as the graph stays the same (sorting meets only a handful of
graphs). Nodes the pusher does not reach through that graph stay still over the horizon (no neurons, no binaries
for them). The warm start is this planner's own shifted last plan, so it survives a change of graph.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from controlkit.core.controller import Plan
from controlkit.core.errors import ControlkitError
from controlkit.models.graph import GraphNetwork, check_objects
from controlkit.models.network import CompactNetwork
from controlkit.planning.receding import RecedingHorizonPlanner

GraphKey = tuple[tuple[tuple[int, int], ...], tuple[int, ...]]
"""An interaction graph: node-node edges ``(sender, receiver)`` and the nodes the pusher has an edge to."""
PlannerFactory = Callable[[CompactNetwork], RecedingHorizonPlanner]
"""Builds the inner planner for one compiled network (same horizon, bounds and cost for every edge set)."""


class GraphPlanner(RecedingHorizonPlanner):
    """Plan on a :class:`GraphNetwork` for ``n_objects`` nodes with any planner (see the module docstring).

    Args:
        graph: The graph model.
        n_objects: Number of nodes (boxes or rope particles, >= 1); the state is
            ``[node_i x, y, cos, sin ..., pusher x, y]``.
        make_planner: ``make_planner(net)`` returns the inner planner for the compiled network ``net``; it must
            use ``horizon`` and the same bounds and cost for every ``net``.
        horizon, u_low, u_high, x_low, x_high, state_weights, control_weight, **kwargs: The problem, as for every
            :class:`~controlkit.planning.receding.RecedingHorizonPlanner` (validated on the fully connected graph).
        max_edge_sets: Inner planners kept (least recently used dropped first).

    ``Plan.extras`` adds ``edges`` (the box-box edges of this plan), ``pusher_edges`` (the nodes the pusher has an
    edge to) and ``edge_sets`` (inner planners built so far).
    """

    def __init__(self, graph: GraphNetwork, n_objects: int, make_planner: PlannerFactory, horizon: int,
                 u_low: Any, u_high: Any, x_low: Any = None, x_high: Any = None, state_weights: Any = None,
                 control_weight: float = 0.0, *, max_edge_sets: int = 16, **kwargs: Any) -> None:
        if not isinstance(graph, GraphNetwork):
            raise ControlkitError(f"graph: need a controlkit.models.graph.GraphNetwork, got {type(graph).__name__}.")
        n = check_objects(n_objects, max_objects=None)
        full = [(j, i) for i in range(n) for j in range(n) if i != j]
        self.graph, self.n_objects, self.make_planner = graph, n, make_planner
        self.max_edge_sets = int(max_edge_sets)
        self._inner: dict[GraphKey, RecedingHorizonPlanner] = {}
        super().__init__(graph.compact(n, full), horizon, u_low, u_high, x_low, x_high, None, state_weights,
                         control_weight, **kwargs)
        # build the fully connected graph's planner now, so that bad planner arguments fail here, not mid-episode
        self.inner(np.zeros(self.problem.nx), key=(tuple(full), tuple(range(n))))

    def reset(self, seed: int | None = None) -> None:
        """New episode: the inner planners are dropped, so an episode's plans depend on its seed alone (a MILP
        updated in place would carry the solver's state over from the last episode)."""
        super().reset(seed)
        self._seed = seed
        if hasattr(self, "_inner"):
            self._inner.clear()

    def inner(self, x0: np.ndarray, key: GraphKey | None = None) -> tuple[GraphKey, RecedingHorizonPlanner]:
        """The interaction graph at ``x0`` (or ``key``: node-node edges, pusher edges) and its inner planner (built
        on first use)."""
        key = self.graph.interactions(x0) if key is None else key
        planner = self._inner.pop(key, None)
        if planner is None:
            planner = self.make_planner(self.graph.compact(self.n_objects, *key))
            if planner.horizon != self.horizon or planner.problem.nx != self.problem.nx:
                raise ControlkitError(f"make_planner: built a planner with horizon {planner.horizon} and state size "
                                      f"{planner.problem.nx}; need {self.horizon} and {self.problem.nx}.")
            planner.reset(self._seed)
            if len(self._inner) >= self.max_edge_sets:
                self._inner.pop(next(iter(self._inner)))
        self._inner[key] = planner  # most recently used last
        return key, planner

    def plan(self, x0: Any, goal: Any, warm_start: np.ndarray | None = None) -> Plan:
        """Plan from ``x0`` on the graph fixed at ``x0``; ``warm_start`` ``(H, nu)`` seeds the inner planner."""
        p = self.problem
        x0, goal = p.check_state(x0), p.check_goal(goal)
        key, planner = self.inner(x0)
        plan = planner.plan(x0, goal, warm_start=warm_start)
        plan.extras.update(edges=[list(e) for e in key[0]], pusher_edges=list(key[1]), edge_sets=len(self._inner))
        return plan

    def _act(self, obs: Any):
        # the inner planner's own _act handles candidate-start fallbacks (MIP); keep its last plan in step with ours
        x = np.asarray(self.state_fn(obs) if self.state_fn else obs, dtype=np.float64)
        try:
            _, planner = self.inner(self.problem.check_state(x))
        except ControlkitError:
            return super()._act(obs)
        if self.goal is not None:
            planner.set_goal(self.goal)
        planner.last_plan, planner._fallbacks = self.last_plan, self._fallbacks
        action, info = planner._act(x)
        self.last_plan, self._fallbacks = planner.last_plan, planner._fallbacks
        return action, info


def graph_planner(graph: GraphNetwork, n_objects: int, kind: str, problem: dict[str, Any], knobs: dict[str, Any],
                  mip_class: type | None = None) -> GraphPlanner:
    """A :class:`GraphPlanner` whose inner planners are the registered planner type ``kind``.

    Args:
        graph: The graph model.
        n_objects: Its node count (boxes or rope particles).
        kind: A registered planner type (:func:`controlkit.planning.get_planner`: ``mip_mpc``, ``mppi``, ``cem``,
            ``gradient``, ``random``, ...).
        problem: ``horizon``, ``u_low``, ``u_high``, ``x_low``, ``x_high``, ``state_weights``, ... (the same for
            every edge set).
        knobs: The inner planner's own arguments.
        mip_class: Used for ``kind="mip_mpc"`` instead of the registered class (e.g. a task's MIP-MPC with
            candidate starts).

    Raises:
        ControlkitError: an unknown ``kind`` or knob (named as ``planners.<kind>``), or a bad problem.
    """
    from controlkit.planning.registry import get_planner

    cls = mip_class if kind == "mip_mpc" and mip_class is not None else get_planner(kind)

    def factory(net: CompactNetwork) -> RecedingHorizonPlanner:
        return cls(net, **problem, **knobs)

    try:
        return GraphPlanner(graph, n_objects, factory, **problem)
    except TypeError as exc:  # an unknown knob
        raise ControlkitError(f"planners.{kind}: {exc}") from None


__all__ = ["GraphPlanner", "PlannerFactory", "graph_planner"]

"""Task decomposition for ``controlkit/Sort-v0``: which box to push next, where to, and how the pusher gets there.

The pushing model knows one object, so sorting is a sequence of one-object legs: push box ``k`` to a target
``(x, y)``, which is either the centre of the box's own region or a staging waypoint. :class:`SortSequencer`
chooses the leg each step, and every planner of the pipeline gets the same sub-goal (the same goal vector and the
same cost), so the task layer is shared and only the planning differs.

- **Which leg.** A leg is scored by the distance the box travels (to its region, directly or through a waypoint
  of a grid over the table), plus a penalty for every other box that lies on the way (closer than ``clearance``
  to a leg's straight segment, which includes a box sitting in the target region), for a pre-push point the
  pusher cannot reach (off the table, or inside another box) and a small one for the pusher's travel there. The
  cheapest leg wins: nearest first among unblocked boxes, a staging waypoint only when it avoids more blocking
  than its detour costs. The choice is kept (no dithering between boxes) until the box is well inside its region
  (``inset``), the waypoint is reached, or another leg has become cheaper by ``switch_margin``; a leg on which the
  box has not got closer for ``patience`` steps is given up and barred for as long.
- **Where to aim.** The planners pursue the point ``lookahead`` ahead of the box on the leg's line
  (:meth:`Leg.aim`), not the far target: a box that drifts off the line is steered back, and the goal stays at
  the 5-15 cm distances the pushing model was evaluated on.
- **How the pusher gets there.** While the pusher is away from the box, it travels to the standoff point behind
  the box on a route that touches no box (:meth:`SortSequencer.pusher_via`); the pipeline's ``Task`` makes these
  transit moves itself, for every planner alike, and the planners plan the pushes.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from controlkit.core.errors import ControlkitError
from controlkit.envs.tabletop import PUSHER_RADIUS, TABLE_HALF, Shape, in_rect
from controlkit.tasks.pushing.greedy import PRE_PUSH_GAP

_PUSHER_LIMIT = TABLE_HALF - PUSHER_RADIUS  # the env clips the pusher's set-point to this
_PUSHER_GAP = 0.008  # m between the pusher's edge and any box on the pusher's routes
_NEXT_TO = 0.015  # m: a pusher whose edge is this close to the leg's box, behind it, is the planners' to move
_BEHIND = 0.6  # rad: "behind" the box: this close in angle (seen from the box) to the standoff point


@dataclasses.dataclass(frozen=True)
class Leg:
    """One leg of the sorting sequence: push ``box`` from ``origin`` towards ``target`` (its region centre when
    ``final``), along the straight line between them."""

    box: int
    target: np.ndarray
    final: bool
    origin: np.ndarray

    def aim(self, position: np.ndarray, lookahead: float) -> np.ndarray:
        """The point of the leg's line ``lookahead`` ahead of the box's projection on it (the target at the end).

        Planners pursue this point rather than the target: a box that drifted off the line is steered back to it,
        and the goal stays within the distances the pushing model was evaluated on.
        """
        d = self.target - self.origin
        length = float(np.linalg.norm(d))
        if length < 1e-9 or np.linalg.norm(self.target - position) <= lookahead:
            return self.target.copy()
        u = d / length
        along = float(np.clip((position - self.origin) @ u, 0.0, length))
        return self.origin + min(along + lookahead, length) * u


def _segment_distance(points: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distances ``(K, M)`` from points ``(M, 2)`` to the segments ``a[k] -> b[k]`` (``a``, ``b``: ``(K, 2)``)."""
    ab = b - a
    t = np.einsum("kmd,kd->km", points[None] - a[:, None], ab) / np.maximum((ab * ab).sum(-1), 1e-12)[:, None]
    closest = a[:, None] + np.clip(t, 0.0, 1.0)[..., None] * ab[:, None]
    return np.linalg.norm(points[None] - closest, axis=-1)


def _segment_box_distance(a: np.ndarray, b: np.ndarray, poses: np.ndarray, shape: Shape) -> np.ndarray:
    """Distances ``(K, n)`` from segments ``a[k] -> b[k]`` to the objects at ``poses`` ``(n, 3)`` (0 if they cross)."""
    c, s = np.cos(poses[:, 2]), np.sin(poses[:, 2])

    def local(p: np.ndarray) -> np.ndarray:  # (K, 2) world -> (K, n, 2) object frames
        d = p[:, None] - poses[None, :, :2]
        return np.stack([c * d[..., 0] + s * d[..., 1], -s * d[..., 0] + c * d[..., 1]], -1)

    la, lb = local(a), local(b)
    out = np.full(la.shape[:2], np.inf)
    for centre, half in shape.boxes:
        h = np.asarray(half)
        pa, pb = la - centre, lb - centre
        lo, hi = np.minimum(pa, pb), np.maximum(pa, pb)
        normal = np.stack([pa[..., 1] - pb[..., 1], pb[..., 0] - pa[..., 0]], -1)
        crosses = ((lo <= h) & (hi >= -h)).all(-1) & (
            np.abs((normal * pa).sum(-1)) <= (np.abs(normal) * h).sum(-1))
        ends = np.minimum(np.linalg.norm(np.maximum(np.abs(pa) - h, 0.0), axis=-1),
                          np.linalg.norm(np.maximum(np.abs(pb) - h, 0.0), axis=-1))
        ab = pb - pa
        for corner in np.array([[1, 1], [1, -1], [-1, 1], [-1, -1]]) * h:
            t = np.clip(((corner - pa) * ab).sum(-1) / np.maximum((ab * ab).sum(-1), 1e-12), 0.0, 1.0)
            ends = np.minimum(ends, np.linalg.norm(pa + t[..., None] * ab - corner, axis=-1))
        out = np.minimum(out, np.where(crosses, 0.0, ends))
    return out


class SortSequencer:
    """Chooses the next leg (box and target) of a Sort-v0 episode; see the module docstring.

    Args:
        shape: The objects' shape (its extent sets the pre-push points, its radius the default clearance).
        regions: ``(n, 4)`` target rectangles, one per object.
        clearance: A box whose centre is closer than this (m) to a leg's path blocks it (default: two object
            radii, i.e. the two boxes can touch).
        block_weight: Cost per metre that another box intrudes into a leg's clearance (or a pre-push point
            into the table edge or another box).
        approach_weight: Cost per metre of pusher travel to the leg's pre-push point.
        staging_penalty: Extra cost (m) of a leg through a staging waypoint.
        switch_margin: Another leg replaces the current one only when cheaper by this much (m).
        reach: A staging waypoint, or the pusher's standoff point, counts as reached within this distance (m).
        inset: A box's leg ends once its centre is this far (m) inside its region, so that it stays sorted.
        lookahead: How far ahead (m) of the box on the leg's line the planners aim.
        patience: Steps without the box getting 5 mm closer to the leg's target before the leg is given up.
        grid: Staging waypoints per axis, evenly over the table inside a margin of one object radius (the
            pusher's route grid has ``2 grid - 1`` points per axis).

    Raises:
        ControlkitError: naming the argument, for a negative or non-finite number (zero ``clearance``,
            ``reach`` or ``lookahead``) or a ``patience`` / ``grid`` that is not an integer of at least 1 / 2.
    """

    def __init__(self, shape: Shape, regions: np.ndarray, *, clearance: float | None = None,
                 block_weight: float = 10.0, approach_weight: float = 0.3, staging_penalty: float = 0.05,
                 switch_margin: float = 0.05, reach: float = 0.03, inset: float = 0.025, lookahead: float = 0.06,
                 patience: int = 20, grid: int = 11) -> None:
        clearance = 2 * shape.radius if clearance is None else clearance
        numbers = {"clearance": clearance, "block_weight": block_weight, "approach_weight": approach_weight,
                   "staging_penalty": staging_penalty, "switch_margin": switch_margin, "reach": reach,
                   "inset": inset, "lookahead": lookahead}
        for field, value in numbers.items():
            positive = field in ("clearance", "reach", "lookahead")
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value) or (
                    value <= 0 if positive else value < 0):
                raise ControlkitError(f"{field}: must be a finite number {'>' if positive else '>='} 0, "
                                      f"got {value!r}.")
        for field, value, low in (("patience", patience, 1), ("grid", grid, 2)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
                raise ControlkitError(f"{field}: must be an integer >= {low}, got {value!r}.")
        self.shape = shape
        self.regions = np.asarray(regions, dtype=np.float64)
        self.centres = (self.regions[:, :2] + self.regions[:, 2:]) / 2
        self.clearance, self.block_weight, self.approach_weight = map(float, (clearance, block_weight,
                                                                              approach_weight))
        self.staging_penalty, self.switch_margin, self.reach = map(float, (staging_penalty, switch_margin, reach))
        self.inset, self.lookahead, self.patience = float(inset), float(lookahead), int(patience)
        # Where the pusher's transit ends and the planners take over: behind the box on the push line, clear of it.
        self.standoff_distance = shape.radius + PUSHER_RADIUS + 0.01
        lim = TABLE_HALF - shape.radius
        axis = np.linspace(-lim, lim, int(grid))
        self.waypoints = np.stack(np.meshgrid(axis, axis), -1).reshape(-1, 2)
        m = 2 * int(grid) - 1
        axis = np.linspace(-_PUSHER_LIMIT + 0.01, _PUSHER_LIMIT - 0.01, m)
        self.pusher_grid = np.stack(np.meshgrid(axis, axis), -1).reshape(-1, 2)
        idx = np.arange(m * m).reshape(m, m)  # the pusher grid's 8-neighbour edges, each once
        pairs = [(idx[:, :-1], idx[:, 1:]), (idx[:-1, :], idx[1:, :]), (idx[:-1, :-1], idx[1:, 1:]),
                 (idx[:-1, 1:], idx[1:, :-1])]
        self._grid_edges = (np.concatenate([a.ravel() for a, _ in pairs]),
                            np.concatenate([b.ravel() for _, b in pairs]))
        self.reset()

    def reset(self) -> None:
        """Forget the current leg and the barred ones (a new episode)."""
        self.leg: Leg | None = None
        self._best_gap = np.inf  # closest the box has come to the current leg's target
        self._since_progress = 0
        self._barred: dict[tuple[int, bool], int] = {}  # (box, final) -> steps left
        self._route: np.ndarray | None = None  # the rest of the pusher's route to a standoff point
        self._route_box = -1

    # ---- scoring ---------------------------------------------------------------------------------------------
    def _pre_push(self, poses: np.ndarray, i: int, at: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """Pre-push points ``(K, 2)`` for pushing box ``i`` (its orientation) from ``at`` ``(K, 2)`` to ``targets``."""
        d = targets - at
        back = -d / np.maximum(np.linalg.norm(d, axis=-1, keepdims=True), 1e-9)
        c, s = np.cos(poses[i, 2]), np.sin(poses[i, 2])
        local = np.stack([c * back[:, 0] + s * back[:, 1], -s * back[:, 0] + c * back[:, 1]], -1)
        reach = np.array([self.shape.extent(v) for v in local])
        return at + (reach + PUSHER_RADIUS + PRE_PUSH_GAP)[:, None] * back

    def _pre_push_penalty(self, pre: np.ndarray, others: np.ndarray) -> np.ndarray:
        """How far (m) pre-push points ``(K, 2)`` lie beyond the pusher's reach or inside another box."""
        off = np.maximum(np.abs(pre) - (_PUSHER_LIMIT - 0.005), 0.0).sum(-1)
        if len(others):
            gap = np.linalg.norm(pre[:, None] - others[None], axis=-1)
            off = off + np.maximum(self.shape.radius + PUSHER_RADIUS - gap, 0.0).sum(-1)
        return off

    def _blocking(self, a: np.ndarray, b: np.ndarray, others: np.ndarray) -> np.ndarray:
        if not len(others):
            return np.zeros(len(a))
        return np.maximum(self.clearance - _segment_distance(others, a, b), 0.0).sum(-1)

    def costs(self, poses: np.ndarray, pusher: np.ndarray, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Costs of box ``i``'s legs: ``(targets (K, 2), costs (K,))``, row 0 the direct leg to its region."""
        p, goal = poses[i, :2], self.centres[i]
        others = np.delete(poses[:, :2], i, axis=0)
        targets = np.vstack([goal, self.waypoints])
        start = np.broadcast_to(p, targets.shape)
        pre1 = self._pre_push(poses, i, start, targets)
        cost = (np.linalg.norm(targets - p, axis=-1) + self.approach_weight * np.linalg.norm(pre1 - pusher, axis=-1)
                + self.block_weight * (self._blocking(start, targets, others) + self._pre_push_penalty(pre1, others)))
        # Staging legs: the second leg from the waypoint to the region, with the other boxes where they are now.
        w = self.waypoints
        goals = np.broadcast_to(goal, w.shape)
        pre2 = self._pre_push(poses, i, w, goals)
        cost[1:] += (np.linalg.norm(goals - w, axis=-1) + self.staging_penalty
                     + self.block_weight * (self._blocking(w, goals, others) + self._pre_push_penalty(pre2, others)))
        return targets, cost

    def _leg_cost(self, leg: Leg, poses: np.ndarray, pusher: np.ndarray) -> float:
        """The current cost of continuing ``leg`` (its waypoint fixed)."""
        targets, cost = self.costs(poses, pusher, leg.box)
        if leg.final:
            return float(cost[0])
        return float(cost[1:][np.argmin(np.linalg.norm(targets[1:] - leg.target, axis=-1))])

    # ---- routing the pusher ------------------------------------------------------------------------------------
    def pusher_via(self, poses: np.ndarray, pusher: np.ndarray, k: int, aim: np.ndarray) -> np.ndarray | None:
        """Where the pusher should head now on its way to push box ``k`` towards ``aim``; ``None`` once it is there.

        Away from the box, the pusher goes to the standoff point (behind the box on the push line, one pusher-box
        clearance away) on a route of straight segments that keep its edge ``_PUSHER_GAP`` off every box
        (:meth:`_plan_route`). The route is kept and followed, cutting across to its farthest point in sight,
        until its next point is no longer clear or the box (so the standoff point) has moved; planning afresh
        every step made the pusher oscillate between two routes. At the standoff point, or next to the box
        on its side (within ``_BEHIND`` of the push line): ``None``, the planners push. Next to the box on
        another side the route goes on round it.
        """
        box = poses[k, :2]
        d = aim - box
        standoff = box - self.standoff_distance * d / max(float(np.linalg.norm(d)), 1e-9)
        v, w = pusher - box, standoff - box
        behind = v @ w >= np.cos(_BEHIND) * np.linalg.norm(v) * np.linalg.norm(w)
        if (np.linalg.norm(pusher - standoff) < self.reach
                or (behind and _segment_box_distance(pusher[None], pusher[None], poses[k:k + 1], self.shape)[0, 0]
                    < PUSHER_RADIUS + _NEXT_TO)):
            self._route = None
            return None

        def clear(a: np.ndarray, b: np.ndarray, from_pusher: bool = False) -> np.ndarray:
            # The pusher's edge stays _PUSHER_GAP off every box. Near where the pusher is now (it may just have
            # pushed a box) and near the standoff point (boxes may crowd it), it need only keep the gap it has
            # there: a segment from the pusher, or to the standoff point, gets no closer to a box than its end.
            dist = _segment_box_distance(a, b, poses, self.shape) - PUSHER_RADIUS
            need = np.full(dist.shape, _PUSHER_GAP)
            if from_pusher:
                need = np.minimum(need, _segment_box_distance(a, a, poses, self.shape) - PUSHER_RADIUS)
            need = np.where(np.all(b == standoff, axis=-1)[:, None], np.minimum(need, standoff_gap), need)
            return (dist >= need - 1e-6).all(-1)

        standoff_gap = _segment_box_distance(standoff[None], standoff[None], poses, self.shape)[0] - PUSHER_RADIUS
        route = self._route
        if route is not None and (self._route_box != k or np.linalg.norm(route[-1] - standoff) > 0.02):
            route = None  # another box, or the box has moved: a new route
        if route is not None:
            route = route[int(np.argmin(np.linalg.norm(route - pusher, axis=-1))):].copy()  # drop points passed
            route[-1] = standoff
            if len(route) > 1 and np.linalg.norm(route[0] - pusher) < 0.005:
                route = route[1:]
            if not clear(pusher[None], route[:1], True)[0]:
                route = None
        if route is None:
            route = self._plan_route(pusher, standoff, clear)
            if route is None:
                self._route = None
                return None
        # Cut across to the farthest point of the route in sight (one the pusher is at already is no way forward).
        ahead = np.linalg.norm(route - pusher, axis=-1) > 0.005
        if not ahead.any():
            self._route = None
            return None
        seen = clear(np.broadcast_to(pusher, route.shape), route, True) & ahead
        first = int(np.flatnonzero(seen).max() if seen.any() else np.flatnonzero(ahead).min())
        self._route, self._route_box = route[first:], k
        return route[first].copy()

    def _plan_route(self, pusher: np.ndarray, standoff: np.ndarray, clear) -> np.ndarray | None:
        """Points ``(R, 2)`` from the pusher to ``standoff`` (the last), each straight segment clear: directly,
        through the one grid waypoint that makes the shortest such path, or the shortest route over the grid graph
        (8 neighbours, clear edges; it hugs boxes at the minimum gap, so only when no single waypoint will do)."""
        if clear(pusher[None], standoff[None], True)[0]:
            return standoff[None].copy()
        grid = self.pusher_grid
        start, end = np.broadcast_to(pusher, grid.shape), np.broadcast_to(standoff, grid.shape)
        ok = clear(start, grid, True) & clear(grid, end)
        if ok.any():
            length = np.linalg.norm(grid - pusher, axis=-1) + np.linalg.norm(end - grid, axis=-1)
            return np.array([grid[np.flatnonzero(ok)[np.argmin(length[ok])]], standoff])
        from scipy.sparse import coo_matrix
        from scipy.sparse.csgraph import dijkstra

        n = len(grid)
        i, j = self._grid_edges
        edge = clear(grid[i], grid[j])
        to_grid, from_grid = clear(start, grid, True), clear(grid, end)
        nodes = np.vstack([grid, pusher, standoff])  # the pusher is node n, the standoff point node n + 1
        src = np.concatenate([i[edge], np.full(int(to_grid.sum()), n), np.flatnonzero(from_grid)])
        dst = np.concatenate([j[edge], np.flatnonzero(to_grid), np.full(int(from_grid.sum()), n + 1)])
        weight = np.linalg.norm(nodes[src] - nodes[dst], axis=-1) + 1e-9
        graph = coo_matrix((weight, (src, dst)), shape=(n + 2, n + 2)).tocsr()
        dist, pred = dijkstra(graph, directed=False, indices=n, return_predecessors=True)
        if not np.isfinite(dist[n + 1]):
            return None
        path = [n + 1]
        while path[-1] != n:
            path.append(int(pred[path[-1]]))
        return nodes[path[-2::-1]]  # after the pusher, up to the standoff point

    # ---- choosing --------------------------------------------------------------------------------------------
    def best(self, poses: np.ndarray, pusher: np.ndarray, done: np.ndarray) -> tuple[Leg, float]:
        """The cheapest leg over every unsorted box (barred legs excluded while others exist) and its cost."""
        options = []
        for i in np.flatnonzero(~done):
            targets, cost = self.costs(poses, pusher, int(i))
            k = int(np.argmin(cost))
            options.append((Leg(int(i), targets[k].copy(), k == 0, poses[i, :2].copy()), float(cost[k])))
            if k != 0:  # the direct leg competes on its own (it may be barred while the staging one is not)
                options.append((Leg(int(i), targets[0].copy(), True, poses[i, :2].copy()), float(cost[0])))
        allowed = [o for o in options if (o[0].box, o[0].final) not in self._barred] or options
        return min(allowed, key=lambda o: o[1])

    def choose(self, poses: np.ndarray, pusher: np.ndarray) -> Leg:
        """The leg to push now, given object poses ``(n, 3)`` and the pusher position; call once per step."""
        poses, pusher = np.asarray(poses, dtype=np.float64), np.asarray(pusher, dtype=np.float64)
        done = in_rect(poses[:, :2], self.regions)
        deep = in_rect(poses[:, :2], self.regions + np.array([1, 1, -1, -1]) * self.inset)
        self._barred = {k: v - 1 for k, v in self._barred.items() if v > 1}
        if done.all():
            return Leg(0, self.centres[0].copy(), True, poses[0, :2].copy())
        leg = self.leg
        if leg is not None:
            gap = float(np.linalg.norm(poses[leg.box, :2] - leg.target))
            if gap < self._best_gap - 0.005:
                self._best_gap, self._since_progress = gap, 0
            else:
                self._since_progress += 1
            if deep[leg.box] or (not leg.final and gap < self.reach):
                leg = None
            elif self._since_progress >= self.patience:
                self._barred[(leg.box, leg.final)] = self.patience
                leg = None
        best, best_cost = self.best(poses, pusher, done)
        if leg is None or (not done[leg.box] and self._leg_cost(leg, poses, pusher) > best_cost + self.switch_margin):
            if leg is None or best.box != leg.box or not np.allclose(best.target, leg.target):
                self._best_gap, self._since_progress = np.inf, 0
            leg = best
        self.leg = leg
        return leg

    def subgoal(self, poses: np.ndarray, pusher: np.ndarray) -> tuple[int, np.ndarray, np.ndarray | None]:
        """This step's sub-goal: ``(box, aim, via)``: push ``box`` towards the point ``aim`` of the chosen leg, the
        pusher first going through ``via`` (``None``: straight to the pre-push point). Call once per step."""
        poses, pusher = np.asarray(poses, dtype=np.float64), np.asarray(pusher, dtype=np.float64)
        leg = self.choose(poses, pusher)
        aim = leg.aim(poses[leg.box, :2], self.lookahead)
        return leg.box, aim, self.pusher_via(poses, pusher, leg.box, aim)


__all__ = ["Leg", "SortSequencer"]

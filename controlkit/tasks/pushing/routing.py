"""Routing round a keep-out box: the next waypoint of the shortest path from the object to its target.

A receding-horizon cost on the distance to the goal has a local minimum in front of a box that lies between the
object and the goal: pushing round it first makes every step of a short horizon worse, so any planner, however
exact on its horizon, parks the object at the near side. The pipeline can instead give every planner the next
corner of the shortest path round the box as its target (a visibility graph over the object, the box's corners
grown by a clearance, and the goal), and the goal itself once the object sees it: the cost-to-go of a global
path, the usual remedy. The box is convex, so the path has at most two corners.
"""

from __future__ import annotations

import numpy as np
from scipy.sparse.csgraph import dijkstra


def _crosses(a: np.ndarray, b: np.ndarray, low: np.ndarray, high: np.ndarray) -> bool:
    """Whether the segment ``a``-``b`` passes through the open box ``(low, high)`` (Liang-Barsky clipping)."""
    t0, t1, d = 0.0, 1.0, b - a
    for k in range(len(a)):
        if abs(d[k]) < 1e-15:
            if not low[k] < a[k] < high[k]:
                return False
            continue
        ta, tb = sorted(((low[k] - a[k]) / d[k], (high[k] - a[k]) / d[k]))
        t0, t1 = max(t0, ta), min(t1, tb)
        if t1 - t0 <= 1e-12:
            return False
    return True


def next_waypoint(start, target, low, high, clearance: float) -> np.ndarray:
    """The point ``start`` should head for to reach ``target`` round the box ``[low, high]`` (2-D).

    ``target`` itself when the straight segment misses the box; the first corner (the box's corners grown by
    ``clearance``) of the shortest path otherwise. From inside the box the path starts at the nearest point
    ``clearance`` outside it (the planners' keep-out penalty pushes the object out; the target keeps it moving on
    round the box instead of stopping at the side). A target inside the box is returned as it is (no path
    reaches it from outside).
    """
    s, g = np.asarray(start, dtype=np.float64)[:2], np.asarray(target, dtype=np.float64)[:2]
    lo, hi = np.asarray(low, dtype=np.float64), np.asarray(high, dtype=np.float64)
    if np.all((s > lo) & (s < hi)):
        gaps = np.concatenate([s - lo, hi - s])  # distance to each side: low x, low y, high x, high y
        k = int(np.argmin(gaps))
        s = s.copy()
        s[k % 2] = lo[k % 2] - clearance if k < 2 else hi[k % 2] + clearance
    if not _crosses(s, g, lo, hi) or np.all((g > lo) & (g < hi)):
        return g
    c = clearance
    corners = [np.array([x, y]) for x in (lo[0] - c, hi[0] + c) for y in (lo[1] - c, hi[1] + c)]
    nodes = np.array([s, *corners, g])
    n = len(nodes)
    graph = np.zeros((n, n))  # visibility graph: edge lengths between points that see each other (0 = no edge)
    for i in range(n):
        for j in range(i + 1, n):
            if not _crosses(nodes[i], nodes[j], lo, hi):
                graph[i, j] = graph[j, i] = float(np.linalg.norm(nodes[j] - nodes[i]))
    dist, pred = dijkstra(graph, indices=0, return_predecessors=True)
    if not np.isfinite(dist[-1]):
        return g
    hop = n - 1
    while pred[hop] != 0:  # walk back from the target to the path's first hop
        hop = pred[hop]
    return nodes[hop]

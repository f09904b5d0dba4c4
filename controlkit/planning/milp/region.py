"""The region descent: planning inside one linear region of the unrolled network at a time, one small LP each.

With every ReLU's activation fixed (an *activation pattern*), the network is affine at every step, so every state
``x_t`` is an affine function of the stacked actions ``U``: ``x_t = P_t U + p_t``. The MILP with every binary
fixed to a pattern is then the LP, over ``U`` alone, of

    minimize  sum_t w_t . e_t + lambda sum |u|   s.t.  e_t >= |P_t U + p_t - g_t|  (L1 epigraphs),
              the pattern's sign on every unstable ReLU's pre-activation (the region),
              the state box, ``A x_t <= b`` and the keep-out side each binary of the pattern chooses,
              the action box.

Its feasible set and objective are those of the full MILP with its binaries fixed (the stable neurons' classes
hold for every true rollout, so they need no rows; neuron and state bounds are implied), but it has the ``H nu``
action columns and one row per unstable ReLU and cost term instead of every state, post-activation and big-M row
of the full model: on the 32-ReLU T model at H = 10, 466 dense rows over 80 columns instead of 1 624 rows over
1 304 columns (``benchmarks/region_lp.py`` times the two). Consecutive LPs keep their shape, so the last optimal
basis starts the next one.

:meth:`RegionLP.descend` chains these LPs: from the region of the current plan, solve its LP; neurons the optimum
leaves on their border (pre-activation ~ 0) flip, since a border point lies in both regions, and the next LP
starts there. The objective never increases; the descent stops when an LP does not improve, when the region
repeats, or at its LP or time budget. A local method: a good MIP start, no proof. :func:`basin_hop` makes it a
global search: re-draw a window of the plan's actions, descend again, keep what is cheaper.
"""

from __future__ import annotations

import time

import highspy
import numpy as np

from controlkit.planning.milp.bounds import LINEAR, UNSTABLE, Bounds, preactivations
from controlkit.planning.milp.highs import _run, _silent_highs
from controlkit.planning.milp.search import SearchResult
from controlkit.planning.problem import MPCProblem

BORDER = 1e-7
"""A pre-activation within this of 0 at an LP's optimum lies on the border of the neighbouring region."""


def solve_from(h: highspy.Highs, basis: highspy.HighsBasis | None) -> None:
    """Solve the LP in ``h`` from ``basis`` (``None``: from scratch).

    A basis that was optimal for a neighbouring region can be nearly singular for this one; HiGHS then stops with
    an error and no model status (seen on the obstacle task) instead of repairing it, so the basis is dropped and
    the LP solved from scratch.
    """
    if basis is None:
        _run(h)
        return
    h.setBasis(basis)
    if h.run() == highspy.HighsStatus.kError and h.getModelStatus() == highspy.HighsModelStatus.kNotset:
        h.clearSolver()
        _run(h)


def _affine_rollout(problem: MPCProblem, x0: np.ndarray, active: list[np.ndarray]):
    """States and pre-activations as affine maps of the stacked actions under a fixed activation pattern.

    Args:
        problem: The MPC problem.
        x0: The first state.
        active: Per hidden layer, ``(H, n_k)`` booleans: whether each neuron passes its pre-activation on (identity
            neurons always do).

    Returns:
        ``(P, p, pre)``: states ``x_t = P[t] @ U + p[t]`` (``t = 0..H``), and ``pre[k] = (A, c)`` with the
        pre-activations of hidden layer ``k`` at step ``t``: ``A[t] @ U + c[t]``.
    """
    net, T, nu = problem.net, problem.horizon, problem.nu
    n = T * nu
    nx = problem.nx
    P = np.zeros((T + 1, nx, n))
    p = np.zeros((T + 1, nx))
    p[0] = x0
    pre = [(np.zeros((T, w.shape[0], n)), np.zeros((T, w.shape[0]))) for w in net.weights[:-1]]
    for t in range(T):
        # the input [x_t, u_t] as an affine map of U
        m_in = np.zeros((nx + nu, n))
        m_in[:nx] = P[t]
        m_in[nx + np.arange(nu), t * nu + np.arange(nu)] = 1.0
        c_in = np.concatenate([p[t], np.zeros(nu)])
        for k, (w, b) in enumerate(zip(net.weights, net.biases)):
            m_in, c_in = w @ m_in, w @ c_in + b
            if k < len(net.relu_masks):
                pre[k][0][t], pre[k][1][t] = m_in, c_in
                keep = active[k][t].astype(np.float64)
                m_in, c_in = m_in * keep[:, None], c_in * keep
        P[t + 1] = P[t] + m_in if net.residual else m_in
        p[t + 1] = p[t] + c_in if net.residual else c_in
    return P, p, pre


class _LPBuilder:
    """Rows ``lo <= M z <= hi`` over the LP's columns, collected as dense blocks and stacked once."""

    def __init__(self, n_cols: int) -> None:
        self.n_cols = n_cols
        self.blocks: list[np.ndarray] = []
        self.lo: list[np.ndarray] = []
        self.hi: list[np.ndarray] = []

    def add(self, m: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> None:
        if len(m):
            self.blocks.append(m)
            self.lo.append(np.broadcast_to(lo, (len(m),)))
            self.hi.append(np.broadcast_to(hi, (len(m),)))

    def pass_to(self, h: highspy.Highs, cost: np.ndarray, col_lo: np.ndarray, col_hi: np.ndarray) -> int:
        """Hand the LP to ``h`` in one ``passModel`` call (row-wise, straight from the dense rows); returns its
        row count."""
        m = np.vstack(self.blocks) if self.blocks else np.zeros((0, self.n_cols))
        r, c = np.nonzero(m)
        start = np.searchsorted(r, np.arange(m.shape[0]))
        row_lo = np.concatenate(self.lo) if self.lo else np.zeros(0)
        row_hi = np.concatenate(self.hi) if self.hi else np.zeros(0)
        h.passModel(m.shape[1], m.shape[0], r.size, int(highspy.MatrixFormat.kRowwise),
                    int(highspy.ObjSense.kMinimize), 0.0, cost, col_lo, col_hi, row_lo, row_hi,
                    start.astype(np.int32), c.astype(np.int32), m[r, c], np.zeros(m.shape[1], dtype=np.int32))
        return m.shape[0]


class RegionLP:
    """The LP of one activation region (see the module docstring), for one ``x0``, goal and set of bounds.

    Args:
        problem: The MPC problem.
        bounds: Sound bounds for this ``x0``: which ReLUs are stable (they get no region row).
        x0: The first state.
        goal: ``(H, nx)`` goal.
    """

    def __init__(self, problem: MPCProblem, bounds: Bounds, x0: np.ndarray, goal: np.ndarray) -> None:
        self.problem, self.x0, self.goal = problem, np.asarray(x0, float), np.asarray(goal, float)
        classes = bounds.classes(problem)
        per_layer = [np.array([classes[t][k] for t in range(problem.horizon)])
                     for k in range(len(problem.net.relu_masks))]
        self.unstable = [c == UNSTABLE for c in per_layer]
        # a stable neuron's activation is its class's (as in the MILP), whatever a start that leaves the state box does
        self._stable_active = [c == LINEAR for c in per_layer]
        self.h = _silent_highs()
        self.h.setOptionValue("threads", 1)
        # each LP after the first starts from the last optimal basis, which presolve would throw away
        self.h.setOptionValue("presolve", "off")
        self._basis: highspy.HighsBasis | None = None

    def pattern(self, actions: np.ndarray, previous: list[np.ndarray] | None = None,
                states: np.ndarray | None = None) -> list[np.ndarray]:
        """Per hidden layer, ``(H, n_k)``: whether each neuron passes its pre-activation on along ``actions``.

        Unstable ReLUs follow the sign of their pre-activation; with ``previous`` (the last LP's region), one on its
        border (``|a| <= BORDER``) takes the other side instead. Stable neurons follow their class. ``states``:
        the rollout of ``actions``, if the caller has it.
        """
        states = self.problem.net.rollout(self.x0, actions) if states is None else states
        pre = preactivations(self.problem, states, actions)
        out = []
        for k, a in enumerate(pre):
            now = a > 0
            if previous is not None:
                now = np.where(np.abs(a) <= BORDER, ~previous[k], now)
            out.append(np.where(self.unstable[k], now, self._stable_active[k]))
        return out

    def solve(self, active: list[np.ndarray], sides: list[np.ndarray]) -> tuple[np.ndarray, float] | None:
        """The LP's optimal actions and objective in the region ``active``; ``None`` if it has no optimum.

        Args:
            active: The activation pattern (:meth:`pattern`, possibly with border neurons flipped).
            sides: Per keep-out box, ``(H, 2 d)`` booleans: the sides (below on each coordinate, then above) each
                state must keep to (hard box: every marked side; soft box: the one marked side, crossed at a price).
        """
        prob = self.problem
        T, nu = prob.horizon, prob.nu
        n = T * nu
        P, p, pre = _affine_rollout(prob, self.x0, active)
        on = prob.state_weights > 0
        n_e = int(on.sum()) * T
        n_v = n if prob.control_weight > 0 else 0
        n_s = sum(T for box in prob.keep_out if box.penalty is not None)
        n_col = n + n_e + n_v + n_s
        rows = _LPBuilder(n_col)

        def over_u(m: np.ndarray) -> np.ndarray:
            out = np.zeros((len(m), n_col))
            out[:, :n] = m
            return out

        # the region: each unstable ReLU keeps the sign of its pattern
        for k, (a_mat, a_off) in enumerate(pre):
            on_rows = self.unstable[k] & active[k]
            off_rows = self.unstable[k] & ~active[k]
            rows.add(over_u(a_mat[on_rows]), -a_off[on_rows], np.inf)
            rows.add(over_u(a_mat[off_rows]), -np.inf, -a_off[off_rows])
        xs_m, xs_c = P[1:], p[1:]  # (T, nx, n), (T, nx)
        # L1 tracking epigraphs: e >= x - g and e >= g - x
        w = prob.step_weights[:, on].reshape(-1)
        if n_e:
            mx = xs_m[:, on].reshape(n_e, n)
            cx = xs_c[:, on].reshape(-1) - self.goal[:, on].reshape(-1)
            eye = np.zeros((n_e, n_col))
            eye[np.arange(n_e), n + np.arange(n_e)] = 1.0
            rows.add(eye - over_u(mx), cx, np.inf)
            rows.add(eye + over_u(mx), -cx, np.inf)
        if n_v:
            eye = np.zeros((n, n_col))
            eye[np.arange(n), n + n_e + np.arange(n)] = 1.0
            rows.add(eye - over_u(np.eye(n)), 0.0, np.inf)
            rows.add(eye + over_u(np.eye(n)), 0.0, np.inf)
        # the state box on its finite coordinates, and A x <= b
        fin = np.isfinite(prob.x_low) | np.isfinite(prob.x_high)
        if fin.any():
            rows.add(over_u(xs_m[:, fin].reshape(-1, n)), (np.tile(prob.x_low[fin], T) - xs_c[:, fin].reshape(-1)),
                     np.tile(prob.x_high[fin], T) - xs_c[:, fin].reshape(-1))
        if len(prob.b_state):
            am = np.einsum("mi,tin->tmn", prob.a_state, xs_m).reshape(-1, n)
            rows.add(over_u(am), -np.inf, (prob.b_state[None] - xs_c @ prob.a_state.T).reshape(-1))
        cost = np.zeros(n_col)
        cost[n:n + n_e] = w
        cost[n + n_e:n + n_e + n_v] = prob.control_weight
        col_lo, col_hi = np.zeros(n_col), np.full(n_col, np.inf)
        col_lo[:n], col_hi[:n] = np.tile(prob.u_low, T), np.tile(prob.u_high, T)
        # keep-out: each marked side as a linear constraint; a soft box's side may be crossed by its slack s_t
        s_col = n + n_e + n_v
        for box, side in zip(prob.keep_out, sides):
            c = np.asarray(box.coords)
            t, j = np.nonzero(side)
            coord, above = c[j % c.size], j >= c.size
            m = over_u(xs_m[t, coord])
            bound = np.where(above, np.asarray(box.high)[j % c.size], np.asarray(box.low)[j % c.size]) - xs_c[t, coord]
            if box.penalty is not None:
                m[np.arange(t.size), s_col + t] = np.where(above, 1.0, -1.0)
                cost[s_col:s_col + T] = box.penalty
                s_col += T
            rows.add(m[above], bound[above], np.inf)
            rows.add(m[~above], -np.inf, bound[~above])
        # the constant part of the objective is 0: every cost term is an epigraph column
        n_rows = rows.pass_to(self.h, cost, col_lo, col_hi)
        # neighbouring regions differ in a few rows: the last optimal basis is a near-optimal start
        fits = self._basis is not None and len(self._basis.row_status) == n_rows
        solve_from(self.h, self._basis if fits else None)
        if self.h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
            return None
        self._basis = self.h.getBasis()
        u = np.asarray(self.h.getSolution().col_value)[:n].reshape(T, nu)
        return np.clip(u, prob.u_low, prob.u_high), float(self.h.getInfo().objective_function_value)

    def sides(self, actions: np.ndarray, states: np.ndarray | None = None) -> list[np.ndarray]:
        """The keep-out sides of ``actions``' rollout (``states``, if the caller has it): for a hard box every side
        its state keeps to, for a soft box the nearest side (the one the state is least deep past), as the MIP
        start marks them."""
        states = self.problem.net.rollout(self.x0, actions) if states is None else states
        out = []
        for box in self.problem.keep_out:
            xs = states[1:, list(box.coords)]
            gaps = np.concatenate([xs - np.asarray(box.low), np.asarray(box.high) - xs], axis=1)
            if box.penalty is not None:
                out.append(np.arange(gaps.shape[1]) == gaps.argmin(axis=1)[:, None])
            else:
                out.append(gaps <= 0)
        return out

    def descend(self, actions: np.ndarray, max_lps: int, time_budget: float | None = None
                ) -> tuple[np.ndarray, float, int]:
        """Improve ``actions`` by a descent over activation regions, one LP each (see the module docstring).

        Args:
            actions: ``(H, nu)`` start plan.
            max_lps: At most this many LPs.
            time_budget: Stop starting LPs after this many seconds (``None``: no clock, only ``max_lps``).

        Returns:
            The best actions found (the start, clipped to the action box, if no LP improved it), their objective
            (``inf`` if no LP was solved) and the number of LPs solved.
        """
        prob = self.problem
        best = np.clip(np.asarray(actions, dtype=np.float64), prob.u_low, prob.u_high)
        best_obj, n_lp, t0 = np.inf, 0, time.perf_counter()
        prev = None
        while n_lp < max_lps:
            if time_budget is not None and time.perf_counter() - t0 >= time_budget:
                break
            states = prob.net.rollout(self.x0, best)
            # a neuron the last LP left on its border crosses into the next region
            active = self.pattern(best, prev, states)
            if prev is not None and all(np.array_equal(a, o) for a, o in zip(active, prev)):
                break  # the same region as the last LP: nothing left to gain
            prev = active
            found = self.solve(active, self.sides(best, states))
            n_lp += 1
            if found is None:
                break
            u, obj = found
            if obj >= best_obj - 1e-9 * (1.0 + abs(best_obj)):
                break
            best, best_obj = u, obj
        return best, best_obj, n_lp


def region_descent(problem: MPCProblem, bounds: Bounds, x0: np.ndarray, actions: np.ndarray, goal: np.ndarray,
                   max_lps: int, time_budget: float | None = None) -> tuple[np.ndarray, float, int]:
    """:meth:`RegionLP.descend` from ``actions`` on a new :class:`RegionLP` (``goal``: ``(H, nx)``)."""
    return RegionLP(problem, bounds, x0, goal).descend(actions, max_lps, time_budget)


def basin_hop(lp: RegionLP, actions: np.ndarray, hops: int, size: int, rng: np.random.Generator, max_lps: int,
              time_budget: float | None = None) -> SearchResult:
    """Iterated region descent (basin hopping over activation regions): a global search with LPs only.

    The descent stops in a local optimum: no neighbouring region across a border it reaches is better. Each hop
    re-draws the actions of ``size`` consecutive steps (a window at a random place) uniformly in the action box,
    which lands the plan in a region far from the incumbent's, descends from there (at most ``max_lps`` LPs) and
    keeps the result when its cost on the network is lower. Never worse than its start; nothing proves the result
    optimal.

    Args:
        lp: The region LP of this ``x0``, goal and bounds (its last basis warm-starts the next LP).
        actions: ``(H, nu)`` start (usually the descent's result). A start that breaks a hard constraint is
            returned as it is (there is no feasible incumbent to improve).
        hops: Hops at most.
        size: Steps re-drawn per hop (clipped to the horizon).
        rng: Random generator of the windows and the re-drawn actions.
        max_lps: LPs per hop's descent at most.
        time_budget: Seconds for all hops (``None``: none); checked between hops.
    """
    p, t0 = lp.problem, time.perf_counter()
    best = np.clip(np.asarray(actions, dtype=np.float64), p.u_low, p.u_high)
    states = p.net.rollout(lp.x0, best)
    best_obj = start_obj = float(p.objective(states, best, lp.goal))
    done = improvements = 0
    if p.violation(states, hard_only=True) > 0:
        return SearchResult(best, best_obj, start_obj, 0, 0, time.perf_counter() - t0)
    size = int(min(max(size, 1), p.horizon))
    while done < hops:
        if time_budget is not None and time.perf_counter() - t0 >= time_budget:
            break
        cand = best.copy()
        s = int(rng.integers(0, p.horizon - size + 1))
        cand[s:s + size] = rng.uniform(p.u_low, p.u_high, size=(size, p.nu))
        u, obj, _ = lp.descend(cand, max_lps)
        done += 1
        if not np.isfinite(obj):
            continue
        u_states = p.net.rollout(lp.x0, u)
        # judged on the network's own rollout, as every search here: the LP's value is its upper bound
        u_obj = float(p.objective(u_states, u, lp.goal))
        if u_obj < best_obj - 1e-6 * abs(best_obj) - 1e-9 and p.violation(u_states, hard_only=True) <= 0:
            best, best_obj, improvements = u, u_obj, improvements + 1
    return SearchResult(best, best_obj, start_obj, done, improvements, time.perf_counter() - t0)

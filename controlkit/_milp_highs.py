"""Vectorised sparse assembly of the MPC MILP and its HiGHS (highspy) backend.

Columns: states ``x_0..x_H``, actions ``u_0..u_{H-1}``, one post-activation per kept hidden neuron per step
(stably inactive ReLUs are dropped), one binary per unstable ReLU, L1 epigraph variables, keep-out binaries.
Rows, per hidden layer and step (``a = W h_prev + b``):

- linear neuron (identity, or ReLU proven active):  ``h = a``
- unstable ReLU with bounds ``l < 0 < u``:  a column ``a`` in ``[l, u]`` with ``a = W h_prev + b``, then
  ``y >= a``,  ``y <= a - l (1 - z)``,  ``y <= u z``,  ``y >= 0``

The matrix is built with numpy in one pass per layer covering all steps (no loop per neuron or per step) and
handed to HiGHS in one ``passModel`` call. In receding horizon, :meth:`HighsMILP.update` changes only what
depends on ``x0``, the goal and the bounds, in place.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time

import highspy
import numpy as np
import scipy.sparse as sp

from controlkit._milp_bounds import INACTIVE, LINEAR, UNSTABLE, Bounds, preactivations
from controlkit._mpc_problem import MPCProblem
from controlkit.controller import Status


@dataclasses.dataclass
class SolveResult:
    """What one MILP solve returned (column values split into the parts a plan needs)."""

    status: Status
    actions: np.ndarray
    states: np.ndarray
    objective: float
    gap: float | None
    solve_time_s: float
    message: str


def _vec(value, n: int) -> np.ndarray:
    """``value`` (a scalar or ``n`` values) as a flat float array of length ``n``."""
    if np.ndim(value) == 0:
        return np.full(n, float(value))
    return np.asarray(value, dtype=np.float64).reshape(n)


class _Builder:
    """Collects columns and rows as numpy blocks; turns them into CSC arrays at the end."""

    def __init__(self) -> None:
        self.n_col = 0
        self.n_row = 0
        self.col_parts: list[tuple[np.ndarray, np.ndarray, np.ndarray, int]] = []  # lower, upper, cost, integer
        self.row_parts: list[tuple[np.ndarray, np.ndarray]] = []
        self.entries: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

    def cols(self, lower, upper, cost=0.0, integer: bool = False) -> np.ndarray:
        lower = np.asarray(lower, dtype=np.float64).reshape(-1)
        n = lower.size
        idx = np.arange(self.n_col, self.n_col + n)
        self.n_col += n
        self.col_parts.append((lower, _vec(upper, n), _vec(cost, n), int(integer)))
        return idx

    def rows(self, lower, upper, n: int) -> np.ndarray:
        idx = np.arange(self.n_row, self.n_row + n)
        self.n_row += n
        self.row_parts.append((_vec(lower, n), _vec(upper, n)))
        return idx

    def coef(self, rows: np.ndarray, cols: np.ndarray, vals) -> None:
        """Entries at ``(rows[i], cols[i])``; rows/cols/vals broadcast against each other."""
        rows, cols = np.asarray(rows), np.asarray(cols)
        if rows.shape != cols.shape:
            rows, cols = np.broadcast_arrays(rows, cols)
        vals = np.ravel(vals) if np.shape(vals) == rows.shape else np.broadcast_to(vals, rows.shape).ravel()
        self.entries.append((rows.ravel(), cols.ravel(), vals.astype(np.float64, copy=False)))

    def dense(self, rows: np.ndarray, cols: np.ndarray, mat: np.ndarray) -> None:
        """A dense block ``mat`` (rows x cols), keeping its nonzeros only."""
        r, c = np.nonzero(mat)
        self.entries.append((rows[r], cols[c], mat[r, c]))

    def arrays(self) -> dict[str, np.ndarray]:
        lower, upper, cost = (np.concatenate([p[i] for p in self.col_parts]) for i in range(3))
        integ = np.repeat(np.array([p[3] for p in self.col_parts], dtype=np.int32),
                          [p[0].size for p in self.col_parts])
        r, c, v = (np.concatenate([e[i] for e in self.entries]) for i in range(3))
        a = sp.csc_matrix((v, (r, c)), shape=(self.n_row, self.n_col))
        a.sum_duplicates()
        a.indptr, a.indices = a.indptr.astype(np.int32, copy=False), a.indices.astype(np.int32, copy=False)
        return {
            "col_lower": lower,
            "col_upper": upper,
            "col_cost": cost,
            "integrality": integ,
            "row_lower": np.concatenate([p[0] for p in self.row_parts]),
            "row_upper": np.concatenate([p[1] for p in self.row_parts]),
            "a": a,
        }


@dataclasses.dataclass
class Layout:
    """Where every part of the problem lives in the column/row arrays (used by updates and MIP starts)."""

    classes: list[list[np.ndarray]]
    x_cols: np.ndarray  # (T + 1, nx)
    u_cols: np.ndarray  # (T, nu)
    h_cols: list[list[np.ndarray]]  # per step/layer: columns of kept neurons (class != INACTIVE), in index order
    z_cols: list[list[np.ndarray]]  # per step/layer: binaries of unstable neurons
    a_cols: list[list[np.ndarray]]  # per step/layer: pre-activations of unstable neurons
    in_cols: list[list[np.ndarray]]  # per step/layer: input columns of the layer
    in_sel: list[list[np.ndarray]]  # per step/layer: which inputs of W_k those columns are
    bigm_rows: list[list[tuple[np.ndarray, np.ndarray]]]  # per step/layer: rows (y <= a - l(1-z), y <= u z)
    e_cols: np.ndarray  # (T, nx) or -1 where the state weight is 0
    e_rows: np.ndarray  # (2, T, nx): rows e - x >= -g and e + x >= g
    v_cols: np.ndarray  # (T, nu) or empty
    keep_out: list[tuple[np.ndarray, np.ndarray, np.ndarray]]  # per box: (delta cols (T, 2d), coords, sides)
    n_col: int


def _ids(mask: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """An id table shaped like ``mask``: ``ids`` where ``mask`` (row-major order), -1 elsewhere."""
    table = np.full(mask.shape, -1, dtype=np.int64)
    table[mask] = ids
    return table


def _dense3(bld: _Builder, rows: np.ndarray, cols: np.ndarray, mat: np.ndarray) -> None:
    """The block ``mat`` repeated for every step: ``rows`` (T, m) and ``cols`` (T, n) id tables, -1 = absent."""
    t, i, j = np.nonzero((rows[:, :, None] >= 0) & (cols[:, None, :] >= 0) & (mat != 0)[None])
    bld.entries.append((rows[t, i], cols[t, j], mat[i, j]))


def assemble(
    problem: MPCProblem, bounds: Bounds, x0: np.ndarray, goal: np.ndarray | None, relax: bool = False,
    n_steps: int | None = None, structure: list[list[np.ndarray]] | None = None,
) -> tuple[dict[str, np.ndarray], Layout]:
    """Sparse arrays of the MILP (or, with ``relax``, its LP relaxation without objective) for ``n_steps`` steps.

    ``structure`` gives each neuron's slot when it should differ from its class under ``bounds``: a stable neuron
    may sit in an UNSTABLE slot (its binary is then fixed by its column bounds), so that one model serves the
    receding horizon while stability changes with ``x0``.
    """
    net = problem.net
    T = problem.horizon if n_steps is None else n_steps
    nx, nu = net.nx, net.nu
    actual = bounds.classes(problem)[:T]
    classes = actual if structure is None else structure[:T]
    bld = _Builder()
    x_lo, x_hi = bounds.x_lo[: T + 1].copy(), bounds.x_hi[: T + 1].copy()
    if x0 is not None:  # None: the first state keeps its box (a relaxation window starting at a later step)
        x_lo[0] = x_hi[0] = x0
    x_cols = bld.cols(x_lo, x_hi.reshape(-1)).reshape(T + 1, nx)
    u_cols = bld.cols(np.tile(problem.u_low, T), np.tile(problem.u_high, T)).reshape(T, nu)
    h_cols, z_cols, a_cols, in_cols_all, in_sel_all, bigm = ([[] for _ in range(T)] for _ in range(6))
    # One pass per layer over all steps at once: id tables (T, n) hold each neuron's column/row, -1 where absent.
    prev = np.concatenate([x_cols[:-1], u_cols], axis=1)
    for k in range(len(net.relu_masks)):
        w, b = net.weights[k], net.biases[k]
        cls = np.stack([classes[t][k] for t in range(T)])
        now = np.stack([actual[t][k] for t in range(T)])
        raw_lo = np.stack([bounds.pre_lo[t][k] for t in range(T)])
        raw_hi = np.stack([bounds.pre_hi[t][k] for t in range(T)])
        # big-M bounds clipped at 0 so the rows stay valid for stable neurons in unstable slots
        lo, hi = np.minimum(raw_lo, 0.0), np.maximum(raw_hi, 0.0)
        kept, lin, uns = cls != INACTIVE, cls == LINEAR, cls == UNSTABLE
        bt = np.broadcast_to(b, cls.shape)
        h_id = _ids(kept, bld.cols(np.where(uns, np.maximum(raw_lo, 0.0), raw_lo)[kept],
                                   np.where(uns, hi, raw_hi)[kept]))
        z_id = _ids(uns, bld.cols((now == LINEAR)[uns].astype(float), (now != INACTIVE)[uns].astype(float),
                                  integer=not relax))
        # linear neurons: h - W h_in = b
        r_lin = _ids(lin, bld.rows(bt[lin], bt[lin], int(lin.sum())))
        bld.coef(r_lin[lin], h_id[lin], 1.0)
        _dense3(bld, r_lin, prev, -w)
        # unstable: an explicit pre-activation a = W h_in + b in [l, u] keeps W once and the big-M rows short:
        # y - a >= 0 ; y - a - l z <= -l ; y - u z <= 0
        n_uns = int(uns.sum())
        a_id = _ids(uns, bld.cols(raw_lo[uns], raw_hi[uns]))
        r0 = _ids(uns, bld.rows(bt[uns], bt[uns], n_uns))
        bld.coef(r0[uns], a_id[uns], 1.0)
        _dense3(bld, r0, prev, -w)
        r1 = bld.rows(0.0, np.inf, n_uns)
        r2 = _ids(uns, bld.rows(-np.inf, -lo[uns], n_uns))
        r3 = _ids(uns, bld.rows(-np.inf, 0.0, n_uns))
        y, a, z = h_id[uns], a_id[uns], z_id[uns]
        for rr in (r1, r2[uns], r3[uns]):
            bld.coef(rr, y, 1.0)
        bld.coef(np.concatenate([r1, r2[uns]]), np.concatenate([a, a]), -1.0)
        bld.coef(r2[uns], z, -lo[uns])
        bld.coef(r3[uns], z, -hi[uns])
        for t in range(T):
            present = prev[t] >= 0
            h_cols[t].append(h_id[t][kept[t]]), z_cols[t].append(z_id[t][uns[t]]), a_cols[t].append(a_id[t][uns[t]])
            in_cols_all[t].append(prev[t][present]), in_sel_all[t].append(np.flatnonzero(present))
            bigm[t].append((r2[t][uns[t]], r3[t][uns[t]]))
        prev = h_id
    # output: x_{t+1} - [x_t] - W_L h = b_L
    r_out = bld.rows(np.tile(net.biases[-1], T), np.tile(net.biases[-1], T), T * nx).reshape(T, nx)
    bld.coef(r_out, x_cols[1:], 1.0)
    if net.residual:
        bld.coef(r_out, x_cols[:-1], -1.0)
    _dense3(bld, r_out, prev, -net.weights[-1])
    e_cols = np.full((T, nx), -1)
    e_rows = np.full((2, T, nx), -1)
    v_cols = np.zeros((0, nu), dtype=int)
    keep_out = []
    if not relax:
        g = np.zeros((T, nx)) if goal is None else goal[:T]
        w = problem.step_weights[:T]
        on = problem.state_weights > 0
        if on.any():
            e = bld.cols(np.zeros(int(on.sum()) * T), np.inf, cost=w[:, on].reshape(-1)).reshape(T, -1)
            xs = x_cols[1:, on]
            rm = bld.rows(-g[:, on].reshape(-1), np.inf, e.size).reshape(e.shape)
            rp = bld.rows(g[:, on].reshape(-1), np.inf, e.size).reshape(e.shape)
            bld.coef(np.concatenate([rm, rp]), np.concatenate([e, e]), 1.0)
            bld.coef(rm, xs, -1.0)
            bld.coef(rp, xs, 1.0)
            e_cols[:, on], e_rows[0][:, on], e_rows[1][:, on] = e, rm, rp
        if problem.control_weight > 0:
            v_cols = bld.cols(np.zeros(T * nu), np.inf, cost=problem.control_weight).reshape(T, nu)
            rm = bld.rows(0.0, np.inf, T * nu).reshape(T, nu)
            rp = bld.rows(0.0, np.inf, T * nu).reshape(T, nu)
            bld.coef(np.concatenate([rm, rp]), np.concatenate([v_cols, v_cols]), 1.0)
            bld.coef(rm, u_cols, -1.0)
            bld.coef(rp, u_cols, 1.0)
    if len(problem.b_state):
        m = len(problem.b_state)
        r = bld.rows(-np.inf, np.tile(problem.b_state, T), T * m).reshape(T, m)
        for t in range(T):
            bld.dense(r[t], x_cols[t + 1], problem.a_state)
    if not relax:
        for box in problem.keep_out:
            c = np.asarray(box.coords)
            d = c.size
            lo, hi = np.asarray(box.low), np.asarray(box.high)
            xl, xh = problem.x_low[c], problem.x_high[c]
            delta = bld.cols(np.zeros(T * 2 * d), 1.0, integer=True).reshape(T, 2 * d)
            r_any = bld.rows(1.0, np.inf, T)
            bld.coef(r_any[:, None], delta, 1.0)
            xs = x_cols[1:, c]  # (T, d)
            # below the box on coord c:  x_c + (xh - lo) delta <= xh ; above:  x_c - (hi - xl) delta >= xl
            r_below = bld.rows(-np.inf, np.tile(xh, T), T * d).reshape(T, d)
            r_above = bld.rows(np.tile(xl, T), np.inf, T * d).reshape(T, d)
            bld.coef(np.concatenate([r_below, r_below]), np.concatenate([xs, delta[:, :d]]),
                     np.concatenate([np.ones((T, d)), np.broadcast_to(xh - lo, (T, d))]))
            bld.coef(np.concatenate([r_above, r_above]), np.concatenate([xs, delta[:, d:]]),
                     np.concatenate([np.ones((T, d)), -np.broadcast_to(hi - xl, (T, d))]))
            keep_out.append((delta, c, np.stack([lo, hi])))
    arrays = bld.arrays()
    layout = Layout(classes, x_cols, u_cols, h_cols, z_cols, a_cols, in_cols_all, in_sel_all, bigm, e_cols,
                    e_rows, v_cols, keep_out, bld.n_col)
    return arrays, layout


def _silent_highs() -> highspy.Highs:
    """A Highs instance without its start-up banner.

    HiGHS prints the banner from C++ while it is constructed, before any option can be set, so a planner that
    builds a model per episode floods the logs; standard output is pointed at /dev/null for that one call.
    """
    sys.stdout.flush()
    saved, devnull = os.dup(1), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        h = highspy.Highs()
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)
    h.setOptionValue("output_flag", False)
    return h


def _status(h: highspy.Highs) -> tuple[Status, str]:
    ms = h.getModelStatus()
    text = h.modelStatusToString(ms)
    has_solution = h.getInfo().primal_solution_status == highspy.kSolutionStatusFeasible
    if ms == highspy.HighsModelStatus.kOptimal:
        return Status.OK, text
    if ms in (highspy.HighsModelStatus.kInfeasible, highspy.HighsModelStatus.kUnboundedOrInfeasible):
        return Status.INFEASIBLE, text
    if ms in (highspy.HighsModelStatus.kTimeLimit, highspy.HighsModelStatus.kInterrupt,
              highspy.HighsModelStatus.kIterationLimit, highspy.HighsModelStatus.kSolutionLimit):
        return (Status.SUBOPTIMAL if has_solution else Status.TIMEOUT), text
    return Status.ERROR, text


class CompiledMILP:
    """What every backend's compiled model shares: the layout, structure checks and complete MIP starts."""

    problem: MPCProblem
    layout: Layout
    warm_start_capable: bool = True  # whether solve() passes a MIP start on to the solver

    def compatible(self, classes: list[list[np.ndarray]]) -> bool:
        """Whether new neuron classes fit this structure (an unstable slot accepts any class, others must match)."""
        return all(
            bool(np.all((old == UNSTABLE) | (old == new)))
            for old_t, new_t in zip(self.layout.classes, classes)
            for old, new in zip(old_t, new_t)
        )

    def merged_structure(self, classes: list[list[np.ndarray]]) -> list[list[np.ndarray]]:
        """This structure widened so ``classes`` fit: slots whose class changed become UNSTABLE."""
        return [[np.where(old == new, old, UNSTABLE).astype(np.int8) for old, new in zip(old_t, new_t)]
                for old_t, new_t in zip(self.layout.classes, classes)]

    def start_vector(self, x0: np.ndarray, actions: np.ndarray, goal: np.ndarray, bounds: Bounds) -> np.ndarray:
        """A complete MIP start: every column's value implied by rolling ``actions`` through the network."""
        lay, prob = self.layout, self.problem
        states = prob.net.rollout(x0, actions)
        pre = preactivations(prob, states, actions)
        classes = bounds.classes(prob)
        val = np.zeros(lay.n_col)
        val[lay.x_cols] = states
        val[lay.u_cols] = actions
        for k, mask in enumerate(prob.net.relu_masks):
            post = np.where(mask, np.maximum(pre[k], 0), pre[k])
            for t in range(prob.horizon):
                old = lay.classes[t][k]
                kept, uns = np.flatnonzero(old != INACTIVE), np.flatnonzero(old == UNSTABLE)
                val[lay.h_cols[t][k]] = post[t, kept]
                z = (pre[k][t, uns] > 0).astype(float)
                new = classes[t][k][uns]
                val[lay.z_cols[t][k]] = np.where(new == LINEAR, 1.0, np.where(new == INACTIVE, 0.0, z))
                val[lay.a_cols[t][k]] = pre[k][t, uns]
        on = lay.e_cols[0] >= 0
        val[lay.e_cols[:, on]] = np.abs(states[1:, on] - goal[:, on])
        if lay.v_cols.size:
            val[lay.v_cols] = np.abs(actions)
        for delta, c, (lo, hi) in lay.keep_out:
            xs = states[1:, c]
            val[delta] = np.concatenate([xs <= lo, xs >= hi], axis=1).astype(float)
        return val


class HighsMILP(CompiledMILP):
    """One HiGHS instance holding the compiled problem; rebuilt only when the structure must change.

    Args:
        problem: The validated problem.
        bounds: Neuron and state bounds (from :func:`~controlkit._milp_bounds.ibp`, maybe tightened).
        x0: Initial state.
        goal: ``(H, nx)`` goals, or ``None`` for a relaxation.
        relax: Build the LP relaxation without objective (used for bound tightening).
        structure: Neuron slots, when they should differ from the classes under ``bounds`` (see :func:`assemble`).
        n_steps: Build only the first ``n_steps`` steps (relaxations for early layers need no more).
        time_limit: Seconds per solve (``None`` = no limit).
        mip_gap: Relative MIP gap.
        threads: HiGHS threads.
    """

    def __init__(self, problem: MPCProblem, bounds: Bounds, x0: np.ndarray, goal: np.ndarray | None = None,
                 relax: bool = False, n_steps: int | None = None, time_limit: float | None = None,
                 mip_gap: float = 1e-4, threads: int = 1, structure: list[list[np.ndarray]] | None = None) -> None:
        self.problem = problem
        t0 = time.perf_counter()
        arrays, self.layout = assemble(problem, bounds, x0, goal, relax=relax, n_steps=n_steps, structure=structure)
        self.h = _silent_highs()
        self.h.setOptionValue("threads", int(threads))
        self.h.setOptionValue("mip_rel_gap", float(mip_gap))
        # Tight feasibility tolerances keep the MILP's predicted states equal to the network's rollout.
        self.h.setOptionValue("mip_feasibility_tolerance", 1e-9)
        self.h.setOptionValue("primal_feasibility_tolerance", 1e-9)
        self.set_time_limit(time_limit)
        if relax:
            # Tightening LPs differ only in two cost entries: without presolve HiGHS re-optimises each one from the
            # previous optimal basis (dual simplex hot start) instead of starting over.
            self.h.setOptionValue("presolve", "off")
        a = arrays["a"]
        status = self.h.passModel(
            a.shape[1], a.shape[0], a.nnz, int(highspy.MatrixFormat.kColwise), int(highspy.ObjSense.kMinimize), 0.0,
            arrays["col_cost"], arrays["col_lower"], arrays["col_upper"], arrays["row_lower"], arrays["row_upper"],
            a.indptr[:-1], a.indices, a.data, arrays["integrality"],
        )
        if status == highspy.HighsStatus.kError:
            raise RuntimeError("HiGHS rejected the assembled model (passModel returned kError).")
        self.build_time_s = time.perf_counter() - t0
        self.n_binaries = int(arrays["integrality"].sum())  # binary slots, some maybe fixed by their bounds
        self._int_cols = np.flatnonzero(arrays["integrality"]).astype(np.int32)
        self._time_limit = time_limit
        self.n_rows, self.n_cols, self.nnz = a.shape[0], a.shape[1], a.nnz

    def set_time_limit(self, time_limit: float | None) -> None:
        self._time_limit = time_limit
        self.h.setOptionValue("time_limit", float("inf") if time_limit is None else float(time_limit))

    # --- receding horizon -------------------------------------------------------------------------------------
    def update(self, x0: np.ndarray, goal: np.ndarray, bounds: Bounds) -> bool:
        """Change x0, goal and bound-dependent data in place (call :meth:`compatible` first); returns True."""
        self.update_neurons(bounds, x0=x0)
        self.set_goal(goal)
        return True

    def update_neurons(self, bounds: Bounds, steps=None, x0: np.ndarray | None = None) -> None:
        """Write ``bounds`` (state boxes, neuron bounds, big-M entries, fixed binaries) into the model in place.

        Args:
            bounds: New bounds whose classes fit this structure.
            steps: Steps whose neurons changed (default all); state boxes are always rewritten.
            x0: New initial state (default: keep the current one).
        """
        lay, h = self.layout, self.h
        T = len(lay.classes)
        x_lo, x_hi = bounds.x_lo[: T + 1].copy(), bounds.x_hi[: T + 1].copy()
        cols = lay.x_cols.reshape(-1).astype(np.int32)
        if x0 is None:
            cols, x_lo, x_hi = cols[lay.x_cols.shape[1]:], x_lo[1:], x_hi[1:]
        else:
            x_lo[0] = x_hi[0] = x0
        h.changeColsBounds(cols.size, cols, x_lo.reshape(-1), x_hi.reshape(-1))
        new_classes = bounds.classes(self.problem)
        hc, hl, hu, zc, zl, zu = [], [], [], [], [], []
        for t in range(T) if steps is None else steps:
            for k, (old, new) in enumerate(zip(lay.classes[t], new_classes[t])):
                lo, hi = bounds.pre_lo[t][k], bounds.pre_hi[t][k]
                kept = np.flatnonzero(old != INACTIVE)
                hc.append(lay.h_cols[t][k])
                hl.append(np.where(old[kept] == UNSTABLE, np.maximum(lo[kept], 0.0), lo[kept]))
                hu.append(np.where(old[kept] == UNSTABLE, np.maximum(hi[kept], 0.0), hi[kept]))
                uns = np.flatnonzero(old == UNSTABLE)
                hc.append(lay.a_cols[t][k])
                hl.append(lo[uns])
                hu.append(hi[uns])
                zc.append(lay.z_cols[t][k])
                zl.append((new[uns] == LINEAR).astype(float))
                zu.append((new[uns] != INACTIVE).astype(float))
                r2, r3 = lay.bigm_rows[t][k]
                # highspy changes one coefficient per call; only unstable slots have bound-dependent entries
                for r, z, l_ in zip(r2, lay.z_cols[t][k], lo[uns]):
                    h.changeCoeff(int(r), int(z), -float(min(l_, 0.0)))
                    h.changeRowBounds(int(r), -np.inf, -float(min(l_, 0.0)))
                for r, z, u_ in zip(r3, lay.z_cols[t][k], hi[uns]):
                    h.changeCoeff(int(r), int(z), -float(max(u_, 0.0)))
        for c, lo, hi in ((hc, hl, hu), (zc, zl, zu)):
            if not c:
                continue
            c = np.concatenate(c).astype(np.int32)
            if c.size:
                h.changeColsBounds(c.size, c, np.concatenate(lo), np.concatenate(hi))

    def set_goal(self, goal: np.ndarray) -> None:
        lay = self.layout
        on = lay.e_cols[0] >= 0
        if not on.any():
            return
        g = goal[:, on].reshape(-1)
        for rows, lower in ((lay.e_rows[0][:, on], -g), (lay.e_rows[1][:, on], g)):
            rows = rows.reshape(-1).astype(np.int32)
            self.h.changeRowsBounds(rows.size, rows, lower, np.full(rows.size, np.inf))

    # --- solving ----------------------------------------------------------------------------------------------
    def solve(self, start: np.ndarray | None = None) -> SolveResult:
        """Solve (optionally from a complete MIP start) and read back actions, states, objective and gap."""
        h, lay, prob = self.h, self.layout, self.problem
        if start is not None:
            sol = highspy.HighsSolution()
            sol.col_value = list(start)
            sol.value_valid = True
            h.setSolution(sol)
        t0 = time.perf_counter()
        h.run()
        elapsed = time.perf_counter() - t0
        status, text = _status(h)
        info = h.getInfo()
        nan_a = np.full((prob.horizon, prob.nu), np.nan)
        nan_x = np.full((prob.horizon + 1, prob.nx), np.nan)
        if status in (Status.OK, Status.SUBOPTIMAL):
            x = np.asarray(h.getSolution().col_value)
            return SolveResult(status, x[lay.u_cols], x[lay.x_cols], float(info.objective_function_value),
                               float(info.mip_gap), elapsed, text)
        return SolveResult(status, nan_a, nan_x, float("nan"), None, elapsed, text)

    def polish(self, x0: np.ndarray, actions: np.ndarray, goal: np.ndarray, bounds: Bounds, max_lps: int,
               time_budget: float | None = None) -> tuple[np.ndarray, float, int]:
        """Improve ``actions`` by a descent over activation regions: one LP per region, each from the last optimum.

        With every binary fixed to the pattern of the current actions, the MILP is the LP of planning inside that
        linear region of the unrolled network; its optimum is at least as good as the current point, which lies in
        the region. Neurons the LP drives to a pre-activation of 0 sit on the border of the next region: their
        binaries flip (a border point lies in both regions, so the objective never increases) and the next LP
        continues there. Stops when an LP no longer improves, after ``max_lps`` LPs or ``time_budget`` seconds.
        A local method: it gives branch and bound a good MIP start, it proves nothing. The model is restored
        (binaries, bounds, time limit) before returning.

        Returns:
            The best actions found, their objective (``inf`` if no LP was solved) and the number of LPs solved.
        """
        h, lay, prob = self.h, self.layout, self.problem
        ints = self._int_cols
        _, _, _, saved_lo, saved_hi, _ = h.getCols(ints.size, ints)  # only the binaries, not a copy of the LP
        cont = np.full(ints.size, highspy.HighsVarType.kContinuous)
        h.changeColsIntegrality(ints.size, ints, cont)
        best_obj, best, n_lp, t0 = np.inf, np.asarray(actions, dtype=np.float64), 0, time.perf_counter()
        z_cols = np.concatenate([c for row in lay.z_cols for c in row] + [np.zeros(0, int)]).astype(np.int32)
        pos = np.searchsorted(ints, z_cols)  # where each ReLU binary sits among the integer columns
        a_cols = np.concatenate([c for row in lay.a_cols for c in row] + [np.zeros(0, int)]).astype(int)
        prev_z = None
        try:
            while n_lp < max_lps:
                left = None if time_budget is None else time_budget - (time.perf_counter() - t0)
                if left is not None and left <= 0:
                    break
                val = self.start_vector(x0, best, goal, bounds)
                fixed = val[ints]
                if prev_z is not None:
                    # a neuron the last LP left on its border (pre-activation ~ 0) crosses into the next region
                    border = np.abs(val[a_cols]) <= 1e-7
                    fixed[pos] = np.where(border, 1.0 - prev_z, fixed[pos])
                fixed = np.clip(fixed, saved_lo, saved_hi)
                if np.array_equal(fixed[pos], prev_z) and n_lp:
                    break  # same region as the last LP: nothing left to gain
                prev_z = fixed[pos].copy()
                h.changeColsBounds(ints.size, ints, fixed, fixed)
                h.setOptionValue("time_limit", float("inf") if left is None else float(left))
                h.run()
                n_lp += 1
                if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
                    break
                obj = float(h.getInfo().objective_function_value)
                if obj >= best_obj - 1e-9 * (1.0 + abs(best_obj)):
                    break
                best_obj, best = obj, np.asarray(h.getSolution().col_value)[lay.u_cols]
        finally:
            h.changeColsBounds(ints.size, ints, saved_lo, saved_hi)
            h.changeColsIntegrality(ints.size, ints, np.full(ints.size, highspy.HighsVarType.kInteger))
            self.set_time_limit(self._time_limit)
        return np.clip(best, prob.u_low, prob.u_high), best_obj, n_lp

    def optimise_preactivation(self, t: int, k: int, j: int, minimise: bool) -> float:
        """Min or max of the pre-activation of unstable-slot neuron ``j`` (layer ``k``, step ``t``) in this LP.

        The neuron's pre-activation has its own column, so the objective is that one column: consecutive calls
        change two cost entries and HiGHS re-optimises from the previous basis. Returns ``-inf`` (minimise) or
        ``inf`` (maximise) unless the LP is solved to optimality, so a failed LP never tightens a bound.
        """
        slots = np.flatnonzero(self.layout.classes[t][k] == UNSTABLE)
        col = int(self.layout.a_cols[t][k][np.searchsorted(slots, j)])
        sign = 1.0 if minimise else -1.0
        prev = getattr(self, "_cost_col", None)
        cols = np.array([col] if prev is None or prev == col else [prev, col], dtype=np.int32)
        costs = np.array([sign] if cols.size == 1 else [0.0, sign])
        self.h.changeColsCost(cols.size, cols, costs)
        self._cost_col = col
        self.h.run()
        if self.h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
            return -np.inf if minimise else np.inf
        value = sign * float(self.h.getInfo().objective_function_value)
        # Widen by the solver's tolerance so the bound stays sound despite floating-point error.
        return value - sign * 1e-6 * (1.0 + abs(value))

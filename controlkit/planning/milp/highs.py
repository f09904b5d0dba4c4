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
import functools
import logging
import os
import sys
import time
from typing import Any

try:
    import highspy
except ImportError as _exc:  # an optional extra: say which one installs it
    from controlkit.core.extras import missing_extra

    raise missing_extra("highspy", "MIP-MPC (HiGHS)") from _exc
import numpy as np
import scipy.sparse as sp

from controlkit.core.controller import Status
from controlkit.core.errors import ControlkitError
from controlkit.planning.milp.bounds import INACTIVE, LINEAR, UNSTABLE, Bounds, classify, preactivations
from controlkit.planning.problem import MPCProblem


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


_SCIPY_NNZ = 4096  # entries above which the CSC conversion goes through scipy (measured crossover)


@dataclasses.dataclass
class CSC:
    """A sparse matrix in compressed-column form, as HiGHS takes it (sorted row indices, no duplicates).

    The fields have scipy's names; a scipy matrix is a :meth:`to_scipy` away, but building one checks and copies
    more than a millisecond build can afford.
    """

    data: np.ndarray
    indices: np.ndarray  # int32 row of each entry
    indptr: np.ndarray  # int32, n_col + 1 column starts
    shape: tuple[int, int]

    @property
    def nnz(self) -> int:
        return int(self.data.size)

    def to_scipy(self) -> sp.csc_matrix:
        return sp.csc_matrix((self.data, self.indices, self.indptr), shape=self.shape)

    def toarray(self) -> np.ndarray:
        return self.to_scipy().toarray()


class _Builder:
    """Collects columns, rows and entries as numpy blocks (or scalars); turns them into CSC arrays at the end.

    Blocks are only recorded here and written into preallocated arrays once, in :meth:`arrays`: on small models
    the build costs what its numpy calls cost, so each block costs a few slice assignments and nothing else.
    """

    def __init__(self) -> None:
        self.n_col = 0
        self.n_row = 0
        self.nnz = 0
        self.col_parts: list[tuple[int, int, object, object, object, bool]] = []  # start, stop, lower, upper, cost, int
        self.row_parts: list[tuple[int, int, object, object]] = []
        self.entries: list[tuple[int, int, np.ndarray, np.ndarray, object]] = []

    def cols(self, n: int, lower, upper, cost=0.0, integer: bool = False) -> np.ndarray:
        """``n`` columns; ``lower``/``upper``/``cost`` are scalars or flat arrays of length ``n``."""
        start = self.n_col
        self.n_col += n
        self.col_parts.append((start, self.n_col, lower, upper, cost, integer))
        return np.arange(start, self.n_col)

    def rows(self, n: int, lower, upper) -> np.ndarray:
        """``n`` rows; ``lower``/``upper`` are scalars or flat arrays of length ``n``."""
        start = self.n_row
        self.n_row += n
        self.row_parts.append((start, self.n_row, lower, upper))
        return np.arange(start, self.n_row)

    def coef(self, rows: np.ndarray, cols: np.ndarray, vals) -> None:
        """Entries at ``(rows[i], cols[i])`` (arrays of one shape); ``vals`` a scalar or an array of that shape."""
        start = self.nnz
        self.nnz += rows.size
        self.entries.append((start, self.nnz, rows, cols, vals))

    def dense(self, rows: np.ndarray, cols: np.ndarray, mat: np.ndarray) -> None:
        """A dense block ``mat`` (rows x cols), keeping its nonzeros only."""
        r, c = np.nonzero(mat)
        self.coef(rows[r], cols[c], mat[r, c])

    def arrays(self) -> dict[str, np.ndarray]:
        n, m = self.n_col, self.n_row
        lower, upper, cost = np.empty(n), np.empty(n), np.empty(n)
        integ = np.zeros(n, dtype=np.int32)
        for s, e, lo, up, co, is_int in self.col_parts:
            lower[s:e], upper[s:e], cost[s:e] = lo, up, co
            if is_int:
                integ[s:e] = 1
        row_lower, row_upper = np.empty(m), np.empty(m)
        for s, e, lo, up in self.row_parts:
            row_lower[s:e], row_upper[s:e] = lo, up
        r, c, v = np.empty(self.nnz, dtype=np.int64), np.empty(self.nnz, dtype=np.int64), np.empty(self.nnz)
        for s, e, rows, cols, vals in self.entries:
            r[s:e], c[s:e] = rows.reshape(-1), cols.reshape(-1)
            v[s:e] = vals if np.ndim(vals) == 0 else vals.reshape(-1)
        if self.nnz > _SCIPY_NNZ:
            # large models: scipy's compiled COO -> CSC conversion (linear time) beats a numpy sort
            s = sp.csc_matrix((v, (r, c)), shape=(m, n))
            s.sum_duplicates()
            a = CSC(s.data, s.indices.astype(np.int32, copy=False), s.indptr.astype(np.int32, copy=False), (m, n))
        else:
            # small models: scipy's checks and conversions cost a tenth of a millisecond, more than the sort
            key = c * m + r
            order = np.argsort(key, kind="stable")
            key, v = key[order], v[order]
            first = np.ones(key.size, dtype=bool)
            first[1:] = key[1:] != key[:-1]
            if not first.all():  # duplicate entries are summed, as scipy does
                v = np.add.reduceat(v, np.flatnonzero(first))
                key = key[first]
            col = key // m
            a = CSC(v, (key - col * m).astype(np.int32), np.searchsorted(col, np.arange(n + 1)).astype(np.int32),
                    (m, n))
        return {"col_lower": lower, "col_upper": upper, "col_cost": cost, "integrality": integ,
                "row_lower": row_lower, "row_upper": row_upper, "a": a}


def _present(table: np.ndarray) -> list[np.ndarray]:
    """Per step, the ids of an id table ``(T, n)`` that exist (-1 = absent), in index order."""
    return [row[row >= 0] for row in table]


@dataclasses.dataclass
class Layout:
    """Where every part of the problem lives in the column/row arrays (used by updates and MIP starts).

    Neuron ids are kept as one table ``(T, n_k)`` per hidden layer (-1 where a neuron has no such column or row);
    the per-step lists (``h_cols[t][k]``, ...) are derived from them on first use, outside the build.
    """

    classes: list[list[np.ndarray]]
    x_cols: np.ndarray  # (T + 1, nx)
    u_cols: np.ndarray  # (T, nu)
    h_ids: list[np.ndarray]  # per layer: post-activation columns of kept neurons (class != INACTIVE)
    z_ids: list[np.ndarray]  # per layer: binaries of unstable slots
    a_ids: list[np.ndarray]  # per layer: pre-activation columns of unstable slots
    bigm_ids: list[tuple[np.ndarray, np.ndarray]]  # per layer: rows y <= a - l(1-z) and y <= u z of unstable slots
    e_cols: np.ndarray  # (T, nx) or -1 where the state weight is 0
    e_rows: np.ndarray  # (2, T, nx): rows e - x >= -g and e + x >= g
    v_cols: np.ndarray  # (T, nu) or empty
    keep_out: list[tuple[np.ndarray, ...]]  # per box: (delta cols (T, 2d), coords, sides, slack cols (T,) or ())
    n_col: int

    def _per_step(self, tables: list[np.ndarray]) -> list[list[np.ndarray]]:
        per_layer = [_present(tab) for tab in tables]
        return [[ids[t] for ids in per_layer] for t in range(len(self.classes))]

    @functools.cached_property
    def h_cols(self) -> list[list[np.ndarray]]:
        """Per step and layer: columns of kept neurons, in neuron order."""
        return self._per_step(self.h_ids)

    @functools.cached_property
    def z_cols(self) -> list[list[np.ndarray]]:
        """Per step and layer: binaries of unstable slots, in neuron order."""
        return self._per_step(self.z_ids)

    @functools.cached_property
    def a_cols(self) -> list[list[np.ndarray]]:
        """Per step and layer: pre-activation columns of unstable slots, in neuron order."""
        return self._per_step(self.a_ids)

    @functools.cached_property
    def bigm_rows(self) -> list[list[tuple[np.ndarray, np.ndarray]]]:
        """Per step and layer: the big-M rows ``(y <= a - l(1-z), y <= u z)`` of unstable slots."""
        r2, r3 = self._per_step([r for r, _ in self.bigm_ids]), self._per_step([r for _, r in self.bigm_ids])
        return [[(a, b) for a, b in zip(r2_t, r3_t)] for r2_t, r3_t in zip(r2, r3)]


def _ids(mask: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """An id table shaped like ``mask``: ``ids`` where ``mask`` (row-major order), -1 elsewhere."""
    table = np.full(mask.shape, -1, dtype=np.int64)
    table[mask] = ids
    return table


def _dense3(bld: _Builder, rows: np.ndarray, cols: np.ndarray, mat: np.ndarray) -> None:
    """The block ``mat`` repeated for every step: ``rows`` (T, m) and ``cols`` (T, n) id tables, -1 = absent."""
    t, i, j = np.nonzero((rows[:, :, None] >= 0) & (cols[:, None, :] >= 0) & (mat != 0)[None])
    bld.coef(rows[t, i], cols[t, j], mat[i, j])


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
    bld = _Builder()
    x_lo, x_hi = bounds.x_lo[: T + 1].copy(), bounds.x_hi[: T + 1].copy()
    if x0 is not None:  # None: the first state keeps its box (a relaxation window starting at a later step)
        x_lo[0] = x_hi[0] = x0
    x_cols = bld.cols((T + 1) * nx, x_lo.reshape(-1), x_hi.reshape(-1)).reshape(T + 1, nx)
    u_cols = bld.cols(T * nu, np.tile(problem.u_low, T), np.tile(problem.u_high, T)).reshape(T, nu)
    h_ids, z_ids, a_ids, bigm_ids, layer_classes = [], [], [], [], []
    # One pass per layer over all steps at once: id tables (T, n) hold each neuron's column/row, -1 where absent.
    prev = np.concatenate([x_cols[:-1], u_cols], axis=1)
    for k, mask in enumerate(net.relu_masks):
        w, b = net.weights[k], net.biases[k]
        raw_lo, raw_hi = bounds.layer(k, T)
        now = classify(mask, raw_lo, raw_hi)
        cls = now if structure is None else np.stack([structure[t][k] for t in range(T)])
        layer_classes.append(cls)
        # big-M bounds clipped at 0 so the rows stay valid for stable neurons in unstable slots
        lo, hi = np.minimum(raw_lo, 0.0), np.maximum(raw_hi, 0.0)
        kept, lin, uns = cls != INACTIVE, cls == LINEAR, cls == UNSTABLE
        n_kept, n_lin, n_uns = int(kept.sum()), int(lin.sum()), int(uns.sum())
        bt = np.broadcast_to(b, cls.shape)
        h_id = _ids(kept, bld.cols(n_kept, np.where(uns, np.maximum(raw_lo, 0.0), raw_lo)[kept],
                                   np.where(uns, hi, raw_hi)[kept]))
        lo_u, hi_u, now_u = lo[uns], hi[uns], now[uns]
        z_id = _ids(uns, bld.cols(n_uns, (now_u == LINEAR).astype(float), (now_u != INACTIVE).astype(float),
                                  integer=not relax))
        # linear neurons: h - W h_in = b
        b_lin = bt[lin]
        r_lin = _ids(lin, bld.rows(n_lin, b_lin, b_lin))
        bld.coef(r_lin[lin], h_id[lin], 1.0)
        _dense3(bld, r_lin, prev, -w)
        # unstable: an explicit pre-activation a = W h_in + b in [l, u] keeps W once and the big-M rows short:
        # y - a >= 0 ; y - a - l z <= -l ; y - u z <= 0
        a_id = _ids(uns, bld.cols(n_uns, raw_lo[uns], raw_hi[uns]))
        b_uns = bt[uns]
        r0 = _ids(uns, bld.rows(n_uns, b_uns, b_uns))
        y, a, z = h_id[uns], a_id[uns], z_id[uns]
        bld.coef(r0[uns], a, 1.0)
        _dense3(bld, r0, prev, -w)
        r1 = bld.rows(n_uns, 0.0, np.inf)
        r2 = _ids(uns, bld.rows(n_uns, -np.inf, -lo_u))
        r3 = _ids(uns, bld.rows(n_uns, -np.inf, 0.0))
        r2u, r3u = r2[uns], r3[uns]
        bld.coef(np.concatenate([r1, r2u, r3u]), np.concatenate([y, y, y]), 1.0)
        bld.coef(np.concatenate([r1, r2u]), np.concatenate([a, a]), -1.0)
        bld.coef(r2u, z, -lo_u)
        bld.coef(r3u, z, -hi_u)
        h_ids.append(h_id), z_ids.append(z_id), a_ids.append(a_id), bigm_ids.append((r2, r3))
        prev = h_id
    # output: x_{t+1} - [x_t] - W_L h = b_L
    b_out = np.tile(net.biases[-1], T)
    r_out = bld.rows(T * nx, b_out, b_out).reshape(T, nx)
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
            n_e = int(on.sum()) * T
            e = bld.cols(n_e, 0.0, np.inf, cost=w[:, on].reshape(-1)).reshape(T, -1)
            xs = x_cols[1:, on]
            g_on = g[:, on].reshape(-1)
            rm = bld.rows(n_e, -g_on, np.inf).reshape(e.shape)
            rp = bld.rows(n_e, g_on, np.inf).reshape(e.shape)
            bld.coef(np.concatenate([rm, rp]), np.concatenate([e, e]), 1.0)
            bld.coef(rm, xs, -1.0)
            bld.coef(rp, xs, 1.0)
            e_cols[:, on], e_rows[0][:, on], e_rows[1][:, on] = e, rm, rp
        if problem.control_weight > 0:
            v_cols = bld.cols(T * nu, 0.0, np.inf, cost=problem.control_weight).reshape(T, nu)
            rm = bld.rows(T * nu, 0.0, np.inf).reshape(T, nu)
            rp = bld.rows(T * nu, 0.0, np.inf).reshape(T, nu)
            bld.coef(np.concatenate([rm, rp]), np.concatenate([v_cols, v_cols]), 1.0)
            bld.coef(rm, u_cols, -1.0)
            bld.coef(rp, u_cols, 1.0)
    if len(problem.b_state):
        m = len(problem.b_state)
        r = bld.rows(T * m, -np.inf, np.tile(problem.b_state, T)).reshape(T, m)
        _dense3(bld, r, x_cols[1:], problem.a_state)
    if not relax:
        for box in problem.keep_out:
            c = np.asarray(box.coords)
            d = c.size
            lo, hi = np.asarray(box.low), np.asarray(box.high)
            xl, xh = problem.x_low[c], problem.x_high[c]
            delta = bld.cols(T * 2 * d, 0.0, 1.0, integer=True).reshape(T, 2 * d)
            r_any = bld.rows(T, 1.0, np.inf)
            bld.coef(np.repeat(r_any, 2 * d).reshape(T, 2 * d), delta, 1.0)
            xs = x_cols[1:, c]  # (T, d)
            # below the box on coord c:  x_c + (xh - lo) delta <= xh ; above:  x_c - (hi - xl) delta >= xl
            r_below = bld.rows(T * d, -np.inf, np.tile(xh, T)).reshape(T, d)
            r_above = bld.rows(T * d, np.tile(xl, T), np.inf).reshape(T, d)
            bld.coef(np.concatenate([r_below, r_below]), np.concatenate([xs, delta[:, :d]]),
                     np.concatenate([np.ones((T, d)), np.broadcast_to(xh - lo, (T, d))]))
            bld.coef(np.concatenate([r_above, r_above]), np.concatenate([xs, delta[:, d:]]),
                     np.concatenate([np.ones((T, d)), -np.broadcast_to(hi - xl, (T, d))]))
            slack = np.zeros(0, dtype=int)
            if box.penalty is not None:
                # soft box: the chosen side may be crossed by s_t >= 0 (the depth inside), priced penalty * s_t
                slack = bld.cols(T, 0.0, np.inf, cost=box.penalty)
                bld.coef(np.concatenate([r_below, r_above]), np.repeat(np.tile(slack, 2), d).reshape(2 * T, d),
                         np.concatenate([-np.ones((T, d)), np.ones((T, d))]))
            keep_out.append((delta, c, np.stack([lo, hi]), slack))
    arrays = bld.arrays()
    if structure is None:
        classes = [[cls[t] for cls in layer_classes] for t in range(T)]
    else:
        classes = structure[:T]
    layout = Layout(classes, x_cols, u_cols, h_ids, z_ids, a_ids, bigm_ids, e_cols, e_rows, v_cols, keep_out,
                    bld.n_col)
    return arrays, layout


def set_options(h: highspy.Highs, options: dict[str, Any], field: str = "highs_options") -> None:
    """Set HiGHS options by name; an unknown name or a bad value is a :class:`ControlkitError` naming it."""
    for name, value in options.items():
        if h.setOptionValue(str(name), value) != highspy.HighsStatus.kOk:
            raise ControlkitError(f"{field}.{name}: HiGHS rejected the option or its value {value!r} (see the "
                                  "HiGHS option list: presolve, mip_detect_symmetry, mip_heuristic_effort, ...).")


def check_options(options: dict[str, Any], field: str = "highs_options") -> None:
    """Raise a :class:`ControlkitError` naming ``field.<name>`` if HiGHS rejects an option of ``options``."""
    set_options(_silent_highs(), options, field)


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


def _run(h: highspy.Highs) -> highspy.HighsStatus:
    """``h.run()`` on the process's HiGHS thread scheduler, whatever thread count started it.

    HiGHS keeps one thread scheduler per process, sized by the first run's ``threads``; a later run that asks for
    another count fails at once (status error, model status ``Notset``). Pyomo's ``appsi_highs`` or a planner with
    other ``threads`` in the same process may have started it, so such a run is repeated with ``threads=0`` (use
    the scheduler as it is), which this instance keeps, and the change is logged once per process.
    """
    status = h.run()
    if (status == highspy.HighsStatus.kError and h.getModelStatus() == highspy.HighsModelStatus.kNotset
            and h.getOptionValue("threads")[1] != 0):
        _warn_scheduler(int(h.getOptionValue("threads")[1]))
        h.setOptionValue("threads", 0)
        status = h.run()
    return status


@functools.cache
def _warn_scheduler(threads: int) -> None:
    logging.getLogger(__name__).warning(
        "HiGHS: threads=%d asked for, but another HiGHS user in this process (e.g. Pyomo's appsi_highs) already "
        "started HiGHS's process-wide thread scheduler with another thread count; solving on that scheduler.", threads)


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
        for delta, c, (lo, hi), slack in lay.keep_out:
            xs = states[1:, c]
            gaps = np.concatenate([xs - lo, hi - xs], axis=1)  # how far past each side's face (<= 0: on its side)
            if slack.size:  # a state inside a soft box takes its nearest side, and the slack is its depth
                val[delta] = (np.arange(gaps.shape[1]) == gaps.argmin(axis=1)[:, None]).astype(float)
                val[slack] = np.maximum(gaps.min(axis=1), 0.0)
            else:
                val[delta] = (gaps <= 0).astype(float)
        return val


class HighsMILP(CompiledMILP):
    """One HiGHS instance holding the compiled problem; rebuilt only when the structure must change.

    Args:
        problem: The validated problem.
        bounds: Neuron and state bounds (from :func:`~controlkit.planning.milp.bounds.ibp`, maybe tightened).
        x0: Initial state.
        goal: ``(H, nx)`` goals, or ``None`` for a relaxation.
        relax: Build the LP relaxation without objective (used for bound tightening).
        structure: Neuron slots, when they should differ from the classes under ``bounds`` (see :func:`assemble`).
        n_steps: Build only the first ``n_steps`` steps (relaxations for early layers need no more).
        time_limit: Seconds per solve (``None`` = no limit).
        mip_gap: Relative MIP gap.
        threads: HiGHS threads.
        options: Further HiGHS options by name (MILP only; e.g. ``{"presolve": "off"}``).
    """

    def __init__(self, problem: MPCProblem, bounds: Bounds, x0: np.ndarray, goal: np.ndarray | None = None,
                 relax: bool = False, n_steps: int | None = None, time_limit: float | None = None,
                 mip_gap: float = 1e-4, threads: int = 1, structure: list[list[np.ndarray]] | None = None,
                 options: dict[str, Any] | None = None) -> None:
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
        elif options:
            set_options(self.h, options)
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
        self._col_cost = arrays["col_cost"]
        self._time_limit = time_limit
        self.n_rows, self.n_cols, self.nnz = a.shape[0], a.shape[1], a.nnz

    def set_time_limit(self, time_limit: float | None) -> None:
        self._time_limit = time_limit
        self.h.setOptionValue("time_limit", float("inf") if time_limit is None else float(time_limit))

    def _run_lp(self, seconds: float | None) -> None:
        """Solve the model as an LP (no integer columns) within ``seconds`` (``None``: no limit).

        Simplex checks ``time_limit`` against the instance's cumulative run clock (a MIP checks its own run), so
        after earlier solves an LP given the limit as-is would stop at once: it is set relative to that clock for
        this run, and the MIP's limit restored after.
        """
        h = self.h
        h.setOptionValue("time_limit", float("inf") if seconds is None else h.getRunTime() + float(seconds))
        try:
            _run(h)
        finally:
            self.set_time_limit(self._time_limit)

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
        if self._int_cols.size:
            _run(h)
        else:  # without binaries: an LP, whose time limit needs the relative clock
            self._run_lp(self._time_limit)
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

    def relax_to_cutoff(self, cutoff: float) -> None:
        """Turn this MILP into its LP relaxation restricted to ``objective <= cutoff``, without objective.

        What :func:`~controlkit.planning.milp.tightening.tighten_lp` optimises pre-activations over when it knows a feasible
        plan of objective ``cutoff``. The bound gets a relative slack of 1e-9 so that plan stays inside.
        """
        h, cost = self.h, self._col_cost
        ints = self._int_cols
        h.changeColsIntegrality(ints.size, ints, np.full(ints.size, highspy.HighsVarType.kContinuous))
        nz = np.flatnonzero(cost).astype(np.int32)
        h.addRow(-np.inf, float(cutoff) + 1e-9 * (1.0 + abs(cutoff)), nz.size, nz, cost[nz])
        h.changeColsCost(nz.size, nz, np.zeros(nz.size))
        h.setOptionValue("presolve", "off")  # as in a relaxation: each LP re-optimises from the last basis

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
        _run(self.h)
        if self.h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
            return -np.inf if minimise else np.inf
        value = sign * float(self.h.getInfo().objective_function_value)
        # Widen by the solver's tolerance so the bound stays sound despite floating-point error.
        return value - sign * 1e-6 * (1.0 + abs(value))

"""Pyomo backend: the same MILP as the HiGHS backend, handed to any solver Pyomo knows.

The model is generated from the very arrays :func:`~controlkit.planning.milp.highs.assemble` builds, so both backends
solve one problem by construction (a test checks the optima agree). Like the HiGHS backend it is built once per
structure and updated in place: each plan re-assembles the arrays (milliseconds, numpy), and only the entries that
differ reach Pyomo, as variable bounds and mutable ``Param`` values (the row bounds and the big-M coefficients,
the only data that depend on ``x0``, the goal and the neuron bounds). The solver object is kept too, so a
persistent solver (``appsi_highs``) updates its instance instead of rebuilding it, and solvers that accept one get
the complete MIP start as variable values (``warmstart=True``).
"""

from __future__ import annotations

import time

import numpy as np

from controlkit.core.controller import Status
from controlkit.core.errors import ControlkitError
from controlkit.planning.milp.bounds import Bounds
from controlkit.planning.milp.highs import CompiledMILP, SolveResult, assemble
from controlkit.planning.problem import MPCProblem

# Option names of the classic (shell) solver plugins; solvers with a ``config`` take time_limit / gap there.
_LEGACY_OPTIONS = {
    "cbc": ("seconds", "ratioGap"),
    "gurobi": ("TimeLimit", "MIPGap"),
    "gurobi_direct": ("TimeLimit", "MIPGap"),
    "gurobi_persistent": ("TimeLimit", "MIPGap"),
    "scip": ("limits/time", "limits/gap"),
    "glpk": ("tmlim", "mipgap"),
}


def check_solver(name: str) -> None:
    """Raise :class:`ControlkitError` unless Pyomo knows ``name`` and the solver is available here."""
    from controlkit.core.extras import require

    pyo = require("pyomo.environ", "the Pyomo backend")
    from pyomo.common.errors import ApplicationError

    try:
        ok = bool(pyo.SolverFactory(name).available(exception_flag=False))
    except (ApplicationError, ValueError, RuntimeError):
        ok = False
    if not ok:
        raise ControlkitError(
            f"solver: Pyomo cannot run {name!r} here; try 'appsi_highs' or 'highs' (bundled with highspy), "
            "or install scip/cbc/gurobi and pass its Pyomo name."
        )


def configured_solver(solver: str, time_limit: float | None, mip_gap: float):
    """``SolverFactory(solver)`` with the gap set, and the keyword arguments its ``solve`` needs for the limit.

    Config-based solvers (``appsi_*``, the new ``highs``) take the limit as ``solve(timelimit=...)``: the appsi
    legacy wrapper overwrites ``config.time_limit`` with that argument on every call.
    """
    import pyomo.environ as pyo

    opt = pyo.SolverFactory(solver)
    config = getattr(opt, "config", None)
    kwargs = {}
    if config is not None:
        if time_limit is not None:
            kwargs["timelimit"] = float(time_limit)
        for gap_name in ("mip_gap", "rel_gap"):
            if gap_name in config:
                setattr(config, gap_name, float(mip_gap))
    elif solver in _LEGACY_OPTIONS:
        limit_name, gap_name = _LEGACY_OPTIONS[solver]
        opt.options[gap_name] = mip_gap
        if time_limit is not None:
            opt.options[limit_name] = time_limit
    return opt, kwargs


def _bound(v: float) -> float | None:
    return float(v) if np.isfinite(v) else None


class PyomoMILP(CompiledMILP):
    """The compiled problem as a Pyomo model plus the solver object that solves it, reused across plans.

    Args:
        problem: The validated problem.
        bounds: Neuron and state bounds.
        x0: Initial state.
        goal: ``(H, nx)`` goals.
        solver: Pyomo solver name.
        time_limit: Seconds per solve (``None`` = no limit).
        mip_gap: Relative MIP gap.
        structure: Neuron slots, when they should differ from the classes under ``bounds``.
    """

    def __init__(self, problem: MPCProblem, bounds: Bounds, x0: np.ndarray, goal: np.ndarray, solver: str,
                 time_limit: float | None = None, mip_gap: float = 1e-4,
                 structure: list[list[np.ndarray]] | None = None) -> None:
        import pyomo.environ as pyo
        from pyomo.core.expr.numeric_expr import LinearExpression

        self.problem = problem
        t0 = time.perf_counter()
        arrays, self.layout = assemble(problem, bounds, x0, goal, structure=structure)
        self.arrays = arrays
        m = self.model = pyo.ConcreteModel()
        n = arrays["col_lower"].size
        integer = arrays["integrality"]
        m.v = pyo.Var(range(n), bounds=lambda _, j: (_bound(arrays["col_lower"][j]), _bound(arrays["col_upper"][j])),
                      domain=lambda _, j: pyo.Binary if integer[j] else pyo.Reals)
        a = arrays["a"]
        # Coefficients on binaries (the big-M entries -l, -u) change with the bounds: they are mutable Params.
        mutable = integer[np.repeat(np.arange(n), np.diff(a.indptr))].astype(bool)
        self._coef_pos = np.flatnonzero(mutable)
        m.coef = pyo.Param(range(self._coef_pos.size), mutable=True,
                           initialize=dict(enumerate(a.data[self._coef_pos].tolist())))
        param_of = np.full(a.nnz, -1)
        param_of[self._coef_pos] = np.arange(self._coef_pos.size)
        csr_order = np.lexsort((np.repeat(np.arange(n), np.diff(a.indptr)), a.indices))  # CSC entries by row
        rows = a.indices[csr_order]
        starts = np.searchsorted(rows, np.arange(a.shape[0] + 1))
        cols = np.repeat(np.arange(n), np.diff(a.indptr))[csr_order]
        rl, ru = arrays["row_lower"], arrays["row_upper"]
        self._finite = (np.isfinite(rl), np.isfinite(ru))
        # Row bounds are mutable Params (the goal and the big-M right-hand sides change); infinite ones stay absent.
        m.rl, m.ru = (pyo.Param(range(a.shape[0]), mutable=True,
                                initialize=dict(enumerate(np.where(fin, v, 0.0).tolist())))
                      for fin, v in zip(self._finite, (rl, ru)))

        def row(_, i):
            s, e = starts[i], starts[i + 1]
            coefs = [m.coef[param_of[q]] if param_of[q] >= 0 else float(a.data[q]) for q in csr_order[s:e]]
            expr = LinearExpression(constant=0.0, linear_coefs=coefs, linear_vars=[m.v[j] for j in cols[s:e]])
            lower = m.rl[i] if self._finite[0][i] else None
            upper = m.ru[i] if self._finite[1][i] else None
            return (lower, expr, upper)

        m.c = pyo.Constraint(range(a.shape[0]), rule=row)
        cost = arrays["col_cost"]
        nz = np.flatnonzero(cost)
        m.obj = pyo.Objective(expr=LinearExpression(constant=0.0, linear_coefs=cost[nz].tolist(),
                                                    linear_vars=[m.v[j] for j in nz]))
        self.opt, self._solve_kwargs = configured_solver(solver, time_limit, mip_gap)
        warm = getattr(self.opt, "warm_start_capable", None)
        self.warm_start_capable = bool(warm()) if callable(warm) else False
        self.build_time_s = time.perf_counter() - t0
        self.n_binaries = int(integer.sum())
        self.n_rows, self.n_cols, self.nnz = a.shape[0], n, a.nnz

    def update(self, x0: np.ndarray, goal: np.ndarray, bounds: Bounds) -> bool:
        """Bring the model to ``x0``, ``goal`` and ``bounds`` in place; False if the change is structural.

        The arrays are assembled again with this structure; only differing entries are written to Pyomo. A
        difference outside the mutable data (which the layout rules out) returns False so the caller rebuilds.
        """
        new, _ = assemble(self.problem, bounds, x0, goal, structure=self.layout.classes)
        old, m = self.arrays, self.model
        a_new, a_old = new["a"], old["a"]
        finite = (np.isfinite(new["row_lower"]), np.isfinite(new["row_upper"]))
        if (a_new.nnz != a_old.nnz or not np.array_equal(a_new.indices, a_old.indices)
                or not np.array_equal(a_new.indptr, a_old.indptr)
                or not (np.array_equal(finite[0], self._finite[0]) and np.array_equal(finite[1], self._finite[1]))):
            return False
        changed = np.flatnonzero(a_new.data != a_old.data)
        pos = np.searchsorted(self._coef_pos, changed)
        if changed.size and not np.array_equal(self._coef_pos[np.minimum(pos, self._coef_pos.size - 1)], changed):
            return False
        for p, q in zip(pos, changed):
            m.coef[int(p)] = float(a_new.data[q])
        for key, param in (("row_lower", m.rl), ("row_upper", m.ru)):
            for i in np.flatnonzero(new[key] != old[key]):
                param[int(i)] = float(new[key][i])
        for j in np.flatnonzero((new["col_lower"] != old["col_lower"]) | (new["col_upper"] != old["col_upper"])):
            m.v[int(j)].setlb(_bound(new["col_lower"][j]))
            m.v[int(j)].setub(_bound(new["col_upper"][j]))
        self.arrays = new
        return True

    def solve(self, start: np.ndarray | None = None) -> SolveResult:
        """Solve (with ``start`` as MIP start where the solver takes one) and read back the plan."""
        import pyomo.environ as pyo
        from pyomo.opt import TerminationCondition as TC

        problem, layout, m = self.problem, self.layout, self.model
        kwargs = dict(self._solve_kwargs)
        if start is not None and self.warm_start_capable:
            for j, value in enumerate(start.tolist()):
                m.v[j].set_value(value, skip_validation=True)
            kwargs["warmstart"] = True
        t1 = time.perf_counter()
        results = self.opt.solve(m, load_solutions=False, **kwargs)
        elapsed = time.perf_counter() - t1
        tc = results.solver.termination_condition
        nan_a = np.full((problem.horizon, problem.nu), np.nan)
        nan_x = np.full((problem.horizon + 1, problem.nx), np.nan)
        if tc in (TC.infeasible, TC.infeasibleOrUnbounded):
            return SolveResult(Status.INFEASIBLE, nan_a, nan_x, float("nan"), None, elapsed, str(tc))
        has_solution = len(results.solution) > 0
        if tc == TC.optimal:
            status = Status.OK
        elif tc in (TC.maxTimeLimit, TC.maxIterations, TC.maxEvaluations):
            status = Status.SUBOPTIMAL if has_solution else Status.TIMEOUT
        else:
            status = Status.ERROR
        if status not in (Status.OK, Status.SUBOPTIMAL) or not has_solution:
            return SolveResult(status if status is not Status.OK else Status.ERROR, nan_a, nan_x, float("nan"),
                               None, elapsed, str(tc))
        m.solutions.load_from(results)
        x = np.array([pyo.value(m.v[j]) for j in range(layout.n_col)], dtype=float)
        lower = results.problem.lower_bound
        objective = float(pyo.value(m.obj))
        gap = (abs(objective - lower) / max(abs(objective), 1e-10)
               if lower is not None and np.isfinite(lower) else None)
        return SolveResult(status, x[layout.u_cols], x[layout.x_cols], objective, gap, elapsed, str(tc))

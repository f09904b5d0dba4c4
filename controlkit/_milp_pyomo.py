"""Pyomo backend: the same MILP as the HiGHS backend, handed to any solver Pyomo knows.

The model is generated from the very arrays :func:`~controlkit._milp_highs.assemble` builds, so both backends
solve one problem by construction (a test checks the optima agree). It is rebuilt for every plan: Pyomo
expression building is the slow part this toolkit avoids on the default path, and here it buys solver choice.
"""

from __future__ import annotations

import time

import numpy as np

from controlkit._milp_bounds import Bounds
from controlkit._milp_highs import SolveResult, assemble
from controlkit._mpc_problem import MPCProblem
from controlkit.controller import Status
from controlkit.errors import ControlkitError

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
    import pyomo.environ as pyo
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


def build_pyomo(arrays: dict[str, np.ndarray]):
    """A Pyomo ``ConcreteModel`` with one variable per column and one ranged constraint per row."""
    import pyomo.environ as pyo
    from pyomo.core.expr.numeric_expr import LinearExpression

    m = pyo.ConcreteModel()
    n = arrays["col_lower"].size
    lo = [None if not np.isfinite(v) else float(v) for v in arrays["col_lower"]]
    hi = [None if not np.isfinite(v) else float(v) for v in arrays["col_upper"]]
    integer = arrays["integrality"]
    m.v = pyo.Var(range(n), bounds=lambda _, j: (lo[j], hi[j]),
                  domain=lambda _, j: pyo.Binary if integer[j] and lo[j] == 0 and hi[j] == 1 else
                  (pyo.Integers if integer[j] else pyo.Reals))
    csr = arrays["a"].tocsr()
    rl, ru = arrays["row_lower"], arrays["row_upper"]

    def row(_, i):
        s, e = csr.indptr[i], csr.indptr[i + 1]
        expr = LinearExpression(constant=0.0, linear_coefs=csr.data[s:e].tolist(),
                                linear_vars=[m.v[j] for j in csr.indices[s:e]])
        lower = float(rl[i]) if np.isfinite(rl[i]) else None
        upper = float(ru[i]) if np.isfinite(ru[i]) else None
        if lower is not None and lower == upper:
            return expr == lower
        return (lower, expr, upper)

    m.c = pyo.Constraint(range(csr.shape[0]), rule=row)
    cost = arrays["col_cost"]
    nz = np.flatnonzero(cost)
    m.obj = pyo.Objective(expr=LinearExpression(constant=0.0, linear_coefs=cost[nz].tolist(),
                                                linear_vars=[m.v[j] for j in nz]))
    return m


def solve_pyomo(problem: MPCProblem, bounds: Bounds, x0: np.ndarray, goal: np.ndarray, solver: str,
                time_limit: float | None, mip_gap: float) -> tuple[SolveResult, float]:
    """Build the model in Pyomo and solve it with ``solver``; returns the result and the build time."""
    import pyomo.environ as pyo
    from pyomo.opt import TerminationCondition as TC

    t0 = time.perf_counter()
    arrays, layout = assemble(problem, bounds, x0, goal)
    model = build_pyomo(arrays)
    build = time.perf_counter() - t0
    opt, kwargs = configured_solver(solver, time_limit, mip_gap)
    t1 = time.perf_counter()
    results = opt.solve(model, load_solutions=False, **kwargs)
    elapsed = time.perf_counter() - t1
    tc = results.solver.termination_condition
    nan_a, nan_x = np.full((problem.horizon, problem.nu), np.nan), np.full((problem.horizon + 1, problem.nx), np.nan)
    if tc in (TC.infeasible, TC.infeasibleOrUnbounded):
        return SolveResult(Status.INFEASIBLE, nan_a, nan_x, float("nan"), None, elapsed, str(tc)), build
    has_solution = len(results.solution) > 0
    if tc == TC.optimal:
        status = Status.OK
    elif tc in (TC.maxTimeLimit, TC.maxIterations, TC.maxEvaluations) :
        status = Status.SUBOPTIMAL if has_solution else Status.TIMEOUT
    else:
        status = Status.ERROR
    if status not in (Status.OK, Status.SUBOPTIMAL) or not has_solution:
        return SolveResult(status if status is not Status.OK else Status.ERROR, nan_a, nan_x, float("nan"), None,
                           elapsed, str(tc)), build
    model.solutions.load_from(results)
    x = np.array([pyo.value(model.v[j]) for j in range(layout.n_col)], dtype=float)
    lower = results.problem.lower_bound
    objective = float(pyo.value(model.obj))
    gap = abs(objective - lower) / max(abs(objective), 1e-10) if lower is not None and np.isfinite(lower) else None
    return SolveResult(status, x[layout.u_cols], x[layout.x_cols], objective, gap, elapsed, str(tc)), build

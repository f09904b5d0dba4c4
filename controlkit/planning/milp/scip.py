"""The compiled MILP in SCIP (``pyscipopt``), for diagnosing the branch and bound: root and final dual bounds.

Not a planning backend (the pushing loop uses HiGHS): SCIP reports what HiGHS does not expose -- the dual bound
after the root node's cuts, the node count -- on the very arrays :func:`~controlkit.planning.milp.highs.assemble`
builds, so the two solvers see one problem. ``pyscipopt`` is an optional dependency (the ``bench`` extra).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import numpy as np

from controlkit.core.extras import MissingExtraError


@dataclasses.dataclass
class ScipResult:
    """What one SCIP solve of the compiled MILP reported.

    Attributes:
        status: SCIP's status string (``"optimal"``, ``"timelimit"``, ``"nodelimit"``, ``"infeasible"``, ...).
        objective: The incumbent's objective (``inf`` without one).
        dual_bound: The final proven lower bound.
        root_dual_bound: The lower bound after the root node (cuts and root heuristics included); NaN when
            presolve settled the problem before any node.
        gap: SCIP's relative gap at the end.
        nodes: Branch-and-bound nodes processed.
        solve_time_s: Wall-clock seconds of the solve (presolve included, model building not).
        start_accepted: Whether the given MIP start was accepted as a feasible solution.
        values: Column values of the incumbent (``None`` without one).
    """

    status: str
    objective: float
    dual_bound: float
    root_dual_bound: float
    gap: float
    nodes: int
    solve_time_s: float
    start_accepted: bool
    values: np.ndarray | None


def solve_scip(arrays: dict[str, Any], start: np.ndarray | None = None, time_limit: float | None = None,
               mip_gap: float = 1e-4, node_limit: int | None = None, seed: int = 0,
               params: dict[str, Any] | None = None) -> ScipResult:
    """Solve the arrays of :func:`~controlkit.planning.milp.highs.assemble` with SCIP, single-threaded.

    Args:
        arrays: ``assemble``'s first return value (sparse matrix ``a``, column and row bounds, costs, integrality).
        start: A complete MIP start (one value per column), e.g. from ``CompiledMILP.start_vector``.
        time_limit: Seconds (``None``: no limit).
        mip_gap: Relative gap at which SCIP stops.
        node_limit: Nodes at which SCIP stops (``None``: no limit) -- a limit that does not depend on the clock.
        seed: SCIP's random seed shift (same seed, same search).
        params: Further SCIP parameters by name (e.g. ``{"presolving/maxrounds": 0}``).
    """
    try:
        import pyscipopt as scip
    except ImportError:
        raise MissingExtraError("the SCIP diagnostic needs the optional dependency 'pyscipopt', which is not "
                                "installed: pip install 'controlkit[bench]'.", name="pyscipopt") from None
    a = arrays["a"].to_scipy().tocsr()
    lo_c, hi_c, cost = arrays["col_lower"], arrays["col_upper"], arrays["col_cost"]
    integer = np.asarray(arrays["integrality"]).astype(bool)
    m = scip.Model()
    m.hideOutput()
    m.setParam("randomization/randomseedshift", int(seed))
    m.setParam("limits/gap", float(mip_gap))
    if time_limit is not None:
        m.setParam("limits/time", float(time_limit))
    if node_limit is not None:
        m.setParam("limits/nodes", int(node_limit))
    for name, value in (params or {}).items():
        m.setParam(name, value)

    def finite(v: float) -> float | None:
        return float(v) if np.isfinite(v) else None

    xs = [m.addVar(lb=finite(lo_c[j]), ub=finite(hi_c[j]), obj=float(cost[j]), vtype="I" if integer[j] else "C")
          for j in range(lo_c.size)]
    rl, ru = arrays["row_lower"], arrays["row_upper"]
    for i in range(a.shape[0]):
        s, e = a.indptr[i], a.indptr[i + 1]
        expr = scip.quicksum(float(c) * xs[j] for c, j in zip(a.data[s:e], a.indices[s:e]))
        m.addCons(scip.scip.ExprCons(expr, lhs=finite(rl[i]), rhs=finite(ru[i])))
    accepted = False
    if start is not None:
        sol = m.createSol()
        for var, value in zip(xs, np.asarray(start, dtype=float).tolist()):
            m.setSolVal(sol, var, value)
        accepted = bool(m.addSol(sol, free=True))
    t0 = time.perf_counter()
    m.optimize()
    elapsed = time.perf_counter() - t0
    has = m.getNSols() > 0
    values = np.array([m.getVal(v) for v in xs]) if has else None
    root = float(m.getDualboundRoot())
    if abs(root) >= m.infinity():  # no root node was processed (presolve settled the problem)
        root = float("nan")
    return ScipResult(status=str(m.getStatus()), objective=float(m.getObjVal()) if has else float("inf"),
                      dual_bound=float(m.getDualbound()), root_dual_bound=root,
                      gap=float(m.getGap()), nodes=int(m.getNNodes()),
                      solve_time_s=elapsed,
                      start_accepted=accepted, values=values)

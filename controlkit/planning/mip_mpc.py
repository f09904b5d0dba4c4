"""Mixed-integer MPC over ReLU networks, and the sampling/gradient planners it is compared with.

:class:`MIPMPC` compiles the network unrolled over the horizon into one MILP (sound bounds, binaries only for
ReLU neurons that can switch, big-M, L1 epigraphs) and solves it with HiGHS in-process, or with any Pyomo solver.
All planners share the constructor arguments of :class:`~controlkit.planning.receding.RecedingHorizonPlanner` and the
``plan(x0, goal)`` / ``act(obs)`` interface. See ``docs/mip_mpc.md``.
"""

from __future__ import annotations

import copy
import math
import time
from typing import Any

import numpy as np

from controlkit.core.controller import Plan, Status
from controlkit.core.errors import ControlkitError, choices_error
from controlkit.planning.milp.bounds import Bounds, ibp, symbolic
from controlkit.planning.milp.region import RegionLP, basin_hop
from controlkit.planning.milp.search import SEARCH_MODES, SearchResult, neighbourhood_search
from controlkit.planning.milp.tightening import tighten_lp
from controlkit.planning.problem import KeepOut
from controlkit.planning.receding import RecedingHorizonPlanner

BACKENDS = ("highs", "pyomo")
# the MILP neighbourhood searches, and "hop": basin hopping over activation regions with LPs only
SEARCHES = (*SEARCH_MODES, "hop")
HOP_SIZE = 3  # steps re-drawn per hop by default
BOUND_METHODS = {"symbolic": symbolic, "interval": ibp}
AUTO = "auto"
# The automatic tightening policy (tighten_steps="auto"): below this many unstable binaries branch and bound is
# cheap anyway; it spends AUTO_FRACTION of the time limit (AUTO_BUDGET seconds without one) and stays off when
# that is under AUTO_MIN_BUDGET -- the control-loop regime, where a few LPs per neuron do not fit in the period.
AUTO_MIN_BINARIES = 12
AUTO_FRACTION = 0.25
AUTO_BUDGET = 2.0
AUTO_MIN_BUDGET = 0.1
AUTO_POLISH_LPS = 20
AUTO_MIN_SOLVE = 0.5  # share of the time limit the solver keeps whatever the LPs took (the budget is only checked
# between LPs, so they can overrun it by one LP)


def _is_count(value: Any, low: int) -> bool:
    """Whether ``value`` is a whole number ``>= low`` (not a bool, NaN or infinity)."""
    return (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            and float(value).is_integer() and value >= low)


class MIPMPC(RecedingHorizonPlanner):
    """Exact planning over a ReLU network by mixed-integer linear programming.

    Args:
        model, horizon, u_low, u_high, x_low, x_high, residual, state_weights, control_weight: The problem (see
            :class:`~controlkit.planning.receding.RecedingHorizonPlanner`).
        backend: ``"highs"`` (embedded highspy, in-place updates and MIP starts) or ``"pyomo"``.
        time_limit: Seconds per solve (``None`` = none). At the limit the best incumbent is returned. The automatic
            tightening's time (``tighten_steps="auto"``) comes out of it: the solver gets what is left, at least half.
        mip_gap: Relative optimality gap at which the solver stops.
        solver: Pyomo solver name for ``backend="pyomo"`` (``appsi_highs``, ``scip``, ``gurobi``, ``cbc``, ...).
        tighten_steps: LP-tighten the unstable neurons of this many leading steps (0 = propagated bounds only), or
            ``"auto"`` (the default): with the HiGHS backend and at least ``AUTO_MIN_BINARIES`` unstable binaries,
            find a plan first (the region descent of ``polish_lps`` from the warm start, or from the safe action),
            then LP-tighten every step over the relaxation cut off at that plan's objective (optimality-based
            bounds: they keep every plan at least as good, which is all branch and bound needs), nearest-to-stable
            neurons first, within ``tighten_time`` seconds (default ``AUTO_FRACTION`` of ``time_limit``, or
            ``AUTO_BUDGET`` without one; off below ``AUTO_MIN_BUDGET``, so fast control loops are unaffected). The
            plan found first is the solve's MIP start.
        bound_method: ``"symbolic"`` (default: zonotope forms in the actions intersected with interval bounds,
            never looser than interval bounds, about a millisecond on small networks) or ``"interval"`` (IBP only).
        tighten_time: Seconds the LP tightening may take per plan (``None`` = no budget); when it runs out the
            remaining neurons keep their propagated bounds, which stay sound.
        tighten_window: Steps of the LP relaxation behind each tightened neuron (``None`` = all steps from
            ``x0``, tightest; ``k`` = the last ``k`` steps from their state box: LP size independent of the
            horizon, so the tightening cost grows linearly instead of quadratically in ``H``).
        threads: Solver threads.
        polish_lps: Before branch and bound, improve the MIP start by a descent over activation regions (one LP
            per region over the actions alone, at most this many; needs highspy, any backend; 0 = off; see
            :mod:`controlkit.planning.milp.region`). Local: it only gives the solver a better start.
        polish_time: Seconds the descent may take per plan (``None`` = no budget).
        search: Large-neighbourhood search over activation patterns after the descent and before branch and
            bound (HiGHS backend; see :mod:`controlkit.planning.milp.search`): ``"none"`` (default), ``"window"`` (the
            binaries of ``search_size`` consecutive steps free, sliding), ``"head"`` (the first ``search_size``
            steps' binaries free: an exact head, the tail in the incumbent's regions), ``"switching"`` (the ``search_size``
            binaries nearest their switching point free) or ``"hamming"`` (local branching within Hamming
            radius ``search_size``). Each neighbourhood MILP has the incumbent's objective as cutoff; the plan is
            never worse than the search's start. ``"hop"`` (any backend) needs no MILP: basin hopping over
            activation regions (:func:`~controlkit.planning.milp.region.basin_hop`): ``search_slices`` times,
            re-draw ``search_size`` consecutive steps' actions at random and run the region descent again
            (``polish_lps`` LPs, 10 if that is 0), keeping the cheaper plan.
        search_size: Steps, binaries or radius per neighbourhood, or steps re-drawn per hop (``None`` = the
            mode's default).
        search_slices: Neighbourhood MILPs, or hops, per plan at most.
        search_nodes: Branch-and-bound nodes per neighbourhood MILP (``None`` = no node limit): the
            deterministic work limit.
        search_time: Seconds the search may take per plan (``None`` = no time budget; then with a
            ``time_limit`` the search may use half of what is left of it).
        seed: Seed of the hops' random windows and actions (``reset(seed)`` re-seeds).
        branch_and_bound: ``False`` skips the MILP solve: the plan is what the descent and the search found
            (``status=SUBOPTIMAL``, no certified gap; needs ``polish_lps`` or ``search``). On the push model one
            branch-and-bound node (the root's cuts and heuristics) costs more than the descent and a few search
            slices together, and adds nothing within a control step (``benchmarks/planning_quality.py``).
        highs_options: Further HiGHS options for the MILP by name (HiGHS backend), e.g. ``{"presolve": "off"}``:
            on large models with a MIP start and a short time limit, presolve alone can take several times the limit.
            The MIP heuristics (``mip_heuristic_effort``, ``mip_heuristic_run_rins``, ...) and work limits
            (``mip_max_nodes`` with ``time_limit=None``: a deterministic plan) are set the same way.
        **kwargs: ``terminal_weight``, ``state_constraints``, ``keep_out``, ``goal``, ``safe_action``,
            ``max_fallback``, ``state_fn``, ``warm_start``, ``nx``, ``nu`` (see the base class).

    ``plan`` returns a :class:`~controlkit.core.controller.Plan` whose ``extras`` hold ``binaries`` (unstable ReLU
    neurons over the horizon), ``stable_active``, ``stable_inactive``, ``identity``, ``build_time_s``,
    ``bounds_time_s``, ``solver_time_s`` (``Plan.solve_time_s`` is the whole planning time), ``rebuilt``
    (whether the model had to be rebuilt rather than updated in place), ``model_binaries``, ``warm_start`` and the
    solver's ``message``, and ``time_limited`` (whether a wall-clock limit could have cut any part of the plan
    short: then the same inputs can give another plan on another machine or load). With ``search`` the extras add
    ``search_slices``, ``search_improvements``, ``search_start_objective``, ``search_objective`` and
    ``search_time_s``. Infeasible problems return ``status=INFEASIBLE`` with NaN actions; ``act`` falls back.
    """

    def __init__(
        self,
        model: Any,
        horizon: int,
        u_low: Any,
        u_high: Any,
        x_low: Any = None,
        x_high: Any = None,
        residual: bool | None = None,
        state_weights: Any = None,
        control_weight: float = 0.0,
        backend: str = "highs",
        time_limit: float | None = None,
        mip_gap: float = 1e-4,
        *,
        solver: str = "appsi_highs",
        tighten_steps: int | str = AUTO,
        threads: int = 1,
        bound_method: str = "symbolic",
        tighten_time: float | None = None,
        tighten_window: int | None = None,
        polish_lps: int = 0,
        polish_time: float | None = None,
        search: str = "none",
        search_size: int | None = None,
        search_slices: int = 8,
        search_nodes: int | None = 200,
        search_time: float | None = None,
        seed: int = 0,
        highs_options: dict[str, Any] | None = None,
        branch_and_bound: bool = True,
        **kwargs: Any,
    ) -> None:
        if backend not in BACKENDS:
            raise choices_error("backend", backend, BACKENDS)
        if time_limit is not None and not time_limit > 0:
            raise ControlkitError(f"time_limit: must be > 0 seconds or None, got {time_limit!r}.")
        if not 0 <= mip_gap < 1:
            raise ControlkitError(f"mip_gap: must be in [0, 1), got {mip_gap!r}.")
        if tighten_steps != AUTO and (isinstance(tighten_steps, str) or int(tighten_steps) != tighten_steps
                                      or tighten_steps < 0):
            raise ControlkitError(f"tighten_steps: must be an integer >= 0 or 'auto', got {tighten_steps!r}.")
        if bound_method not in BOUND_METHODS:
            raise choices_error("bound_method", bound_method, tuple(BOUND_METHODS))
        if tighten_time is not None and not tighten_time > 0:
            raise ControlkitError(f"tighten_time: must be > 0 seconds or None, got {tighten_time!r}.")
        if tighten_window is not None and (int(tighten_window) != tighten_window or tighten_window < 1):
            raise ControlkitError(f"tighten_window: must be an integer >= 1 or None, got {tighten_window!r}.")
        if int(polish_lps) != polish_lps or polish_lps < 0:
            raise ControlkitError(f"polish_lps: must be an integer >= 0, got {polish_lps!r}.")
        if polish_time is not None and not polish_time > 0:
            raise ControlkitError(f"polish_time: must be > 0 seconds or None, got {polish_time!r}.")
        if search not in SEARCHES:
            raise choices_error("search", search, SEARCHES)
        if search not in ("none", "hop") and backend != "highs":
            raise ControlkitError("search: the neighbourhood search needs backend='highs' (search='hop' does not).")
        if search_size is not None and not _is_count(search_size, 1):
            raise ControlkitError(f"search_size: must be an integer >= 1 or None, got {search_size!r}.")
        if not _is_count(search_slices, 0):
            raise ControlkitError(f"search_slices: must be an integer >= 0, got {search_slices!r}.")
        if search_nodes is not None and not _is_count(search_nodes, 1):
            raise ControlkitError(f"search_nodes: must be an integer >= 1 or None, got {search_nodes!r}.")
        if search_time is not None and not (isinstance(search_time, (int, float)) and 0 < search_time < math.inf):
            raise ControlkitError(f"search_time: must be a finite number > 0 of seconds or None, got {search_time!r}.")
        if not isinstance(branch_and_bound, bool):
            raise ControlkitError(f"branch_and_bound: must be True or False, got {branch_and_bound!r}.")
        if not branch_and_bound and not polish_lps and search == "none":
            raise ControlkitError("branch_and_bound: False needs polish_lps > 0 or a search to find the plan.")
        self.branch_and_bound = branch_and_bound
        self.search, self.search_size, self.search_slices = search, search_size, int(search_slices)
        self.search_nodes, self.search_time = search_nodes, search_time
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ControlkitError(f"seed: must be an integer >= 0, got {seed!r}.")
        self.seed = int(seed)  # before the base class's reset() seeds the hops
        super().__init__(model, horizon, u_low, u_high, x_low, x_high, residual, state_weights, control_weight,
                         **kwargs)
        self.backend, self.time_limit, self.mip_gap = backend, time_limit, float(mip_gap)
        self.tighten_steps = tighten_steps if tighten_steps == AUTO else int(tighten_steps)
        self.threads, self.solver = int(threads), solver
        self.bound_method, self.tighten_time, self.tighten_window = bound_method, tighten_time, tighten_window
        if backend == "pyomo":
            from controlkit.planning.milp.pyomo_backend import check_solver

            check_solver(solver)
        self.polish_lps, self.polish_time = int(polish_lps), polish_time
        if highs_options and backend != "highs":
            raise ControlkitError("highs_options: need backend='highs'.")
        self.highs_options = dict(highs_options or {})
        if self.highs_options:  # check names and values now rather than at the first plan
            from controlkit.planning.milp.highs import check_options

            check_options(self.highs_options)
        self._milp = None
        self._extra_starts: list[np.ndarray] = []  # set by subclasses that descend from several starts

    def reset(self, seed: int | None = None) -> None:
        """Forget the last plan and re-seed the hops (``None``: the constructor's seed, so episodes repeat)."""
        super().reset(seed)
        self._rng = np.random.default_rng(self.seed if seed is None else int(seed))

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_milp"] = None  # a solver instance does not pickle; the next plan rebuilds it
        return state

    def bounds(self, x0: Any) -> Bounds:
        """Sound neuron and state bounds from ``x0`` (``bound_method`` propagation, then LP tightening if enabled).

        With ``tighten_steps="auto"`` only the propagation: the automatic tightening needs a plan and the goal, so
        :meth:`plan` runs it.
        """
        x0 = self.problem.check_state(x0)
        propagate = BOUND_METHODS[self.bound_method]
        b = propagate(self.problem, x0)
        if self.tighten_steps != AUTO and self.tighten_steps and not b.empty:
            b, _ = tighten_lp(self.problem, x0, b, steps=self.tighten_steps, time_budget=self.tighten_time,
                              propagate=propagate, window=self.tighten_window)
        return b

    def plan(self, x0: Any, goal: Any, warm_start: np.ndarray | None = None) -> Plan:
        """Solve the MILP from ``x0`` to ``goal`` (``(nx,)`` or ``(H, nx)``).

        Args:
            x0: Current state.
            goal: Goal state, or one per step.
            warm_start: ``(H, nu)`` actions; rolled through the network into a complete MIP start.
        """
        p = self.problem
        x0, goal = p.check_state(x0), p.check_goal(goal)
        if warm_start is not None:
            warm_start = np.asarray(warm_start, dtype=np.float64)
            if warm_start.shape != (p.horizon, p.nu) or not np.isfinite(warm_start).all():
                raise ControlkitError(f"warm_start: need finite values of shape ({p.horizon}, {p.nu}), "
                                      f"got shape {warm_start.shape}.")
            warm_start = np.clip(warm_start, p.u_low, p.u_high)
        t0 = time.perf_counter()
        bounds = self.bounds(x0)
        extras: dict[str, Any] = {**bounds.count(p), "bounds_time_s": time.perf_counter() - t0}
        if bounds.empty:
            nan_a, nan_x = np.full((p.horizon, p.nu), np.nan), np.full((p.horizon + 1, p.nx), np.nan)
            extras["message"] = "state bounds unreachable from x0 (interval bounds are empty)"
            return Plan(nan_a, nan_x, float("nan"), Status.INFEASIBLE, time.perf_counter() - t0, None, extras)
        result = self._solve_model(bounds, x0, goal, warm_start, extras)
        extras.update(message=result.message, solver_time_s=result.solve_time_s)
        if np.isfinite(result.states).all():
            extras["violation"] = float(p.violation(result.states))  # on the model; > 0 only inside soft boxes
        return Plan(result.actions, result.states, result.objective, result.status,
                    time.perf_counter() - t0, result.gap, extras)

    def _solve_model(self, bounds: Bounds, x0: np.ndarray, goal: np.ndarray, warm_start: np.ndarray | None,
                     extras: dict[str, Any]):
        """Update the compiled model in place (rebuild it only when its structure must change) and solve it."""
        t0 = time.perf_counter()
        milp = self._milp
        classes = bounds.classes(self.problem)
        rebuilt = milp is None or not milp.compatible(classes) or not milp.update(x0, goal, bounds)
        if rebuilt:
            # Widen the old structure where stability changed, so later steps can update this one in place.
            structure = None if milp is None else milp.merged_structure(classes)
            milp = self._milp = self._compile(bounds, x0, goal, structure)
        extras.update(build_time_s=time.perf_counter() - t0, rebuilt=rebuilt, model_binaries=milp.n_binaries,
                      rows=milp.n_rows, cols=milp.n_cols)
        budget = self._auto_budget(extras["binaries"])
        if budget is not None and warm_start is None:
            warm_start = np.tile(self.safe_action, (self.horizon, 1))
        region = None  # the region LP of this step, shared by the descent and the hops (its basis carries over)
        if warm_start is not None and (self.polish_lps or budget is not None):
            t1 = time.perf_counter()
            n_polish = max(self.polish_lps, AUTO_POLISH_LPS if budget is not None else 0)
            region = RegionLP(self.problem, bounds, x0, goal)
            warm_start, obj, n_lp = region.descend(warm_start, n_polish, self.polish_time)
            for extra in self._extra_starts:  # further starts (PipelineMIP's polish_starts): keep the best descent
                a, o, n = region.descend(extra, n_polish, self.polish_time)
                n_lp += n
                if o < obj:
                    warm_start, obj = a, o
            extras.update(polish_lps=n_lp, polish_objective=obj, polish_time_s=time.perf_counter() - t1)
        if budget is not None:
            bounds = self._auto_tighten(milp, bounds, x0, goal, warm_start, budget, extras)
        extras["time_limited"] = budget is not None or any(
            v is not None for v in (self.time_limit, self.polish_time, self.tighten_time, self.search_time))
        found = None
        if self.search != "none":
            if warm_start is None:
                warm_start = np.tile(self.safe_action, (self.horizon, 1))
            found = self._search(milp, bounds, x0, goal, warm_start, time.perf_counter() - t0, extras, region)
            warm_start = found.actions
        if not self.branch_and_bound:
            return self._local_plan(warm_start, x0, goal)
        start = None if warm_start is None else milp.start_vector(x0, warm_start, goal, bounds)
        extras["warm_start"] = start is not None and milp.warm_start_capable
        searched = found is not None
        if found is None and warm_start is not None:
            # The start (after the descent) is a plan too: kept when branch and bound returns nothing better, e.g.
            # when HiGHS ends "infeasible" on numerical trouble although this start satisfies every constraint.
            found = self._incumbent(warm_start, x0, goal)
        if (budget is None and not searched) or self.time_limit is None:
            return self._not_worse(milp.solve(start), found, x0, goal)
        # the automatic policy's LPs and the search come out of the time limit: the whole plan stays within it
        spent = time.perf_counter() - t0
        milp.set_time_limit(max(self.time_limit - spent, AUTO_MIN_SOLVE * self.time_limit))
        try:
            return self._not_worse(milp.solve(start), found, x0, goal)
        finally:
            milp.set_time_limit(self.time_limit)

    def _search(self, milp, bounds: Bounds, x0: np.ndarray, goal: np.ndarray, actions: np.ndarray, spent: float,
                extras: dict[str, Any], region: RegionLP | None = None):
        """Run the search from ``actions``; its time comes out of the time limit (half of the rest)."""
        budget = self.search_time
        if budget is None and self.time_limit is not None:
            budget = max(0.5 * (self.time_limit - spent), 0.0)
        if budget is not None and budget <= 0:
            budget = 1e-9  # nothing left: the search only scores its start
        if self.search == "hop":
            region = region if region is not None else RegionLP(self.problem, bounds, x0, goal)
            found = basin_hop(region, actions, self.search_slices, HOP_SIZE if self.search_size is None
                              else self.search_size, self._rng, self.polish_lps or 10, budget)
        else:
            found = neighbourhood_search(milp, x0, goal, bounds, actions, mode=self.search, size=self.search_size,
                                         max_slices=self.search_slices, slice_nodes=self.search_nodes,
                                         time_budget=budget)
        extras.update(search_slices=found.slices, search_improvements=found.improvements,
                      search_start_objective=found.start_objective, search_objective=found.objective,
                      search_time_s=found.time_s)
        return found

    def _incumbent(self, actions: np.ndarray, x0: np.ndarray, goal: np.ndarray) -> SearchResult:
        """``actions`` scored on the network as a plan the solver's result must beat (inf if it breaks a constraint)."""
        p = self.problem
        states = p.net.rollout(x0, actions)
        obj = np.inf if p.violation(states, hard_only=True) > 0 else float(p.objective(states, actions, goal))
        return SearchResult(actions, obj, obj, 0, 0, 0.0)

    def _local_plan(self, actions: np.ndarray, x0: np.ndarray, goal: np.ndarray):
        """The descent's / search's plan as the result, without branch and bound (``branch_and_bound=False``)."""
        from controlkit.planning.milp.highs import SolveResult

        p = self.problem
        states = p.net.rollout(x0, actions)
        if p.violation(states, hard_only=True) > 0:
            nan_a, nan_x = np.full((p.horizon, p.nu), np.nan), np.full((p.horizon + 1, p.nx), np.nan)
            return SolveResult(Status.INFEASIBLE, nan_a, nan_x, float("nan"), None, 0.0,
                               "branch and bound off, and the local plan breaks a hard constraint")
        return SolveResult(Status.SUBOPTIMAL, actions, states, float(p.objective(states, actions, goal)), None, 0.0,
                           "branch and bound off: the local search's plan")

    def _not_worse(self, result, found, x0: np.ndarray, goal: np.ndarray):
        """The solver's result, or the start's / search's plan when the solver returned none or a worse one.

        HiGHS may reject a MIP start it judges infeasible at its tolerances and then end without an incumbent or
        with a worse one, or (rarely, with presolve off) report a model infeasible that this plan satisfies; the
        plan satisfies the constraints on the network, so it is returned instead (status SUBOPTIMAL, no certified
        gap, the solver's own status in the message).
        """
        from controlkit.planning.milp.highs import SolveResult

        if found is None or not np.isfinite(found.objective):
            return result
        good = result.status in (Status.OK, Status.SUBOPTIMAL)
        if good and result.objective <= found.objective + 1e-7 * (1.0 + abs(found.objective)):
            return result
        p = self.problem
        states = p.net.rollout(x0, found.actions)
        if p.violation(states, hard_only=True) > 0:
            return result
        return SolveResult(Status.SUBOPTIMAL, found.actions, states, found.objective, None, result.solve_time_s,
                           f"{result.message}; the start's plan kept (the solver's was worse or missing)")

    def _auto_budget(self, n_binaries: int) -> float | None:
        """Seconds the automatic tightening may take on this plan, or None when it should not run."""
        if self.tighten_steps != AUTO or self.backend != "highs" or n_binaries < AUTO_MIN_BINARIES:
            return None
        if self.tighten_time is not None:
            return self.tighten_time
        budget = AUTO_BUDGET if self.time_limit is None else AUTO_FRACTION * self.time_limit
        return budget if budget >= AUTO_MIN_BUDGET else None

    def _auto_tighten(self, milp, bounds: Bounds, x0: np.ndarray, goal: np.ndarray, actions: np.ndarray,
                      budget: float, extras: dict[str, Any]) -> Bounds:
        """LP-tighten with the objective of ``actions`` as cutoff (if they are feasible) and update ``milp``."""
        p = self.problem
        t0 = time.perf_counter()
        states = p.net.rollout(x0, actions)
        feasible = p.violation(states, hard_only=True) <= 0  # the cutoff must come from a feasible plan
        cutoff = float(p.objective(states, actions, goal)) if feasible else None
        bounds = copy.deepcopy(bounds)  # tighten_lp writes into its bounds; the caller's stay as they were
        bounds, n_lp = tighten_lp(p, x0, bounds, time_budget=budget, propagate=BOUND_METHODS[self.bound_method],
                                  window=self.tighten_window, goal=goal, cutoff=cutoff)
        milp.update(x0, goal, bounds)  # only unstable slots can become stable: the structure still fits
        extras.update(bounds.count(p), tighten_lps=n_lp, tighten_cutoff=cutoff,
                      tighten_time_s=time.perf_counter() - t0)
        return bounds

    def _compile(self, bounds: Bounds, x0: np.ndarray, goal: np.ndarray, structure):
        common = dict(time_limit=self.time_limit, mip_gap=self.mip_gap, structure=structure)
        if self.backend == "pyomo":
            from controlkit.planning.milp.pyomo_backend import PyomoMILP

            return PyomoMILP(self.problem, bounds, x0, goal, self.solver, **common)
        from controlkit.planning.milp.highs import HighsMILP

        return HighsMILP(self.problem, bounds, x0, goal, threads=self.threads, options=self.highs_options, **common)


__all__ = ["MIPMPC", "KeepOut"]

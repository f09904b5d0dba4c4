"""The MILP compiler's back half: sound bounds on every neuron (interval, zonotope, LP tightening), the HiGHS
backend (embedded, the default), the Pyomo backend (any solver Pyomo opens) and SCIP for diagnosing the search."""

from controlkit.planning.milp.bounds import Bounds, ibp, symbolic
from controlkit.planning.milp.highs import CompiledMILP, HighsMILP, SolveResult, assemble
from controlkit.planning.milp.region import RegionLP, region_descent
from controlkit.planning.milp.scip import ScipResult, solve_scip
from controlkit.planning.milp.search import SEARCH_MODES, SearchResult, neighbourhood_search
from controlkit.planning.milp.tightening import tighten_lp

__all__ = ["SEARCH_MODES", "Bounds", "CompiledMILP", "HighsMILP", "RegionLP", "ScipResult", "SearchResult",
           "SolveResult", "assemble", "ibp", "neighbourhood_search", "region_descent", "solve_scip", "symbolic",
           "tighten_lp"]

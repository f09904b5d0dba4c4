"""Planning over a learned model: the MPC problem (cost, bounds, keep-out boxes), the public receding-horizon
base class every planner derives from, the sampling/gradient planners, and MIP-MPC (the network compiled into a
MILP, see :mod:`controlkit.planning.milp`).

The samplers run on torch and load on first use, so MIP-MPC runs with numpy and highspy alone.
"""

from controlkit.core.lazy import lazy_getattr
from controlkit.planning.graph import GraphPlanner, graph_planner
from controlkit.planning.mip_mpc import MIPMPC
from controlkit.planning.problem import KeepOut, MPCProblem, make_problem
from controlkit.planning.receding import RecedingHorizonPlanner
from controlkit.planning.registry import get_planner, planner_names, register_planner

_LAZY = dict.fromkeys(
    ["CEMPlanner", "GradientPlanner", "MPPIPlanner", "RandomShootingPlanner"], "controlkit.planning.samplers"
)
__getattr__ = lazy_getattr(__name__, _LAZY)

__all__ = [
    "GraphPlanner", "KeepOut", "MIPMPC", "MPCProblem", "RecedingHorizonPlanner", "get_planner", "graph_planner",
    "make_problem", "planner_names", "register_planner", *_LAZY,
]

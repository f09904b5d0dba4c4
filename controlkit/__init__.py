"""controlkit: model-based control and digital twins.

The package is layered; data flows down this list and never back:

- :mod:`controlkit.core` -- the Controller interface, errors, registry of controllers, Fallback, run_loop,
  AsyncPlanner, export;
- :mod:`controlkit.models` -- transition data, dynamics training, sparsification, CompactNetwork;
- :mod:`controlkit.planning` -- the MPC problem, the planner base class, samplers, MIP-MPC and its MILP compiler;
- :mod:`controlkit.tasks` -- application logic (pushing);
- :mod:`controlkit.runner` -- configs, experiment kinds, run folders, sweeps, the CLI.

``controlkit.envs``, ``controlkit.twins`` and ``controlkit.policies`` hold the environments, the Mesa twins and
the swimmer policies. Importing controlkit registers the ``controlkit/...`` gymnasium environments; heavy
backends (torch, HiGHS, Mesa) load when a name that needs them is first used.
"""

from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

# In a source checkout envs/, twins/ and policies/ sit beside this folder; an install maps them into the package.
# When the checkout itself is imported (``python -m pytest`` from its root puts it first on sys.path, ahead of a
# non-editable install), searching the checkout's root for subpackages finds them where the install would.
_checkout = Path(__file__).resolve().parent.parent
if not (Path(__file__).parent / "envs").is_dir() and (_checkout / "envs" / "__init__.py").is_file():
    __path__.append(str(_checkout))

import controlkit.envs  # noqa: E402,F401  registers the environments
from controlkit.core import (  # noqa: E402
    AsyncPlanner,
    ConstantController,
    ControlkitError,
    Controller,
    Fallback,
    Plan,
    Planner,
    RandomController,
    Status,
    StepInfo,
    controller_names,
    make_controller,
    map_tasks,
    register_controller,
    run_loop,
)
from controlkit.core.lazy import lazy_getattr  # noqa: E402
from controlkit.runner import (  # noqa: E402
    ExperimentConfig,
    ExperimentKind,
    RunResult,
    load_config,
    register_kind,
    run_experiment,
)

try:
    __version__ = version("controlkit")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0+unknown"

_LAZY = {
    "CompactNetwork": "controlkit.models.network",
    **dict.fromkeys(["KeepOut", "MIPMPC"], "controlkit.planning.mip_mpc"),
    "RecedingHorizonPlanner": "controlkit.planning.receding",
    **dict.fromkeys(
        ["CEMPlanner", "GradientPlanner", "MPPIPlanner", "RandomShootingPlanner"], "controlkit.planning.samplers"
    ),
}
__getattr__ = lazy_getattr(__name__, _LAZY)

__all__ = [
    "AsyncPlanner",
    "ConstantController",
    "Controller",
    "ControlkitError",
    "ExperimentConfig",
    "ExperimentKind",
    "Fallback",
    "Plan",
    "Planner",
    "RandomController",
    "RunResult",
    "Status",
    "StepInfo",
    "controller_names",
    "load_config",
    "make_controller",
    "map_tasks",
    "register_controller",
    "register_kind",
    "run_experiment",
    "run_loop",
    *_LAZY,
]

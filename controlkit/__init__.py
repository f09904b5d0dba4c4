"""controlkit: model-based control and digital twins.

Importing it registers the ``controlkit/...`` gymnasium environments. Heavy backends (torch, HiGHS, Mesa) are
imported by the modules that need them, not here.
"""

from importlib.metadata import PackageNotFoundError, version

import controlkit.envs  # noqa: E402,F401  registers the environments
from controlkit.config import ExperimentConfig, load_config
from controlkit.controller import Controller, Plan, Planner, Status, StepInfo
from controlkit.controllers import (
    ConstantController,
    RandomController,
    controller_names,
    make_controller,
    register_controller,
)
from controlkit.errors import ControlkitError
from controlkit.executors import map_tasks
from controlkit.kinds import ExperimentKind, register_kind
from controlkit.run import RunResult, run_experiment

try:
    __version__ = version("controlkit")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0+unknown"

__all__ = [
    "ConstantController",
    "Controller",
    "ControlkitError",
    "ExperimentConfig",
    "ExperimentKind",
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
]

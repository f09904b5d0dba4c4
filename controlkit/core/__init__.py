"""The controller interface and what runs it: Controller/Planner/Plan/StepInfo, errors, the controller registry,
the safety wrapper (Fallback), the fixed-rate loop, the asynchronous planner, and small shared utilities (atomic
file writes, confidence intervals, parallel map, the registry class, an ONNX graph writer).

Nothing here imports models, planning, tasks or the runner: every other layer builds on this one.
"""

from controlkit.core.async_planner import AsyncPlanner
from controlkit.core.controller import Controller, Plan, Planner, Status, StepInfo
from controlkit.core.controllers import (
    ConstantController,
    RandomController,
    controller_names,
    make_controller,
    register_controller,
)
from controlkit.core.errors import ControlkitError, choices_error
from controlkit.core.executors import map_tasks
from controlkit.core.extras import MissingExtraError
from controlkit.core.fallback import Fallback
from controlkit.core.loop import GymPlant, LoopReport, MujocoPlant, run_loop
from controlkit.core.progress import progress_bar
from controlkit.core.seeding import spawn_seeds
from controlkit.core.stats import mean_ci95, proportion_ci95

__all__ = [
    "AsyncPlanner",
    "ConstantController",
    "Controller",
    "ControlkitError",
    "Fallback",
    "GymPlant",
    "LoopReport",
    "MissingExtraError",
    "MujocoPlant",
    "Plan",
    "Planner",
    "RandomController",
    "Status",
    "StepInfo",
    "choices_error",
    "controller_names",
    "make_controller",
    "map_tasks",
    "mean_ci95",
    "progress_bar",
    "proportion_ci95",
    "register_controller",
    "run_loop",
    "spawn_seeds",
]

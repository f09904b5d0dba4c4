"""The experiment runner: typed configs from YAML with dotted overrides, the registry of experiment kinds (one
module per kind in :mod:`controlkit.runner.kinds`), run folders, sweeps and the ``controlkit`` command line."""

from controlkit.runner.config import ExperimentConfig
from controlkit.runner.registry import ExperimentKind, get_kind, kind_names, load_config, register_kind, validate_config
from controlkit.runner.run import RunContext, RunFailed, RunResult, run_experiment
from controlkit.runner.signals import Interrupted
from controlkit.runner.sweep import SweepFailed, run_sweep

__all__ = [
    "ExperimentConfig",
    "ExperimentKind",
    "Interrupted",
    "RunContext",
    "RunFailed",
    "RunResult",
    "SweepFailed",
    "get_kind",
    "kind_names",
    "load_config",
    "register_kind",
    "run_experiment",
    "run_sweep",
    "validate_config",
]

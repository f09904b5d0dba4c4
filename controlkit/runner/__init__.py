"""The experiment runner: typed configs from YAML with dotted overrides, the registry of experiment kinds (one
module per kind in :mod:`controlkit.runner.kinds`), run folders, sweeps and the ``controlkit`` command line."""

from controlkit.runner.config import ExperimentConfig
from controlkit.runner.registry import ExperimentKind, get_kind, kind_names, load_config, register_kind, validate_config
from controlkit.runner.run import RunContext, RunResult, run_experiment
from controlkit.runner.sweep import run_sweep

__all__ = [
    "ExperimentConfig",
    "ExperimentKind",
    "RunContext",
    "RunResult",
    "get_kind",
    "kind_names",
    "load_config",
    "register_kind",
    "run_experiment",
    "run_sweep",
    "validate_config",
]

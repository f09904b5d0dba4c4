"""The registry of experiment kinds (a config schema plus a run function, looked up by the YAML's ``kind:``) and
the loading of an experiment file into its kind's validated config.

Built-in kinds are imported lazily (so ``controlkit run`` on a rollout never imports torch). A kind from outside
the package registers itself with :func:`register_kind`, is installed as an entry point in the group
``controlkit.kinds``, or is named in the YAML as ``kind: package.module:KIND``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from controlkit.core.errors import ControlkitError
from controlkit.core.registry import Registry
from controlkit.runner.config import ExperimentConfig, format_validation_error, load_yaml


@dataclasses.dataclass(frozen=True)
class ExperimentKind:
    """One kind of experiment.

    Attributes:
        name: The value of ``kind:`` in YAML.
        config: Pydantic schema (a subclass of :class:`~controlkit.runner.config.ExperimentConfig`).
        run: ``run(config, ctx) -> summary dict``; it streams metrics and saves plots through ``ctx``.
        description: One line for ``controlkit kinds``.
        report: Optional ``report(summary) -> str`` printed by the CLI after a run.
    """

    name: str
    config: type[ExperimentConfig]
    run: Callable[[ExperimentConfig, Any], dict[str, Any]]  # (config, RunContext) -> summary
    description: str = ""
    report: Callable[[dict[str, Any]], str] | None = None


def _check_kind(name: str, obj: Any) -> ExperimentKind:
    if not isinstance(obj, ExperimentKind):
        raise ControlkitError(f"kind: {name!r} is a {type(obj).__name__}, not an ExperimentKind.")
    return obj


KINDS: Registry[ExperimentKind] = Registry("kind", builtins={
        "rollout": "controlkit.runner.kinds.rollout:KIND",
        "twin_control": "controlkit.runner.kinds.twin_control:KIND",
        "twin_simulate": "controlkit.runner.kinds.twin_simulate:KIND",
        "twin_personalise": "controlkit.runner.kinds.twin_personalise:KIND",
        "swimmer": "controlkit.runner.kinds.swimmer:KIND",
        "sparsify": "controlkit.runner.kinds.sparsify:KIND",
        "model_based_control": "controlkit.runner.kinds.model_based_control:KIND",
        "graph_control": "controlkit.runner.kinds.graph_control:KIND",
    }, group="controlkit.kinds", check=_check_kind)


def register_kind(kind: ExperimentKind) -> None:
    """Register an experiment kind under ``kind.name`` (replaces one of the same name)."""
    KINDS.register(kind.name, kind)


def kind_names() -> list[str]:
    """Every kind name ``controlkit run`` accepts (besides ``module:KIND`` paths)."""
    return KINDS.names()


def get_kind(name: str) -> ExperimentKind:
    """Look up a kind by name or ``module:attribute``, importing it on first use."""
    return KINDS.get(name)


def validate_config(data: Mapping[str, Any]) -> ExperimentConfig:
    """Validate a config dict against its kind's schema."""
    if "kind" not in data:
        raise ControlkitError(f"kind: missing required field; valid kinds: {', '.join(kind_names())}.")
    _check_finite(data, "")
    schema = get_kind(str(data["kind"])).config
    try:
        return schema.model_validate(dict(data))
    except ValidationError as exc:
        raise ControlkitError(format_validation_error(exc, schema)) from None


def _check_finite(value: Any, where: str) -> None:
    """No experiment takes NaN or an infinity anywhere (also in free-form blocks such as ``env_kwargs``): they
    would pass range checks silently (NaN compares false) or fail mid-run under another field's name."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ControlkitError(f"{where or 'config'}: must be a finite number, got {value}.")
    if isinstance(value, Mapping):
        for key, item in value.items():
            _check_finite(item, f"{where}.{key}" if where else str(key))
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _check_finite(item, f"{where}.{i}")


def load_config(path: str | Path, overrides: Sequence[str] = ()) -> ExperimentConfig:
    """Load, override and validate an experiment file."""
    return validate_config(load_yaml(path, overrides))

"""The registry of experiment kinds: a config schema plus a run function, looked up by the YAML's ``kind:``.

Built-in kinds are imported lazily (so ``controlkit run`` on a rollout never imports torch); a kind from
outside the package registers itself with :func:`register_kind`.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from controlkit.core.errors import choices_error

if TYPE_CHECKING:
    from controlkit.runner.config import ExperimentConfig
    from controlkit.runner.run import RunContext


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
    run: Callable[[ExperimentConfig, RunContext], dict[str, Any]]
    description: str = ""
    report: Callable[[dict[str, Any]], str] | None = None


# kind name -> "module:attribute" holding its ExperimentKind; imported on first use.
_BUILTIN: dict[str, str] = {
    "rollout": "controlkit.runner.kinds.rollout:KIND",
    "twin_control": "controlkit.runner.kinds.twin_control:KIND",
    "twin_simulate": "controlkit.runner.kinds.twin_simulate:KIND",
    "swimmer": "controlkit.runner.kinds.swimmer:KIND",
    "sparsify": "controlkit.runner.kinds.sparsify:KIND",
    "model_based_control": "controlkit.runner.kinds.model_based_control:KIND",
}
_KINDS: dict[str, ExperimentKind] = {}


def register_kind(kind: ExperimentKind) -> None:
    """Register an experiment kind (replaces one of the same name)."""
    _KINDS[kind.name] = kind


def kind_names() -> list[str]:
    """Every kind ``controlkit run`` accepts."""
    return sorted(set(_BUILTIN) | set(_KINDS))


def get_kind(name: str) -> ExperimentKind:
    """Look up a kind by name, importing a built-in one on first use."""
    if name not in _KINDS:
        if name not in _BUILTIN:
            raise choices_error("kind", name, kind_names())
        module, attr = _BUILTIN[name].split(":")
        register_kind(getattr(importlib.import_module(module), attr))
    return _KINDS[name]

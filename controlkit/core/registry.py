"""One registry class for every named concept users can extend: controllers, planners, experiment kinds, twins.

A name resolves, in order, to: an object registered in this process (:meth:`Registry.register`), a built-in
given as ``"module:attribute"`` (imported on first use, so naming a planner never loads torch), an installed
package's entry point in the registry's group, or -- when the name itself has the form ``module:attribute`` -- that
attribute of the user's own module. So a YAML file can name ``type: mypkg.planners:MyPlanner`` without any
registration code.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from importlib.metadata import entry_points
from typing import Any, Generic, TypeVar

from controlkit.core.errors import ControlkitError, choices_error

T = TypeVar("T")


class Registry(Generic[T]):
    """Names -> objects of one concept.

    Args:
        field: The config field that holds such a name; every error message names it.
        builtins: Name -> ``"module:attribute"`` of the built-in entries, imported lazily.
        group: Entry-point group searched for names installed by other packages (e.g. ``controlkit.planners``).
        check: Optional ``check(name, obj) -> obj`` run on every resolved object (type checks, adaptation).
    """

    def __init__(self, field: str, builtins: Mapping[str, str] | None = None, group: str | None = None,
                 check: Callable[[str, Any], T] | None = None) -> None:
        self.field = field
        self._builtins = dict(builtins or {})
        self._group = group
        self._check = check
        self._entries: dict[str, T] = {}

    def register(self, name: str, obj: T) -> T:
        """Make ``obj`` available under ``name`` (replacing any entry of that name); returns ``obj``."""
        if not name or ":" in name:
            raise ControlkitError(f"{self.field}: a registered name must be non-empty and contain no ':', got "
                                  f"{name!r}.")
        self._entries[name] = obj
        return obj

    def register_path(self, name: str, spec: str) -> None:
        """Make ``"module:attribute"`` available under ``name``, imported on first use (keeps heavy imports lazy)."""
        self._builtins[name] = spec
        self._entries.pop(name, None)

    def names(self) -> list[str]:
        """Every name that resolves without a ``module:attribute`` path."""
        found = set(self._entries) | set(self._builtins)
        if self._group:
            found |= {ep.name for ep in entry_points(group=self._group)}
        return sorted(found)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and (":" in name or name in self.names())

    def get(self, name: str) -> T:
        """Resolve ``name``.

        Raises:
            ControlkitError: naming :attr:`field` and the valid choices when nothing resolves.
        """
        if name in self._entries:
            return self._entries[name]
        if name in self._builtins:
            return self.register(name, self._load(name, self._builtins[name]))
        if self._group:
            for ep in entry_points(group=self._group, name=name):
                return self.register(name, self._finish(name, ep.load()))
        if ":" in name:
            return self._load(name, name)
        raise choices_error(self.field, name, self.names())

    def _load(self, name: str, spec: str) -> T:
        module, _, attr = spec.partition(":")
        try:
            obj = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as exc:
            raise ControlkitError(f"{self.field}: cannot load {spec!r} ({exc}); use 'package.module:Name' with the "
                                  f"module importable, or one of: {', '.join(self.names())}.") from None
        return self._finish(name, obj)

    def _finish(self, name: str, obj: Any) -> T:
        return self._check(name, obj) if self._check else obj

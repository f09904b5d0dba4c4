"""Lazy re-exports: a package names its public API without importing heavy backends (torch, HiGHS) up front."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_getattr(package: str, names: dict[str, str]) -> Callable[[str], Any]:
    """Return a module-level ``__getattr__`` that imports ``names[attr]`` (a submodule) on first access.

    Args:
        package: The package's ``__name__``, used in the error message.
        names: Public attribute -> absolute module name holding it.
    """

    def __getattr__(name: str) -> Any:
        if name in names:
            return getattr(importlib.import_module(names[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__

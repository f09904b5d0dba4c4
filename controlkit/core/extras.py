"""Optional dependencies: which extra of ``pip install 'controlkit[...]'`` brings which module, and the error a
user sees when a feature's module is missing.

The core (numpy, scipy, torch, gymnasium, the runner) installs alone; MuJoCo, HiGHS/Pyomo, Mesa,
stable-baselines3, Ray and ONNX come with extras, so a user who wants MIP-MPC on their own network does not install
MuJoCo, Mesa and stable-baselines3.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from controlkit.core.errors import ControlkitError

EXTRAS: dict[str, str] = {
    "mujoco": "mujoco",
    "highspy": "mpc",
    "pyomo": "mpc",
    "mesa": "twins",
    "sbi": "personalise",
    "stable_baselines3": "rl",
    "cma": "swimmer",
    "ray": "ray",
    "onnx": "onnx",
    "onnxruntime": "onnx",
}
"""Top-level module -> the extra that installs it."""


class MissingExtraError(ControlkitError, ImportError):
    """A feature needs a module of an optional extra that is not installed.

    Both a :class:`ControlkitError` (the CLI prints it in one line and exits 2) and an :class:`ImportError` (code
    that probes for optional modules keeps working).
    """


def missing_extra(module: str, feature: str) -> MissingExtraError:
    """The error for ``feature`` lacking ``module``, naming the extra that installs it."""
    top = module.split(".")[0]
    extra = EXTRAS.get(top, "all")
    return MissingExtraError(f"{feature} needs the optional dependency {top!r}, which is not installed: "
                             f"pip install 'controlkit[{extra}]' (or 'controlkit[all]').", name=top)


def require(module: str, feature: str) -> ModuleType:
    """Import ``module`` or raise :func:`missing_extra` for ``feature``."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        if exc.name is not None and exc.name.split(".")[0] != module.split(".")[0]:
            raise  # the module is there but one of its own imports failed: show that, not a wrong hint
        raise missing_extra(module, feature) from None


__all__ = ["EXTRAS", "MissingExtraError", "missing_extra", "require"]

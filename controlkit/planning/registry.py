"""The planner registry: names usable as ``type:`` in an experiment's ``planners`` block.

A planner is a class whose constructor takes the problem as :class:`~controlkit.planning.receding.
RecedingHorizonPlanner` does (``model, horizon, u_low, u_high, x_low, x_high, ...``) plus its own keyword
arguments. Register one with :func:`register_planner`, install it as an entry point in the group
``controlkit.planners``, or name it in YAML as ``type: package.module:MyPlanner``.
"""

from __future__ import annotations

import inspect
from typing import Any

from controlkit.core.errors import ControlkitError
from controlkit.core.registry import Registry


def _check_planner(name: str, obj: Any) -> type:
    if not callable(obj):
        raise ControlkitError(f"planner type: {name!r} is a {type(obj).__name__}, not a planner class.")
    return obj


PLANNERS: Registry[type] = Registry(
    "planner type",
    builtins={
        "mip_mpc": "controlkit.planning.mip_mpc:MIPMPC",
        "mppi": "controlkit.planning.samplers:MPPIPlanner",
        "cem": "controlkit.planning.samplers:CEMPlanner",
        "gradient": "controlkit.planning.samplers:GradientPlanner",
        "random": "controlkit.planning.samplers:RandomShootingPlanner",
    },
    group="controlkit.planners",
    check=_check_planner,
)


def register_planner(name: str, cls: type) -> None:
    """Make planner class ``cls`` available as ``type: name``."""
    PLANNERS.register(name, cls)


def planner_names() -> list[str]:
    """Every registered planner type (besides ``module:Class`` paths)."""
    return PLANNERS.names()


def get_planner(name: str) -> type:
    """The planner class registered as ``name`` (or at ``module:Class``)."""
    return PLANNERS.get(name)


def planner_params(cls: Any) -> set[str]:
    """Keyword arguments a planner class takes: its own constructor's and every base class's."""
    names: set[str] = set()
    for c in getattr(cls, "__mro__", (cls,)):
        init = vars(c).get("__init__") if isinstance(c, type) else c
        if init is None:
            continue
        names |= {n for n, p in inspect.signature(init).parameters.items()
                  if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and n != "self"}
    return names

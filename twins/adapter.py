"""Bring your own agent-based model: wrap an existing Mesa 3 model as a controllable twin.

A user's model keeps its agents in ``model.agents`` (AgentSets), its space (a Mesa grid) and its own ``step()``.
:func:`wrap_mesa_model` adds what the control machinery needs and nothing else:

- ``apply_control(model, u)`` acts on the model before each of its steps (``u`` a float array inside the
  declared control bounds, validated by the twin);
- ``observe(model)`` returns a mapping of named observables (counts, totals, means), read after each step;
- the model's constructor keywords become the twin's parameters (its defaults, type-checked), and the twin's seed
  is passed to the model's ``seed`` (or ``rng``) argument, so ``Twin(seed=s)`` replays ``Model(seed=s)``.

The result is a :class:`~controlkit.twins.TwinModel` subclass. Give it an objective and a
:class:`~controlkit.twins.TwinSpec` and ``register_twin`` makes it a twin like the built-in ones: ``twin_simulate``
and ``twin_control`` from YAML (``twin: "package.module:SPEC"``), the gym env, :func:`~controlkit.twins.make_task`.

Like :func:`collections.namedtuple`, the class is given the module of the caller, so assign it to a module-level
name equal to its ``name``: then it pickles by reference and replicate workers (which spawn fresh processes)
import it with that module.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
from controlkit.twins._common import ControlSpec, TwinModel
from controlkit.twins._mesa import mesa

from controlkit.core.errors import ControlkitError

# Constructor arguments that are the model's randomness, not parameters.
_SEED_ARGS = ("seed", "rng")
_PALETTE = np.array([[230, 80, 60], [60, 120, 220], [80, 180, 90], [240, 200, 40], [150, 90, 200],
                     [40, 190, 200], [250, 140, 30], [120, 120, 120]], dtype=np.uint8)


class MesaTwin(TwinModel):
    """A user's Mesa model run as a twin (built by :func:`wrap_mesa_model`; not used directly).

    Attributes:
        abm: The wrapped model instance (its ``agents``, grid and state, as the user's code left them).
    """

    MODEL: ClassVar[type]
    CONTROLS: ClassVar[tuple[ControlSpec, ...]]
    SEED_ARG: ClassVar[str]
    HOOKS: ClassVar[dict[str, Callable | None]]

    def __init__(self, params: Any = None, *, seed: int | None = None, rng: Any = None, **overrides: Any) -> None:
        # Kept for _setup, which runs inside TwinModel.__init__: the wrapped model gets the twin's own seed.
        self._abm_seed = seed
        super().__init__(params, seed=seed, rng=rng, **overrides)

    def _controls(self) -> tuple[ControlSpec, ...]:
        return self.CONTROLS

    def _setup(self) -> None:
        seed = self._abm_seed if self._abm_seed is not None else int(self.rng.integers(2**31 - 1))
        kwargs = {**dataclasses.asdict(self.params), self.SEED_ARG: seed}
        try:
            self.abm = self.MODEL(**kwargs)
        except (TypeError, ValueError) as exc:
            raise ControlkitError(f"params: {self.MODEL.__name__} rejected {dataclasses.asdict(self.params)} "
                                  f"({exc}).") from None

    def _advance(self, control: np.ndarray) -> None:
        self.HOOKS["apply_control"](self.abm, control.copy())
        self.abm.step()

    def _observe(self) -> np.ndarray:
        values = self.HOOKS["observe"](self.abm)
        if not isinstance(values, Mapping):
            raise ControlkitError(f"observe: must return a mapping of observable -> number, got "
                                  f"{type(values).__name__}.")
        out = np.empty(len(self.OBSERVABLES))
        for i, name in enumerate(self.OBSERVABLES):
            if name not in values:
                raise ControlkitError(f"observe: returned no value for observable {name!r}; it returned "
                                      f"{', '.join(map(str, values)) or 'nothing'}.")
            try:
                out[i] = float(values[name])
            except (TypeError, ValueError):
                raise ControlkitError(f"observe: observable {name!r} is not a number ({values[name]!r}).") from None
            if not math.isfinite(out[i]):
                raise ControlkitError(f"observe: observable {name!r} is not finite ({out[i]}).")
        return out

    def grid_image(self) -> np.ndarray:
        """The user's ``render(model)`` if given, else the model's ``grid``: each cell coloured by the class of its
        first agent (in the order of ``model.agent_types``), empty cells black."""
        render = self.HOOKS["render"]
        if render is not None:
            return np.asarray(render(self.abm), dtype=np.uint8)
        return grid_picture(self.abm)

    def summarize(self, trajectory: np.ndarray) -> dict[str, float]:
        """The user's ``summarize(trajectory)`` if given, else each observable's final, mean and peak value."""
        summarize = self.HOOKS["summarize"]
        if summarize is not None:
            return {k: float(v) for k, v in summarize(trajectory).items()}
        out = {}
        for j, name in enumerate(self.OBSERVABLES):
            out[f"final_{name}"] = float(trajectory[-1, j])
            out[f"mean_{name}"] = float(trajectory[:, j].mean())
            out[f"peak_{name}"] = float(trajectory[:, j].max())
        return out


def grid_picture(model: Any) -> np.ndarray:
    """An ``(H, W, 3)`` picture of ``model.grid`` (a 2-D ``mesa.discrete_space`` grid or a ``mesa.space`` grid).

    Raises:
        ControlkitError: the model has no 2-D grid under ``grid`` (pass ``render=`` to :func:`wrap_mesa_model`).
    """
    grid = getattr(model, "grid", None)
    types = {cls: i for i, cls in enumerate(getattr(model, "agent_types", []))}
    dims = getattr(grid, "dimensions", None)
    if dims is not None and len(dims) == 2:  # mesa.discrete_space
        img = np.zeros((dims[1], dims[0], 3), dtype=np.uint8)
        for cell in grid.all_cells:
            if cell.agents:
                x, y = cell.coordinate
                img[y, x] = _PALETTE[types.get(type(cell.agents[0]), 0) % len(_PALETTE)]
        return img
    if grid is not None and hasattr(grid, "coord_iter") and hasattr(grid, "width"):  # mesa.space grids
        img = np.zeros((grid.height, grid.width, 3), dtype=np.uint8)
        for content, (x, y) in grid.coord_iter():
            first = (content[0] if content else None) if isinstance(content, list) else content
            if first is not None:
                img[y, x] = _PALETTE[types.get(type(first), 0) % len(_PALETTE)]
        return img
    raise ControlkitError(f"render: {type(model).__name__} has no 2-D Mesa grid under 'grid'; pass "
                          "render=callable(model) -> (H, W, 3) uint8 to wrap_mesa_model.")


def _control_spec(item: Any, index: int) -> ControlSpec:
    if isinstance(item, ControlSpec):
        spec = item
    else:
        try:
            spec = ControlSpec(*item)
        except TypeError:
            raise ControlkitError(f"controls[{index}]: give a ControlSpec or (name, low, high[, description]), "
                                  f"got {item!r}.") from None
    low, high = float(spec.low), float(spec.high)
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise ControlkitError(f"controls[{index}] ({spec.name}): need finite bounds with low < high, "
                              f"got [{spec.low}, {spec.high}].")
    return ControlSpec(str(spec.name), low, high, spec.description)


def _check_type(name: str, value: Any, default: Any) -> Any:
    """``value`` for a parameter whose default is ``default``: same kind of value (an int is a float too)."""
    if isinstance(default, bool):
        ok = isinstance(value, (bool, np.bool_))
    elif isinstance(default, (int, np.integer)):
        ok = isinstance(value, (int, np.integer)) and not isinstance(value, bool)
    elif isinstance(default, (float, np.floating)):
        ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif isinstance(default, str):
        ok = isinstance(value, str)
    else:
        ok = True
    if not ok:
        raise ControlkitError(f"params.{name}: expected {type(default).__name__} (like the default "
                              f"{default!r}), got {value!r}.")
    return value


def _params_class(name: str, module: str, model_cls: type, params: Mapping[str, Any] | None,
                  validate: Callable[[Any], None] | None) -> type:
    """A frozen dataclass of the model's keyword parameters (defaults from its signature, overridden by
    ``params``), whose ``validate()`` checks each value's type and then calls the user's ``validate``."""
    signature = inspect.signature(model_cls.__init__)
    defaults = {p.name: p.default for p in signature.parameters.values()
                if p.name not in _SEED_ARGS and p.default is not inspect.Parameter.empty
                and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    for key in params or {}:
        if key not in defaults:
            raise ControlkitError(f"params.{key}: not a keyword parameter (with a default) of "
                                  f"{model_cls.__name__}; valid: {', '.join(defaults) or 'none'}.")
    defaults.update(params or {})
    # Mutable defaults (lists) need a factory; parameters stay as given.
    fields = [(k, Any, dataclasses.field(default_factory=lambda v=v: v) if isinstance(v, (list, dict, set))
               else dataclasses.field(default=v)) for k, v in defaults.items()]

    def check(self) -> None:
        for key, default in defaults.items():
            checked = _check_type(key, getattr(self, key), default)
            object.__setattr__(self, key, checked)
        if validate is not None:
            validate(self)

    cls = dataclasses.make_dataclass("Params", fields, frozen=True, namespace={"validate": check})
    cls.__module__, cls.__qualname__, cls.__name__ = module, f"{name}.Params", f"{name}.Params"
    cls.__doc__ = f"Parameters of {name}: the keyword arguments of {model_cls.__name__} and their defaults."
    return cls


def wrap_mesa_model(name: str, model_cls: type, *, observables: Sequence[str],
                    controls: Sequence[ControlSpec | tuple], apply_control: Callable[[Any, np.ndarray], None],
                    observe: Callable[[Any], Mapping[str, float]], params: Mapping[str, Any] | None = None,
                    validate: Callable[[Any], None] | None = None, render: Callable[[Any], np.ndarray] | None = None,
                    summarize: Callable[[np.ndarray], Mapping[str, float]] | None = None,
                    module: str | None = None) -> type[MesaTwin]:
    """A :class:`~controlkit.twins.TwinModel` subclass that runs ``model_cls`` under control.

    Args:
        name: The class name; assign the result to a module-level variable of this name (it pickles by reference).
        model_cls: A :class:`mesa.Model` subclass whose ``__init__`` takes ``seed`` (or ``rng``) and keyword
            parameters with defaults; one tick of the twin is one call of its ``step()``.
        observables: Names of the observables, in column order (the keys ``observe`` must return; extra keys
            are ignored).
        controls: One :class:`~controlkit.twins.ControlSpec` or ``(name, low, high[, description])`` per control.
        apply_control: ``apply_control(model, u)`` acts on the model before each step; ``u`` is validated against
            the bounds (the twin never clips).
        observe: ``observe(model)`` returns ``{observable: number}`` after each step (and once at the start).
        params: Twin-level defaults that replace the constructor's (only names the constructor has).
        validate: ``validate(params)`` raises a :class:`~controlkit.core.errors.ControlkitError` naming a bad
            parameter (types are checked against the defaults before it is called).
        render: ``render(model)`` returns an ``(H, W, 3)`` uint8 picture (default: :func:`grid_picture`).
        summarize: ``summarize(trajectory)`` returns outcome numbers of a ``(T + 1, n_obs)`` trajectory
            (default: final, mean and peak of each observable).
        module: The module the class belongs to (default: the caller's).

    Raises:
        ControlkitError: no observables or controls, bad bounds, a model without a seed argument, or parameter
            defaults that are not constructor keywords, each named.
    """
    if not (isinstance(model_cls, type) and issubclass(model_cls, mesa.Model)):
        raise ControlkitError(f"model_cls: expected a mesa.Model subclass, got {model_cls!r}.")
    if not name.isidentifier():
        raise ControlkitError(f"name: must be a Python identifier (the class name), got {name!r}.")
    names = tuple(str(o) for o in observables)
    if not names or len(set(names)) != len(names):
        raise ControlkitError(f"observables: need at least one name and no repeats, got {list(observables)}.")
    specs = tuple(_control_spec(c, i) for i, c in enumerate(controls))
    if not specs:
        raise ControlkitError("controls: a twin needs at least one control.")
    for field, fn in (("apply_control", apply_control), ("observe", observe)):
        if not callable(fn):
            raise ControlkitError(f"{field}: must be callable, got {fn!r}.")
    signature = inspect.signature(model_cls.__init__).parameters
    seed_arg = next((a for a in _SEED_ARGS if a in signature), None)
    if seed_arg is None and any(p.kind == p.VAR_KEYWORD for p in signature.values()):
        seed_arg = "seed"  # forwarded to mesa.Model through **kwargs
    if seed_arg is None:
        raise ControlkitError(f"model_cls: {model_cls.__name__}.__init__ takes neither seed nor rng; a twin must "
                              "be seedable (same seed, same trajectory).")
    module = module or sys._getframe(1).f_globals.get("__name__", "__main__")
    namespace = {
        "__module__": module, "__qualname__": name,
        "__doc__": f"{model_cls.__name__} as a controllable twin (controls: {', '.join(s.name for s in specs)}; "
                   f"observables: {', '.join(names)}).",
        "Params": _params_class(name, module, model_cls, params, validate), "OBSERVABLES": names,
        "MODEL": model_cls, "CONTROLS": specs, "SEED_ARG": seed_arg,
        "HOOKS": {"apply_control": apply_control, "observe": observe, "render": render, "summarize": summarize},
    }
    return type(name, (MesaTwin,), namespace)


__all__ = ["MesaTwin", "grid_picture", "wrap_mesa_model"]

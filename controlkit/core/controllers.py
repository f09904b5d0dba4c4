"""Trivial controllers (random, constant) and the name registry the runner builds controllers from."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np

from controlkit.core.controller import Controller, StepInfo
from controlkit.core.errors import ControlkitError
from controlkit.core.registry import Registry

ControllerFactory = Callable[..., Controller]


def _check_factory(name: str, obj: Any) -> ControllerFactory:
    if not callable(obj):
        raise ControlkitError(f"controller: {name!r} is a {type(obj).__name__}, not a factory(env, **kwargs).")
    return obj


# The circuit lives in controlkit.policies (torch); the core names it lazily and never imports it.
CONTROLLERS: Registry[ControllerFactory] = Registry(
    "controller", builtins={"ncap": "controlkit.policies:ncap_controller"}, group="controlkit.controllers",
    check=_check_factory)


def register_controller(name: str, factory: ControllerFactory) -> None:
    """Make ``factory(env, **kwargs) -> Controller`` available to the runner under ``name``."""
    CONTROLLERS.register(name, factory)


def controller_names() -> list[str]:
    """Names the runner accepts for ``controller:`` (besides ``module:factory`` paths)."""
    return CONTROLLERS.names()


def make_controller(name: str, env: gym.Env, **kwargs: Any) -> Controller:
    """Build the controller ``name`` (a registered name or ``package.module:factory``) for ``env``.

    Raises:
        ControlkitError: unknown name, or keyword arguments the controller does not take.
    """
    factory = CONTROLLERS.get(name)
    try:
        return factory(env, **kwargs)
    except TypeError as exc:
        raise ControlkitError(f"controller_kwargs for {name!r}: {exc}") from exc


def _box(space: gym.Space, who: str) -> gym.spaces.Box:
    if not isinstance(space, gym.spaces.Box):
        raise ControlkitError(f"{who} needs a Box action space, got {type(space).__name__}.")
    return space


class RandomController(Controller):
    """Uniform random actions from a bounded action space, reproducible from ``reset(seed)``."""

    def __init__(self, action_space: gym.Space, seed: int | None = None) -> None:
        self.action_space = action_space
        self._rng = np.random.default_rng(seed)

    def reset(self, seed: int | None = None) -> None:
        super().reset(seed)
        if seed is not None:
            self._rng = np.random.default_rng(seed)

    def _act(self, obs: Any) -> tuple[np.ndarray, StepInfo]:
        space = self.action_space
        if isinstance(space, gym.spaces.Box):
            action = self._rng.uniform(space.low, space.high).astype(space.dtype)
        elif isinstance(space, gym.spaces.Discrete):
            action = np.int64(space.start + self._rng.integers(space.n))
        else:
            raise ControlkitError(f"RandomController supports Box and Discrete spaces, not {type(space).__name__}.")
        return action, StepInfo()


class ConstantController(Controller):
    """Always the same action (zeros by default), clipped into the action box."""

    def __init__(self, action_space: gym.Space, value: float | list[float] = 0.0) -> None:
        box = _box(action_space, "ConstantController")
        action = np.broadcast_to(np.asarray(value, dtype=box.dtype), box.shape)
        self.action = np.clip(action, box.low, box.high).astype(box.dtype)

    def _act(self, obs: Any) -> tuple[np.ndarray, StepInfo]:
        return self.action.copy(), StepInfo()


register_controller("random", lambda env, seed=None: RandomController(env.action_space, seed=seed))
register_controller("zero", lambda env: ConstantController(env.action_space, 0.0))
register_controller("constant", lambda env, value=0.0: ConstantController(env.action_space, value))

"""Transition data for learning dynamics: seeded collection from any gymnasium env, a compressed file format,
and a train/validation split by trajectory.

A :class:`TransitionData` keeps whole trajectories (``states`` has one more step than ``actions``), so both
one-step pairs and multi-step windows for rollout losses come from the same arrays. Trajectories may end early
(an env that terminates); ``lengths`` says how many transitions of each are real, the rest is padding.
"""

from __future__ import annotations

import dataclasses
import io
import json
import zipfile
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from controlkit.core.controller import Controller, StepInfo
from controlkit.core.controllers import RandomController
from controlkit.core.errors import ControlkitError, choices_error
from controlkit.core.io import atomic_write_bytes
from controlkit.core.seeding import spawn_seeds

DATA_FORMAT_VERSION = 1
BEHAVIOURS = ("random", "correlated")


@dataclasses.dataclass
class TransitionData:
    """Trajectories of (state, action) pairs.

    Attributes:
        states: ``(n_traj, T + 1, nx)``; ``states[i, t + 1]`` follows ``states[i, t]`` under ``actions[i, t]``.
        actions: ``(n_traj, T, nu)``.
        lengths: ``(n_traj,)`` number of real transitions in each trajectory (``<= T``).
        metadata: Where the data came from (env id, behaviour, seed, action bounds, ...).
    """

    states: np.ndarray
    actions: np.ndarray
    lengths: np.ndarray
    metadata: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        self.states = np.asarray(self.states, dtype=np.float64)
        self.actions = np.asarray(self.actions, dtype=np.float64)
        self.lengths = np.asarray(self.lengths, dtype=np.int64)
        _check_shapes(self.states, self.actions, self.lengths, "dataset")

    @property
    def nx(self) -> int:
        return self.states.shape[2]

    @property
    def nu(self) -> int:
        return self.actions.shape[2]

    @property
    def n_trajectories(self) -> int:
        return self.states.shape[0]

    @property
    def n_transitions(self) -> int:
        return int(self.lengths.sum())

    def subset(self, index: np.ndarray) -> TransitionData:
        """The trajectories at ``index`` (same metadata)."""
        return TransitionData(self.states[index], self.actions[index], self.lengths[index], dict(self.metadata))

    def transitions(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """All real one-step pairs as flat arrays ``(x, u, x_next)``."""
        valid = np.arange(self.actions.shape[1])[None, :] < self.lengths[:, None]
        return self.states[:, :-1][valid], self.actions[valid], self.states[:, 1:][valid]

    def windows(self, steps: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every window of ``steps`` consecutive real transitions.

        Returns:
            ``x0`` ``(M, nx)``, ``actions`` ``(M, steps, nu)``, ``targets`` ``(M, steps, nx)`` (the states after
            each action). Trajectories shorter than ``steps`` contribute nothing.
        """
        starts = [(i, s) for i, n in enumerate(self.lengths) for s in range(int(n) - steps + 1)]
        if not starts:
            return np.zeros((0, self.nx)), np.zeros((0, steps, self.nu)), np.zeros((0, steps, self.nx))
        traj, start = np.array(starts).T
        offs = start[:, None] + np.arange(steps)[None, :]
        return self.states[traj, start], self.actions[traj[:, None], offs], self.states[traj[:, None], offs + 1]

    def split(self, val_fraction: float, seed: int) -> tuple[TransitionData, TransitionData]:
        """Split by whole trajectories (never by step, so validation windows are unseen), seeded.

        Raises:
            ControlkitError: if ``val_fraction`` leaves either part empty.
        """
        n_val = check_split(self.n_trajectories, val_fraction)
        order = np.random.default_rng(seed).permutation(self.n_trajectories)
        return self.subset(np.sort(order[n_val:])), self.subset(np.sort(order[:n_val]))


def concatenate(datasets: list[TransitionData], metadata: dict[str, Any] | None = None) -> TransitionData:
    """The trajectories of every dataset in ``datasets``, in order, as one :class:`TransitionData`.

    Trajectories of different lengths are padded to the longest (padding repeats the last state and holds zero
    actions; ``lengths`` keeps what is real), so data from exploration and from closed-loop episodes of any length
    train one model together.

    Raises:
        ControlkitError: if ``datasets`` is empty or their state or action sizes differ.
    """
    if not datasets:
        raise ControlkitError("concatenate: no datasets given.")
    sizes = {(d.nx, d.nu) for d in datasets}
    if len(sizes) > 1:
        raise ControlkitError(f"concatenate: the datasets have different (state, action) sizes {sorted(sizes)}.")
    steps = max(d.actions.shape[1] for d in datasets)
    states, actions = [], []
    for d in datasets:
        pad = steps - d.actions.shape[1]
        states.append(np.concatenate([d.states, np.repeat(d.states[:, -1:], pad, axis=1)], axis=1))
        actions.append(np.concatenate([d.actions, np.zeros((d.n_trajectories, pad, d.nu))], axis=1))
    meta = dict(datasets[0].metadata) if metadata is None else metadata
    return TransitionData(np.concatenate(states), np.concatenate(actions),
                          np.concatenate([d.lengths for d in datasets]), meta)


def check_split(n_trajectories: int, val_fraction: float, field: str = "data.val_fraction") -> int:
    """The number of validation trajectories :meth:`TransitionData.split` takes from ``n_trajectories``.

    Raises:
        ControlkitError: naming ``field`` if either part would be empty (checked by configs before a run starts).
    """
    n_val = int(round(val_fraction * n_trajectories))
    if not 0 < n_val < n_trajectories:
        raise ControlkitError(
            f"{field}: {val_fraction} of {n_trajectories} trajectories leaves an empty train or validation set; "
            "use more trajectories or a fraction strictly between them."
        )
    return n_val


class CorrelatedNoiseController(Controller):
    """Temporally correlated random actions: an AR(1) process in the normalised action box.

    ``z_t = rho z_{t-1} + sqrt(1 - rho^2) sigma eps_t`` and ``a_t = mid + half * clip(z_t, -1, 1)``. Actions
    drift instead of flickering, so trajectories reach farther into state space than uniform noise does.
    """

    def __init__(self, action_space: gym.spaces.Box, correlation: float = 0.9, scale: float = 0.7,
                 seed: int | None = None) -> None:
        self.space = action_space
        self.rho = float(correlation)
        self.scale = float(scale)
        self._rng = np.random.default_rng(seed)
        self._z = np.zeros(action_space.shape)

    def reset(self, seed: int | None = None) -> None:
        super().reset(seed)
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        self._z = self._rng.normal(0.0, self.scale, self.space.shape)

    def _act(self, obs: Any) -> tuple[np.ndarray, StepInfo]:
        eps = self._rng.normal(0.0, self.scale, self.space.shape)
        self._z = self.rho * self._z + np.sqrt(1.0 - self.rho**2) * eps
        mid, half = (self.space.high + self.space.low) / 2, (self.space.high - self.space.low) / 2
        return (mid + half * np.clip(self._z, -1.0, 1.0)).astype(self.space.dtype), StepInfo()


def make_env(env_id: str, field: str = "env", **kwargs: Any) -> gym.Env:
    """``gym.make`` with the checks dynamics learning needs: a known id, flat Box observations, bounded Box actions.

    Raises:
        ControlkitError: naming ``field`` when the id is unknown or a space is not a (bounded) Box.
    """
    import controlkit.envs  # noqa: F401  (registers controlkit/* ids)

    try:
        env = gym.make(env_id, **kwargs)
    except gym.error.Error as exc:
        raise ControlkitError(f"{field}: unknown or unusable gymnasium env id {env_id!r} ({exc}).") from None
    act, obs = env.action_space, env.observation_space
    problem = None
    if not isinstance(act, gym.spaces.Box):
        problem = f"its action space is {type(act).__name__}; dynamics learning needs a Box action space"
    elif not (np.all(np.isfinite(act.low)) and np.all(np.isfinite(act.high))):
        problem = "its Box action space is unbounded; random behaviour needs finite bounds"
    elif not isinstance(obs, gym.spaces.Box) or len(obs.shape) != 1:
        problem = f"its observation space is {obs}; dynamics learning needs a flat (1-D) Box"
    if problem:
        env.close()
        raise ControlkitError(f"{field}: {env_id!r} cannot be used: {problem}.")
    return env


def make_behaviour(name: str, action_space: gym.spaces.Box, correlation: float = 0.9,
                   scale: float = 0.7) -> Controller:
    """The behaviour controller ``name`` (``random`` or ``correlated``) for collecting data."""
    if name == "random":
        return RandomController(action_space)
    if name == "correlated":
        return CorrelatedNoiseController(action_space, correlation=correlation, scale=scale)
    raise choices_error("data.behaviour", name, BEHAVIOURS)


def collect(
    env_id: str,
    trajectories: int,
    steps: int,
    seed: int,
    behaviour: str | Controller = "correlated",
    correlation: float = 0.9,
    scale: float = 0.7,
    env_kwargs: dict[str, Any] | None = None,
    progress=None,
) -> TransitionData:
    """Collect ``trajectories`` episodes of at most ``steps`` transitions each, observation = state.

    Trajectory ``i`` resets the env and the behaviour with the ``i``-th seed spawned from ``seed``
    (:func:`controlkit.core.seeding.spawn_seeds`): the same seed gives the same data, other seeds share none of it.

    Args:
        env_id: Any gymnasium id with a bounded Box action space and a flat Box observation space.
        trajectories: Number of episodes.
        steps: Transitions per episode (fewer if the env terminates).
        seed: Root seed.
        behaviour: ``"random"`` (uniform), ``"correlated"`` (AR(1) noise) or any :class:`Controller`.
        correlation: AR(1) coefficient of the correlated behaviour.
        scale: Noise scale of the correlated behaviour (in half-widths of the action box).
        env_kwargs: Keyword arguments for ``gym.make``.
        progress: Optional wrapper for the episode iterator (e.g. ``ctx.progress``).
    """
    env = make_env(env_id, max_episode_steps=steps, **(env_kwargs or {}))
    controller = behaviour if isinstance(behaviour, Controller) else make_behaviour(
        behaviour, env.action_space, correlation, scale)
    nx, nu = env.observation_space.shape[0], int(np.prod(env.action_space.shape))
    states = np.zeros((trajectories, steps + 1, nx))
    actions = np.zeros((trajectories, steps, nu))
    lengths = np.zeros(trajectories, dtype=np.int64)
    episodes = range(trajectories) if progress is None else progress(range(trajectories), desc="collect")
    seeds = spawn_seeds(seed, trajectories, "data")
    try:
        for i in episodes:
            obs, _ = env.reset(seed=seeds[i])
            controller.reset(seed=seeds[i])
            states[i, 0] = obs
            for t in range(steps):
                action = np.asarray(controller.act(obs), dtype=env.action_space.dtype)
                obs, _, terminated, truncated, _ = env.step(action)
                actions[i, t], states[i, t + 1] = action.reshape(nu), obs
                lengths[i] = t + 1
                if terminated or truncated:
                    break
            # Padding repeats the last real state so that padded arrays stay finite and harmless.
            states[i, lengths[i] + 1:] = states[i, lengths[i]]
    finally:
        env.close()
    meta = {
        "env": env_id,
        "env_kwargs": env_kwargs or {},
        "behaviour": behaviour if isinstance(behaviour, str) else type(behaviour).__name__,
        "correlation": correlation,
        "scale": scale,
        "seed": seed,
        "trajectories": trajectories,
        "steps": steps,
        "action_low": env.action_space.low.reshape(nu).tolist(),
        "action_high": env.action_space.high.reshape(nu).tolist(),
    }
    return TransitionData(states, actions, lengths, meta)


def save_dataset(data: TransitionData, path: str | Path) -> Path:
    """Write ``data`` as a compressed ``.npz`` (arrays + JSON metadata + format version), atomically."""
    buf = io.BytesIO()
    np.savez_compressed(
        buf, states=data.states, actions=data.actions, lengths=data.lengths,
        metadata=np.array(json.dumps(data.metadata)), format_version=np.array(DATA_FORMAT_VERSION),
    )
    return atomic_write_bytes(path, buf.getvalue())


def load_dataset(path: str | Path, nx: int | None = None, nu: int | None = None,
                 field: str = "data.file") -> TransitionData:
    """Read a file written by :func:`save_dataset`, checking shapes (and ``nx``/``nu`` when given).

    Raises:
        ControlkitError: naming ``field`` if the file is missing, unreadable, of another format version, or its
            arrays have the wrong shape.
    """
    path = Path(path)
    if not path.is_file():
        raise ControlkitError(f"{field}: no such dataset file {str(path)!r}.")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in ("states", "actions", "lengths", "metadata", "format_version")}
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as exc:
        raise ControlkitError(f"{field}: {str(path)!r} is not a readable controlkit dataset ({exc}).") from None
    if int(arrays["format_version"]) != DATA_FORMAT_VERSION:
        raise ControlkitError(f"{field}: {str(path)!r} has dataset format version {int(arrays['format_version'])}; "
                              f"this controlkit reads version {DATA_FORMAT_VERSION}.")
    _check_shapes(arrays["states"], arrays["actions"], arrays["lengths"], f"{field} ({path.name})")
    for name, want, got in (("nx (state size)", nx, arrays["states"].shape[2]),
                            ("nu (action size)", nu, arrays["actions"].shape[2])):
        if want is not None and want != got:
            raise ControlkitError(f"{field}: {str(path)!r} has {name} {got}, the env needs {want}.")
    return TransitionData(arrays["states"], arrays["actions"], arrays["lengths"], json.loads(str(arrays["metadata"])))


def _check_shapes(states: np.ndarray, actions: np.ndarray, lengths: np.ndarray, field: str) -> None:
    if states.ndim != 3 or actions.ndim != 3:
        raise ControlkitError(f"{field}: states and actions must be 3-D (trajectory, step, dim); "
                              f"got shapes {states.shape} and {actions.shape}.")
    n, t = actions.shape[:2]
    if states.shape[:2] != (n, t + 1):
        raise ControlkitError(f"{field}: states shape {states.shape} does not match actions {actions.shape} "
                              f"(need ({n}, {t + 1}, nx)).")
    if lengths.shape != (n,) or (n and (lengths.min() < 0 or lengths.max() > t)):
        raise ControlkitError(f"{field}: lengths must be {n} integers in [0, {t}].")
    if not (np.all(np.isfinite(states)) and np.all(np.isfinite(actions))):
        raise ControlkitError(f"{field}: states/actions contain NaN or infinity.")


__all__ = [
    "BEHAVIOURS",
    "CorrelatedNoiseController",
    "TransitionData",
    "collect",
    "concatenate",
    "load_dataset",
    "make_behaviour",
    "make_env",
    "save_dataset",
]

"""Rope-v0 data for the graph dynamics: a behaviour that keeps pushing through the rope, and the particles written
as the graph model's nodes.

:class:`~controlkit.models.graph_training.GraphDynamics` has nodes ``[x, y, cos θ, sin θ]`` (a box's pose); a rope
particle has a position only, so :func:`as_graph_states` gives every particle the fixed heading ``(1, 0)`` (its
angle features are then constant, and the model learns to leave them alone). With ``radius`` just above the
segment length the distance-based edges are the chain's neighbours (plus any particles in contact).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from controlkit.core.controller import Controller, StepInfo
from controlkit.envs.tabletop import PUSHER_RADIUS, TABLE_HALF
from controlkit.models.data import TransitionData, collect

if TYPE_CHECKING:
    from controlkit.models.graph_training import GraphDynamics

ENV_ID = "controlkit/Rope-v0"
REACH = TABLE_HALF - PUSHER_RADIUS  # farthest pusher centre coordinate


class RopeExplorer(Controller):
    """Data behaviour on Rope-v0 (observation ``[particles, pusher, ...]``): drive the pusher through a randomly
    chosen particle, overshooting it by ``overshoot``, then choose another (or, with probability ``wander``, a
    random point on the table); plus AR(1) noise.

    Wandering puts the pusher far from the rope, where nothing moves: without such data a learned model
    extrapolates the pusher's messages from distances it never saw, and planners drive the pusher off to where
    the model wrongly predicts the rope moves towards its target. Retreating (with probability ``retreat`` the
    next target is 5-15 cm straight away from the nearest particle) shows the model the pusher leaving the rope
    from contact, which leaves the rope where it is: driving through particles alone gives few such steps (about
    one in ten near the rope), and a model trained on them predicts the rope following a pusher that backs away.

    Args:
        n_particles: The env's ``n_particles``.
        step_size: The env's ``step_size``.
        overshoot: How far past the chosen particle the pusher aims, metres.
        noise: Std of the noise innovation in units of ``step_size``.
        redraw: Probability per step of choosing another particle early.
        wander: Probability that a new target is a random point on the table instead of a particle.
        retreat: Probability that a new target is a point straight away from the nearest particle.
        seed: Seeds choices and noise.
    """

    def __init__(self, n_particles: int, step_size: float = 0.03, overshoot: float = 0.05, noise: float = 0.3,
                 redraw: float = 0.05, wander: float = 0.0, seed: int | None = None, retreat: float = 0.0) -> None:
        self.n, self.step, self.overshoot = int(n_particles), float(step_size), float(overshoot)
        self.noise, self.redraw, self.wander = float(noise), float(redraw), float(wander)
        self.retreat = float(retreat)
        self._rng = np.random.default_rng(seed)
        self._target: np.ndarray | None = None
        self._eps = np.zeros(2)

    def reset(self, seed: int | None = None) -> None:
        super().reset(seed)
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        self._target, self._eps = None, np.zeros(2)

    def _act(self, obs: Any) -> tuple[np.ndarray, StepInfo]:
        x = np.asarray(obs, dtype=np.float64)
        particles, pusher = x[: 2 * self.n].reshape(self.n, 2), x[2 * self.n: 2 * self.n + 2]
        rng = self._rng
        if self._target is None or np.linalg.norm(self._target - pusher) < 0.01 or rng.random() < self.redraw:
            p = particles[rng.integers(self.n)]
            way = p - pusher
            self._target = p + self.overshoot * way / max(float(np.linalg.norm(way)), 1e-9)
            if self.wander and rng.random() < self.wander:
                self._target = rng.uniform(-REACH, REACH, 2)
            elif self.retreat and rng.random() < self.retreat:
                off = pusher - particles[np.argmin(np.linalg.norm(particles - pusher, axis=1))]
                off = off / max(float(np.linalg.norm(off)), 1e-9)
                self._target = np.clip(pusher + rng.uniform(0.05, 0.15) * off, -REACH, REACH)
        self._eps = 0.7 * self._eps + self.noise * self.step * rng.normal(size=2)
        a = np.clip(self._target - pusher, -self.step, self.step) + self._eps
        return np.clip(a, -self.step, self.step).astype(np.float32), StepInfo()


def as_graph_states(states: np.ndarray, n_particles: int) -> np.ndarray:
    """Rope states ``(..., 2 n + 2)`` (``[particle_i x, y ..., pusher x, y]``) as graph states ``(..., 4 n + 2)``:
    each particle a node ``[x, y, 1, 0]``."""
    states = np.asarray(states, dtype=np.float64)
    xy = states[..., : 2 * n_particles].reshape(*states.shape[:-1], n_particles, 2)
    heading = np.broadcast_to(np.array([1.0, 0.0]), xy.shape)
    nodes = np.concatenate([xy, heading], axis=-1).reshape(*states.shape[:-1], 4 * n_particles)
    return np.concatenate([nodes, states[..., 2 * n_particles: 2 * n_particles + 2]], axis=-1)


def collect_rope_data(trajectories: int, steps: int, seed: int = 0,
                      env_kwargs: dict[str, Any] | None = None, wander: float = 0.0,
                      retreat: float = 0.0) -> TransitionData:
    """Rope-v0 transitions under :class:`RopeExplorer` (``wander``, ``retreat``: see there), states in the graph layout
    (:func:`as_graph_states`).

    The target is left out of the observation (``goal_in_obs=False``): the dynamics do not depend on it.
    """
    kwargs = {**(env_kwargs or {}), "goal_in_obs": False}
    n = int(kwargs.get("n_particles", 12))
    explorer = RopeExplorer(n, float(kwargs.get("step_size", 0.03)), wander=wander, retreat=retreat)  # reseeded
    data = collect(ENV_ID, trajectories, steps, seed, behaviour=explorer, env_kwargs=kwargs)
    meta = {**data.metadata, "layout": "graph nodes [x, y, 1, 0] per particle", "n_particles": n, "wander": wander,
            "retreat": retreat}
    return TransitionData(as_graph_states(data.states, n), data.actions, data.lengths, meta)


def rope_graph_model(train: TransitionData, n_particles: int, radius: float = 0.03, hidden: int = 32,
                     message_size: int = 16, seed: int = 0, pusher_radius: float | None = None,
                     fixed_graph: bool = False) -> GraphDynamics:
    """A :class:`GraphDynamics` for rope particles, its output normalisation fitted on ``train``.

    One node slot per particle; ``radius`` (m) just above the segment length makes the edges the chain's neighbours
    (and particles in contact); positions are scaled by 2.5 cm. The particles' fixed heading features never change
    in the data, so their output scale is pinned near zero (``fit_normalisation`` would give a constant column the
    scale 1, and small output errors would then drift the headings over a rollout). The pusher's linear map starts
    at the commanded displacement (the set-point moves by the action), which training would otherwise spend most
    of its first steps finding. ``pusher_radius`` and ``fixed_graph``: see
    :class:`~controlkit.models.graph_training.GraphDynamics` (the pusher's edges only within that distance, the
    rollouts trained on the graph of their first state as plans use it).
    """
    import torch  # torch loads only when a model is built (planning on a saved model does not need it)

    from controlkit.models.graph_training import GraphDynamics

    model = GraphDynamics(message_hidden=[hidden], update_hidden=[hidden], message_size=message_size, radius=radius,
                          pos_scale=0.025, u_scale=0.03, max_objects=n_particles, seed=seed,
                          pusher_radius=pusher_radius, fixed_graph=fixed_graph)
    model.fit_normalisation(train)
    with torch.no_grad():
        model.out_scale[2:] = 1e-6
        model.pusher.weight.copy_(torch.eye(2) * model.u_scale)
        model.pusher.bias.zero_()
    return model


__all__ = ["RopeExplorer", "as_graph_states", "collect_rope_data", "rope_graph_model"]

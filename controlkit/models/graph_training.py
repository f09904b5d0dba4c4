"""Training the graph dynamics of :mod:`controlkit.models.graph` in torch, and exporting it to a
:class:`~controlkit.models.graph.GraphNetwork`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from controlkit.core.errors import ControlkitError
from controlkit.models.data import TransitionData
from controlkit.models.dynamics import Gates
from controlkit.models.graph import MAX_OBJECTS, N_FEATURES, GraphNetwork, check_pusher_radius, state_size


class GraphDynamics(nn.Module):
    """The trainable graph model (torch) on padded states ``(B, 4 max_objects + 2)``.

    It has the interface :func:`controlkit.models.dynamics.fit`, :func:`~controlkit.models.dynamics.rollout_mse` and
    :func:`controlkit.models.sparsify.sparsify` use (``nx``, ``nu``, ``hidden``, ``step``, ``rollout``, the losses):
    ``hidden`` lists the message MLP's hidden layers, then the update MLP's, and ``gates`` follow that order.

    Args:
        message_hidden: Hidden layer sizes of the message MLP (at least one layer).
        update_hidden: Hidden layer sizes of the update MLP (at least one layer).
        message_size: Size of a message.
        radius: Box-box edges exist between boxes whose centres are closer than this (m).
        pusher_radius: The pusher has an edge to a box only while their centres are closer than this (m); a box
            the pusher reaches neither directly nor through box-box edges does not move. ``None``: an edge to
            every box always (what models before it had).
        fixed_graph: Multi-step rollouts (the rollout loss, the rollout errors) keep the interaction graph of
            their first state, as a plan over a horizon does (:meth:`~controlkit.models.graph.GraphNetwork.compact`):
            the model then learns what an edge kept after the pusher has moved away carries (nothing), instead of
            extrapolating its messages to distances it never saw in training.
        pos_scale: Relative positions are divided by this (m).
        u_scale: Actions are divided by this (the env's ``step_size``).
        seed: Seeds the weight initialisation.
        max_objects: Node slots of the padded state (default :data:`~controlkit.models.graph.MAX_OBJECTS`, what
            Sort-v0 and the exported :class:`~controlkit.models.graph.GraphNetwork` use). Larger values train on
            more nodes (e.g. the particles of ``Rope-v0``); the shared MLPs export as they are, and the numpy
            ``GraphNetwork.step`` and ``compact`` take any number of nodes.
    """

    residual = True

    def __init__(self, message_hidden: Sequence[int] = (32,), update_hidden: Sequence[int] = (32,),
                 message_size: int = 16, radius: float = 0.16, pos_scale: float = 0.1, u_scale: float = 0.03,
                 seed: int = 0, max_objects: int = MAX_OBJECTS, pusher_radius: float | None = None,
                 fixed_graph: bool = False) -> None:
        super().__init__()
        if isinstance(max_objects, bool) or not isinstance(max_objects, (int, np.integer)) or max_objects < 1:
            raise ControlkitError(f"graph model: max_objects must be an integer >= 1, got {max_objects!r}.")
        self.max_objects = int(max_objects)
        if not message_hidden or not update_hidden:
            raise ControlkitError("graph model: message_hidden and update_hidden need at least one layer each.")
        self.message_hidden, self.update_hidden = list(message_hidden), list(update_hidden)
        self.message_size, self.radius = int(message_size), float(radius)
        self.pusher_radius = check_pusher_radius(pusher_radius)
        self.fixed_graph = bool(fixed_graph)
        self.pos_scale, self.u_scale = float(pos_scale), float(u_scale)
        self.nx, self.nu = state_size(self.max_objects), 2
        self.hidden = self.message_hidden + self.update_hidden
        m_sizes = [N_FEATURES, *self.message_hidden, self.message_size]
        u_sizes = [self.message_size + 2, *self.update_hidden, 4]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.message = nn.ModuleList(nn.Linear(a, b) for a, b in zip(m_sizes[:-1], m_sizes[1:]))
            self.update = nn.ModuleList(nn.Linear(a, b) for a, b in zip(u_sizes[:-1], u_sizes[1:]))
            self.pusher = nn.Linear(2, 2)
        self.register_buffer("out_scale", torch.ones(4))

    @property
    def n_relu(self) -> int:
        """ReLU count of the dense model (hidden neurons of both MLPs, counted once)."""
        return sum(self.hidden)

    def config(self) -> dict[str, Any]:
        """Constructor arguments (without the seed)."""
        return {"message_hidden": self.message_hidden, "update_hidden": self.update_hidden,
                "message_size": self.message_size, "radius": self.radius, "pos_scale": self.pos_scale,
                "u_scale": self.u_scale, "max_objects": self.max_objects, "pusher_radius": self.pusher_radius,
                "fixed_graph": self.fixed_graph}

    def fit_normalisation(self, data: TransitionData) -> None:
        """Scale each box output (dx, dy, dcos, dsin) by its std over the boxes present in ``data``."""
        x, _, xn = data.transitions()
        boxes = lambda s: s[:, : 4 * self.max_objects].reshape(len(s), self.max_objects, 4)  # noqa: E731
        present = np.abs(boxes(x)[:, :, 2:]).sum(-1) > 0.5
        delta = (boxes(xn) - boxes(x))[present]
        std = delta.std(0) if len(delta) else np.ones(4)
        self.out_scale.copy_(torch.as_tensor(np.where(std > 1e-8, std, 1.0), dtype=torch.float32))

    @staticmethod
    def _act(h: torch.Tensor, gates: Gates | None, k: int) -> torch.Tensor:
        return torch.relu(h) if gates is None else gates[k][:, 0] * torch.relu(h) + gates[k][:, 1] * h

    def interactions(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The interaction graph at padded states ``x`` ``(B, nx)``: box-box edges ``(B, N, N)``
        (``[receiver, sender]``, within ``radius``) and pusher edges ``(B, N)`` (within ``pusher_radius``, or to
        every box when it is ``None``), both between present boxes only."""
        B, N = x.shape[0], self.max_objects
        boxes = x[:, : 4 * N].reshape(B, N, 4)
        pos = boxes[..., :2]
        present = boxes[..., 2:].abs().sum(-1) > 0.5
        dist = (pos[:, :, None] - pos[:, None]).norm(dim=-1)  # (B, N, N)
        bb = (dist < self.radius) & present[:, :, None] & present[:, None]
        bb = bb & ~torch.eye(N, dtype=torch.bool, device=x.device)
        if self.pusher_radius is None:
            return bb, present
        return bb, present & ((pos - x[:, None, 4 * N: 4 * N + 2]).norm(dim=-1) < self.pusher_radius)

    def deltas(self, x: torch.Tensor, u: torch.Tensor, gates: Gates | None = None,
               edges: torch.Tensor | None = None, pusher_edges: torch.Tensor | None = None) -> torch.Tensor:
        """Normalised box changes ``(B, N, 4)`` (before ``out_scale``) for padded states ``x`` ``(B, nx)``.

        ``edges`` ``(N, N)`` or ``(B, N, N)`` (``[receiver, sender]``, bool) fixes the box-box edges,
        ``pusher_edges`` ``(N,)`` or ``(B, N)`` (bool) the pusher's; by default they are those at ``x``
        (:meth:`interactions`). A missing box has none; a box the pusher does not reach through them has a change
        of exactly 0.
        """
        B, N = x.shape[0], self.max_objects
        boxes = x[:, : 4 * N].reshape(B, N, 4)
        pos, ang = boxes[..., :2], boxes[..., 2:]
        present = ang.abs().sum(-1) > 0.5  # (B, N)
        pusher = x[:, 4 * N:]
        # senders 0..N-1 are the boxes, sender N the pusher
        s_pos = torch.cat([pos, pusher[:, None]], dim=1)  # (B, N+1, 2)
        s_ang = torch.cat([ang, torch.zeros_like(ang[:, :1])], dim=1)
        rel = (s_pos[:, None, :, :] - pos[:, :, None, :]) / self.pos_scale  # (B, N, N+1, 2) [receiver, sender]
        flag = torch.zeros(N + 1, dtype=x.dtype, device=x.device)
        flag[N] = 1.0
        feat = torch.cat([rel, ang[:, :, None].expand(B, N, N + 1, 2), s_ang[:, None].expand(B, N, N + 1, 2),
                          flag.expand(B, N, N + 1)[..., None],
                          (u / self.u_scale)[:, None, None].expand(B, N, N + 1, 2)], dim=-1)
        bb, pe = self.interactions(x) if edges is None or pusher_edges is None else (None, None)
        if edges is not None:
            bb = edges.to(torch.bool).expand(B, N, N) & present[:, :, None] & present[:, None]
            bb = bb & ~torch.eye(N, dtype=torch.bool, device=x.device)
        if pusher_edges is not None:
            pe = pusher_edges.to(torch.bool).expand(B, N) & present
        moving = pe
        for _ in range(N - 1):  # the pusher's reach spreads along box-box edges (N - 1 hops at most)
            moving = moving | (bb & moving[:, None, :]).any(-1)
        mask = torch.cat([bb, pe[:, :, None]], dim=2).to(x.dtype)  # (B, N, N+1)
        h = feat
        for k, lin in enumerate(self.message):
            h = lin(h)
            if k < len(self.message_hidden):
                h = self._act(h, gates, k)
        agg = (h * mask[..., None]).sum(2)  # (B, N, message_size)
        h = torch.cat([agg, ang], dim=-1)
        off = len(self.message_hidden)
        for k, lin in enumerate(self.update):
            h = lin(h)
            if k < len(self.update_hidden):
                h = self._act(h, gates, off + k)
        return h * moving[..., None].to(x.dtype)

    def step(self, x: torch.Tensor, u: torch.Tensor, gates: Gates | None = None,
             edges: torch.Tensor | None = None, pusher_edges: torch.Tensor | None = None) -> torch.Tensor:
        """Padded next state from padded state ``x`` ``(B, nx)`` and action ``u`` ``(B, 2)``."""
        d = self.deltas(x, u, gates, edges, pusher_edges) * self.out_scale
        dp = self.pusher(u / self.u_scale)
        return x + torch.cat([d.reshape(x.shape[0], -1), dp], dim=1)

    def rollout(self, x0: torch.Tensor, actions: torch.Tensor, gates: Gates | None = None,
                edges: torch.Tensor | None = None, pusher_edges: torch.Tensor | None = None) -> torch.Tensor:
        """Predicted states ``(B, H, nx)`` after each of ``actions`` ``(B, H, nu)`` from ``x0`` ``(B, nx)``.

        With ``fixed_graph`` (and no ``edges`` given) every rollout keeps the interaction graph of its first
        state, as planners do over a horizon; else the graph is read at every state.
        """
        if self.fixed_graph and edges is None and pusher_edges is None:
            edges, pusher_edges = self.interactions(x0)
        states, x = [], x0
        for t in range(actions.shape[1]):
            x = self.step(x, actions[:, t], gates, edges, pusher_edges)
            states.append(x)
        return torch.stack(states, dim=1)

    def _scale(self) -> torch.Tensor:
        """Per state dimension: ``out_scale`` for the boxes, ``u_scale`` for the pusher."""
        return torch.cat([self.out_scale.repeat(self.max_objects), self.out_scale.new_full((2,), self.u_scale)])

    def one_step_loss(self, x: torch.Tensor, u: torch.Tensor, xn: torch.Tensor, gates: Gates | None = None):
        """MSE of the predicted change, each dimension in units of its scale (missing boxes contribute 0)."""
        return torch.mean(((self.step(x, u, gates) - xn) / self._scale()) ** 2)

    def rollout_loss(self, x0: torch.Tensor, actions: torch.Tensor, targets: torch.Tensor,
                     gates: Gates | None = None):
        """MSE of the rolled-out states in units of ``pos_scale`` (positions) and 1 (angle features)."""
        return torch.mean(((self.rollout(x0, actions, gates) - targets) / self.pos_scale) ** 2)


def export_graph(model: GraphDynamics, modes: Sequence[np.ndarray | torch.Tensor] | None = None,
                 metadata: dict[str, Any] | None = None) -> GraphNetwork:
    """The (masked) torch model as a :class:`GraphNetwork` in raw units.

    ``modes`` (one array per hidden layer, message layers first; 0 ReLU, 1 identity, 2 removed, as in
    :mod:`controlkit.models.sparsify`) default to all-ReLU. Removed neurons are dropped; the feature scales are folded
    into the first message layer, the output scale into the last update layer.
    """
    modes = [np.zeros(h, dtype=np.int64) for h in model.hidden] if modes is None else \
        [np.asarray(m) for m in modes]
    if [len(m) for m in modes] != model.hidden:
        raise ControlkitError(f"export: modes sizes {[len(m) for m in modes]} != hidden sizes {model.hidden}.")
    get = lambda lins: ([lin.weight.detach().double().numpy().copy() for lin in lins],  # noqa: E731
                        [lin.bias.detach().double().numpy().copy() for lin in lins])
    mw, mb = get(model.message)
    uw, ub = get(model.update)
    scale = np.array([1 / model.pos_scale] * 2 + [1.0] * 5 + [1 / model.u_scale] * 2)
    mw[0] = mw[0] * scale[None, :]
    out = model.out_scale.double().numpy()
    uw[-1], ub[-1] = out[:, None] * uw[-1], out * ub[-1]

    def prune(ws, bs, layer_modes):
        masks = []
        for k, m in enumerate(layer_modes):
            keep = m != 2
            ws[k], bs[k] = ws[k][keep], bs[k][keep]
            ws[k + 1] = ws[k + 1][:, keep]
            masks.append(m[keep] == 0)
        return masks

    n_m = len(model.message_hidden)
    m_masks, u_masks = prune(mw, mb, modes[:n_m]), prune(uw, ub, modes[n_m:])
    pw = model.pusher.weight.detach().double().numpy() / model.u_scale
    pb = model.pusher.bias.detach().double().numpy()
    return GraphNetwork(mw, mb, m_masks, uw, ub, u_masks, pw, pb, model.radius,
                        metadata={"config": model.config(), **(metadata or {})}, pusher_radius=model.pusher_radius)


__all__ = ["GraphDynamics", "export_graph"]

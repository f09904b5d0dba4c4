"""Object-centric graph dynamics for the tabletop: one model for any number of boxes, compiled to a ReLU network.

Entities are the pusher and ``n`` boxes; the state is Sort-v0's world-frame vector
``[box_i x, y, cos θ, sin θ for each i | pusher x, y]`` (``4 n + 2`` numbers). One step of the model:

- every directed edge ``j -> i`` into a box ``i`` (from the pusher if it is within ``pusher_radius`` of the box --
  always when ``pusher_radius`` is ``None`` --, and from every other box within ``radius`` of it) carries a message
  ``m_ji = MLP_msg(feat_ji)`` with translation-relative features
  ``feat_ji = [(p_j - p_i) / pos_scale, cos θ_i, sin θ_i, cos θ_j, sin θ_j, [j is the pusher], u / u_scale]``
  (the pusher's angle features are 0);
- each box the pusher reaches (through a pusher edge, then any chain of box-box edges) sums its incoming messages
  and updates: ``Δ_i = out_scale * MLP_upd([Σ_j m_ji, cos θ_i, sin θ_i])``, ``box_i' = box_i + Δ_i``; every other
  box stays exactly where it is (on the table nothing moves unless the pusher's push reaches it, and a learned
  model far from its data would otherwise predict phantom motion that planners exploit);
- the pusher follows its set-point: ``pusher' = pusher + W_p u / u_scale + b_p`` (a learned linear map).

Both MLPs are ReLU networks shared by every edge and every box. Their hidden neurons can be sparsified as the
MLP's are (:mod:`controlkit.models.sparsify`: ReLU, identity or removed; the gates of the message layers come first).
This module is numpy only (what planners need); the trainable torch model is
:class:`controlkit.models.graph_training.GraphDynamics`, exported here by
:func:`~controlkit.models.graph_training.export_graph`.

For planning, the interaction graph is fixed over the horizon (the node-node and pusher edges present at the first
state, :meth:`GraphNetwork.interactions`; nodes the pusher cannot reach through them stay still over the whole
plan, so a ``pusher_radius`` that covers contact plus the pusher's travel in a horizon sees every contact a plan can
make, and a smaller one sees a contact only once the pusher is that close; a receding horizon re-reads it each step):
then the unrolled model is a ReLU network with shared weights, and :meth:`GraphNetwork.compact` writes it out as a
:class:`~controlkit.models.network.CompactNetwork` -- one copy of the message neurons per edge and of the update neurons
per box, the message output layer, the sum and the update input layer folded into one linear map, and the inputs
the update needs carried through identity neurons (no binaries). Every planner (MIP-MPC, MPPI, CEM, gradient)
then plans on it unchanged, and the MILP's predicted rollout is the graph model's rollout. The compiled graph has
any number of nodes: Sort-v0's boxes (at most :data:`MAX_OBJECTS`, the layout its models train on) or the
particles of ``controlkit/Rope-v0`` (:mod:`controlkit.tasks.pushing.rope_data`).

Training data mixes 2-4 boxes: states are padded to :data:`MAX_OBJECTS` boxes with zero rows (``cos = sin = 0``
marks a missing box, which has no edges and does not move), so one :class:`~controlkit.models.data.TransitionData`
holds them and :func:`controlkit.models.dynamics.fit` / :func:`controlkit.models.sparsify.sparsify` train the model as they
train an MLP.
"""

from __future__ import annotations

import dataclasses
import io
import json
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from controlkit.core.errors import ControlkitError
from controlkit.models.network import CompactNetwork

if TYPE_CHECKING:
    from controlkit.models.data import TransitionData

MAX_OBJECTS = 4
N_FEATURES = 9  # message input: relative position (2), receiver angle (2), sender angle (2), pusher flag, u (2)
GRAPH_FORMAT_VERSION = 2
"""Version of the file layout written by :meth:`GraphNetwork.save` (2 added ``pusher_radius``; version-1 files load
with ``pusher_radius=None``, the pusher edge to every node they were trained with)."""
READABLE_VERSIONS = (1, 2)


def state_size(n_objects: int) -> int:
    """Length of the state vector with ``n_objects`` boxes."""
    return 4 * n_objects + 2


def check_objects(n_objects: Any, field: str = "n_objects", max_objects: int | None = MAX_OBJECTS) -> int:
    """``n_objects`` as an int from 1 to ``max_objects`` (``None``: no upper limit), else a
    :class:`ControlkitError` naming ``field``.

    Sort-v0 and the models trained on it keep the default (at most :data:`MAX_OBJECTS` boxes); the compiled graph
    itself has no limit (the rope's particles are nodes too), so :meth:`GraphNetwork.step` and
    :meth:`GraphNetwork.compact` pass ``None``.
    """
    if isinstance(n_objects, bool) or not isinstance(n_objects, (int, np.integer)) or n_objects < 1 \
            or (max_objects is not None and n_objects > max_objects):
        valid = "an integer >= 1" if max_objects is None else f"an integer from 1 to {max_objects}"
        raise ControlkitError(f"{field}: must be {valid}, got {n_objects!r}.")
    return int(n_objects)


def objects_in(x: np.ndarray, field: str = "state", max_objects: int | None = MAX_OBJECTS) -> int:
    """Number of nodes of a state vector (its length is ``4 n + 2``, ``1 <= n <= max_objects``)."""
    size = np.shape(x)[-1]
    n = (size - 2) // 4
    if (size - 2) % 4 or n < 1 or (max_objects is not None and n > max_objects):
        valid = "n >= 1" if max_objects is None else f"n = 1..{max_objects} boxes"
        shown = "" if max_objects is None else \
            f" (valid lengths: {[state_size(k) for k in range(1, max_objects + 1)]})"
        raise ControlkitError(f"{field}: length {size} is not 4 n + 2 for {valid}{shown}.")
    return n


def pad_states(states: np.ndarray, n_objects: int, to: int = MAX_OBJECTS) -> np.ndarray:
    """States ``(..., 4 n + 2)`` padded to ``to`` boxes with zero rows (a zero row marks a missing box)."""
    states = np.asarray(states, dtype=np.float64)
    if states.shape[-1] != state_size(n_objects):
        raise ControlkitError(f"states: last dimension {states.shape[-1]} != 4 n + 2 = {state_size(n_objects)} "
                              f"for n_objects={n_objects}.")
    out = np.zeros((*states.shape[:-1], state_size(to)))
    out[..., : 4 * n_objects] = states[..., : 4 * n_objects]
    out[..., -2:] = states[..., -2:]
    return out


def unpad_states(states: np.ndarray, n_objects: int) -> np.ndarray:
    """The inverse of :func:`pad_states`: the first ``n_objects`` boxes and the pusher."""
    states = np.asarray(states)
    return np.concatenate([states[..., : 4 * n_objects], states[..., -2:]], axis=-1)


def box_edges(x: np.ndarray, radius: float) -> list[tuple[int, int]]:
    """Directed node-node edges ``(sender, receiver)`` between nodes whose centres are closer than ``radius``
    (boxes, or rope particles: any number of nodes)."""
    n = objects_in(x, "x0", max_objects=None)
    xy = np.asarray(x, dtype=np.float64)[: 4 * n].reshape(n, 4)[:, :2]
    d = np.linalg.norm(xy[:, None] - xy[None], axis=-1)
    return [(j, i) for i in range(n) for j in range(n) if i != j and d[i, j] < radius]


def pusher_receivers(x: np.ndarray, pusher_radius: float | None) -> list[int]:
    """Nodes whose centres are closer than ``pusher_radius`` to the pusher (every node when it is ``None``)."""
    n = objects_in(x, "x0", max_objects=None)
    x = np.asarray(x, dtype=np.float64)
    if pusher_radius is None:
        return list(range(n))
    d = np.linalg.norm(x[: 4 * n].reshape(n, 4)[:, :2] - x[4 * n: 4 * n + 2], axis=-1)
    return [i for i in range(n) if d[i] < pusher_radius]


def reached(n: int, edges: Sequence[tuple[int, int]], pusher_edges: Sequence[int]) -> list[bool]:
    """Per node: does the pusher reach it (a pusher edge into it, or an edge from a reached node)?"""
    hit = [False] * n
    frontier = [int(i) for i in pusher_edges]
    for i in frontier:
        hit[i] = True
    while frontier:
        s = frontier.pop()
        for j, r in edges:
            if j == s and not hit[r]:
                hit[r] = True
                frontier.append(r)
    return hit


def check_pusher_radius(value: Any, field: str = "pusher_radius") -> float | None:
    """``value`` as a positive float or ``None`` (pusher edges to every node), else a :class:`ControlkitError`."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not np.isfinite(value) or value <= 0:
        raise ControlkitError(f"{field}: must be a positive number of metres or null (the pusher interacts with "
                              f"every node), got {value!r}.")
    return float(value)


@dataclasses.dataclass
class GraphNetwork:
    """The exported (numpy) graph model: what planners use, what :meth:`compact` compiles, what files hold.

    Layers are raw-unit maps (the input and output scales are folded in): the message MLP maps the raw features
    ``[p_j - p_i, cos θ_i, sin θ_i, cos θ_j, sin θ_j, pusher flag, u]``, the update MLP maps
    ``[Σ m, cos θ_i, sin θ_i]`` to the raw box change, and ``pusher_weight`` / ``pusher_bias`` give the pusher's
    change from ``u``. Removed neurons are dropped; ``*_masks`` mark ReLU (True) or identity (False) neurons.

    Attributes:
        message_weights, message_biases, message_masks: The message MLP.
        update_weights, update_biases, update_masks: The update MLP.
        pusher_weight: ``(2, 2)``.
        pusher_bias: ``(2,)``.
        radius: Box-box edge radius (m).
        pusher_radius: Pusher edges go to nodes within this (m); ``None``: to every node (version-1 models).
        metadata: Free-form facts (training data, errors, sparsification).
    """

    message_weights: list[np.ndarray]
    message_biases: list[np.ndarray]
    message_masks: list[np.ndarray]
    update_weights: list[np.ndarray]
    update_biases: list[np.ndarray]
    update_masks: list[np.ndarray]
    pusher_weight: np.ndarray
    pusher_bias: np.ndarray
    radius: float
    metadata: dict[str, Any] = dataclasses.field(default_factory=dict)
    pusher_radius: float | None = None

    def __post_init__(self) -> None:
        for name in ("message", "update"):
            ws = [np.asarray(w, dtype=np.float64) for w in getattr(self, f"{name}_weights")]
            bs = [np.asarray(b, dtype=np.float64) for b in getattr(self, f"{name}_biases")]
            ms = [np.asarray(m, dtype=bool) for m in getattr(self, f"{name}_masks")]
            setattr(self, f"{name}_weights", ws)
            setattr(self, f"{name}_biases", bs)
            setattr(self, f"{name}_masks", ms)
            if len(ws) < 2 or len(bs) != len(ws) or len(ms) != len(ws) - 1:
                raise ControlkitError(f"graph network: the {name} MLP needs >= 1 hidden layer, one bias per layer "
                                      "and one mask per hidden layer.")
            for k, (w, b) in enumerate(zip(ws, bs)):
                if b.shape != (w.shape[0],) or (k and w.shape[1] != ws[k - 1].shape[0]) \
                        or (k < len(ms) and ms[k].shape != (w.shape[0],)):
                    raise ControlkitError(f"graph network: {name} layer {k} shapes do not chain.")
        if self.message_weights[0].shape[1] != N_FEATURES:
            raise ControlkitError(f"graph network: message input size {self.message_weights[0].shape[1]} != "
                                  f"{N_FEATURES}.")
        if self.update_weights[0].shape[1] != self.message_weights[-1].shape[0] + 2 \
                or self.update_weights[-1].shape[0] != 4:
            raise ControlkitError("graph network: the update MLP must map [message, cos, sin] to 4 outputs.")
        self.pusher_weight = np.asarray(self.pusher_weight, dtype=np.float64).reshape(2, 2)
        self.pusher_bias = np.asarray(self.pusher_bias, dtype=np.float64).reshape(2)
        self.radius = float(self.radius)
        self.pusher_radius = check_pusher_radius(self.pusher_radius)

    @property
    def n_relu(self) -> int:
        """ReLU neurons of the two shared MLPs (counted once, not per edge)."""
        return int(sum(m.sum() for m in self.message_masks + self.update_masks))

    @property
    def n_identity(self) -> int:
        return int(sum((~m).sum() for m in self.message_masks + self.update_masks))

    def edges(self, x0: np.ndarray) -> list[tuple[int, int]]:
        """The box-box edges the model uses from state ``x0`` (fixed over a plan's horizon)."""
        return box_edges(x0, self.radius)

    def pusher_edges(self, x0: np.ndarray) -> list[int]:
        """The nodes the pusher has an edge to at state ``x0`` (within ``pusher_radius``; all if it is None)."""
        return pusher_receivers(x0, self.pusher_radius)

    def interactions(self, x0: np.ndarray) -> tuple[tuple[tuple[int, int], ...], tuple[int, ...]]:
        """The whole interaction graph at ``x0``: ``(node-node edges, pusher edges)``, what :meth:`compact` and
        :meth:`step` take (hashable: planners keep one compiled network per graph)."""
        return tuple(self.edges(x0)), tuple(self.pusher_edges(x0))

    def compact_at(self, x0: np.ndarray) -> CompactNetwork:
        """:meth:`compact` for the nodes of ``x0`` with the interaction graph at ``x0`` fixed."""
        return self.compact(objects_in(x0, "x0", max_objects=None), *self.interactions(x0))

    # --- numpy evaluation (the reference the compiled network is tested against) -----------------------------
    @staticmethod
    def _mlp(ws, bs, ms, h: np.ndarray) -> np.ndarray:
        for k, (w, b) in enumerate(zip(ws, bs)):
            h = h @ w.T + b
            if k < len(ms):
                h = np.where(ms[k], np.maximum(h, 0.0), h)
        return h

    def step(self, x: np.ndarray, u: np.ndarray, edges: Sequence[tuple[int, int]] | None = None,
             pusher_edges: Sequence[int] | None = None) -> np.ndarray:
        """Next state of one state ``x`` ``(4 n + 2,)`` under ``u``; ``edges`` and ``pusher_edges`` default to
        :meth:`edges` and :meth:`pusher_edges` at ``x``."""
        x, u = np.asarray(x, dtype=np.float64), np.asarray(u, dtype=np.float64)
        n = objects_in(x, max_objects=None)
        edges = self.edges(x) if edges is None else edges
        pusher_edges = set(self.pusher_edges(x) if pusher_edges is None else pusher_edges)
        moving = reached(n, edges, sorted(pusher_edges))
        boxes = x[: 4 * n].reshape(n, 4)
        pusher = x[4 * n:]
        out = x.copy()
        for i in range(n):
            if not moving[i]:
                continue
            senders = [(pusher, np.zeros(2), 1.0)] if i in pusher_edges else []
            senders += [(boxes[j, :2], boxes[j, 2:], 0.0) for j, r in edges if r == i]
            feats = np.array([[*(p - boxes[i, :2]), *boxes[i, 2:], *a, f, *u] for p, a, f in senders])
            msg = self._mlp(self.message_weights, self.message_biases, self.message_masks, feats).sum(0)
            out[4 * i: 4 * i + 4] += self._mlp(self.update_weights, self.update_biases, self.update_masks,
                                               np.concatenate([msg, boxes[i, 2:]]))
        out[4 * n:] += self.pusher_weight @ u + self.pusher_bias
        return out

    # --- compilation -------------------------------------------------------------------------------------------
    def compact(self, n_objects: int, edges: Sequence[tuple[int, int]] = (),
                pusher_edges: Sequence[int] | None = None) -> CompactNetwork:
        """The one-step model for ``n_objects`` nodes (any number >= 1: boxes or rope particles), the fixed
        node-node ``edges`` and the fixed ``pusher_edges`` (receiving nodes; ``None``: every node, what a model
        without ``pusher_radius`` uses -- :meth:`compact_at` takes both from a state) as a :class:`CompactNetwork`.

        Input ``[x, u]``, output the change of ``x`` (residual). Hidden layers: the message layers (one block of
        neurons per edge, pusher edges first) then the update layers (one block per box the pusher reaches; the
        others do not move, and their incoming edges are dropped), each followed by identity neurons that carry
        the box angles (message layers) and ``u`` (both) to where they are needed. Shared weights become repeated
        blocks; the message output layer, the sum over edges and the update input layer compose into one linear
        map.

        Raises:
            ControlkitError: ``n_objects`` out of range or an edge that names a missing box or a self-loop.
        """
        n = check_objects(n_objects, max_objects=None)
        edges = [(int(s), int(r)) for s, r in edges]
        bad = [e for e in edges if not (0 <= e[0] < n and 0 <= e[1] < n) or e[0] == e[1]]
        if bad:
            raise ControlkitError(f"edges: {bad} are not edges between distinct boxes 0..{n - 1}.")
        pusher_edges = list(range(n)) if pusher_edges is None else sorted({int(i) for i in pusher_edges})
        if any(not 0 <= i < n for i in pusher_edges):
            raise ControlkitError(f"pusher_edges: {pusher_edges} must name nodes 0..{n - 1}.")
        moving = reached(n, edges, pusher_edges)
        nx, nu = state_size(n), 2
        n_in = nx + nu
        # sender n = the pusher; edges into nodes the pusher does not reach carry nothing that is used
        all_edges = [(n, i) for i in pusher_edges] + [(s, r) for s, r in edges if moving[r]]
        movers = [i for i in range(n) if moving[i]]
        n_e = len(all_edges)
        # features of each edge as an affine map of [x, u]: G_e (9, n_in), c_e (9,)
        G = np.zeros((n_e, N_FEATURES, n_in))
        c = np.zeros((n_e, N_FEATURES))
        for e, (s, r) in enumerate(all_edges):
            sp = slice(nx - 2, nx) if s == n else slice(4 * s, 4 * s + 2)
            G[e, [0, 1], np.arange(sp.start, sp.stop)] = 1.0
            G[e, [0, 1], [4 * r, 4 * r + 1]] -= 1.0
            G[e, [2, 3], [4 * r + 2, 4 * r + 3]] = 1.0
            if s == n:
                c[e, 4 + 2] = 1.0
            else:
                G[e, [4, 5], [4 * s + 2, 4 * s + 3]] = 1.0
            G[e, [7, 8], [nx, nx + 1]] = 1.0
        ang_sel = np.zeros((2 * n, n_in))  # carried box angles
        ang_sel[np.arange(2 * n), [4 * i + k for i in range(n) for k in (2, 3)]] = 1.0
        u_sel = np.zeros((nu, n_in))
        u_sel[np.arange(nu), nx + np.arange(nu)] = 1.0
        weights, biases, masks = [], [], []
        mw, mb, mm = self.message_weights, self.message_biases, self.message_masks
        # message hidden layers; the state of the carried part is [angles (2n), u (2)]
        prev_w = None  # maps the previous layer's edge blocks -> this layer (per edge, shared)
        for k in range(len(mm)):
            h = mw[k].shape[0]
            if k == 0:
                w_edges = np.einsum("hf,efi->ehi", mw[0], G).reshape(n_e * h, n_in)
                b_edges = (c @ mw[0].T + mb[0]).reshape(-1)
                carry_w = np.vstack([ang_sel, u_sel])
                w = np.vstack([w_edges, carry_w])
            else:
                h_prev = mw[k - 1].shape[0]
                w = np.zeros((n_e * h + 2 * n + nu, n_e * h_prev + 2 * n + nu))
                w[: n_e * h, : n_e * h_prev] = np.kron(np.eye(n_e), mw[k])
                w[n_e * h:, n_e * h_prev:] = np.eye(2 * n + nu)
                b_edges = np.tile(mb[k], n_e)
            weights.append(w)
            biases.append(np.concatenate([b_edges, np.zeros(2 * n + nu)]))
            masks.append(np.concatenate([np.tile(mm[k], n_e), np.zeros(2 * n + nu, dtype=bool)]))
            prev_w = w
        del prev_w
        # first update layer: W_u1 [Σ_e (W_mo h_e + b_mo), cos_i, sin_i] + b_u1 per box, plus carried u
        uw, ub, um = self.update_weights, self.update_biases, self.update_masks
        h_last = mw[-2].shape[0]
        w_msg = uw[0][:, : self.message_weights[-1].shape[0]] @ mw[-1]  # (hu, h_last)
        b_msg = uw[0][:, : self.message_weights[-1].shape[0]] @ mb[-1]
        hu = uw[0].shape[0]
        n_m = len(movers)
        w = np.zeros((n_m * hu + nu, n_e * h_last + 2 * n + nu))
        b = np.zeros(n_m * hu + nu)
        for k, i in enumerate(movers):
            rows = slice(k * hu, (k + 1) * hu)
            for e, (_, r) in enumerate(all_edges):
                if r == i:
                    w[rows, e * h_last:(e + 1) * h_last] = w_msg
                    b[rows] += b_msg
            w[rows, n_e * h_last + 2 * i: n_e * h_last + 2 * i + 2] = uw[0][:, -2:]
            b[rows] += ub[0]
        w[n_m * hu:, n_e * h_last + 2 * n:] = np.eye(nu)
        weights.append(w)
        biases.append(b)
        masks.append(np.concatenate([np.tile(um[0], n_m), np.zeros(nu, dtype=bool)]))
        for k in range(1, len(um)):
            h_prev, h = uw[k - 1].shape[0], uw[k].shape[0]
            w = np.zeros((n_m * h + nu, n_m * h_prev + nu))
            w[: n_m * h, : n_m * h_prev] = np.kron(np.eye(n_m), uw[k])
            w[n_m * h:, n_m * h_prev:] = np.eye(nu)
            weights.append(w)
            biases.append(np.concatenate([np.tile(ub[k], n_m), np.zeros(nu)]))
            masks.append(np.concatenate([np.tile(um[k], n_m), np.zeros(nu, dtype=bool)]))
        # output: a moving box's change from its update block (the others' rows stay 0), the pusher's from u
        h_prev = uw[-2].shape[0]
        w = np.zeros((nx, n_m * h_prev + nu))
        b = np.zeros(nx)
        for k, i in enumerate(movers):
            w[4 * i: 4 * i + 4, k * h_prev:(k + 1) * h_prev] = uw[-1]
            b[4 * i: 4 * i + 4] = ub[-1]
        w[nx - 2:, n_m * h_prev:] = self.pusher_weight
        b[nx - 2:] = self.pusher_bias
        weights.append(w)
        biases.append(b)
        meta = {"graph": {"n_objects": n, "edges": edges, "pusher_edges": pusher_edges, "moving": movers,
                          "relu_per_edge": int(sum(m.sum() for m in mm)),
                          "relu_per_box": int(sum(m.sum() for m in um))}}
        return CompactNetwork(weights, biases, masks, nx=nx, nu=nu, residual=True, metadata=meta)

    # --- files -------------------------------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write the model to ``path`` (``.npz``, atomically) with a JSON header (format version, sizes, metadata)."""
        from controlkit.core.io import _json_default, atomic_write_bytes

        header = {"format_version": GRAPH_FORMAT_VERSION, "kind": "graph", "radius": self.radius,
                  "pusher_radius": self.pusher_radius,
                  "n_message": len(self.message_weights), "n_update": len(self.update_weights),
                  "metadata": self.metadata}
        arrays = {"header": np.array(json.dumps(header, default=_json_default)),
                  "pusher_weight": self.pusher_weight, "pusher_bias": self.pusher_bias}
        for name in ("message", "update"):
            for k, (w, b) in enumerate(zip(getattr(self, f"{name}_weights"), getattr(self, f"{name}_biases"))):
                arrays[f"{name}_weight{k}"], arrays[f"{name}_bias{k}"] = w, b
            for k, m in enumerate(getattr(self, f"{name}_masks")):
                arrays[f"{name}_mask{k}"] = m
        buf = io.BytesIO()
        np.savez_compressed(buf, **arrays)
        return atomic_write_bytes(path, buf.getvalue())

    @classmethod
    def load(cls, path: str | Path, field: str = "model.file") -> GraphNetwork:
        """Read a file written by :meth:`save`.

        Raises:
            ControlkitError: naming ``field`` when the file is missing, corrupt, not a graph model (e.g. an MLP
                network file) or of a format version this controlkit cannot read. Version-1 files (before
                ``pusher_radius``) load with ``pusher_radius=None``: the pusher edge to every node they were
                trained with, so they predict what they always did.
        """
        path = Path(path)
        if not path.is_file():
            raise ControlkitError(f"{field}: no such file {str(path)!r}.")
        try:
            with np.load(path, allow_pickle=False) as z:
                header = json.loads(str(z["header"]))
                if header.get("kind") != "graph":
                    raise ControlkitError(f"{field}: {str(path)!r} is not a graph model (an MLP network file? "
                                          "graph planners need a file written by GraphNetwork.save).")
                if header.get("format_version") not in READABLE_VERSIONS:
                    raise ControlkitError(f"{field}: {str(path)!r} has format version "
                                          f"{header.get('format_version')!r}; this controlkit reads "
                                          f"{', '.join(map(str, READABLE_VERSIONS))}.")
                parts: dict[str, list[np.ndarray]] = {}
                for name in ("message", "update"):
                    n = int(header[f"n_{name}"])
                    parts[f"{name}_weights"] = [z[f"{name}_weight{k}"] for k in range(n)]
                    parts[f"{name}_biases"] = [z[f"{name}_bias{k}"] for k in range(n)]
                    parts[f"{name}_masks"] = [z[f"{name}_mask{k}"] for k in range(n - 1)]
                return cls(**parts, pusher_weight=z["pusher_weight"], pusher_bias=z["pusher_bias"],
                           radius=float(header["radius"]), metadata=dict(header["metadata"]),
                           pusher_radius=header.get("pusher_radius"))
        except ControlkitError:
            raise
        except (OSError, ValueError, KeyError, TypeError, AttributeError, zipfile.BadZipFile, EOFError) as exc:
            raise ControlkitError(f"{field}: {str(path)!r} is corrupt or not a graph model "
                                  f"({type(exc).__name__}: {exc}).") from None


def pad_dataset(datasets: Sequence[tuple[int, TransitionData]]) -> TransitionData:
    """One :class:`TransitionData` of padded states from ``(n_objects, data)`` pairs (2-4 boxes mixed)."""
    from controlkit.models.data import TransitionData
    if not datasets:
        raise ControlkitError("data: no datasets to pad.")
    steps = max(d.actions.shape[1] for _, d in datasets)
    states, actions, lengths = [], [], []
    for n, d in datasets:
        check_objects(n, "data.n_objects")
        if d.nx != state_size(n):
            raise ControlkitError(f"data: a dataset for n_objects={n} has states of size {d.nx}, need "
                                  f"{state_size(n)}.")
        s = pad_states(d.states, n)
        pad = steps - d.actions.shape[1]
        states.append(np.concatenate([s, np.repeat(s[:, -1:], pad, axis=1)], axis=1))
        actions.append(np.concatenate([d.actions, np.zeros((len(d.actions), pad, d.nu))], axis=1))
        lengths.append(d.lengths)
    meta = {"n_objects": [n for n, _ in datasets], "parts": [d.metadata for _, d in datasets]}
    return TransitionData(np.concatenate(states), np.concatenate(actions), np.concatenate(lengths), meta)


__all__ = [
    "MAX_OBJECTS", "N_FEATURES", "GraphNetwork", "box_edges", "check_objects", "check_pusher_radius", "objects_in",
    "pad_dataset", "pad_states", "pusher_receivers", "reached", "state_size", "unpad_states",
]

"""The compact ReLU/identity network: what sparsification exports and what the MILP compiler consumes.

A feed-forward net ``y = W_L h_{L-1} + b_L``, ``h_k = act_k(W_k h_{k-1} + b_k)`` where each hidden neuron's
activation is either ReLU or identity (``relu_masks[k][i]``). It maps the raw ``[x, u]`` to the raw prediction:
``x_next = x + y`` when ``residual`` else ``x_next = y``. Numpy only, so control-time code needs no torch.
"""

from __future__ import annotations

import dataclasses
import io
import json
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from controlkit.core.errors import ControlkitError

FORMAT_VERSION = 1
"""Version of the file layout written by :meth:`CompactNetwork.save`; :meth:`CompactNetwork.load` reads only it."""


@dataclasses.dataclass
class CompactNetwork:
    """Linear layers with per-neuron ReLU/identity activations on the hidden layers.

    Attributes:
        weights: ``weights[k]`` has shape ``(n_out_k, n_in_k)``.
        biases: ``biases[k]`` has shape ``(n_out_k,)``.
        relu_masks: One boolean array per hidden layer (``len(weights) - 1`` of them): True = ReLU, False = identity.
        nx: State dimension (the output size).
        nu: Action dimension (input size is ``nx + nu``).
        residual: Whether the output is a change of state.
        metadata: Free-form training facts (env id, errors, schedule, ...).
    """

    weights: list[np.ndarray]
    biases: list[np.ndarray]
    relu_masks: list[np.ndarray]
    nx: int
    nu: int
    residual: bool = True
    metadata: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        self.weights = [np.asarray(w, dtype=np.float64) for w in self.weights]
        self.biases = [np.asarray(b, dtype=np.float64) for b in self.biases]
        self.relu_masks = [np.asarray(m, dtype=bool) for m in self.relu_masks]
        if not self.weights or len(self.biases) != len(self.weights):
            raise ControlkitError("network: needs at least one layer and one bias per layer.")
        if len(self.relu_masks) != len(self.weights) - 1:
            raise ControlkitError("network: needs one relu mask per hidden layer.")
        if self.weights[0].shape[1] != self.nx + self.nu:
            raise ControlkitError(f"network: input size {self.weights[0].shape[1]} != nx + nu = {self.nx + self.nu}.")
        if self.weights[-1].shape[0] != self.nx:
            raise ControlkitError(f"network: output size {self.weights[-1].shape[0]} != nx = {self.nx}.")
        for k, (w, b) in enumerate(zip(self.weights, self.biases)):
            if b.shape != (w.shape[0],) or (k and w.shape[1] != self.weights[k - 1].shape[0]):
                raise ControlkitError(f"network: layer {k} shapes do not chain ({w.shape}, bias {b.shape}).")
            if k < len(self.relu_masks) and self.relu_masks[k].shape != (w.shape[0],):
                raise ControlkitError(f"network: relu mask {k} has shape {self.relu_masks[k].shape}, need ({w.shape[0]},).")
            if not (np.all(np.isfinite(w)) and np.all(np.isfinite(b))):  # every planner would fail on every step
                raise ControlkitError(f"network: layer {k} has non-finite weights or biases (NaN or inf).")

    @property
    def hidden_sizes(self) -> list[int]:
        return [w.shape[0] for w in self.weights[:-1]]

    @property
    def n_relu(self) -> int:
        """Number of ReLU neurons (each may cost one binary per step in the MILP)."""
        return int(sum(m.sum() for m in self.relu_masks))

    @property
    def n_identity(self) -> int:
        return int(sum((~m).sum() for m in self.relu_masks))

    def __call__(self, xu: np.ndarray) -> np.ndarray:
        """Network output ``y`` for inputs ``xu`` of shape ``(..., nx + nu)``."""
        h = np.asarray(xu, dtype=np.float64)
        for k, (w, b) in enumerate(zip(self.weights, self.biases)):
            h = h @ w.T + b
            if k < len(self.relu_masks):
                h = np.where(self.relu_masks[k], np.maximum(h, 0.0), h)
        return h

    def step(self, x: np.ndarray, u: np.ndarray) -> np.ndarray:
        """Next state predicted from state(s) ``x`` and action(s) ``u``."""
        x = np.asarray(x, dtype=np.float64)
        y = self(np.concatenate([x, np.asarray(u, dtype=np.float64)], axis=-1))
        return x + y if self.residual else y

    def rollout(self, x0: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """States ``(H + 1, nx)`` from ``x0`` under ``actions`` ``(H, nu)``."""
        states = [np.asarray(x0, dtype=np.float64)]
        for u in np.asarray(actions, dtype=np.float64):
            states.append(self.step(states[-1], u))
        return np.stack(states)

    @classmethod
    def from_sequential(cls, module, nx: int, nu: int, residual: bool = True) -> CompactNetwork:
        """Convert a ``torch.nn.Sequential`` of ``Linear``/``ReLU``/``Identity`` (all-ReLU or all-identity layers)."""
        import torch.nn as nn

        weights, biases, masks = [], [], []
        pending: np.ndarray | None = None
        for layer in module:
            if isinstance(layer, nn.Linear):
                if pending is not None:
                    masks.append(np.zeros(pending.shape[0], dtype=bool))
                weights.append(layer.weight.detach().cpu().double().numpy().copy())
                bias = layer.bias.detach().cpu().double().numpy() if layer.bias is not None else np.zeros(layer.out_features)
                biases.append(bias.copy())
                pending = biases[-1]
            elif isinstance(layer, nn.ReLU):
                if pending is None:
                    raise ControlkitError("network: a ReLU must follow a Linear layer.")
                masks.append(np.ones(pending.shape[0], dtype=bool))
                pending = None
            elif isinstance(layer, nn.Identity):
                continue
            else:
                raise ControlkitError(
                    f"network: unsupported layer {type(layer).__name__}; valid layers: Linear, ReLU, Identity."
                )
        if pending is None:
            raise ControlkitError("network: the last layer must be Linear (no activation on the output).")
        return cls(weights, biases, masks, nx=nx, nu=nu, residual=residual)

    def to_torch(self):
        """A torch module computing the same function (float64)."""
        import torch

        from controlkit.models._torch_compact import CompactTorch

        return CompactTorch(self).to(torch.float64)

    def save(self, path: str | Path) -> Path:
        """Write the network to ``path`` (``.npz``, atomically): weights, biases, masks and a JSON header.

        The header holds ``format_version``, ``nx``, ``nu``, ``residual``, the layer count and ``metadata``.
        """
        from controlkit.core.io import _json_default, atomic_write_bytes

        header = {"format_version": FORMAT_VERSION, "nx": self.nx, "nu": self.nu, "residual": self.residual,
                  "n_layers": len(self.weights), "metadata": self.metadata}
        arrays = {"header": np.array(json.dumps(header, default=_json_default))}
        for k, (w, b) in enumerate(zip(self.weights, self.biases)):
            arrays[f"weight{k}"], arrays[f"bias{k}"] = w, b
        for k, m in enumerate(self.relu_masks):
            arrays[f"relu_mask{k}"] = m
        buf = io.BytesIO()
        np.savez_compressed(buf, **arrays)
        return atomic_write_bytes(path, buf.getvalue())

    @classmethod
    def load(cls, path: str | Path) -> CompactNetwork:
        """Read a file written by :meth:`save`.

        Raises:
            ControlkitError: the file is missing, corrupt (truncated, a damaged compressed stream), not a controlkit
                network, of another format version, or holds non-finite weights; the message names the file.
        """
        path = Path(path)
        if not path.is_file():
            raise ControlkitError(f"network file: no such file {str(path)!r}.")
        try:
            with np.load(path, allow_pickle=False) as z:
                header = json.loads(str(z["header"]))
                version = header.get("format_version")
                if version != FORMAT_VERSION:
                    raise ControlkitError(f"network file {str(path)!r}: format version {version!r}; this controlkit "
                                          f"reads version {FORMAT_VERSION} (re-export the network).")
                n = int(header["n_layers"])
                weights = [z[f"weight{k}"] for k in range(n)]
                biases = [z[f"bias{k}"] for k in range(n)]
                masks = [z[f"relu_mask{k}"] for k in range(n - 1)]
            nx, nu, residual, metadata = int(header["nx"]), int(header["nu"]), bool(header["residual"]), dict(
                header["metadata"])
        except ControlkitError:
            raise
        except (OSError, ValueError, KeyError, TypeError, AttributeError, zipfile.BadZipFile, EOFError,
                zlib.error) as exc:
            raise ControlkitError(f"network file {str(path)!r}: corrupt or not a controlkit network "
                                  f"({type(exc).__name__}: {exc}).") from None
        try:
            return cls(weights, biases, masks, nx=nx, nu=nu, residual=residual, metadata=metadata)
        except ControlkitError as exc:
            raise ControlkitError(f"network file {str(path)!r}: {str(exc).removeprefix('network: ')}") from None


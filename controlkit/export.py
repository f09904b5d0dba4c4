"""Torch-free forms of everything a robot loop runs: policies and compact dynamics networks.

``export_numpy(obj, path)`` writes an ``.npz`` that :func:`load_numpy` turns back into a numpy callable (numpy
alone); ``export_onnx(obj, path)`` writes an ONNX graph for onnxruntime or any other runtime. Supported: NCAP and
MLP policies (torch modules or their numpy forms) and :class:`~controlkit.models.network.CompactNetwork` (for
``torch.nn.Sequential`` dynamics, convert first with ``CompactNetwork.from_sequential``). Nothing here imports
torch. It sits above the layers (not in :mod:`controlkit.core`) because it reads both the models' networks and
the swimmer policies.
"""

from __future__ import annotations

import os
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from controlkit.core.controller import Controller, StepInfo
from controlkit.core.errors import ControlkitError
from controlkit.core.io import atomic_write_bytes
from controlkit.core.onnx import OnnxGraph
from controlkit.models.network import CompactNetwork

SUPPORTED = ("CompactNetwork", "NCAPPolicy", "MLPPolicy", "NCAPNumpy", "MLPNumpy")


def to_numpy(obj: Any) -> Any:
    """The numpy form of ``obj`` (a compact network is already one)."""
    if isinstance(obj, CompactNetwork):
        return obj
    if type(obj).__name__ in ("NCAPNumpy", "MLPNumpy"):
        return obj
    if type(obj).__name__ in ("NCAPPolicy", "MLPPolicy"):
        return obj.to_numpy()
    hint = ""
    if type(obj).__name__ == "Sequential":
        hint = " For a dynamics Sequential, use CompactNetwork.from_sequential(module, nx, nu) first."
    raise ControlkitError(f"export: unsupported object {type(obj).__name__}; valid: {', '.join(SUPPORTED)}.{hint}")


def export_numpy(obj: Any, path: str | os.PathLike) -> Path:
    """Write the numpy form of ``obj`` to ``path`` (``.npz``); read it back with :func:`load_numpy`."""
    return to_numpy(obj).save(path)


def load_numpy(path: str | os.PathLike) -> Any:
    """Load a file written by :func:`export_numpy`: a CompactNetwork, NCAPNumpy or MLPNumpy.

    Raises:
        ControlkitError: naming the file and what is wrong (missing, truncated, damaged, another format version,
            missing arrays, non-finite weights).
    """
    path = Path(path)
    if not path.is_file():
        raise ControlkitError(f"export file: no such file {str(path)!r}.")
    try:
        with np.load(path, allow_pickle=False) as z:
            files = set(z.files)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as exc:  # e.g. a truncated file
        raise ControlkitError(f"export file {str(path)!r}: not a controlkit export "
                              f"({type(exc).__name__}: {exc}).") from None
    if "header" in files:
        return CompactNetwork.load(path)
    if "meta" in files:
        from controlkit.policies.export import load_policy

        return load_policy(path)
    raise ControlkitError(f"export file {str(path)!r}: not a controlkit export (no header).")


def export_onnx(obj: Any, path: str | os.PathLike) -> Path:
    """Write ``obj`` as an ONNX model to ``path``.

    Policies map ``obs`` ``(N, obs_dim)`` to ``action``; a compact network maps ``x`` ``(N, nx)`` and ``u``
    ``(N, nu)`` to ``x_next`` (the residual added when the network is residual).
    """
    form = to_numpy(obj)
    data = compact_to_onnx(form) if isinstance(form, CompactNetwork) else form.to_onnx()
    return atomic_write_bytes(path, data)


def compact_to_onnx(net: CompactNetwork) -> bytes:
    """ONNX bytes of ``net.step``: per-neuron ReLU/identity as ``Where(mask, Relu(h), h)``."""
    g = OnnxGraph()
    x, u = g.input("x", net.nx), g.input("u", net.nu)
    h = g.op("Concat", x, u, axis=1)
    last = len(net.weights) - 1
    for k, (w, b) in enumerate(zip(net.weights, net.biases)):
        h = g.op("Add", g.op("MatMul", h, g.const(w.T)), g.const(b))
        if k < last:
            mask = net.relu_masks[k]
            if mask.all():
                h = g.op("Relu", h)
            elif mask.any():
                h = g.op("Where", g.const(mask, np.bool_), g.op("Relu", h), h)
    if net.residual:
        g.op("Add", x, h, out="x_next")
    else:
        g.op("Identity", h, out="x_next")
    return g.serialize("controlkit_compact_dynamics", net.nx, output="x_next")




class NumpyController(Controller):
    """A Controller around an exported numpy policy (what a torch-free robot loop runs).

    Policies that need the control step index (NCAP without a time observation) get it counted from ``reset``.
    """

    def __init__(self, policy: Any) -> None:
        self.policy = policy
        self._needs_step = type(policy).__name__ == "NCAPNumpy" and not policy.time_obs
        self._step = 0

    def reset(self, seed: int | None = None) -> None:
        super().reset(seed)
        self._step = 0

    def _act(self, obs: Any) -> tuple[np.ndarray, StepInfo]:
        obs = np.asarray(obs, dtype=np.float64)
        action = self.policy(obs, self._step) if self._needs_step else self.policy(obs)
        self._step += 1
        return np.asarray(action, dtype=np.float32), StepInfo()


__all__ = ["NumpyController", "compact_to_onnx", "export_numpy", "export_onnx", "load_numpy", "to_numpy"]

"""Torch-free forms of the NCAP and MLP policies: numpy callables, ``.npz`` files and ONNX graphs.

Nothing here imports torch, so a robot loop that only runs a trained policy needs numpy (and onnxruntime for
the ONNX form). ``NCAPPolicy.to_numpy()`` / ``MLPPolicy.to_numpy()`` produce these objects.
"""

from __future__ import annotations

import dataclasses
import json
import os
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np
from controlkit.policies._circuit import TURN_GAIN, WEIGHT_NAMES, circuit, oscillator_drive, target_commands

from controlkit.core.errors import ControlkitError
from controlkit.core.io import atomic_write_bytes
from controlkit.core.onnx import OnnxGraph

FORMAT_VERSION = 1
"""Version of the policy file layout :func:`load_policy` reads (written into every file's meta header)."""
EPISODE_STEPS = 1000  # the swimmer's time_obs scale (controlkit.envs.swimmer.EPISODE_STEPS; no mujoco import here)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


@dataclasses.dataclass
class NCAPNumpy:
    """NCAP circuit with fixed weights, in numpy. Call it like the torch module: ``policy(obs, step)``."""

    n_joints: int
    oscillator_period: int
    navigation: str | None
    time_obs: bool
    weights: dict[str, np.ndarray]
    target_w: np.ndarray | None = None
    target_b: np.ndarray | None = None

    @property
    def obs_size(self) -> int:
        n_links = self.n_joints + 1
        return self.n_joints + 3 * n_links + (2 if self.navigation else 0) + int(self.time_obs)

    def __call__(self, obs: np.ndarray, step: Any = None, activity: bool = False):
        """Torques for ``obs`` of shape ``(..., obs_size)``; ``step`` is the control step (scalar or ``(...,)``)."""
        obs = np.asarray(obs, dtype=np.float64)
        if obs.shape[-1] != self.obs_size:
            raise ControlkitError(f"observation: expected {self.obs_size} entries, got {obs.shape[-1]}.")
        period = self.oscillator_period
        if self.time_obs:
            step = obs[..., -1:] * EPISODE_STEPS
        elif step is None:
            raise ControlkitError("step: needed when the observation has no time entry (time_obs=False).")
        if np.ndim(step) == 0:  # one control step: pick the oscillator's row instead of computing with arrays
            drive = self.weights["osc"][0 if round(float(step)) % period < period // 2 else 1]
        else:
            step = np.asarray(step, dtype=np.float64)
            step = step if self.time_obs else step[..., None]
            drive = oscillator_drive((np.round(step) % period < period // 2).astype(np.float64), self.weights)
        n = self.n_joints
        brake = right = left = None
        if self.navigation:
            start = n + 3 * (n + 1)
            right, left, speed = target_commands(obs[..., start:start + 2], self.navigation, self.target_w,
                                                 self.target_b, _sigmoid)
            brake = 1 - speed.clip(0, 1)
        return circuit(obs[..., :n], drive, brake, right, left, self.weights, activity)

    # ---- files ----
    def save(self, path: str | os.PathLike) -> Path:
        """Write an ``.npz`` (weights plus a JSON header); :func:`load_policy` reads it back."""
        meta = {"type": "ncap", "n_joints": self.n_joints, "oscillator_period": self.oscillator_period,
                "navigation": self.navigation, "time_obs": self.time_obs}
        arrays = {f"w_{k}": self.weights[k] for k in WEIGHT_NAMES}
        if self.target_w is not None:
            arrays.update(target_w=self.target_w, target_b=self.target_b)
        return _save_npz(path, meta, arrays)

    def to_onnx(self) -> bytes:
        """ONNX graph (opset 17): inputs ``obs`` ``(N, obs_size)`` and, without ``time_obs``, ``step`` ``(N, 1)``;
        output ``action`` ``(N, n_joints)``, float32."""
        g = OnnxGraph()
        n = self.n_joints
        obs = g.input("obs", self.obs_size)
        if self.time_obs:
            step = g.op("Mul", g.slice(obs, self.obs_size - 1, self.obs_size), g.const(EPISODE_STEPS))
        else:
            step = g.input("step", 1)
        phase = g.op("Mod", g.op("Round", step), g.const(self.oscillator_period), fmod=1)
        osc_d = g.op("Cast", g.op("Less", phase, g.const(self.oscillator_period // 2)), to=1)
        w = self.weights
        s = g.clip(g.op("MatMul", g.slice(obs, 0, n), g.const(w["sense"])), 0, 1)
        drive = g.op("Add", g.op("Mul", osc_d, g.const(w["osc"][0] - w["osc"][1])), g.const(w["osc"][1]))
        b = g.op("Add", g.op("MatMul", s, g.const(w["prop"])), drive)
        if self.navigation:
            start = n + 3 * (n + 1)
            tx, ty = g.slice(obs, start, start + 1), g.slice(obs, start + 1, start + 2)
            norm = g.op("Add", g.op("Sqrt", g.op("Add", g.op("Mul", tx, tx), g.op("Mul", ty, ty))), g.const(1e-8))
            ux, uy = g.op("Div", tx, norm), g.op("Div", ty, norm)
            if self.navigation == "hardcoded":
                right = g.clip(g.op("Mul", g.op("Neg", ux), g.const(TURN_GAIN)), 0, 1)
                left = g.clip(g.op("Mul", ux, g.const(TURN_GAIN)), 0, 1)
            else:
                z = g.op("Sigmoid", g.op("Add", g.op("Add", g.op("Mul", ux, g.const(self.target_w[:, 0])),
                                                      g.op("Mul", uy, g.const(self.target_w[:, 1]))),
                                           g.const(self.target_b)))
                right, left, speed = g.slice(z, 0, 1), g.slice(z, 1, 2), g.slice(z, 2, 3)
                brake = g.op("Sub", g.const(1.0), g.clip(speed, 0, 1))
                b = g.op("Add", b, g.op("Mul", brake, g.const(w["speed"])))  # the hard-coded speed is 1: no brake
            b = g.op("Add", b, g.op("Add", g.op("Mul", right, g.const(w["turn"][0])),
                                    g.op("Mul", left, g.const(w["turn"][1]))))
        b = g.clip(b, 0, 1)
        m = g.clip(g.op("MatMul", b, g.const(w["muscle"])), 0, 1)
        g.op("Sub", g.slice(m, 0, n), g.slice(m, n, 2 * n), out="action")
        return g.serialize("ncap", n)


@dataclasses.dataclass
class MLPNumpy:
    """MLP with fixed weights (``weights[k]`` is ``(in, out)``), hidden activation, tanh output."""

    weights: list[np.ndarray]
    biases: list[np.ndarray]
    activation: str = "tanh"

    def __call__(self, obs: np.ndarray, step: Any = None) -> np.ndarray:
        """Actions for ``obs`` ``(..., obs_dim)``; ``step`` is accepted and ignored (same call as NCAPNumpy)."""
        h = np.asarray(obs, dtype=np.float64)
        if h.shape[-1] != self.weights[0].shape[0]:
            raise ControlkitError(f"observation: expected {self.weights[0].shape[0]} entries, got {h.shape[-1]}.")
        for k, (w, b) in enumerate(zip(self.weights, self.biases)):
            h = h @ w + b
            h = np.tanh(h) if (k == len(self.weights) - 1 or self.activation == "tanh") else np.maximum(h, 0.0)
        return h

    def save(self, path: str | os.PathLike) -> Path:
        """Write an ``.npz``; :func:`load_policy` reads it back."""
        arrays = {f"w{k}": w for k, w in enumerate(self.weights)} | {f"b{k}": b for k, b in enumerate(self.biases)}
        return _save_npz(path, {"type": "mlp", "activation": self.activation, "layers": len(self.weights)}, arrays)

    def to_onnx(self) -> bytes:
        """ONNX graph: input ``obs`` ``(N, obs_dim)``, output ``action`` ``(N, act_dim)``, float32."""
        g = OnnxGraph()
        h = g.input("obs", self.weights[0].shape[0])
        last = len(self.weights) - 1
        for k, (w, b) in enumerate(zip(self.weights, self.biases)):
            h = g.op("Add", g.op("MatMul", h, g.const(w)), g.const(b))
            act = "Tanh" if (k == last or self.activation == "tanh") else "Relu"
            h = g.op(act, h, out="action" if k == last else None)
        return g.serialize("mlp", self.weights[-1].shape[1])


def load_policy(path: str | os.PathLike) -> NCAPNumpy | MLPNumpy:
    """Read a policy written by ``NCAPNumpy.save`` or ``MLPNumpy.save``.

    Raises:
        ControlkitError: naming the file and what is wrong: missing, truncated or damaged, not a controlkit policy,
            another format version, missing arrays or header fields, non-finite weights.
    """
    name = str(path)
    if not Path(path).is_file():
        raise ControlkitError(f"policy file: no such file {name!r}.")
    try:
        with np.load(path, allow_pickle=False) as f:
            if "meta" not in f.files:
                raise ControlkitError(f"policy file {name!r}: not a controlkit policy (no meta header).")
            meta = json.loads(str(f["meta"]))
            arrays = {k: f[k] for k in f.files if k != "meta"}
    except ControlkitError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        raise ControlkitError(f"policy file {name!r}: corrupt or not a controlkit policy "
                              f"({type(exc).__name__}: {exc}).") from None
    if not isinstance(meta, dict):
        raise ControlkitError(f"policy file {name!r}: its meta header is not a JSON object.")
    version = meta.get("format_version", 1)  # files from before the version was recorded have the layout of 1
    if version != FORMAT_VERSION:
        raise ControlkitError(f"policy file {name!r}: format version {version!r}; this controlkit reads version "
                              f"{FORMAT_VERSION} (re-export the policy).")
    kind = meta.get("type")
    if kind not in ("ncap", "mlp"):
        raise ControlkitError(f"policy file {name!r}: unknown policy type {kind!r}; valid choices: mlp, ncap.")
    try:
        layers = int(meta["layers"]) if kind == "mlp" else 0
        need = [f"w_{k}" for k in WEIGHT_NAMES] if kind == "ncap" else [
            f"{p}{k}" for k in range(layers) for p in ("w", "b")]
        missing = [k for k in need if k not in arrays]
        if missing:
            raise ControlkitError(f"policy file {name!r}: missing arrays {', '.join(missing)} for a {kind} policy.")
        broken = sorted(k for k, v in arrays.items() if v.dtype.kind in "fc" and not np.all(np.isfinite(v)))
        if broken:
            raise ControlkitError(f"policy file {name!r}: non-finite values (NaN or inf) in {', '.join(broken)}.")
        if kind == "ncap":
            return NCAPNumpy(int(meta["n_joints"]), int(meta["oscillator_period"]), meta["navigation"],
                             bool(meta["time_obs"]), {k: arrays[f"w_{k}"] for k in WEIGHT_NAMES},
                             arrays.get("target_w"), arrays.get("target_b"))
        return MLPNumpy([arrays[f"w{k}"] for k in range(layers)], [arrays[f"b{k}"] for k in range(layers)],
                        str(meta["activation"]))
    except KeyError as exc:
        raise ControlkitError(f"policy file {name!r}: its meta header lacks {exc} for a {kind} policy.") from None
    except (TypeError, ValueError) as exc:
        raise ControlkitError(f"policy file {name!r}: bad meta header ({exc}).") from None


def save_onnx(policy: NCAPNumpy | MLPNumpy, path: str | os.PathLike) -> Path:
    """Write ``policy.to_onnx()`` to ``path`` atomically."""
    return atomic_write_bytes(path, policy.to_onnx())


def _save_npz(path: str | os.PathLike, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> Path:
    import io

    buf = io.BytesIO()
    np.savez(buf, meta=np.array(json.dumps({"format_version": FORMAT_VERSION, **meta})), **arrays)
    return atomic_write_bytes(path, buf.getvalue())


__all__ = ["MLPNumpy", "NCAPNumpy", "load_policy", "save_onnx"]

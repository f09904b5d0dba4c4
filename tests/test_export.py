"""Torch-free exports: numpy files and ONNX graphs that reproduce the torch/numpy originals."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import onnxruntime as ort
import pytest
import torch
from controlkit.policies import MLPPolicy, NCAPPolicy

from controlkit import ControlkitError
from controlkit.export import export_numpy, export_onnx, load_numpy
from controlkit.models.network import CompactNetwork


def _compact(residual: bool, seed: int = 0) -> CompactNetwork:
    rng = np.random.default_rng(seed)
    sizes = [5, 8, 6, 3]
    weights = [rng.normal(size=(o, i)) for i, o in zip(sizes[:-1], sizes[1:])]
    biases = [rng.normal(size=o) for o in sizes[1:]]
    masks = [rng.random(8) < 0.5, np.ones(6, bool)]  # mixed ReLU/identity layer, then an all-ReLU layer
    return CompactNetwork(weights, biases, masks, nx=3, nu=2, residual=residual)


@pytest.mark.parametrize("residual", [True, False])
def test_compact_network_numpy_file_and_onnx_match(residual, tmp_path):
    net = _compact(residual)
    x, u = np.random.default_rng(1).normal(size=(16, 3)), np.random.default_rng(2).normal(size=(16, 2))
    expected = net.step(x, u)
    loaded = load_numpy(export_numpy(net, tmp_path / "net.npz"))
    np.testing.assert_allclose(loaded.step(x, u), expected, rtol=0, atol=1e-12)
    session = ort.InferenceSession(str(export_onnx(net, tmp_path / "net.onnx")))
    (got,) = session.run(None, {"x": x.astype(np.float32), "u": u.astype(np.float32)})
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)  # float32 graph


def test_policies_export_through_the_same_functions(tmp_path):
    ncap = NCAPPolicy(n_joints=5)
    obs = np.random.default_rng(0).normal(size=(4, ncap.layout.size))
    loaded = load_numpy(export_numpy(ncap, tmp_path / "ncap.npz"))
    with torch.no_grad():
        expected = ncap(torch.as_tensor(obs, dtype=torch.float32), 7).numpy()
    np.testing.assert_allclose(loaded(obs, 7), expected, atol=1e-6)
    mlp = MLPPolicy(obs_dim=10, act_dim=3, hidden=(16, 16), seed=0)
    obs = np.random.default_rng(1).normal(size=(4, 10)).astype(np.float32)
    session = ort.InferenceSession(str(export_onnx(mlp, tmp_path / "mlp.onnx")))
    with torch.no_grad():
        expected = mlp(torch.as_tensor(obs)).numpy()
    np.testing.assert_allclose(session.run(None, {"obs": obs})[0], expected, atol=1e-6)


def test_unsupported_exports_name_the_valid_ones(tmp_path):
    with pytest.raises(ControlkitError, match="valid: CompactNetwork, NCAPPolicy"):
        export_onnx(torch.nn.LSTM(3, 3), tmp_path / "x.onnx")
    with pytest.raises(ControlkitError, match="from_sequential"):
        export_numpy(torch.nn.Sequential(torch.nn.Linear(3, 3)), tmp_path / "x.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(ControlkitError, match="not a controlkit export"):
        load_numpy(tmp_path / "junk.npz")
    with pytest.raises(ControlkitError, match="no such file"):
        load_numpy(tmp_path / "missing.npz")
    assert not (tmp_path / "x.onnx").exists() and not (tmp_path / "x.npz").exists()


TORCH_BLOCKED = """
import sys
class _Block:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("torch is blocked in this process")
sys.meta_path.insert(0, _Block())
"""


def _run_without_torch(code: str, tmp_path) -> str:
    proc = subprocess.run(
        [sys.executable, "-c", TORCH_BLOCKED + textwrap.dedent(code)], capture_output=True, text=True,
        timeout=300, cwd=tmp_path, env={**os.environ, "MUJOCO_GL": "egl"}, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_exported_forms_run_with_torch_blocked(tmp_path):
    export_numpy(_compact(True), tmp_path / "net.npz")
    export_numpy(NCAPPolicy(n_joints=5), tmp_path / "ncap.npz")
    out = _run_without_torch("""
        import numpy as np
        from controlkit.export import load_numpy
        net, ncap = load_numpy("net.npz"), load_numpy("ncap.npz")
        print(net.step(np.zeros(3), np.zeros(2)).shape, ncap(np.zeros(ncap.obs_size), 0).shape)
        assert "torch" not in sys.modules
    """, tmp_path)
    assert out.split() == ["(3,)", "(5,)"]


def test_mip_mpc_runs_from_an_exported_network_with_torch_blocked(tmp_path):
    net = _compact(True)
    export_numpy(net, tmp_path / "net.npz")
    out = _run_without_torch("""
        import numpy as np
        from controlkit.export import load_numpy
        from controlkit.planning import MIPMPC
        mpc = MIPMPC(load_numpy("net.npz"), horizon=3, u_low=[-1, -1], u_high=[1, 1], goal=np.ones(3), time_limit=20)
        plan = mpc.plan(np.zeros(3), np.ones(3))
        np.testing.assert_allclose(plan.states, mpc.problem.net.rollout(np.zeros(3), plan.actions), atol=1e-5)
        u = mpc.act(np.zeros(3))
        assert "torch" not in sys.modules
        print(plan.status.value, u.shape, mpc.last_step.fallback)
    """, tmp_path)
    assert out.split()[-3:] == ["ok", "(2,)", "None"]

"""Torch-free export: numpy and ONNX forms match torch to 1e-6 and run without torch."""

import subprocess
import sys

import numpy as np
import onnxruntime as ort
import pytest
import torch
from controlkit.envs.swimmer import SwimmerLayout
from controlkit.policies import MLPPolicy, NCAPPolicy, load_policy, save_onnx
from controlkit.policies._circuit import WEIGHT_NAMES

VARIANTS = [
    {},
    {"weight_sharing": False, "constant_init": False, "seed": 4},
    {"sign_constraints": False, "constant_init": False, "seed": 5, "oscillator_period": 37},
    {"navigation": "hardcoded", "n_turn_joints": 2},
    {"navigation": "learned", "constant_init": False, "seed": 6, "time_obs": True},
    {"proprioception": False},
]


def _batch(pol, rng, n=64):
    lay: SwimmerLayout = pol.layout
    obs = rng.normal(scale=0.8, size=(n, lay.size))
    steps = rng.integers(0, 1000, size=n)
    if lay.time_obs:
        obs[:, -1] = steps / 1000.0
    return obs, steps


@pytest.mark.parametrize("kwargs", VARIANTS)
def test_ncap_numpy_and_onnx_match_torch(kwargs, tmp_path):
    pol = NCAPPolicy(5, **kwargs)
    rng = np.random.default_rng(0)
    obs, steps = _batch(pol, rng)
    ref = pol(torch.tensor(obs), None if pol.time_obs else torch.tensor(steps)).detach().numpy()
    np_form = pol.to_numpy()
    np.testing.assert_allclose(np_form(obs, steps), ref, atol=1e-6)
    np_form.save(tmp_path / "ncap.npz")
    np.testing.assert_allclose(load_policy(tmp_path / "ncap.npz")(obs, steps), ref, atol=1e-6)
    save_onnx(np_form, tmp_path / "ncap.onnx")
    sess = ort.InferenceSession(str(tmp_path / "ncap.onnx"))
    feeds = {"obs": obs.astype(np.float32)}
    if not pol.time_obs:
        feeds["step"] = steps[:, None].astype(np.float32)
    np.testing.assert_allclose(sess.run(None, feeds)[0], ref, atol=1e-6)
    assert np.abs(ref).max() > 0.1  # the comparison is not between zero outputs


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_mlp_numpy_and_onnx_match_torch(activation, tmp_path):
    pol = MLPPolicy(23, 5, hidden=(64, 32), activation=activation, seed=2)
    obs = np.random.default_rng(1).normal(size=(50, 23))
    ref = pol(torch.tensor(obs)).detach().numpy()
    np.testing.assert_allclose(pol.to_numpy()(obs), ref, atol=1e-6)
    pol.to_numpy().save(tmp_path / "mlp.npz")
    np.testing.assert_allclose(load_policy(tmp_path / "mlp.npz")(obs), ref, atol=1e-6)
    sess = ort.InferenceSession(pol.to_numpy().to_onnx())
    np.testing.assert_allclose(sess.run(None, {"obs": obs.astype(np.float32)})[0], ref, atol=1e-6)


def test_exported_policy_runs_without_torch(tmp_path):
    pol = NCAPPolicy(5)
    with torch.no_grad():
        pol.weights["prop"].fill_(1.4)
    pol.to_numpy().save(tmp_path / "ncap.npz")
    obs = np.full(23, 0.2)
    expected = pol(torch.tensor(obs), 7).detach().numpy()
    code = (
        "import sys, numpy as np\n"
        "sys.modules['torch'] = None  # any torch import now fails\n"
        "from controlkit.policies.export import load_policy\n"
        f"p = load_policy({str(tmp_path / 'ncap.npz')!r})\n"
        "print(' '.join(repr(float(v)) for v in p(np.full(23, 0.2), 7)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    np.testing.assert_allclose(np.array(out.split(), dtype=float), expected, atol=1e-6)


def test_export_stores_every_circuit_weight():
    assert set(NCAPPolicy(4).to_numpy().weights) == set(WEIGHT_NAMES)

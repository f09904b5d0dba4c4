"""Export of the masked model to a CompactNetwork (exactness) and the network's versioned file format."""

import json
import zipfile

import numpy as np
import pytest
import torch

from controlkit.core.errors import ControlkitError
from controlkit.models.data import collect
from controlkit.models.dynamics import DynamicsModel
from controlkit.models.network import FORMAT_VERSION, CompactNetwork
from controlkit.models.sparsify import IDENTITY, RELU, REMOVED, export_compact, export_gap, fixed_gates


@pytest.fixture(scope="module")
def data():
    return collect("Pendulum-v1", 6, 40, seed=3)


def _masked_model(data, residual, seed=0):
    model = DynamicsModel(data.nx, data.nu, [24, 16], residual=residual, seed=seed)
    model.fit_normalisation(data)  # non-trivial means and stds to fold in
    rng = np.random.default_rng(seed)
    modes = [rng.choice([RELU, IDENTITY, REMOVED], size=n) for n in model.hidden]
    return model, modes


@pytest.mark.parametrize("residual", [True, False])
def test_compact_network_equals_masked_model(data, residual):
    model, modes = _masked_model(data, residual)
    net = export_compact(model, modes, metadata={"note": "test"})
    kept = [int((m != REMOVED).sum()) for m in modes]
    assert net.hidden_sizes == kept and net.n_relu == sum(int((m == RELU).sum()) for m in modes)
    assert net.n_identity == sum(int((m == IDENTITY).sum()) for m in modes) and net.residual is residual
    x, u, _ = data.transitions()
    assert export_gap(model, modes, net, x, u) < 1e-9  # float64 on both sides
    with torch.no_grad():  # and against the float32 training model, the 1e-5 contract
        ref = model.step(torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(u, dtype=torch.float32),
                         fixed_gates(modes)).numpy()
    np.testing.assert_allclose(net.step(x, u), ref, atol=1e-5, rtol=0)
    # Multi-step: the compact rollout follows the masked model's.
    with torch.no_grad():
        roll = model.rollout(torch.as_tensor(x[:1], dtype=torch.float32),
                             torch.as_tensor(data.actions[:1, :10], dtype=torch.float32), fixed_gates(modes))
    np.testing.assert_allclose(net.rollout(x[0], data.actions[0, :10])[1:], roll[0].numpy(), atol=1e-4)


def test_save_load_round_trip(data, tmp_path):
    model, modes = _masked_model(data, True, seed=1)
    net = export_compact(model, modes, metadata={"env": "Pendulum-v1", "val_error": np.float32(0.5)})
    path = net.save(tmp_path / "net.npz")
    back = CompactNetwork.load(path)
    assert (back.nx, back.nu, back.residual) == (3, 1, True)
    assert back.metadata == {"env": "Pendulum-v1", "val_error": 0.5}
    for a, b in zip(net.weights + net.biases + net.relu_masks, back.weights + back.biases + back.relu_masks):
        assert np.array_equal(a, b)
    x, u, _ = data.transitions()
    assert np.array_equal(back.step(x, u), net.step(x, u))


def _rewrite_header(src, dst, **changes):
    with np.load(src) as z:
        arrays = {k: z[k] for k in z.files}
    header = json.loads(str(arrays["header"]))
    header.update(changes)
    arrays["header"] = np.array(json.dumps(header))
    np.savez(dst, **arrays)


def test_corrupt_missing_and_other_version_files_fail_clearly(data, tmp_path):
    model, modes = _masked_model(data, True)
    good = export_compact(model, modes).save(tmp_path / "good.npz")
    with pytest.raises(ControlkitError, match="network file: no such file"):
        CompactNetwork.load(tmp_path / "absent.npz")
    (tmp_path / "truncated.npz").write_bytes(good.read_bytes()[:200])
    with pytest.raises(ControlkitError, match="truncated.npz.*corrupt or not a controlkit network"):
        CompactNetwork.load(tmp_path / "truncated.npz")
    _rewrite_header(good, tmp_path / "v99.npz", format_version=99)
    with pytest.raises(ControlkitError, match=f"format version 99; this controlkit reads version {FORMAT_VERSION}"):
        CompactNetwork.load(tmp_path / "v99.npz")
    _rewrite_header(good, tmp_path / "layers.npz", n_layers=5)
    with pytest.raises(ControlkitError, match="corrupt or not a controlkit network"):
        CompactNetwork.load(tmp_path / "layers.npz")
    with zipfile.ZipFile(tmp_path / "other.npz", "w") as zf:
        zf.writestr("hello.txt", "not a network")
    with pytest.raises(ControlkitError, match="other.npz.*corrupt or not a controlkit network"):
        CompactNetwork.load(tmp_path / "other.npz")

"""Broken model and policy files are refused on load with one ControlkitError naming the file and the fault."""

import json
import struct
import zipfile

import numpy as np
import pytest
from controlkit.policies.export import FORMAT_VERSION, MLPNumpy, load_policy

from controlkit import ControlkitError
from controlkit.export import export_numpy, load_numpy
from controlkit.models.network import CompactNetwork


def _net() -> CompactNetwork:
    rng = np.random.default_rng(0)
    return CompactNetwork([rng.normal(size=(64, 5)), rng.normal(size=(3, 64))], [rng.normal(size=64),
                          rng.normal(size=3)], [np.ones(64, bool)], nx=3, nu=2)


def _mlp() -> MLPNumpy:
    rng = np.random.default_rng(1)
    return MLPNumpy([rng.normal(size=(4, 8)), rng.normal(size=(8, 2))], [np.zeros(8), np.zeros(2)])


def _rewrite(src, dst, drop=(), meta=None, **arrays):
    """Copy an .npz with arrays replaced or dropped (and the policy meta header changed)."""
    with np.load(src) as z:
        out = {k: z[k] for k in z.files if k not in drop}
    out.update(arrays)
    if meta is not None:
        out["meta"] = np.array(json.dumps({**json.loads(str(out["meta"])), **meta}))
    np.savez(dst, **out)
    return dst


def test_a_network_file_with_nan_or_inf_weights_is_refused(tmp_path):
    good = _net().save(tmp_path / "good.npz")
    with np.load(good) as z:
        w0, b1 = z["weight0"].copy(), z["bias1"].copy()
    w0[3, 1], b1[0] = np.nan, np.inf
    _rewrite(good, tmp_path / "nan.npz", weight0=w0)
    _rewrite(good, tmp_path / "inf.npz", bias1=b1)
    for name, layer in (("nan.npz", 0), ("inf.npz", 1)):
        for load in (CompactNetwork.load, load_numpy):
            with pytest.raises(ControlkitError, match=rf"{name}'?: layer {layer} has non-finite weights or biases"):
                load(tmp_path / name)
    with pytest.raises(ControlkitError, match="network: layer 0 has non-finite"):  # built in code: the same check
        CompactNetwork([w0, np.ones((3, 64))], [np.zeros(64), np.zeros(3)], [np.ones(64, bool)], nx=3, nu=2)


def test_a_damaged_compressed_stream_is_refused(tmp_path):
    path = _net().save(tmp_path / "net.npz")
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo("weight0.npy")
    assert info.compress_type == zipfile.ZIP_DEFLATED
    name_len, extra_len = struct.unpack("<HH", data[info.header_offset + 26: info.header_offset + 30])
    data[info.header_offset + 30 + name_len + extra_len] = 0xFF  # a deflate block of the reserved type
    (tmp_path / "damaged.npz").write_bytes(bytes(data))
    for load in (CompactNetwork.load, load_numpy):
        with pytest.raises(ControlkitError, match=r"damaged.npz.*corrupt or not a controlkit network.*decompress"):
            load(tmp_path / "damaged.npz")


@pytest.mark.parametrize("kind", ["network", "policy"])
def test_a_truncated_file_is_refused_through_load_numpy(tmp_path, kind):
    good = export_numpy(_net() if kind == "network" else _mlp(), tmp_path / "good.npz")
    data = good.read_bytes()
    for cut in (len(data) // 2, len(data) - 30):
        (tmp_path / "cut.npz").write_bytes(data[:cut])
        with pytest.raises(ControlkitError, match=r"cut.npz.*not a controlkit export"):
            load_numpy(tmp_path / "cut.npz")


def test_policy_files_carry_and_check_a_format_version(tmp_path):
    good = _mlp().save(tmp_path / "mlp.npz")
    with np.load(good) as z:
        assert json.loads(str(z["meta"]))["format_version"] == FORMAT_VERSION
    _rewrite(good, tmp_path / "v99.npz", meta={"format_version": 99})
    for load in (load_policy, load_numpy):
        with pytest.raises(ControlkitError, match=f"v99.npz.*format version 99; this controlkit reads version "
                                                  f"{FORMAT_VERSION}"):
            load(tmp_path / "v99.npz")
    with np.load(good) as z:  # a file from before the version was written: same layout, still loads
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(str(arrays["meta"]))
    del meta["format_version"]
    np.savez(tmp_path / "old.npz", **{**arrays, "meta": np.array(json.dumps(meta))})
    x = np.ones((2, 4))
    np.testing.assert_array_equal(load_policy(tmp_path / "old.npz")(x), _mlp()(x))


def test_a_policy_file_with_missing_arrays_or_fields_or_nan_is_refused(tmp_path):
    good = _mlp().save(tmp_path / "mlp.npz")
    _rewrite(good, tmp_path / "no_b1.npz", drop=("b1",))
    with pytest.raises(ControlkitError, match="no_b1.npz.*missing arrays b1 for a mlp policy"):
        load_numpy(tmp_path / "no_b1.npz")
    _rewrite(good, tmp_path / "type.npz", meta={"type": "lstm"})
    with pytest.raises(ControlkitError, match="type.npz.*unknown policy type 'lstm'; valid choices: mlp, ncap"):
        load_policy(tmp_path / "type.npz")
    with np.load(good) as z:
        w1 = z["w1"].copy()
    w1[0, 0] = np.nan
    _rewrite(good, tmp_path / "nan.npz", w1=w1)
    with pytest.raises(ControlkitError, match="nan.npz.*non-finite values.*in w1"):
        load_policy(tmp_path / "nan.npz")
    with np.load(good) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(str(arrays["meta"]))
    del meta["layers"]
    np.savez(tmp_path / "no_layers.npz", **{**arrays, "meta": np.array(json.dumps(meta))})
    with pytest.raises(ControlkitError, match="no_layers.npz.*meta header lacks 'layers'"):
        load_policy(tmp_path / "no_layers.npz")
    with pytest.raises(ControlkitError, match="policy file: no such file"):
        load_policy(tmp_path / "absent.npz")


def test_an_ncap_file_missing_a_weight_is_refused(tmp_path):
    pytest.importorskip("torch")
    from controlkit.policies import NCAPPolicy

    good = export_numpy(NCAPPolicy(n_joints=5), tmp_path / "ncap.npz")
    _rewrite(good, tmp_path / "no_osc.npz", drop=("w_osc",))
    with pytest.raises(ControlkitError, match="no_osc.npz.*missing arrays w_osc for a ncap policy"):
        load_numpy(tmp_path / "no_osc.npz")
    assert load_numpy(good).n_joints == 5

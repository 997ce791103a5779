"""Faithful by default: loss variants by name, each model's default, dropout placement, and the
official-checkpoint reader's errors (tiny models; the golden comparisons are test_official.py)."""

from __future__ import annotations

import pickle

import pytest
import torch

from vadkit.convert import KEY_TABLES, _mgfn_depths, map_key, read_official_checkpoint
from vadkit.errors import VadkitError
from vadkit.models import create_model
from vadkit.models.common import (
    LOSS_ALIASES,
    LOSS_NAMES,
    LOSS_VARIANTS,
    check_variant,
    regularisers,
    smoothness,
    sparsity,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")

D = 32
SMALL = {
    "rtfm": {"hidden": 32},
    "msip": {"hidden": 32, "graph_dim": 16},
    "mgfn": {"dims": [16, 32, 64], "dim_head": 16},
}


def small(name: str, **kw):
    return create_model(name, feature_dim=D, segments=12, **SMALL[name], **kw)


def bags(seed: int = 0, b: int = 2, n: int = 2, t: int = 12):
    g = torch.Generator().manual_seed(seed)
    return (
        {"clip": torch.randn(b, n, t, D, generator=g)},
        {"clip": torch.randn(b, n, t, D, generator=g) + 0.5},
    )


# ---------------------------------------------------------------- loss variants


def test_loss_variants_are_named_and_described():
    assert list(LOSS_VARIANTS) == ["rtfm", "mgfn", "mgfn-current", "msip"]
    for name, line in LOSS_VARIANTS.items():
        assert line and "\n" not in line and len(line) < 120, name
    assert LOSS_ALIASES == {"rtfm-code": "rtfm"}
    assert LOSS_NAMES == ("rtfm", "mgfn", "mgfn-current", "msip", "rtfm-code")
    assert check_variant("rtfm-code") == "rtfm"
    with pytest.raises(VadkitError, match="unknown loss variant 'nope'.*rtfm, mgfn"):
        check_variant("nope")


@pytest.mark.parametrize(
    ("name", "default"), [("rtfm", "rtfm"), ("mgfn", "mgfn"), ("msip", "msip")]
)
def test_each_model_defaults_to_its_own_code(name, default):
    assert small(name).loss_variant == default


def test_regulariser_forms():
    normal = torch.tensor([[0.0, 0.5, 0.5], [1.0, 1.0, 0.0]])
    abnormal = torch.tensor([[0.0, 1.0, 1.0], [0.5, 0.0, 0.5]])
    l2_abn = torch.linalg.vector_norm(abnormal).item()
    flat_abn = 1.0 + 0.0 + 0.25 + 0.25 + 0.25  # crosses from video 1 into video 2
    for variant in ("rtfm", "rtfm-code", "mgfn"):
        sp, sm = regularisers(normal, abnormal, variant)
        assert sp.item() == pytest.approx(l2_abn) and sm.item() == pytest.approx(flat_abn)
    # MGFN's current code: sparsity on the normal scores; smoothness within each of all videos
    sp, sm = regularisers(normal, abnormal, "mgfn-current")
    assert sp.item() == pytest.approx(torch.linalg.vector_norm(normal).item())
    assert sm.item() == pytest.approx((0.25 + 0.0) + (0.0 + 1.0) + (1.0 + 0.0) + (0.25 + 0.25))
    # MSIP paper: per abnormal video, averaged
    sp, sm = regularisers(normal, abnormal, "msip")
    assert sp.item() == pytest.approx((2.0 + 1.0) / 2) and sm.item() == pytest.approx(0.75)
    assert sparsity(abnormal, "msip").item() == sp.item()
    assert smoothness(abnormal, "rtfm").item() == pytest.approx(flat_abn)


@pytest.mark.parametrize("name", ["rtfm", "mgfn", "msip"])
@pytest.mark.parametrize("variant", [*LOSS_VARIANTS, "rtfm-code"])
def test_any_variant_trains_any_model(name, variant):
    torch.manual_seed(0)
    model = small(name, loss=variant).train()
    normal, abnormal = bags()
    total, parts = model.loss(normal, abnormal)
    total.backward()
    assert torch.isfinite(total) and set(parts) >= {"bce", "sparsity", "smoothness"}
    assert all(p.grad is not None for p in model.trainable_parameters())


def test_variants_change_the_loss_as_their_forms_say():
    normal, abnormal = bags(3)
    totals = {}
    for variant in LOSS_VARIANTS:
        torch.manual_seed(0)
        model = small("mgfn", loss=variant).train()
        totals[variant] = model.loss(normal, abnormal)[1]
    assert totals["rtfm"]["sparsity"] == totals["mgfn"]["sparsity"]
    assert totals["mgfn-current"]["sparsity"] != totals["mgfn"]["sparsity"]
    assert totals["msip"]["smoothness"] != totals["mgfn"]["smoothness"]


# ---------------------------------------------------------------- dropout placement


@pytest.mark.parametrize("name", ["rtfm", "msip"])
def test_feature_dropout_is_on_the_ctr_output(name):
    """Train mode: the features (hence magnitudes, top-k and the FM loss) are dropped out with
    p = 0.7 and scaled by 1/0.3, and the classifier scores exactly those features."""
    model = small(name).train()
    normal, _ = bags()
    torch.manual_seed(1)
    out = model(normal["clip"])
    feats = out["features"]  # (b, n, t, d)
    zeros = (feats == 0).float().mean().item()
    assert 0.6 < zeros < 0.8, zeros
    mags = torch.linalg.vector_norm(feats, dim=-1).mean(1)
    torch.testing.assert_close(out["magnitudes"], mags)
    torch.manual_seed(1)
    ctr = model.ctr(normal["clip"].reshape(-1, 12, D))
    dropped = model.classifier.drop(ctr)
    torch.testing.assert_close(dropped.view_as(feats), feats)
    scores = model.classifier.head(dropped).view(2, 2, 12).mean(1)
    torch.testing.assert_close(out["scores"], scores)
    model.eval()
    assert (model(normal["clip"])["features"] != 0).float().mean().item() > 0.99


def test_mgfn_takes_the_official_input_layout():
    model = small("mgfn").eval()
    clip = torch.randn(1, 2, 12, D)
    with_norm = torch.cat([clip, torch.linalg.vector_norm(clip, dim=-1, keepdim=True)], -1)
    torch.testing.assert_close(model(with_norm)["scores"], model(clip)["scores"])


# ---------------------------------------------------------------- official checkpoints


@pytest.fixture
def convert_cli():
    """The whole CLI app, `vadkit convert` included."""
    from vadkit.cli import load_commands

    return load_commands()


def official_like(name: str) -> dict[str, torch.Tensor]:
    """A tiny model's weights under the official key names."""
    own = small(name).state_dict()
    state = {_official_name(name, k): v.clone() for k, v in own.items()}
    depths = _mgfn_depths(state) if name == "mgfn" else None
    assert {map_key(k, name, depths) for k in state} == set(own)  # the table inverts
    return state


def _official_name(name: str, vk: str) -> str:
    """The official name of vadkit key `vk` (written out by hand, to check the table)."""
    parts = vk.split(".")
    if name == "rtfm":
        rest = ".".join(parts[1:])
        fc = {"classifier.1": "fc1", "classifier.4": "fc2", "classifier.7": "fc3"}
        head = ".".join(parts[:2])
        if head in fc:
            return f"{fc[head]}.{parts[-1]}"
        rest = rest.replace("non_local.out.", "non_local.W.0.")
        return "Aggregate." + rest.replace("non_local.bn.", "non_local.W.1.")
    if parts[0] == "layers":
        s, layer, rest = parts[1], parts[2], parts[3:]
        slot = {"conv": "0", "block": "1", "ff": "2"}
        if rest[0] in slot:
            return f"stages.{s}.0.layers.{layer}.{slot[rest[0]]}.{'.'.join(rest[1:])}"
        return f"stages.{s}.1.{'.'.join(rest)}"
    if parts[0] == "norm":
        return f"to_logits.0.{parts[-1]}"
    return vk


@pytest.mark.parametrize("name", sorted(KEY_TABLES))
def test_official_checkpoint_round_trip_wrapped_and_prefixed(tmp_path, name):
    state = official_like(name)
    path = tmp_path / "ckpt.pth"
    torch.save({"epoch": 3, "state_dict": {f"module.{k}": v for k, v in state.items()}}, path)
    got, config = read_official_checkpoint(path, name)
    assert config["feature_dim"] == D
    model = create_model(name, **config)
    model.load_state_dict(got)  # strict: every key present and fitting
    own = small(name)
    assert {k: tuple(v.shape) for k, v in own.state_dict().items()} == {
        k: tuple(v.shape) for k, v in got.items()
    }


def test_unknown_and_missing_keys_are_named(tmp_path):
    state = official_like("rtfm")
    state["fc9.weight"] = torch.zeros(3)
    del state["fc2.bias"]
    path = tmp_path / "bad.pkl"
    torch.save(state, path)
    with pytest.raises(
        VadkitError, match=r"unknown keys fc9\.weight.*missing keys.*classifier\.4\.bias"
    ):
        read_official_checkpoint(path, "rtfm")


def test_only_weights_are_unpickled(tmp_path):
    path = tmp_path / "evil.pkl"
    with path.open("wb") as f:
        pickle.dump({"fc1.weight": torch.zeros(2), "x": _NotATensor()}, f, protocol=2)
    with pytest.raises(VadkitError, match="not a plain PyTorch state dict.*weights_only"):
        read_official_checkpoint(path, "rtfm")
    with pytest.raises(VadkitError, match="checkpoint not found"):
        read_official_checkpoint(tmp_path / "nope.pkl", "rtfm")
    with pytest.raises(VadkitError, match="choose rtfm or mgfn"):
        read_official_checkpoint(path, "msip")


class _NotATensor:
    pass


def test_convert_cli_overrides_refusals_and_json(tmp_path, convert_cli):
    import json

    from typer.testing import CliRunner

    from vadkit.score import read_checkpoint

    app = convert_cli
    path = tmp_path / "mgfn.pkl"
    torch.save(official_like("mgfn"), path)
    run = tmp_path / "run"
    args = ["convert", str(path), "-m", "mgfn", "-o", str(run)]
    runner = CliRunner()
    r = runner.invoke(app, [*args, "--crops", "5", "--backbone", "i3d-inception", "--json"])
    assert r.exit_code == 0, r.output
    summary = json.loads(r.output)
    assert summary["feature_spec"]["crops"] == 5 and summary["model_args"]["dims"] == [16, 32, 64]
    _, meta = read_checkpoint(run / "best.safetensors")
    assert (
        meta["feature_spec"]["backbone"] == "i3d-inception" and meta["feature_spec"]["crops"] == 5
    )
    assert meta["source"]["file"] == str(path.resolve()) and len(meta["source"]["sha256"]) == 64
    r = runner.invoke(app, args)
    assert r.exit_code == 1 and "exists; pass --force" in r.output
    r = runner.invoke(app, [*args, "--force", "--feature-dim", "2048"])
    assert r.exit_code == 1 and "--feature-dim 2048 does not fit" in r.output
    assert r.output.count("\n") == 1  # one `Error: ...` line, no traceback

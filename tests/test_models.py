"""Models: registry, exact sizes, gradients, stage-2 freezing, checkpoint round trip, pieces."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass, fields

import numpy as np
import pytest
import torch

from vadkit.data import resample_segments
from vadkit.errors import VadkitError
from vadkit.io.checkpoint import read_checkpoint, save_checkpoint
from vadkit.models import create_model, list_models, model_class, register_model
from vadkit.models.common import PATCHES, ModelConfig, VadModel
from vadkit.models.mgfn import Focus
from vadkit.models.msip import MSIP, patch_graph
from vadkit.models.rtfm import RTFM, NonLocal1d
from vadkit.score import build_model

D = 32
CASES = [(name, stage) for name in list_models() for stage in model_class(name).stages]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def small(name: str, stage: int = 1, **kw):
    cls = model_class(name)
    declared = {f.name for f in fields(cls.Config)}
    loop = {"segments": 12, "stage": stage}
    args = {k: v for k, v in loop.items() if k in declared}
    return create_model(name, feature_dim=D, **args, **cls.tiny_config(), **kw)


def bag(model, b: int = 2, n: int = 2, t: int = 12, *, seed: int = 0, shift: float = 0.0):
    g = torch.Generator().manual_seed(seed)
    out = {"clip": torch.randn(b, n, t, D, generator=g) + shift}
    if PATCHES in model.inputs:
        out[PATCHES] = torch.randn(b, t, 49, D, generator=g) + shift
    return out


def n_params(m) -> int:
    return sum(p.numel() for p in m.parameters())


def test_registry_lists_the_three_papers():
    assert {"rtfm", "msip", "mgfn"} <= set(list_models())
    with pytest.raises(Exception, match="unknown model 'nope'.*mgfn, msip, rtfm"):
        create_model("nope")


@pytest.mark.parametrize(
    "name, stage, expected",
    [("rtfm", 1, 24_718_849), ("msip", 1, 24_718_849), ("mgfn", 1, 28_652_773)],
)
def test_parameter_counts_at_2048(name, stage, expected):
    model = create_model(name, feature_dim=2048)
    assert n_params(model) == expected


@pytest.mark.parametrize("name, stage", CASES)
def test_every_model_trains_and_grads_reach_exactly_the_trainable(name, stage):
    torch.manual_seed(0)
    model = small(name, stage)
    model.train()
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable
    opt = torch.optim.Adam(model.trainable_parameters(), lr=1e-3)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    for step in range(3):
        total, parts = model.loss(bag(model, seed=2 * step), bag(model, seed=2 * step + 1))
        assert torch.isfinite(total) and all(torch.isfinite(v) for v in parts.values())
        opt.zero_grad(set_to_none=True)
        total.backward()
        got = {n for n, p in model.named_parameters() if p.grad is not None}
        assert got == trainable
        opt.step()
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert changed <= trainable
    assert len(changed) > 0.8 * len(trainable)
    scores = model.scores(bag(model, b=1, t=7))
    assert scores.shape == (1, 7)


@pytest.mark.parametrize("name, stage", CASES)
def test_checkpoint_round_trip_reproduces_scores(name, stage, tmp_path):
    torch.manual_seed(1)
    model = small(name, stage)
    model.train()
    total, _ = model.loss(bag(model, seed=1), bag(model, seed=2))
    total.backward()  # BN statistics move away from their init
    model.eval()
    x = bag(model, b=1, t=9, seed=3)
    expected = model.scores(x)
    save_checkpoint(tmp_path / "m.safetensors", model, {"model": name, "model_args": model.config})
    state, meta = read_checkpoint(tmp_path / "m.safetensors")
    again = build_model(meta, state, source="test").eval()
    assert torch.equal(again.scores(x), expected)


def test_msip_stage2_starts_at_stage1_and_keeps_it_frozen():
    torch.manual_seed(0)
    stage1 = small("msip", 1)
    stage1.train()
    for s in range(2):  # non-trivial weights and BN statistics
        total, _ = stage1.loss(bag(stage1, seed=s), bag(stage1, seed=s + 10))
        total.backward()
        torch.optim.SGD(stage1.parameters(), lr=0.01).step()
    stage2 = small("msip", 2)
    stage2.load_stage1(stage1.state_dict())
    frozen = {
        k: v.clone()
        for k, v in stage2.state_dict().items()
        if k.startswith(("ctr.", "classifier."))
    }
    assert any("running_mean" in k for k in frozen)
    stage1.eval()
    stage2.eval()
    x = bag(stage2, b=1, t=10, seed=5)
    assert torch.equal(stage2.scores(x), stage1.scores(x))  # gate g starts at 0

    stage2.train()
    assert not stage2.ctr.conv_1[2].training  # BN of the frozen network stays in eval mode
    opt = torch.optim.Adam(stage2.trainable_parameters(), lr=1e-2)
    for s in range(4):
        total, _ = stage2.loss(bag(stage2, seed=20 + s), bag(stage2, seed=30 + s, shift=0.5))
        opt.zero_grad(set_to_none=True)
        total.backward()
        for n, p in stage2.named_parameters():
            assert (p.grad is not None) == n.startswith(("mpsr.", "gate")), n
        opt.step()
    after = stage2.state_dict()
    for k, v in frozen.items():
        assert torch.equal(after[k], v), k
    assert stage2.gate.item() != 0.0


def test_msip_stage1_checkpoint_is_checked():
    stage2 = small("msip", 2)
    with pytest.raises(ValueError, match="not a stage-1"):
        stage2.load_stage1({"ctr.conv_1.0.weight": torch.zeros(1)}, source="x")


def test_patch_graph_relations():
    grids = [[2, 3, 240, 280], [3, 5, 160, 168], [4, 7, 120, 120]]
    adj = patch_graph(grids)
    assert adj.shape == (3, 49, 49)
    assert torch.allclose(adj.sum(-1), torch.ones(3, 49))
    intra, fine_to_coarse, coarse_to_fine = adj > 0
    # corner patch of the 2×3 grid: itself + right + below
    assert intra[0].nonzero().flatten().tolist() == [0, 1, 3]
    # no intra edge crosses scales, no cross-scale edge skips a scale
    assert not intra[:6, 6:].any() and not fine_to_coarse[:6, 21:].any()
    # coarse (0,0) = rows 0-240, cols 0-280 overlaps fine 3×5 patches (0,0),(0,1),(1,0),(1,1)
    assert fine_to_coarse[0, 6:21].nonzero().flatten().tolist() == [0, 1, 5, 6]
    # overlap-weighted: (0,0)∩(0,0) is 160×168, (1,1)∩ is 80×112
    w = adj[1, 0, 6:21]
    assert w[0] / w[6] == pytest.approx((160 * 168) / (80 * 112))
    assert coarse_to_fine[6, :6].nonzero().flatten().tolist() == [0]


def test_non_local_block_starts_as_identity():
    block = NonLocal1d(8, 4)
    block.reset_bn()
    x = torch.randn(3, 8, 5)
    assert torch.equal(block(x), x)


def test_focus_shares_one_kernel_per_head():
    focus = Focus(4, heads=2, dim_head=2).eval()
    assert focus.rel_pos.weight.shape == (2, 1, 5)
    assert sum(p.numel() for p in focus.rel_pos.parameters()) == 2 * 5 + 2


def test_resample_matches_rtfm_process_feat():
    def process_feat(feat, length):  # RTFM utils.process_feat
        new = np.zeros((length, feat.shape[1]), dtype=np.float32)
        r = np.linspace(0, len(feat), length + 1, dtype=int)
        for i in range(length):
            if r[i] != r[i + 1]:
                new[i, :] = np.mean(feat[r[i] : r[i + 1], :], 0)
            else:
                new[i, :] = feat[r[i], :]
        return new

    rng = np.random.default_rng(0)
    for t in (1, 5, 31, 32, 33, 100):
        x = rng.standard_normal((t, 3, 4)).astype(np.float32)
        got = resample_segments(x, 32)
        assert got.shape == (32, 3, 4)
        for c in range(3):
            np.testing.assert_allclose(got[:, c], process_feat(x[:, c], 32), rtol=1e-5, atol=1e-6)


def test_losses_take_the_bags_explicitly():
    model = small("rtfm").train()
    with pytest.raises(ValueError, match="as many videos"):
        model.loss(bag(model, b=2), bag(model, b=3))


def test_msip_stage_must_exist():
    with pytest.raises(ValueError, match="stage must be 1 or 2"):
        MSIP(feature_dim=D, stage=3)


def test_sparsity_and_smoothness_variants():
    from vadkit.models.common import smoothness, sparsity

    s = torch.tensor([[0.0, 1.0, 1.0], [0.5, 0.0, 0.5]])
    # MSIP paper: per-video L1 sum and per-video smoothness, averaged over videos
    assert sparsity(s, "msip").item() == pytest.approx((2.0 + 1.0) / 2)
    assert smoothness(s, "msip").item() == pytest.approx((1.0 + 0.5) / 2)
    # RTFM's code: L2 norm of all scores; smoothness over the flattened batch (crosses videos)
    assert sparsity(s, "rtfm-code").item() == pytest.approx(2.5**0.5)
    assert smoothness(s, "rtfm-code").item() == pytest.approx(1.0 + 0.25 + 0.25 + 0.25)


# ---------------------------------------------------------------- the model contract


def test_list_models_and_the_package_do_not_import_torch():
    code = (
        "import sys, vadkit; from vadkit.models import list_models; "
        "names = list_models(); cfg = vadkit.TrainConfig; "
        "assert {'rtfm', 'msip', 'mgfn'} <= set(names), names; "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"hiden": 8}, r"model rtfm has no setting hiden; its settings are feature_dim, segments"),
        ({"hidden": "wide"}, r"model rtfm: hidden must be an integer, got 'wide'"),
        ({"hidden": 1.5}, r"hidden must be an integer"),
        ({"dropout": True}, r"dropout must be a number"),
        ({"hidden": 0}, r"hidden must be at least 1"),
        ({"loss": "l2"}, r"unknown loss variant 'l2'"),
    ],
)
def test_create_model_checks_its_arguments_against_the_config(kwargs, message):
    with pytest.raises(VadkitError, match=message):
        create_model("rtfm", feature_dim=D, **kwargs)


def test_a_type_error_inside_a_constructor_is_not_called_bad_arguments(monkeypatch):
    def broken(*args, **kwargs):
        raise TypeError("a bug in the model")

    monkeypatch.setattr("vadkit.models.rtfm.CTR", broken)
    with pytest.raises(TypeError, match="a bug in the model"):
        create_model("rtfm", feature_dim=D)


def test_configs_round_trip_through_their_checkpoint_form():
    for name in list_models():
        cls = model_class(name)
        model = create_model(name, feature_dim=D, **cls.tiny_config())
        again = create_model(name, **model.config)
        assert again.cfg == model.cfg and isinstance(model.cfg, cls.Config)


def test_models_state_their_inputs_and_minimum_snippets():
    assert RTFM.input_names() == ("clip",) and MSIP.input_names(2) == ("clip", PATCHES)
    assert create_model("rtfm", feature_dim=D, segments=32).min_snippets == 3
    assert (
        create_model(
            "mgfn", feature_dim=D, segments=12, **model_class("mgfn").tiny_config()
        ).min_snippets
        == 1
    )
    assert VadModel.min_snippets.fget(None) == 1  # the default: no top-k selection


def test_registering_a_taken_name_is_an_error():
    @dataclass(frozen=True)
    class Cfg(ModelConfig):
        pass

    class Impostor(VadModel):
        name = "rtfm"
        Config = Cfg

    with pytest.raises(ValueError, match="model name 'rtfm' is already registered"):
        register_model(Impostor)
    assert model_class("rtfm") is RTFM
    assert register_model(RTFM) is RTFM  # the same class again is harmless

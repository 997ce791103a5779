"""MSIP's ablations: a subset of the patch scales (only those patch files read) and MPSR without
its hierarchical graph convolution."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from test_train import make_dataset

from vadkit.data import Source, TrainingSet, load_source
from vadkit.errors import VadkitError
from vadkit.inference import source_scores
from vadkit.io.features import PATCH_GRIDS, read_meta, write_features
from vadkit.models import create_model
from vadkit.models.msip import MSIP, parse_scales
from vadkit.score import load_run
from vadkit.train import TrainConfig, train

pytestmark = pytest.mark.usefixtures("one_torch_thread")

D = 16
SUBSETS = [c for r in (1, 2, 3) for c in itertools.combinations((23, 35, 47), r)]
TINY = {"hidden": 16, "graph_dim": 8}


def n_params(m) -> int:
    return sum(p.numel() for p in m.parameters())


def stage2(**kw):
    return create_model("msip", feature_dim=D, stage=2, segments=12, **TINY, **kw)


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    """Features with all three grids, and a stage-1 MSIP run on them."""
    root = tmp_path_factory.mktemp("msip-full")
    ds = make_dataset(root, train=(3, 3), val=(2, 2), d=D, crops=1, t_range=(12, 16), patches=True)
    run = root / "s1"
    train(config(ds, run, stage=1, steps=2))
    return ds, run


def config(ds, out, **kw) -> TrainConfig:
    args = dict(
        model="msip", train=str(ds["train"]), features=str(ds["features"]), out=str(out),
        steps=2, batch_size=2, eval_every=2, device="cpu", segments=12, model_args=dict(TINY),
    )  # fmt: skip
    args.update(kw)
    return TrainConfig(**args)


def keep_only(feats, scales) -> None:
    """Delete the other grids' patch files and rewrite the metadata to list only these."""
    keep = {f"patch{s}" for s in scales}
    for meta_file in sorted(feats.glob("*.json")):
        meta = read_meta(feats, meta_file.stem)
        clip = np.load(feats / f"{meta.video}.npy")
        patches = {g: np.load(feats / f"{meta.video}_{g}.npy") for g in sorted(keep)}
        for g in set(PATCH_GRIDS) - keep:
            (feats / f"{meta.video}_{g}.npy").unlink()
        meta.patch_grids = {g: list(v) for g, v in PATCH_GRIDS.items() if g in keep}
        write_features(feats, meta, clip, patches)


@pytest.mark.parametrize("scales", SUBSETS, ids=lambda s: "+".join(map(str, s)))
def test_each_scale_subset_trains_and_scores_with_only_its_patch_files(
    full, tmp_path_factory, scales
):
    _, stage1 = full
    root = tmp_path_factory.mktemp("msip-sub")
    ds = make_dataset(root, train=(3, 3), val=(2, 2), d=D, crops=1, t_range=(12, 16), patches=True)
    keep_only(ds["features"], scales)
    names = {p.name.split("_patch")[-1] for p in ds["features"].glob("*_patch*.npy")}
    assert names == {f"{s}.npy" for s in scales}
    arg = ",".join(map(str, scales))  # `--model-arg scales=23,47` arrives as a string
    run = train(config(ds, root / "s2", stage=2, from_run=str(stage1),
                       model_args={**TINY, "scales": arg}))  # fmt: skip
    loaded = load_run(run.out, device="cpu")
    assert loaded.meta["model_args"]["scales"] == list(scales)
    rows = sum(PATCH_GRIDS[f"patch{s}"][0] * PATCH_GRIDS[f"patch{s}"][1] for s in scales)
    assert loaded.model.mpsr.nodes == rows
    src = Source("val00_nor", ds["features"] / "val00_nor.npy")
    s = source_scores(loaded.model, src, spec=loaded.spec, device=torch.device("cpu"))
    assert s.shape == (read_meta(ds["features"], "val00_nor").snippets,) and np.isfinite(s).all()


def test_a_subset_reads_only_its_files_even_when_the_metadata_lists_all(full, tmp_path):
    ds, _ = full
    feats = tmp_path / "f"
    feats.mkdir()
    for p in ds["features"].iterdir():
        if "_patch35" not in p.name:
            (feats / p.name).write_bytes(p.read_bytes())
    sources = [
        Source(p.stem, p, int("abn" in p.stem)) for p in sorted(feats.glob("train*_???.npy"))
    ]
    data = TrainingSet.load(sources, segments=12, patches=("patch47", "patch23"))
    assert data.patches.shape[2] == 6 + 28
    with pytest.raises(VadkitError, match="_patch35.npy: feature file not found"):
        load_source(sources[0], patches=True)  # every grid the metadata lists
    with pytest.raises(VadkitError, match="no patch99 patch features"):
        load_source(sources[0], patches=("patch99",))
    # the same model scores the same whether it is given its scales or every grid
    model = stage2(scales=[23, 47]).eval()
    clip, sub = load_source(sources[0], patches=("patch23", "patch47"))
    _, every = load_source(Source("x", ds["features"] / sources[0].path.name), patches=True)
    assert every.shape[1] == 49
    c = torch.from_numpy(np.array(clip)).transpose(0, 1)[None]
    a = model.scores({"clip": c, "patches": torch.from_numpy(np.array(sub))[None]})
    b = model.scores({"clip": c, "patches": torch.from_numpy(np.array(every))[None]})
    assert torch.equal(a, b)
    with pytest.raises(ValueError, match="reads 34 patches per snippet"):
        model.scores({"clip": c, "patches": torch.zeros(1, c.shape[2], 15, D)})


@pytest.mark.parametrize(
    "value, expected",
    [([23, 47], (23, 47)), ("23,47", (23, 47)), ("47,23", (23, 47)), (35, (35,)),
     ("patch23+patch35", (23, 35)), ((47, 47), (47,))],
)  # fmt: skip
def test_scales_forms(value, expected):
    assert stage2(scales=value).cfg.scales == expected


@pytest.mark.parametrize(
    "value, message",
    [("", "is not a patch scale"), ([], "at least one"), ("24", "scales 24 are not among"),
     ("x,23", "'x' is not a patch scale"), (True, "wrong type")],
)  # fmt: skip
def test_bad_scales_are_one_error(value, message):
    with pytest.raises(VadkitError, match=message):
        stage2(scales=value)


def test_patch_files_name_what_a_run_reads():
    assert MSIP.patch_files(1, {"scales": "23"}) == ()
    assert MSIP.patch_files(2, {}) == ("patch23", "patch35", "patch47")
    assert MSIP.patch_files(2, {"scales": "47,23"}) == ("patch47", "patch23")
    assert MSIP.patch_files(2, {"scales": "x"}) == ("patch23", "patch35", "patch47")
    assert parse_scales([23]) == (23,)


def test_fewer_scales_and_no_hgc_have_fewer_parameters_and_stage1_is_unchanged():
    base = stage2()
    assert n_params(stage2(scales="23,47")) < n_params(base)
    flat = stage2(hgc=False)
    assert len(flat.mpsr.layers) == 0 and not hasattr(flat.mpsr, "adj")
    assert n_params(flat) < n_params(base)
    s1 = create_model("msip", feature_dim=D, stage=1, **TINY)
    for kw in ({"scales": "23"}, {"hgc": False}):
        other = create_model("msip", feature_dim=D, stage=1, **TINY, **kw)
        assert n_params(other) == n_params(s1) and other.inputs == ("clip",)


def test_no_hgc_trains():
    torch.manual_seed(0)
    model = stage2(hgc=False).train()
    opt = torch.optim.Adam(model.trainable_parameters(), lr=1e-2)
    before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    g = torch.Generator().manual_seed(0)
    for _ in range(3):
        bags = [
            {"clip": torch.randn(2, 1, 12, D, generator=g) + s,
             "patches": torch.randn(2, 12, 49, D, generator=g) + s}
            for s in (0.0, 0.5)
        ]  # fmt: skip
        total, _ = model.loss(*bags)
        assert torch.isfinite(total)
        opt.zero_grad(set_to_none=True)
        total.backward()
        opt.step()
    changed = [
        n for n, p in model.named_parameters() if p.requires_grad and not torch.equal(p, before[n])
    ]
    assert set(changed) == set(before)


def _benchmark():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "msip_ablation.py"
    spec = importlib.util.spec_from_file_location("msip_ablation", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_ablation_benchmark_covers_the_seven_subsets_and_prints_the_tables(tmp_path, capsys):
    bench = _benchmark()
    names = [n for n, _ in bench.VARIANTS]
    assert len(set(names)) == 8 and names[-1] == "no-hgc"
    assert sorted(len(s) for s in bench.SUBSETS) == [1, 1, 1, 2, 2, 2, 3]
    for _, args in bench.VARIANTS:  # every variant's model args build a model
        parsed = {k: {"false": False}.get(v, v) for k, v in args.items()}
        assert stage2(**parsed).mpsr.nodes > 0
    a = bench.parse_args([str(tmp_path), "--seeds", "0,1"])
    assert a.seeds == [0, 1] and a.steps == 200 and a.graph_dim == 128 and a.segments == 8
    with pytest.raises(SystemExit, match="not a quickstart output"):
        bench.prepare(a)
    runs = [{"roc_auc": 0.9, "average_precision": 0.5, "seconds": 3.0},
            {"roc_auc": 0.8, "average_precision": 0.7, "seconds": 5.0}]  # fmt: skip
    results = {n: bench.summarise(runs) for n in [*names, "rtfm"]}
    bench.print_tables(results, a)
    text = capsys.readouterr().out
    assert "| 2×3 | 3×5 | 4×7 | ROC AUC | AP | s |" in text
    assert "|  ✓  |     |  ✓  | 85.0 ± 7.1 | 60.0 ± 14.1 | 4 |" in text
    assert "+ MPSR without HGC" in text and text.count("\n|") == 2 + 7 + 2 + 3

"""`vadkit score --evidence`: per-snippet patch evidence, its file contract and its pictures."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from test_msip_ablation import D
from test_msip_ablation import config as msip_config
from test_train import make_dataset
from typer.testing import CliRunner

from vadkit.cli import app
from vadkit.data import Source
from vadkit.errors import VadkitError
from vadkit.evidence import (
    METHODS,
    compute_evidence,
    is_evidence_file,
    overlay,
    patch_regions,
    pixel_boxes,
    read_evidence,
    write_heatmap_png,
)
from vadkit.inference import source_bag
from vadkit.io.features import PATCH_GRIDS, read_meta, write_features
from vadkit.io.scores import read_scores
from vadkit.models.common import CLIP, PATCHES
from vadkit.score import load_run
from vadkit.train import train

runner = CliRunner()
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Patch features, a stage-1 MSIP run (reads no patches) and a stage-2 run on it."""
    root = tmp_path_factory.mktemp("evidence")
    ds = make_dataset(root, train=(3, 3), val=(2, 2), d=D, crops=1, t_range=(5, 9), patches=True)
    with_frame_size(ds["features"])
    stage1 = train(msip_config(ds, root / "s1", stage=1)).out
    stage2 = train(msip_config(ds, root / "s2", stage=2, from_run=str(stage1))).out
    return ds, stage1, stage2


def with_frame_size(feats: Path) -> None:
    """Record MSIP's 480x840 patch frame (and every grid) as `vadkit extract` does."""
    for meta_file in sorted(feats.glob("*.json")):
        meta = read_meta(feats, meta_file.stem)
        clip = np.load(feats / f"{meta.video}.npy")
        patches = {g: np.load(feats / f"{meta.video}_{g}.npy") for g in PATCH_GRIDS}
        meta.patch_grids = {g: list(v) for g, v in PATCH_GRIDS.items()}
        meta.patch_frame_size = [480, 840]
        write_features(feats, meta, clip, patches)


def score(run, ds, out, *extra):
    return runner.invoke(app, ["score", str(run), str(ds["val"]), "--features",
                               str(ds["features"]), "-o", str(out), "--device", "cpu", "-q",
                               "--json", *extra])  # fmt: skip


def test_score_evidence_writes_the_contract(runs, tmp_path):
    ds, _, stage2 = runs
    out = tmp_path / "scores"
    r = score(stage2, ds, out, "--evidence")
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout)
    videos = [row["video"] for row in summary["videos"]]
    assert len(videos) == 4 and all(
        row["evidence"].endswith("_evidence.npy") for row in summary["videos"]
    )
    scores = read_scores(out)  # the evidence files are not score files
    assert sorted(scores) == sorted(videos)
    loaded = load_run(stage2, device="cpu")
    for video in videos:
        meta = json.loads((out / f"{video}.json").read_text())
        rec = meta["extra"]["evidence"]
        assert rec == {
            "file": f"{video}_evidence.npy",
            "method": "video-mean",
            "units": "logit",
            "patch_grids": {g: list(v) for g, v in PATCH_GRIDS.items()},
            "patch_frame_size": [480, 840],
            "snippet_length": 16,
        }
        raw = np.load(out / rec["file"])
        assert raw.dtype == np.float32 and raw.shape == (meta["snippets"], 49)
        ev, regions = read_evidence(out, video)
        assert regions.shape == (49, 4)
        np.testing.assert_array_equal(ev, raw)
        # the values are the score drops, computed independently one patch at a time
        src = Source(video, ds["features"] / f"{video}.npy")
        bag = source_bag(loaded.model, src, spec=loaded.spec, device=torch.device("cpu"))
        np.testing.assert_allclose(ev, serial_drops(loaded.model, bag, "video-mean"), atol=1e-4)
    r = runner.invoke(app, ["eval", str(out), "-a", str(ds["annotations"]), "--json"])
    assert r.exit_code == 0, r.output


def serial_drops(model, bag, method, units="logit"):
    """The replacement methods one copy at a time (what the batched code must equal), in the
    scores' log-odds (float64: these tiny runs do not saturate) or in the scores."""
    x = bag[PATCHES]
    mean = {"patch-mean": x.mean(1, keepdim=True), "video-mean": x.mean((1, 2), keepdim=True),
            "snippet-mean": x.mean(2, keepdim=True), "zero": torch.zeros_like(x)}[method]  # fmt: skip

    def value(b):
        s = model.scores(b)[0].double()
        return torch.logit(s) if units == "logit" else s

    with torch.no_grad():
        base = value(bag)
        cols = []
        for p in range(x.shape[2]):
            y = x.clone()
            y[:, :, p] = mean.expand_as(x)[:, :, p]
            cols.append(base - value({**bag, PATCHES: y}))
    return torch.stack(cols, 1).numpy()


@pytest.mark.parametrize("method", ["patch-mean", "video-mean", "snippet-mean", "zero"])
def test_batched_copies_equal_the_serial_ones_at_any_chunk_size(runs, method):
    ds, _, stage2 = runs
    loaded = load_run(stage2, device="cpu")
    src = Source("val03_abn", ds["features"] / "val03_abn.npy")
    bag = source_bag(loaded.model, src, spec=loaded.spec, device=torch.device("cpu"))
    want = serial_drops(loaded.model, bag, method)
    for batch_bytes in (1, 10**5, 10**9):  # 49 passes, a few, one
        got, units = compute_evidence(loaded.model, bag, method=method, batch_bytes=batch_bytes)
        np.testing.assert_allclose(got, want, atol=1e-4)
        assert units == "logit"
    assert np.abs(want).max() > 0
    got, units = compute_evidence(loaded.model, bag, method=method, units="score")
    np.testing.assert_allclose(got, serial_drops(loaded.model, bag, method, "score"), atol=1e-5)
    assert units == "score"


class OnePatch(torch.nn.Module):
    """A model whose snippet score is feature 0 of patch 3 (plus twice that of patch 40)."""

    inputs = (CLIP, PATCHES)

    def scores(self, bag):
        x = bag[PATCHES]
        return x[..., 3, 0] + 2 * x[..., 40, 0] + 0 * bag[CLIP].sum((1, 3))


class Saturated(torch.nn.Module):
    """Scores `sigmoid(40 + feature 0 of patch 3)`: 1.0 in float32 whatever the patches."""

    inputs = (CLIP, PATCHES)

    def __init__(self):
        super().__init__()
        self.out = torch.nn.Sigmoid()

    def scores(self, bag):
        return self.out(40 + bag[PATCHES][..., 3, 0] + 0 * bag[CLIP].sum((1, 3)))


def test_log_odds_see_what_a_saturated_score_hides():
    rng = np.random.default_rng(1)
    x = torch.from_numpy(rng.standard_normal((1, 5, 49, 4)).astype(np.float32))
    bag = {CLIP: torch.zeros(1, 1, 5, 4), PATCHES: x}
    flat, units = compute_evidence(Saturated(), bag, units="score")
    assert units == "score" and np.abs(flat).max() == 0  # every drop rounds away
    ev, units = compute_evidence(Saturated(), bag)
    assert units == "logit"
    want = (x[0, :, 3, 0] - x[0, :, :, 0].mean()).numpy()
    np.testing.assert_allclose(ev[:, 3], want, atol=1e-5)
    assert np.abs(np.delete(ev, 3, axis=1)).max() == 0
    assert (ev.argmax(1) == 3).sum() == (want > 0).sum()
    grad, units = compute_evidence(Saturated(), bag, method="grad-input")
    assert units == "logit"
    np.testing.assert_allclose(grad[:, 3], x[0, :, 3, 0].numpy(), atol=1e-5)
    _, units = compute_evidence(OnePatch(), bag)  # no sigmoid: the scores themselves
    assert units == "score"


def test_evidence_lands_on_the_patch_that_makes_the_score():
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.standard_normal((1, 6, 49, 4)).astype(np.float32))
    bag = {CLIP: torch.zeros(1, 1, 6, 4), PATCHES: x}
    ev = compute_evidence(OnePatch(), bag, method="patch-mean")[0]
    np.testing.assert_allclose(ev[:, 3], (x[0, :, 3, 0] - x[0, :, 3, 0].mean()).numpy(), atol=1e-6)
    np.testing.assert_allclose(
        ev[:, 40], 2 * (x[0, :, 40, 0] - x[0, :, 40, 0].mean()).numpy(), atol=1e-6
    )
    mean = compute_evidence(OnePatch(), bag, method="video-mean")[0]
    np.testing.assert_allclose(
        mean[:, 3], (x[0, :, 3, 0] - x[0, :, :, 0].mean()).numpy(), atol=1e-6
    )
    others = np.delete(ev, [3, 40], axis=1)
    assert np.abs(others).max() == 0
    grad = compute_evidence(OnePatch(), bag, method="grad-input")[0]
    np.testing.assert_allclose(grad[:, 40], 2 * x[0, :, 40, 0].numpy(), atol=1e-6)
    assert np.abs(np.delete(grad, [3, 40], axis=1)).max() == 0
    with pytest.raises(VadkitError, match="unknown evidence method"):
        compute_evidence(OnePatch(), bag, method="magic")[0]
    assert set(METHODS) >= {"patch-mean", "video-mean", "grad-input"}


def test_evidence_for_a_model_without_patches_is_one_error_line(runs, tmp_path):
    ds, stage1, _ = runs
    r = score(stage1, ds, tmp_path / "s", "--evidence")
    assert r.exit_code == 1
    err = getattr(r, "stderr", "") or r.output
    assert "Error: --evidence needs a run whose model reads MSIP's patch features" in err
    assert "msip" in err and "Traceback" not in err
    assert not (tmp_path / "s").exists() or not list((tmp_path / "s").glob("*.npy"))


def test_grad_input_method_and_rescoring_without_evidence_drops_it(runs, tmp_path):
    ds, _, stage2 = runs
    out = tmp_path / "scores"
    r = score(stage2, ds, out, "--evidence", "--evidence-method", "grad-input")
    assert r.exit_code == 0, r.output
    ev, _ = read_evidence(out, "val00_nor")
    assert ev.shape[1] == 49 and np.isfinite(ev).all()
    assert (
        json.loads((out / "val00_nor.json").read_text())["extra"]["evidence"]["method"]
        == "grad-input"
    )
    r = score(stage2, ds, out)
    assert r.exit_code == 0, r.output
    assert not list(out.glob("*_evidence.npy"))
    assert read_evidence(out, "val00_nor") is None


def write_case(d: Path, video="v", t=3, arr=None, grids=None):
    d.mkdir(parents=True, exist_ok=True)
    np.save(d / f"{video}.npy", np.zeros(16 * t, np.float32))
    rec = {"file": f"{video}_evidence.npy", "method": "patch-mean",
           "patch_grids": grids or {g: list(v) for g, v in PATCH_GRIDS.items()},
           "patch_frame_size": [480, 840], "snippet_length": 16}  # fmt: skip
    meta = {"video": video, "frame_count": 16 * t, "snippet_length": 16, "snippets": t,
            "format": "vadkit.scores", "extra": {"evidence": rec}}  # fmt: skip
    (d / f"{video}.json").write_text(json.dumps(meta))
    np.save(d / rec["file"], np.zeros((t, 49), np.float32) if arr is None else arr)
    return d


def test_read_evidence_checks_shapes_and_files(tmp_path):
    d = write_case(tmp_path / "ok")
    ev, regions = read_evidence(d, "v")
    assert ev.shape == (3, 49) and np.allclose(regions, patch_regions(PATCH_GRIDS, (480, 840)))
    assert is_evidence_file(d / "v_evidence.npy") and not is_evidence_file(d / "v.npy")
    assert list(read_scores(d)) == ["v"]
    assert read_evidence(d, "nobody") is None
    bad = write_case(tmp_path / "short", arr=np.zeros((2, 49), np.float32))
    with pytest.raises(
        VadkitError, match=r"shape \(2, 49\) but the score metadata expects \(3, 49\)"
    ):
        read_evidence(bad, "v")
    grids = {"patch23": [2, 3, 240, 280]}  # 6 patches recorded, 49 written
    with pytest.raises(VadkitError, match=r"expects \(3, 6\)"):
        read_evidence(write_case(tmp_path / "grids", grids=grids), "v")
    gone = write_case(tmp_path / "gone")
    (gone / "v_evidence.npy").unlink()
    with pytest.raises(VadkitError, match="missing, but v.json records evidence"):
        read_evidence(gone, "v")
    nan = write_case(tmp_path / "nan", arr=np.full((3, 49), np.nan, np.float32))
    with pytest.raises(VadkitError, match="NaN"):
        read_evidence(nan, "v")
    plain = tmp_path / "plain"
    plain.mkdir()
    np.save(plain / "v.npy", np.zeros(16, np.float32))
    (plain / "v.json").write_text(json.dumps({"tool": "other"}))
    assert read_evidence(plain, "v") is None


def test_a_video_named_like_an_evidence_file_is_still_scores(tmp_path):
    d = write_case(tmp_path / "d")
    np.save(d / "x_evidence.npy", np.ones(16, np.float32))  # no x.npy: a video's scores
    np.save(d / "v_evidence2.npy", np.ones(16, np.float32))
    assert sorted(read_scores(d)) == ["v", "v_evidence2", "x_evidence"]


def test_overlay_marks_the_top_patch(tmp_path):
    regions = patch_regions(PATCH_GRIDS, (480, 840))
    frame = np.full((48, 84, 3), 100, np.uint8)
    ev = np.zeros(49, np.float32)
    ev[48] = 1.0  # bottom-right patch of the 4x7 grid
    img = overlay(frame, ev, regions)
    assert img.shape == frame.shape and img.dtype == np.uint8
    assert (img[:12, :12] == 100).all()  # no evidence: the frame as it was
    assert (img[-1, -1] == 255).all()  # the outline of the top patch
    assert not (img[40, 80] == 100).all()  # coloured inside it
    p = write_heatmap_png(tmp_path / "h.png", frame, ev, regions)
    import cv2

    assert cv2.imread(str(p)).shape == (48, 84, 3)


def load_benchmark():
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "evidence_hit.py"
    spec = importlib.util.spec_from_file_location("evidence_hit", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_benchmark_hit_and_chance_definitions():
    bench = load_benchmark()
    boxes = {20: (0, 0, 10, 10), 21: (90, 70, 100, 80)}  # two frames of snippet 1
    masks = bench.event_masks(boxes, [[18, 40]], frames=64, snippets=4, w=100, h=80)
    assert masks[0] is None and masks[3] is None  # outside the interval
    assert masks[2] is None  # inside it, but no box: nothing on screen
    assert masks[1].sum() == 200  # the union of the frame boxes
    regions = patch_regions({"patch23": [2, 3, 40, 40]}, (80, 120))
    px = pixel_boxes(regions, 100, 80)
    hit = bench.overlaps(px, masks[1])
    assert hit.tolist() == [True, False, False, False, False, True]
    tally = bench.Tally([("patch23", slice(0, 6))])
    areas = ((px[:, 2] - px[:, 0]) * (px[:, 3] - px[:, 1])).astype(float)
    tally.add(np.array([0, 0, 0, 0, 0, 1.0]), hit, areas)  # top patch 5: a hit
    tally.add(np.array([0, 1.0, 0, 0, 0, 0]), hit, areas)  # top patch 1: a miss
    row = tally.row()
    assert row["hit"] == 0.5 and row["chance"] == pytest.approx(2 / 6)
    assert row["area"] == pytest.approx(areas[[0, 5]].sum() / areas.sum())
    assert bench.auc(np.array([3.0, 1, 2]), np.array([True, False, False])) == 1.0

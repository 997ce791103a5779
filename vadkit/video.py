"""Video decoding, snippets, clip crops and MSIP patches (SPEC §2.1-2.2).

Frames are decoded with OpenCV one at a time and flow through generators, so memory is bounded
by one snippet whatever the video's length. Frames are RGB uint8 `(h, w, 3)`; a snippet is
`(SNIPPET_LENGTH, h, w, 3)`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from vadkit.errors import VadkitError
from vadkit.io.features import PATCH_FRAME_SIZE, PATCH_GRIDS, SNIPPET_LENGTH

VIDEO_EXTENSIONS = frozenset(
    {".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".3gp"}
)
MIN_PATCH_SIZE = 32  # below this the Mixed_5c map of I3D would be padding only
# A decode that stops this far short of the container's frame count is a truncated file;
# containers often over- or under-state the count by a frame or two.
TRUNCATION_TOLERANCE = 0.05


@dataclass
class VideoInfo:
    path: Path
    fps: float
    frame_count_hint: int  # the container's claim; the decoded count is the truth
    width: int
    height: int


def probe(path: str | os.PathLike) -> VideoInfo:
    p = Path(path)
    if not p.is_file():
        raise VadkitError(f"{p}: video not found")
    cap = cv2.VideoCapture(str(p))
    try:
        if not cap.isOpened():
            raise VadkitError(f"{p}: OpenCV cannot open this video (corrupt or unknown codec)")
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        info = VideoInfo(
            p,
            fps if math.isfinite(fps) and fps > 0 else 0.0,
            max(int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0), 0),
            int(cap.get(cv2.CAP_PROP_FRAME_WIDTH) or 0),
            int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0),
        )
    finally:
        cap.release()
    if info.fps <= 0:
        raise VadkitError(f"{p}: the video reports no frame rate; it is corrupt or not a video")
    return info


class FrameReader:
    """Iterate a video's frames as RGB uint8; `count` holds how many were decoded so far.

    After the iteration ends, `check()` raises VadkitError for an empty or truncated video.
    """

    def __init__(self, path: str | os.PathLike):
        self.info = probe(path)
        self.count = 0

    def __iter__(self) -> Iterator[np.ndarray]:
        cap = cv2.VideoCapture(str(self.info.path))
        try:
            while True:
                ok, bgr = cap.read()
                if not ok or bgr is None:
                    break
                self.count += 1
                yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        finally:
            cap.release()

    def check(self) -> None:
        p, hint = self.info.path, self.info.frame_count_hint
        if self.count == 0:
            raise VadkitError(f"{p}: no frame could be decoded (empty or corrupt video)")
        if hint > 0 and self.count < hint * (1 - TRUNCATION_TOLERANCE) - 2:
            raise VadkitError(
                f"{p}: decoded {self.count} frames but the file declares {hint}; the video is "
                "truncated or damaged (re-encode it, e.g. with ffmpeg, to extract what is left)"
            )


def resample(frames: Iterable[np.ndarray], fps_in: float, fps_out: float) -> Iterator[np.ndarray]:
    """Nearest-earlier-frame resampling: output frame j shows source frame floor(j·in/out).

    Streams: frames are dropped (fps_out < fps_in) or repeated (fps_out > fps_in) on the fly.
    """
    step = fps_in / fps_out
    j = 0
    for i, frame in enumerate(frames):
        while math.floor(j * step + 1e-9) <= i:
            yield frame
            j += 1


def snippet_count(frames: int, *, length: int = SNIPPET_LENGTH, drop_last: bool = False) -> int:
    return frames // length if drop_last else -(-frames // length)


def iter_snippets(
    frames: Iterable[np.ndarray], *, length: int = SNIPPET_LENGTH, drop_last: bool = False
) -> Iterator[np.ndarray]:
    """Non-overlapping snippets `(length, h, w, 3)`.

    The last partial snippet is padded by looping its own frames from its start (RTFM's
    convention), so f frames give ceil(f / length) snippets; with `drop_last` it is dropped.
    """
    buf: list[np.ndarray] = []
    for frame in frames:
        buf.append(frame)
        if len(buf) == length:
            yield np.stack(buf)
            buf = []
    if buf and not drop_last:
        yield np.stack([buf[i % len(buf)] for i in range(length)])


# --------------------------------------------------------------------------------------------
# Clip crops


def resize_short_side_size(h: int, w: int, short: int) -> tuple[int, int]:
    """torchvision `Resize(short)`: the short side becomes `short`, the long one int(short·l/s)."""
    if h <= w:
        return short, int(short * w / h)
    return int(short * h / w), short


def crop_boxes(h: int, w: int, size: int, crops: int) -> list[tuple[int, int, bool]]:
    """(top, left, flipped) of each crop, in torchvision's TenCrop order.

    FiveCrop: top-left, top-right, bottom-left, bottom-right, centre. TenCrop: those five, then
    the same five boxes cut from the horizontally flipped frame (flipped top-left = the mirror of
    the original top-right). `crops=1` is the centre crop.
    """
    if size > h or size > w:
        raise VadkitError(f"crop size {size} is larger than the resized frame {h}×{w}")
    ct, cl = int(round((h - size) / 2.0)), int(round((w - size) / 2.0))
    five = [(0, 0), (0, w - size), (h - size, 0), (h - size, w - size), (ct, cl)]
    if crops == 1:
        return [(ct, cl, False)]
    if crops == 5:
        return [(t, left, False) for t, left in five]
    if crops == 10:
        return [(t, left, False) for t, left in five] + [(t, left, True) for t, left in five]
    raise VadkitError(f"--crops must be 10, 5 or 1, got {crops}")


def clip_crops(snippet: np.ndarray, *, short_side: int, crop_size: int, crops: int) -> np.ndarray:
    """(T, h, w, 3) -> (crops, T, crop_size, crop_size, 3) uint8."""
    t, h, w, _ = snippet.shape
    nh, nw = resize_short_side_size(h, w, short_side)
    resized = np.stack([cv2.resize(f, (nw, nh), interpolation=cv2.INTER_LINEAR) for f in snippet])
    out = np.empty((crops, t, crop_size, crop_size, 3), np.uint8)
    flipped = None
    for i, (top, left, flip) in enumerate(crop_boxes(nh, nw, crop_size, crops)):
        if flip:
            flipped = resized[:, :, ::-1] if flipped is None else flipped
            out[i] = flipped[:, top : top + crop_size, left : left + crop_size]
        else:
            out[i] = resized[:, top : top + crop_size, left : left + crop_size]
    return out


# --------------------------------------------------------------------------------------------
# MSIP patches


def patch_layout(
    frame_size: tuple[int, int] = PATCH_FRAME_SIZE,
) -> dict[str, tuple[int, int, int, int]]:
    """grid name -> (rows, cols, patch h, patch w) on a frame of `frame_size` (h, w).

    At the paper's 480×840 this is exactly `PATCH_GRIDS`; other frame sizes keep the grids and
    scale the patches (floor division; a remainder of a few pixels at the bottom/right is unused).
    """
    fh, fw = frame_size
    out = {}
    for name, (rows, cols, _, _) in PATCH_GRIDS.items():
        ph, pw = fh // rows, fw // cols
        if min(ph, pw) < MIN_PATCH_SIZE:
            raise VadkitError(
                f"patch frame {fh}x{fw} gives {ph}x{pw} patches on the {rows}x{cols} grid; "
                f"patches must be at least {MIN_PATCH_SIZE} px (use a larger --patch-frame)"
            )
        out[name] = (rows, cols, ph, pw)
    return out


def patch_boxes(layout: tuple[int, int, int, int]) -> list[tuple[int, int]]:
    """(top, left) of each patch of a grid, raster order (row-major)."""
    rows, cols, ph, pw = layout
    return [(r * ph, c * pw) for r in range(rows) for c in range(cols)]


def frame_patches(
    snippet: np.ndarray, layouts: dict[str, tuple[int, int, int, int]], frame_size: tuple[int, int]
) -> dict[str, np.ndarray]:
    """(T, h, w, 3) -> {grid: (rows·cols, T, ph, pw, 3)} cut from the frame resized to frame_size."""
    fh, fw = frame_size
    resized = np.stack([cv2.resize(f, (fw, fh), interpolation=cv2.INTER_LINEAR) for f in snippet])
    out = {}
    for name, layout in layouts.items():
        _, _, ph, pw = layout
        out[name] = np.stack(
            [resized[:, top : top + ph, left : left + pw] for top, left in patch_boxes(layout)]
        )
    return out


# --------------------------------------------------------------------------------------------
# Inputs


def find_videos(inputs: Iterable[str | os.PathLike]) -> list[Path]:
    """Expand files, directories (recursive, by extension), .txt lists and CSV manifests."""
    out: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            out += sorted(
                q for q in p.rglob("*") if q.is_file() and q.suffix.lower() in VIDEO_EXTENSIONS
            )
        elif p.suffix.lower() in (".txt", ".list") and p.is_file():
            for line in p.read_text().splitlines():
                line = line.strip()
                if line and not line.startswith("#"):
                    q = Path(line)
                    out.append(q if q.is_absolute() else p.parent / q)
        elif p.suffix.lower() == ".csv" and p.is_file():
            out += _csv_paths(p)
        elif p.exists() or p.suffix.lower() in VIDEO_EXTENSIONS:
            out.append(p)  # a missing video is reported when it is read
        else:
            raise VadkitError(
                f"{p}: not found; expected a video file, a directory, a .txt list or a CSV "
                "manifest with a path column"
            )
    seen: set[Path] = set()
    unique = []
    for q in out:
        key = q.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(q)
    return unique


def _csv_paths(p: Path) -> list[Path]:
    import csv

    with open(p, newline="") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None or "path" not in reader.fieldnames:
            raise VadkitError(
                f"{p}: CSV manifest has no 'path' column (columns: {reader.fieldnames}); "
                "add one with each video's path relative to the CSV"
            )
        rows = [row["path"].strip() for row in reader if (row.get("path") or "").strip()]
    return [Path(r) if Path(r).is_absolute() else p.parent / r for r in rows]

"""Video decoding, snippets, clip crops and MSIP patches (see docs/DESIGN.md, Features).

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
from typing import TypeVar

import numpy as np

from vadkit.errors import VadkitError
from vadkit.io.atomic import TMP_PREFIX
from vadkit.io.features import PATCH_FRAME_SIZE, PATCH_GRIDS, SNIPPET_LENGTH
from vadkit.opencv import cv2

VIDEO_EXTENSIONS = frozenset(
    {".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".3gp"}
)
CROP_CHOICES = (10, 5, 1)  # TenCrop, FiveCrop, centre crop
T = TypeVar("T")
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


def _check_readable(p: Path) -> None:
    """A video we may not read is not a corrupt one: say which it is before OpenCV guesses."""
    if not p.is_file():
        raise VadkitError(f"{p}: video not found")
    try:
        with open(p, "rb") as f:
            f.read(1)
    except OSError as e:
        reason = (e.strerror or type(e).__name__).lower()
        raise VadkitError(f"{p}: cannot read the video ({reason})") from None


def probe(path: str | os.PathLike) -> VideoInfo:
    p = Path(path)
    _check_readable(p)
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
    for group, _ in snippet_groups(frames, length=length, drop_last=drop_last):
        yield np.stack(group)


def snippet_groups(
    items: Iterable[T], *, length: int = SNIPPET_LENGTH, drop_last: bool = False
) -> Iterator[tuple[list[T], int]]:
    """`iter_snippets` over any per-frame items: (the `length` items of a snippet, how many of
    them are real), the last partial group padded by looping its own items from its start."""
    buf: list[T] = []
    for item in items:
        buf.append(item)
        if len(buf) == length:
            yield buf, length
            buf = []
    if buf and not drop_last:
        yield [buf[i % len(buf)] for i in range(length)], len(buf)


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
    check_crops(crops)
    if size > h or size > w:
        raise VadkitError(f"crop size {size} is larger than the resized frame {h}×{w}")
    ct, cl = int(round((h - size) / 2.0)), int(round((w - size) / 2.0))
    five = [(0, 0, False), (0, w - size, False), (h - size, 0, False)]
    five += [(h - size, w - size, False), (ct, cl, False)]
    if crops == 1:
        return [(ct, cl, False)]
    return five if crops == 5 else five + [(t, left, True) for t, left, _ in five]


def check_crops(crops: int) -> None:
    """The one check of a crop count: 10 (TenCrop), 5 (FiveCrop) or 1 (centre crop)."""
    if crops not in CROP_CHOICES:
        *rest, last = (str(c) for c in CROP_CHOICES)
        raise VadkitError(
            f"crops must be {', '.join(rest)} or {last} (TenCrop, FiveCrop, centre), got {crops}"
        )


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
# Writing


# the codec OpenCV's wheels can encode, by the output's extension (no H.264 in them)
WRITER_FOURCCS = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG"}


def open_writer(
    tmp: str | os.PathLike, out: str | os.PathLike, fps: float, size: tuple[int, int]
) -> cv2.VideoWriter:
    """An OpenCV writer of `tmp`, the temporary file of the video `out` (whose extension, one of
    `WRITER_FOURCCS`, picks the codec; `tmp` must end the same way, OpenCV picks the container
    from it), `size` = (width, height); one clear error when OpenCV cannot open it."""
    fourcc = WRITER_FOURCCS[Path(out).suffix.lower()]
    writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*fourcc), fps, size)
    if not writer.isOpened():
        raise VadkitError(
            f"{out}: OpenCV cannot open a {fourcc} video writer; check that "
            "opencv-python-headless is installed with FFmpeg support"
        )
    return writer


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
                f"patch frame {fw}x{fh} (WxH) gives {pw}x{ph} patches on the {rows}x{cols} "
                f"grid; patches must be at least {MIN_PATCH_SIZE} px (use a larger "
                "--patch-frame-size)"
            )
        out[name] = (rows, cols, ph, pw)
    return out


def patch_boxes(layout: tuple[int, int, int, int]) -> list[tuple[int, int]]:
    """(top, left) of each patch of a grid, raster order (row-major)."""
    rows, cols, ph, pw = layout
    return [(r * ph, c * pw) for r in range(rows) for c in range(cols)]


def resize_frames(snippet: np.ndarray, frame_size: tuple[int, int]) -> np.ndarray:
    """(T, h, w, 3) -> (T, fh, fw, 3): every frame resized (bilinear) to frame_size (h, w)."""
    fh, fw = frame_size
    return np.stack([cv2.resize(f, (fw, fh), interpolation=cv2.INTER_LINEAR) for f in snippet])


def frame_patches(
    snippet: np.ndarray, layouts: dict[str, tuple[int, int, int, int]], frame_size: tuple[int, int]
) -> dict[str, np.ndarray]:
    """(T, h, w, 3) -> {grid: (rows·cols, T, ph, pw, 3)} cut from the frame resized to frame_size."""
    resized = resize_frames(snippet, frame_size)
    out = {}
    for name, layout in layouts.items():
        _, _, ph, pw = layout
        out[name] = np.stack(
            [resized[:, top : top + ph, left : left + pw] for top, left in patch_boxes(layout)]
        )
    return out


# --------------------------------------------------------------------------------------------
# Inputs


LIST_SUFFIXES = (".txt", ".list")


def find_videos(inputs: Iterable[str | os.PathLike]) -> list[Path]:
    """Expand files, directories (recursive, by extension), .txt lists and CSV manifests.

    An input that yields no video (an empty directory or list) is an error, as is a directory
    that cannot be read: a run with nothing to do is a mistake, not a success."""
    out: list[Path] = []
    for item in inputs:
        out += _expand(Path(item))
    seen: set[Path] = set()
    unique = []
    for q in out:
        key = q.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(q)
    return unique


def _expand(p: Path) -> list[Path]:
    suffix = p.suffix.lower()
    if p.is_dir():
        found = _videos_in(p)
        if not found:
            raise VadkitError(
                f"{p}: the directory holds no videos (looked for "
                f"{', '.join(sorted(VIDEO_EXTENSIONS))})"
            )
        return found
    if suffix in LIST_SUFFIXES and p.is_file():
        found = _list_paths(p)
    elif suffix == ".csv" and p.is_file():
        found = _csv_paths(p)
    elif p.exists() or suffix in VIDEO_EXTENSIONS:
        return [p]  # a missing video is reported when it is read
    else:
        raise VadkitError(
            f"{p}: not found; expected a video file, a directory, a .txt list or a CSV "
            "manifest with a path column"
        )
    if not found:
        raise VadkitError(f"{p}: the list names no videos")
    return found


def _videos_in(d: Path) -> list[Path]:
    def fail(e: OSError) -> None:
        reason = (e.strerror or type(e).__name__).lower()
        raise VadkitError(f"{e.filename or d}: cannot read the directory ({reason})")

    found = []
    for root, dirs, files in os.walk(d, onerror=fail):
        dirs.sort()
        for name in files:
            q = Path(root) / name
            # `.tmp-*`: a file another vadkit process is still writing (synth's videos)
            if q.suffix.lower() in VIDEO_EXTENSIONS and not name.startswith(TMP_PREFIX):
                found.append(q)
    return sorted(found)


def _read_text(p: Path) -> str:
    try:
        return p.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise VadkitError(f"{p}: not a text file (a list of video paths must be UTF-8)") from None
    except OSError as e:
        raise VadkitError(f"{p}: cannot read the list ({(e.strerror or str(e)).lower()})") from None


def _list_paths(p: Path) -> list[Path]:
    out = []
    for line in _read_text(p).splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            q = Path(line)
            out.append(q if q.is_absolute() else p.parent / q)
    return out


def _csv_paths(p: Path) -> list[Path]:
    import csv
    import io

    reader = csv.DictReader(io.StringIO(_read_text(p), newline=""))
    if reader.fieldnames is None or "path" not in reader.fieldnames:
        raise VadkitError(
            f"{p}: CSV manifest has no 'path' column (columns: {reader.fieldnames}); "
            "add one with each video's path relative to the CSV"
        )
    rows = []
    for row in reader:
        if not any((v or "").strip() for v in row.values() if isinstance(v, str)):
            continue  # a blank line
        path = (row.get("path") or "").strip()
        if not path:
            raise VadkitError(f"{p}, line {reader.line_num}: the row has an empty path")
        rows.append(path)
    return [Path(r) if Path(r).is_absolute() else p.parent / r for r in rows]

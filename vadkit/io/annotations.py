"""Frame-level ground truth: which frames of each test video are anomalous.

`read_annotations(path, format="auto")` reads any of the formats below into one `Annotations`
object; `Annotations.labels(video, frame_count)` gives a `uint8` 0/1 vector per frame.

Formats (`format=`; `auto` detects from the path and the first data line):

- `ucf`: UCF-Crime `Temporal_Anomaly_Annotation.txt`, one line per test video,
  `name class s1 e1 s2 e2`, `-1 -1` = no second (or first) interval, e.g.
  `Shooting022_x264.mp4  Shooting  2850  3300  -1  -1`. Every test video is listed (normal ones
  as class `Normal` with `-1`s); a video missing from the file is an error.
- `ucf-frames`: the UR-DMU-style variant with a frame count, `Class/name.mp4 nframes class s1 e1
  s2 e2`. As `ucf`, and the frame count is known from the file.
- `xd`: XD-Violence `annotations.txt`, `name s1 e1 [s2 e2 ...]`. Only anomalous videos are listed:
  **an unlisted video is normal** (`Annotations.unlisted_normal` is True). Classes come from the
  name's `label_B1-B2-0` codes (A Normal, B1 Fighting, B2 Shooting, B4 Riot, B5 Abuse,
  B6 Car accident, G Explosion).
- `shanghaitech`: a directory of `test_frame_mask/VID.npy`, one 0/1 per frame (the frame count
  is the mask length). Unlisted videos are normal (the weakly-supervised split's normal test
  videos have no mask).
- `csv`: `video,start,end[,class][,frames]` with a header, one row per anomalous interval; a
  normal video has one row with empty `start` and `end`. Every video must be listed.
- `viper`: ViPER-GT XML (the Mini-drone Video Dataset's annotations, NIST's TRECVID files), one
  file per video or a directory of them (`vadkit.io.viper`): the frame count is `NUMFRAMES`,
  the anomalous frames the union of the framespans (1-based, inclusive) of the selected OBJECT
  descriptors (`viper_objects=`, default all; `viper_where=["Action=Fighting"]` filters on an
  attribute's value), their bounding boxes kept (`Annotations.boxes`). Every video has a file.
- `legacy`: the RTFM/MGFN concatenated `gt-*.npy` plus the list file of the test features in
  the same order (`list_file=`). Each video contributes 16·t entries, t = its snippet count,
  taken (in this order of precedence) from a count after the path on its list line
  (`path t`), from the shape of the feature file if it can be read (relative paths are relative
  to the list file), or from `snippets={video: t}` (vadkit passes the score metadata's snippet
  count). The lengths must add up to the gt file's length exactly. RTFM's `_i3d` suffix is
  dropped from video ids, and consecutive crop files of one video (`VID__0` … `VID__4`, the
  XD-Violence feature naming) count once.

Frame-number conventions (interval formats only): `one_based` (False: frame 0 is the first
frame) and `end_inclusive` (True: the end frame is anomalous too). Defaults per format are in
`DEFAULT_CONVENTIONS`: every interval format defaults to 0-based, end-inclusive, so the UCF-Crime
line for Shooting022 marks frames 2850…3300 (451 frames). Internally intervals are stored 0-based
and half-open `[start, stop)`. Intervals whose end runs past the video's last frame are clipped
(the published UCF-Crime file has a few ends one or two frames past the end); an interval that
starts after the last frame is an error.

Video ids: a directory part and a `.mp4`/`.avi`/`.npy`/… extension are dropped, and lookups
also try without RTFM's `_i3d` feature suffix, so scores named `Abuse028_x264_i3d` find
`Abuse028_x264.mp4`.
"""

from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vadkit.errors import VadkitError
from vadkit.io.features import SNIPPET_LENGTH
from vadkit.io.manifest import video_id
from vadkit.io.viper import VIPER_CONVENTION, Box, read_viper

FORMATS = ("ucf", "ucf-frames", "xd", "shanghaitech", "csv", "viper", "legacy")

# (one_based, end_inclusive) per interval format; mask formats have no convention.
DEFAULT_CONVENTIONS: dict[str, tuple[bool, bool]] = {
    "ucf": (False, True),
    "ucf-frames": (False, True),
    "xd": (False, True),
    "csv": (False, True),
    "viper": VIPER_CONVENTION,
}

XD_CLASSES = {
    "A": "Normal",
    "B1": "Fighting",
    "B2": "Shooting",
    "B4": "Riot",
    "B5": "Abuse",
    "B6": "Car accident",
    "G": "Explosion",
}
NORMAL = "Normal"

_CROP_SUFFIX = re.compile(r"__\d+$")


def _strip_i3d(vid: str) -> str:
    return vid[: -len("_i3d")] if vid.endswith("_i3d") else vid


@dataclass
class VideoTruth:
    """Ground truth of one video, 0-based half-open intervals or an explicit mask."""

    video: str
    intervals: list[tuple[int, int]] = field(default_factory=list)
    classes: tuple[str, ...] = ()
    frame_count: int | None = None
    mask: np.ndarray | None = None
    source: str = ""  # "file:line" (or the mask file) for error messages
    boxes: list[Box] = field(default_factory=list)  # viper: bounding boxes of the marked objects

    @property
    def anomalous(self) -> bool:
        if self.mask is not None:
            return bool(self.mask.any())
        return any(b > a for a, b in self.intervals)  # an end-exclusive "5 5" marks nothing


class Annotations:
    """Ground truth of a test set, whatever file it came from."""

    def __init__(
        self,
        path: Path,
        format: str,
        truths: list[VideoTruth],
        *,
        unlisted_normal: bool,
        convention: tuple[bool, bool] | None,
        pad_short_scores: bool = False,
    ):
        self.path = path
        self.format = format
        self.unlisted_normal = unlisted_normal
        self.convention = convention
        # The legacy gt counts whole snippets (16·t entries per video) while per-frame scores stop
        # at the true frame count: its protocol repeats the last snippet's score over the
        # difference, so short scores are padded rather than the labels trimmed.
        self.pad_short_scores = pad_short_scores
        self._truths: dict[str, VideoTruth] = {}
        for t in truths:
            self._truths[t.video] = t

    # -- lookup -----------------------------------------------------------------------------
    @property
    def videos(self) -> list[str]:
        """Videos named by the annotation, in file order (XD/ShanghaiTech: anomalous ones only)."""
        return list(self._truths)

    def _find(self, video: str) -> VideoTruth | None:
        vid = video_id(video)
        t = self._truths.get(vid)
        if t is None:
            t = self._truths.get(_strip_i3d(vid))
        return t

    def __contains__(self, video: str) -> bool:
        return self._find(video) is not None

    def __len__(self) -> int:
        return len(self._truths)

    def key(self, video: str) -> str | None:
        """The annotation's own id for `video` (None if unlisted)."""
        t = self._find(video)
        return t.video if t else None

    def truth(self, video: str) -> VideoTruth:
        t = self._find(video)
        if t is None:
            if self.unlisted_normal:
                return VideoTruth(video_id(video), classes=(NORMAL,), source=f"{self.path}")
            raise VadkitError(
                f"video {video!r} is not in the annotation {self.path} (format {self.format} "
                f"lists every test video); check the video name or the annotation file"
            )
        return t

    def video_class(self, video: str) -> str | None:
        """The annotated class (`Normal` for normal videos), or None where the format has none."""
        c = self.truth(video).classes
        return c[0] if c else None

    def video_classes(self, video: str) -> tuple[str, ...]:
        """All classes of a video (XD-Violence videos can have up to three)."""
        return self.truth(video).classes

    def is_anomalous(self, video: str) -> bool:
        return self.truth(video).anomalous

    def frame_count(self, video: str) -> int | None:
        """Frame count given by the annotation itself (ucf-frames, masks, legacy), else None."""
        return self.truth(video).frame_count

    def intervals(self, video: str) -> list[tuple[int, int]]:
        """Anomalous intervals as 0-based half-open `[start, stop)` frame ranges."""
        t = self.truth(video)
        if t.mask is None:
            return list(t.intervals)
        return mask_to_intervals(t.mask)

    def labels(self, video: str, frame_count: int | None = None) -> np.ndarray:
        """`uint8 (frame_count,)` 0/1 per frame.

        `frame_count` is needed when the annotation does not know the video's length (ucf, xd,
        csv without `frames`); when it does, a different `frame_count` is an error naming both.
        """
        t = self.truth(video)
        n = t.frame_count
        if n is not None and frame_count is not None and int(frame_count) != n:
            raise VadkitError(
                f"{t.source}: video {t.video} has {n} frames in the annotation but "
                f"{frame_count} were asked for"
            )
        if n is None:
            if frame_count is None:
                raise VadkitError(
                    f"{t.source}: the annotation gives no frame count for {t.video}; "
                    f"pass the video's frame count"
                )
            n = int(frame_count)
        if t.mask is not None:
            return t.mask.copy()
        out = np.zeros(n, dtype=np.uint8)
        for a, b in t.intervals:
            if a >= n:
                raise VadkitError(
                    f"{t.source}: interval of {t.video} starts at frame {a} (0-based) but the "
                    f"video has only {n} frames; wrong video, frame rate or frame convention?"
                )
            out[a : min(b, n)] = 1
        return out

    def boxes(self, video: str, frame: int | None = None) -> list[Box]:
        """The bounding boxes of a video (viper; other formats have none), or those over one
        0-based `frame`."""
        boxes = self.truth(video).boxes
        if frame is None:
            return list(boxes)
        return [b for b in boxes if b.start <= frame < b.stop]

    def describe(self) -> dict:
        """What was read, for metrics.json."""
        d = {"path": str(self.path), "format": self.format, "unlisted_normal": self.unlisted_normal}
        if self.convention is not None:
            d["one_based"], d["end_inclusive"] = self.convention
        return d


def mask_to_intervals(mask: np.ndarray) -> list[tuple[int, int]]:
    """Runs of 1 in a 0/1 vector as half-open `[start, stop)` pairs."""
    m = np.concatenate([[0], np.asarray(mask, dtype=np.int8) != 0, [0]]).astype(np.int8)
    d = np.diff(m)
    starts = np.flatnonzero(d == 1)
    stops = np.flatnonzero(d == -1)
    return [(int(a), int(b)) for a, b in zip(starts, stops, strict=True)]


# -- reading ---------------------------------------------------------------------------------
def read_annotations(
    path: str | os.PathLike,
    *,
    format: str = "auto",
    one_based: bool | None = None,
    end_inclusive: bool | None = None,
    list_file: str | os.PathLike | None = None,
    snippets: dict[str, int] | None = None,
    viper_objects: Sequence[str] | None = None,
    viper_where: Sequence[str] | None = None,
) -> Annotations:
    """Read ground truth from `path` (see the module docstring for formats and conventions).

    `one_based` / `end_inclusive` override the format's default convention (interval formats
    only). `list_file` (and optionally `snippets`) are for the `legacy` format, `viper_objects`
    and `viper_where` for `viper`.
    """
    p = Path(path)
    if not p.exists():
        raise VadkitError(f"{p}: annotation file not found")
    check_list_file(p, format, list_file)
    fmt = detect_format(p) if format == "auto" else format
    if fmt not in FORMATS:
        raise VadkitError(
            f"unknown annotation format {format!r}; choose auto or {', '.join(FORMATS)}"
        )
    if (viper_objects or viper_where) and fmt != "viper":
        raise VadkitError(f"--viper-objects/--viper-where are for ViPER-GT XML, but {p} is {fmt}")
    if fmt == "shanghaitech":
        return _read_masks(p)
    if fmt == "viper":
        return _read_viper(p, one_based, end_inclusive, viper_objects, viper_where)
    if fmt == "legacy":
        if list_file is None:
            raise VadkitError(
                f"{p}: the legacy gt format needs the list file of the test features in gt "
                f"order (--list FILE)"
            )
        return _read_legacy(p, Path(list_file), snippets or {})
    return _read_intervals(p, fmt, one_based, end_inclusive)


def check_list_file(
    path: str | os.PathLike, format: str, list_file: str | os.PathLike | None
) -> None:
    """Refuse a list file given with a non-legacy annotation: it only orders the legacy gt.

    The format is told from the path alone (auto: a `.npy` file is legacy), so this costs no
    read; a missing annotation is left for `read_annotations` to report.
    """
    p = Path(path)
    if list_file is None or format == "legacy" or not p.exists():
        return
    if format == "auto":
        if p.suffix.lower() == ".npy" and not p.is_dir():
            return
        format = detect_format(p) if p.is_dir() else _detect_or(p, "a text annotation")
    raise VadkitError(f"--list is for the legacy gt format, but {p} is {format}")


def _detect_or(p: Path, fallback: str) -> str:
    try:
        return detect_format(p)
    except VadkitError:
        return fallback


def _read_viper(
    p: Path,
    one_based: bool | None,
    end_inclusive: bool | None,
    objects: Sequence[str] | None,
    where: Sequence[str] | None,
) -> Annotations:
    d_one, d_incl = VIPER_CONVENTION
    conv = (
        d_one if one_based is None else bool(one_based),
        d_incl if end_inclusive is None else bool(end_inclusive),
    )
    truths = [
        VideoTruth(
            v.video,
            v.intervals,
            v.classes or (NORMAL,),
            v.frame_count,
            source=v.source,
            boxes=v.boxes,
        )
        for v in read_viper(p, objects=objects, where=where, convention=conv)
    ]
    return Annotations(p, "viper", truths, unlisted_normal=False, convention=conv)


def _read_intervals(
    p: Path, fmt: str, one_based: bool | None, end_inclusive: bool | None
) -> Annotations:
    if p.is_dir():
        raise VadkitError(f"{p}: is a directory, but format {fmt} is a text file")
    d_one, d_incl = DEFAULT_CONVENTIONS[fmt]
    conv = (
        d_one if one_based is None else bool(one_based),
        d_incl if end_inclusive is None else bool(end_inclusive),
    )
    text = _read_text(p)
    if fmt == "csv":
        truths = _parse_csv(p, text, conv)
    else:
        truths = _parse_lines(p, text, fmt, conv)
    return Annotations(p, fmt, truths, unlisted_normal=(fmt == "xd"), convention=conv)


def _read_text(p: Path) -> str:
    try:
        return p.read_text()
    except UnicodeDecodeError:
        raise VadkitError(f"{p}: not a text annotation file (binary content)") from None
    except OSError as e:
        raise VadkitError(f"{p}: unreadable annotation file ({e.strerror})") from None


def _is_int(s: str) -> bool:
    return bool(re.fullmatch(r"[+-]?\d+", s))


def detect_format(p: Path) -> str:
    """Guess the format from the path (directory, `.npy`, `.csv`) and the first data line."""
    if p.is_dir():
        has_xml = any(p.glob("*.xml"))
        return "viper" if has_xml and not any(p.glob("*.npy")) else "shanghaitech"
    if p.suffix.lower() == ".npy":
        return "legacy"
    if p.suffix.lower() == ".csv":
        return "csv"
    if p.suffix.lower() == ".xml":
        return "viper"
    text = _read_text(p)
    if text.lstrip().startswith(("<?xml", "<viper")):
        return "viper"
    for lineno, line in enumerate(text.splitlines(), start=1):
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        if s.lower().startswith("video,") or s.lower() == "video":
            return "csv"
        tok = s.split()
        if len(tok) == 7 and _is_int(tok[1]) and not _is_int(tok[2]):
            return "ucf-frames"
        if len(tok) == 6 and not _is_int(tok[1]) and all(_is_int(x) for x in tok[2:]):
            return "ucf"
        if len(tok) >= 3 and len(tok) % 2 == 1 and all(_is_int(x) for x in tok[1:]):
            return "xd"
        raise VadkitError(
            f"{p}:{lineno}: cannot tell the annotation format from {s[:80]!r}; "
            f"pass -f/--annotations-format ({', '.join(FORMATS)})"
        )
    raise VadkitError(f"{p}: annotation file has no data lines")


def _to_half_open(src: str, s: int, e: int, conv: tuple[bool, bool], text: str) -> tuple[int, int]:
    one_based, inclusive = conv
    if s < 0 or e < 0:
        raise VadkitError(f"{src}: negative frame number in {text!r} (only '-1 -1' means none)")
    if e < s:
        raise VadkitError(f"{src}: interval end {e} is before its start {s} in {text!r}")
    a = s - 1 if one_based else s
    b = (e if inclusive else e - 1) + (0 if one_based else 1)
    if a < 0:
        raise VadkitError(
            f"{src}: frame 0 in {text!r} but the convention is one-based; pass --zero-based"
        )
    return a, max(a, b)


def _pairs(src: str, nums: list[str], conv: tuple[bool, bool], text: str) -> list[tuple[int, int]]:
    out = []
    for i in range(0, len(nums), 2):
        s, e = int(nums[i]), int(nums[i + 1])
        if s == -1 and e == -1:
            continue
        out.append(_to_half_open(src, s, e, conv, text))
    return out


def _xd_classes(name: str) -> tuple[str, ...]:
    m = re.search(r"label_([A-Za-z0-9-]+)$", name)
    if not m:
        return ()
    codes = [c for c in m.group(1).split("-") if c and c != "0"]
    return tuple(XD_CLASSES.get(c, c) for c in codes)


def _parse_lines(p: Path, text: str, fmt: str, conv: tuple[bool, bool]) -> list[VideoTruth]:
    truths: list[VideoTruth] = []
    seen: dict[str, int] = {}
    for lineno, line in enumerate(text.splitlines(), start=1):
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        src = f"{p}:{lineno}"
        tok = s.split()
        if fmt == "ucf":
            ok = len(tok) == 6 and all(_is_int(x) for x in tok[2:])
            expect = "'name class s1 e1 s2 e2' (6 fields, -1 -1 for none)"
        elif fmt == "ucf-frames":
            ok = len(tok) == 7 and _is_int(tok[1]) and all(_is_int(x) for x in tok[3:])
            expect = "'Class/name.mp4 nframes class s1 e1 s2 e2' (7 fields)"
        else:
            ok = len(tok) >= 3 and len(tok) % 2 == 1 and all(_is_int(x) for x in tok[1:])
            expect = "'name s1 e1 [s2 e2 ...]' (a name and pairs of frame numbers)"
        if not ok:
            raise VadkitError(
                f"{src}: malformed {fmt} annotation line {s[:120]!r}; expected {expect}"
            )
        vid = video_id(tok[0])
        if vid in seen:
            raise VadkitError(
                f"{src}: video {vid} already annotated on line {seen[vid]}: {s[:120]!r}"
            )
        seen[vid] = lineno
        if fmt == "ucf":
            t = VideoTruth(vid, _pairs(src, tok[2:], conv, s), (tok[1],), None, source=src)
        elif fmt == "ucf-frames":
            n = int(tok[1])
            if n <= 0:
                raise VadkitError(f"{src}: frame count must be positive, got {n} in {s!r}")
            t = VideoTruth(vid, _pairs(src, tok[3:], conv, s), (tok[2],), n, source=src)
        else:
            t = VideoTruth(vid, _pairs(src, tok[1:], conv, s), _xd_classes(vid), None, source=src)
        truths.append(t)
    if not truths:
        raise VadkitError(f"{p}: annotation file has no data lines")
    return truths


def _parse_csv(p: Path, text: str, conv: tuple[bool, bool]) -> list[VideoTruth]:
    rows = list(csv.reader(io.StringIO(text)))
    numbered = [(i, r) for i, r in enumerate(rows, start=1) if r and any(c.strip() for c in r)]
    if not numbered:
        raise VadkitError(f"{p}: annotation file has no data lines")
    header, col = _csv_header(p, *numbered[0])
    by_video: dict[str, VideoTruth] = {}
    for lineno, row in numbered[1:]:
        _csv_row(f"{p}:{lineno}", row, header, col, conv, by_video)
    if not by_video:
        raise VadkitError(f"{p}: CSV annotation lists no videos")
    for t in by_video.values():
        t.intervals.sort()
    return list(by_video.values())


def _csv_header(p: Path, lineno: int, first: list[str]) -> tuple[list[str], dict[str, int]]:
    header = [h.strip().lower() for h in first]
    if "video" not in header or "start" not in header or "end" not in header:
        raise VadkitError(
            f"{p}:{lineno}: CSV annotation needs a header 'video,start,end[,class][,frames]', "
            f"got {','.join(first)!r}"
        )
    col = {h: header.index(h) for h in ("video", "start", "end", "class", "frames") if h in header}
    return header, col


def _csv_row(
    src: str,
    row: list[str],
    header: list[str],
    col: dict[str, int],
    conv: tuple[bool, bool],
    by_video: dict[str, VideoTruth],
) -> None:
    """Add one CSV row (an interval, or an empty start/end for a normal video) to `by_video`."""
    text_row = ",".join(row)
    if len(row) != len(header):
        raise VadkitError(
            f"{src}: expected {len(header)} fields ({','.join(header)}), got {len(row)}: "
            f"{text_row!r}"
        )
    vid = video_id(row[col["video"]])
    if not vid:
        raise VadkitError(f"{src}: empty video name in {text_row!r}")
    start, end = row[col["start"]].strip(), row[col["end"]].strip()
    t = by_video.get(vid)
    if t is None:
        t = by_video[vid] = VideoTruth(vid, source=src)
    cls = row[col["class"]].strip() if "class" in col else ""
    if cls and cls not in t.classes:
        t.classes = t.classes + (cls,)
    if "frames" in col and row[col["frames"]].strip():
        _csv_frames(src, vid, row[col["frames"]].strip(), t)
    if not start and not end:
        return
    if not (_is_int(start) and _is_int(end)):
        raise VadkitError(
            f"{src}: start and end must be frame numbers (both empty for a normal video), "
            f"got {text_row!r}"
        )
    t.intervals.append(_to_half_open(src, int(start), int(end), conv, text_row))


def _csv_frames(src: str, vid: str, frames: str, t: VideoTruth) -> None:
    if not _is_int(frames) or int(frames) <= 0:
        raise VadkitError(f"{src}: frames must be a positive integer, got {frames!r}")
    if t.frame_count is not None and t.frame_count != int(frames):
        raise VadkitError(
            f"{src}: {vid} has frames {frames} here but {t.frame_count} on an earlier row"
        )
    t.frame_count = int(frames)


def _load_mask(f: Path) -> np.ndarray:
    try:
        m = np.load(f, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise VadkitError(f"{f}: unreadable frame mask ({e})") from None
    m = np.asarray(m).reshape(-1) if np.ndim(m) == 2 and 1 in np.shape(m) else np.asarray(m)
    if m.ndim != 1:
        raise VadkitError(f"{f}: expected a 1-D 0/1 frame mask, got shape {m.shape}")
    if m.size and not np.isin(m, (0, 1)).all():
        bad = m[~np.isin(m, (0, 1))][0]
        raise VadkitError(f"{f}: frame mask must hold only 0 and 1, found {bad!r}")
    return m.astype(np.uint8)


def _read_masks(p: Path) -> Annotations:
    if not p.is_dir():
        raise VadkitError(f"{p}: the shanghaitech format is a directory of VID.npy frame masks")
    files = sorted(f for f in p.glob("*.npy") if not f.name.startswith("."))
    if not files:
        raise VadkitError(f"{p}: no frame masks (*.npy) in the directory")
    truths = []
    for f in files:
        m = _load_mask(f)
        truths.append(VideoTruth(video_id(f.name), [], (), int(m.size), m, source=str(f)))
    return Annotations(p, "shanghaitech", truths, unlisted_normal=True, convention=None)


def _read_legacy(p: Path, list_file: Path, snippets: dict[str, int]) -> Annotations:
    gt = _load_mask(p)
    # score files may be named after the feature files (`VID_i3d`, `VID__0`)
    snippets = {_legacy_id(k): t for k, t in snippets.items()}
    entries = _legacy_entries(list_file)
    truths = []
    offset = 0
    seen: dict[str, str] = {}
    for vid, count, fpath, src in entries:
        if vid in seen:
            raise VadkitError(f"{src}: video {vid} already listed at {seen[vid]}")
        seen[vid] = src
        t = count if count is not None else _feature_snippets(fpath, src)
        if t is None:
            t = snippets.get(vid)
        if t is None:
            raise VadkitError(
                f"{src}: cannot tell how many snippets {vid} has: its feature file {fpath} is not "
                f"readable here; add the count after the path ('path t') or evaluate vadkit "
                f"scores whose metadata records it"
            )
        n = SNIPPET_LENGTH * int(t)
        truths.append(VideoTruth(vid, [], (), n, gt[offset : offset + n], source=src))
        offset += n
    if offset != gt.size:
        raise VadkitError(
            f"{p}: the gt has {gt.size} entries but the {len(entries)} videos of {list_file} "
            f"account for {offset} ({SNIPPET_LENGTH} per snippet); wrong list, order or snippet "
            f"counts?"
        )
    return Annotations(
        p, "legacy", truths, unlisted_normal=False, convention=None, pad_short_scores=True
    )


def _legacy_id(name: str) -> str:
    return _CROP_SUFFIX.sub("", _strip_i3d(video_id(name)))


def _legacy_entries(list_file: Path) -> list[tuple[str, int | None, Path, str]]:
    """(video, snippet count if the line gives one, feature path, "file:line") per video of the
    list, consecutive crop files of one video (`VID__0` … `VID__4`) counted once."""
    if not list_file.exists():
        raise VadkitError(f"{list_file}: list file not found")
    entries: list[tuple[str, int | None, Path, str]] = []
    for lineno, line in enumerate(_read_text(list_file).splitlines(), start=1):
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        src = f"{list_file}:{lineno}"
        tok = s.rsplit(None, 1)
        count = None
        if len(tok) == 2 and _is_int(tok[1]):
            s, count = tok[0], int(tok[1])
            if count <= 0:
                raise VadkitError(f"{src}: snippet count must be positive, got {count}")
        fpath = Path(s)
        if not fpath.is_absolute():
            fpath = list_file.parent / fpath
        vid = _legacy_id(s)
        if entries and entries[-1][0] == vid and _CROP_SUFFIX.search(video_id(s)):
            continue  # another crop file of the same video
        entries.append((vid, count, fpath, src))
    if not entries:
        raise VadkitError(f"{list_file}: list file names no videos")
    return entries


def _feature_snippets(fpath: Path, src: str) -> int | None:
    """The snippet count t of a `(t, ...)` feature file, None if it is not readable here."""
    if not fpath.exists():
        return None
    try:
        shape = np.load(fpath, mmap_mode="r", allow_pickle=False).shape
    except (OSError, ValueError):
        return None
    if not shape:
        raise VadkitError(
            f"{src}: feature file {fpath} holds a single number (a 0-d array), not (t, ...) "
            f"snippet features; check the list file"
        )
    return int(shape[0])

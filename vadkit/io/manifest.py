"""Manifests: which videos are in a split and whether each is normal (0) or abnormal (1).

Two formats are read:

- CSV with a header `video,label[,path]`; label 0 (normal) or 1 (abnormal); `path` (optional) is a
  feature file or a video, relative to the CSV's directory unless absolute.
- RTFM / SSRL `.list` files: one feature path per line, no labels. Labels come either from
  `abnormal_first=N` (the first N lines are abnormal, RTFM's UCF-Crime convention: 810) or from a
  naming rule: `ucf` (a name containing `Normal` is normal) or `xd` (a name containing `label_A`
  is normal; XD-Violence).
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

from vadkit.errors import VadkitError
from vadkit.io.artifacts import check_video_name
from vadkit.io.atomic import save_text
from vadkit.io.features import PATCH_GRIDS

NAMING_RULES = ("ucf", "xd")


@dataclass(frozen=True)
class Entry:
    video: str
    label: int  # 0 normal, 1 abnormal
    path: Path | None = None


def label_from_name(name: str, rule: str) -> int:
    if rule == "ucf":
        return 0 if "Normal" in name else 1
    if rule == "xd":
        return 0 if "label_A" in name else 1
    raise VadkitError(f"unknown naming rule {rule!r}; choose one of {', '.join(NAMING_RULES)}")


# The one list of video file extensions vadkit recognises (directories, inputs, names).
VIDEO_SUFFIXES = (
    ".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".3gp",
)  # fmt: skip
# Lists of paths, one per line: RTFM / SSRL `.list` manifests, `.txt` video lists.
LIST_SUFFIXES = (".list", ".txt")
MANIFEST_SUFFIXES = (".csv", *LIST_SUFFIXES)
# Only these are dropped from a name: XD-Violence video names contain dots
# (`Fast.Five.2011__#00-32-56_00-33-26_label_B2-0-0`).
EXTENSIONS = (".npy", *VIDEO_SUFFIXES)


def read_text_file(p: Path, what: str = "manifest") -> str:
    """The text of `p` (UTF-8; a spreadsheet's byte-order mark is dropped); errors name it."""
    if not p.exists():
        raise VadkitError(f"{p}: {what} not found")
    try:
        text = p.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise VadkitError(f"{p}: not a text {what} (it is not UTF-8 text)") from None
    except OSError as e:
        raise VadkitError(f"{p}: unreadable {what} ({(e.strerror or str(e)).lower()})") from None
    if "\0" in text:
        raise VadkitError(f"{p}: not a text {what} (it holds NUL bytes)")
    return text


def list_lines(p: Path, text: str | None = None) -> list[tuple[int, str]]:
    """`(line number, text)` of the non-blank, non-comment (`#`) lines of a path list."""
    text = read_text_file(p, "list") if text is None else text
    lines = ((i, ln.strip()) for i, ln in enumerate(text.splitlines(), start=1))
    return [(i, ln) for i, ln in lines if ln and not ln.startswith("#")]


def read_path_list(path: str | os.PathLike) -> list[Path]:
    """The one reader of `.txt` / `.list` path lists: a path per line, relative to the list's
    directory unless absolute; blank lines and `#` comments are skipped."""
    p = Path(path)
    return [_resolve(p.parent, line) for _, line in list_lines(p)]


def video_id(path: str | os.PathLike) -> str:
    """`.../Abuse028_x264.npy` → `Abuse028_x264`: the file name without a video/array extension."""
    name = str(path).strip().replace("\\", "/").rsplit("/", 1)[-1]
    lower = name.lower()
    for ext in EXTENSIONS:
        if lower.endswith(ext):
            return name[: -len(ext)]
    return name


def read_manifest(
    path: str | os.PathLike,
    *,
    abnormal_first: int | None = None,
    naming: str | None = None,
    notes: list[str] | None = None,
) -> list[Entry]:
    """Read a CSV or `.list` manifest. Errors name the file and line.

    A list's lines naming MSIP patch files (`VID_patch23.npy`, as `ls feats/*.npy > list`
    picks them up) are not videos: they are skipped before `abnormal_first` counts lines, and
    a note saying so is appended to `notes` when given."""
    p = Path(path)
    text = read_text_file(p)
    first = text.lstrip().split("\n", 1)[0].strip().lower()
    if first.startswith("video,") or first == "video":
        entries = _read_csv(p, text, naming)
    else:
        entries = _read_list(p, text, abnormal_first, naming, notes)
    if not entries:
        raise VadkitError(f"{p}: manifest lists no videos")
    seen: dict[str, int] = {}
    for i, e in enumerate(entries):
        if e.video in seen:
            raise VadkitError(
                f"{p}: video {e.video!r} is listed twice (entries {seen[e.video] + 1} and {i + 1})"
            )
        seen[e.video] = i
    return entries


def _resolve(base: Path, value: str) -> Path:
    q = Path(value)
    return q if q.is_absolute() else base / q


def _read_csv(p: Path, text: str, naming: str | None) -> list[Entry]:
    lines = text.splitlines()
    skip = next(i for i, ln in enumerate(lines) if ln.strip())  # leading blank lines
    try:
        rows = list(csv.reader(lines[skip:]))
    except csv.Error as e:
        raise VadkitError(f"{p}: not a readable CSV manifest ({e})") from None
    header = [h.strip().lower() for h in rows[0]]
    if "video" not in header:
        raise VadkitError(f"{p}:{skip + 1}: CSV manifest needs a 'video' column, got {rows[0]}")
    iv = header.index("video")
    il = header.index("label") if "label" in header else None
    ip = header.index("path") if "path" in header else None
    if il is None and naming is None:
        raise VadkitError(
            f"{p}:{skip + 1}: CSV manifest has no 'label' column; add one or pass a naming rule"
        )
    out = []
    for lineno, row in enumerate(rows[1:], start=skip + 2):
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) != len(header):
            raise VadkitError(f"{p}:{lineno}: expected {len(header)} fields, got {len(row)}: {row}")
        video = row[iv].strip()
        if not video:
            raise VadkitError(f"{p}:{lineno}: empty video name")
        check_video_name(video, f"{p}:{lineno}: ")
        if il is not None:
            raw = row[il].strip()
            if raw not in ("0", "1"):
                raise VadkitError(
                    f"{p}:{lineno}: label must be 0 (normal) or 1 (abnormal), got {raw!r}"
                )
            label = int(raw)
        else:
            label = label_from_name(video, naming)
        path = _resolve(p.parent, row[ip].strip()) if ip is not None and row[ip].strip() else None
        out.append(Entry(video, label, path))
    return out


def is_patch_file(name: str) -> bool:
    """`VID_patch23.npy` and its siblings: MSIP patch features, not a video's clip features."""
    return name.endswith(".npy") and any(name.endswith(f"_{g}.npy") for g in PATCH_GRIDS)


def _without_patch_files(
    p: Path, lines: list[tuple[int, str]], notes: list[str] | None
) -> list[tuple[int, str]]:
    skipped = [i for i, ln in lines if is_patch_file(ln.replace("\\", "/"))]
    drop = set(skipped)
    kept = [(i, ln) for i, ln in lines if i not in drop]
    if skipped and notes is not None:
        notes.append(
            f"{p}: skipped {len(skipped)} line(s) naming MSIP patch files "
            f"(VID_patch23.npy …, first at line {skipped[0]}); a list names each video's clip "
            "features VID.npy once (the patch files beside it are found from it)"
        )
    return kept


def _read_list(
    p: Path,
    text: str,
    abnormal_first: int | None,
    naming: str | None,
    notes: list[str] | None = None,
) -> list[Entry]:
    lines = _without_patch_files(p, list_lines(p, text), notes)
    if abnormal_first is None and naming is None:
        raise VadkitError(
            f"{p}: a .list manifest has no labels; pass --abnormal-first N or --naming ucf|xd"
        )
    if abnormal_first is not None and not 0 <= abnormal_first <= len(lines):
        raise VadkitError(
            f"{p}: --abnormal-first {abnormal_first} but the list has {len(lines)} lines"
        )
    out = []
    for k, (lineno, line) in enumerate(lines):
        path = _resolve(p.parent, line)
        vid = check_video_name(video_id(line), f"{p}:{lineno}: ")
        if abnormal_first is not None:
            label = 1 if k < abnormal_first else 0
        else:
            label = label_from_name(vid, naming)
        out.append(Entry(vid, label, path))
    return out


def write_manifest(path: str | os.PathLike, entries: list[Entry]) -> None:
    """Write a CSV manifest (paths written relative to the CSV's directory where possible)."""
    p = Path(path)
    lines = ["video,label,path"] if any(e.path for e in entries) else ["video,label"]
    for e in entries:
        if e.path is None:
            lines.append(f"{e.video},{e.label}" + ("," if len(lines[0].split(",")) == 3 else ""))
            continue
        try:
            rel = os.path.relpath(e.path, p.parent)
        except ValueError:
            rel = str(e.path)
        lines.append(f"{e.video},{e.label},{rel}")
    save_text(p, "\n".join(lines) + "\n")

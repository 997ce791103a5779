"""Manifests from a folder tree: a video's label is the folder it sits in.

Datasets such as the Mini-drone Video Dataset (`normal/`, `suspicious/`, `illicit/`) and
UCF-Crime (`Abuse/`, …, `Normal_Videos_event/`) keep each class in its own folder. `scan` walks
a root directory, gives every video the label of the nearest folder above it (below the root)
whose name is in the label map (case-insensitive), and refuses videos under no such folder
unless told to skip them. `split` divides the videos into train and test, per label (each split
keeps the label proportions), from a seed. `write_csv` writes the CSV manifest that
`vadkit.io.manifest.read_manifest` reads: `video,label,path,class`, the path relative to the
CSV's directory.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vadkit.errors import VadkitError
from vadkit.io.atomic import save_text
from vadkit.io.features import PATCH_GRIDS
from vadkit.io.manifest import video_id

VIDEO_EXTENSIONS = ("mp4", "avi", "mkv", "mov", "webm", "m4v", "mpg", "mpeg", "wmv")


@dataclass(frozen=True)
class FolderEntry:
    video: str
    label: int  # 0 normal, 1 abnormal
    path: Path
    folder: str  # the label folder's name as it is on disk


def parse_labels(text: str) -> dict[str, int]:
    """`"normal=0,suspicious=1,illicit=1"` → `{"normal": 0, ...}` (names lower-cased)."""
    out: dict[str, int] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        name, eq, value = part.rpartition("=")
        if not eq or not name.strip() or value.strip() not in ("0", "1"):
            raise VadkitError(
                f"--labels {part!r}: expected FOLDER=0 (normal) or FOLDER=1 (abnormal), e.g. "
                f"normal=0,suspicious=1,illicit=1"
            )
        key = name.strip().lower()
        if key in out:
            raise VadkitError(f"--labels: folder {name.strip()!r} is given twice")
        out[key] = int(value)
    if not out:
        raise VadkitError("--labels: no FOLDER=LABEL pairs given")
    return out


def parse_extensions(text: str) -> tuple[str, ...]:
    exts = tuple(e.strip().lower().lstrip(".") for e in text.split(",") if e.strip())
    if not exts:
        raise VadkitError("--ext: no file extensions given")
    return exts


def _label_folder(rel: Path, labels: dict[str, int]) -> str | None:
    """The nearest folder of `rel` (a path below the root) named in `labels`."""
    for folder in reversed(rel.parent.parts):
        if folder.lower() in labels:
            return folder
    return None


def _is_patch_file(p: Path) -> bool:
    return p.suffix.lower() == ".npy" and any(p.stem.endswith(f"_{g}") for g in PATCH_GRIDS)


def scan(
    root: str | os.PathLike,
    labels: dict[str, int],
    *,
    extensions: Sequence[str] = VIDEO_EXTENSIONS,
    ignore_unknown: bool = False,
) -> tuple[list[FolderEntry], list[Path]]:
    """(entries sorted by video, files skipped as under no label folder) of a folder tree."""
    base = Path(root)
    if not base.is_dir():
        raise VadkitError(f"{base}: not a directory")
    exts = {"." + e.lower().lstrip(".") for e in extensions}
    files = sorted(
        p
        for p in base.rglob("*")
        if p.is_file() and p.suffix.lower() in exts and not p.name.startswith(".")
    )
    files = [p for p in files if not _is_patch_file(p)]
    entries: dict[str, FolderEntry] = {}
    unknown: list[Path] = []
    for p in files:
        folder = _label_folder(p.relative_to(base), labels)
        if folder is None:
            unknown.append(p)
            continue
        vid = video_id(p.name)
        if vid in entries:
            raise VadkitError(f"video {vid} is in two places: {entries[vid].path} and {p}")
        entries[vid] = FolderEntry(vid, labels[folder.lower()], p, folder)
    if unknown and not ignore_unknown:
        folders = sorted({str(p.parent.relative_to(base)) for p in unknown})
        shown = ", ".join(folders[:5]) + (", ..." if len(folders) > 5 else "")
        raise VadkitError(
            f"{len(unknown)} video(s) under {base} are in no folder named by --labels "
            f"({', '.join(sorted(labels))}): in {shown}; add those folders to --labels or pass "
            f"--ignore-unknown"
        )
    if not entries:
        raise VadkitError(
            f"{base}: no videos ({', '.join(sorted(exts))}) in folders named "
            f"{', '.join(sorted(labels))}"
        )
    return sorted(entries.values(), key=lambda e: e.video), unknown


def split(
    entries: Sequence[FolderEntry], train_fraction: float, seed: int = 0
) -> tuple[list[FolderEntry], list[FolderEntry]]:
    """(train, test): per label, a seeded shuffle of its videos, the first
    `round(train_fraction · n)` to train; both lists sorted by video."""
    if not 0.0 < train_fraction < 1.0:
        raise VadkitError(f"--split {train_fraction}: the train fraction must be between 0 and 1")
    rng = np.random.default_rng(seed)
    train: list[FolderEntry] = []
    test: list[FolderEntry] = []
    for label in (0, 1):
        group = sorted((e for e in entries if e.label == label), key=lambda e: e.video)
        order = rng.permutation(len(group))
        k = int(round(train_fraction * len(group)))
        train += [group[i] for i in order[:k]]
        test += [group[i] for i in order[k:]]
    if not train or not test:
        raise VadkitError(
            f"--split {train_fraction} of {len(entries)} video(s) leaves the "
            f"{'train' if not train else 'test'} split empty"
        )
    return sorted(train, key=lambda e: e.video), sorted(test, key=lambda e: e.video)


def write_csv(path: str | os.PathLike, entries: Sequence[FolderEntry]) -> Path:
    """`video,label,path,class` rows, the path relative to the CSV's directory."""
    p = Path(path)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["video", "label", "path", "class"])
    where = p.parent.resolve()
    for e in entries:
        try:
            rel = os.path.relpath(e.path.resolve(), where)
        except ValueError:  # another drive (Windows)
            rel = str(e.path.resolve())
        w.writerow([e.video, e.label, Path(rel).as_posix(), e.folder])
    save_text(p, buf.getvalue())
    return p

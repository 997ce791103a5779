"""Score files: one `VID.npy` of per-frame float32 scores per video, plus `VID.json` metadata.

The metadata says how the curve was made (snippet length, snippets, frame count, model, the
checkpoint's sha256). A directory of bare `VID.npy` per-frame arrays written by another tool is
accepted too: then the array length is taken as the frame count unless an annotation gives one.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from vadkit import __version__
from vadkit.errors import VadkitError
from vadkit.evidence import is_evidence_file
from vadkit.io.artifacts import check_video_name
from vadkit.io.atomic import TMP_PREFIX, save_json, save_npy

FORMAT = "vadkit.scores"


@dataclass
class ScoreMeta:
    video: str
    frame_count: int
    snippet_length: int
    snippets: int
    model: str = ""
    checkpoint_sha256: str = ""
    features: str = ""
    vadkit_version: str = __version__
    format: str = FORMAT
    extra: dict[str, Any] = field(default_factory=dict)
    # frames the snippets were cut from, when features were extracted at a resampled fps
    # (`vadkit extract --fps`); None: the native frames, `frame_count`
    frames_used: int | None = None


_INT_FIELDS = ("frame_count", "snippet_length", "snippets")
_STR_FIELDS = ("video", "model", "checkpoint_sha256", "features", "vadkit_version")
# score dtypes read as they are; other real dtypes are widened to float64
_KEPT_DTYPES = (np.float32, np.float64)


def write_scores(directory: str | os.PathLike, meta: ScoreMeta, frame_scores: np.ndarray) -> Path:
    frame_scores = np.asarray(frame_scores, dtype=np.float32).reshape(-1)
    if frame_scores.shape[0] != meta.frame_count:
        raise VadkitError(
            f"{meta.video}: {frame_scores.shape[0]} frame scores but frame count {meta.frame_count}"
        )
    d = Path(directory)
    check_video_name(meta.video, f"{d}: ")  # the name becomes a file name inside `directory`
    save_npy(d / f"{meta.video}.npy", frame_scores)
    save_json(d / f"{meta.video}.json", asdict(meta))
    return d / f"{meta.video}.npy"


def read_scores(directory: str | os.PathLike) -> dict[str, tuple[np.ndarray, ScoreMeta | None]]:
    """All `VID.npy` in `directory` (sorted by name) with their metadata when present; the
    evidence files `VID_evidence.npy` that `vadkit score --evidence` writes are not scores.

    Arrays keep their float32/float64 dtype (so evaluating 10 M frames costs no float64 copy);
    integer and boolean arrays become float64. Errors on NaN/inf, non-1-D, complex, string and
    unreadable arrays, and on metadata that is not a vadkit score description or disagrees with
    its array, naming the file. A `VID.json` object that is not vadkit's (no `"format":
    "vadkit.scores"`) is ignored, as the arrays of other tools are accepted bare.
    """
    d = Path(directory)
    if not d.is_dir():
        raise VadkitError(f"{d}: score directory not found")
    out: dict[str, tuple[np.ndarray, ScoreMeta | None]] = {}
    for p in sorted(d.glob("*.npy")):
        if p.name.startswith(TMP_PREFIX):  # a file still being written; `.cam1.npy` is a video
            continue
        if is_evidence_file(p):  # VID_evidence.npy beside VID.npy (`vadkit score --evidence`)
            continue
        arr = _read_array(p)
        j = p.with_suffix(".json")
        out[p.stem] = (arr, _read_meta(j, p, arr) if j.exists() else None)
    if not out:
        raise VadkitError(f"{d}: no score files (*.npy) found")
    return out


def _read_array(p: Path) -> np.ndarray:
    try:
        arr = np.load(p, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise VadkitError(f"{p}: unreadable score file ({e})") from None
    if arr.ndim == 2 and 1 in arr.shape:
        arr = arr.reshape(-1)
    if arr.ndim != 1:
        raise VadkitError(f"{p}: expected a 1-D array of per-frame scores, got shape {arr.shape}")
    if arr.dtype.kind not in "biuf":
        raise VadkitError(
            f"{p}: scores must be real numbers, got an array of dtype {arr.dtype}; "
            f"write per-frame float scores (`vadkit score` does)"
        )
    if arr.dtype not in _KEPT_DTYPES:
        arr = arr.astype(np.float32 if arr.dtype == np.float16 else np.float64)
    bad = ~np.isfinite(arr)
    if bad.any():
        raise VadkitError(
            f"{p}: {int(bad.sum())} non-finite score(s) (NaN/inf), first at frame {int(np.argmax(bad))}"
        )
    return arr


def _read_meta(j: Path, p: Path, arr: np.ndarray) -> ScoreMeta | None:
    try:
        obj = json.loads(j.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise VadkitError(f"{j}: unreadable score metadata ({e})") from None
    if not isinstance(obj, dict):
        raise VadkitError(
            f"{j}: score metadata must be a JSON object, got {type(obj).__name__}; "
            f"rewrite the scores with `vadkit score` or remove {j.name}"
        )
    if obj.get("format") != FORMAT:
        return None  # another tool's description of a bare array
    known = {f.name for f in fields(ScoreMeta)}
    try:
        meta = ScoreMeta(**{k: v for k, v in obj.items() if k in known})
    except TypeError as e:
        raise VadkitError(f"{j}: incomplete score metadata ({e})") from None
    _check_meta(meta, j)
    if meta.frame_count != arr.shape[0]:
        raise VadkitError(
            f"{p}: {arr.shape[0]} frame scores but {j.name} says frame_count "
            f"{meta.frame_count}; rewrite the scores with `vadkit score`"
        )
    return meta


def _positive_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and x > 0


def _check_meta(meta: ScoreMeta, j: Path) -> None:
    """Types, and snippets that can have made `frame_count` frames: `snippets` snippets of
    `snippet_length` frames cover the frames to within one snippet (the last one loop-padded,
    or the frames after the last whole snippet dropped)."""
    for name in _INT_FIELDS:
        value = getattr(meta, name)
        if not _positive_int(value):
            raise VadkitError(f"{j}: {name} must be a positive integer, got {value!r}")
    for name in _STR_FIELDS:
        if not isinstance(getattr(meta, name), str):
            raise VadkitError(f"{j}: {name} must be a string, got {getattr(meta, name)!r}")
    if not isinstance(meta.extra, dict):
        raise VadkitError(f"{j}: extra must be a JSON object, got {meta.extra!r}")
    used = meta.frames_used
    if used is not None and not _positive_int(used):
        raise VadkitError(f"{j}: frames_used must be a positive integer or null, got {used!r}")
    length, t = meta.snippet_length, meta.snippets
    lo, hi = (t - 1) * length + 1, (t + 1) * length - 1
    # Resampled features (extract --fps) have fewer frames than frame_count: unless frames_used
    # says how many, only the lower bound (the one a too-long snippet_length breaks) holds.
    n = meta.frame_count if used is None else used
    if n < lo or (used is not None and n > hi):
        what = f"frame_count {n}" if used is None else f"frames_used {n}"
        span = f"at least {lo}" if used is None else f"{lo} to {hi}"
        raise VadkitError(
            f"{j}: {what} cannot come from {t} snippet(s) of {length} frames (they cover "
            f"{span} frames); the metadata disagrees with itself: rewrite the scores with "
            f"`vadkit score`"
        )

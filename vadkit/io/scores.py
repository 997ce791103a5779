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
from vadkit.io.atomic import save_json, save_npy

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


def write_scores(directory: str | os.PathLike, meta: ScoreMeta, frame_scores: np.ndarray) -> Path:
    frame_scores = np.asarray(frame_scores, dtype=np.float32).reshape(-1)
    if frame_scores.shape[0] != meta.frame_count:
        raise VadkitError(
            f"{meta.video}: {frame_scores.shape[0]} frame scores but frame count {meta.frame_count}"
        )
    d = Path(directory)
    save_npy(d / f"{meta.video}.npy", frame_scores)
    save_json(d / f"{meta.video}.json", asdict(meta))
    return d / f"{meta.video}.npy"


def read_scores(directory: str | os.PathLike) -> dict[str, tuple[np.ndarray, ScoreMeta | None]]:
    """All `VID.npy` in `directory` (sorted by name) with their metadata when present.

    Errors on NaN/inf, non-1-D arrays and unreadable files, naming the file.
    """
    d = Path(directory)
    if not d.is_dir():
        raise VadkitError(f"{d}: score directory not found")
    out: dict[str, tuple[np.ndarray, ScoreMeta | None]] = {}
    known = {f.name for f in fields(ScoreMeta)}
    for p in sorted(d.glob("*.npy")):
        if p.name.startswith("."):
            continue
        video = p.name[: -len(".npy")]
        try:
            arr = np.load(p, allow_pickle=False)
        except (OSError, ValueError) as e:
            raise VadkitError(f"{p}: unreadable score file ({e})") from None
        if arr.ndim == 2 and 1 in arr.shape:
            arr = arr.reshape(-1)
        if arr.ndim != 1:
            raise VadkitError(
                f"{p}: expected a 1-D array of per-frame scores, got shape {arr.shape}"
            )
        arr = arr.astype(np.float64, copy=False)
        bad = ~np.isfinite(arr)
        if bad.any():
            raise VadkitError(
                f"{p}: {int(bad.sum())} non-finite score(s) (NaN/inf), first at frame {int(np.argmax(bad))}"
            )
        meta = None
        j = d / f"{video}.json"
        if j.exists():
            try:
                obj = json.loads(j.read_text())
            except (OSError, json.JSONDecodeError) as e:
                raise VadkitError(f"{j}: unreadable score metadata ({e})") from None
            if isinstance(obj, dict) and obj.get("format") == FORMAT:
                try:
                    meta = ScoreMeta(**{k: v for k, v in obj.items() if k in known})
                except TypeError as e:
                    raise VadkitError(f"{j}: incomplete score metadata ({e})") from None
                if meta.frame_count != arr.shape[0]:
                    raise VadkitError(
                        f"{p}: {arr.shape[0]} frame scores but {j.name} says frame_count "
                        f"{meta.frame_count}; rewrite the scores with `vadkit score`"
                    )
        out[video] = (arr, meta)
    if not out:
        raise VadkitError(f"{d}: no score files (*.npy) found")
    return out

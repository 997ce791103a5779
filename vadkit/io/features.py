"""Feature files (docs/DESIGN.md, Features): RTFM-compatible arrays plus a JSON description of how they were made.

For a video `VID` in a features directory:

- `VID.npy`          float32 `(t, n, d)` clip features (t snippets, n crops, d channels);
- `VID_patch23.npy`  `(t, 6, d)`, `VID_patch35.npy` `(t, 15, d)`, `VID_patch47.npy` `(t, 28, d)`:
  MSIP's multi-scale patches (grids 2×3, 3×5, 4×7 of a 480×840 frame; SSRL's naming);
- `VID.json`         metadata (`FeatureMeta`).

Public features made by other tools (RTFM's UCF-Crime / ShanghaiTech `.npy`) have no JSON; they
load with `meta=None` and their shape is all that is known.
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
from vadkit.io.artifacts import check_video_name
from vadkit.io.atomic import save_json, save_npy

FORMAT = "vadkit.features"
FORMAT_VERSION = 1

# name suffix -> (rows, cols, patch height, patch width) on the 480×840 frame (MSIP, SSRL naming)
PATCH_GRIDS: dict[str, tuple[int, int, int, int]] = {
    "patch23": (2, 3, 240, 280),
    "patch35": (3, 5, 160, 168),
    "patch47": (4, 7, 120, 120),
}
PATCH_FRAME_SIZE = (480, 840)  # (h, w)
SNIPPET_LENGTH = 16  # frames per I3D snippet, the convention of every WS-VAD feature set


@dataclass
class FeatureMeta:
    """How a video's features were made. Stored as `VID.json` beside the arrays."""

    video: str
    backbone: str  # "i3d-inception" (1024-d) | "i3d-r50" (2048-d)
    feature_dim: int
    crops: int
    snippets: int
    frame_count: int  # true number of decoded frames of the source video (native fps)
    fps_native: float
    fps_used: float  # after resampling; == fps_native when not resampled
    frames_used: int  # frames after resampling (what the snippets were cut from)
    snippet_length: int = SNIPPET_LENGTH
    padding: str = "loop"  # "loop" (last snippet loop-padded, t = ceil) | "drop-last" (t = floor)
    patch_grids: dict[str, list[int]] | None = None  # PATCH_GRIDS subset written, or None
    patch_frame_size: list[int] | None = None
    short_side: int = 256
    crop_size: int = 224
    pixel_scaling: str = "x/127.5-1"
    weights_sha256: str | None = None  # None only with --random-weights
    weights_source: str = ""
    compute_dtype: str = "float32"
    dtype: str = "float32"
    source: str = ""
    source_size: int | None = None
    vadkit_version: str = __version__
    format: str = FORMAT
    format_version: int = FORMAT_VERSION
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def has_patches(self) -> bool:
        return bool(self.patch_grids)

    @property
    def patch_mode(self) -> str | None:
        """How the patch features were made: "exact" (I3D on each patch), "roi"/"roi-4f"
        (pooled from the whole frame's map); None without patches. Kept in `extra`; features
        written before the modes existed are exact."""
        if not self.has_patches:
            return None
        return str((self.extra or {}).get("patch_mode", "exact"))

    def spec(self) -> dict[str, Any]:
        """What a model trained on these features depends on (`FeatureSpec.to_dict`)."""
        return FeatureSpec.from_meta(self).to_dict()

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, obj: Any, *, path: str | os.PathLike = "") -> FeatureMeta:
        if not isinstance(obj, dict):
            raise VadkitError(
                f"{path}: not a vadkit feature description (a JSON {type(obj).__name__}, "
                "not an object)"
            )
        if obj.get("format") != FORMAT:
            raise VadkitError(
                f"{path}: not a vadkit feature description (format {obj.get('format')!r})"
            )
        if not isinstance(obj.get("format_version", 0), int):
            raise VadkitError(f"{path}: format_version must be an integer")
        if obj.get("format_version", 0) > FORMAT_VERSION:
            raise VadkitError(
                f"{path}: feature format version {obj['format_version']} is newer than this "
                f"vadkit understands ({FORMAT_VERSION}); upgrade vadkit"
            )
        known = {f.name for f in fields(cls)}
        try:
            meta = cls(**{k: v for k, v in obj.items() if k in known})
        except TypeError as e:
            raise VadkitError(f"{path}: incomplete feature description ({e})") from None
        bad = _type_problem(meta)
        if bad:
            raise VadkitError(f"{path}: malformed feature description: {bad}; re-extract it")
        return meta


# the fields `_type_problem` checks, by what they must be
_COUNTS = ("snippets", "frame_count", "frames_used")  # >= 0
_SIZES = ("feature_dim", "crops", "snippet_length", "short_side", "crop_size")  # > 0
_RATES = ("fps_native", "fps_used")  # > 0
_TEXTS = ("video", "backbone", "padding", "pixel_scaling", "weights_source", "compute_dtype",
          "dtype", "source", "vadkit_version")  # fmt: skip


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _type_problem(meta: FeatureMeta) -> str | None:
    """What in `meta` has the wrong type or an impossible value (first one), or None."""
    for name in _COUNTS + _SIZES:
        v = getattr(meta, name)
        if not _is_int(v) or v < (0 if name in _COUNTS else 1):
            kind = "a non-negative" if name in _COUNTS else "a positive"
            return f"{name} must be {kind} integer, got {v!r}"
    for name in _RATES:
        v = getattr(meta, name)
        if isinstance(v, bool) or not isinstance(v, int | float) or not v > 0 or v != v:
            return f"{name} must be a positive number, got {v!r}"
    for name in _TEXTS:
        if not isinstance(getattr(meta, name), str):
            return f"{name} must be a string, got {getattr(meta, name)!r}"
    if meta.weights_sha256 is not None and not isinstance(meta.weights_sha256, str):
        return f"weights_sha256 must be a string or null, got {meta.weights_sha256!r}"
    if meta.source_size is not None and not _is_int(meta.source_size):
        return f"source_size must be an integer or null, got {meta.source_size!r}"
    for name in ("patch_grids", "extra"):
        v = getattr(meta, name)
        if v is not None and not isinstance(v, dict):
            return f"{name} must be a JSON object, got {v!r}"
    return None


Grids = tuple[tuple[str, tuple[int, ...]], ...]


@dataclass(frozen=True)
class FeatureSpec:
    """What a model depends on in its features; stored in checkpoints as `feature_spec`.

    Features without metadata (RTFM's public `.npy`) only tell their shape: their backbone and
    patch grids are None (unknown), which `mismatch` does not compare."""

    feature_dim: int
    crops: int
    backbone: str | None = None
    snippet_length: int = SNIPPET_LENGTH
    patch_grids: Grids | None = None  # ((name, (rows, cols, h, w)), ...) in file order
    patch_mode: str | None = None  # "exact" | "roi" | "roi-4f"; None: unknown or no patches

    KEYS = ("feature_dim", "crops", "backbone", "snippet_length")
    PATCH_KEYS = ("patch_grids", "patch_mode")  # compared only for models that read patches

    @classmethod
    def from_meta(cls, meta: FeatureMeta) -> FeatureSpec:
        return cls.from_dict(
            {
                "backbone": meta.backbone,
                "feature_dim": meta.feature_dim,
                "crops": meta.crops,
                "snippet_length": meta.snippet_length,
                "patch_grids": meta.patch_grids,
                "patch_mode": meta.patch_mode,
            }
        )

    @classmethod
    def from_shape(cls, crops: int, feature_dim: int) -> FeatureSpec:
        return cls(feature_dim=int(feature_dim), crops=int(crops))

    @classmethod
    def of(cls, meta: FeatureMeta | None, crops: int, feature_dim: int) -> FeatureSpec:
        """From the metadata when there is some, else from the array shape."""
        return cls.from_meta(meta) if meta is not None else cls.from_shape(crops, feature_dim)

    @classmethod
    def from_dict(cls, obj: Any, *, source: str = "") -> FeatureSpec:
        """Read the stored form; a malformed one is a VadkitError naming `source`."""
        where = f"{source}: " if source else ""
        try:
            grids = obj.get("patch_grids")
            return cls(
                feature_dim=_int(obj["feature_dim"]),
                crops=_int(obj["crops"]),
                backbone=None if obj.get("backbone") is None else str(obj["backbone"]),
                snippet_length=_int(obj.get("snippet_length") or SNIPPET_LENGTH),
                patch_grids=None
                if not grids
                else tuple((str(k), tuple(_int(x) for x in v)) for k, v in grids.items()),
                patch_mode=None if obj.get("patch_mode") is None else str(obj["patch_mode"]),
            )
        except (AttributeError, KeyError, TypeError, ValueError) as e:
            raise VadkitError(f"{where}malformed feature spec {obj!r} ({e})") from None

    def to_dict(self) -> dict[str, Any]:
        """The stored form, as checkpoints have always held it."""
        return {
            "backbone": self.backbone,
            "feature_dim": self.feature_dim,
            "crops": self.crops,
            "snippet_length": self.snippet_length,
            "patch_grids": None
            if self.patch_grids is None
            else {k: list(v) for k, v in self.patch_grids},
            **({"patch_mode": self.patch_mode} if self.patch_mode is not None else {}),
        }

    @property
    def grids(self) -> list[list[int]] | None:
        """`(rows, cols, h, w)` per scale, in file order (MSIP's `patch_grids` config)."""
        return None if self.patch_grids is None else [list(v) for _, v in self.patch_grids]

    def mismatch(self, other: FeatureSpec, *, patches: bool) -> tuple[str, Any, Any] | None:
        """The first field where `other` does not fit this spec: `(field, ours, theirs)`.

        A field unknown on either side is not compared; the patch layout only matters to a
        model that reads patches."""
        ours, theirs = self.to_dict(), other.to_dict()
        for key in self.KEYS + (self.PATCH_KEYS if patches else ()):
            a, b = ours.get(key), theirs.get(key)
            if a is not None and b is not None and a != b:
                return key, a, b
        return None


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or int(value) != value:
        raise ValueError(f"{value!r} is not an integer")
    return int(value)


def clip_path(directory: str | os.PathLike, video: str) -> Path:
    return Path(directory) / f"{video}.npy"


def patch_path(directory: str | os.PathLike, video: str, grid: str) -> Path:
    return Path(directory) / f"{video}_{grid}.npy"


def meta_path(directory: str | os.PathLike, video: str) -> Path:
    return Path(directory) / f"{video}.json"


def write_features(
    directory: str | os.PathLike,
    meta: FeatureMeta,
    clip: np.ndarray,
    patches: dict[str, np.ndarray] | None = None,
) -> None:
    """Write arrays then metadata, each atomically; the JSON goes last so it marks completion."""
    check_video_name(meta.video, f"{directory}: ")
    clip = np.ascontiguousarray(clip, dtype=np.float32)
    if clip.ndim != 3 or clip.shape != (meta.snippets, meta.crops, meta.feature_dim):
        raise VadkitError(
            f"{meta.video}: clip features have shape {clip.shape}, metadata says "
            f"{(meta.snippets, meta.crops, meta.feature_dim)}"
        )
    save_npy(clip_path(directory, meta.video), clip)
    for grid, arr in (patches or {}).items():
        rows, cols = PATCH_GRIDS[grid][:2]
        if arr.shape != (meta.snippets, rows * cols, meta.feature_dim):
            raise VadkitError(f"{meta.video}: {grid} has shape {arr.shape}")
        save_npy(patch_path(directory, meta.video, grid), np.ascontiguousarray(arr, np.float32))
    save_json(meta_path(directory, meta.video), meta.to_json())


def read_meta(directory: str | os.PathLike, video: str) -> FeatureMeta | None:
    p = meta_path(directory, video)
    if not p.exists():
        return None
    try:
        obj = json.loads(p.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise VadkitError(f"{p}: unreadable feature metadata ({e})") from None
    return FeatureMeta.from_json(obj, path=p)


def _load_npy(p: Path, *, mmap: bool = False, missing: str = "") -> np.ndarray:
    if not p.exists():
        raise VadkitError(f"{p}: feature file not found{missing}")
    try:
        return np.load(p, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise VadkitError(f"{p}: unreadable .npy ({e})") from None


def load_clip(
    path: str | os.PathLike, *, mmap: bool = False
) -> tuple[np.ndarray, FeatureMeta | None]:
    """Load `VID.npy` and its metadata if present. 2-D `(t, d)` arrays become `(t, 1, d)`."""
    p = Path(path)
    arr = _load_npy(p, mmap=mmap)
    if arr.ndim == 2:
        arr = arr[:, None, :]
    if arr.ndim != 3:
        raise VadkitError(f"{p}: expected clip features of shape (t, n, d), got {arr.shape}")
    if not np.issubdtype(arr.dtype, np.floating):
        raise VadkitError(f"{p}: expected float features, got dtype {arr.dtype}")
    if arr.shape[0] == 0:
        raise VadkitError(
            f"{p}: holds 0 snippets (a video shorter than one snippet has no features); "
            "remove it from the inputs or re-extract it"
        )
    video = p.name[: -len(".npy")]
    meta = read_meta(p.parent, video)
    if meta is not None and tuple(arr.shape) != (meta.snippets, meta.crops, meta.feature_dim):
        raise VadkitError(
            f"{p}: array shape {tuple(arr.shape)} disagrees with its metadata "
            f"{(meta.snippets, meta.crops, meta.feature_dim)}; re-extract it"
        )
    return arr, meta


_NO_PATCHES = (
    "; this model reads MSIP's multi-scale patch features (VID_patch23/35/47.npy), which the "
    "features were extracted without: re-extract the videos with patches (`vadkit extract` "
    "without --no-patches)"
)


def load_patches(path: str | os.PathLike, *, mmap: bool = False) -> dict[str, np.ndarray]:
    """Load the three patch arrays beside clip file `path` (`VID.npy` → `VID_patch23.npy` …)."""
    p = Path(path)
    video = p.name[: -len(".npy")]
    out = {}
    for grid, (rows, cols, _, _) in PATCH_GRIDS.items():
        q = patch_path(p.parent, video, grid)
        arr = _load_npy(q, mmap=mmap, missing=_NO_PATCHES)
        if arr.ndim != 3 or arr.shape[1] != rows * cols:
            raise VadkitError(f"{q}: expected shape (t, {rows * cols}, d), got {arr.shape}")
        out[grid] = arr
    return out


def is_complete(directory: str | os.PathLike, video: str, *, patches: bool) -> bool:
    """True when the metadata and every array exist and load with the shapes it states."""
    try:
        meta = read_meta(directory, video)
        if meta is None:
            return False
        load_clip(clip_path(directory, video), mmap=True)
        if patches:
            if not meta.has_patches:
                return False
            got = load_patches(clip_path(directory, video), mmap=True)
            if any(
                a.shape[0] != meta.snippets or a.shape[2] != meta.feature_dim for a in got.values()
            ):
                return False
        return True
    except VadkitError:
        return False

"""Where in the frame: MSIP's patch geometry in video coordinates, and evidence heatmaps.

A run that reads patches scores a snippet from 49 patch features (6 + 15 + 28 on MSIP's three
grids). `VID_evidence.npy` (written by `vadkit score --evidence`) holds one value per snippet and
patch, in the order the features store them: the `patch23` grid, then `patch35`, then `patch47`,
each row-major. This module maps those values back onto the video frame.

The patch frame is the whole video frame resized (no crop), so a patch's box scales linearly
to the video; a grid whose patches do not divide the patch frame leaves a few pixels at the
bottom/right uncovered, which get no evidence from that grid.

`compute_evidence` computes the values and their units (see `METHODS`; one batched copy of the
video per patch), `write_evidence` / `read_evidence` are the file, `evidence_record` the
`extra["evidence"]` entry of the video's `VID.json` that names it with its method and patch
geometry, and `overlay` / `write_heatmap_png` draw one snippet's heatmap over a frame.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vadkit.errors import VadkitError
from vadkit.io.atomic import save_npy

GRID_ORDER = ("patch23", "patch35", "patch47")


def patch_regions(
    patch_grids: Mapping[str, Sequence[int]], patch_frame_size: Sequence[int]
) -> np.ndarray:
    """(P, 4) boxes `(x0, y0, x1, y1)` as fractions of the video frame, one per patch, in the
    order of `VID_evidence.npy`. `patch_grids` maps grid -> (rows, cols, patch h, patch w) and
    `patch_frame_size` is (h, w), both as a features' metadata records them."""
    fh, fw = (int(v) for v in patch_frame_size)
    boxes = []
    for name in GRID_ORDER:
        if name not in patch_grids:
            continue
        rows, cols, ph, pw = (int(v) for v in patch_grids[name])
        for r in range(rows):
            for c in range(cols):
                top, left = r * ph, c * pw
                boxes.append((left / fw, top / fh, (left + pw) / fw, (top + ph) / fh))
    if not boxes:
        raise VadkitError(f"no patch grids among {sorted(patch_grids)}; expected {GRID_ORDER}")
    return np.asarray(boxes, dtype=np.float64)


def pixel_boxes(regions: np.ndarray, width: int, height: int) -> np.ndarray:
    """(P, 4) integer pixel boxes `(x0, y0, x1, y1)` (x1/y1 exclusive) on a width×height frame."""
    scale = np.array([width, height, width, height], dtype=np.float64)
    return np.rint(regions * scale).astype(np.int64)


def heatmap(evidence: np.ndarray, regions: np.ndarray, width: int, height: int) -> np.ndarray:
    """(height, width) float32 map of one snippet's evidence `(P,)`: each pixel is the mean, over
    the grids that cover it, of the evidence of its patch on each grid (patches of one grid do
    not overlap, so this averages the scales)."""
    ev = np.asarray(evidence, dtype=np.float64).reshape(-1)
    if ev.shape[0] != regions.shape[0]:
        raise VadkitError(
            f"evidence has {ev.shape[0]} values per snippet but the patch geometry has "
            f"{regions.shape[0]} patches"
        )
    total = np.zeros((height, width), dtype=np.float64)
    count = np.zeros((height, width), dtype=np.float64)
    for value, (x0, y0, x1, y1) in zip(ev, pixel_boxes(regions, width, height), strict=True):
        total[y0:y1, x0:x1] += value
        count[y0:y1, x0:x1] += 1
    out = np.divide(total, count, out=np.zeros_like(total), where=count > 0)
    return out.astype(np.float32)


def box_overlap(regions: np.ndarray, box: Sequence[float]) -> np.ndarray:
    """(P,) area of each region's intersection with `box` (x0, y0, x1, y1), in the same units."""
    x0 = np.maximum(regions[:, 0], box[0])
    y0 = np.maximum(regions[:, 1], box[1])
    x1 = np.minimum(regions[:, 2], box[2])
    y1 = np.minimum(regions[:, 3], box[3])
    return np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)


# ---------------------------------------------------------------- the evidence file

EVIDENCE_SUFFIX = "_evidence"
SNIPPET_LENGTH = 16
# How a patch's evidence is measured (`vadkit score --evidence-method`): the first four replace
# the patch's feature by a baseline in every snippet and record the drop in the snippet score's
# log-odds; `grad-input` is a first-order estimate of the drop against a zero baseline. The
# default, the video's mean patch feature, pointed at the event on the quickstart's synthetic
# test videos as often as any (the top patch overlapped the event in 32 of 33 anomalous
# snippets, 97 %; a random patch 25 %; benchmarks/evidence_hit.py) and is one baseline for the
# whole video, so values compare across snippets (snippet-mean did as well, 97 % and 79 % vs
# 79 % on the training videos). A patch's own mean over the video does badly (48 %): an event
# that stays in one place for most of the video (a fight, a fall) is part of that patch's mean,
# so replacing it changes little; gradient x input (52 %) is cheap but only local.
METHODS: dict[str, str] = {
    "video-mean": "drop when the patch's feature is replaced by the video's mean patch feature",
    "snippet-mean": "drop when the patch's feature is replaced by its snippet's mean patch",
    "patch-mean": "drop when the patch's feature is replaced by that patch's mean over the video",
    "zero": "drop when the patch's feature is replaced by zeros",
    "grad-input": "gradient x input of the summed snippet log-odds (one backward pass)",
}
DEFAULT_METHOD = "video-mean"


def evidence_name(video: str) -> str:
    """The evidence file of `video` inside a score directory: `VID_evidence.npy`."""
    return f"{video}{EVIDENCE_SUFFIX}.npy"


def is_evidence_file(path: str | os.PathLike) -> bool:
    """Whether `DIR/X_evidence.npy` is video X's evidence (X.npy is beside it and it has no
    score metadata of its own) rather than the scores of a video named `X_evidence`."""
    p = Path(path)
    if not p.name.endswith(EVIDENCE_SUFFIX + ".npy") or p.with_suffix(".json").exists():
        return False
    if not p.is_file():
        return False
    owner = p.name[: -len(EVIDENCE_SUFFIX + ".npy")]
    return bool(owner) and (p.parent / f"{owner}.npy").exists()


def evidence_record(
    video: str,
    method: str,
    patch_grids: Mapping[str, Sequence[int]],
    patch_frame_size: Sequence[int],
    snippet_length: int = SNIPPET_LENGTH,
    units: str = "logit",
) -> dict[str, Any]:
    """The `extra["evidence"]` entry of a score file's `VID.json` (`units`: what the values
    measure, the drop in the snippet score's log-odds or in the score; see `compute_evidence`)."""
    return {
        "file": evidence_name(video),
        "method": method,
        "units": units,
        "patch_grids": {
            g: [int(v) for v in patch_grids[g]] for g in GRID_ORDER if g in patch_grids
        },
        "patch_frame_size": [int(v) for v in patch_frame_size],
        "snippet_length": int(snippet_length),
    }


def _load_record(j: Path) -> tuple[dict[str, Any], dict[str, Any]] | None:
    try:
        meta = json.loads(j.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise VadkitError(f"{j}: unreadable score metadata ({e})") from None
    if not isinstance(meta, dict) or meta.get("format") != "vadkit.scores":
        return None
    extra = meta.get("extra")
    record = extra.get("evidence") if isinstance(extra, dict) else None
    if record is None:
        return None
    if not isinstance(record, dict) or not isinstance(record.get("file"), str):
        raise VadkitError(f"{j}: extra.evidence must be an object naming its file, got {record!r}")
    return meta, record


def _record_regions(record: Mapping[str, Any], j: Path) -> np.ndarray:
    grids, size = record.get("patch_grids"), record.get("patch_frame_size")
    try:
        if not isinstance(grids, dict) or any(len(v) != 4 for v in grids.values()):
            raise TypeError("patch_grids")
        if len(size) != 2 or min(int(v) for v in size) <= 0:
            raise TypeError("patch_frame_size")
        return patch_regions(grids, size)
    except (TypeError, ValueError) as e:
        raise VadkitError(
            f"{j}: extra.evidence has a malformed patch geometry ({e}): patch_grids "
            f"{grids!r}, patch_frame_size {size!r}; rerun `vadkit score --evidence`"
        ) from None


def read_evidence(
    scores_dir: str | os.PathLike, video: str
) -> tuple[np.ndarray, np.ndarray] | None:
    """Video `video`'s evidence in a score directory: the float32 array `(snippets, P)` and
    the patches' boxes `(P, 4)` as fractions of the frame (`patch_regions`, same order); None
    when its `VID.json` records no evidence (or there is no vadkit `VID.json`).

    The array's shape is checked against the recorded geometry and the snippet count; a
    missing, unreadable or mis-shaped file is a VadkitError naming it."""
    d = Path(scores_dir)
    j = d / f"{video}.json"
    if not j.is_file():
        return None
    loaded = _load_record(j)
    if loaded is None:
        return None
    meta, record = loaded
    name = record["file"]
    if Path(name).name != name:
        raise VadkitError(f"{j}: extra.evidence.file must be a file name in {d}, got {name!r}")
    regions = _record_regions(record, j)
    p = d / name
    try:
        arr = np.load(p, allow_pickle=False)
    except FileNotFoundError:
        raise VadkitError(
            f"{p}: missing, but {j.name} records evidence there; rerun `vadkit score --evidence`"
        ) from None
    except (OSError, ValueError) as e:
        raise VadkitError(f"{p}: unreadable evidence file ({e})") from None
    _check_evidence(arr, p, snippets=meta.get("snippets"), patches=regions.shape[0])
    return arr.astype(np.float32, copy=False), regions


def _check_evidence(arr: np.ndarray, p: Path, *, snippets: Any, patches: int) -> None:
    if arr.dtype.kind != "f":
        raise VadkitError(f"{p}: evidence must be a float array, got dtype {arr.dtype}")
    want = (snippets if isinstance(snippets, int) else "t", patches)
    if (
        arr.ndim != 2
        or arr.shape[1] != patches
        or (isinstance(snippets, int) and arr.shape[0] != snippets)
    ):
        raise VadkitError(
            f"{p}: evidence has shape {arr.shape} but the score metadata expects "
            f"({want[0]}, {want[1]}) (snippets, patches of the recorded grids); rerun "
            "`vadkit score --evidence`"
        )
    if not np.isfinite(arr).all():
        raise VadkitError(f"{p}: evidence holds NaN or inf; rerun `vadkit score --evidence`")


def write_evidence(directory: str | os.PathLike, video: str, evidence: np.ndarray) -> Path:
    """Write `DIR/VID_evidence.npy` (float32 `(snippets, P)`) atomically; its path."""
    path = Path(directory) / evidence_name(video)
    save_npy(path, np.asarray(evidence, dtype=np.float32))
    return path


# ---------------------------------------------------------------- computing evidence

# Patch features held at once by the perturbed copies of one video, times the activations the
# model keeps per input float: copies are scored in chunks that stay under this many bytes.
BATCH_BYTES = 512 << 20
_ACTIVATION_FACTOR = 6


def _baseline(patches: Any, method: str) -> Any:
    """The replacement feature of every (snippet, patch) of `patches` `(t, P, d)`, broadcastable
    to it."""
    if method == "patch-mean":
        return patches.mean(0, keepdim=True)  # (1, P, d): each patch's own mean over time
    if method == "video-mean":
        return patches.mean((0, 1), keepdim=True)  # (1, 1, d)
    if method == "snippet-mean":
        return patches.mean(1, keepdim=True)  # (t, 1, d)
    return patches.new_zeros((1, 1, patches.shape[-1]))


def _log_odds(model: Any, inputs: Mapping[str, Any]) -> tuple[Any, Any]:
    """`(log-odds or None, scores)` `(b, t)` of one pass: the log-odds are the input of the
    model's last `nn.Sigmoid` (averaged over crops) when the scores are exactly the crop mean
    of its sigmoid (RTFM's and MSIP's classifier), None for any other model."""
    import torch

    last = [m for m in model.modules() if isinstance(m, torch.nn.Sigmoid)][-1:]
    seen: list[Any] = []
    handles = [m.register_forward_hook(lambda _m, i, _o: seen.append(i[0])) for m in last]
    try:
        s = model.scores(inputs)
    finally:
        for h in handles:
            h.remove()
    b, t = s.shape
    if len(seen) != 1 or seen[0].numel() % max(1, b * t):
        return None, s
    z = seen[0].reshape(b, -1, t)  # (b·n, t, 1) → (b, n, t)
    if not torch.allclose(torch.sigmoid(z).mean(1), s, rtol=0, atol=1e-6):
        return None, s
    return z.mean(1), s


def compute_evidence(
    model: Any,
    bag: Mapping[str, Any],
    *,
    method: str = DEFAULT_METHOD,
    batch_bytes: int = BATCH_BYTES,
    units: str = "logit",
) -> tuple[np.ndarray, str]:
    """Evidence `(t, P)` float32 of one video's full-length `bag` (batch 1, as
    `vadkit.data.full_length_bag` makes it) for a model in eval mode that reads patches, and
    its units: `"logit"` (the drop in the snippet score's log-odds) or `"score"` (in the
    score itself; asked for, or a model whose log-odds cannot be read).

    Log-odds by default because a confident snippet's score saturates (0.99999 in float32),
    where every patch's drop in the score rounds to 0, and those are the snippets a user wants
    located. Replacement methods make one copy of the video per patch, with that patch's
    feature replaced by the baseline in every snippet, score the copies in batches and return
    the original minus the copy's value per snippet: a snippet's value also counts its
    neighbours' patch through the model's temporal layers, and a video costs a few batched
    forward passes, not P x t."""
    from vadkit.models.common import PATCHES

    if method not in METHODS:
        raise VadkitError(f"unknown evidence method {method!r}; choose {', '.join(METHODS)}")
    if units not in ("logit", "score"):
        raise VadkitError(f"unknown evidence units {units!r}; choose logit or score")
    if PATCHES not in getattr(model, "inputs", ()):
        raise VadkitError(
            f"evidence needs a model that reads patches; {type(model).__name__} reads none"
        )
    inputs = {k: bag[k] for k in model.inputs}

    def value(x: Mapping[str, Any]) -> tuple[Any, Any]:
        z, s = _log_odds(model, x) if units == "logit" else (None, model.scores(x))
        return z, s

    if method == "grad-input":
        return _grad_input(value, inputs)
    return _replacement(value, inputs, method, batch_bytes)


def _replacement(value, inputs: dict[str, Any], method: str, batch_bytes: int):
    import torch

    from vadkit.models.common import PATCHES

    patches = inputs[PATCHES]  # (1, t, P, d)
    _, t, p, d = patches.shape
    per_copy = sum(v[0].numel() for v in inputs.values()) * 4 * _ACTIVATION_FACTOR
    chunk = int(max(1, min(p, batch_bytes // max(1, per_copy))))
    with torch.no_grad():
        base_z, base_s = value(inputs)  # (1, t)
        replace = _baseline(patches[0], method).expand(t, p, d)
        drops_z, drops_s = [], []
        for start in range(0, p, chunk):
            idx = torch.arange(start, min(p, start + chunk), device=patches.device)
            k = int(idx.shape[0])
            copies = {key: v.repeat(k, *([1] * (v.dim() - 1))) for key, v in inputs.items()}
            rows = torch.arange(k, device=idx.device)
            copies[PATCHES][rows, :, idx] = replace[:, idx].transpose(0, 1)
            z, s = value(copies)  # (k, t)
            drops_s.append(base_s - s)
            drops_z.append(None if z is None or base_z is None else base_z - z)
    if all(z is not None for z in drops_z):
        return torch.cat(drops_z).T.float().cpu().numpy(), "logit"
    return torch.cat(drops_s).T.float().cpu().numpy(), "score"


def _grad_input(value, inputs: dict[str, Any]) -> tuple[np.ndarray, str]:
    """Gradient x input: `sum_d x * d(sum_i v_i)/dx` per snippet and patch, v the log-odds
    (or scores), one backward pass (a first-order estimate of the drop when a patch's feature
    goes to zero)."""
    import torch

    from vadkit.models.common import PATCHES

    with torch.enable_grad():
        x = inputs[PATCHES].detach().clone().requires_grad_(True)
        z, s = value({**inputs, PATCHES: x})
        (grad,) = torch.autograd.grad((s if z is None else z).sum(), x)
    ev = (grad * x.detach()).sum(-1)[0].float().cpu().numpy()
    return ev, "score" if z is None else "logit"


# ---------------------------------------------------------------- pictures


def overlay(
    frame: np.ndarray,
    evidence: np.ndarray,
    regions: np.ndarray,
    *,
    alpha: float = 0.5,
    vmax: float | None = None,
    mark_top: bool = True,
) -> np.ndarray:
    """RGB uint8 `frame` `(h, w, 3)` with one snippet's evidence `(P,)` as a colour map on top
    (negative evidence shows as none; 1 = `vmax`, default the row's largest value) and the
    highest-evidence patch outlined."""
    from vadkit.opencv import cv2

    h, w = frame.shape[:2]
    heat = np.clip(heatmap(evidence, regions, w, h), 0, None)
    top = float(vmax) if vmax is not None else float(heat.max())
    level = heat / top if top > 0 else heat
    colours = cv2.applyColorMap(np.uint8(np.clip(level, 0, 1) * 255), cv2.COLORMAP_JET)[..., ::-1]
    weight = (alpha * np.clip(level, 0, 1))[..., None]
    out = (frame.astype(np.float32) * (1 - weight) + colours.astype(np.float32) * weight).astype(
        np.uint8
    )
    if mark_top and np.asarray(evidence).max() > 0:
        x0, y0, x1, y1 = (int(v) for v in pixel_boxes(regions, w, h)[int(np.argmax(evidence))])
        cv2.rectangle(out, (x0, y0), (max(x0, x1 - 1), max(y0, y1 - 1)), (255, 255, 255), 1)
    return out


def write_heatmap_png(
    path: str | os.PathLike, frame: np.ndarray, evidence: np.ndarray, regions: np.ndarray, **kw: Any
) -> Path:
    """Write `overlay(frame, evidence, regions, **kw)` as a PNG (atomically); its path."""
    from vadkit.io.atomic import atomic_path
    from vadkit.opencv import cv2

    p = Path(path)
    with atomic_path(p, suffix=".png") as tmp:
        if not cv2.imwrite(str(tmp), overlay(frame, evidence, regions, **kw)[..., ::-1].copy()):
            raise VadkitError(f"{p}: cannot write the PNG")
    return p

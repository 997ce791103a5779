"""Where in the frame: MSIP's patch geometry in video coordinates, and evidence heatmaps.

A run that reads patches scores a snippet from 49 patch features (6 + 15 + 28 on MSIP's three
grids). `VID_evidence.npy` (written by `vadkit score --evidence`) holds one value per snippet and
patch, in the order the features store them: the `patch23` grid, then `patch35`, then `patch47`,
each row-major. This module maps those values back onto the video frame.

The patch frame is the whole video frame resized (no crop), so a patch's box scales linearly
to the video; a grid whose patches do not divide the patch frame leaves a few pixels at the
bottom/right uncovered, which get no evidence from that grid.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from vadkit.errors import VadkitError

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

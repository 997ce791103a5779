"""Shared-trunk MSIP patches (`--patch-mode roi`): one I3D pass over the whole patch frame.

The exact path runs Inception-I3D on each of the 49 patches (2x3, 3x5 and 4x7 grids on the
480x840 frame) and averages each patch's `Mixed_5c` map. The shared-trunk path runs the network
once on the whole frame and, for each patch, averages the cells of the frame's map that lie
under the patch, weighting each cell by the fraction of its (stride x stride) pixel footprint
inside the patch (a 120 px patch covers 3.75 cells of a stride-32 map). The features then differ
from the exact ones only where the patch's own border matters: the exact patch sees zero padding
at its edges, the frame's map sees the neighbouring pixels.

A second split (`ROI_SPLITS["Mixed_4f"]`) runs the trunk up to `Mixed_4f` (stride 16) on the
frame, crops each patch's cells of that map and runs the last blocks (`MaxPool3d_5a_2x2`,
`Mixed_5b`, `Mixed_5c`) per patch: closer to the exact features, at the cost of those blocks
on every patch.
"""

from __future__ import annotations

import numpy as np
import torch

from vadkit.features.i3d import InceptionI3d
from vadkit.video import patch_boxes

# endpoint -> spatial stride of its map (Conv3d_1a and three max-pools halve the frame each)
ROI_SPLITS: dict[str, int] = {"Mixed_5c": 32, "Mixed_4f": 16}


def _overlap_1d(start: int, length: int, cells: int, stride: int) -> np.ndarray:
    """Fraction of [start, start + length) that each cell [i·s, (i+1)·s) covers."""
    lo = np.arange(cells) * stride
    cover = np.clip(np.minimum(lo + stride, start + length) - np.maximum(lo, start), 0, None)
    return cover / length


def region_weights(
    layout: tuple[int, int, int, int], map_hw: tuple[int, int], stride: int
) -> np.ndarray:
    """(patches, h', w') averaging weights of a grid's patches on a map of stride `stride`;
    each patch's weights sum to 1."""
    _, _, ph, pw = layout
    h, w = map_hw
    out = np.empty((len(patch_boxes(layout)), h, w), np.float32)
    for i, (top, left) in enumerate(patch_boxes(layout)):
        wy, wx = _overlap_1d(top, ph, h, stride), _overlap_1d(left, pw, w, stride)
        out[i] = np.outer(wy, wx) / (wy.sum() * wx.sum())
    return out


def _cells(start: int, length: int, stride: int, cells: int) -> slice:
    """The whole cells of a stride-`stride` map nearest to pixels [start, start + length)."""
    a = min(int(round(start / stride)), cells - 1)
    return slice(a, min(max(a + 1, int(round((start + length) / stride))), cells))


TAIL = ("MaxPool3d_5a_2x2", "Mixed_5b", "Mixed_5c")


def trunk(model: InceptionI3d, x: torch.Tensor, split: str) -> torch.Tensor:
    """The map of endpoint `split` of the (b, 3, T, fh, fw) frame clips."""
    for name in model.ENDPOINTS:
        x = getattr(model, name)(x)
        if name == split:
            return x
    raise ValueError(f"no endpoint {split!r}")


def pool_regions(
    model: InceptionI3d,
    fmap: torch.Tensor,
    layouts: dict[str, tuple[int, int, int, int]],
    split: str,
) -> dict[str, torch.Tensor]:
    """{grid: (b, patches, d) float32} from the frame map `fmap` of endpoint `split`."""
    stride = ROI_SPLITS[split]
    h, w = fmap.shape[3:]
    out = {}
    if split == "Mixed_5c":
        pooled = fmap.float().mean(dim=2)  # (b, d, h', w'): time first (the pooling is linear)
        for grid, layout in layouts.items():
            wts = torch.from_numpy(region_weights(layout, (h, w), stride)).to(pooled.device)
            out[grid] = torch.einsum("bdhw,phw->bpd", pooled, wts)
        return out
    for grid, layout in layouts.items():
        _, _, ph, pw = layout
        crops = [
            fmap[:, :, :, _cells(top, ph, stride, h), _cells(left, pw, stride, w)]
            for top, left in patch_boxes(layout)
        ]
        feats = [_tail(model, c) for c in _same_shape_groups(crops)]
        out[grid] = torch.cat(feats, dim=1)  # (b, patches, d), raster order kept
    return out


def _same_shape_groups(crops: list[torch.Tensor]) -> list[torch.Tensor]:
    """Consecutive crops of one shape stacked as (b, n, c, t, h, w) runs, in order."""
    groups: list[list[torch.Tensor]] = []
    for c in crops:
        if groups and groups[-1][0].shape == c.shape:
            groups[-1].append(c)
        else:
            groups.append([c])
    return [torch.stack(g, dim=1) for g in groups]


def _tail(model: InceptionI3d, crops: torch.Tensor) -> torch.Tensor:
    """(b, n, c, t, h, w) crops of the Mixed_4f map -> (b, n, d) pooled Mixed_5c features."""
    b, n = crops.shape[:2]
    x = crops.flatten(0, 1).contiguous(memory_format=torch.channels_last_3d)
    for name in TAIL:
        x = getattr(model, name)(x)
    return x.float().mean(dim=(2, 3, 4)).reshape(b, n, -1)


__all__ = ["ROI_SPLITS", "pool_regions", "region_weights", "trunk"]

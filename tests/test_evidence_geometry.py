"""Patch geometry in video coordinates and the evidence heatmap."""

import numpy as np
import pytest

from vadkit.errors import VadkitError
from vadkit.evidence import box_overlap, heatmap, patch_regions, pixel_boxes

PAPER = {"patch23": [2, 3, 240, 280], "patch35": [3, 5, 160, 168], "patch47": [4, 7, 120, 120]}


def test_paper_geometry_has_49_patches_in_feature_order():
    r = patch_regions(PAPER, (480, 840))
    assert r.shape == (49, 4)
    assert r[0].tolist() == [0.0, 0.0, 1 / 3, 0.5]
    assert r[5].tolist() == pytest.approx([2 / 3, 0.5, 1.0, 1.0])
    assert r[6].tolist() == pytest.approx([0.0, 0.0, 168 / 840, 1 / 3])  # patch35 starts
    assert r[21].tolist() == pytest.approx([0.0, 0.0, 1 / 7, 0.25])  # patch47 starts
    # each grid tiles the frame once at 480x840
    area = (r[:, 2] - r[:, 0]) * (r[:, 3] - r[:, 1])
    assert area[:6].sum() == pytest.approx(1) and area[21:].sum() == pytest.approx(1)


def test_heatmap_averages_scales_and_points_at_the_patch():
    r = patch_regions(PAPER, (480, 840))
    ev = np.zeros(49)
    ev[0] = 3.0  # top-left patch of the coarse grid only
    h = heatmap(ev, r, 84, 48)
    assert h.shape == (48, 84) and h.dtype == np.float32
    assert h[0, 0] == pytest.approx(1.0)  # mean over 3 grids
    assert h[47, 83] == 0.0
    ev = np.zeros(49)
    ev[[0, 6, 21]] = 1.0  # the top-left patch on every grid
    assert heatmap(ev, r, 84, 48)[0, 0] == pytest.approx(1.0)
    with pytest.raises(VadkitError, match="48 values per snippet"):
        heatmap(np.zeros(48), r, 84, 48)


def test_remainder_pixels_uncovered_and_overlap():
    grids = {"patch23": [2, 3, 64, 74], "patch35": [3, 5, 42, 44], "patch47": [4, 7, 32, 32]}
    r = patch_regions(grids, (128, 224))
    px = pixel_boxes(r, 224, 128)
    assert px[:, 2].max() <= 224 and px[27:, 2].max() == 224  # 7 x 32 = 224
    ov = box_overlap(r, (0.0, 0.0, 0.1, 0.1))
    assert ov[0] == pytest.approx(0.01) and ov[1] == 0.0
    with pytest.raises(VadkitError, match="no patch grids"):
        patch_regions({}, (128, 224))

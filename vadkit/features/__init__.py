"""Video backbones: a small registry of what `vadkit extract` can run.

Each backbone says how to build its network, how pixels are scaled (an affine map of 0-255
RGB), and where its weights come from.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from vadkit.errors import VadkitError
from vadkit.features import weights as W
from vadkit.features.i3d import InceptionI3d, fuse_batch_norm
from vadkit.features.resnet3d import I3DResNet50


@dataclass(frozen=True)
class BackboneSpec:
    name: str
    build: Callable[[], nn.Module]
    pixel_scale: float  # network input = pixel * scale + offset, pixel in 0..255
    pixel_offset: float
    pixel_scaling: str  # as recorded in feature metadata
    fetchable: bool  # vadkit can download its weights


BACKBONES: dict[str, BackboneSpec] = {
    "i3d-inception": BackboneSpec(
        "i3d-inception", InceptionI3d, 1 / 127.5, -1.0, "x/127.5-1", fetchable=True
    ),
    # RTFM's I3D-ResNet50 features: mean 114.75, std 57.375 on all channels (RTFM / Tushar-N)
    "i3d-r50": BackboneSpec(
        "i3d-r50", I3DResNet50, 1 / 57.375, -114.75 / 57.375, "(x-114.75)/57.375", fetchable=False
    ),
}


@dataclass
class LoadedBackbone:
    spec: BackboneSpec
    model: nn.Module
    feature_dim: int
    weights_sha256: str | None
    weights_source: str


def list_backbones() -> list[str]:
    return sorted(BACKBONES)


def load_backbone(
    name: str,
    *,
    weights: str | None = None,
    random_weights: bool = False,
    seed: int = 0,
    fuse: bool = True,
) -> LoadedBackbone:
    """Build backbone `name` in eval mode with its weights.

    `weights=None` fetches the default weights when the backbone has public ones (Inception-I3D);
    `random_weights=True` keeps a seeded random init (for tests; recorded as such).
    """
    if name not in BACKBONES:
        raise VadkitError(f"unknown backbone {name!r}; choose one of {', '.join(BACKBONES)}")
    spec = BACKBONES[name]
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = spec.build()
    if random_weights:
        sha, source = None, f"random (seed {seed})"
    else:
        if weights is None:
            if not spec.fetchable:
                raise VadkitError(
                    f"backbone {name} has no public weights; pass --weights PATH (a state dict "
                    "with i3d_r50_kinetics.pth key names) or --random-weights for a test run"
                )
            weights = str(W.fetch_i3d_weights())
        loaded = W.load_weights(weights)
        W.load_into(model, loaded.state_dict, name=str(weights))
        sha, source = loaded.sha256, loaded.source
    model.eval()
    if fuse and isinstance(model, InceptionI3d):
        fuse_batch_norm(model)
    for p in model.parameters():
        p.requires_grad_(False)
    return LoadedBackbone(spec, model, model.feature_dim, sha, source)


__all__ = ["BACKBONES", "BackboneSpec", "LoadedBackbone", "list_backbones", "load_backbone"]

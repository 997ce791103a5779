"""Video backbones: a small registry of what `vadkit extract` can run.

Each backbone says how to build its network, how pixels are scaled (an affine map of 0-255
RGB), and where its weights come from.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from vadkit.errors import VadkitError

if TYPE_CHECKING:  # torch is imported when a backbone is built, not with this module
    from torch import nn


def _inception() -> nn.Module:
    from vadkit.features.i3d import InceptionI3d

    return InceptionI3d()


def _resnet50() -> nn.Module:
    from vadkit.features.resnet3d import I3DResNet50

    return I3DResNet50()


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
        "i3d-inception", _inception, 1 / 127.5, -1.0, "x/127.5-1", fetchable=True
    ),
    # RTFM's I3D-ResNet50 features: mean 114.75, std 57.375 on all channels (RTFM / Tushar-N)
    "i3d-r50": BackboneSpec(
        "i3d-r50", _resnet50, 1 / 57.375, -114.75 / 57.375, "(x-114.75)/57.375", fetchable=False
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


def backbone_spec(name: str) -> BackboneSpec:
    if name not in BACKBONES:
        raise VadkitError(f"unknown backbone {name!r}; choose one of {', '.join(BACKBONES)}")
    return BACKBONES[name]


def _load_weights(spec: BackboneSpec, model: nn.Module, weights: str | None) -> tuple[str, str]:
    """Load `weights` (None: fetch the default ones) into `model`; return (sha256, source)."""
    from vadkit.features import weights as W

    if weights is None:
        if not spec.fetchable:
            raise VadkitError(
                f"backbone {spec.name} has no public weights; pass --weights PATH (a state dict "
                "with i3d_r50_kinetics.pth key names) or --random-weights for a test run"
            )
        weights = str(W.fetch_i3d_weights())
    loaded = W.load_weights(weights)
    W.load_into(model, loaded.state_dict, name=str(weights))
    return loaded.sha256, loaded.source


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
    import torch

    from vadkit.features.i3d import InceptionI3d, fuse_batch_norm

    spec = backbone_spec(name)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = spec.build()
    if random_weights:
        sha, source = None, f"random (seed {seed})"
    else:
        sha, source = _load_weights(spec, model, weights)
    model.eval()
    if fuse and isinstance(model, InceptionI3d):
        fuse_batch_norm(model)
    for p in model.parameters():
        p.requires_grad_(False)
    return LoadedBackbone(spec, model, model.feature_dim, sha, source)


__all__ = [
    "BACKBONES",
    "BackboneSpec",
    "LoadedBackbone",
    "backbone_spec",
    "list_backbones",
    "load_backbone",
]

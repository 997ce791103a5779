"""RTFM (Tian et al., ICCV 2021): the CTR temporal network, the snippet classifier, top-k feature
magnitude and its MIL loss (docs/DESIGN.md, RTFM). CTR + classifier is also MSIP's stage 1.

Follows the official code (tianyu0207/RTFM `model.py`): Conv→ReLU→BN order, a non-local block
whose attention is divided by the sequence length, Xavier init. With d = 2048 the model has
24,718,849 parameters.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from vadkit.models import register_model
from vadkit.models.common import (
    LOSS_VARIANTS,
    SMOOTHNESS_WEIGHT,
    SPARSITY_WEIGHT,
    TOPK_DROPOUT,
    Bag,
    ModelConfig,
    VadModel,
    bce_bags,
    gather_time,
    smoothness,
    sparsity,
    topk_count,
    topk_indices,
    xavier_init,
)

# RTFM's loss constants (`RTFM_loss(alpha=0.0001, margin=100)` in the official train.py).
FM_MARGIN = 100.0
FM_WEIGHT = 1e-4
# Dropout of RTFM's classifier (`nn.Dropout(0.7)`).
CLASSIFIER_DROPOUT = 0.7


class NonLocal1d(nn.Module):
    """Embedded-dot-product non-local block (Wang et al. 2018) as RTFM uses it: no softmax, the
    affinity divided by the number of positions, a zero-initialised BN so it starts as identity."""

    def __init__(self, channels: int, inner: int) -> None:
        super().__init__()
        self.theta = nn.Conv1d(channels, inner, 1)
        self.phi = nn.Conv1d(channels, inner, 1)
        self.g = nn.Conv1d(channels, inner, 1)
        self.out = nn.Conv1d(inner, channels, 1)
        self.bn = nn.BatchNorm1d(channels)

    def reset_bn(self) -> None:
        nn.init.zeros_(self.bn.weight)
        nn.init.zeros_(self.bn.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, c, t)
        t = x.shape[-1]
        theta = self.theta(x).transpose(1, 2)  # (B, t, c')
        phi = self.phi(x)  # (B, c', t)
        g = self.g(x).transpose(1, 2)  # (B, t, c')
        y = torch.bmm(torch.bmm(theta, phi) / t, g)  # (B, t, c')
        return x + self.bn(self.out(y.transpose(1, 2)))  # (B, c, t)


class CTR(nn.Module):
    """RTFM's temporal network: a pyramid of dilated convs beside a non-local block, fused back
    to the input dim with a residual. `(B, t, d)` → `(B, t, d)`."""

    def __init__(self, *, feature_dim: int, hidden: int = 512) -> None:
        super().__init__()
        d = feature_dim

        def dilated(dilation: int) -> nn.Sequential:
            conv = nn.Conv1d(d, hidden, 3, padding=dilation, dilation=dilation)
            return nn.Sequential(conv, nn.ReLU(), nn.BatchNorm1d(hidden))

        self.conv_1, self.conv_2, self.conv_3 = dilated(1), dilated(2), dilated(4)
        self.conv_4 = nn.Sequential(nn.Conv1d(d, hidden, 1, bias=False), nn.ReLU())
        self.non_local = NonLocal1d(hidden, hidden // 2)
        self.conv_5 = nn.Sequential(
            nn.Conv1d(4 * hidden, d, 3, padding=1, bias=False), nn.ReLU(), nn.BatchNorm1d(d)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, t, d)
        x = x.transpose(1, 2)  # (B, d, t)
        pyramid = [self.conv_1(x), self.conv_2(x), self.conv_3(x)]  # 3 × (B, h, t)
        local = self.non_local(self.conv_4(x))  # (B, h, t)
        out = self.conv_5(torch.cat([*pyramid, local], dim=1)) + x  # (B, d, t)
        return out.transpose(1, 2)  # (B, t, d)


def classifier(feature_dim: int, *, dropout: float = CLASSIFIER_DROPOUT) -> nn.Sequential:
    """Snippet classifier `(…, d)` → `(…, 1)` in [0, 1]; layer sizes 512, 128 are RTFM's."""
    return nn.Sequential(
        nn.Dropout(dropout),
        nn.Linear(feature_dim, 512),
        nn.ReLU(),
        nn.Dropout(dropout),
        nn.Linear(512, 128),
        nn.ReLU(),
        nn.Dropout(dropout),
        nn.Linear(128, 1),
        nn.Sigmoid(),
    )


@dataclass(frozen=True)
class RTFMConfig(ModelConfig):
    feature_dim: int = 2048  # I3D-ResNet50 features, RTFM's
    segments: int = 32  # training segments per video (RTFM)
    hidden: int = 512  # CTR width (RTFM)
    dropout: float = CLASSIFIER_DROPOUT
    topk_dropout: float = TOPK_DROPOUT
    loss: str = "msip"  # sparsity/smoothness form, see common.sparsity

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("segments", "hidden"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("dropout", "topk_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        if self.loss not in LOSS_VARIANTS:
            raise ValueError(
                f"unknown loss variant {self.loss!r}; choose one of {', '.join(LOSS_VARIANTS)}"
            )


class RTFM(VadModel):
    """CTR + classifier with top-k feature-magnitude learning."""

    name = "rtfm"
    Config = RTFMConfig

    @classmethod
    def tiny_config(cls) -> dict[str, Any]:
        return {"hidden": 32}

    def __init__(self, config: RTFMConfig | None = None, /, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        c = self.cfg
        self.loss_variant = c.loss
        self.k = topk_count(c.segments)  # RTFM: k = num_segments // 10 → 3
        self.ctr = CTR(feature_dim=c.feature_dim, hidden=c.hidden)
        self.classifier = classifier(c.feature_dim, dropout=c.dropout)
        self.explore = nn.Dropout(c.topk_dropout)
        xavier_init(self)
        self.ctr.non_local.reset_bn()

    @property
    def min_snippets(self) -> int:
        return self.k  # the top-k selection takes k snippets of every video

    def forward(self, clip: torch.Tensor, patches: torch.Tensor | None = None) -> dict:
        b, n, t, d = clip.shape  # (b, n, t, d)
        feats = self.ctr(clip.reshape(b * n, t, d))  # (b·n, t, d)
        scores = self.classifier(feats).view(b, n, t).mean(1)  # (b, t)
        magnitudes = torch.linalg.vector_norm(feats, dim=-1).view(b, n, t).mean(1)  # (b, t)
        return {"scores": scores, "features": feats.view(b, n, t, d), "magnitudes": magnitudes}

    def _select(self, out: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """Bag score `(b,)` and the top-k features of every crop `(b, n, k, d)`."""
        idx = topk_indices(out["magnitudes"], self.k, self.explore)  # (b, k)
        bag_score = gather_time(out["scores"], idx, 1).mean(1)  # (b,)
        return bag_score, gather_time(out["features"], idx, 2)  # (b, n, k, d)

    def loss(self, normal: Bag, abnormal: Bag) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        out_n, out_a = self.forward_pair(normal, abnormal)
        score_n, feat_n = self._select(out_n)
        score_a, feat_a = self._select(out_a)
        l_bce = bce_bags(score_n, score_a)
        # Feature-magnitude loss per crop row: ‖mean_k‖₂ of the selected features.
        mag_a = torch.linalg.vector_norm(feat_a.mean(2), dim=-1).reshape(-1)  # (b·n,)
        mag_n = torch.linalg.vector_norm(feat_n.mean(2), dim=-1).reshape(-1)  # (b·n,)
        l_fm = ((FM_MARGIN - mag_a).abs() + mag_n).pow(2).mean()
        l_sparse = sparsity(out_a["scores"], self.loss_variant)
        l_smooth = smoothness(out_a["scores"], self.loss_variant)
        total = l_bce + FM_WEIGHT * l_fm + SPARSITY_WEIGHT * l_sparse + SMOOTHNESS_WEIGHT * l_smooth
        parts = {
            "bce": l_bce.detach(),
            "feature_magnitude": l_fm.detach(),
            "sparsity": l_sparse.detach(),
            "smoothness": l_smooth.detach(),
        }
        return total, parts


register_model(RTFM)

__all__ = ["CTR", "RTFM", "NonLocal1d", "RTFMConfig", "classifier"]

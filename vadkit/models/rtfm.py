"""RTFM (Tian et al., ICCV 2021): the CTR temporal network, the snippet classifier, top-k feature
magnitude and its MIL loss (docs/DESIGN.md, RTFM). CTR + classifier is also MSIP's stage 1.

Follows the official code (tianyu0207/RTFM `model.py`, `train.py`): Conv→ReLU→BN order, a
non-local block whose attention is divided by the sequence length, Xavier init, and its
dropouts where the code has them: `Dropout(0.7)` on the CTR output, which the feature
magnitudes, the top-k selection, the feature-magnitude loss and the classifier all see; two
more inside the classifier; a `Dropout(0.7)` mask over ones for top-k exploration. With
d = 2048 the model has 24,718,849 parameters; with the official weights (`vadkit convert`)
its outputs, losses and gradients are the official code's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from vadkit.models import register_model
from vadkit.models.common import (
    SMOOTHNESS_WEIGHT,
    SPARSITY_WEIGHT,
    TOPK_DROPOUT,
    Bag,
    ModelConfig,
    VadModel,
    bce_bags,
    canonical_loss,
    gather_time,
    regularisers,
    topk_count,
    topk_indices,
    xavier_init,
)

# RTFM's loss constants (`RTFM_loss(alpha=0.0001, margin=100)` in the official train.py).
FM_MARGIN = 100.0
FM_WEIGHT = 1e-4
# RTFM's `nn.Dropout(0.7)`: on the CTR output and after fc1 and fc2 (see Classifier).
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


class Classifier(nn.Sequential):
    """RTFM's snippet classifier `(…, d)` → `(…, 1)` in [0, 1], layer sizes 512, 128.

    Slot 0 is RTFM's feature dropout (`out = self.drop_out(out)` right after `Aggregate` in the
    official `Model.forward`): the model applies it to the CTR output itself with `drop`, so
    the magnitudes, top-k and feature-magnitude loss see the same dropped-out features as the
    classifier; `head` is the rest. The two inner dropouts are the official ones after `fc1`
    and `fc2` (the same `drop_out` module, p = 0.7). Calling the whole Sequential runs all
    three on an undropped input.
    """

    def drop(self, x: torch.Tensor) -> torch.Tensor:
        return self[0](x)

    def head(self, x: torch.Tensor) -> torch.Tensor:
        for layer in list(self)[1:]:
            x = layer(x)
        return x


def classifier(feature_dim: int, *, dropout: float = CLASSIFIER_DROPOUT) -> Classifier:
    """The classifier with its feature dropout in slot 0 (the slots, hence the state-dict keys
    `classifier.1/4/7`, are unchanged from earlier vadkit versions)."""
    return Classifier(
        nn.Dropout(dropout),  # feature dropout on the CTR output (see Classifier)
        nn.Linear(feature_dim, 512),
        nn.ReLU(),
        nn.Dropout(dropout),  # official: after fc1 + ReLU
        nn.Linear(512, 128),
        nn.ReLU(),
        nn.Dropout(dropout),  # official: after fc2 + ReLU
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
    loss: str = "rtfm"  # score regularisers: RTFM's code (models.LOSS_VARIANTS)

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("segments", "hidden"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("dropout", "topk_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        object.__setattr__(self, "loss", canonical_loss(self.loss))


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
        # Feature dropout on the CTR output: everything below sees the dropped-out features.
        feats = self.classifier.drop(self.ctr(clip.reshape(b * n, t, d)))  # (b·n, t, d)
        scores = self.classifier.head(feats).view(b, n, t).mean(1)  # (b, t)
        magnitudes = torch.linalg.vector_norm(feats, dim=-1).view(b, n, t).mean(1)  # (b, t)
        return {"scores": scores, "features": feats.view(b, n, t, d), "magnitudes": magnitudes}

    def _select(self, out: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """Bag score `(b,)` and the top-k features of every crop `(b, n, k, d)`; the indices come
        from the crop-averaged magnitudes times the exploration mask (`self.explore`, RTFM's
        `drop_out(ones)`, one mask per video shared by its crops)."""
        idx = topk_indices(out["magnitudes"], self.k, self.explore)  # (b, k)
        bag_score = gather_time(out["scores"], idx, 1).mean(1)  # (b,)
        return bag_score, gather_time(out["features"], idx, 2)  # (b, n, k, d)

    def loss(self, normal: Bag, abnormal: Bag) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """RTFM's objective: BCE of the bag scores + 1e-4 × feature-magnitude loss + the score
        regularisers of `self.loss_variant`. `parts` are unweighted."""
        out_n, out_a = self.forward_pair(normal, abnormal)
        score_n, feat_n = self._select(out_n)
        score_a, feat_a = self._select(out_a)
        l_bce = bce_bags(score_n, score_a)
        l_fm = feature_magnitude_loss(feat_n, feat_a)
        l_sparse, l_smooth = regularisers(out_n["scores"], out_a["scores"], self.loss_variant)
        total = l_bce + FM_WEIGHT * l_fm + SPARSITY_WEIGHT * l_sparse + SMOOTHNESS_WEIGHT * l_smooth
        parts = {
            "bce": l_bce.detach(),
            "feature_magnitude": l_fm.detach(),
            "sparsity": l_sparse.detach(),
            "smoothness": l_smooth.detach(),
        }
        return total, parts


def feature_magnitude_loss(feat_n: torch.Tensor, feat_a: torch.Tensor) -> torch.Tensor:
    """RTFM's MIL ranking loss on the selected features `(b, n, k, d)` of each bag: per crop row,
    `a = ‖mean_k‖₂` (abnormal) and `n` (normal), `mean((|margin − a| + n)²)`."""
    mag_a = torch.linalg.vector_norm(feat_a.mean(2), dim=-1).reshape(-1)  # (b·n,)
    mag_n = torch.linalg.vector_norm(feat_n.mean(2), dim=-1).reshape(-1)  # (b·n,)
    return ((FM_MARGIN - mag_a).abs() + mag_n).pow(2).mean()


register_model(RTFM)

__all__ = [
    "CTR",
    "RTFM",
    "Classifier",
    "NonLocal1d",
    "RTFMConfig",
    "classifier",
    "feature_magnitude_loss",
]

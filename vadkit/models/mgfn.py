"""MGFN (Chen et al., AAAI 2023): feature amplification, Glance and Focus blocks, and the
magnitude-contrastive loss (docs/DESIGN.md, MGFN).

Follows the official code (carolchenyx/MGFN. `models/mgfn.py`, `utils/utils.py`, `train.py`):
a channel LayerNorm with biased variance, Focus blocks whose 5-tap temporal kernel is shared by
the 64 channels of a head (head = channel index modulo the number of heads, as the code's
`rearrange('b (c h) t -> (b c) h t')` groups them). Its dropouts are the official ones: the
top-k exploration mask `Dropout(0.7)` over ones (`drop_out` in `MSNSD`, `--dropout_rate`) and
the feed-forward `Dropout` between GELU and the second 1×1 conv (`FeedForward`, rate 0 as the
model is built); MGFN has no dropout on its features and Glance's `dropout` argument is unused.
The official input carries each snippet's L2 norm as channel d+1 (the dataset appends it);
vadkit computes it from the features, or takes it from a `(…, d+1)` input. With d = 2048 the
model has 28,652,773 parameters.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
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
)

MAG_RATIO = 0.1  # weight of the magnitude branch in FAM (MGFN's `--mag_ratio`)
CONTRAST_MARGIN = 200.0  # MGFN's ContrastiveLoss(margin=200.0)
CONTRAST_WEIGHT = 1e-3  # train.py: 0.001 * (0.001 * loss_con + loss_con_a + loss_con_n)
CROSS_CLASS_WEIGHT = 1e-3


class ChannelNorm(nn.Module):
    """LayerNorm over channels of `(B, c, t)`, MGFN's `LayerNorm`: (x − mean) / (std + eps)."""

    def __init__(self, dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.g = nn.Parameter(torch.ones(1, dim, 1))
        self.b = nn.Parameter(torch.zeros(1, dim, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        std = torch.var(x, dim=1, unbiased=False, keepdim=True).sqrt()
        mean = torch.mean(x, dim=1, keepdim=True)
        return (x - mean) / (std + self.eps) * self.g + self.b


def feed_forward(dim: int, *, mult: int = 4, dropout: float = 0.0) -> nn.Sequential:
    """MGFN's `FeedForward`: channel LayerNorm, 1×1 conv ×mult, GELU, Dropout, 1×1 conv back.
    The Dropout sits where the official one does (after GELU); MGFN builds it with rate 0."""
    return nn.Sequential(
        ChannelNorm(dim),
        nn.Conv1d(dim, dim * mult, 1),
        nn.GELU(),
        nn.Dropout(dropout),
        nn.Conv1d(dim * mult, dim, 1),
    )


class Glance(nn.Module):
    """Global self-attention over time (softmax, scale dim_head^-1/2)."""

    def __init__(self, dim: int, *, heads: int, dim_head: int) -> None:
        super().__init__()
        self.heads = heads
        self.scale = dim_head**-0.5
        inner = dim_head * heads
        self.norm = ChannelNorm(dim)
        self.to_qkv = nn.Conv1d(dim, inner * 3, 1, bias=False)
        self.to_out = nn.Conv1d(inner, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, c, t)
        b, _, t = x.shape
        q, k, v = self.to_qkv(self.norm(x)).chunk(3, dim=1)  # 3 × (B, h·e, t)
        q, k, v = (z.reshape(b, self.heads, -1, t).transpose(2, 3) for z in (q, k, v))  # (B,h,t,e)
        attn = torch.softmax((q * self.scale) @ k.transpose(2, 3), dim=-1)  # (B, h, t, t)
        out = (attn @ v).transpose(2, 3).reshape(b, -1, t)  # (B, h·e, t)
        return self.to_out(out)


class Focus(nn.Module):
    """Local temporal aggregation: one `kernel`-tap kernel per head, shared by its channels."""

    def __init__(self, dim: int, *, heads: int, dim_head: int, kernel: int = 5) -> None:
        super().__init__()
        self.heads = heads
        inner = dim_head * heads
        self.norm = nn.BatchNorm1d(dim)
        self.to_v = nn.Conv1d(dim, inner, 1, bias=False)
        self.rel_pos = nn.Conv1d(heads, heads, kernel, padding=kernel // 2, groups=heads)
        self.to_out = nn.Conv1d(inner, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, c, t)
        b, _, t = x.shape
        v = self.to_v(self.norm(x))  # (B, e·h, t), channel index = e·heads + head
        v = v.reshape(b, -1, self.heads, t).reshape(-1, self.heads, t)  # (B·e, h, t)
        out = self.rel_pos(v).reshape(b, -1, t)  # (B, e·h, t)
        return self.to_out(out)


class Layer(nn.Module):
    def __init__(self, dim: int, block: nn.Module, *, ff_mult: int, dropout: float) -> None:
        super().__init__()
        self.conv = nn.Conv1d(dim, dim, 3, padding=1)
        self.block = block
        self.ff = feed_forward(dim, mult=ff_mult, dropout=dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, c, t)
        x = self.conv(x) + x
        x = self.block(x) + x
        return self.ff(x) + x


@dataclass(frozen=True)
class MGFNConfig(ModelConfig):
    feature_dim: int = 2048
    segments: int = 32
    dims: tuple[int, ...] = (64, 128, 1024)  # MGFN's stage widths
    depths: tuple[int, ...] = (3, 3, 2)
    blocks: tuple[str, ...] = ("glance", "focus", "focus")
    dim_head: int = 64
    ff_mult: int = 4
    kernel: int = 5  # Focus's local aggregation kernel (MGFN `lokernel`)
    ff_dropout: float = 0.0
    topk_dropout: float = TOPK_DROPOUT
    loss: str = "mgfn"  # score regularisers: MGFN's code at the paper (ded0ef6)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not len(self.dims) == len(self.depths) == len(self.blocks):
            raise ValueError("dims, depths and blocks need one entry per stage")
        for kind in self.blocks:
            if kind not in ("glance", "focus"):
                raise ValueError(f"unknown MGFN block {kind!r}; use glance or focus")
        if self.segments < 1:
            raise ValueError(f"segments must be at least 1, got {self.segments}")
        object.__setattr__(self, "loss", canonical_loss(self.loss))


class MGFN(VadModel):
    name = "mgfn"
    Config = MGFNConfig
    default_batch_size = 16  # MGFN's --batch-size

    @classmethod
    def tiny_config(cls) -> dict[str, Any]:
        return {"dims": (16, 32, 64), "dim_head": 16}

    def __init__(self, config: MGFNConfig | None = None, /, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        c = self.cfg
        dims = list(c.dims)
        self.loss_variant = c.loss
        self.k = topk_count(c.segments)  # k = 3 for 32 segments, as RTFM
        self.to_tokens = nn.Conv1d(c.feature_dim, dims[0], 3, padding=1)
        self.to_mag = nn.Conv1d(1, dims[0], 3, padding=1)
        self.layers = nn.ModuleList()
        for i, (dim, depth, kind) in enumerate(zip(dims, c.depths, c.blocks, strict=True)):
            stage = [self._layer(dim, kind) for _ in range(depth)]
            if i + 1 < len(dims):
                stage.append(nn.Sequential(ChannelNorm(dim), nn.Conv1d(dim, dims[i + 1], 1)))
            self.layers.append(nn.Sequential(*stage))
        self.norm = nn.LayerNorm(dims[-1])
        self.fc = nn.Linear(dims[-1], 1)
        self.explore = nn.Dropout(c.topk_dropout)

    def _layer(self, dim: int, kind: str) -> Layer:
        c = self.cfg
        heads = dim // c.dim_head
        if kind == "glance":
            block: nn.Module = Glance(dim, heads=heads, dim_head=c.dim_head)
        else:
            block = Focus(dim, heads=heads, dim_head=c.dim_head, kernel=c.kernel)
        return Layer(dim, block, ff_mult=c.ff_mult, dropout=c.ff_dropout)

    @property
    def min_snippets(self) -> int:
        return self.k  # the top-k selection takes k snippets of every video

    def forward(self, clip: torch.Tensor, patches: torch.Tensor | None = None) -> dict:
        """Clip features `(b, n, t, d)`, or `(b, n, t, d+1)` in the official layout whose last
        channel is each snippet's L2 norm (MGFN's dataset appends it)."""
        b, n, t, d = clip.shape  # (b, n, t, d)
        x = clip.reshape(b * n, t, d).transpose(1, 2)  # (b·n, d, t)
        if d == self.to_tokens.in_channels + 1:
            x, mag = x[:, :-1], x[:, -1:]  # (b·n, d, t), (b·n, 1, t)
        else:
            mag = torch.linalg.vector_norm(x, dim=1, keepdim=True)  # (b·n, 1, t)
        x = self.to_tokens(x) + MAG_RATIO * self.to_mag(mag)  # FAM, (b·n, c0, t)
        for stage in self.layers:
            x = stage(x)  # (b·n, c, t)
        feats = self.norm(x.transpose(1, 2))  # (b·n, t, c)
        scores = torch.sigmoid(self.fc(feats)).view(b, n, t).mean(1)  # (b, t)
        magnitudes = torch.linalg.vector_norm(feats, dim=-1).view(b, n, t).mean(1)  # (b, t)
        return {"scores": scores, "features": feats.view(b, n, t, -1), "magnitudes": magnitudes}

    def _select(self, out: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """Bag score `(b,)` and the L1 norms of the top-k features per crop row, rows ordered
        crop-major as MGFN stacks them: `(n·b, k)`. The indices come from the crop-averaged
        magnitudes times the exploration mask (`self.explore`, MGFN's `drop_out(ones)`)."""
        idx = topk_indices(out["magnitudes"], self.k, self.explore)  # (b, k)
        bag_score = gather_time(out["scores"], idx, 1).mean(1)
        feats = gather_time(out["features"], idx, 2)  # (b, n, k, c)
        l1 = feats.abs().sum(-1).transpose(0, 1)  # (n, b, k)
        return bag_score, l1.reshape(-1, l1.shape[-1])

    def loss(self, normal: Bag, abnormal: Bag) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """MGFN's objective: BCE of the bag scores + the magnitude-contrastive loss + the score
        regularisers of `self.loss_variant`. `parts` are unweighted except the contrastive
        one, which is MGFN's combination of three contrastive terms."""
        out_n, out_a = self.forward_pair(normal, abnormal)
        score_n, mag_n = self._select(out_n)
        score_a, mag_a = self._select(out_a)
        l_bce = bce_bags(score_n, score_a)
        l_apart = contrastive(mag_a, mag_n, 1)
        l_same_a = contrastive(*halves(mag_a), 0)
        l_same_n = contrastive(*halves(mag_n), 0)
        l_mc = CONTRAST_WEIGHT * (CROSS_CLASS_WEIGHT * l_apart + l_same_a + l_same_n)
        l_sparse, l_smooth = regularisers(out_n["scores"], out_a["scores"], self.loss_variant)
        total = l_bce + l_mc + SPARSITY_WEIGHT * l_sparse + SMOOTHNESS_WEIGHT * l_smooth
        parts = {
            "bce": l_bce.detach(),
            "magnitude_contrastive": l_mc.detach(),
            "sparsity": l_sparse.detach(),
            "smoothness": l_smooth.detach(),
        }
        return total, parts


def contrastive(u: torch.Tensor, v: torch.Tensor, y: int) -> torch.Tensor:
    """`mean[(1−y)·‖u−v‖² + y·max(0, margin − ‖u−v‖)²]` over rows (MGFN's ContrastiveLoss)."""
    if u.shape[0] == 0:  # a single crop row has no pair within its class
        return u.sum() * 0.0
    dist = F.pairwise_distance(u, v)
    if y:
        return torch.clamp(CONTRAST_MARGIN - dist, min=0).pow(2).mean()
    return dist.pow(2).mean()


def halves(rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Second and first half of the rows (MGFN pairs `x[half:]` with `x[:half]`); with an odd
    count the extra middle row is left out rather than broadcast."""
    h = rows.shape[0] // 2
    return rows[rows.shape[0] - h :], rows[:h]


register_model(MGFN)

__all__ = ["MGFN", "MGFNConfig", "Focus", "Glance", "contrastive"]

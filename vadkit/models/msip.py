"""MSIP (multi-scale patch-based representation learning, stage 2 on top of RTFM's CTR).

No MSIP code is public. What the paper states: patches at three scales, an MPSR network that
models relations among them, a hierarchical graph convolution (HGC) block for cross-scale learning
and fusion, the MPSR output fused with the clip feature and fed to the frozen CTR and classifier
of stage 1. The design below is vadkit's (docs/DESIGN.md, MSIP), not a reproduction of
unpublished code:

- one graph node per patch (49 for grids 2×3, 3×5, 4×7), features projected d→h with a learned
  position embedding per (scale, row, col);
- fixed relations: 4-neighbours within a grid, fine→coarse and coarse→fine edges weighted by the
  overlap area of the patches, each with self-loops and row-normalised; plus a content relation
  (dot-product attention between nodes) so relations are also learned from the features;
- HGC layer `H' = LayerNorm(H + GELU(Σ_r Â_r H W_r + softmax(HW_q (HW_k)ᵀ/√h) H W_v))`;
- attention pooling per scale → Linear 3h→d → ReLU → Dropout;
- gated fusion `x'_c = x_c + g·m` for every clip crop, g a scalar initialised to 0 so stage 2
  starts exactly where stage 1 ended.

Stage 1 is CTR + classifier (identical to RTFM, with RTFM's dropouts where RTFM's code has
them: `Dropout(0.7)` on the CTR output, seen by magnitudes, top-k, the feature-magnitude loss
and the classifier; two inside the classifier; the top-k exploration mask). Stage 2 loads a
stage-1 checkpoint, freezes CTR and classifier (`requires_grad=False`, BatchNorm kept in eval
mode; their dropouts stay active in training, as stage 1 trained them) and trains MPSR and
the gate; MPSR's own readout dropout (`mpsr_dropout`) is vadkit's choice.

Ablations (the MSIP poster's two tables), stage 2 only:

- `scales`: the patch grids MPSR uses, any non-empty subset of 23 (2×3), 35 (3×5), 47 (4×7),
  given as a list `[23, 47]`, a string `"23,47"` or one number; stored as the ordered tuple.
  The graph is built over the chosen grids only (consecutive chosen grids are linked as
  coarse/fine neighbours). `patch_files(stage, args)` names the patch files a run reads, so a
  loader can read only those; given the patches of every grid of `patch_grids` instead, the
  model picks its scales' nodes itself.
- `hgc=False`: no graph layers at all (no relations, no content attention); each scale's
  projected patches plus position embedding go straight to the attention pooling and the
  readout, so what remains is per-scale attention pooling.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from vadkit.models import register_model
from vadkit.models.common import CLIP, PATCHES, xavier_init
from vadkit.models.rtfm import RTFM, RTFMConfig

# (rows, cols, patch h, patch w) per scale, coarse to fine: MSIP's grids on a 480×840 frame. The
# training loop passes the grids the features were extracted with (their `patch_grids`).
DEFAULT_GRIDS: tuple[tuple[int, int, int, int], ...] = (
    (2, 3, 240, 280),
    (3, 5, 160, 168),
    (4, 7, 120, 120),
)
STAGE1_PREFIXES = ("ctr.", "classifier.")


def patch_graph(grids: Sequence[Sequence[int]]) -> torch.Tensor:
    """Row-normalised adjacencies `(3, p, p)`: intra-scale 4-neighbours, fine→coarse (a coarse
    node gathers from the finer patches overlapping it) and coarse→fine; self-loops in each.

    Nodes are numbered scale by scale, row-major within a scale."""
    boxes = []  # (scale, row, col, y0, x0, y1, x1)
    for s, (rows, cols, ph, pw) in enumerate(grids):
        for r in range(rows):
            for c in range(cols):
                boxes.append((s, r, c, r * ph, c * pw, (r + 1) * ph, (c + 1) * pw))
    p = len(boxes)
    adj = torch.zeros(3, p, p, dtype=torch.float64)
    for i, (si, ri, ci, *bi) in enumerate(boxes):
        for j, (sj, rj, cj, *bj) in enumerate(boxes):
            if si == sj and abs(ri - rj) + abs(ci - cj) == 1:
                adj[0, i, j] = 1.0
            elif abs(si - sj) == 1:
                h = min(bi[2], bj[2]) - max(bi[0], bj[0])
                w = min(bi[3], bj[3]) - max(bi[1], bj[1])
                if h > 0 and w > 0:
                    # relation 1: coarse i gathers from finer j; relation 2: fine i from coarser j
                    adj[1 if sj == si + 1 else 2, i, j] = float(h * w)
    for r in range(3):
        # self-loop weighted like the strongest incoming edge so it neither vanishes nor dominates
        w_self = adj[r].max(dim=1).values.clamp(min=1.0)
        adj[r] += torch.diag(w_self)
        adj[r] /= adj[r].sum(dim=1, keepdim=True)
    return adj.float()


class HGCLayer(nn.Module):
    """One hierarchical graph convolution over the patch graph plus a content relation."""

    def __init__(self, hidden: int, relations: int = 3) -> None:
        super().__init__()
        self.relation = nn.ModuleList(
            nn.Linear(hidden, hidden, bias=False) for _ in range(relations)
        )
        self.query = nn.Linear(hidden, hidden, bias=False)
        self.key = nn.Linear(hidden, hidden, bias=False)
        self.value = nn.Linear(hidden, hidden, bias=False)
        self.norm = nn.LayerNorm(hidden)
        self.scale = hidden**-0.5

    def forward(self, h: torch.Tensor, adj: torch.Tensor) -> torch.Tensor:  # (B, p, h), (r, p, p)
        msg = sum(a @ w(h) for a, w in zip(adj, self.relation, strict=True))  # (B, p, h)
        attn = torch.softmax(self.query(h) @ self.key(h).transpose(1, 2) * self.scale, dim=-1)
        msg = msg + attn @ self.value(h)  # (B, p, h)
        return self.norm(h + F.gelu(msg))


class MPSR(nn.Module):
    """Multi-scale patch representation: patches `(b, t, p, d)` → one vector per snippet
    `(b, t, d)`."""

    def __init__(
        self,
        *,
        feature_dim: int,
        hidden: int = 512,
        layers: int = 2,
        grids: Sequence[Sequence[int]] = DEFAULT_GRIDS,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.sizes = [rows * cols for rows, cols, _, _ in grids]
        p = sum(self.sizes)
        self.nodes = p
        self.proj = nn.Linear(feature_dim, hidden)
        self.position = nn.Parameter(torch.zeros(p, hidden))  # one per (scale, row, col)
        if layers:  # no graph layers (`hgc=False`): no graph either
            self.register_buffer("adj", patch_graph(grids), persistent=False)
        self.layers = nn.ModuleList(HGCLayer(hidden) for _ in range(layers))
        self.pool = nn.ModuleList(nn.Linear(hidden, 1) for _ in grids)
        self.out = nn.Sequential(
            nn.Linear(len(grids) * hidden, feature_dim), nn.ReLU(), nn.Dropout(dropout)
        )
        xavier_init(self)
        nn.init.trunc_normal_(self.position, std=0.02)

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        b, t, p, d = patches.shape  # (b, t, p, d)
        h = self.proj(patches.reshape(b * t, p, d)) + self.position  # (b·t, p, h)
        for layer in self.layers:
            h = layer(h, self.adj)
        pooled = []
        scales = h.split(self.sizes, dim=1)  # per scale (b·t, p_s, h)
        for pool, nodes in zip(self.pool, scales, strict=True):
            alpha = torch.softmax(pool(nodes), dim=1)  # (b·t, p_s, 1)
            pooled.append((alpha * nodes).sum(1))  # (b·t, h)
        return self.out(torch.cat(pooled, dim=-1)).view(b, t, d)  # (b, t, d)


@dataclass(frozen=True)
class MSIPConfig(RTFMConfig):
    loss: str = "msip"  # score regularisers: the MSIP paper's form (models.LOSS_VARIANTS)
    stage: int = 1
    graph_dim: int = 512  # h of the HGC layers (docs/DESIGN.md, MSIP)
    graph_layers: int = 2
    patch_grids: tuple[tuple[int, ...], ...] = DEFAULT_GRIDS  # (rows, cols, h, w) per scale
    mpsr_dropout: float = 0.1  # not published; vadkit's choice
    # ablations (stage 2): the patch scales MPSR uses, and the hierarchical graph convolution
    scales: tuple[int, ...] | int | str = (23, 35, 47)  # [23, 47], "23,47", 23
    hgc: bool = True  # False: per-scale attention pooling without graph layers

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.stage not in MSIP.stages:
            raise ValueError(f"MSIP stage must be 1 or 2, got {self.stage}")
        if any(len(g) != 4 for g in self.patch_grids):
            raise ValueError("patch_grids needs (rows, cols, height, width) per scale")
        have = [grid_scale(g) for g in self.patch_grids]
        wanted = parse_scales(self.scales)
        missing = sorted(set(wanted) - set(have))
        if missing:
            raise ValueError(
                f"scales {', '.join(map(str, missing))} are not among the patch grids of the "
                f"features ({', '.join(map(str, have))})"
            )
        object.__setattr__(self, "scales", tuple(s for s in have if s in wanted))

    @property
    def scale_grids(self) -> list[Sequence[int]]:
        """The grids of `scales`, in `patch_grids` order."""
        return [g for g in self.patch_grids if grid_scale(g) in self.scales]


def grid_scale(grid: Sequence[int]) -> int:
    """A grid's scale number: its rows and columns written together (2×3 → 23)."""
    return int(f"{grid[0]}{grid[1]}")


def parse_scales(value: Any) -> tuple[int, ...]:
    """`[23, 47]`, `"23,47"` (or `"patch23+patch47"`) or `23` → `(23, 47)`; ValueError otherwise."""
    if isinstance(value, str):
        items: list[Any] = value.replace("+", ",").split(",")
    else:
        items = [value] if isinstance(value, int) else list(value)
    out = []
    for item in items:
        text = str(item).strip().removeprefix("patch")
        if isinstance(item, bool) or not text.isdigit():
            raise ValueError(f"scales: {item!r} is not a patch scale such as 23, 35 or 47")
        out.append(int(text))
    if not out:
        raise ValueError("scales must name at least one patch scale (23, 35, 47)")
    return tuple(out)


class MSIP(RTFM):
    """Stage 1: CTR + classifier (RTFM). Stage 2: MPSR fused into the clip features in front of
    the frozen stage-1 network."""

    name = "msip"
    Config = MSIPConfig
    stages = (1, 2)
    stage1_args = ("hidden", "dropout", "topk_dropout")  # sizes of the frozen network

    @classmethod
    def input_names(cls, stage: int = 1) -> tuple[str, ...]:
        return (CLIP, PATCHES) if stage == 2 else (CLIP,)

    @classmethod
    def tiny_config(cls) -> dict[str, Any]:
        return {"hidden": 32, "graph_dim": 16}

    def __init__(self, config: MSIPConfig | None = None, /, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        c = self.cfg
        if self.stage == 2:
            self.mpsr = MPSR(
                feature_dim=c.feature_dim,
                hidden=c.graph_dim,
                layers=c.graph_layers if c.hgc else 0,
                grids=c.scale_grids,
                dropout=c.mpsr_dropout,
            )
            # the nodes of `scales` among the patches of every grid of `patch_grids`
            index, start = [], 0
            for g in c.patch_grids:
                n = g[0] * g[1]
                if grid_scale(g) in c.scales:
                    index.extend(range(start, start + n))
                start += n
            self.all_nodes = start
            self.register_buffer("scale_index", torch.tensor(index), persistent=False)
            self.gate = nn.Parameter(torch.zeros(()))
            for p in self.stage1_parameters():
                p.requires_grad_(False)

    @classmethod
    def patch_files(cls, stage: int, args: Mapping[str, Any]) -> tuple[str, ...]:
        """The patch files (`patch23`, …) stage `stage` reads with model args `args` (the
        `scales` of `--model-arg`), for a loader that runs before the model is built: none in
        stage 1; all three when `scales` is malformed (building the model then says why)."""
        if PATCHES not in cls.input_names(stage):
            return ()
        try:
            scales = parse_scales(args.get("scales", (23, 35, 47)))
        except (TypeError, ValueError):
            scales = (23, 35, 47)
        return tuple(f"patch{s}" for s in scales)

    def scale_patches(self, patches: torch.Tensor) -> torch.Tensor:
        """Patches `(b, t, p, d)` of this model's scales: as given when they hold exactly those,
        picked out of the patches of every grid of `patch_grids` otherwise."""
        p = patches.shape[2]
        if p == self.mpsr.nodes:
            return patches
        if p == self.all_nodes:
            return patches.index_select(2, self.scale_index)
        raise ValueError(
            f"MSIP with scales {self.cfg.scales} reads {self.mpsr.nodes} patches per snippet "
            f"(or all {self.all_nodes}), got {p}"
        )

    def stage1_parameters(self) -> list[nn.Parameter]:
        return [*self.ctr.parameters(), *self.classifier.parameters()]

    def load_stage1(self, state: Mapping[str, torch.Tensor], *, source: str = "") -> None:
        """Copy CTR + classifier weights and BN statistics from a stage-1 state dict."""
        wanted = {k: v for k, v in state.items() if k.startswith(STAGE1_PREFIXES)}
        own = {k for k in self.state_dict() if k.startswith(STAGE1_PREFIXES)}
        if set(wanted) != own:
            missing = sorted(own - set(wanted))[:3]
            extra = sorted(set(wanted) - own)[:3]
            raise ValueError(
                f"{source}: not a stage-1 CTR + classifier checkpoint "
                f"(missing {missing}, unexpected {extra})"
            )
        self.load_state_dict(wanted, strict=False)

    def train(self, mode: bool = True) -> MSIP:
        super().train(mode)
        if self.stage == 2:
            # Frozen stage-1 network: its BatchNorm keeps the statistics stage 1 learnt.
            for m in self.ctr.modules():
                if isinstance(m, _BatchNorm):
                    m.eval()
        return self

    def forward(self, clip: torch.Tensor, patches: torch.Tensor | None = None) -> dict:
        if self.stage == 2:
            if patches is None:
                raise ValueError("MSIP stage 2 needs the multi-scale patch features")
            m = self.mpsr(self.scale_patches(patches))  # (b, t, d)
            clip = clip + self.gate * m[:, None]  # (b, n, t, d): same m for every crop
        return super().forward(clip)


register_model(MSIP)

__all__ = ["HGCLayer", "MPSR", "MSIP", "MSIPConfig", "grid_scale", "parse_scales", "patch_graph"]

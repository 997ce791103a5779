"""Pieces shared by the WS-VAD models: the model base class, top-k selection and the MIL losses.

A bag is a dict of tensors for a batch of videos: `clip` `(b, n, t, d)` always, `patches`
`(b, t, p, d)` for models that use MSIP's multi-scale patches. Models never guess which rows of
a batch are normal: `loss(normal, abnormal)` takes the two bags separately (docs/DESIGN.md,
Losses).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from vadkit.errors import VadkitError

Bag = dict[str, torch.Tensor]


@dataclass(frozen=True)
class LossForm:
    """Where a loss variant puts its two score regularisers and in which form."""

    sparsity: str  # "l2": ‖s‖₂ of the scores flattened | "l1": Σ_t |s_t| per video, mean
    sparsity_on: str  # "abnormal" | "normal"
    smoothness: str  # "flat" | "per-video-sum" | "per-video-mean"
    smoothness_on: str  # "abnormal" | "all"


# Loss variants by name: the sparsity/smoothness forms of each source (every model accepts every
# variant; each model defaults to its own source's). One line each for `--help` and man pages.
LOSS_VARIANTS: dict[str, str] = {
    "rtfm": "RTFM's code: L2 sparsity of all abnormal scores, smoothness across the flattened "
    "abnormal batch",
    "mgfn": "MGFN's code as published with the paper (ded0ef6): RTFM's forms on the abnormal half",
    "mgfn-current": "MGFN's code since a6588e1 (third-party): L2 sparsity of the normal scores, "
    "smoothness within each of all 2B videos",
    "msip": "the MSIP paper: L1 sparsity sum and smoothness per abnormal video, averaged",
}
# Older names that stay accepted.
LOSS_ALIASES: dict[str, str] = {"rtfm-code": "rtfm"}
# Every name `loss=` accepts (variants first, then aliases).
LOSS_NAMES: tuple[str, ...] = (*LOSS_VARIANTS, *LOSS_ALIASES)
LOSS_FORMS: dict[str, LossForm] = {
    "rtfm": LossForm("l2", "abnormal", "flat", "abnormal"),
    "mgfn": LossForm("l2", "abnormal", "flat", "abnormal"),
    "mgfn-current": LossForm("l2", "normal", "per-video-sum", "all"),
    "msip": LossForm("l1", "abnormal", "per-video-mean", "abnormal"),
}

# Weights of the score regularisers, RTFM's train.py (`sparsity(..., 8e-3)`, `smooth(..., 8e-4)`),
# also used by MGFN and MSIP.
SPARSITY_WEIGHT = 8e-3
SMOOTHNESS_WEIGHT = 8e-4
# Random exploration in top-k selection: RTFM's and MGFN's `Dropout(0.7)` over a mask of ones
# (`select_idx = drop_out(ones)` in RTFM's `Model.forward` and MGFN's `MSNSD`).
TOPK_DROPOUT = 0.7


class VadModel(nn.Module):
    """Base of every registered model.

    Subclasses set `config` (the keyword arguments that rebuild them: it goes into checkpoints),
    `inputs` (bag keys that `forward` reads) and implement `forward(clip, patches=None) -> dict`
    with at least `scores` `(b, t)` in [0, 1], and `loss(normal, abnormal)`.
    """

    name: str = ""
    stages: tuple[int, ...] = (1,)
    default_batch_size: int = 32  # normal (and abnormal) videos per step
    # constructor arguments a later stage copies from the stage-1 run it builds on
    stage1_args: tuple[str, ...] = ()

    @classmethod
    def input_names(cls, stage: int = 1) -> tuple[str, ...]:
        """Bag keys the model reads in `stage` (known before it is built, so the data loader
        reads patch files only for a model that needs them)."""
        return ("clip",)

    def __init__(self) -> None:
        super().__init__()
        self.config: dict[str, Any] = {}
        self.inputs: tuple[str, ...] = ("clip",)
        self.stage = 1

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

    def scores(self, bag: Bag) -> torch.Tensor:
        """Inference snippet scores `(b, t)` for a bag holding this model's inputs."""
        return self(**{k: bag[k] for k in self.inputs})["scores"]

    def forward_pair(self, normal: Bag, abnormal: Bag) -> tuple[dict, dict]:
        """One forward pass over both bags concatenated (so BatchNorm sees the mixed batch, as in
        RTFM), split back by the known bag sizes."""
        bn = normal["clip"].shape[0]
        if abnormal["clip"].shape[0] != bn:
            # the losses pair normal and abnormal rows (RTFM's feature-magnitude loss, MGFN's)
            raise ValueError(
                f"normal and abnormal bags must hold as many videos: {bn} vs "
                f"{abnormal['clip'].shape[0]}"
            )
        joint = {k: torch.cat([normal[k], abnormal[k]]) for k in self.inputs}
        out = self(**joint)
        first = {k: v[:bn] for k, v in out.items()}
        second = {k: v[bn:] for k, v in out.items()}
        return first, second


def topk_indices(magnitudes: torch.Tensor, k: int, explore: nn.Module) -> torch.Tensor:
    """Indices `(b, k)` of the k largest magnitudes `(b, t)` after an exploration mask.

    `explore` is a Dropout over ones (active only in training): RTFM's random exploration.
    """
    mask = explore(torch.ones_like(magnitudes))
    return torch.topk(magnitudes * mask, k, dim=1).indices


def gather_time(x: torch.Tensor, idx: torch.Tensor, dim: int) -> torch.Tensor:
    """Select indices `idx` `(b, k)` along time dimension `dim` of `x` `(b, ...)`, the same
    indices for every other dimension (every crop)."""
    view = [idx.shape[0]] + [1] * (x.dim() - 1)
    view[dim] = idx.shape[1]
    size = list(x.shape)
    size[dim] = idx.shape[1]
    index = idx.view(view).expand(size)
    return torch.gather(x, dim, index)


def bce_bags(score_normal: torch.Tensor, score_abnormal: torch.Tensor) -> torch.Tensor:
    """BCE of bag scores against 0 (normal) / 1 (abnormal)."""
    score = torch.cat([score_normal, score_abnormal])
    label = torch.cat([torch.zeros_like(score_normal), torch.ones_like(score_abnormal)])
    return F.binary_cross_entropy(score, label)


def sparsity(scores: torch.Tensor, variant: str) -> torch.Tensor:
    """Sparsity term of snippet scores `(b, t)` in the form `variant` uses (see `LOSS_FORMS`).

    L2 forms (`rtfm`, `mgfn`, `mgfn-current`): the L2 norm of all the scores flattened.
    L1 form (`msip`): the MSIP paper's sum `Σ_t |s_t|` per video, averaged over videos.
    Which videos' scores it is given is the variant's business (`regularisers`).
    """
    if LOSS_FORMS[check_variant(variant)].sparsity == "l2":
        return torch.linalg.vector_norm(scores.reshape(-1))
    return scores.abs().sum(dim=1).mean()


def smoothness(scores: torch.Tensor, variant: str) -> torch.Tensor:
    """Temporal smoothness `Σ (s_t − s_{t−1})²` of snippet scores `(b, t)` in `variant`'s form.

    `flat` (`rtfm`, `mgfn`): over the batch flattened and summed, so the last snippet of a video
    is paired with the first of the next (RTFM's code). `per-video-sum` (`mgfn-current`): within
    each video, summed over videos. `per-video-mean` (`msip`): within each video, averaged.
    """
    form = LOSS_FORMS[check_variant(variant)].smoothness
    if form == "flat":
        flat = scores.reshape(-1)
        return ((flat[1:] - flat[:-1]) ** 2).sum()
    per_video = ((scores[:, 1:] - scores[:, :-1]) ** 2).sum(dim=1)
    return per_video.sum() if form == "per-video-sum" else per_video.mean()


def regularisers(
    scores_normal: torch.Tensor, scores_abnormal: torch.Tensor, variant: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """`(sparsity, smoothness)` (unweighted) of a step's snippet scores `(b, t)` per bag, each
    on the videos `variant` puts it on: the abnormal bag, the normal bag, or all `2b` videos
    (normal first, the order of the official joint batch)."""
    form = LOSS_FORMS[check_variant(variant)]
    chosen = {"normal": scores_normal, "abnormal": scores_abnormal}
    if form.smoothness_on == "all":
        chosen["all"] = torch.cat([scores_normal, scores_abnormal])
    return (
        sparsity(chosen[form.sparsity_on], variant),
        smoothness(chosen[form.smoothness_on], variant),
    )


def check_variant(loss: str) -> str:
    """The canonical name of loss variant `loss` (an alias resolves to its variant)."""
    loss = LOSS_ALIASES.get(loss, loss)
    if loss not in LOSS_VARIANTS:
        raise VadkitError(
            f"unknown loss variant {loss!r}; choose one of {', '.join(LOSS_VARIANTS)}"
        )
    return loss


def xavier_init(module: nn.Module) -> None:
    """Xavier-uniform weights and zero bias for every conv and linear (RTFM's `weight_init`)."""
    for m in module.modules():
        if isinstance(m, nn.Conv1d | nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)

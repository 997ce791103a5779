"""Pieces shared by the WS-VAD models: the model base class, top-k selection and the MIL losses.

A bag is a dict of tensors for a batch of videos: `clip` `(b, n, t, d)` always, `patches`
`(b, t, p, d)` for models that use MSIP's multi-scale patches. Models never guess which rows of
a batch are normal: `loss(normal, abnormal)` takes the two bags separately (docs/DESIGN.md,
Losses).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from vadkit.errors import VadkitError
from vadkit.models import LOSS_ALIASES, LOSS_NAMES, LOSS_VARIANTS
from vadkit.settings import build_config, plain

Bag = dict[str, torch.Tensor]

# Bag keys: the inputs a model can read.
CLIP = "clip"  # (b, n, t, d): n crops of t snippets of d-dim clip features
PATCHES = "patches"  # (b, t, p, d): MSIP's p multi-scale patch features per snippet


@dataclass(frozen=True)
class LossForm:
    """Where a loss variant puts its two score regularisers and in which form."""

    sparsity: str  # "l2": ‖s‖₂ of the scores flattened | "l1": Σ_t |s_t| per video, mean
    sparsity_on: str  # "abnormal" | "normal"
    smoothness: str  # "flat" | "per-video-sum" | "per-video-mean"
    smoothness_on: str  # "abnormal" | "all"


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


def topk_count(segments: int) -> int:
    """RTFM's k of its top-k selection: `num_segments // 10` (3 of 32), at least 1."""
    return max(1, segments // 10)


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Base of the per-model config dataclasses (nanoGPT's `GPTConfig`): every field is a
    constructor setting and is stored in checkpoints as `model_args`."""

    feature_dim: int = 2048

    def __post_init__(self) -> None:
        if self.feature_dim < 1:
            raise ValueError(f"feature_dim must be at least 1, got {self.feature_dim}")

    def to_dict(self) -> dict[str, Any]:
        """JSON form (tuples become lists), identical to what checkpoints always stored."""
        return {f.name: plain(getattr(self, f.name)) for f in dataclasses.fields(self)}


class VadModel(nn.Module):
    """Base of every registered model: the contract the training loop and scoring rely on.

    A model declares, as class attributes:

    - `name`: its registry name; `Config`: its config dataclass (a `ModelConfig`), the only
      settings its constructor receives (`Model(config)`, or `Model(**fields)`);
    - `stages`: the stages it trains in; a stage after the first builds on a run of the stage
      before it, and `load_stage1(state)` takes what it needs from that run (a no-op here);
      `stage1_args`: config fields copied from that run;
    - `input_names(stage)`: the bag keys (`CLIP`, `PATCHES`) it reads in a stage;
    - `default_batch_size`: normal (and abnormal) videos per step;
    - `tiny_config()`: config fields of a tiny instance for tests (seconds on a CPU).

    An instance has `cfg`, `config` (its dict form), `inputs`, `stage`, `min_snippets` (the
    fewest snippets a training video may have: the top-k selection's k) and implements
    `forward(clip, patches=None) -> dict` with at least `scores` `(b, t)` in [0, 1], and
    `loss(normal, abnormal) -> (total, parts)`.
    """

    name: ClassVar[str] = ""
    Config: ClassVar[type[ModelConfig]] = ModelConfig
    stages: ClassVar[tuple[int, ...]] = (1,)
    default_batch_size: ClassVar[int] = 32  # normal (and abnormal) videos per step
    # config fields a later stage copies from the stage-1 run it builds on
    stage1_args: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def input_names(cls, stage: int = 1) -> tuple[str, ...]:
        """Bag keys the model reads in `stage` (known before it is built, so the data loader
        reads patch files only for a model that needs them)."""
        return (CLIP,)

    @classmethod
    def tiny_config(cls) -> dict[str, Any]:
        """Config fields (besides `feature_dim`) of a tiny instance that trains in seconds."""
        return {}

    @classmethod
    def make_config(cls, **kwargs: Any) -> ModelConfig:
        """`cls.Config(**kwargs)`, checked: unknown names, wrong types and bad values are a
        VadkitError naming them and the valid fields."""
        return build_config(cls.Config, kwargs, what=f"model {cls.name}")

    def __init__(self, config: ModelConfig | None = None, /, **kwargs: Any) -> None:
        super().__init__()
        if config is None:
            config = self.Config(**kwargs)
        elif kwargs:
            config = dataclasses.replace(config, **kwargs)
        if not isinstance(config, self.Config):
            raise TypeError(f"{type(self).__name__} needs a {self.Config.__name__}")
        self.cfg = config
        self.stage: int = getattr(config, "stage", 1)
        self.inputs: tuple[str, ...] = self.input_names(self.stage)

    @property
    def config(self) -> dict[str, Any]:
        """The config as checkpoints store it (`model_args`)."""
        return self.cfg.to_dict()

    @property
    def min_snippets(self) -> int:
        """Fewest snippets a training video may have (1 unless the model selects top-k)."""
        return 1

    @classmethod
    def patch_files(cls, stage: int, args: Mapping[str, Any]) -> tuple[str, ...]:
        """The patch files (`patch23`, …) the model reads in `stage` with config fields `args`,
        for loaders that run before it is built; () means every grid the features have (when
        it reads `PATCHES` at all)."""
        return ()

    def load_stage1(self, state: Mapping[str, torch.Tensor], *, source: str = "") -> None:
        """Take what this stage needs from the weights of the previous stage's run (nothing)."""

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

    def scores(self, bag: Bag) -> torch.Tensor:
        """Inference snippet scores `(b, t)` for a bag holding this model's inputs."""
        return self(**{k: bag[k] for k in self.inputs})["scores"]

    def forward_pair(self, normal: Bag, abnormal: Bag) -> tuple[dict, dict]:
        """One forward pass over both bags concatenated (so BatchNorm sees the mixed batch, as in
        RTFM), split back by the known bag sizes."""
        bn = normal[CLIP].shape[0]
        if abnormal[CLIP].shape[0] != bn:
            # the losses pair normal and abnormal rows (RTFM's feature-magnitude loss, MGFN's)
            raise ValueError(
                f"normal and abnormal bags must hold as many videos: {bn} vs "
                f"{abnormal[CLIP].shape[0]}"
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


def canonical_loss(loss: str) -> str:
    """The canonical name of loss variant `loss` (an alias resolves to its variant); a
    ValueError for an unknown name (config checks turn it into a VadkitError)."""
    name = LOSS_ALIASES.get(loss, loss)
    if name not in LOSS_VARIANTS:
        raise ValueError(f"unknown loss variant {loss!r}; choose one of {', '.join(LOSS_NAMES)}")
    return name


def check_variant(loss: str) -> str:
    """`canonical_loss` for library callers: an unknown name is a VadkitError."""
    try:
        return canonical_loss(loss)
    except ValueError as e:
        raise VadkitError(str(e)) from None


def xavier_init(module: nn.Module) -> None:
    """Xavier-uniform weights and zero bias for every conv and linear (RTFM's `weight_init`)."""
    for m in module.modules():
        if isinstance(m, nn.Conv1d | nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)

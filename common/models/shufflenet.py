"""ShuffleNet V1 and V2 for CIFAR as used by the KD benchmark (RepDistiller `ShuffleV1`, `ShuffleV2`).

V1: Zhang et al., "ShuffleNet" (CVPR 2018), groups g = 3, stage widths (240, 480, 960), blocks (4, 8, 4).
V2: Ma et al., "ShuffleNet V2" (ECCV 2018), 1x: widths (116, 232, 464), blocks (3, 7, 3), 1024-channel head.
CIFAR adaptation of the reference code: a 1x1 stem with 24 channels at stride 1, no max-pool, so 32x32
inputs reach 4x4 before global pooling. Module names match the released checkpoints.
"""
import torch
from torch import nn
from torch.nn import functional as F

from .classifier import ZooClassifier


def channel_shuffle(x, groups):
    """(B, C, H, W) -> (B, g, C/g, H, W) -> transpose -> (B, C, H, W)."""
    b, c, h, w = x.shape
    return x.reshape(b, groups, c // groups, h, w).transpose(1, 2).reshape(b, c, h, w)


class ShuffleV1Block(nn.Module):
    """Grouped 1x1 -> shuffle -> 3x3 depthwise -> grouped 1x1; add (stride 1) or concat avg-pooled input (stride 2)."""

    def __init__(self, cin, cout, stride, groups):
        super().__init__()
        mid = cout // 4
        self.stride = stride
        self.g1 = 1 if cin == 24 else groups  # the stem output (24 ch) is not grouped, as in the paper
        self.conv1 = nn.Conv2d(cin, mid, 1, groups=self.g1, bias=False)
        self.bn1 = nn.BatchNorm2d(mid)
        self.conv2 = nn.Conv2d(mid, mid, 3, stride, 1, groups=mid, bias=False)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv3 = nn.Conv2d(mid, cout, 1, groups=groups, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)

    def forward(self, x):
        out = channel_shuffle(F.relu(self.bn1(self.conv1(x))), self.g1)
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.stride == 2:
            return F.relu(torch.cat([out, F.avg_pool2d(x, 3, 2, 1)], 1))
        return F.relu(out + x)


class ShuffleNetV1(ZooClassifier):
    head_name = "linear"

    def __init__(self, widths=(240, 480, 960), blocks=(4, 8, 4), groups=3, num_classes=100):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 24, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(24)
        cin = 24
        stages = []
        for width, n in zip(widths, blocks, strict=True):
            # the first block concatenates its pooled input, so its branch produces width - cin channels
            layers = [ShuffleV1Block(cin, width - cin, 2, groups)]
            layers += [ShuffleV1Block(width, width, 1, groups) for _ in range(n - 1)]
            stages.append(nn.Sequential(*layers))
            cin = width
        self.layer1, self.layer2, self.layer3 = stages
        self.linear = nn.Linear(cin, num_classes)
        self.num_features = cin

    def forward_feature_map(self, x):
        x = F.relu(self.bn1(self.conv1(x)))               # (B, 24, 32, 32)
        return self.layer3(self.layer2(self.layer1(x)))   # (B, 960, 4, 4)


class ShuffleV2Block(nn.Module):
    """Channel split in half; the right half goes 1x1 -> 3x3 depthwise -> 1x1; concat; shuffle (g = 2)."""

    def __init__(self, channels):
        super().__init__()
        c = channels // 2
        self.conv1 = nn.Conv2d(c, c, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.conv2 = nn.Conv2d(c, c, 3, 1, 1, groups=c, bias=False)
        self.bn2 = nn.BatchNorm2d(c)
        self.conv3 = nn.Conv2d(c, c, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(c)

    def forward(self, x):
        left, right = x.chunk(2, dim=1)
        out = F.relu(self.bn1(self.conv1(right)))
        out = F.relu(self.bn3(self.conv3(self.bn2(self.conv2(out)))))
        return channel_shuffle(torch.cat([left, out], 1), 2)


class ShuffleV2Down(nn.Module):
    """Stride-2 unit: both branches downsample, each gives cout / 2 channels; concat; shuffle."""

    def __init__(self, cin, cout):
        super().__init__()
        mid = cout // 2
        self.conv1 = nn.Conv2d(cin, cin, 3, 2, 1, groups=cin, bias=False)     # left: depthwise s2
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv2 = nn.Conv2d(cin, mid, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv3 = nn.Conv2d(cin, mid, 1, bias=False)                       # right: 1x1, dw s2, 1x1
        self.bn3 = nn.BatchNorm2d(mid)
        self.conv4 = nn.Conv2d(mid, mid, 3, 2, 1, groups=mid, bias=False)
        self.bn4 = nn.BatchNorm2d(mid)
        self.conv5 = nn.Conv2d(mid, mid, 1, bias=False)
        self.bn5 = nn.BatchNorm2d(mid)

    def forward(self, x):
        left = F.relu(self.bn2(self.conv2(self.bn1(self.conv1(x)))))
        right = F.relu(self.bn3(self.conv3(x)))
        right = F.relu(self.bn5(self.conv5(self.bn4(self.conv4(right)))))
        return channel_shuffle(torch.cat([left, right], 1), 2)


class ShuffleNetV2(ZooClassifier):
    head_name = "linear"

    def __init__(self, widths=(116, 232, 464), blocks=(3, 7, 3), head_channels=1024, num_classes=100):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 24, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(24)
        cin = 24
        stages = []
        for width, n in zip(widths, blocks, strict=True):
            stages.append(nn.Sequential(ShuffleV2Down(cin, width), *[ShuffleV2Block(width) for _ in range(n)]))
            cin = width
        self.layer1, self.layer2, self.layer3 = stages
        self.conv2 = nn.Conv2d(cin, head_channels, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(head_channels)
        self.linear = nn.Linear(head_channels, num_classes)
        self.num_features = head_channels

    def forward_feature_map(self, x):
        x = F.relu(self.bn1(self.conv1(x)))               # (B, 24, 32, 32)
        x = self.layer3(self.layer2(self.layer1(x)))      # (B, 464, 4, 4)
        return F.relu(self.bn2(self.conv2(x)))            # (B, 1024, 4, 4)


def shufflenetv1(num_classes=100):
    return ShuffleNetV1(num_classes=num_classes)


def shufflenetv2(num_classes=100):
    return ShuffleNetV2(num_classes=num_classes)

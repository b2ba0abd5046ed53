"""Wide ResNets for CIFAR (Zagoruyko & Komodakis, "Wide Residual Networks", BMVC 2016): wrn_16_2, wrn_40_1, wrn_40_2.

WRN-d-k: depth d = 6n + 4, widths [16, 16k, 32k, 64k], pre-activation blocks (BN-ReLU-conv), a 1x1 conv
shortcut where the width or stride changes, a final BN-ReLU, global average pooling and a linear layer.
As in the reference implementation used by RepDistiller/mdistiller, a block whose shape changes applies its
first BN-ReLU to the input and feeds the *activated* input to the shortcut conv. Parameter names
(conv1, block{1,2,3}.layer.{i}.{bn1,conv1,bn2,conv2,convShortcut}, bn1, fc) match their checkpoints.
"""
import torch
from torch import nn

from .classifier import ZooClassifier


class WideBasic(nn.Module):
    def __init__(self, in_planes, planes, stride):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.equal_in_out = in_planes == planes
        self.convShortcut = None if self.equal_in_out else nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False)

    def forward(self, x):
        act = torch.relu(self.bn1(x))
        out = self.conv2(torch.relu(self.bn2(self.conv1(act))))
        return out + (x if self.equal_in_out else self.convShortcut(act))


class WideStage(nn.Module):
    """n blocks; kept as a module with a `.layer` Sequential for checkpoint-compatible names."""

    def __init__(self, n, in_planes, planes, stride):
        super().__init__()
        self.layer = nn.Sequential(*[WideBasic(in_planes if i == 0 else planes, planes, stride if i == 0 else 1)
                                     for i in range(n)])

    def forward(self, x):
        return self.layer(x)


class WideResNet(ZooClassifier):
    def __init__(self, depth, widen_factor, num_classes=100):
        super().__init__()
        if (depth - 4) % 6:
            raise ValueError(f"WRN depth must be 6n+4, got {depth}")
        n = (depth - 4) // 6
        w = [16, 16 * widen_factor, 32 * widen_factor, 64 * widen_factor]
        self.conv1 = nn.Conv2d(3, w[0], 3, padding=1, bias=False)
        self.block1 = WideStage(n, w[0], w[1], 1)
        self.block2 = WideStage(n, w[1], w[2], 2)
        self.block3 = WideStage(n, w[2], w[3], 2)
        self.bn1 = nn.BatchNorm2d(w[3])
        self.fc = nn.Linear(w[3], num_classes)
        self.num_features = w[3]
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def forward_feature_map(self, x):
        """(B, 3, 32, 32) -> (B, 64k, 8, 8)."""
        x = self.block3(self.block2(self.block1(self.conv1(x))))  # (B, 64k, 8, 8)
        return torch.relu(self.bn1(x))


def wrn_16_2(num_classes=100):
    return WideResNet(16, 2, num_classes)


def wrn_40_1(num_classes=100):
    return WideResNet(40, 1, num_classes)


def wrn_40_2(num_classes=100):
    return WideResNet(40, 2, num_classes)

"""CIFAR ResNets of the KD benchmark (resnet8 ... resnet110, resnet8x4, resnet32x4).

He et al., "Deep Residual Learning for Image Recognition" (CVPR 2016), Sec. 4.2: a 3x3 stem, three stages of
n basic blocks at 32x32, 16x16, 8x8 (depth = 6n + 2), global average pooling, one linear layer. The widths
[16, 16, 32, 64] are the paper's; the "x4" variants of RepDistiller (CRD, ICLR 2020) use [32, 64, 128, 256].
Shortcuts that change shape are 1x1 conv + BN (option B), as in RepDistiller's `models/resnet.py`.

Parameter and buffer names (conv1, bn1, layer{1,2,3}.{i}.{conv1,bn1,conv2,bn2,downsample.0,downsample.1}, fc)
are those of RepDistiller/mdistiller, so their released CIFAR-100 teacher checkpoints load unchanged.
"""
import torch
from torch import nn

from .classifier import ZooClassifier


class BasicBlock(nn.Module):
    """relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))."""

    def __init__(self, in_planes, planes, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = None
        if stride != 1 or in_planes != planes:
            self.downsample = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False),
                                            nn.BatchNorm2d(planes))

    def forward(self, x):
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return torch.relu(out + shortcut)


class CifarResNet(ZooClassifier):
    """Args: depth = 6n + 2; widths = (stem, stage1, stage2, stage3) channels."""

    def __init__(self, depth, widths=(16, 16, 32, 64), num_classes=100):
        super().__init__()
        if (depth - 2) % 6:
            raise ValueError(f"CIFAR ResNet depth must be 6n+2, got {depth}")
        n = (depth - 2) // 6
        self.conv1 = nn.Conv2d(3, widths[0], 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        in_planes = widths[0]
        stages = []
        for planes, stride in zip(widths[1:], (1, 2, 2), strict=True):
            blocks = [BasicBlock(in_planes, planes, stride)] + [BasicBlock(planes, planes) for _ in range(n - 1)]
            stages.append(nn.Sequential(*blocks))
            in_planes = planes
        self.layer1, self.layer2, self.layer3 = stages
        self.fc = nn.Linear(in_planes, num_classes)
        self.num_features = in_planes
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward_feature_map(self, x):
        """(B, 3, 32, 32) -> last-stage feature map (B, widths[3], 8, 8)."""
        x = torch.relu(self.bn1(self.conv1(x)))   # (B, w0, 32, 32)
        return self.layer3(self.layer2(self.layer1(x)))  # (B, w3, 8, 8)


def resnet8(num_classes=100):
    return CifarResNet(8, num_classes=num_classes)


def resnet14(num_classes=100):
    return CifarResNet(14, num_classes=num_classes)


def resnet20(num_classes=100):
    return CifarResNet(20, num_classes=num_classes)


def resnet32(num_classes=100):
    return CifarResNet(32, num_classes=num_classes)


def resnet44(num_classes=100):
    return CifarResNet(44, num_classes=num_classes)


def resnet56(num_classes=100):
    return CifarResNet(56, num_classes=num_classes)


def resnet110(num_classes=100):
    return CifarResNet(110, num_classes=num_classes)


def resnet8x4(num_classes=100):
    return CifarResNet(8, (32, 64, 128, 256), num_classes=num_classes)


def resnet32x4(num_classes=100):
    return CifarResNet(32, (32, 64, 128, 256), num_classes=num_classes)

"""ResNet-50 for CIFAR, the "ResNet50" teacher of the KD benchmark (RepDistiller `models/resnetv2.py`).

He et al. (CVPR 2016) bottleneck ResNet-50 ([3, 4, 6, 3] blocks, widths 64-512, expansion 4), adapted to
32x32 inputs as in the reference code: a 3x3 stride-1 stem without max-pool, so the stages run at 32, 16, 8
and 4 pixels. Shapes-changing shortcuts are 1x1 conv + BN; names (conv1, bn1, layer{1..4}.{i}.{conv,bn}{1,2,3},
layer{1..4}.{i}.shortcut.{0,1}, linear) match the released checkpoints.
"""
import torch
from torch import nn

from .classifier import ZooClassifier


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, in_planes, planes, stride=1):
        super().__init__()
        out = planes * self.expansion
        self.conv1 = nn.Conv2d(in_planes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out)
        self.shortcut = nn.Sequential()  # identity (no parameters) unless the shape changes
        if stride != 1 or in_planes != out:
            self.shortcut = nn.Sequential(nn.Conv2d(in_planes, out, 1, stride=stride, bias=False), nn.BatchNorm2d(out))

    def forward(self, x):
        y = torch.relu(self.bn1(self.conv1(x)))
        y = torch.relu(self.bn2(self.conv2(y)))
        return torch.relu(self.bn3(self.conv3(y)) + self.shortcut(x))


class CifarResNet50(ZooClassifier):
    head_name = "linear"

    def __init__(self, blocks=(3, 4, 6, 3), num_classes=100):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        in_planes, stages = 64, []
        for planes, n, stride in zip((64, 128, 256, 512), blocks, (1, 2, 2, 2), strict=True):
            layers = []
            for i in range(n):
                layers.append(Bottleneck(in_planes, planes, stride if i == 0 else 1))
                in_planes = planes * Bottleneck.expansion
            stages.append(nn.Sequential(*layers))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.linear = nn.Linear(in_planes, num_classes)
        self.num_features = in_planes
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward_feature_map(self, x):
        """(B, 3, 32, 32) -> (B, 2048, 4, 4)."""
        x = torch.relu(self.bn1(self.conv1(x)))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))   # (B, 2048, 4, 4)


def resnet50(num_classes=100):
    return CifarResNet50(num_classes=num_classes)

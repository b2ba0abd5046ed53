"""VGG with batch norm for CIFAR, as in the KD benchmark (RepDistiller `models/vgg.py`): vgg8, vgg13.

Simonyan & Zisserman (ICLR 2015) configurations split into five blocks of 3x3 conv-BN-ReLU; vgg13 is
configuration B ([64, 64], [128, 128], [256, 256], [512, 512], [512, 512]); vgg8 is RepDistiller's "S"
([64], [128], [256], [512], [512]). Max-pool after blocks 0-2 (the pool after block 3 is skipped at 32x32,
as in the reference code), global average pool, one linear layer from 512 features. Each block ends with BN
(its final ReLU is applied outside, so block names `block{b}.{3i, 3i+1}` match the released checkpoints).
"""
import torch
from torch import nn

from .classifier import ZooClassifier

CONFIGS = {"vgg8": ((64,), (128,), (256,), (512,), (512,)),
           "vgg13": ((64, 64), (128, 128), (256, 256), (512, 512), (512, 512))}


def _block(widths, in_ch):
    layers = []
    for w in widths:
        layers += [nn.Conv2d(in_ch, w, 3, padding=1), nn.BatchNorm2d(w), nn.ReLU(inplace=True)]
        in_ch = w
    return nn.Sequential(*layers[:-1])  # the last ReLU is applied in forward


class VGG(ZooClassifier):
    head_name = "classifier"

    def __init__(self, config, num_classes=100):
        super().__init__()
        in_ch = 3
        for b, widths in enumerate(config):
            setattr(self, f"block{b}", _block(widths, in_ch))
            in_ch = widths[-1]
        self.pool = nn.MaxPool2d(2, 2)
        self.classifier = nn.Linear(512, num_classes)
        self.num_features = 512
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward_feature_map(self, x):
        """(B, 3, H, W) -> (B, 512, h, w); at 32x32 the last two blocks run at 4x4."""
        h = x.shape[2]
        x = self.pool(torch.relu(self.block0(x)))      # (B, 64, H/2, W/2)
        x = self.pool(torch.relu(self.block1(x)))      # (B, 128, H/4, W/4)
        x = self.pool(torch.relu(self.block2(x)))      # (B, 256, H/8, W/8)
        x = torch.relu(self.block3(x))
        if h == 64:  # reference code pools here only for 64x64 inputs (Tiny-ImageNet)
            x = self.pool(x)
        return torch.relu(self.block4(x))              # (B, 512, h, w)


def vgg8(num_classes=100):
    return VGG(CONFIGS["vgg8"], num_classes)


def vgg13(num_classes=100):
    return VGG(CONFIGS["vgg13"], num_classes)

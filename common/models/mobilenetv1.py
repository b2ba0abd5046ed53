"""MobileNet (v1, width 1.0) for ImageNet, the student of the KD literature's ResNet-50 -> MobileNet pair.

Howard et al., *MobileNets*, arXiv 1704.04861, Table 1: a 3x3 conv-BN-ReLU stem (3 -> 32, stride 2), 13
depthwise-separable blocks (3x3 depthwise conv-BN-ReLU, then 1x1 pointwise conv-BN-ReLU), global average
pooling and a 1024 -> 1000 linear classifier. The layer list, BN/ReLU placement, bias-free convolutions and
PyTorch's default initialisation are those of the `MobileNet` of OFD (clovaai/overhaul-distillation,
`ImageNet/models/MobileNet.py`), which mdistiller (`mdistiller/models/imagenet/mobilenetv1.py`, DKD) and the
later KD papers reuse: 4,231,976 parameters with 1000 classes (OFD's README: 4.23M). Parameter names follow
that code (`model.<i>.<j>`, `fc`), so its students' state dicts load unchanged.

The one difference: OFD pools with `AvgPool2d(7)`, which needs a 224x224 input; we use adaptive average
pooling, which gives the same numbers at 224x224 and also accepts smaller test images.
"""
from torch import nn

from .classifier import ZooClassifier

# (output channels, stride) of the 13 depthwise-separable blocks, Howard et al. Table 1
BLOCKS = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
          (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1))


def conv_bn_relu(in_ch, out_ch, stride):
    """The stem: 3x3 conv (no bias) -> BN -> ReLU. Keys `0` (conv), `1` (BN)."""
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, 3, stride, 1, bias=False), nn.BatchNorm2d(out_ch),
                         nn.ReLU(inplace=True))


def depthwise_separable(in_ch, out_ch, stride):
    """3x3 depthwise conv -> BN -> ReLU -> 1x1 pointwise conv -> BN -> ReLU (all convs without bias).

    Keys `0` (depthwise), `1` (BN), `3` (pointwise), `4` (BN). The stride sits on the depthwise conv.
    """
    return nn.Sequential(
        nn.Conv2d(in_ch, in_ch, 3, stride, 1, groups=in_ch, bias=False), nn.BatchNorm2d(in_ch),
        nn.ReLU(inplace=True),
        nn.Conv2d(in_ch, out_ch, 1, 1, 0, bias=False), nn.BatchNorm2d(out_ch), nn.ReLU(inplace=True))


class MobileNetV1(ZooClassifier):
    def __init__(self, num_classes=1000):
        super().__init__()
        layers, in_ch = [conv_bn_relu(3, 32, 2)], 32
        for out_ch, stride in BLOCKS:
            layers.append(depthwise_separable(in_ch, out_ch, stride))
            in_ch = out_ch
        self.model = nn.Sequential(*layers)        # (B, 3, 224, 224) -> (B, 1024, 7, 7): total stride 32
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_ch, num_classes)

    @property
    def num_features(self):
        return self.fc.in_features

    def forward_feature_map(self, x):
        """(B, 3, H, W) -> (B, 1024, H/32, W/32)."""
        return self.model(x)

    def forward_features(self, x):
        """(B, 3, H, W) -> (B, 1024)."""
        return self.pool(self.model(x)).flatten(1)


def mobilenetv1(num_classes=1000):
    return MobileNetV1(num_classes=num_classes)

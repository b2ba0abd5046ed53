"""MobileNetV2 for CIFAR as used by the KD benchmark: RepDistiller's `mobile_half` (expansion 6, width 0.5).

Sandler et al., "MobileNetV2: Inverted Residuals and Linear Bottlenecks" (CVPR 2018), Table 2 settings
(t, c, n, s) with the stem stride 2 and the widths multiplied by 0.5; the 1x1 head conv keeps 1280 channels
(the reference code scales it only for width > 1). Unlike the paper, every block (also t = 1) has the 1x1
expansion conv, as in the reference code; module names (conv1.{0,1}, blocks.{s}.{i}.conv.{0,1,3,4,6,7},
conv2.{0,1}, classifier.0) match the released checkpoints.
"""
from torch import nn

from .classifier import ZooClassifier

SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 1), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))


def _conv_bn_relu(cin, cout, kernel, stride=1, groups=1):
    return [nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False), nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True)]


class InvertedResidual(nn.Module):
    """1x1 expand (ReLU) -> 3x3 depthwise (ReLU) -> 1x1 linear projection; identity shortcut when shapes match."""

    def __init__(self, cin, cout, stride, expand):
        super().__init__()
        hidden = cin * expand
        self.use_res = stride == 1 and cin == cout
        self.conv = nn.Sequential(*_conv_bn_relu(cin, hidden, 1), *_conv_bn_relu(hidden, hidden, 3, stride, hidden),
                                  nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        return x + self.conv(x) if self.use_res else self.conv(x)


class MobileNetV2(ZooClassifier):
    head_name = "classifier"

    def __init__(self, expand=6, width=0.5, num_classes=100):
        super().__init__()
        cin = int(32 * width)
        self.conv1 = nn.Sequential(*_conv_bn_relu(3, cin, 3, stride=2))
        blocks = []
        for t, c, n, s in SETTINGS:
            t = expand if t != 1 else 1
            cout = int(c * width)
            layers = []
            for i in range(n):
                layers.append(InvertedResidual(cin, cout, s if i == 0 else 1, t))
                cin = cout
            blocks.append(nn.Sequential(*layers))
        self.blocks = nn.ModuleList(blocks)
        last = int(1280 * width) if width > 1.0 else 1280
        self.conv2 = nn.Sequential(*_conv_bn_relu(cin, last, 1))
        self.classifier = nn.Sequential(nn.Linear(last, num_classes))
        self.num_features = last
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward_feature_map(self, x):
        """(B, 3, 32, 32) -> (B, 1280, 2, 2); the stem and three stride-2 stages leave 2x2 maps."""
        x = self.conv1(x)
        for block in self.blocks:
            x = block(x)
        return self.conv2(x)


def mobilenetv2(num_classes=100):
    """RepDistiller's 'MobileNetV2' (= mobile_half: expansion 6, width 0.5)."""
    return MobileNetV2(6, 0.5, num_classes)

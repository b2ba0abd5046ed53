"""torchvision ResNets for ImageNet (He et al., CVPR 2016), with the `forward_features` / `head` interface
the distillation code uses. State-dict keys are torchvision's, so torchvision's weight files load unchanged."""
from torchvision.models import resnet as tv_resnet


class ImageNetResNet(tv_resnet.ResNet):
    @property
    def head(self):
        return self.fc

    @property
    def num_features(self):
        return self.fc.in_features

    def forward_feature_map(self, x):
        """(B, 3, 224, 224) -> layer4 output (B, 512 or 2048, 7, 7)."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def forward_features(self, x):
        """(B, 3, 224, 224) -> (B, 512 or 2048)."""
        return self.avgpool(self.forward_feature_map(x)).flatten(1)


def resnet18(num_classes=1000):
    return ImageNetResNet(tv_resnet.BasicBlock, [2, 2, 2, 2], num_classes=num_classes)


def resnet34(num_classes=1000):
    return ImageNetResNet(tv_resnet.BasicBlock, [3, 4, 6, 3], num_classes=num_classes)


def resnet50(num_classes=1000):
    return ImageNetResNet(tv_resnet.Bottleneck, [3, 4, 6, 3], num_classes=num_classes)

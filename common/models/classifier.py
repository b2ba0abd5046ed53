"""The interface the zoo networks (CIFAR, and the ImageNet MobileNetV1) share with the distillation code."""
from torch import nn


class ZooClassifier(nn.Module):
    """`forward_feature_map` (B, 3, H, W) -> last-stage map (B, num_features, h, w) (the feature ICKD matches),
    `forward_features` -> its spatial mean (B, num_features), then the linear classifier `head`.

    Subclasses define `forward_feature_map` and name their classifier attribute in `head_name`: the name differs
    between networks (fc, linear, classifier) because it is part of the published checkpoints' state-dict keys.
    """

    head_name = "fc"

    @property
    def head(self):
        return getattr(self, self.head_name)

    def forward(self, x):
        return self.head(self.forward_features(x))

    def forward_features(self, x):
        return self.forward_feature_map(x).mean(dim=(2, 3))   # = global average pooling

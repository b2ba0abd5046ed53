"""The interface the zoo networks (CIFAR, and the ImageNet MobileNetV1) share with the distillation code."""
from torch import nn


class ZooClassifier(nn.Module):
    """`forward_features` (B, 3, H, W) -> (B, num_features), then the linear classifier `head`.

    Subclasses define `forward_features` and name their classifier attribute in `head_name`: the name differs
    between networks (fc, linear, classifier) because it is part of the published checkpoints' state-dict keys.
    """

    head_name = "fc"

    @property
    def head(self):
        return getattr(self, self.head_name)

    def forward(self, x):
        return self.head(self.forward_features(x))

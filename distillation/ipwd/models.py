"""IPWD's student: a zoo backbone (common.models, shared with ickd) with an auxiliary human-domain head.

The zoo names are re-exported so that `from ipwd.models import build_model` keeps working.
"""
from torch import nn

from common.models import (
    ALIASES,
    CIFAR_MODELS,
    IMAGENET_MODELS,
    MODELS,
    TEACHER_HINT,
    build_model,
    extract_state_dict,
    load_teacher,
)


class TwoHeadStudent(nn.Module):
    """A zoo backbone with its own classifier (the deployed head) plus an auxiliary linear head.

    IPWD (Niu et al., NeurIPS 2022, Sec. 4) estimates each sample's propensity of belonging to the machine
    domain by comparing two heads on the *shared* student backbone: the main head, trained with the
    distillation objective (machine domain), and the auxiliary head, trained with cross-entropy on the
    ground truth only (human domain). The auxiliary head costs one C x D linear layer and is not used at test.
    State-dict keys are `backbone.*` and `aux_head.*`.
    """

    def __init__(self, backbone, num_classes):
        super().__init__()
        self.backbone = backbone
        self.aux_head = nn.Linear(backbone.num_features, num_classes)

    def forward(self, x):
        """(B, 3, H, W) -> (main logits (B, C), auxiliary logits (B, C))."""
        feats = self.backbone.forward_features(x)   # (B, D)
        return self.backbone.head(feats), self.aux_head(feats)


__all__ = ["ALIASES", "CIFAR_MODELS", "IMAGENET_MODELS", "MODELS", "TEACHER_HINT", "TwoHeadStudent", "build_model",
           "extract_state_dict", "load_teacher"]

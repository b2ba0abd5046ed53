"""Consistent-Teacher (CVPR 2023): semi-supervised object detection, on torchvision primitives."""
from .assigner import dynamic_soft_label_assign
from .gmm import GaussianMixture1D, gmm_threshold
from .losses import detection_loss
from .model import ConsistentTeacherDetector, FAM3DHead
from .teacher import PseudoLabeler, ema_momentum, ema_update

__all__ = ["ConsistentTeacherDetector", "FAM3DHead", "GaussianMixture1D", "PseudoLabeler", "detection_loss",
           "dynamic_soft_label_assign", "ema_momentum", "ema_update", "gmm_threshold"]

"""ICKD (Liu et al., "Exploring Inter-Channel Correlation for Diversity-preserved Knowledge Distillation",
ICCV 2021): the ICC loss (official and paper forms, grid-level), the student embed, and the CIFAR-100 /
ImageNet training harness on the KD zoo of common.models."""
from .losses import grid_icc_loss, icc_loss, icc_matrix, ickd_objective, kd_loss
from .model import Embed, ICKDStudent, teacher_forward

__all__ = ["Embed", "ICKDStudent", "grid_icc_loss", "icc_loss", "icc_matrix", "ickd_objective", "kd_loss",
           "teacher_forward"]

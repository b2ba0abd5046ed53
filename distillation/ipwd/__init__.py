"""IPWD (Niu et al., "Respecting Transfer Gap in Knowledge Distillation", NeurIPS 2022, arXiv 2210.12787)
with the CIFAR-100 / ImageNet KD harness of the CRD protocol, in plain PyTorch."""
from .losses import (
                     ipwd_loss,
                     kd_loss,
                     kd_objective,
                     kd_per_sample,
                     propensity_weight,
                     pskd_alpha,
                     pskd_ipwd_loss,
                     standardize_logits,
)
from .models import MODELS, TwoHeadStudent, build_model, load_teacher

__all__ = ["MODELS", "TwoHeadStudent", "build_model", "ipwd_loss", "kd_loss", "kd_objective", "kd_per_sample",
           "load_teacher", "propensity_weight", "pskd_alpha", "pskd_ipwd_loss", "standardize_logits"]

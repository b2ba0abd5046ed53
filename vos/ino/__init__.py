"""INO: In-N-Out generative learning for dense unsupervised video segmentation (Pan et al., ACM MM 2022,
arXiv 2203.15312), with label-propagation inference and the official DAVIS-2017 J&F, in plain PyTorch."""
from .checkpoints import load_backbone
from .losses import INOLoss, affinity_loss, mim_loss, out_generative_loss
from .masking import shared_patch_mask
from .model import DINOHead, INONetwork, VisionTransformer, build_ino, ema_update, vit
from .propagation import propagate_chunked, propagate_dense, propagate_video

__all__ = ["DINOHead", "INOLoss", "INONetwork", "VisionTransformer", "affinity_loss", "build_ino", "ema_update",
           "load_backbone", "mim_loss", "out_generative_loss", "propagate_chunked", "propagate_dense",
           "propagate_video", "shared_patch_mask", "vit"]

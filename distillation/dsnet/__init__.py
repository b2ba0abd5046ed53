"""DS-Net (Li et al., "Dynamic Slimmable Network", CVPR 2021, arXiv 2103.13258) and DS-Net++ pieces (arXiv
2109.10060): slimmable ops with masked and truly sliced paths, the DS-MBNet / DS-ResNet-50 / DS-ViT++ supernets,
the double-headed gate, MvCo, and the two training stages, in plain PyTorch."""
from .losses import mvco_consistency, mvco_target
from .model import DSMobileNetV1, DSResNet, build_model, ds_resnet50, slimmable_mbnet_v1_bn_uniform
from .ops import SlimBatchNorm2d, SlimConv2d, SlimLayerNorm, SlimLinear, SlimTokenLinear, SoftChoice, gumbel_softmax_st
from .vit import DSViT, ds_vit_deit_s, ds_vit_tiny

__all__ = ["DSMobileNetV1", "DSResNet", "DSViT", "SlimBatchNorm2d", "SlimConv2d", "SlimLayerNorm", "SlimLinear",
           "SlimTokenLinear", "SoftChoice", "build_model", "ds_resnet50", "ds_vit_deit_s", "ds_vit_tiny",
           "gumbel_softmax_st", "mvco_consistency", "mvco_target", "slimmable_mbnet_v1_bn_uniform"]

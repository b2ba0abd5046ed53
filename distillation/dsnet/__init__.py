"""DS-Net (Li et al., "Dynamic Slimmable Network", CVPR 2021, arXiv 2103.13258) and DS-Net++ pieces (arXiv
2109.10060): slimmable ops with masked and truly sliced paths, the DS-MBNet / DS-ResNet-50 supernets, the
double-headed gate, and the two training stages, in plain PyTorch."""
from .model import DSMobileNetV1, DSResNet, build_model, ds_resnet50, slimmable_mbnet_v1_bn_uniform
from .ops import SlimBatchNorm2d, SlimConv2d, SlimLinear, SoftChoice, gumbel_softmax_st

__all__ = ["DSMobileNetV1", "DSResNet", "SlimBatchNorm2d", "SlimConv2d", "SlimLinear", "SoftChoice", "build_model",
           "ds_resnet50", "gumbel_softmax_st", "slimmable_mbnet_v1_bn_uniform"]

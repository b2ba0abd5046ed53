"""Networks that two methods must share because they load the same published checkpoints: the CIFAR-100 /
ImageNet teacher-student zoo of the KD literature (RepDistiller / mdistiller / torchvision / OFD layouts) and
its teacher loader, used by `ipwd` and `ickd`."""
from .zoo import (
    ALIASES,
    CIFAR_MODELS,
    IMAGENET_MODELS,
    MODELS,
    TEACHER_HINT,
    build_model,
    extract_state_dict,
    load_teacher,
)

__all__ = ["ALIASES", "CIFAR_MODELS", "IMAGENET_MODELS", "MODELS", "TEACHER_HINT", "build_model",
           "extract_state_dict", "load_teacher"]

"""The teacher/student zoo of the KD literature and its teacher-checkpoint loader (shared by ipwd and ickd,
which load the same published teachers into the same architectures).

The ImageNet models are torchvision's ResNet-18/34/50 and OFD's / mdistiller's MobileNet (v1).
CIFAR models follow RepDistiller (CRD, ICLR 2020) / mdistiller (DKD, CVPR 2022) architecturally and by
parameter name, so the CIFAR-100 teachers of mdistiller's `cifar_teachers.tar` release load unchanged.
Every model has `forward(x) -> logits`, `forward_feature_map(x) -> (B, D, h, w)` (the last-stage map before
pooling), `forward_features(x) -> (B, D)`, `head` (its last linear layer) and `num_features` (D).
"""
import torch

from common.checkpoint import load_checkpoint
from common.errors import DataError

from .cifar_resnet import resnet8, resnet8x4, resnet14, resnet20, resnet32, resnet32x4, resnet44, resnet56, resnet110
from .cifar_resnet50 import resnet50 as cifar_resnet50
from .imagenet import resnet18, resnet34, resnet50
from .mobilenetv1 import mobilenetv1
from .mobilenetv2 import mobilenetv2
from .shufflenet import shufflenetv1, shufflenetv2
from .vgg import vgg8, vgg13
from .wrn import wrn_16_2, wrn_40_1, wrn_40_2

CIFAR_MODELS = {**{f.__name__: f for f in (resnet8, resnet14, resnet20, resnet32, resnet44, resnet56, resnet110,
                                           resnet8x4, resnet32x4, wrn_16_2, wrn_40_1, wrn_40_2, vgg8, vgg13,
                                           mobilenetv2, shufflenetv1, shufflenetv2)},
                "resnet50": cifar_resnet50}
IMAGENET_MODELS = {"tv_resnet18": resnet18, "tv_resnet34": resnet34, "tv_resnet50": resnet50,
                   "mobilenetv1": mobilenetv1}
MODELS = {**CIFAR_MODELS, **IMAGENET_MODELS}
# mdistiller / RepDistiller names of the same networks (their checkpoints' folder names use these); OFD and
# mdistiller call the ImageNet MobileNet "MobileNet" / "MobileNetV1"
ALIASES = {"ResNet50": "resnet50", "MobileNetV2": "mobilenetv2", "ShuffleV1": "shufflenetv1",
           "ShuffleV2": "shufflenetv2",
           "vgg8_bn": "vgg8", "vgg13_bn": "vgg13", "MobileNet": "mobilenetv1", "MobileNetV1": "mobilenetv1"}


TEACHER_HINT = ("mdistiller's teachers: github.com/megvii-research/mdistiller/releases (cifar_teachers.tar), "
                "e.g. cifar_teachers/resnet32x4_vanilla/ckpt_epoch_240.pth")


def build_model(name, num_classes):
    """A zoo model by name (see MODELS; RepDistiller names such as 'ShuffleV1' are accepted)."""
    name = ALIASES.get(name, name)
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose from {', '.join(MODELS)}")
    return MODELS[name](num_classes=num_classes)


def extract_state_dict(obj):
    """The model weights inside a checkpoint object.

    Accepts mdistiller/RepDistiller teacher files (`{'model': state_dict, 'accuracy': ..., ...}`), this
    package's checkpoints (`{'model': ..., 'config': ...}`; a two-head student's `backbone.` prefix is
    removed), and a bare state dict; a DataParallel `module.` prefix is removed.
    """
    state = obj.get("model", obj) if isinstance(obj, dict) else obj
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise ValueError("no state dict found (expected {'model': state_dict} or a state dict)")
    out = {}
    for key, value in state.items():
        for prefix in ("module.", "_orig_mod.", "backbone."):
            if key.startswith(prefix):
                key = key[len(prefix):]
        if key.startswith("aux_head."):
            continue
        out[key] = value
    return out


def load_teacher(name, path, num_classes):
    """Build zoo model `name` and load the weights of `path` (mdistiller `ckpt_epoch_240.pth` or ours), strict.

    A missing/unreadable file (`load_checkpoint`) or weights of another architecture raise DataError naming the file.
    """
    model = build_model(name, num_classes)
    try:
        state = extract_state_dict(load_checkpoint(path))
        model.load_state_dict(state)
    except (ValueError, RuntimeError) as e:
        raise DataError(path, f"weights do not fit {name} with {num_classes} classes ({str(e)[:300]})",
                        hint=TEACHER_HINT) from None
    return model


__all__ = ["ALIASES", "CIFAR_MODELS", "IMAGENET_MODELS", "MODELS", "TEACHER_HINT", "build_model",
           "extract_state_dict", "load_teacher"]

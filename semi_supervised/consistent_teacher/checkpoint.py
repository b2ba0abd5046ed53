"""Load the released Consistent-Teacher checkpoints (mmdet 2.x `.pth`) into `ConsistentTeacherDetector`.

An official checkpoint is `{"meta": ..., "state_dict": {...}}` holding both networks of the semi-supervised
wrapper, `teacher.<detector keys>` and `student.<detector keys>`, plus the wrapper's `scores` buffer (the per-class
GMM score queues, (num_classes, 100)). The detector keys are mmdet's: the ResNet-50 backbone and the FAM-3D head
use the same names as ours (`backbone.layer1.0.conv1.weight`, `bbox_head.tood_cls.weight`, ...); only mmdet's FPN
differs from torchvision's:

    neck.lateral_convs.{i}.conv.*   -> neck.inner_blocks.{i}.0.*     (1x1 lateral convs of C3-C5)
    neck.fpn_convs.{i}.conv.*       -> neck.layer_blocks.{i}.0.*     (3x3 output convs of P3-P5, i < 3)
    neck.fpn_convs.3.conv.*         -> neck.extra_blocks.p6.*        (stride-2 conv on the P5 output)
    neck.fpn_convs.4.conv.*         -> neck.extra_blocks.p7.*        (stride-2 conv on P6, no ReLU before it)

The official evaluation uses the teacher (`test_cfg=dict(inference_on="teacher")`).
"""
import re

import torch

from common.errors import DataError

NETWORKS = ("teacher", "student")
_NECK_RULES = [
    (re.compile(r"^neck\.lateral_convs\.(\d+)\.conv\."), r"neck.inner_blocks.\1.0."),
    (re.compile(r"^neck\.fpn_convs\.3\.conv\."), "neck.extra_blocks.p6."),
    (re.compile(r"^neck\.fpn_convs\.4\.conv\."), "neck.extra_blocks.p7."),
    (re.compile(r"^neck\.fpn_convs\.([0-2])\.conv\."), r"neck.layer_blocks.\1.0."),
]


def convert_official_state_dict(state_dict, network="teacher"):
    """mmdet keys of one network of the wrapper -> our detector's keys (see the module docstring)."""
    if network not in NETWORKS:
        raise ValueError(f"network must be one of {NETWORKS}, got {network!r}")
    prefix = network + "."
    out = {}
    for key, value in state_dict.items():
        if not key.startswith(prefix):
            continue
        key = key[len(prefix):]
        for pattern, replacement in _NECK_RULES:
            key, n = pattern.subn(replacement, key)
            if n:
                break
        out[key] = value
    return out


def load_official_checkpoint(path, network="teacher"):
    """-> (our state dict, num_classes, the GMM score queues or None) from an official `.pth` file."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except FileNotFoundError:
        raise DataError(path, "an official Consistent-Teacher checkpoint (.pth from the README of "
                        "Adamdad/ConsistentTeacher)") from None
    state = ckpt.get("state_dict", ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict) or not any(k.startswith(network + ".") for k in state):
        raise DataError(path, f"an mmdet checkpoint with '{network}.*' keys (the semi-supervised wrapper's "
                        "state_dict); a plain detector checkpoint is not an official Consistent-Teacher file")
    converted = convert_official_state_dict(state, network)
    if "bbox_head.tood_cls.weight" not in converted:
        raise DataError(path, "a FAM-3D head (bbox_head.tood_cls.weight): this is not a Consistent-Teacher model")
    num_classes = converted["bbox_head.tood_cls.weight"].shape[0]
    return converted, num_classes, state.get("scores")

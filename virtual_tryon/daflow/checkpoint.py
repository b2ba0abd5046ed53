"""Load the official DAFlow checkpoint (``ckpt_viton.pt``) into `SDAFNet.paper()`.

The official test script loads a plain state_dict (``SDAFNet_Tryon(ref_in_channel=6)``); training checkpoints
of the official script are dicts {state_dict, optim, opt}, and DataParallel prefixes keys with ``module.``. All
three forms are accepted. Our module names equal the official ones (source_features, reference_features,
source_FPN, reference_FPN, dafnet.{Self,Cross,Refine}_MFEs.i.layers, dafnet.lights_{en,de}coder), so the keys
load strictly without renaming. Argument order differs: the official forward is
``(ref_input = cat(pose, agnostic), source_image = cloth, ref_image = agnostic)``; ours is (cloth, agnostic, pose).
"""
from pathlib import Path

import torch

from common.errors import DataError

from .model import SDAFNet


def official_state_dict(obj):
    """The model weights inside an official checkpoint object, without a DataParallel ``module.`` prefix."""
    state = obj.get("state_dict", obj) if isinstance(obj, dict) else None
    if not isinstance(state, dict):
        raise ValueError("expected a state_dict or a dict with a 'state_dict' entry")
    return {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}


def load_official_checkpoint(path, warp_backend="reference", map_location="cpu"):
    """SDAFNet.paper() with the weights of an official checkpoint file, in eval mode."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "official DAFlow checkpoint (ckpt_viton.pt) not found",
                        hint="download it from the OFA-Sys/DAFlow README and pass its local path")
    try:
        state = official_state_dict(torch.load(path, map_location=map_location, weights_only=True))
    except Exception as e:
        raise DataError(path, f"a DAFlow state_dict ({type(e).__name__}: {e})") from None
    model = SDAFNet.paper(warp_backend=warp_backend)
    missing, unexpected = model.load_state_dict(state, strict=False)  # reported below as a DataError
    if missing or unexpected:
        raise DataError(path, f"SDAFNet_Tryon(ref_in_channel=6, head_nums=6) weights; missing {missing[:5]}, "
                        f"unexpected {unexpected[:5]}")
    return model.eval()

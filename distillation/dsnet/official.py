"""Reading supernet checkpoints: the released `DS_MBNet-70_1.pth.tar` (timm saver format) and ours.

The official trainer (timm 0.3 `CheckpointSaver`) writes a dict with `state_dict` (and `state_dict_ema` when EMA
is on), keys as `slimmable_mbnet_v1_bn_uniform` names them (`conv_stem.weight`, `blocks.3.first_block.gate.gate
.0.weight`, `bn1.aux_bn.13.running_mean`, ...), sometimes with a `module.` prefix from DDP. Our
`DSMobileNetV1` keeps those names, so the file loads without renaming; ours are `{"model": ..., "ema": ...}`.
"""
import torch

from common.errors import DataError


def read_state_dict(path, prefer_ema=True):
    """The weights in `path`: the EMA copy when present and `prefer_ema`, else the online weights."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except FileNotFoundError:
        raise DataError(path, "supernet checkpoint not found", hint="the released DS_MBNet-70_1.pth.tar is on "
                        "https://github.com/changlin31/DS-Net/releases (v0.0.1); or pass one of our last.pt") from None
    except Exception as e:
        raise DataError(path, f"not a readable checkpoint ({type(e).__name__}: {e})") from None
    if not isinstance(ckpt, dict):
        raise DataError(path, "expected a dict of weights or a checkpoint dict")
    order = ("state_dict_ema", "ema", "state_dict", "model") if prefer_ema else ("state_dict", "model")
    state = next((ckpt[k] for k in order if isinstance(ckpt.get(k), dict)), ckpt)
    state = {k.removeprefix("module."): v for k, v in state.items()}
    if not all(torch.is_tensor(v) for v in state.values()):
        raise DataError(path, "expected tensors under state_dict / state_dict_ema / model")
    return state


def load_supernet(model, path, prefer_ema=True):
    """Load `path` into `model` strictly; a DataError names the file and the missing / unexpected / misshapen keys."""
    state = read_state_dict(path, prefer_ema)
    ours = model.state_dict()
    missing = sorted(set(ours) - set(state))
    unexpected = sorted(set(state) - set(ours))
    shapes = sorted(k for k in set(ours) & set(state) if tuple(ours[k].shape) != tuple(state[k].shape))
    if missing or unexpected or shapes:
        def few(keys):
            return ", ".join(keys[:5]) + (f" (+{len(keys) - 5} more)" if len(keys) > 5 else "")
        problems = [f"missing {few(missing)}" if missing else "", f"unexpected {few(unexpected)}" if unexpected else "",
                    f"shape differs for {few(shapes)}" if shapes else ""]
        raise DataError(path, "weights do not fit the model: " + "; ".join(p for p in problems if p),
                        hint="DS_MBNet-70_1.pth.tar needs --model ds_mbnet_v1 with 1000 classes, 4 routes")
    model.load_state_dict(state)
    return model

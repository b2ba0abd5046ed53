"""Backbone weights from our checkpoints, the official INO checkpoint layout and DINO ViT checkpoints.

- ours (`train.sh` writes `checkpoints/last.pt`): `model` = student INONetwork state, `ema` = teacher.
- official INO (`main_VOS.py`, DINO-style `checkpoint.pth`): {'student': ..., 'teacher': ..., 'optimizer',
  'epoch', 'args', ...}; student keys `module.backbone.<vit key>` (DDP + MultiCropWrapper) and
  `module.headlist.headlist.0.*` (its MultiLayerWrapper of DINO heads, weight-normed `last_layer.weight_g/_v`);
  the teacher is saved unwrapped (`backbone.*`, `headlist.headlist.0.*`). INO evaluates the `student`
  (`infer_vos.sh`: `checkpoint_key=student`). `tests/data/official_main_vos_keys.json` lists these keys and
  shapes as the official classes produce them (`tools/dump_official_keys.py`).
- DINO releases (`dino_deitsmall8_pretrain.pth`): a bare ViT state dict (`cls_token`, `pos_embed` for a
  28x28 grid, `patch_embed.proj.*`, `blocks.i.*`, `norm.*`); full DINO checkpoints have 'student'/'teacher'
  like INO's.
Our ViT uses DINO's parameter names, so only prefixes are stripped; the position-embedding grid is taken
from the file (it is interpolated per resolution anyway); a missing mask token (DINO) keeps its init.
"""
import torch

from common.checkpoint import load_checkpoint
from common.errors import DataError

from .model import ARCHS, VisionTransformer

PREFIXES = ("module.", "backbone.", "_orig_mod.")
HEAD_MODULES = ("head", "headlist")  # ours / official INO: projection heads, not part of the backbone
MASK_TOKEN_NAMES = ("masked_embed", "mask_token")  # iBOT-style name, ours


def backbone_state(state, key="student"):
    """Pick the backbone state dict out of any supported checkpoint layout."""
    if key in state and isinstance(state[key], dict):
        state = state[key]
    elif "model" in state and isinstance(state["model"], dict):
        state = state["model"]
    out = {}
    for name, value in state.items():
        if not torch.is_tensor(value):
            continue
        stripped = name
        changed = True
        while changed:
            changed = False
            for p in PREFIXES:
                if stripped.startswith(p):
                    stripped, changed = stripped[len(p):], True
        if stripped.split(".")[0] in HEAD_MODULES:
            continue
        if stripped in MASK_TOKEN_NAMES:
            stripped = "mask_token"
        out[stripped] = value
    return out


def infer_arch(state):
    """(arch, patch_size, depth) from a backbone state dict."""
    if "patch_embed.proj.weight" not in state:
        raise KeyError("no patch_embed.proj.weight: not a ViT backbone")
    dim, _, patch, _ = state["patch_embed.proj.weight"].shape
    depth = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("blocks."))
    arch = next((a for a, (d, n, _) in ARCHS.items() if d == dim and n == depth), None)
    if arch is None:
        raise KeyError(f"no known ViT with width {dim} and depth {depth}")
    return arch, patch, depth


def load_backbone(path, key="student"):
    """A `VisionTransformer` with the weights of a checkpoint of any supported layout (on the CPU, eval mode)."""
    raw = load_checkpoint(path)
    if key == "teacher" and "ema" in raw and raw.get("ema") is not None:  # ours: the teacher is the EMA
        raw = {"model": raw["ema"]}
    state = backbone_state(raw, key)
    try:
        arch, patch, _ = infer_arch(state)
    except KeyError as e:
        raise DataError(path, f"expected a ViT checkpoint (ours, INO's or DINO's): {e}") from None
    dim, depth, heads = ARCHS[arch]
    grid = int(round((state["pos_embed"].shape[1] - 1) ** 0.5))
    model = VisionTransformer(patch, dim, depth, heads, pos_grid=grid)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if set(missing) - {"mask_token"} or unexpected:
        raise DataError(path, f"ViT weights do not fit: missing {sorted(missing)}, unexpected {sorted(unexpected)}")
    return model.eval()

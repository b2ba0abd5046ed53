"""Random patch masking shared by every frame, clip and process (official `mask_generator.py` + main_VOS.py).

With probability `1 - mask_prob` nothing is masked; otherwise a ratio r ~ U(ratio_min, ratio_max) is drawn
and int(r * N) patch positions are picked uniformly at random (not block-wise). The official code draws one
mask per iteration on rank 0 and broadcasts it; here the mask is a pure function of (seed, step), so every
rank draws the same one without communication and a resumed run draws the same masks.
"""
import numpy as np
import torch


def shared_patch_mask(num_patches, step, seed=0, mask_prob=0.5, ratio_min=0.1, ratio_max=0.5):
    """(num_patches,) bool: the positions masked in every frame and clip of this step."""
    rng = np.random.default_rng([seed, step, 0x1A0])
    mask = np.zeros(num_patches, dtype=bool)
    if rng.random() < mask_prob:
        ratio = rng.uniform(ratio_min, ratio_max)
        mask[rng.choice(num_patches, size=int(ratio * num_patches), replace=False)] = True
    return torch.from_numpy(mask)

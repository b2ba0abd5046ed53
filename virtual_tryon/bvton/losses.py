"""BVTON's losses per stage; every weight is a config option (README table). All [assumption] (research note
``virtual_tryon.md`` §2.3-§2.5): the abstract states no loss.

Every masked term is normalised per sample and then averaged over the batch, so a batch split over DDP ranks
gives the same gradient as one process.
"""
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from common.errors import DataError

from .model import NUM_PARTS


def masked_l1(x, y, mask, eps=1e-6):
    """Mean |x - y| over mask (B, 1, H, W) per sample, then over the batch."""
    num = ((x - y).abs() * mask).flatten(1).sum(1)
    return (num / (mask.flatten(1).sum(1) * x.shape[1] + eps)).mean()


def second_order_smoothness(residual, part_weights=(1.0,) * NUM_PARTS, eps=1e-3, power=0.45):
    """Charbonnier second-order smoothness of dense flows (GP-VTON's term, research note §2.3/§5.3).

    residual (B, P, 2, H, W); part_weights: per-part multipliers (the note: torso x40).
    """
    dxx = residual[..., :, 2:] - 2 * residual[..., :, 1:-1] + residual[..., :, :-2]
    dyy = residual[..., 2:, :] - 2 * residual[..., 1:-1, :] + residual[..., :-2, :]
    charb = lambda d: ((d**2 + eps**2) ** power).mean((2, 3, 4))  # noqa: E731  -> (B, P)
    w = torch.tensor(part_weights, dtype=residual.dtype, device=residual.device)
    return ((charb(dxx) + charb(dyy)) * w).sum(1).mean()


def layered_bce(logits, labels):
    """Per-layer amodal supervision (research note §2.4): for layer l >= 1, pixels whose visible layer is l are
    positive, pixels owned by a lower layer are negative, pixels owned by a higher layer are ignored."""
    num_layers = logits.shape[1]
    ids = torch.arange(num_layers, device=labels.device).view(1, -1, 1, 1)
    lab = labels.unsqueeze(1)
    target = (lab == ids).to(logits.dtype)
    valid = (lab <= ids).to(logits.dtype)[:, 1:]
    bce = F.binary_cross_entropy_with_logits(logits[:, 1:], target[:, 1:], reduction="none")
    return ((bce * valid).flatten(1).sum(1) / valid.flatten(1).sum(1).clamp_min(1)).mean()


def lsgan(feats_or_pred, real):
    """LSGAN: mean (D(x) - 1)^2 for real targets, D(x)^2 for fake (the last feature map is the prediction)."""
    pred = feats_or_pred[-1]
    return ((pred - 1) ** 2).mean() if real else (pred**2).mean()


def feature_matching(fake_feats, real_feats):
    """pix2pixHD discriminator feature matching: mean L1 over the intermediate D features."""
    return sum(F.l1_loss(f, r.detach()) for f, r in zip(fake_feats[:-1], real_feats[:-1], strict=True)) / max(
        1, len(fake_feats) - 1)


class VGGPerceptual(nn.Module):
    """pix2pixHD VGG loss: sum_i w_i L1(phi_i(x), phi_i(y)) at relu1_1..relu5_1, w = 1/32, 1/16, 1/8, 1/4, 1.

    weights: local torchvision ``vgg19-dcbb9e9d.pth`` (nothing is downloaded); pretrained=False: random weights
    (tests and the bench only: the loss then means little). Inputs in [-1, 1], ImageNet-normalised inside.
    """

    TAPS, WEIGHTS = (1, 6, 11, 20, 29), (1 / 32, 1 / 16, 1 / 8, 1 / 4, 1.0)

    def __init__(self, weights="", pretrained=True):
        super().__init__()
        from torchvision.models import vgg19
        self.features = vgg19(weights=None).features[: self.TAPS[-1] + 1]
        if pretrained:
            if not weights or not Path(weights).is_file():
                raise DataError(weights or "<not given>", "the torchvision VGG19 weights vgg19-dcbb9e9d.pth",
                                hint="pass --vgg_weights PATH, or set the VGG loss weights to 0")
            state = torch.load(weights, map_location="cpu", weights_only=True)
            self.features.load_state_dict({k[len("features."):]: v for k, v in state.items()
                                           if k.startswith("features.") and int(k.split(".")[1]) <= self.TAPS[-1]})
        self.requires_grad_(False)
        self.eval()
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))

    def forward(self, x, y):
        x, y = ((x + 1) / 2 - self.mean) / self.std, ((y + 1) / 2 - self.mean) / self.std
        loss = 0
        for i, layer in enumerate(self.features):
            x, y = layer(x), layer(y)
            if i in self.TAPS:
                loss = loss + self.WEIGHTS[self.TAPS.index(i)] * F.l1_loss(x, y.detach())
        return loss


def hem_weights(h, w, hem_start, hem_weight, device, dtype):
    """(1, 1, H, W): 1 above row hem_start * H of the canonical frame, hem_weight below (a hidden hem)."""
    rows = (torch.arange(h, device=device, dtype=dtype) + 0.5) / h
    return torch.where(rows >= hem_start, hem_weight, 1.0).to(dtype).view(1, 1, h, 1).expand(1, 1, h, w)


def flow_loss(out, cloth, cloth_mask, cfg, vgg=None):
    """Canonicalizing-flow loss (paired only, target the in-shop garment C, research note §2.3):
    appearance L1 on the in-shop garment's region (+ lambda_flow_vgg x VGG), shape L1(coverage, M_C), both with
    the hem rows (which the model may hide, e.g. tucked in) down-weighted, second-order smoothness (torso x
    smooth_torso_mult). -> (loss, terms).

    The note computes the appearance term only where the warped on-model masks cover; that lets a flow that
    moves every part out of the frame score 0 there, so here it is taken on the target's region instead, where an
    uncovered (white) pixel costs as much as a wrong one."""
    h, w = cloth.shape[-2:]
    hem = hem_weights(h, w, cfg.hem_start, cfg.hem_weight, cloth.device, cloth.dtype)
    terms = {"appearance": masked_l1(out["image"], cloth, cloth_mask * hem)}
    if vgg is not None and cfg.lambda_flow_vgg:
        terms["vgg"] = cfg.lambda_flow_vgg * vgg(out["image"], cloth)
    terms["shape"] = cfg.lambda_shape * ((out["coverage"] - cloth_mask).abs() * hem).mean()
    terms["smooth"] = cfg.lambda_smooth * second_order_smoothness(
        out["residual"], (cfg.smooth_torso_mult, 1.0, 1.0))
    return sum(terms.values()), {k: float(v.detach()) for k, v in terms.items()}


def mask_stage_loss(logits, log_probs, labels, warped, c_on, upper, cfg):
    """Layered mask generator (CE on the visible layer x lambda_ce + per-layer BCE x lambda_layer_bce) and the
    forward warper (L1 to the on-model garment on its mask + shape + smoothness). -> (loss, terms)."""
    terms = {"ce": cfg.lambda_ce * F.nll_loss(log_probs, labels),
             "layer_bce": cfg.lambda_layer_bce * layered_bce(logits, labels),
             "warp_l1": masked_l1(warped["image"], c_on, upper),
             "warp_shape": cfg.lambda_shape * (warped["coverage"] - upper).abs().mean(),
             "warp_smooth": cfg.lambda_smooth * second_order_smoothness(warped["residual"])}
    return sum(terms.values()), {k: float(v.detach()) for k, v in terms.items()}

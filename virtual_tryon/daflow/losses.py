"""DAFlow's multi-scale training loss (official ``train_SDAFNet_viton.py``, ``models/external_function.py``).

For the K+1 = 5 outputs Y_hat_s (s = 0 coarsest ... 4 full size) and targets Y_s = bilinear(img, 0.5^(4 - s)):

    L = sum_s (s + 1) * [ L1(Y_hat_s, Y_s) + LPIPS_vgg(Y_s, Y_hat_s) + 100 L_style + 0.1 L_content ]

L_content = sum of L1 between VGG19 relu1_1, relu2_1, relu3_1, relu4_1, relu5_1 features; L_style = sum of L1
between Gram matrices G = F F^T / (C H W) at relu2_2, relu3_4, relu4_4, relu5_2. VGG19 sees the [-1, 1] images
without ImageNet normalization (as the official code). For s = 0 both images are upsampled x2 before the VGG
and LPIPS terms, and every term is applied at every scale (at 256x192 the VGG/LPIPS inputs are 32x24 ... 256x192).
`perceptual_min_side` > 0 skips the VGG/LPIPS terms for inputs whose short side is below it (our earlier
behaviour, 32: the two coarsest scales at 256x192); inputs too small for VGG19's four poolings are an error.
No flow smoothness, no adversarial term (as released).
"""
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from common.errors import DataError

CONTENT_TAPS = (1, 6, 11, 20, 29)  # relu1_1, relu2_1, relu3_1, relu4_1, relu5_1 in torchvision vgg19.features
STYLE_TAPS = (8, 17, 26, 31)  # relu2_2, relu3_4, relu4_4, relu5_2
VGG_MIN_SIDE = 16  # VGG19 pools 4x before relu5_2: a smaller input has an empty relu5 map


class VGG19Features(nn.Module):
    """torchvision VGG19 ``features[:32]``, frozen; weights from a local ``vgg19-dcbb9e9d.pth`` or random (tests)."""

    def __init__(self, weights_path=None, pretrained=True):
        super().__init__()
        from torchvision.models import vgg19

        self.features = vgg19(weights=None).features[: max(STYLE_TAPS) + 1]
        if pretrained:
            if not weights_path or not Path(weights_path).is_file():
                raise DataError(weights_path or "<not given>", "expected vgg19-dcbb9e9d.pth (torchvision VGG19 "
                                "ImageNet weights)", hint="pass --vgg_weights PATH, or --pretrained_losses false")
            state = torch.load(weights_path, map_location="cpu", weights_only=True)
            self.features.load_state_dict({k[len("features."):]: v for k, v in state.items()
                                           if k.startswith("features.") and int(k.split(".")[1]) <= max(STYLE_TAPS)})
        self.requires_grad_(False)
        self.eval()

    def forward(self, x):
        """-> dict tap index -> feature map."""
        out = {}
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in CONTENT_TAPS or i in STYLE_TAPS:
                out[i] = x
        return out


def gram(f):
    """G = F F^T / (C H W) for f (B, C, H, W) -> (B, C, C)."""
    b, c, h, w = f.shape
    f = f.reshape(b, c, h * w)
    return f @ f.transpose(1, 2) / (c * h * w)


class DAFlowLoss(nn.Module):
    """Multi-scale L1 + LPIPS + style + content loss; weights default to the official ones.

    vgg / lpips: modules (None disables that term, e.g. for CPU smoke runs at 64x48).
    forward(outputs, target) -> (total, dict of per-term sums for logging).
    """

    def __init__(self, vgg=None, lpips=None, lambda_l1=1.0, lambda_lpips=1.0, lambda_style=100.0,
                 lambda_content=0.1, perceptual_min_side=0):
        super().__init__()
        self.perceptual_min_side = perceptual_min_side
        self.vgg, self.lpips = vgg, lpips
        self.lambda_l1, self.lambda_lpips = lambda_l1, lambda_lpips
        self.lambda_style, self.lambda_content = lambda_style, lambda_content

    def forward(self, outputs, target):
        total = 0.0
        terms = {"l1": 0.0, "lpips": 0.0, "style": 0.0, "content": 0.0}
        for s, pred in enumerate(outputs):
            y = F.interpolate(target, size=pred.shape[2:], mode="bilinear") if pred.shape != target.shape else target
            level = self.lambda_l1 * F.l1_loss(pred, y)
            terms["l1"] += float(F.l1_loss(pred.detach(), y))
            px, py = (pred, y) if s > 0 else (F.interpolate(pred, scale_factor=2, mode="bilinear"),
                                               F.interpolate(y, scale_factor=2, mode="bilinear"))
            if min(px.shape[2:]) >= self.perceptual_min_side:
                if (self.vgg is not None or self.lpips is not None) and min(px.shape[2:]) < VGG_MIN_SIDE:
                    raise ValueError(f"output {tuple(px.shape[2:])} at scale {s} is too small for the VGG/LPIPS terms "
                                     f"(short side >= {VGG_MIN_SIDE}); set their weights to 0 or set "
                                     "perceptual_min_side")
                if self.lpips is not None:
                    lp = self.lpips(py, px).mean()
                    level = level + self.lambda_lpips * lp
                    terms["lpips"] += float(lp)
                if self.vgg is not None:
                    fx, fy = self.vgg(px), self.vgg(py)
                    content = sum(F.l1_loss(fx[t], fy[t].detach()) for t in CONTENT_TAPS)
                    style = sum(F.l1_loss(gram(fx[t]), gram(fy[t]).detach()) for t in STYLE_TAPS)
                    level = level + self.lambda_style * style + self.lambda_content * content
                    terms["style"] += float(style)
                    terms["content"] += float(content)
            total = total + (s + 1) * level
        return total, terms

"""BVTON's networks: the compositional canonicalizing flow, the layered mask generator, the unpaired synthesizer.

Yang, Zang, Liu, "High-Fidelity Virtual Try-on with Large-Scale Unpaired Learning", arXiv 2411.01593 (v1). Only
the abstract could be read; every architectural detail below is an [assumption] of the research note
``virtual_tryon.md`` §2.3-§2.5 (or a simplification of it, listed in the README's table), not the paper's.

Shapes: B batch, P = 3 garment parts (torso, right sleeve, left sleeve), L = 9 layers (`parts.LAYERS`), images
(B, 3, H, W) in [-1, 1], pose heatmaps (B, 18, H, W). Flows are backward maps ("grids") in normalized [-1, 1]
coordinates of the source image, sampled with ``grid_sample(align_corners=False)``.
"""
import torch
import torch.nn.functional as F
from torch import nn

from .parts import LAYERS

NUM_PARTS, NUM_LAYERS, NUM_JOINTS = 3, len(LAYERS), 18
WHITE = 1.0  # background of in-shop garments and of the canonical proxy, in [-1, 1] units


def conv_block(cin, cout, stride=1):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1), nn.LeakyReLU(0.2, inplace=True),
                         nn.Conv2d(cout, cout, 3, 1, 1), nn.LeakyReLU(0.2, inplace=True))


class UNet(nn.Module):
    """Plain U-Net (no batch norm, so DDP and single-process runs agree): stride-2 encoder, nearest-upsampling
    decoder with skip concatenation. widths (w0, w1, ...) per level; returns (output, bottleneck features)."""

    def __init__(self, cin, cout, widths, head_bias=True):
        super().__init__()
        self.enc = nn.ModuleList([conv_block(cin, widths[0])] +
                                 [conv_block(a, b, 2) for a, b in zip(widths[:-1], widths[1:], strict=True)])
        self.dec = nn.ModuleList(conv_block(b + a, a) for a, b in zip(widths[:-1], widths[1:], strict=True))
        self.head = nn.Conv2d(widths[0], cout, 3, 1, 1, bias=head_bias)

    def forward(self, x):
        skips = []
        for enc in self.enc:
            x = enc(x)
            skips.append(x)
        bottleneck = x
        for dec, skip in zip(reversed(self.dec), reversed(skips[:-1]), strict=True):
            x = F.interpolate(x, size=skip.shape[-2:], mode="nearest")
            x = dec(torch.cat([x, skip], 1))
        return self.head(x), bottleneck


def identity_grid(b, h, w, device, dtype):
    """(B, H, W, 2) grid that samples every pixel at itself (align_corners=False)."""
    theta = torch.eye(2, 3, device=device, dtype=dtype).expand(b, 2, 3)
    return F.affine_grid(theta, (b, 1, h, w), align_corners=False)


def warp(x, grid, padding_mode="border"):
    """W(x, F) = grid_sample(x, F): backward warp, bilinear."""
    return F.grid_sample(x, grid, mode="bilinear", padding_mode=padding_mode, align_corners=False)


def compose_parts(colours, alphas, weights=None, order="softmax"):
    """Compose warped parts into one image (research note §2.3 "composition"), on white.

    colours (B, P, 3, H, W) = W(source, F_k); alphas (B, P, H, W) = W(M_k, F_k) in [0, 1].
    order "softmax" (default; GP-VTON-style fusion): weights = (B, P + 1, H, W) logits over {background, parts};
      a_k = alpha_k exp(l_k) / (exp(l_bg) + sum_j alpha_j exp(l_j)) so a part never shows where it has no pixels.
    order "fixed": torso first, sleeves on top (over-compositing by the warped masks); weights unused.
    order "given": weights (B, P, H, W) are the per-part composition weights themselves (the layout's part masks).
    Returns (image (B, 3, H, W), per-part weights (B, P, H, W), coverage (B, 1, H, W) = sum of part weights).
    """
    if order == "softmax":
        e = torch.exp(weights - weights.amax(1, keepdim=True))  # stable; exact zeros where alpha_k = 0
        num = alphas * e[:, 1:]
        a = num / (e[:, :1] + num.sum(1, keepdim=True))
    elif order == "fixed":
        a, rest = [], torch.ones_like(alphas[:, 0])
        for k in reversed(range(alphas.shape[1])):  # top-most (left sleeve) first
            a.insert(0, alphas[:, k] * rest)
            rest = rest * (1 - alphas[:, k])
        a = torch.stack(a, 1)
    elif order == "given":
        a = weights * alphas
    else:
        raise ValueError(f"order must be softmax, fixed or given, got {order!r}")
    cover = a.sum(1, keepdim=True).clamp(max=1.0)
    image = (a.unsqueeze(2) * colours).sum(1) + (1 - cover) * WHITE
    return image, a, cover


class CompositionalFlow(nn.Module):
    """Per-part flows composed into one image; the canonicalizing flow (on-model -> canonical proxy) and the
    forward warper (in-shop -> person, composed by the layout) are two instances.

    Abstract: "Each clothing part (sleeves, torso) is reversely deformed into an in-shop-like shape to
    compositionally construct the canonical proxy." Our parameterization [assumption, simplified from the note's
    5x5 TPS + 5-level dense flow]: per part a global affine (regressed from the U-Net bottleneck, initialised to
    identity) plus a dense residual flow (zero-initialised U-Net output, tanh-bounded by `max_residual` in
    normalized units): F_k = affine_k(p) + r_k(p).

    forward(source (B, 3, H, W), source_masks (B, P, H, W), cond (B, C, H, W), weights=None) -> dict with
    grids (B, P, H, W, 2), residual (B, P, 2, H, W), colours (B, P, 3, H, W), alphas (B, P, H, W),
    image (B, 3, H, W), part_weights (B, P, H, W), coverage (B, 1, H, W).
    """

    def __init__(self, cond_channels, widths=(32, 64, 96, 128), composition="softmax", max_residual=0.25):
        super().__init__()
        self.composition = composition
        self.max_residual = max_residual
        cin = 3 + NUM_PARTS + cond_channels
        self.net = UNet(cin, NUM_PARTS * 2, widths)
        nn.init.zeros_(self.net.head.weight)
        nn.init.zeros_(self.net.head.bias)
        self.affine = nn.Linear(widths[-1], NUM_PARTS * 6)
        nn.init.zeros_(self.affine.weight)
        with torch.no_grad():
            self.affine.bias.copy_(torch.eye(2, 3).flatten().repeat(NUM_PARTS))
        self.fusion = None
        if composition == "softmax":  # fusion logits from the warped parts, in the target frame
            self.fusion = nn.Sequential(nn.Conv2d(NUM_PARTS * 4, 32, 3, 1, 1), nn.LeakyReLU(0.2, inplace=True),
                                        nn.Conv2d(32, NUM_PARTS + 1, 3, 1, 1))

    def forward(self, source, source_masks, cond, weights=None):
        b, _, h, w = source.shape
        residual, bottleneck = self.net(torch.cat([source, source_masks, cond], 1))
        residual = self.max_residual * torch.tanh(residual.view(b, NUM_PARTS, 2, h, w))
        theta = self.affine(bottleneck.mean((2, 3))).view(b * NUM_PARTS, 2, 3)
        base = F.affine_grid(theta, (b * NUM_PARTS, 1, h, w), align_corners=False).view(b, NUM_PARTS, h, w, 2)
        grids = base + residual.permute(0, 1, 3, 4, 2)
        flat = grids.reshape(b * NUM_PARTS, h, w, 2)
        colours = warp(source.repeat_interleave(NUM_PARTS, 0), flat).view(b, NUM_PARTS, 3, h, w)
        alphas = warp(source_masks.reshape(b * NUM_PARTS, 1, h, w), flat, "zeros").view(b, NUM_PARTS, h, w)
        if weights is None:
            order = self.composition
            if order == "softmax":
                weights = self.fusion(torch.cat([colours.flatten(1, 2), alphas], 1))
        else:
            order = "given"
        image, part_weights, cover = compose_parts(colours, alphas, weights, order)
        return dict(grids=grids, residual=residual, colours=colours, alphas=alphas, image=image,
                    part_weights=part_weights, coverage=cover)


def layered_log_visibility(logits):
    """Layered layout -> log p(visible layer = l) (B, L, H, W) (research note §2.4, "over" compositing).

    logits (B, L, H, W): layer l is present with s_l = sigmoid(z_l); layer 0 (background) always is. Layer l is
    visible where present and every layer above is absent: p_l = s_l prod_{j > l} (1 - s_j); the p_l sum to 1.
    """
    logs = F.logsigmoid(logits)
    log_absent = F.logsigmoid(-logits)
    logs = torch.cat([torch.zeros_like(logs[:, :1]), logs[:, 1:]], 1)
    above = torch.flip(torch.cumsum(torch.flip(log_absent, [1]), 1), [1]) - log_absent  # sum over j > l
    return logs + above


class LayeredMaskGenerator(nn.Module):
    """G_M(S_a, P, X, M_X) -> L layer logits; the flat layout is argmax of `layered_log_visibility` (or the plain
    argmax for layout="flat", the ablation). Abstract: "a layered mask generation module that generates accurate
    semantic layout by training on canonical proxy". U-Net instead of the note's HR-VITON generator [assumption]."""

    def __init__(self, widths=(32, 64, 96, 128), layout="layered"):
        super().__init__()
        self.layout = layout
        self.net = UNet(NUM_LAYERS + NUM_JOINTS + 3 + 1, NUM_LAYERS, widths)
        if layout == "layered":  # start with every layer mostly absent (not all half-present, top layer winning)
            nn.init.constant_(self.net.head.bias, -2.0)

    def forward(self, parse_agnostic, pose, garment, garment_mask):
        logits, _ = self.net(torch.cat([parse_agnostic, pose, garment, garment_mask], 1))
        return logits

    def log_probs(self, logits):
        return layered_log_visibility(logits) if self.layout == "layered" else F.log_softmax(logits, 1)


class SPADE(nn.Module):
    """x -> instance_norm(x) * (1 + gamma(seg)) + beta(seg) (Park et al. 2019), seg resized to x."""

    def __init__(self, channels, seg_channels, hidden=32):
        super().__init__()
        self.norm = nn.InstanceNorm2d(channels, affine=False)
        self.shared = nn.Sequential(nn.Conv2d(seg_channels, hidden, 3, 1, 1), nn.ReLU(inplace=True))
        self.gamma = nn.Conv2d(hidden, channels, 3, 1, 1)
        self.beta = nn.Conv2d(hidden, channels, 3, 1, 1)

    def forward(self, x, seg):
        a = self.shared(F.interpolate(seg, size=x.shape[-2:], mode="nearest"))
        return self.norm(x) * (1 + self.gamma(a)) + self.beta(a)


class Synthesizer(nn.Module):
    """G_S(A, L, P, garment, garment_mask) -> person (B, 3, H, W).

    Abstract: "an unpaired try-on synthesizer by constructing pseudo training pairs with randomly misaligned
    on-model clothes, where intricate skin texture and clothes boundaries can be generated". Backbone [assumption,
    a small stand-in for the note's SPADE/ALIAS GAN]: a U-Net on all inputs whose decoder levels are
    SPADE-modulated by the layout and the garment, output = A + residual (the network repaints, it does not copy).
    """

    def __init__(self, widths=(32, 64, 96, 128)):
        super().__init__()
        cin = 3 + NUM_LAYERS + NUM_JOINTS + 3 + 1
        seg = NUM_LAYERS + 3 + 1
        self.net = UNet(cin, widths[0], widths, head_bias=False)  # a bias would vanish in SPADE's instance norm
        self.spade = SPADE(widths[0], seg)
        self.out = nn.Sequential(nn.LeakyReLU(0.2), nn.Conv2d(widths[0], 3, 3, 1, 1))

    def forward(self, agnostic, layout, pose, garment, garment_mask):
        feat, _ = self.net(torch.cat([agnostic, layout, pose, garment, garment_mask], 1))
        feat = self.spade(feat, torch.cat([layout, garment, garment_mask], 1))
        return agnostic + self.out(feat)


class PatchDiscriminator(nn.Module):
    """PatchGAN (pix2pixHD-style, one scale) for the LSGAN + feature-matching terms; returns its feature list."""

    def __init__(self, cin, width=64, layers=3):
        super().__init__()
        blocks, c = [], cin
        for i in range(layers):
            blocks.append(nn.Sequential(nn.Conv2d(c, width * 2**i, 4, 2, 1), nn.LeakyReLU(0.2, inplace=True)))
            c = width * 2**i
        blocks.append(nn.Conv2d(c, 1, 3, 1, 1))
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x):
        feats = []
        for blk in self.blocks:
            x = blk(x)
            feats.append(x)
        return feats


MODEL_WIDTHS = {"paper": (64, 128, 256, 384, 512), "tiny": (16, 24, 32)}


class BVTON(nn.Module):
    """The three modules plus the layout-guided forward warper, and the end-to-end try-on (research note §2.2).

    canonicalizer: CompositionalFlow(cond = pose) on (C_on, M_k) -> canonical proxy (the abstract's module 1).
    mask_generator: LayeredMaskGenerator (module 2). warper: CompositionalFlow(cond = layout parts + pose) on the
    in-shop (or proxy) garment, composed by the layout's part masks (not among the abstract's 3 modules: the
    note's test-time forward warper, trained in the mask stage). synthesizer: Synthesizer (module 3).
    """

    def __init__(self, model_size="paper", composition="softmax", layout="layered", max_residual=0.25):
        super().__init__()
        widths = MODEL_WIDTHS[model_size]
        self.canonicalizer = CompositionalFlow(NUM_JOINTS, widths, composition, max_residual)
        self.mask_generator = LayeredMaskGenerator(widths, layout)
        self.warper = CompositionalFlow(NUM_PARTS + NUM_JOINTS, widths, "given", max_residual)
        self.synthesizer = Synthesizer(widths)

    def canonicalize(self, c_on, parts, pose):
        """On-model garment (white outside) + its part masks -> canonical proxy dict (`CompositionalFlow`)."""
        return self.canonicalizer(c_on, parts, pose)

    def layout(self, parse_agnostic, pose, garment, garment_mask):
        """-> (logits (B, L, H, W), flat labels (B, H, W), one-hot (B, L, H, W))."""
        logits = self.mask_generator(parse_agnostic, pose, garment, garment_mask)
        labels = self.mask_generator.log_probs(logits).argmax(1)
        return logits, labels, F.one_hot(labels, NUM_LAYERS).permute(0, 3, 1, 2).to(logits.dtype)

    def warp_garment(self, garment, garment_mask, layout_onehot, pose):
        """In-shop (or proxy) garment -> person frame, each part composed where the layout puts that part."""
        parts = layout_onehot[:, 2:2 + NUM_PARTS]
        return self.warper(garment, garment_mask.expand(-1, NUM_PARTS, -1, -1), torch.cat([parts, pose], 1),
                           weights=parts)

    @torch.no_grad()
    def tryon(self, cloth, cloth_mask, agnostic, parse_agnostic, pose):
        """End to end: layout from the in-shop garment, forward warp, synthesis -> dict(result, labels, warped)."""
        _, labels, onehot = self.layout(parse_agnostic, pose, cloth, cloth_mask)
        w = self.warp_garment(cloth, cloth_mask, onehot, pose)
        result = self.synthesizer(agnostic, onehot, pose, w["image"], w["coverage"])
        return dict(result=result, labels=labels, warped=w["image"])

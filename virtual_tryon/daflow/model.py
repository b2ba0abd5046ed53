"""DAFlow / SDAFN (Bai et al., ECCV 2022, arXiv 2207.09161) as OFA-Sys/DAFlow ``models/sdafnet.py`` computes it.

Inputs: garment c (B, 3, H, W), agnostic person a (B, 3, H, W), rendered COCO-18 skeleton p (B, 3, H, W), all in
[-1, 1]. The garment encoder sees c, the person encoder cat(p, a). Both are 5-stage encoders + an FPN; per
pyramid level (coarse to fine) three multi-flow estimators (MFE) predict K offset fields and K attention logits:
cross (garment flows), self (person flows), refine (both, with a joint softmax over all 2K maps). Flows are
composed across levels, Phi_new(p) = Phi_prev(p + delta(p)); features and pixels are warped with the
deformable attention flow DAWarp(F, Phi, A) = sum_k A_k Bilinear(F, Phi_k) (Eq. (2)-(3), `common.ops.flow_warp`).
The output is a light decoder applied to the sum of the warped garment and warped person pixel features; no
tanh. Module names are the official ones, so ``ckpt_viton.pt`` loads as it is (checkpoint.py).
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from common.ops.flow_warp import compose_grid, flow_warp


class ResBlock(nn.Module):
    """Pre-activation residual block: x + Conv(ReLU(BN(Conv(ReLU(BN(x)))))), 3x3, no bias."""

    def __init__(self, channels):
        super().__init__()
        self.block = nn.Sequential(
            nn.BatchNorm2d(channels), nn.ReLU(inplace=False), nn.Conv2d(channels, channels, 3, 1, 1, bias=False),
            nn.BatchNorm2d(channels), nn.ReLU(inplace=False), nn.Conv2d(channels, channels, 3, 1, 1, bias=False))

    def forward(self, x):
        return x + self.block(x)


class DownSample(nn.Module):
    """BN-ReLU-Conv3x3 stride 2 (no bias): halves H and W."""

    def __init__(self, in_channels, out_channels):
        super().__init__()
        self.block = nn.Sequential(nn.BatchNorm2d(in_channels), nn.ReLU(inplace=False),
                                   nn.Conv2d(in_channels, out_channels, 3, 2, 1, bias=False))

    def forward(self, x):
        return self.block(x)


class FeatureEncoder(nn.Module):
    """5 stages of DownSample + 2 ResBlocks -> features at 1/2 ... 1/32 of the input (fine to coarse)."""

    def __init__(self, in_channels, channels=(64, 128, 256, 256, 256)):
        super().__init__()
        self.encoders = nn.ModuleList()
        for c in channels:
            self.encoders.append(nn.Sequential(DownSample(in_channels, c), ResBlock(c), ResBlock(c)))
            in_channels = c

    def forward(self, x):
        feats = []
        for enc in self.encoders:
            x = enc(x)
            feats.append(x)
        return feats


class RefinePyramid(nn.Module):
    """FPN: 1x1 lateral convs, top-down nearest x2 + add, a 3x3 smoothing conv per level (fine to coarse out)."""

    def __init__(self, channels=(64, 128, 256, 256, 256), fpn_dim=256):
        super().__init__()
        self.adaptive = nn.ModuleList(nn.Conv2d(c, fpn_dim, 1) for c in reversed(channels))
        self.smooth = nn.ModuleList(nn.Conv2d(fpn_dim, fpn_dim, 3, padding=1) for _ in channels)

    def forward(self, feats):
        out, last = [], None
        for i, x in enumerate(reversed(feats)):  # coarse to fine
            f = self.adaptive[i](x)
            if last is not None:
                f = f + F.interpolate(last, scale_factor=2, mode="nearest")
            f = self.smooth[i](f)
            last = f
            out.append(f)
        return out[::-1]


class MFEBlock(nn.Module):
    """Multi-flow estimator: Conv3x3(in->h0)-LReLU(0.1)-Conv k(h0->h1)-LReLU-Conv k(h1->h2)-LReLU-Conv k(h2->out)."""

    def __init__(self, in_channels, out_channels, kernel_size, hidden=(128, 64, 32)):
        p = kernel_size // 2
        h0, h1, h2 = hidden
        super().__init__()
        self.layers = nn.Sequential(nn.Conv2d(in_channels, h0, 3, 1, 1), nn.LeakyReLU(0.1),
                                    nn.Conv2d(h0, h1, kernel_size, 1, p), nn.LeakyReLU(0.1),
                                    nn.Conv2d(h1, h2, kernel_size, 1, p), nn.LeakyReLU(0.1),
                                    nn.Conv2d(h2, out_channels, kernel_size, 1, p))

    def forward(self, x):
        return self.layers(x)


class DAFlowNet(nn.Module):
    """The coarse-to-fine deformable-attention-flow estimator with the pixel-level light encoder/decoder."""

    def __init__(self, num_levels=5, fpn_dim=256, num_flows=6, mfe_hidden=(128, 64, 32), warp_backend="reference"):
        super().__init__()
        k = num_flows
        self.num_flows, self.warp_backend = k, warp_backend
        # Module names are the official ones, so the state_dict keys equal ckpt_viton.pt's (checkpoint.py).
        self.Cross_MFEs = nn.ModuleList(MFEBlock(2 * fpn_dim, 3 * k, 3, mfe_hidden) for _ in range(num_levels))
        self.Self_MFEs = nn.ModuleList(MFEBlock(2 * fpn_dim, 3 * k, 7, mfe_hidden) for _ in range(num_levels))
        self.Refine_MFEs = nn.ModuleList(MFEBlock(2 * fpn_dim, 6 * k, 3, mfe_hidden) for _ in range(num_levels))
        # Light pixel encoder E: Conv3x3(3->32)-LReLU-Conv1x1(32->64); decoder D: Conv1x1(64->32)-LReLU-Conv3x3(32->3).
        self.lights_encoder = nn.Sequential(nn.Conv2d(3, 32, 3, 1, 1), nn.LeakyReLU(0.1), nn.Conv2d(32, 64, 1))
        self.lights_decoder = nn.Sequential(nn.Conv2d(64, 32, 1), nn.LeakyReLU(0.1), nn.Conv2d(32, 3, 3, 1, 1))

    def warp(self, feat, grid, attn):
        return flow_warp(feat, grid, attn, backend=self.warp_backend)

    def _split(self, out, b, h, w):
        """MFE output (B, 3K, H, W) -> offsets (B*K, 2, H, W) (flow k of sample b at row b*K+k), logits (B, K, H, W)."""
        k = self.num_flows
        return out[:, : 2 * k].reshape(b * k, 2, h, w), out[:, 2 * k:]

    def forward(self, cloth, agnostic, garment_pyramid, person_pyramid, return_all=True):
        """Pyramids fine to coarse, (B, fpn_dim, H_l, W_l). Returns the list of pixel outputs, coarse to fine."""
        k = self.num_flows
        phi_c = phi_s = a_c = a_s = None
        outputs = []
        levels = len(garment_pyramid)
        for i in range(levels):  # coarse (i = 0) to fine
            s_feat, r_feat = garment_pyramid[levels - 1 - i], person_pyramid[levels - 1 - i]
            b, _, h, w = s_feat.shape
            if i == 0:
                s_hat, r_hat = s_feat, r_feat
            else:  # pre-warp with the previous level's flows; stop-gradient on the grids only
                s_hat = self.warp(s_feat, phi_c.detach(), a_c)
                r_hat = self.warp(r_feat, phi_s.detach(), a_s)
            # Cross (garment) flows.
            delta, logits = self._split(self.Cross_MFEs[i](torch.cat([s_hat, r_feat], 1)), b, h, w)
            a_c = logits.softmax(1)
            phi_c = compose_grid(phi_c, delta)
            s_tilde = self.warp(s_feat, phi_c, a_c)
            # Self (person) flows.
            delta, logits = self._split(self.Self_MFEs[i](torch.cat([s_tilde, r_hat], 1)), b, h, w)
            a_s = logits.softmax(1)
            phi_s = compose_grid(phi_s, delta)
            r_tilde = self.warp(r_feat, phi_s, a_s)
            # Refinement: both flows, joint softmax over all 2K maps (first K person, last K garment).
            out = self.Refine_MFEs[i](torch.cat([s_tilde, r_tilde], 1))
            phi_c = compose_grid(phi_c, out[:, : 2 * k].reshape(b * k, 2, h, w))
            phi_s = compose_grid(phi_s, out[:, 2 * k: 4 * k].reshape(b * k, 2, h, w))
            attn = out[:, 4 * k:].softmax(1)
            a_s, a_c = attn[:, :k], attn[:, k:]
            # To the next (finer) resolution; grids are normalized, so no rescaling of their values.
            up = lambda t: F.interpolate(t, scale_factor=2, mode="bilinear")  # noqa: E731
            phi_c, phi_s, a_s, a_c = up(phi_c), up(phi_s), up(a_s), up(a_c)
            if return_all or i == levels - 1:
                size = a_c.shape[2:]
                c_down = F.interpolate(cloth, size=size, mode="bilinear")
                a_down = F.interpolate(agnostic, size=size, mode="bilinear")
                feat = (self.warp(self.lights_encoder(c_down), phi_c, a_c)
                        + self.warp(self.lights_encoder(a_down), phi_s, a_s))
                outputs.append(self.lights_decoder(feat))
        return outputs


class SDAFNet(nn.Module):
    """SDAFN try-on network (official ``SDAFNet_Tryon``): two encoders + FPNs and `DAFlowNet`.

    forward(cloth, agnostic, pose) -> list of try-on images, coarse (1/16) to full resolution, in [-1, 1] scale
    (H and W must be divisible by 2^len(channels))
    (no tanh, as the official code). `named constructors`: `SDAFNet.paper()` (the released configuration) and
    `SDAFNet.tiny()` (narrow, for CPU smoke runs).
    """

    def __init__(self, channels=(64, 128, 256, 256, 256), fpn_dim=256, num_flows=6, mfe_hidden=(128, 64, 32),
                 warp_backend="reference"):
        super().__init__()
        # Official names: source = garment branch, reference = person (pose + agnostic) branch.
        self.source_features = FeatureEncoder(3, channels)
        self.reference_features = FeatureEncoder(6, channels)
        self.source_FPN = RefinePyramid(channels, fpn_dim)
        self.reference_FPN = RefinePyramid(channels, fpn_dim)
        self.dafnet = DAFlowNet(len(channels), fpn_dim, num_flows, mfe_hidden, warp_backend)

    @classmethod
    def paper(cls, warp_backend="reference"):
        return cls(warp_backend=warp_backend)

    @classmethod
    def tiny(cls, warp_backend="reference"):
        # 4 levels (coarsest 1/16) so that 64x48 smoke images work; the paper's 5 levels need H, W divisible by 32.
        return cls(channels=(16, 32, 32, 32), fpn_dim=32, num_flows=3, mfe_hidden=(32, 16, 16),
                   warp_backend=warp_backend)

    def set_warp_backend(self, backend):
        self.dafnet.warp_backend = backend

    def forward(self, cloth, agnostic, pose, return_all=True):
        garment = self.source_FPN(self.source_features(cloth))
        person = self.reference_FPN(self.reference_features(torch.cat([pose, agnostic], 1)))
        return self.dafnet(cloth, agnostic, garment, person, return_all=return_all)

"""Try-on image metrics: SSIM (two protocols), LPIPS, FID and KID.

SSIM (Wang et al. 2004): SSIM(x, y) = (2 mu_x mu_y + C1)(2 s_xy + C2) / ((mu_x^2 + mu_y^2 + C1)(s_x^2 + s_y^2 + C2)),
local statistics under a Gaussian window, C1 = (0.01 L)^2, C2 = (0.03 L)^2. Two protocols move the numbers:
* ``protocol="daflow"``: Po-Hsun-Su pytorch-ssim as DAFlow's ``utils/test_ssim.py`` runs it: colour images in
  [0, 1] (channel order irrelevant: channels are averaged), 11x11 window, sigma 1.5, zero padding of 5 (the
  map keeps the image size), mean over channels and pixels per image, then over images.
* ``protocol="grayscale"``: HR-VITON's ``evaluate.py`` (skimage ``structural_similarity(gaussian_weights=True,
  use_sample_covariance=False, data_range=255)``) on luma L = 0.299 R + 0.587 G + 0.114 B (PIL ``convert("L")``):
  Gaussian sigma 1.5 truncated at 3.5 sigma (11 taps), 'reflect' borders, mean over the map after cropping
  5 pixels on each side.

LPIPS (Zhang et al. 2018): d(x, y) = sum_l 1/(H_l W_l) sum_hw || w_l o (f_l(x) - f_l(y)) ||^2 with f_l the
channel-unit-normalized VGG16 features (relu1_2, relu2_2, relu3_3, relu4_3, relu5_3) of inputs in [-1, 1]
after the fixed shift/scale. FID: ||mu_r - mu_g||^2 + Tr(S_r + S_g - 2 (S_r S_g)^(1/2)). KID: unbiased MMD^2
with k(x, y) = (x.y / d + 1)^3, averaged over random subsets (reported raw, not x100 / x1000).
Pretrained weights cannot be fetched here: `LPIPS` and `load_inception` read local files and raise a
DataError naming the expected file.
"""
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import DataError

__all__ = ["ssim", "gaussian_window", "LPIPS", "frechet_distance", "fid_from_features", "kid_from_features",
           "load_inception", "inception_features"]


def gaussian_window(size=11, sigma=1.5, dtype=torch.float64):
    """1-D normalized Gaussian of `size` taps."""
    x = torch.arange(size, dtype=dtype) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def _filter(x, g, padding_mode):
    """Separable depthwise Gaussian filter of x (N, C, H, W)."""
    c, k = x.shape[1], g.numel()
    r = k // 2
    if padding_mode == "zeros":
        x = F.pad(x, (r,) * 4)
    else:  # "symmetric": scipy.ndimage's 'reflect' (d c b a | a b c d | d c b a), the edge sample repeated
        x = torch.cat([x[..., :r, :].flip(-2), x, x[..., -r:, :].flip(-2)], dim=-2)
        x = torch.cat([x[..., :r].flip(-1), x, x[..., -r:].flip(-1)], dim=-1)
    x = F.conv2d(x, g.view(1, 1, 1, k).expand(c, 1, 1, k), groups=c)
    return F.conv2d(x, g.view(1, 1, k, 1).expand(c, 1, k, 1), groups=c)


def ssim(x, y, protocol="daflow", data_range=1.0, reduction="mean"):
    """SSIM of image batches x, y (N, 3, H, W) with values in [0, data_range].

    protocol: "daflow" (colour, zero padding, pytorch-ssim) or "grayscale" (luma, skimage/HR-VITON).
    reduction: "mean" -> scalar over images; "none" -> (N,) per-image values.
    """
    if x.shape != y.shape or x.dim() != 4:
        raise ValueError(f"x and y must be equal (N, C, H, W) batches, got {tuple(x.shape)} and {tuple(y.shape)}")
    x, y = x.double() / data_range, y.double() / data_range
    g = gaussian_window(11, 1.5).to(x.device)
    if protocol == "grayscale":
        if x.shape[1] == 3:
            luma = torch.tensor([0.299, 0.587, 0.114], dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
            x, y = (x * luma).sum(1, keepdim=True), (y * luma).sum(1, keepdim=True)
        filt = lambda t: _filter(t, g, "symmetric")  # noqa: E731
    elif protocol == "daflow":
        filt = lambda t: _filter(t, g, "zeros")  # noqa: E731
    else:
        raise ValueError(f"protocol must be 'daflow' or 'grayscale', got {protocol!r}")
    c1, c2 = 0.01**2, 0.03**2
    mu_x, mu_y = filt(x), filt(y)
    sxx = filt(x * x) - mu_x**2
    syy = filt(y * y) - mu_y**2
    sxy = filt(x * y) - mu_x * mu_y
    smap = ((2 * mu_x * mu_y + c1) * (2 * sxy + c2)) / ((mu_x**2 + mu_y**2 + c1) * (sxx + syy + c2))
    if protocol == "grayscale":
        smap = smap[..., 5:-5, 5:-5]
    per_image = smap.flatten(1).mean(1)
    return per_image.mean() if reduction == "mean" else per_image


class LPIPS(nn.Module):
    """LPIPS-VGG ("net-lin", v0.1): VGG16 features, unit-normalized per position, 1x1 linear weights, spatial mean.

    Args:
        backbone_weights: torchvision VGG16 state_dict file (``vgg16-397923af.pth``); keys ``features.*``.
        linear_weights: the LPIPS v0.1 linear layers (``vgg.pth`` of the lpips package, keys ``lin{l}.model.1.weight``).
        pretrained: False builds random weights (for tests; numbers then mean nothing).
    forward(x, y): images (N, 3, H, W) in [-1, 1] -> (N,) distances.
    """

    CHANNELS = (64, 128, 256, 512, 512)
    TAPS = (3, 8, 15, 22, 29)  # indices of relu1_2, relu2_2, relu3_3, relu4_3, relu5_3 in vgg16.features

    def __init__(self, backbone_weights=None, linear_weights=None, pretrained=True):
        super().__init__()
        from torchvision.models import vgg16

        self.features = vgg16(weights=None).features[: self.TAPS[-1] + 1]
        self.lins = nn.ModuleList(nn.Conv2d(c, 1, 1, bias=False) for c in self.CHANNELS)
        self.register_buffer("shift", torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1))
        if pretrained:
            self._load(backbone_weights, linear_weights)
        else:
            for lin in self.lins:
                nn.init.uniform_(lin.weight, 0.0, 1.0)  # LPIPS weights are non-negative
        self.requires_grad_(False)
        self.eval()

    def _load(self, backbone_weights, linear_weights):
        for path, name in ((backbone_weights, "vgg16-397923af.pth (torchvision VGG16 ImageNet weights)"),
                           (linear_weights, "vgg.pth (LPIPS v0.1 linear weights, shipped in the lpips package)")):
            if not path or not Path(path).is_file():
                raise DataError(path or "<not given>", f"expected the weights file {name}",
                                hint="pass its local path; nothing is downloaded")
        state = torch.load(backbone_weights, map_location="cpu", weights_only=True)
        self.features.load_state_dict({k[len("features."):]: v for k, v in state.items()
                                       if k.startswith("features.") and int(k.split(".")[1]) <= self.TAPS[-1]})
        lin = torch.load(linear_weights, map_location="cpu", weights_only=True)
        for i, layer in enumerate(self.lins):
            layer.weight.data.copy_(lin[f"lin{i}.model.1.weight"])

    def layer_features(self, x):
        """Unit-normalized features at the five taps for x in [-1, 1]: list of (N, C_l, H_l, W_l)."""
        x = (x - self.shift) / self.scale
        out = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self.TAPS:
                out.append(x / (x.pow(2).sum(1, keepdim=True).sqrt() + 1e-10))
        return out

    def forward(self, x, y):
        d = 0
        for lin, fx, fy in zip(self.lins, self.layer_features(x), self.layer_features(y), strict=True):
            d = d + lin((fx - fy) ** 2).mean(dim=(1, 2, 3))
        return d


def _sqrtm_psd(a):
    """Symmetric PSD square root by eigendecomposition (float64)."""
    w, v = np.linalg.eigh((a + a.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def frechet_distance(mu1, sigma1, mu2, sigma2):
    """||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2)) in float64.

    Tr((S1 S2)^(1/2)) = Tr((S1^(1/2) S2 S1^(1/2))^(1/2)): the inner matrix is symmetric PSD, so its square
    root is an eigendecomposition (no complex parts to discard, unlike scipy.linalg.sqrtm on S1 S2).
    """
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    s1, s2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    r1 = _sqrtm_psd(s1)
    inner = r1 @ s2 @ r1
    tr_covmean = np.sqrt(np.clip(np.linalg.eigvalsh((inner + inner.T) / 2), 0, None)).sum()
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * tr_covmean)


def fid_from_features(real, fake):
    """FID between two feature sets (N, D) (numpy or tensors): means and unbiased covariances (np.cov)."""
    real, fake = np.asarray(real, np.float64), np.asarray(fake, np.float64)
    return frechet_distance(real.mean(0), np.cov(real, rowvar=False), fake.mean(0), np.cov(fake, rowvar=False))


def kid_from_features(real, fake, num_subsets=100, subset_size=1000, seed=0):
    """KID = mean over subsets of the unbiased MMD^2 with k(x, y) = (x.y / d + 1)^3 -> (mean, std).

    subset_size is capped at the smaller set size (torch-fidelity / clean-fid: 100 subsets of 1000).
    """
    real, fake = np.asarray(real, np.float64), np.asarray(fake, np.float64)
    d = real.shape[1]
    m = min(subset_size, len(real), len(fake))
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(num_subsets):
        x = real[rng.choice(len(real), m, replace=False)]
        y = fake[rng.choice(len(fake), m, replace=False)]
        kxx, kyy, kxy = (x @ x.T / d + 1) ** 3, (y @ y.T / d + 1) ** 3, (x @ y.T / d + 1) ** 3
        mmd = ((kxx.sum() - np.trace(kxx)) + (kyy.sum() - np.trace(kyy))) / (m * (m - 1)) - 2 * kxy.mean()
        values.append(mmd)
    return float(np.mean(values)), float(np.std(values))


def load_inception(path):
    """The FID Inception-v3 as clean-fid ships it: TorchScript ``inception-2015-12-05.pt`` (2048-d pool3)."""
    if not path or not Path(path).is_file():
        raise DataError(path or "<not given>", "expected the TorchScript FID Inception inception-2015-12-05.pt "
                        "(clean-fid's TF-Inception port)", hint="place the file locally and pass its path")
    return torch.jit.load(str(path), map_location="cpu").eval()


@torch.no_grad()
def inception_features(model, images):
    """Pool3 features (N, 2048) of images (N, 3, H, W) in [-1, 1] with the clean-fid TorchScript Inception.

    The model takes values in [0, 255] and resizes to 299x299 itself; `model` may be any callable with
    the same signature ``model(x, return_features=True)`` (tests pass a small random network).
    """
    x = (images.clamp(-1, 1) + 1) * 127.5
    return model(x, return_features=True).flatten(1)

"""Tests of common/metrics/tryon.py: SSIM against scipy.ndimage re-computations of both protocols, LPIPS
arithmetic with random weights, FID against scipy.linalg.sqrtm, KID against a direct loop, weight-file errors."""
import numpy as np
import pytest
import scipy.linalg
import torch
from scipy import ndimage

from common.errors import DataError
from common.metrics.tryon import (
    LPIPS,
    fid_from_features,
    frechet_distance,
    gaussian_window,
    inception_features,
    kid_from_features,
    load_inception,
    ssim,
)


def images(n=2, h=24, w=20, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, h, w, generator=g, dtype=torch.float64)
    y = (x + 0.2 * torch.randn(n, 3, h, w, generator=g, dtype=torch.float64)).clamp(0, 1)
    return x, y


def ssim_map(x, y, filt, c1=0.01**2, c2=0.03**2):
    mx, my = filt(x), filt(y)
    vx, vy, cxy = filt(x * x) - mx**2, filt(y * y) - my**2, filt(x * y) - mx * my
    return ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))


def test_gaussian_window():
    g = gaussian_window(11, 1.5)
    assert g.sum().item() == pytest.approx(1.0) and g.argmax() == 5 and torch.allclose(g, g.flip(0))


def test_ssim_daflow_protocol_matches_zero_padded_gaussian_filter():
    x, y = images()
    g = gaussian_window(11, 1.5).numpy()
    win = np.outer(g, g)
    filt = lambda a: ndimage.correlate(a, win, mode="constant", cval=0.0)  # noqa: E731
    expected = [np.mean([ssim_map(x[i, c].numpy(), y[i, c].numpy(), filt).mean() for c in range(3)])
                for i in range(2)]
    got = ssim(x, y, protocol="daflow", reduction="none")
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-10)
    assert ssim(x, y).item() == pytest.approx(np.mean(expected))
    assert ssim(x, x).item() == pytest.approx(1.0)
    # data_range: the same images in [0, 255] give the same value.
    assert ssim(x * 255, y * 255, data_range=255).item() == pytest.approx(np.mean(expected))


def test_ssim_grayscale_protocol_matches_skimage_recipe():
    """skimage structural_similarity(gaussian_weights=True, sigma=1.5, use_sample_covariance=False) = ndimage
    gaussian_filter(truncate=3.5, mode='reflect') statistics, map cropped by 5 pixels."""
    x, y = images(seed=1)
    luma = torch.tensor([0.299, 0.587, 0.114], dtype=torch.float64).view(1, 3, 1, 1)
    gx, gy = (x * luma).sum(1), (y * luma).sum(1)
    filt = lambda a: ndimage.gaussian_filter(a, sigma=1.5, truncate=3.5, mode="reflect")  # noqa: E731
    expected = [ssim_map(gx[i].numpy(), gy[i].numpy(), filt)[5:-5, 5:-5].mean() for i in range(2)]
    got = ssim(x, y, protocol="grayscale", reduction="none")
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-10)
    assert abs(ssim(x, y, protocol="grayscale").item() - ssim(x, y).item()) > 1e-3  # the protocols differ
    with pytest.raises(ValueError):
        ssim(x, y, protocol="msssim")


def test_lpips_arithmetic_with_random_weights():
    torch.manual_seed(0)
    net = LPIPS(pretrained=False)
    x, y = (torch.rand(2, 3, 32, 32) * 2 - 1 for _ in range(2))
    d = net(x, y)
    assert d.shape == (2,) and (d > 0).all()
    assert torch.allclose(net(x, x), torch.zeros(2))
    # By hand: unit-normalize each tap's raw activations, weight the squared difference per channel, average.
    def taps(img):
        h = (img - net.shift) / net.scale
        out = []
        for i, layer in enumerate(net.features):
            h = layer(h)
            if i in LPIPS.TAPS:
                out.append(h)
        return out
    expected = torch.zeros(2)
    for lin, fx, fy in zip(net.lins, taps(x), taps(y), strict=True):
        nx = fx / (fx.norm(dim=1, keepdim=True) + 1e-10)
        ny = fy / (fy.norm(dim=1, keepdim=True) + 1e-10)
        w = lin.weight.view(1, -1, 1, 1)
        expected += ((nx - ny) ** 2 * w).sum(1).mean(dim=(1, 2))
    assert torch.allclose(d, expected, rtol=1e-4)


def test_lpips_and_inception_weight_errors_name_the_file(tmp_path):
    with pytest.raises(DataError, match="vgg16-397923af.pth"):
        LPIPS()
    with pytest.raises(DataError, match="vgg.pth"):
        torch.save({}, tmp_path / "vgg16.pth")
        LPIPS(tmp_path / "vgg16.pth", tmp_path / "missing.pth")
    with pytest.raises(DataError, match="inception-2015-12-05.pt"):
        load_inception(tmp_path / "nothing.pt")


def test_lpips_loads_local_files(tmp_path):
    torch.manual_seed(1)
    src = LPIPS(pretrained=False)
    torch.save({f"features.{k}": v for k, v in src.features.state_dict().items()}, tmp_path / "vgg16.pth")
    torch.save({f"lin{i}.model.1.weight": lin.weight for i, lin in enumerate(src.lins)}, tmp_path / "vgg.pth")
    net = LPIPS(tmp_path / "vgg16.pth", tmp_path / "vgg.pth")
    x, y = torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32)
    assert torch.allclose(net(x, y), src(x, y))


def test_frechet_distance_matches_scipy_sqrtm():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(200, 16)), rng.normal(size=(150, 16)) @ rng.normal(size=(16, 16)) * 0.3 + 0.5
    mu1, mu2, s1, s2 = a.mean(0), b.mean(0), np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    expected = ((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-8)
    assert fid_from_features(a, b) == pytest.approx(expected, rel=1e-8)
    assert fid_from_features(a, a) == pytest.approx(0.0, abs=1e-8)


def test_kid_matches_a_direct_unbiased_mmd():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(30, 8)), rng.normal(size=(25, 8)) + 0.3
    mean, std = kid_from_features(x, y, num_subsets=1, subset_size=1000)  # one subset = all 25 of each
    sub = np.random.default_rng(0)
    xs, ys = x[sub.choice(30, 25, replace=False)], y[sub.choice(25, 25, replace=False)]
    k = lambda a, b: (a @ b / 8 + 1) ** 3  # noqa: E731
    m = 25
    kxx = sum(k(xs[i], xs[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    kyy = sum(k(ys[i], ys[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    kxy = sum(k(xs[i], ys[j]) for i in range(m) for j in range(m)) / (m * m)
    assert mean == pytest.approx(kxx + kyy - 2 * kxy, rel=1e-10) and std == 0.0
    assert kid_from_features(x, y, num_subsets=10, subset_size=20)[0] > kid_from_features(x, x, num_subsets=10,
                                                                                         subset_size=20)[0]


def test_inception_features_feeds_0_255_to_the_extractor():
    seen = {}

    def fake(x, return_features=False):
        seen["range"] = (x.min().item(), x.max().item())
        return x.mean(dim=(2, 3))

    feats = inception_features(fake, torch.tensor([-1.0, 1.0]).view(1, 1, 1, 2).expand(2, 3, 4, 2))
    assert feats.shape == (2, 3) and seen["range"] == (0.0, 255.0)

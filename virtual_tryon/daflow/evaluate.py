"""Paired / unpaired evaluation of a try-on model: SSIM (+ LPIPS, FID, KID when their weights are given), images."""
import cv2
import numpy as np
import torch
import torch.nn.functional as F

from common.metrics.tryon import LPIPS, fid_from_features, gaussian_window, inception_features, kid_from_features, ssim
from common.runtime import autocast


def to_uint8(x):
    """(B, 3, H, W) in [-1, 1] -> uint8 (B, H, W, 3), as save_image(normalize=True, range=(-1, 1)) writes it."""
    return ((x.clamp(-1, 1) + 1) * 127.5 + 0.5).clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


@torch.no_grad()
def run_tryon(model, loader, device, amp=False, out_dir=None, max_grid=8):
    """Try every pair of `loader` -> dict(results, persons, cloths, names) of uint8 arrays; writes
    `<out_dir>/tryon/<person>__<cloth>.png` and `<out_dir>/grid.png` (person | garment | result | ground truth)
    when out_dir is given."""
    model.eval()
    results, persons, cloths, names = [], [], [], []
    for batch in loader:
        cloth, agnostic, pose = (batch[k].to(device) for k in ("cloth", "agnostic", "pose"))
        with autocast(device, amp):
            out = model(cloth, agnostic, pose, return_all=False)[-1]
        results.append(to_uint8(out.float()))
        persons.append(to_uint8(batch["person"]))
        cloths.append(to_uint8(batch["cloth"]))
        names += [f"{p.rsplit('.', 1)[0]}__{c.rsplit('.', 1)[0]}" for p, c in zip(batch["person_name"],
                                                                                 batch["cloth_name"], strict=True)]
    res = dict(results=np.concatenate(results), persons=np.concatenate(persons), cloths=np.concatenate(cloths),
               names=names)
    if out_dir is not None:
        (out_dir / "tryon").mkdir(parents=True, exist_ok=True)
        for img, name in zip(res["results"], names, strict=True):
            cv2.imwrite(str(out_dir / "tryon" / f"{name}.png"), img[..., ::-1])
        rows = [np.concatenate([res["persons"][i], res["cloths"][i], res["results"][i], res["persons"][i]], 1)
                for i in range(min(max_grid, len(names)))]
        cv2.imwrite(str(out_dir / "grid.png"), np.concatenate(rows, 0)[..., ::-1])
    return res


def _float(images):
    return torch.from_numpy(images).permute(0, 3, 1, 2).double() / 255.0


def paired_metrics(results, targets, lpips=None, batch_size=16):
    """SSIM (DAFlow protocol and grayscale), L1 (in [0, 1] units) and, with a LPIPS module, LPIPS."""
    x, y = _float(results), _float(targets)
    metrics = {"ssim": float(ssim(x, y, protocol="daflow")), "ssim_gray": float(ssim(x, y, protocol="grayscale")),
               "l1": float((x - y).abs().mean())}
    if lpips is not None:
        d = [lpips(x[i:i + batch_size].float() * 2 - 1, y[i:i + batch_size].float() * 2 - 1)
             for i in range(0, len(x), batch_size)]
        metrics["lpips"] = float(torch.cat(d).mean())
    return metrics


def region_ssim(results, targets, masks):
    """SSIM averaged over the pixels of a region (e.g. the garment) instead of the whole image.

    results, targets: uint8 (N, H, W, 3); masks: bool (N, H, W). The SSIM map is DAFlow's protocol (pytorch-ssim:
    colour, 11x11 Gaussian sigma 1.5, zero padding, C1 = 0.01^2, C2 = 0.03^2, as `common.metrics.tryon.ssim`),
    averaged over channels, then over the region's pixels of each image, then over images."""
    x, y = _float(results), _float(targets)
    g = gaussian_window(11, 1.5)
    k, c = g.numel(), x.shape[1]

    def filt(t):
        t = F.conv2d(t, g.view(1, 1, 1, k).expand(c, 1, 1, k), padding=(0, k // 2), groups=c)
        return F.conv2d(t, g.view(1, 1, k, 1).expand(c, 1, k, 1), padding=(k // 2, 0), groups=c)

    mu_x, mu_y = filt(x), filt(y)
    sxx, syy, sxy = filt(x * x) - mu_x ** 2, filt(y * y) - mu_y ** 2, filt(x * y) - mu_x * mu_y
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    smap = ((2 * mu_x * mu_y + c1) * (2 * sxy + c2)) / ((mu_x ** 2 + mu_y ** 2 + c1) * (sxx + syy + c2))
    m = torch.as_tensor(np.asarray(masks), dtype=torch.float64)
    if (m.flatten(1).sum(1) == 0).any():
        raise ValueError("every image needs a non-empty region")
    return float(((smap.mean(1) * m).flatten(1).sum(1) / m.flatten(1).sum(1)).mean())


def distribution_metrics(inception, results, reals, batch_size=16, kid_subset_size=1000):
    """FID and KID (raw, not scaled) between generated and real images with a FID Inception."""
    def feats(images):
        x = _float(images).float() * 2 - 1
        return torch.cat([inception_features(inception, x[i:i + batch_size]) for i in range(0, len(x), batch_size)])

    fr, ff = feats(reals).double().numpy(), feats(results).double().numpy()
    kid, _ = kid_from_features(fr, ff, subset_size=kid_subset_size)
    return {"fid": fid_from_features(fr, ff), "kid": kid}


def build_lpips(path_backbone, path_linear):
    return LPIPS(path_backbone, path_linear) if path_backbone or path_linear else None

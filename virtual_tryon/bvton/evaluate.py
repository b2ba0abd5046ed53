"""End-to-end try-on of a pairs list, its images and grid, and the metrics (DAFlow's keys, plus BVTON's controls)."""
import cv2
import numpy as np
import torch

from common.metrics.tryon import LPIPS, fid_from_features, inception_features, kid_from_features, ssim
from common.runtime import autocast

from .parts import LAYER_COLOURS


def to_uint8(x):
    """(B, 3, H, W) in [-1, 1] -> uint8 (B, H, W, 3)."""
    return ((x.float().clamp(-1, 1) + 1) * 127.5 + 0.5).clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


@torch.no_grad()
def run_bvton(model, loader, device, amp=False, out_dir=None, max_grid=8):
    """Try on every pair of `loader` (a `PseudoPairDataset` loader) -> dict of uint8 arrays (results, persons,
    cloths, cloth_masks, agnostics, proxies, c_ons, layouts) and names. Writes `<out_dir>/tryon/<name>.png` and
    `<out_dir>/grid.png` (person | garment | canonical proxy | layout | result) when out_dir is given. The proxy is
    the canonicalizing flow run on the person's own on-model garment."""
    model.eval()
    keys = ("results", "persons", "cloths", "agnostics", "proxies", "c_ons", "layouts", "cloth_masks")
    acc, names = {k: [] for k in keys}, []
    for batch in loader:
        b = {k: v.to(device) for k, v in batch.items() if torch.is_tensor(v)}
        with autocast(device, amp):
            out = model.tryon(b["cloth"], b["cloth_mask"], b["agnostic"], b["parse_agnostic"], b["pose"])
            proxy = model.canonicalize(b["c_on"], b["parts"], b["pose"])["image"]
        acc["results"].append(to_uint8(out["result"]))
        acc["persons"].append(to_uint8(b["person"]))
        acc["cloths"].append(to_uint8(b["cloth"]))
        acc["agnostics"].append(to_uint8(b["agnostic"]))
        acc["proxies"].append(to_uint8(proxy))
        acc["c_ons"].append(to_uint8(b["c_on"]))
        acc["layouts"].append(LAYER_COLOURS[out["labels"].cpu().numpy()])
        acc["cloth_masks"].append(b["cloth_mask"][:, 0].cpu().numpy() > 0.5)
        names += list(batch["name"])
    res = {k: np.concatenate(v) for k, v in acc.items()}
    res["names"] = names
    if out_dir is not None:
        (out_dir / "tryon").mkdir(parents=True, exist_ok=True)
        for img, name in zip(res["results"], names, strict=True):
            cv2.imwrite(str(out_dir / "tryon" / f"{name}.png"), img[..., ::-1])
        rows = [np.concatenate([res[k][i] for k in ("persons", "cloths", "proxies", "layouts", "results")], 1)
                for i in range(min(max_grid, len(names)))]
        cv2.imwrite(str(out_dir / "grid.png"), np.concatenate(rows, 0)[..., ::-1])
    return res


def _float(images):
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).double() / 255.0


def region_l1(images, target, mask):
    """Per-image mean |images - target| (in [0, 1] units) over the boolean mask (N, H, W) -> (N,) array."""
    d = np.abs(images.astype(np.float64) - target.astype(np.float64)).mean(-1) / 255.0
    return (d * mask).reshape(len(d), -1).sum(1) / np.maximum(mask.reshape(len(d), -1).sum(1), 1)


def paired_metrics(res, lpips=None, batch_size=16):
    """DAFlow's keys (ssim, ssim_gray, l1, lpips with weights) for results vs persons, and BVTON's controls:
    agnostic_ssim (the agnostic input itself as the try-on), proxy_l1 and onmodel_crop_l1 (the canonical proxy and
    the untouched on-model crop vs the true in-shop garment, L1 on the garment region, [0, 1] units)."""
    x, y = _float(res["results"]), _float(res["persons"])
    metrics = {"ssim": float(ssim(x, y, protocol="daflow")), "ssim_gray": float(ssim(x, y, protocol="grayscale")),
               "l1": float((x - y).abs().mean()),
               "agnostic_ssim": float(ssim(_float(res["agnostics"]), y, protocol="daflow")),
               "proxy_l1": float(region_l1(res["proxies"], res["cloths"], res["cloth_masks"]).mean()),
               "onmodel_crop_l1": float(region_l1(res["c_ons"], res["cloths"], res["cloth_masks"]).mean())}
    if lpips is not None:
        d = [lpips(x[i:i + batch_size].float() * 2 - 1, y[i:i + batch_size].float() * 2 - 1)
             for i in range(0, len(x), batch_size)]
        metrics["lpips"] = float(torch.cat(d).mean())
    return metrics


def distribution_metrics(inception, results, reals, batch_size=16, kid_subset_size=1000):
    """FID and KID (raw MMD^2, not scaled) between generated and real images with a FID Inception."""
    def feats(images):
        x = _float(images).float() * 2 - 1
        return torch.cat([inception_features(inception, x[i:i + batch_size]) for i in range(0, len(x), batch_size)])

    fr, ff = feats(reals).double().numpy(), feats(results).double().numpy()
    kid, _ = kid_from_features(fr, ff, subset_size=kid_subset_size)
    return {"fid": fid_from_features(fr, ff), "kid": kid}


def build_lpips(path_backbone, path_linear):
    return LPIPS(path_backbone, path_linear) if path_backbone or path_linear else None

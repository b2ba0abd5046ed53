"""BVTON's data: paired try-on layouts (common readers), unpaired photo folders, and the pseudo-pair builder.

Every sample, paired or not, is turned into the same dict of tensors (`PseudoPairDataset`):

    person, agnostic (3, H, W) in [-1, 1]; pose (18, H, W) heatmaps; layers (H, W) long, the visible layer per
    pixel (`parts.LAYERS`); parse_agnostic (L, H, W) one-hot with the garment/arm/skin layers cleared; parts
    (3, H, W) on-model part masks; c_on (3, H, W) the on-model garment on white; misaligned, misaligned_mask:
    the randomly misaligned on-model garment (the synthesizer's pseudo input, research note §2.5);
    cloth, cloth_mask: the in-shop garment (zeros for unpaired photos); paired (1 / 0); use_proxy (replace the
    in-shop garment by the canonical proxy in the mask stage); use_predicted_layout (synthesizer stage);
    hole (H, W) a random proxy-like hole mask for in-shop garments.

All randomness of a sample is drawn from numpy's generator seeded by (seed, epoch, index): the pairs are
deterministic under a seed, identical on any number of processes, and the same after --resume.
"""
import os
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image

from common.data.openpose import body25_to_coco18, read_openpose_json
from common.data.tryon import (
    DRESSCODE_TO_LIP,
    TryOnDataset,
    agnostic_person,
    image_to_tensor,
    read_dresscode_keypoints,
    read_label_map,
)
from common.data.unpaired_photos import UnpairedPhotos
from common.errors import ConfigError

from .parts import AGNOSTIC_HIDDEN, LAYERS, layer_labels, misalign, pose_heatmaps, split_upper_parts
from .synthetic import write_synthetic_bvton

SYNTHETIC = "synthetic"
_DRESSCODE_KEYPOINT_SPACE = (384, 512)  # (W, H) of DressCode keypoints, as in common.data.tryon


def dataset_dirs(cfg):
    """(paired root, unpaired root or None). dataset=synthetic generates both once (seeded) in the run dir."""
    if cfg.dataset == SYNTHETIC:
        folder = Path(cfg.out_dir) / "data" / SYNTHETIC
        if not (folder / "paired" / "test_pairs.txt").exists():
            write_synthetic_bvton(folder, cfg.synthetic_train, cfg.synthetic_test, cfg.synthetic_unpaired,
                                  cfg.height, cfg.width, seed=cfg.seed)
        return folder / "paired", folder / "unpaired"
    paired = Path(cfg.data_root) if cfg.data_root else Path(os.environ.get("DATA_ROOT", "data")) / cfg.dataset
    return paired, (Path(cfg.unpaired_root) if cfg.unpaired_root else None)


def _cloth_mask(ds, cloth_name, cloth):
    """The in-shop mask: ``cloth-mask/`` (binarized at >= 128) where the layout has it, else non-white pixels."""
    if ds.layout in ("cpvton", "viton_hd"):
        path = ds.root / ds.split / "cloth-mask" / cloth_name
        if path.is_file():
            m = np.array(Image.open(path).convert("L").resize((cloth.shape[1], cloth.shape[0]), Image.NEAREST))
            return m >= 128
    return (cloth < 245).any(-1)


def load_paired(ds, index):
    """Arrays of one pair of a `TryOnDataset`: its own outputs plus the parse (LIP ids) and COCO-18 keypoints that
    BVTON needs beyond DAFlow's inputs, read from the same files with the same scaling as the common reader."""
    arrays = ds.load_arrays(index)
    person_name, cloth_name = ds.pairs[index]
    if ds.layout == "daflow":
        raise ConfigError("layout daflow ships no parse and no keypoint JSON; BVTON needs both (use cpvton, "
                          "viton_hd or dresscode)")
    p = ds.paths(index)
    h, w = arrays["person"].shape[:2]
    parse = read_label_map(p["parse"], (h, w))
    if ds.layout == "dresscode":
        kps, src = read_dresscode_keypoints(p["keypoints"]), _DRESSCODE_KEYPOINT_SPACE
        parse = DRESSCODE_TO_LIP[np.minimum(parse, len(DRESSCODE_TO_LIP) - 1)]
    else:
        kps, flavour = read_openpose_json(p["keypoints"])
        if flavour == "body25":
            kps = body25_to_coco18(kps)
        src = Image.open(p["person"]).size
    kps = kps.copy()
    kps[:, 0] *= w / src[0]
    kps[:, 1] *= h / src[1]
    return dict(person=arrays["person"], agnostic=arrays["agnostic"], cloth=arrays["cloth"],
                cloth_mask=_cloth_mask(ds, cloth_name, arrays["cloth"]), parse=parse, keypoints=kps,
                name=f"{Path(person_name).stem}__{Path(cloth_name).stem}")


def load_unpaired(photos, index, size):
    """Arrays of one unpaired photo, resized to size (H, W); the agnostic is DAFlow's recipe (common)."""
    a = photos.load(index)
    person, parse, kps = a["person"], a["parse"], a["keypoints"].copy()
    h0, w0 = parse.shape
    h, w = size
    if (h0, w0) != (h, w):
        person = np.array(Image.fromarray(person).resize((w, h), Image.BICUBIC))
        parse = np.array(Image.fromarray(parse).resize((w, h), Image.NEAREST))
        kps[:, 0] *= w / w0
        kps[:, 1] *= h / h0
    return dict(person=person, agnostic=agnostic_person(person, parse, kps), cloth=None, cloth_mask=None,
                parse=parse, keypoints=kps, name=Path(a["name"]).stem)


def hole_mask(h, w, rng, count=3):
    """Random elliptic holes (H, W) bool, like the parts of a garment a canonical proxy cannot see."""
    m = np.zeros((h, w), np.uint8)
    for _ in range(count):
        c = (int(rng.uniform(0.25, 0.75) * w), int(rng.uniform(0.3, 0.85) * h))
        axes = (max(1, int(rng.uniform(0.04, 0.12) * w)), max(1, int(rng.uniform(0.03, 0.1) * h)))
        cv2.ellipse(m, c, axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
    return m > 0


class PseudoPairDataset(torch.utils.data.Dataset):
    """Paired samples (in-shop garment known) and unpaired photos as BVTON training samples (module docstring).

    Args:
        paired: a `common.data.tryon.TryOnDataset` or None; unpaired: a `common.data.unpaired_photos.UnpairedPhotos`
            or None; size: (H, W); cfg: the options (misalignment ranges, probabilities, heatmap sigma, seed).
        canonicalizer: optional callable (c_on, parts, pose) batched tensors -> proxy (B, 3, H, W); with it every
            item also holds ``proxy`` (for inspection with `save_sample`; training computes proxies in batches).
    """

    def __init__(self, paired, unpaired, size, cfg, canonicalizer=None):
        self.paired, self.unpaired, self.size, self.cfg = paired, unpaired, tuple(size), cfg
        self.canonicalizer = canonicalizer
        self.n_paired = len(paired) if paired is not None else 0
        self.n_unpaired = len(unpaired) if unpaired is not None else 0
        if self.n_paired + self.n_unpaired == 0:
            raise ConfigError("no samples: give a paired dataset, an unpaired photo folder, or both")
        self.epoch = 0

    def set_epoch(self, epoch):
        self.epoch = epoch

    def __len__(self):
        return self.n_paired + self.n_unpaired

    def arrays(self, index):
        if index < self.n_paired:
            return load_paired(self.paired, index)
        return load_unpaired(self.unpaired, index - self.n_paired, self.size)

    def __getitem__(self, index):
        cfg = self.cfg
        rng = np.random.default_rng([cfg.seed, self.epoch, index])
        a = self.arrays(index)
        h, w = a["parse"].shape
        parts = split_upper_parts(a["parse"], a["keypoints"], cfg.torso_dilate)
        upper = parts.any(0)
        layers = layer_labels(a["parse"], parts)
        onehot = np.eye(len(LAYERS), dtype=np.float32)[layers].transpose(2, 0, 1)
        onehot[list(AGNOSTIC_HIDDEN)] = 0
        c_on = np.where(upper[..., None], a["person"], 255).astype(np.uint8)
        mis, mis_mask = misalign(c_on, parts, a["keypoints"], rng, cfg)
        sigma = max(cfg.heatmap_sigma * h / 1024, 1.0)
        paired = a["cloth"] is not None
        out = dict(person=image_to_tensor(a["person"]), agnostic=image_to_tensor(a["agnostic"]),
                   pose=torch.from_numpy(pose_heatmaps(a["keypoints"], h, w, sigma)),
                   layers=torch.from_numpy(layers), parse_agnostic=torch.from_numpy(onehot),
                   parts=torch.from_numpy(parts), c_on=image_to_tensor(c_on),
                   misaligned=image_to_tensor(mis), misaligned_mask=torch.from_numpy(mis_mask)[None],
                   cloth=image_to_tensor(a["cloth"]) if paired else torch.zeros(3, h, w),
                   cloth_mask=torch.from_numpy(a["cloth_mask"].astype(np.float32))[None] if paired
                   else torch.zeros(1, h, w),
                   paired=torch.tensor(float(paired)),
                   use_proxy=torch.tensor(float(not paired or rng.random() < cfg.proxy_prob)),
                   use_predicted_layout=torch.tensor(float(rng.random() < cfg.predicted_layout_prob)),
                   hole=torch.from_numpy(hole_mask(h, w, rng) & (rng.random() < cfg.hole_prob))[None].float(),
                   name=a["name"])
        if self.canonicalizer is not None:
            with torch.no_grad():
                out["proxy"] = self.canonicalizer(out["c_on"][None], out["parts"][None], out["pose"][None])[0]
        return out

    def save_sample(self, index, out_dir):
        """Write one sample's images as PNGs under out_dir (person, agnostic, c_on, misaligned, cloth, layers,
        parts, and proxy when a canonicalizer is set); returns the list of written paths."""
        from .parts import LAYER_COLOURS
        s = self[index]
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        to8 = lambda t: ((t.clamp(-1, 1) + 1) * 127.5 + 0.5).byte().permute(1, 2, 0).numpy()  # noqa: E731
        images = {k: to8(s[k]) for k in ("person", "agnostic", "c_on", "misaligned", "cloth") if k in s}
        if "proxy" in s:
            images["proxy"] = to8(s["proxy"])
        images["layers"] = LAYER_COLOURS[s["layers"].numpy()]
        images["parts"] = (s["parts"].permute(1, 2, 0).numpy() * 255).astype(np.uint8)
        paths = []
        for k, img in images.items():
            path = out_dir / f"{s['name']}_{k}.png"
            Image.fromarray(img).save(path)
            paths.append(path)
        return paths


def build_sources(cfg, split, mode="paired", pairs=None):
    """(TryOnDataset or None, UnpairedPhotos or None) for a split; unpaired photos are used for training only.
    pairs: an explicit list of (person, cloth) names instead of the layout's list for (split, mode)."""
    paired_root, unpaired_root = dataset_dirs(cfg)
    layout = "viton_hd" if cfg.dataset == SYNTHETIC else cfg.layout
    paired = None
    if cfg.use_paired or split != "train":
        paired = TryOnDataset(paired_root, layout, split=split, mode=mode, size=(cfg.height, cfg.width), pairs=pairs,
                              category=cfg.category if layout == "dresscode" else "auto")
    unpaired = None
    if split == "train" and unpaired_root is not None and cfg.use_unpaired:
        unpaired = UnpairedPhotos(unpaired_root, require_upper=True)
    return paired, unpaired


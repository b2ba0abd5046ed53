"""Datasets and the 1 labelled : 4 unlabelled batching of Consistent-Teacher.

Dataset settings (`--dataset`):
  coco       $DATA_ROOT/coco/{annotations/instances_{train,val}2017.json, train2017/, val2017/}; the labelled /
             unlabelled split files `semi_supervised/instances_train2017.<fold>@<percent>[-unlabeled].json` are
             written on first use by `common.data.coco.make_semi_split` (SoftTeacher / Consistent-Teacher protocol,
             seed = fold, sampled without replacement, chosen ids saved beside them);
  coco_full  all of train2017 labelled + unlabeled2017 (`annotations/image_info_unlabeled2017.json`,
             `unlabeled2017/`), the paper's "100% + unlabelled" setting;
  voc        VOCdevkit/VOC2007 trainval labelled + VOC2012 trainval unlabelled, tested on VOC2007 test, converted
             once to COCO JSON (STAC's class order) next to the XML files; difficult objects are kept as plain
             objects, as in the STAC JSON the official config trains and evaluates on;
  synthetic  a generated shapes dataset in COCO format inside the run directory (`percent` of it labelled);
  custom     any COCO-format data: `--train_ann/--train_images` (split by `percent` into the run directory, or
             all labelled when `--unlabeled_ann/--unlabeled_images` are given) and `--val_ann/--val_images`.

Batching (official `SemiBalanceSampler(sample_ratio=[1, 4])`): every rank takes `labeled_per_gpu` labelled and
`unlabeled_per_gpu` unlabelled images per iteration. Instead of a stateful sampler, `SemiIterationData[it]` builds
rank r's whole batch of iteration `it` from a seeded permutation per pass over each set, so a resumed run sees
exactly the batches (and augmentations: the nonce is the sample's global position) of an uninterrupted one.
The official sampler also groups images by aspect ratio to save padding; we do not (same images, more padding).
Training views are padded to a multiple of 32 before normalisation (`train_pad: before_normalize`, official); the
rest of a batch's padding, and the test views' padding, is 0 after normalisation, as mmcv's collate and the official
test pipeline.
"""
import os
from pathlib import Path

import numpy as np
import torch

from common.data.coco import CocoDetection, load_coco_json, make_semi_split, unlabeled_json
from common.data.detection_transforms import (
    collate_views,
    labeled_pipeline,
    strong_pipeline,
    test_pipeline,
    to_tensor_view,
    weak_pipeline,
)
from common.data.shapes import write_shapes_dataset
from common.data.voc import write_voc_coco
from common.errors import ConfigError, DataError

DATASETS = ("coco", "coco_full", "voc", "synthetic", "custom")


def _root(cfg, default_name):
    if cfg.data_root:
        return Path(cfg.data_root)
    if not os.environ.get("DATA_ROOT"):
        raise DataError(f"$DATA_ROOT/{default_name}", "a dataset folder", hint="--data_root is not set and "
                        f"$DATA_ROOT is empty: point one of them at the folder holding {default_name}/ (see the "
                        "method README, 'Data layout')")
    return Path(os.environ["DATA_ROOT"]) / default_name


def dataset_files(cfg, run_dir, rank=0):
    """-> dict(labeled=(ann, image_dir), unlabeled=(ann, image_dir), val=(ann, image_dir)) for `cfg.dataset`.

    Split / conversion files are written by rank 0 only; other ranks wait for them via the caller's barrier."""
    if cfg.dataset == "synthetic":
        root = Path(run_dir) / "shapes"
        if rank == 0 and not (root / "annotations" / "instances_val.json").exists():
            write_shapes_dataset(root, num_train=cfg.synthetic_train, num_val=cfg.synthetic_val,
                                 image_size=(cfg.synthetic_height, cfg.synthetic_width), seed=cfg.seed)
        ann = root / "annotations"
        split = _semi_split(ann / "instances_train.json", cfg, root / "semi_supervised", rank)
        return dict(labeled=(split["labeled"], root / "images"), unlabeled=(split["unlabeled"], root / "images"),
                    val=(ann / "instances_val.json", root / "images"))
    if cfg.dataset == "custom":
        missing = [k for k in ("train_ann", "train_images", "val_ann", "val_images") if not getattr(cfg, k)]
        if missing:
            raise ConfigError(f"dataset custom needs --{' --'.join(missing)} (COCO instances JSON + image folder)")
        val = (Path(cfg.val_ann), Path(cfg.val_images))
        if cfg.unlabeled_ann:
            return dict(labeled=(Path(cfg.train_ann), Path(cfg.train_images)),
                        unlabeled=(Path(cfg.unlabeled_ann), Path(cfg.unlabeled_images or cfg.train_images)), val=val)
        split = _semi_split(cfg.train_ann, cfg, Path(run_dir) / "splits", rank)
        return dict(labeled=(split["labeled"], Path(cfg.train_images)),
                    unlabeled=(split["unlabeled"], Path(cfg.train_images)), val=val)
    if cfg.dataset in ("coco", "coco_full"):
        root = _root(cfg, "coco")
        ann = root / "annotations"
        val = (ann / "instances_val2017.json", root / "val2017")
        if cfg.dataset == "coco_full":
            unl = root / "semi_supervised" / "instances_unlabeled2017.json"
            if rank == 0 and not unl.exists():
                unlabeled_json(ann / "image_info_unlabeled2017.json", ann / "instances_train2017.json", unl)
            return dict(labeled=(ann / "instances_train2017.json", root / "train2017"),
                        unlabeled=(unl, root / "unlabeled2017"), val=val)
        split = _semi_split(ann / "instances_train2017.json", cfg, root / "semi_supervised", rank)
        return dict(labeled=(split["labeled"], root / "train2017"), unlabeled=(split["unlabeled"], root / "train2017"),
                    val=val)
    root = _root(cfg, "VOCdevkit")  # voc: VOCdevkit itself or the folder holding it (as common.data.voc reads it)
    devkit = root if root.name == "VOCdevkit" else root / "VOCdevkit"
    files = {}
    for key, year, split in (("labeled", "2007", "trainval"), ("unlabeled", "2012", "trainval"),
                             ("val", "2007", "test")):
        out = devkit / f"VOC{year}" / f"instances_{split}.json"
        if rank == 0 and not out.exists():
            write_voc_coco(devkit, year, split, out, keep_difficult="object")
        files[key] = (out, devkit / f"VOC{year}" / "JPEGImages")
    return files


def _semi_split(ann_file, cfg, out_dir, rank):
    if rank == 0 and not Path(ann_file).exists():  # other ranks wait at the caller's barrier for rank 0's files
        load_coco_json(ann_file)  # raises the DataError that says where the file comes from
    fmt = f"{cfg.percent:g}"
    stem = Path(ann_file).stem
    labeled = Path(out_dir) / f"{stem}.{cfg.fold}@{fmt}.json"
    unlabeled = Path(out_dir) / f"{stem}.{cfg.fold}@{fmt}-unlabeled.json"
    if rank == 0 and not (labeled.exists() and unlabeled.exists()):
        return make_semi_split(ann_file, cfg.percent, cfg.fold, out_dir)
    return dict(labeled=labeled, unlabeled=unlabeled)


def pad_before_normalize(view, size_divisor=32):
    """Pad a raw uint8 view at the bottom / right with black to a multiple of `size_divisor`, before normalisation,
    as the official training pipelines do (`dict(type="Pad", size_divisor=32)` ahead of `Normalize` in
    `configs/consistent-teacher/*.py`): the padded pixels become (0 - mean) / std, not 0. img_shape, boxes and the
    matrix are unchanged (mmdet's img_shape is the unpadded size, pad_shape the padded one)."""
    h, w = view["image"].shape[:2]
    ph, pw = -(-h // size_divisor) * size_divisor, -(-w // size_divisor) * size_divisor
    if (ph, pw) == (h, w):
        return view
    out = dict(view)
    out["image"] = np.pad(view["image"], ((0, ph - h), (0, pw - w), (0, 0)))
    return out


class TwoViews:
    """Unlabelled sample -> {"weak": teacher view, "strong": student view}; each view draws its own resize and
    flip from the same per-sample generator (official `MultiBranch`; the strong view goes to the student). Both
    are padded before normalisation (official pipelines) unless pad_first is False."""

    def __init__(self, short_range, max_long, pad_first=True):
        self.weak = weak_pipeline(short_range, max_long)
        self.strong = strong_pipeline(short_range, max_long)
        self.pad = pad_before_normalize if pad_first else (lambda view: view)

    def __call__(self, sample, rng):
        return {"weak": to_tensor_view(self.pad(self.weak(sample, rng))),
                "strong": to_tensor_view(self.pad(self.strong(sample, rng)))}


class Tensorize:
    """Wrap a pipeline so the dataset returns tensors (normalised image, boxes, labels, matrix); with pad_first the
    raw view is padded to a multiple of 32 before normalisation (the official training pipelines)."""

    def __init__(self, pipeline, pad_first=False):
        self.pipeline = pipeline
        self.pad_first = pad_first

    def __call__(self, sample, rng):
        view = self.pipeline(sample, rng)
        return to_tensor_view(pad_before_normalize(view) if self.pad_first else view)


def build_train_sets(files, cfg):
    short_range = tuple(cfg.train_short_range)
    pad_first = cfg.train_pad == "before_normalize"
    labeled = CocoDetection(*files["labeled"], transform=Tensorize(labeled_pipeline(short_range, cfg.max_long),
                                                                   pad_first), filter_empty=True, seed=cfg.seed)
    unlabeled = CocoDetection(*files["unlabeled"], transform=TwoViews(short_range, cfg.max_long, pad_first),
                              filter_empty=False, seed=cfg.seed)
    if len(labeled) == 0:
        raise DataError(files["labeled"][0], "at least one labelled image with boxes")
    if len(unlabeled) == 0 and cfg.semi:
        raise DataError(files["unlabeled"][0], "at least one unlabelled image (or run the supervised baseline "
                        "with --semi false)")
    return labeled, unlabeled


def build_val_set(files, cfg):
    # mmdet filters nothing in test mode: every image of the annotation file is evaluated
    return CocoDetection(*files["val"], transform=Tensorize(test_pipeline(cfg.max_long, cfg.test_short)),
                         filter_empty=False, min_size=0, seed=cfg.seed)


def _pass_index(position, size, seed, salt):
    """The dataset index at global `position` of an endless sequence of seeded permutations (one per pass)."""
    epoch, offset = divmod(position, size)
    perm = np.random.default_rng([seed, salt, epoch]).permutation(size)
    return int(perm[offset])


class SemiIterationData(torch.utils.data.Dataset):
    """Item `it` = rank r's batch of iteration `it`: (labelled views, weak views, strong views), collated."""

    def __init__(self, labeled, unlabeled, labeled_per_gpu, unlabeled_per_gpu, rank, world_size, max_iters, seed):
        self.labeled, self.unlabeled = labeled, unlabeled
        self.n_l, self.n_u = labeled_per_gpu, unlabeled_per_gpu
        self.rank, self.world = rank, world_size
        self.max_iters, self.seed = max_iters, seed

    def __len__(self):
        return self.max_iters

    def items(self, it):
        """The (index, nonce) pairs of labelled and unlabelled samples rank r loads at iteration `it`."""
        def take(dataset, per_gpu, salt):
            first = (it * self.world + self.rank) * per_gpu
            return [(_pass_index(p, len(dataset), self.seed, salt), p) for p in range(first, first + per_gpu)]
        return take(self.labeled, self.n_l, 0), take(self.unlabeled, self.n_u, 1)

    def __getitem__(self, it):
        lab_items, unl_items = self.items(it)
        batch = dict(labeled=collate_views([self.labeled[i] for i in lab_items]))
        if unl_items:  # none for the supervised baseline
            pairs = [self.unlabeled[i] for i in unl_items]
            batch.update(weak=collate_views([p["weak"] for p in pairs]),
                         strong=collate_views([p["strong"] for p in pairs]))
        return batch


def iteration_loader(data, start_iter, num_workers):
    """Batches for iterations start_iter..max_iters-1, in order (each item is already a whole batch)."""
    return torch.utils.data.DataLoader(data, batch_size=None, sampler=range(start_iter, len(data)),
                                       num_workers=num_workers, persistent_workers=False,
                                       prefetch_factor=2 if num_workers else None)

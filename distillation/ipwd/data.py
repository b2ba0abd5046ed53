"""Datasets: CIFAR-100 and CIFAR-10 (pickle batches), ImageNet (ImageFolder), small-image ImageFolder trees
with CIFAR-style 32x32 transforms (`imagefolder32`), and generated data.

`imagefolder32` reads any `<root>/<split>/<class>/<image>` tree (split names from the config's `train_split` /
`test_split`) through the common ImageFolder reader, resizes to 32x32 and applies the CIFAR recipe's
augmentations, so that CIFAR-sized data exported as images (CINIC-10, Tiny subsets, your own) trains with the
CIFAR models and recipe. `synthetic` writes a small learnable dataset in the CIFAR-100 pickle format into
`<out_dir>/data/` (once, deterministically from `synthetic_seed`) and reads it back through the real CIFAR
reader, so the smoke run exercises the same code path as CIFAR-100. Checkpoints record the folder they were
trained on, so eval.sh finds the same data.
"""
import os
from pathlib import Path

import torch
from torchvision import transforms

from common.data.cifar import (
    CIFAR10,
    CIFAR10_MEAN,
    CIFAR10_STD,
    CIFAR100,
    CIFAR100_MEAN,
    CIFAR100_STD,
    cifar_test_transform,
    cifar_train_transform,
    write_synthetic_cifar,
)
from common.data.imagefolder import image_folder, imagenet_train_transform, imagenet_val_transform

DATASETS = ("cifar100", "cifar10", "imagenet", "imagefolder32", "synthetic")
IMAGE_FOLDERS = ("imagenet", "imagefolder32")  # datasets whose split names come from the config


def small_image_train_transform(size=32, mean=CIFAR100_MEAN, std=CIFAR100_STD):
    """PIL image -> Resize(size x size) + RandomCrop(size, pad 4) + HorizontalFlip + Normalize: the CIFAR
    recipe (RepDistiller dataset/cifar100.py) on images of any size."""
    return transforms.Compose([transforms.Resize((size, size)), transforms.RandomCrop(size, padding=4),
                               transforms.RandomHorizontalFlip(), transforms.ToTensor(),
                               transforms.Normalize(mean, std)])


def small_image_test_transform(size=32, mean=CIFAR100_MEAN, std=CIFAR100_STD):
    """PIL image -> Resize(size x size) + Normalize."""
    return transforms.Compose([transforms.Resize((size, size)), transforms.ToTensor(), transforms.Normalize(mean, std)])


def dataset_dir(cfg):
    """The folder holding the data: `cifar-100-python/`, `cifar-10-batches-py/`, the ImageFolder root, or the
    generated folder."""
    if cfg.dataset == "synthetic":
        folder = Path(cfg.out_dir) / "data" / "synthetic-cifar"
        if not (folder / "meta").exists():
            write_synthetic_cifar(folder, num_classes=cfg.synthetic_classes,
                                  train_per_class=cfg.synthetic_train_per_class,
                                  test_per_class=cfg.synthetic_test_per_class, seed=cfg.synthetic_seed)
        return folder
    root = Path(cfg.data_root or os.environ.get("DATA_ROOT", "data"))
    if cfg.dataset == "cifar100":
        return root if (root / "meta").exists() else root / "cifar-100-python"
    if cfg.dataset == "cifar10":
        found = (root / "batches.meta").exists() or (root / "test_batch").exists()
        return root if found else root / "cifar-10-batches-py"
    if cfg.dataset == "imagefolder32":
        return root
    return root if (root / cfg.train_split).is_dir() else root / "imagenet"


def build_datasets(dataset, folder, train_augment=True, train_split="train", test_split="val"):
    """(train set, test set, number of classes); items are (image, label, index).

    `train_split` / `test_split` name the sub-folders of the ImageFolder datasets (the CIFAR files have fixed names).
    """
    if dataset == "imagenet":
        train_tf = imagenet_train_transform() if train_augment else imagenet_val_transform()
        train = image_folder(folder, train_split, train_tf)
        test = image_folder(folder, test_split, imagenet_val_transform())
        return train, test, train.num_classes
    if dataset == "imagefolder32":
        train = image_folder(folder, train_split,
                             small_image_train_transform() if train_augment else small_image_test_transform())
        test = image_folder(folder, test_split, small_image_test_transform())
        return train, test, train.num_classes
    if dataset == "cifar10":
        train = CIFAR10(folder, "train", cifar_train_transform(CIFAR10_MEAN, CIFAR10_STD) if train_augment
                        else cifar_test_transform(CIFAR10_MEAN, CIFAR10_STD))
        test = CIFAR10(folder, "test", cifar_test_transform(CIFAR10_MEAN, CIFAR10_STD))
        return train, test, train.num_classes
    train = CIFAR100(folder, "train", cifar_train_transform() if train_augment else cifar_test_transform())
    test = CIFAR100(folder, "test", cifar_test_transform())
    return train, test, max(train.num_classes, test.num_classes)


def loader(dataset, batch_size, sampler=None, shuffle=False, num_workers=0, drop_last=False):
    """A DataLoader with pinned memory and persistent workers; never more workers than CPU cores."""
    num_workers = min(num_workers, os.cpu_count() or 1)
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, sampler=sampler,
                                       shuffle=shuffle if sampler is None else False, num_workers=num_workers,
                                       pin_memory=torch.cuda.is_available(), drop_last=drop_last,
                                       persistent_workers=num_workers > 0)

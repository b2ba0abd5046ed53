"""Datasets of the three settings: CIFAR-100 (pickle batches), ImageNet (ImageFolder), and generated data.

`synthetic` writes a small learnable dataset in the CIFAR-100 pickle format into `<out_dir>/data/` (once,
deterministically from `synthetic_seed`) and reads it back through the real CIFAR reader, so the smoke run
exercises the same code path as CIFAR-100. Checkpoints record the folder they were trained on, so eval.sh
finds the same data.
"""
import os
from pathlib import Path

import torch

from common.data.cifar import CIFAR100, cifar_test_transform, cifar_train_transform, write_synthetic_cifar
from common.data.imagefolder import image_folder, imagenet_train_transform, imagenet_val_transform

DATASETS = ("cifar100", "imagenet", "synthetic")


def dataset_dir(cfg):
    """The folder holding the data: `cifar-100-python/` or the ImageNet root, or the generated folder."""
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
    return root if (root / "train").is_dir() else root / "imagenet"


def build_datasets(dataset, folder, train_augment=True):
    """(train set, test set, number of classes); items are (image, label, index)."""
    if dataset == "imagenet":
        train = image_folder(folder, "train", imagenet_train_transform() if train_augment else imagenet_val_transform())
        test = image_folder(folder, "val", imagenet_val_transform())
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

"""CIFAR-100 (pickle batches, common.data.cifar), ImageNet (ImageFolder, common.data.imagefolder) and generated
CIFAR-format data for the smoke run (written to `<out_dir>/data/synthetic-cifar/` and read back through the
real CIFAR reader). Items are (image, label, index)."""
import os
from pathlib import Path

import torch

from common.data.cifar import CIFAR100, cifar_test_transform, cifar_train_transform, write_synthetic_cifar
from common.data.imagefolder import image_folder, imagenet_train_transform, imagenet_val_transform

DATASETS = ("cifar100", "imagenet", "synthetic")


def dataset_dir(cfg):
    """`cifar-100-python/`, the ImageNet root (train/ val/), or the generated folder (written once)."""
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
    """(train set, test set, number of classes)."""
    if dataset == "imagenet":
        train = image_folder(folder, "train", imagenet_train_transform() if train_augment else imagenet_val_transform())
        return train, image_folder(folder, "val", imagenet_val_transform()), train.num_classes
    train = CIFAR100(folder, "train", cifar_train_transform() if train_augment else cifar_test_transform())
    return train, CIFAR100(folder, "test", cifar_test_transform()), train.num_classes


def loader(dataset, batch_size, sampler=None, shuffle=False, num_workers=0):
    num_workers = min(num_workers, os.cpu_count() or 1)
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, sampler=sampler,
                                       shuffle=shuffle if sampler is None else False, num_workers=num_workers,
                                       pin_memory=torch.cuda.is_available(), persistent_workers=num_workers > 0)

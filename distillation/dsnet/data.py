"""Datasets: ImageNet (ImageFolder), CIFAR-100 (pickle batches), and generated data in the CIFAR-100 format.

`synthetic` writes a small learnable dataset with *graded difficulty* into `<out_dir>/data/` (once, deterministic
from `synthetic_seed`) and reads it back through the real CIFAR-100 reader (`common.data.cifar.CIFAR100`).

Planted signal (what the gate can exploit): each class owns a smooth, left-right symmetric colour template;
every image is its template plus Gaussian pixel noise whose level is drawn per image from `synthetic_noise`
(easy: low noise, hard: high noise). The templates of different classes are close (`synthetic_spread`), so
high-noise images need more capacity than low-noise ones; the noise level is visible in the early features,
so a gate can tell a slim route will do for an easy image and a wide one is needed for a hard image.
"""
import os
from pathlib import Path

import numpy as np
import torch

from common.data.cifar import CIFAR100, cifar_test_transform, cifar_train_transform, write_cifar100
from common.data.imagefolder import image_folder, imagenet_train_transform, imagenet_val_transform

DATASETS = ("imagenet", "cifar100", "synthetic")


def make_graded_cifar(num_classes=10, train_per_class=64, test_per_class=32, seed=0, noise=(15.0, 90.0),
                      spread=60.0):
    """(train, test) as `write_cifar100` takes them: images (N, 32, 32, 3) uint8, fine labels, coarse = fine // 5.

    Templates: a shared grey base plus a per-class 4x4 blocky pattern of amplitude `spread`; per-image noise std
    drawn uniformly from the levels in `noise` (half the images of each class at each level when there are two).
    """
    rng = np.random.default_rng(seed)
    half = rng.uniform(-spread, spread, size=(num_classes, 4, 2, 3))
    grid = np.concatenate([half, half[:, :, ::-1]], axis=2)                      # (C, 4, 4, 3), mirror-symmetric
    templates = 128 + grid.repeat(8, axis=1).repeat(8, axis=2)                    # (C, 32, 32, 3)

    def draw(per_class):
        labels = np.repeat(np.arange(num_classes), per_class)
        levels = np.tile(np.resize(np.asarray(noise, float), per_class), num_classes)
        order = rng.permutation(len(labels))
        labels, levels = labels[order], levels[order]
        imgs = templates[labels] + rng.normal(0, 1, size=(len(labels), 32, 32, 3)) * levels[:, None, None, None]
        return np.clip(imgs, 0, 255).astype(np.uint8), labels.astype(np.int64), labels // 5

    return draw(train_per_class), draw(test_per_class)


def dataset_dir(cfg):
    """The folder holding the data: the ImageNet root, `cifar-100-python/`, or the generated folder."""
    if cfg.dataset == "synthetic":
        folder = Path(cfg.out_dir) / "data" / "graded-cifar"
        if not (folder / "meta").exists():
            train, test = make_graded_cifar(cfg.synthetic_classes, cfg.synthetic_train_per_class,
                                            cfg.synthetic_test_per_class, cfg.synthetic_seed,
                                            tuple(cfg.synthetic_noise), cfg.synthetic_spread)
            write_cifar100(folder, train, test)
        return folder
    root = Path(cfg.data_root or os.environ.get("DATA_ROOT", "data"))
    if cfg.dataset == "cifar100":
        return root if (root / "meta").exists() else root / "cifar-100-python"
    return root if (root / "train").is_dir() else root / "imagenet"


def build_datasets(dataset, folder, image_size=224, train_augment=True):
    """(train set, test set, number of classes); items are (image, label, index)."""
    if dataset == "imagenet":
        train_tf = imagenet_train_transform(image_size) if train_augment else \
            imagenet_val_transform(int(round(image_size / 0.875)), image_size)
        train = image_folder(folder, "train", train_tf)
        test = image_folder(folder, "val", imagenet_val_transform(int(round(image_size / 0.875)), image_size))
        return train, test, train.num_classes
    train = CIFAR100(folder, "train", cifar_train_transform() if train_augment else cifar_test_transform())
    test = CIFAR100(folder, "test", cifar_test_transform())
    return train, test, max(train.num_classes, test.num_classes)


def loader(dataset, batch_size, sampler=None, num_workers=0, drop_last=False):
    """A DataLoader (pinned memory on CUDA, never more workers than CPU cores)."""
    num_workers = min(num_workers, os.cpu_count() or 1)
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=num_workers,
                                       pin_memory=torch.cuda.is_available(), drop_last=drop_last,
                                       persistent_workers=num_workers > 0)


class MultiView(torch.utils.data.Dataset):
    """MvCo input: `views` independently augmented copies of each image, (V, 3, H, W), with its label and index."""

    def __init__(self, dataset, views=2):
        self.dataset, self.views = dataset, views

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, i):
        items = [self.dataset[i] for _ in range(self.views)]
        return torch.stack([item[0] for item in items]), items[0][1], items[0][2]

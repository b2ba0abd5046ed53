"""ImageNet (ILSVRC-2012) as an ImageFolder tree, with the standard training and evaluation transforms.

Expected layout (what `torchvision.datasets.ImageFolder` reads; the validation images must already be sorted
into class folders, e.g. with the widely used `valprep.sh`):

    <root>/train/<wnid>/<image>.JPEG     1000 class folders, ~1.28M images
    <root>/val/<wnid>/<image>.JPEG       the same 1000 folder names, 50 images each

Class ids are the sorted folder names, identical for train and val. Transforms are torchvision's reference
recipe: RandomResizedCrop(224) + RandomHorizontalFlip for training; Resize(256) + CenterCrop(224) for
evaluation; Normalize with the ImageNet mean/std.
"""
from pathlib import Path

import numpy as np
from torchvision import datasets, transforms

from common.errors import DataError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DATA_HINT = ("get ILSVRC-2012 from https://image-net.org/download.php (ILSVRC2012_img_train.tar, "
             "ILSVRC2012_img_val.tar), untar the train archives into train/<wnid>/ and sort val into val/<wnid>/")


def imagenet_train_transform(size=224, mean=IMAGENET_MEAN, std=IMAGENET_STD):
    """RandomResizedCrop(size) + RandomHorizontalFlip + ToTensor + Normalize (PIL image -> (3, size, size))."""
    return transforms.Compose([transforms.RandomResizedCrop(size), transforms.RandomHorizontalFlip(),
                               transforms.ToTensor(), transforms.Normalize(mean, std)])


def imagenet_val_transform(resize=256, size=224, mean=IMAGENET_MEAN, std=IMAGENET_STD):
    """Resize(resize) + CenterCrop(size) + ToTensor + Normalize."""
    return transforms.Compose([transforms.Resize(resize), transforms.CenterCrop(size), transforms.ToTensor(),
                               transforms.Normalize(mean, std)])


class ImageFolderWithIndex(datasets.ImageFolder):
    """`ImageFolder` whose items are (image, label, index), like the CIFAR reader's."""

    def __getitem__(self, i):
        img, label = super().__getitem__(i)
        return img, label, i

    @property
    def labels(self):
        return np.asarray(self.targets, dtype=np.int64)

    @property
    def num_classes(self):
        return len(self.classes)


def image_folder(root, split, transform=None):
    """`<root>/<split>` as an `ImageFolderWithIndex`; DataError naming the folder if it is missing or empty."""
    folder = Path(root) / split
    if not folder.is_dir():
        raise DataError(folder, "ImageFolder split not found (expected class sub-folders of images)", hint=DATA_HINT)
    try:
        return ImageFolderWithIndex(str(folder), transform=transform)
    except (FileNotFoundError, RuntimeError) as e:  # no class folders / no images with a known extension
        raise DataError(folder, f"not a readable ImageFolder tree ({e})", hint=DATA_HINT) from None


def write_synthetic_image_folder(root, num_classes=3, per_class=(4, 2), size=40, seed=0):
    """A tiny ImageFolder tree (`train/`, `val/`, PNG files) with one flat colour per class plus noise."""
    from PIL import Image  # Pillow comes with torchvision

    rng = np.random.default_rng(seed)
    colours = rng.uniform(30, 225, size=(num_classes, 3))
    for split, n in zip(("train", "val"), per_class, strict=True):
        for c in range(num_classes):
            d = Path(root) / split / f"n{c:08d}"
            d.mkdir(parents=True, exist_ok=True)
            for k in range(n):
                img = np.clip(colours[c] + rng.normal(0, 20, (size, size, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(img).save(d / f"img{k}.png")
    return Path(root)


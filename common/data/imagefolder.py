"""ImageNet (ILSVRC-2012) as an ImageFolder tree, with the standard training and evaluation transforms.

Expected layout (what `torchvision.datasets.ImageFolder` reads; the validation images must already be sorted
into class folders, e.g. with the widely used `valprep.sh`):

    <root>/train/<wnid>/<image>.JPEG     1000 class folders, ~1.28M images
    <root>/val/<wnid>/<image>.JPEG       the same 1000 folder names, 50 images each

Class ids are the sorted folder names of train/; the other splits are mapped to them by name (a val/ that lacks
a class keeps every other label right, a class folder train/ does not have is a DataError). A file that is not
a readable image (empty, truncated, not an image) is a DataError naming it when it is read. Transforms are
torchvision's reference recipe: RandomResizedCrop(224) + RandomHorizontalFlip for training; Resize(256) +
CenterCrop(224) for evaluation; Normalize with the ImageNet mean/std.
"""
import os
from pathlib import Path

import numpy as np
from PIL import Image
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


def load_rgb(path):
    """PIL RGB image of a file; an empty, truncated or non-image file is a DataError naming it."""
    try:
        with open(path, "rb") as f:
            img = Image.open(f)
            return img.convert("RGB")
    except (OSError, ValueError, SyntaxError) as e:  # UnidentifiedImageError, truncated data, bad headers
        raise DataError(path, f"not a readable image file ({e})") from None


class ImageFolderWithIndex(datasets.ImageFolder):
    """`ImageFolder` whose items are (image, label, index), like the CIFAR reader's.

    class_names: label order (e.g. the train split's classes); this folder's class sub-folders are mapped to it by
    name and one that is not in it is a DataError. None: its own sorted sub-folders, as torchvision.
    """

    def __init__(self, root, transform=None, class_names=None, **kwargs):
        self.class_names = None if class_names is None else list(class_names)
        kwargs.setdefault("loader", load_rgb)
        if self.class_names is not None:
            kwargs.setdefault("allow_empty", True)  # a split may lack some classes; an empty split is refused below
        super().__init__(root, transform=transform, **kwargs)
        if not self.samples:
            raise DataError(root, "no images in the class folders")

    def find_classes(self, directory):
        own, own_to_idx = super().find_classes(directory)
        if self.class_names is None:
            return own, own_to_idx
        unknown = [c for c in own if c not in self.class_names]
        if unknown:
            raise DataError(Path(directory) / unknown[0], f"class folder {unknown[0]!r} is not one of the "
                            f"{len(self.class_names)} training classes ({len(unknown)} unknown: "
                            f"{', '.join(unknown[:5])}); the splits must share their class folder names")
        return self.class_names, {c: i for i, c in enumerate(self.class_names)}

    def __getitem__(self, i):
        img, label = super().__getitem__(i)
        return img, label, i

    @property
    def labels(self):
        return np.asarray(self.targets, dtype=np.int64)

    @property
    def num_classes(self):
        return len(self.classes)


def image_folder(root, split, transform=None, class_names="auto"):
    """`<root>/<split>` as an `ImageFolderWithIndex`; DataError naming the folder if it is missing or empty.

    class_names: the label order. "auto": for a split other than "train", the class folders of `<root>/train` when
    it exists (labels are mapped by folder name, so val/ with a missing or extra folder cannot shift them); for
    train (or without train/), the split's own folders. None: the split's own folders, always.
    """
    folder = Path(root) / split
    if not folder.is_dir():
        raise DataError(folder, "ImageFolder split not found (expected class sub-folders of images)", hint=DATA_HINT)
    if class_names == "auto":
        train = Path(root) / "train"
        class_names = None
        if split != "train" and train.is_dir():
            class_names = sorted(e.name for e in os.scandir(train) if e.is_dir())
    try:
        return ImageFolderWithIndex(str(folder), transform=transform, class_names=class_names)
    except (FileNotFoundError, RuntimeError) as e:  # no class folders / no images with a known extension
        raise DataError(folder, f"not a readable ImageFolder tree ({e})", hint=DATA_HINT) from None


def write_synthetic_image_folder(root, num_classes=3, per_class=(4, 2), size=40, seed=0):
    """A tiny ImageFolder tree (`train/`, `val/`, PNG files) with one flat colour per class plus noise."""
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


"""CIFAR-100 in its real on-disk format: reader, the KD recipe's augmentations, and a small learnable generator.

The official "python version" archive (https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz) unpacks to

    cifar-100-python/train   pickle of a dict: b'data' uint8 (50000, 3072), b'fine_labels', b'coarse_labels',
    cifar-100-python/test    b'filenames', b'batch_label'; the test file has 10000 rows
    cifar-100-python/meta    b'fine_label_names', b'coarse_label_names'

Each row of b'data' is one 32x32 colour image stored channel-major: 1024 red, 1024 green, 1024 blue values,
each plane row-major. The files are pickled with Python 2, so they are read with `encoding="bytes"` (keys
are bytes). `write_cifar100` writes the same format (used for the generated data of tests and smoke runs), so
that the reader under test is the one users run on the real data.

Augmentations are those of the CIFAR-100 KD recipe everyone uses (RepDistiller/CRD `dataset/cifar100.py`):
RandomCrop(32, padding=4) + RandomHorizontalFlip for training, then Normalize with the CIFAR-100 mean/std.
"""
import pickle
from pathlib import Path

import numpy as np
import torch
from torchvision import transforms

from common.errors import DataError

CIFAR100_MEAN = (0.5071, 0.4867, 0.4408)   # RepDistiller dataset/cifar100.py
CIFAR100_STD = (0.2675, 0.2565, 0.2761)
DATA_HINT = ("download https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz and unpack it with "
             "`tar xzf cifar-100-python.tar.gz -C $DATA_ROOT` (or torchvision.datasets.CIFAR100(root, download=True))")
SPLITS = ("train", "test")


def _unpickle(path):
    """A CIFAR pickle as a dict with bytes keys, or DataError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "CIFAR-100 file not found", hint=DATA_HINT)
    try:
        with open(path, "rb") as f:
            obj = pickle.load(f, encoding="bytes")
    except Exception as e:  # truncated, not a pickle, foreign format
        raise DataError(path, f"not a readable CIFAR pickle ({type(e).__name__}: {e})", hint=DATA_HINT) from None
    if not isinstance(obj, dict):
        raise DataError(path, f"expected a pickled dict, found {type(obj).__name__}", hint=DATA_HINT)
    return obj


def read_cifar100_split(root, split):
    """Read `<root>/train` or `<root>/test` (root = the `cifar-100-python` folder).

    Returns (images uint8 (N, 32, 32, 3) HWC, fine_labels int64 (N,), coarse_labels int64 (N,)).
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    path = Path(root) / split
    obj = _unpickle(path)
    for key in (b"data", b"fine_labels"):
        if key not in obj:
            raise DataError(path, f"missing key {key!r} (keys: {sorted(obj)})", hint=DATA_HINT)
    data = np.asarray(obj[b"data"])
    fine = np.asarray(obj[b"fine_labels"], dtype=np.int64)
    coarse = np.asarray(obj.get(b"coarse_labels", np.zeros(len(fine))), dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise DataError(path, f"b'data' must be uint8 (N, 3072), found {data.dtype} {data.shape}")
    if len(fine) != len(data) or len(coarse) != len(data):
        raise DataError(path, f"{len(data)} images but {len(fine)} fine / {len(coarse)} coarse labels")
    if len(fine) and fine.min() < 0:
        raise DataError(path, "negative fine label")
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)  # (N, 3, 32, 32) CHW -> (N, 32, 32, 3) HWC
    return np.ascontiguousarray(images), fine, coarse


def read_cifar100_meta(root):
    """Fine and coarse class names from `<root>/meta` (lists of str)."""
    obj = _unpickle(Path(root) / "meta")
    decode = lambda names: [n.decode() if isinstance(n, bytes) else str(n) for n in names]  # noqa: E731
    return decode(obj.get(b"fine_label_names", [])), decode(obj.get(b"coarse_label_names", []))


def cifar_train_transform(mean=CIFAR100_MEAN, std=CIFAR100_STD):
    """RandomCrop(32, pad 4) + HorizontalFlip + Normalize, on a uint8 (3, 32, 32) tensor -> float (3, 32, 32)."""
    return transforms.Compose([transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip(),
                               transforms.ConvertImageDtype(torch.float32), transforms.Normalize(mean, std)])


def cifar_test_transform(mean=CIFAR100_MEAN, std=CIFAR100_STD):
    """Normalize only (uint8 (3, 32, 32) tensor -> float)."""
    return transforms.Compose([transforms.ConvertImageDtype(torch.float32), transforms.Normalize(mean, std)])


class CIFAR100(torch.utils.data.Dataset):
    """One split of a `cifar-100-python` folder; items are (image (3, 32, 32) float, fine label, index).

    The index is returned like RepDistiller's train loader does (CRD's memory bank and PS-KD's per-sample
    predictions need it).
    """

    def __init__(self, root, split="train", transform=None):
        self.root, self.split = Path(root), split
        self.images, self.labels, self.coarse_labels = read_cifar100_split(root, split)
        self.images_chw = torch.from_numpy(self.images).permute(0, 3, 1, 2)  # (N, 3, 32, 32) uint8 view
        self.transform = transform
        self.num_classes = int(self.labels.max()) + 1 if len(self.labels) else 0

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        img = self.images_chw[i]
        if self.transform is not None:
            img = self.transform(img)
        return img, int(self.labels[i]), i


def _pickle_dump(obj, path):
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        pickle.dump(obj, f, protocol=2)
    tmp.replace(path)


def write_cifar100(root, train, test, fine_names=None, coarse_names=None):
    """Write `train`/`test` = (images uint8 (N, 32, 32, 3), fine (N,), coarse (N,)) in the official format."""
    root = Path(root)
    num_fine = 1 + max(int(np.max(train[1])), int(np.max(test[1])))
    num_coarse = 1 + max(int(np.max(train[2])), int(np.max(test[2])))
    for split, (images, fine, coarse) in (("train", train), ("test", test)):
        images = np.asarray(images, dtype=np.uint8)
        if images.ndim != 4 or images.shape[1:] != (32, 32, 3):
            raise ValueError(f"{split}: images must be (N, 32, 32, 3) uint8, got {images.shape}")
        data = images.transpose(0, 3, 1, 2).reshape(len(images), 3072)  # HWC -> channel-major rows
        _pickle_dump({b"filenames": [f"{split}_{i:06d}.png".encode() for i in range(len(images))],
                      b"batch_label": f"{split} batch (generated)".encode(), b"data": data,
                      b"fine_labels": [int(v) for v in fine], b"coarse_labels": [int(v) for v in coarse]},
                     root / split)
    fine_names = fine_names or [f"class{c}" for c in range(num_fine)]
    coarse_names = coarse_names or [f"super{c}" for c in range(num_coarse)]
    _pickle_dump({b"fine_label_names": [n.encode() for n in fine_names],
                  b"coarse_label_names": [n.encode() for n in coarse_names]}, root / "meta")
    return root


def make_synthetic_cifar(num_classes=10, train_per_class=100, test_per_class=20, seed=0, noise=40.0):
    """Small learnable images: each class owns a smooth, left-right symmetric colour template (so the
    KD recipe's crop and flip keep it recognisable), plus per-pixel Gaussian noise (std `noise` grey levels).

    Class frequencies are balanced, like CIFAR-100. Returns (train, test), each (images, fine, coarse) as
    `write_cifar100` takes them; coarse label = fine // 5 (CIFAR-100 has 5 fine classes per superclass).
    """
    rng = np.random.default_rng(seed)
    coarse_grid = rng.uniform(40, 215, size=(num_classes, 4, 2, 3))          # (C, 4, 2, 3) half-width templates
    grid = np.concatenate([coarse_grid, coarse_grid[:, :, ::-1]], axis=2)     # mirror -> (C, 4, 4, 3)
    templates = grid.repeat(8, axis=1).repeat(8, axis=2)                      # (C, 32, 32, 3) blocky 8x8 cells

    def draw(per_class):
        labels = np.repeat(np.arange(num_classes), per_class)
        rng.shuffle(labels)
        imgs = templates[labels] + rng.normal(0, noise, size=(len(labels), 32, 32, 3))
        return np.clip(imgs, 0, 255).astype(np.uint8), labels.astype(np.int64), labels // 5

    return draw(train_per_class), draw(test_per_class)


def write_synthetic_cifar(root, num_classes=10, train_per_class=100, test_per_class=20, seed=0):
    """Generate `make_synthetic_cifar` data and write it as a `cifar-100-python`-style folder at `root`."""
    train, test = make_synthetic_cifar(num_classes, train_per_class, test_per_class, seed)
    return write_cifar100(root, train, test)

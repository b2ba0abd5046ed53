"""CIFAR-100 and CIFAR-10 in their real on-disk formats: readers, the KD recipe's augmentations, and a small
learnable generator.

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


def _class_names(path, key):
    """The class names listed under `key` in a CIFAR meta pickle (list of str); DataError if absent or empty."""
    obj = _unpickle(path)
    names = obj.get(key)
    if not isinstance(names, (list, tuple)) or not names:
        raise DataError(path, f"meta file lists no class names under {key!r} (keys: {sorted(obj)})", hint=DATA_HINT)
    return [n.decode() if isinstance(n, bytes) else str(n) for n in names]


def _int_labels(path, obj, key, num_classes, n):
    """Labels `obj[key]` as int64 (n,), checked: integers, one per image, each in 0..num_classes-1."""
    if key not in obj:
        raise DataError(path, f"missing key {key!r} (keys: {sorted(obj)})", hint=DATA_HINT)
    raw = obj[key]
    try:
        labels = np.asarray(raw)
    except Exception:  # ragged or otherwise not an array
        raise DataError(path, f"{key!r} is not a list of integer labels") from None
    if labels.ndim != 1 or not (np.issubdtype(labels.dtype, np.integer) or labels.size == 0):
        raise DataError(path, f"{key!r} must be a flat list of integers, found {labels.dtype} {labels.shape}")
    labels = labels.astype(np.int64)
    if len(labels) != n:
        raise DataError(path, f"{n} images but {len(labels)} labels in {key!r}")
    bad = np.flatnonzero((labels < 0) | (labels >= num_classes))
    if len(bad):
        i = int(bad[0])
        raise DataError(path, f"{key!r}[{i}] = {int(labels[i])} is outside the {num_classes} classes "
                        f"0..{num_classes - 1}"
                        f" ({len(bad)} such labels); the labels must match the dataset's class list")
    return labels


def _read_batch(path, label_key, num_classes, extra_labels=(), obj=None):
    """One CIFAR batch pickle, validated against what the format promises; DataError naming `path` otherwise.

    Checks: a dict with b'data' uint8 (N, 3072), N > 0; integer labels, one per image, in range; the optional
    b'filenames' list (when present) has one name per image. Returns (images uint8 (N, 32, 32, 3), labels,
    [labels of each (key, num_classes) in `extra_labels`]). `obj`: the file's already unpickled dict.
    """
    obj = _unpickle(path) if obj is None else obj
    if b"data" not in obj:
        raise DataError(path, f"missing key {b'data'!r} (keys: {sorted(obj)})", hint=DATA_HINT)
    data = obj[b"data"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        desc = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise DataError(path, f"b'data' must be uint8 (N, 3072), found {desc}")
    if len(data) == 0:
        raise DataError(path, "no images (b'data' has 0 rows)")
    labels = _int_labels(path, obj, label_key, num_classes, len(data))
    extra = [_int_labels(path, obj, key, k, len(data)) for key, k in extra_labels]
    names = obj.get(b"filenames")
    if names is not None and len(names) != len(data):
        raise DataError(path, f"{len(data)} images but {len(names)} b'filenames'")
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)  # (N, 3, 32, 32) CHW -> (N, 32, 32, 3) HWC
    return np.ascontiguousarray(images), labels, extra


def cifar100_num_classes(root):
    """(fine, coarse) class counts: from `<root>/meta` when it exists, else the format's 100 and 20."""
    meta = Path(root) / "meta"
    if not meta.exists():
        return 100, 20
    return len(_class_names(meta, b"fine_label_names")), len(_class_names(meta, b"coarse_label_names"))


def read_cifar100_split(root, split):
    """Read `<root>/train` or `<root>/test` (root = the `cifar-100-python` folder).

    Returns (images uint8 (N, 32, 32, 3) HWC, fine_labels int64 (N,), coarse_labels int64 (N,)).
    Labels are checked against the class lists of `<root>/meta` (100 fine / 20 coarse without it): a label
    outside them is a DataError naming the file, found before any training (see `_read_batch` for the rest).
    Files without b'coarse_labels' get coarse label 0.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    num_fine, num_coarse = cifar100_num_classes(root)
    path = Path(root) / split
    obj = _unpickle(path)
    extra = ((b"coarse_labels", num_coarse),) if b"coarse_labels" in obj else ()
    images, fine, coarse = _read_batch(path, b"fine_labels", num_fine, extra, obj=obj)
    return images, fine, coarse[0] if coarse else np.zeros(len(fine), np.int64)


def read_cifar100_meta(root):
    """Fine and coarse class names from `<root>/meta` (lists of str)."""
    obj = _unpickle(Path(root) / "meta")
    decode = lambda names: [n.decode() if isinstance(n, bytes) else str(n) for n in names]  # noqa: E731
    return decode(obj.get(b"fine_label_names", [])), decode(obj.get(b"coarse_label_names", []))


# ---- CIFAR-10 ---------------------------------------------------------------------------------------------
# https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz unpacks to cifar-10-batches-py/ with
#   data_batch_1 .. data_batch_5   pickles of dicts: b'data' uint8 (10000, 3072), b'labels', b'filenames',
#                                  b'batch_label'
#   test_batch                     the same, 10000 test images
#   batches.meta                   b'label_names' (10 names), b'num_cases_per_batch', b'num_vis'
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)   # per-channel statistics of the 50000 training images
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
CIFAR10_HINT = ("download https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz and unpack it with "
                "`tar xzf cifar-10-python.tar.gz -C $DATA_ROOT` (or torchvision.datasets.CIFAR10(root, download=True))")
CIFAR10_TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))


def cifar10_num_classes(root):
    """Class count from `<root>/batches.meta` when it exists, else the format's 10."""
    meta = Path(root) / "batches.meta"
    return len(_class_names(meta, b"label_names")) if meta.exists() else 10


def read_cifar10_split(root, split):
    """Read the five `data_batch_*` files (train) or `test_batch` (test) of a `cifar-10-batches-py` folder.

    Returns (images uint8 (N, 32, 32, 3) HWC, labels int64 (N,)). Every batch is validated like the CIFAR-100
    files (labels within `batches.meta`'s class list); a missing batch is a DataError naming it.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    num_classes = cifar10_num_classes(root)
    files = CIFAR10_TRAIN_FILES if split == "train" else ("test_batch",)
    images, labels = [], []
    for name in files:
        path = Path(root) / name
        if not path.is_file():
            raise DataError(path, "CIFAR-10 batch file not found", hint=CIFAR10_HINT)
        x, y, _ = _read_batch(path, b"labels", num_classes)
        images.append(x)
        labels.append(y)
    return np.concatenate(images), np.concatenate(labels)


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
    predictions need it). `num_classes` is the length of the meta file's class list (100 without one).
    """

    def __init__(self, root, split="train", transform=None):
        self.root, self.split = Path(root), split
        self.images, self.labels, self.coarse_labels = read_cifar100_split(root, split)
        self.images_chw = torch.from_numpy(self.images).permute(0, 3, 1, 2)  # (N, 3, 32, 32) uint8 view
        self.transform = transform
        self.num_classes = cifar100_num_classes(root)[0]

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        img = self.images_chw[i]
        if self.transform is not None:
            img = self.transform(img)
        return img, int(self.labels[i]), i


class CIFAR10(CIFAR100):
    """One split of a `cifar-10-batches-py` folder; items are (image (3, 32, 32) float, label, index)."""

    def __init__(self, root, split="train", transform=None):
        self.root, self.split = Path(root), split
        self.images, self.labels = read_cifar10_split(root, split)
        self.coarse_labels = None
        self.images_chw = torch.from_numpy(self.images).permute(0, 3, 1, 2)  # (N, 3, 32, 32) uint8 view
        self.transform = transform
        self.num_classes = cifar10_num_classes(root)


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


def write_cifar10(root, train, test, label_names=None):
    """Write `train`/`test` = (images uint8 (N, 32, 32, 3), labels (N,)) as a `cifar-10-batches-py` folder:
    the training images split over the five `data_batch_*` files in order, `test_batch`, `batches.meta`."""
    root = Path(root)
    num_classes = 1 + max(int(np.max(train[1])), int(np.max(test[1])))
    chunks = np.array_split(np.arange(len(train[1])), len(CIFAR10_TRAIN_FILES))
    parts = [(name, (train[0][idx], train[1][idx])) for name, idx in zip(CIFAR10_TRAIN_FILES, chunks, strict=True)]
    for name, (images, labels) in parts + [("test_batch", test)]:
        images = np.asarray(images, dtype=np.uint8)
        if images.ndim != 4 or images.shape[1:] != (32, 32, 3):
            raise ValueError(f"{name}: images must be (N, 32, 32, 3) uint8, got {images.shape}")
        _pickle_dump({b"batch_label": f"{name} (generated)".encode(),
                      b"labels": [int(v) for v in labels],
                      b"data": images.transpose(0, 3, 1, 2).reshape(len(images), 3072),
                      b"filenames": [f"{name}_{i:05d}.png".encode() for i in range(len(images))]}, root / name)
    names = label_names or [f"class{c}" for c in range(num_classes)]
    _pickle_dump({b"label_names": [n.encode() for n in names], b"num_cases_per_batch": len(chunks[0]),
                  b"num_vis": 3072}, root / "batches.meta")
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

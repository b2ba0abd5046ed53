"""Bad-input suite for the CIFAR readers (`common.data.cifar`: CIFAR-100 `cifar-100-python/` and CIFAR-10
`cifar-10-batches-py/` pickles).

Each case writes a small valid folder with the real writer, corrupts one pickle (generated here, in the
official layout: a Python-2-style dict with bytes keys), reads it back through the real reader, and expects a
`DataError` whose message names the corrupt file. Part of the table-driven bad-input suites
(`tests/test_bad_input_<format>.py`): a new check in the CIFAR reader adds a row here.
"""
import pickle

import numpy as np
import pytest

from common.data.cifar import CIFAR10, CIFAR100, read_cifar10_split, read_cifar100_split, write_cifar10, write_cifar100
from common.errors import DataError


def split_of(n, seed, num_classes=100):
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), np.arange(n) % num_classes, np.arange(n) % 20)


def load(path):
    with open(path, "rb") as f:
        return pickle.load(f, encoding="bytes")


def dump(obj, path):
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)


def edit(name, change):
    """A corruption: unpickle `name`, apply `change(dict)`, pickle it back."""
    def corrupt(root):
        obj = load(root / name)
        change(obj)
        dump(obj, root / name)
    return corrupt


def set_item(key, index, value):
    def change(obj):
        obj[key] = list(obj[key])
        obj[key][index] = value
    return change


def truncate(name):
    def corrupt(root):
        (root / name).write_bytes((root / name).read_bytes()[:200])
    return corrupt


def replace_file(name, obj):
    return lambda root: dump(obj, root / name)


CIFAR100_CASES = {  # id: (corruption, file named in the error, words the message must contain)
    "fine label 150 (100 classes)": (edit("train", set_item(b"fine_labels", 3, 150)), "train", "150"),
    "negative fine label": (edit("test", set_item(b"fine_labels", 0, -1)), "test", "-1"),
    "coarse label 20 (20 superclasses)": (edit("train", set_item(b"coarse_labels", 1, 20)), "train", "20"),
    "label beyond the meta class list": (edit("meta", lambda o: o.update({b"fine_label_names": [b"a", b"b"]})),
                                         "train", "outside the 2 classes"),
    "empty split (0 images)": (edit("test", lambda o: o.update({b"data": np.zeros((0, 3072), np.uint8),
                                                                 b"fine_labels": [], b"coarse_labels": [],
                                                                 b"filenames": []})), "test", "no images"),
    "fewer labels than images": (edit("train", lambda o: o.update({b"fine_labels": o[b"fine_labels"][:-1]})),
                                 "train", "labels"),
    "fewer coarse labels than images": (edit("train", lambda o: o.update({b"coarse_labels": o[b"coarse_labels"][:2]})),
                                        "train", "coarse_labels"),
    "fewer file names than images": (edit("test", lambda o: o.update({b"filenames": o[b"filenames"][:1]})),
                                     "test", "filenames"),
    "rows of 1024 values (grey images)": (edit("train", lambda o: o.update({b"data": o[b"data"][:, :1024]})),
                                          "train", "(N, 3072)"),
    "float pixels": (edit("train", lambda o: o.update({b"data": o[b"data"].astype(np.float32)})), "train", "uint8"),
    "non-integer labels": (edit("train", set_item(b"fine_labels", 0, 2.5)), "train", "integers"),
    "string labels": (edit("test", lambda o: o.update({b"fine_labels": [str(v) for v in o[b"fine_labels"]]})),
                      "test", "integers"),
    "missing b'data'": (edit("train", lambda o: o.pop(b"data")), "train", "b'data'"),
    "missing b'fine_labels'": (edit("test", lambda o: o.pop(b"fine_labels")), "test", "fine_labels"),
    "a list instead of a dict": (replace_file("train", [1, 2, 3]), "train", "dict"),
    "truncated download": (truncate("train"), "train", "not a readable"),
    "meta without class names": (edit("meta", lambda o: o.update({b"fine_label_names": []})), "meta", "class names"),
    "missing test file": (lambda root: (root / "test").unlink(), "test", "not found"),
}


@pytest.mark.parametrize("case", list(CIFAR100_CASES))
def test_corrupt_cifar100_names_the_file(tmp_path, case):
    corrupt, bad_file, words = CIFAR100_CASES[case]
    write_cifar100(tmp_path, split_of(6, 0), split_of(4, 1))
    corrupt(tmp_path)
    split = "test" if bad_file == "test" else "train"
    with pytest.raises(DataError) as e:
        CIFAR100(tmp_path, split)
    assert str(tmp_path / bad_file) in str(e.value) and e.value.path == str(tmp_path / bad_file), str(e.value)
    assert words in str(e.value), str(e.value)


CIFAR10_CASES = {
    "label 10 (10 classes)": (edit("data_batch_2", set_item(b"labels", 0, 10)), "data_batch_2", "10"),
    "negative label": (edit("test_batch", set_item(b"labels", 1, -3)), "test_batch", "-3"),
    "missing data_batch_4": (lambda root: (root / "data_batch_4").unlink(), "data_batch_4", "not found"),
    "empty batch": (edit("data_batch_5", lambda o: o.update({b"data": np.zeros((0, 3072), np.uint8),
                                                             b"labels": [], b"filenames": []})),
                    "data_batch_5", "no images"),
    "more labels than images": (edit("data_batch_1", lambda o: o.update({b"labels": o[b"labels"] + [0]})),
                                "data_batch_1", "labels"),
    "CIFAR-100 keys in a CIFAR-10 batch": (edit("data_batch_3", lambda o: o.update({b"fine_labels": o.pop(b"labels")})),
                                           "data_batch_3", "b'labels'"),
    "truncated test batch": (truncate("test_batch"), "test_batch", "not a readable"),
    "label beyond batches.meta": (edit("batches.meta", lambda o: o.update({b"label_names": [b"a", b"b", b"c"]})),
                                  "data_batch_1", "outside the 3 classes"),
}


@pytest.mark.parametrize("case", list(CIFAR10_CASES))
def test_corrupt_cifar10_names_the_file(tmp_path, case):
    corrupt, bad_file, words = CIFAR10_CASES[case]
    train, test = split_of(20, 0, num_classes=10), split_of(6, 1, num_classes=10)
    write_cifar10(tmp_path, train[:2], test[:2])
    corrupt(tmp_path)
    with pytest.raises(DataError) as e:
        CIFAR10(tmp_path, "test" if bad_file == "test_batch" else "train")
    assert e.value.path == str(tmp_path / bad_file) and str(tmp_path / bad_file) in str(e.value), str(e.value)
    assert words in str(e.value), str(e.value)


def test_the_valid_folders_read(tmp_path):
    """The control of every case above: the uncorrupted folders are read without error."""
    write_cifar100(tmp_path / "c100", split_of(6, 0), split_of(4, 1))
    assert len(read_cifar100_split(tmp_path / "c100", "train")[1]) == 6
    train, test = split_of(20, 0, num_classes=10), split_of(6, 1, num_classes=10)
    write_cifar10(tmp_path / "c10", train[:2], test[:2])
    assert len(read_cifar10_split(tmp_path / "c10", "train")[1]) == 20

"""common/data/cifar.py: the CIFAR-100 pickle format, round trip, errors, transforms, generated data."""
import pickle

import numpy as np
import pytest
import torch

from common.data.cifar import (
    CIFAR100,
    CIFAR100_MEAN,
    CIFAR100_STD,
    cifar_test_transform,
    cifar_train_transform,
    make_synthetic_cifar,
    read_cifar100_meta,
    read_cifar100_split,
    write_cifar100,
    write_synthetic_cifar,
)
from common.errors import DataError


def small_split(n, seed):
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), rng.integers(0, 100, n), rng.integers(0, 20, n))


def test_official_layout_is_read_channel_major(tmp_path):
    """A file written by hand the way the official archive is (Python-2 style bytes keys, channel-major rows)."""
    row = np.zeros((1, 3072), np.uint8)
    row[0, 0], row[0, 1024 + 33], row[0, 2048 + 1023] = 10, 20, 30  # R(0,0), G(1,1), B(31,31)
    for split in ("train", "test"):
        with open(tmp_path / split, "wb") as f:
            pickle.dump({b"data": row, b"fine_labels": [7], b"coarse_labels": [3], b"filenames": [b"x.png"],
                         b"batch_label": b"b"}, f, protocol=2)
    images, fine, coarse = read_cifar100_split(tmp_path, "train")
    assert images.shape == (1, 32, 32, 3) and images.dtype == np.uint8
    assert images[0, 0, 0, 0] == 10 and images[0, 1, 1, 1] == 20 and images[0, 31, 31, 2] == 30
    assert images.sum() == 60 and fine.tolist() == [7] and coarse.tolist() == [3]


def test_write_then_read_round_trip(tmp_path):
    train, test = small_split(12, 0), small_split(5, 1)
    write_cifar100(tmp_path, train, test, fine_names=[f"f{i}" for i in range(100)])
    for split, ref in (("train", train), ("test", test)):
        images, fine, coarse = read_cifar100_split(tmp_path, split)
        np.testing.assert_array_equal(images, ref[0])
        np.testing.assert_array_equal(fine, ref[1])
        np.testing.assert_array_equal(coarse, ref[2])
    fine_names, coarse_names = read_cifar100_meta(tmp_path)
    assert fine_names[:2] == ["f0", "f1"] and len(coarse_names) == 1 + max(train[2].max(), test[2].max())


def test_missing_dataset_names_path_and_source(tmp_path):
    with pytest.raises(DataError) as e:
        read_cifar100_split(tmp_path / "cifar-100-python", "train")
    assert str(tmp_path / "cifar-100-python" / "train") in str(e.value)
    assert "cifar-100-python.tar.gz" in str(e.value)


def test_corrupt_pickle_names_the_file(tmp_path):
    write_cifar100(tmp_path, small_split(4, 0), small_split(4, 1))
    (tmp_path / "train").write_bytes((tmp_path / "train").read_bytes()[:100])  # truncated download
    with pytest.raises(DataError, match="not a readable CIFAR pickle") as e:
        read_cifar100_split(tmp_path, "train")
    assert e.value.path == str(tmp_path / "train")


def test_wrong_content_is_a_data_error(tmp_path):
    with open(tmp_path / "test", "wb") as f:
        pickle.dump({b"data": np.zeros((2, 100), np.uint8), b"fine_labels": [0, 1]}, f)
    with pytest.raises(DataError, match=r"\(N, 3072\)"):
        read_cifar100_split(tmp_path, "test")
    with open(tmp_path / "train", "wb") as f:
        pickle.dump([1, 2, 3], f)
    with pytest.raises(DataError, match="pickled dict"):
        read_cifar100_split(tmp_path, "train")
    with pytest.raises(ValueError):
        read_cifar100_split(tmp_path, "val")


def test_dataset_items_and_transforms(tmp_path):
    write_cifar100(tmp_path, small_split(6, 0), small_split(3, 1))
    plain = CIFAR100(tmp_path, "test", cifar_test_transform())
    x, y, i = plain[2]
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32 and i == 2 and y == int(plain.labels[2])
    raw = torch.from_numpy(plain.images[2]).permute(2, 0, 1).float() / 255
    expected = (raw - torch.tensor(CIFAR100_MEAN)[:, None, None]) / torch.tensor(CIFAR100_STD)[:, None, None]
    torch.testing.assert_close(x, expected)
    torch.manual_seed(0)
    augmented = CIFAR100(tmp_path, "train", cifar_train_transform())
    views = torch.stack([augmented[0][0] for _ in range(8)])
    assert views.shape == (8, 3, 32, 32) and not all(torch.equal(views[0], v) for v in views[1:])
    # padding is zero before normalisation: some views contain the normalised value of black pixels
    black = (-torch.tensor(CIFAR100_MEAN) / torch.tensor(CIFAR100_STD))[:, None, None]
    assert (views == black).all(1).any()


def test_generated_data_is_learnable_and_balanced(tmp_path):
    (train_x, train_y, _), (test_x, test_y, _) = make_synthetic_cifar(num_classes=5, train_per_class=20,
                                                                      test_per_class=10, seed=0)
    assert np.bincount(train_y).tolist() == [20] * 5
    # nearest class mean on raw pixels: the planted templates make this easy, chance is 0.2
    means = np.stack([train_x[train_y == c].reshape(-1, 3072).mean(0) for c in range(5)])
    dist = ((test_x.reshape(-1, 1, 3072).astype(np.float64) - means[None]) ** 2).sum(-1)
    assert (dist.argmin(1) == test_y).mean() > 0.9
    # flipped images keep the class (the templates are left-right symmetric), as the flip augmentation needs
    flipped = test_x[:, :, ::-1].reshape(-1, 1, 3072).astype(np.float64)
    assert (((flipped - means[None]) ** 2).sum(-1).argmin(1) == test_y).mean() > 0.9
    root = write_synthetic_cifar(tmp_path / "syn", num_classes=5, train_per_class=4, test_per_class=2)
    assert len(CIFAR100(root, "train")) == 20 and CIFAR100(root, "test").num_classes == 5


def test_cifar10_official_layout_and_round_trip(tmp_path):
    """cifar-10-batches-py as the official archive has it: five data_batch_* files, test_batch, batches.meta."""
    from common.data.cifar import CIFAR10, read_cifar10_split, write_cifar10

    rng = np.random.default_rng(0)
    for i, name in enumerate([f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]):
        row = np.zeros((1, 3072), np.uint8)
        row[0, 1024 + 32 * 2 + 5] = i + 1  # G at (2, 5): tells the batches apart and checks channel-major order
        with open(tmp_path / name, "wb") as f:
            pickle.dump({b"batch_label": b"x", b"labels": [i], b"data": row, b"filenames": [b"a.png"]}, f, protocol=2)
    with open(tmp_path / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": [f"c{i}".encode() for i in range(10)], b"num_cases_per_batch": 1,
                     b"num_vis": 3072}, f, protocol=2)
    images, labels = read_cifar10_split(tmp_path, "train")
    assert images.shape == (5, 32, 32, 3) and labels.tolist() == [0, 1, 2, 3, 4]   # batches 1..5 in order
    assert images[:, 2, 5, 1].tolist() == [1, 2, 3, 4, 5] and images.sum() == 15
    test = CIFAR10(tmp_path, "test", cifar_test_transform())
    assert len(test) == 1 and test.labels.tolist() == [5] and test.num_classes == 10
    # round trip through the writer, 23 training images spread over the five batches
    train = (rng.integers(0, 256, (23, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, 23))
    test = (rng.integers(0, 256, (4, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, 4))
    write_cifar10(tmp_path / "w", train, test)
    for split, ref in (("train", train), ("test", test)):
        images, labels = read_cifar10_split(tmp_path / "w", split)
        np.testing.assert_array_equal(images, ref[0])
        np.testing.assert_array_equal(labels, ref[1])


def test_label_out_of_range_is_found_before_training(tmp_path):
    """A CIFAR-100 label of 150 used to make a 151-class model and train on (issue 12); now the reader stops."""
    train, test = small_split(6, 0), small_split(3, 1)
    train[1][2] = 150
    write_cifar100(tmp_path, train, test, fine_names=[f"f{i}" for i in range(100)])
    with pytest.raises(DataError, match="150 is outside the 100 classes") as e:
        CIFAR100(tmp_path, "train")
    assert e.value.path == str(tmp_path / "train")


def test_class_counts_come_from_the_meta_files(tmp_path):
    from common.data.cifar import cifar10_num_classes, cifar100_num_classes, write_cifar10

    assert cifar100_num_classes(tmp_path) == (100, 20) and cifar10_num_classes(tmp_path) == 10   # no meta: the format's
    write_cifar100(tmp_path / "c100", small_split(4, 0), small_split(2, 1), fine_names=[f"f{i}" for i in range(100)])
    assert cifar100_num_classes(tmp_path / "c100")[0] == 100
    write_cifar10(tmp_path / "c10", (small_split(5, 0)[0], np.arange(5) % 3), (small_split(2, 1)[0], np.array([0, 1])))
    assert cifar10_num_classes(tmp_path / "c10") == 3

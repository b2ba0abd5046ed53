"""Bad-input suite for the ImageFolder reader (`common.data.imagefolder.image_folder`).

Each case takes a freshly generated valid tree (`write_synthetic_image_folder`), corrupts one thing, and reads
every sample of a split through the real reader, which must stop with a `DataError` naming the file or folder.
Part of the table-driven bad-input suites (`tests/test_bad_input_<format>.py`): a new reader must join them with
a table of its own (at least 8 cases), and a new check in a reader adds a row here.
"""
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from common.data.imagefolder import image_folder, load_rgb, write_synthetic_image_folder
from common.errors import DataError

IMG = "train/n00000001/img0.png"


@pytest.fixture(scope="module")
def valid_root(tmp_path_factory):
    return write_synthetic_image_folder(tmp_path_factory.mktemp("if_valid") / "imagenet", num_classes=3,
                                        per_class=(2, 2), size=8)


def rename(rel, new):
    return lambda root: (root / rel).rename(root / new)


def write(rel, data):
    def corrupt(root):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data if isinstance(data, bytes) else data.encode())
    return corrupt


def truncated_jpeg(rel):
    def corrupt(root):
        Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(root / rel)
        data = (root / rel).read_bytes()
        (root / rel).write_bytes(data[: len(data) // 2])
    return corrupt


def extra_class(root):
    shutil.copytree(root / "val" / "n00000000", root / "val" / "n00000099")


def remove(rel):
    return lambda root: shutil.rmtree(root / rel)


def empty_folders(split):
    def corrupt(root):
        for f in (root / split).glob("*/*"):
            f.unlink()
    return corrupt


def loose_images(root):
    for d in (root / "train").iterdir():
        for f in d.iterdir():
            f.rename(root / "train" / f"{d.name}_{f.name}")
        d.rmdir()


# (case, corrupt(root), split read, path named in the error (relative to root), message fragment)
CASES = [
    ("val_class_renamed", rename("val/n00000002", "val/n0000000x"), "val", "val/n0000000x",
     "is not one of the 3 training classes"),
    ("val_extra_class", extra_class, "val", "val/n00000099", "is not one of the 3 training classes"),
    ("empty_image_file", write(IMG, b""), "train", IMG, "not a readable image file"),
    ("text_file_named_png", write(IMG, "not an image"), "train", IMG, "not a readable image file"),
    ("truncated_png", lambda root: (root / IMG).write_bytes((root / IMG).read_bytes()[:60]), "train", IMG,
     "not a readable image file"),
    ("truncated_jpeg", truncated_jpeg("val/n00000001/img9.jpg"), "val", "val/n00000001/img9.jpg",
     "not a readable image file"),
    ("train_split_missing", remove("train"), "train", "train", "split not found"),
    ("val_split_missing", remove("val"), "val", "val", "split not found"),
    ("train_class_without_images", empty_folders("train"), "train", "train", "not a readable ImageFolder tree"),
    ("val_without_images", empty_folders("val"), "val", "val", "no images in the class folders"),
    ("train_without_class_folders", loose_images, "train", "train", "not a readable ImageFolder tree"),
]


def test_val_missing_a_class_keeps_the_train_labels(valid_root, tmp_path):
    """The silent-wrong case of issue 12: labels are mapped by class name, not by folder position."""
    root = shutil.copytree(valid_root, tmp_path / "imagenet")
    shutil.rmtree(root / "val" / "n00000000")
    val = image_folder(root, "val")
    assert val.classes == image_folder(root, "train").classes and val.num_classes == 3
    assert val.labels.tolist() == [1, 1, 2, 2]
    assert image_folder(root, "val", class_names=None).labels.tolist() == [0, 0, 1, 1]  # torchvision's own order


@pytest.mark.parametrize("corrupt, split, rel, fragment", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_a_data_error_naming_the_file(valid_root, tmp_path, corrupt, split, rel, fragment):
    root = shutil.copytree(valid_root, tmp_path / "imagenet")
    corrupt(root)
    with pytest.raises(DataError) as e:
        ds = image_folder(root, split)
        for i in range(len(ds)):
            ds[i]
    assert e.value.path == str(root / rel), str(e.value)
    assert fragment in str(e.value)


def test_load_rgb_reads_a_valid_file(valid_root):
    assert load_rgb(valid_root / IMG).size == (8, 8)


def test_a_data_error_in_a_dataloader_worker_stays_a_data_error(valid_root, tmp_path):
    """torch re-raises a worker's exception as `type(msg)`; DataError must survive that (ImageNet runs use workers)."""
    import torch

    root = shutil.copytree(valid_root, tmp_path / "imagenet")
    (root / IMG).write_bytes(b"")
    loader = torch.utils.data.DataLoader(image_folder(root, "train"), batch_size=None, num_workers=1)
    with pytest.raises(DataError) as e:
        list(loader)
    assert e.value.path == str(root / IMG) and "not a readable image file" in str(e.value)
    assert str(e.value).endswith("(raised in a DataLoader worker)")


def run_train(method_dir, cwd, *args):
    """The method's real train.sh in a subprocess (one thread) -> CompletedProcess."""
    repo = Path(__file__).resolve().parent.parent
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    return subprocess.run(["bash", str(repo / method_dir / "train.sh"), "--config", "configs/smoke.yaml", *args],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_ipwd_train_stops_on_val_classes_that_differ_from_train(valid_root, tmp_path):
    """Issue 12: val/ class folders that differ from train/ shifted every label (top-1 0.0, exit 0)."""
    root = shutil.copytree(valid_root, tmp_path / "imagenet")
    (root / "val" / "n00000002").rename(root / "val" / "n0000000x")
    out = run_train("distillation/ipwd", tmp_path, "--dataset", "imagenet", "--data_root", "imagenet",
                    "--out_dir", "run")
    assert out.returncode == 2, out.stderr[-2000:]
    assert "error: imagenet/val/n0000000x: class folder 'n0000000x' is not one of the 3 training classes" \
        in out.stderr
    assert not (tmp_path / "run" / "metrics.json").exists()

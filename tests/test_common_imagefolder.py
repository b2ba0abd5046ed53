"""common/data/imagefolder.py: ImageNet-style ImageFolder trees, transforms and errors."""
import pytest
import torch
from PIL import Image

from common.data.imagefolder import (
    ImageFolderWithIndex,
    image_folder,
    imagenet_train_transform,
    imagenet_val_transform,
    write_synthetic_image_folder,
)
from common.errors import DataError


def test_generated_tree_reads_back_with_index_and_labels(tmp_path):
    root = write_synthetic_image_folder(tmp_path / "imagenet", num_classes=3, per_class=(4, 2), size=40)
    train = image_folder(root, "train", imagenet_train_transform(size=32))
    val = image_folder(root, "val", imagenet_val_transform(resize=36, size=32))
    assert isinstance(train, ImageFolderWithIndex) and train.num_classes == val.num_classes == 3
    assert len(train) == 12 and len(val) == 6 and train.classes == val.classes
    x, y, i = val[5]
    assert x.shape == (3, 32, 32) and y == 2 and i == 5 and val.labels.tolist() == [0, 0, 1, 1, 2, 2]


def test_standard_transforms_shapes():
    img = Image.new("RGB", (300, 280), (128, 64, 32))
    assert imagenet_train_transform()(img).shape == (3, 224, 224)
    out = imagenet_val_transform()(img)
    assert out.shape == (3, 224, 224)
    torch.testing.assert_close(out[0, 0, 0], torch.tensor((128 / 255 - 0.485) / 0.229))


def test_missing_or_empty_split_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="image-net.org") as e:
        image_folder(tmp_path, "train")
    assert str(tmp_path / "train") in str(e.value)
    (tmp_path / "val" / "n01").mkdir(parents=True)  # a class folder without images
    with pytest.raises(DataError, match="not a readable ImageFolder"):
        image_folder(tmp_path, "val")

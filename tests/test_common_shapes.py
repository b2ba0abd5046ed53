"""common.data.shapes: the generated COCO export reads back through CocoDetection, with tight boxes, a planted
colour + shape signal, non-contiguous category ids, and byte-identical files for a seed."""
import json

import numpy as np
import pytest

from common.data.coco import CocoDetection
from common.data.shapes import (
    mask_to_coco_box,
    render_shapes_image,
    shapes_category_ids,
    write_shapes_dataset,
)


def test_written_files_read_back_with_tight_boxes(tmp_path):
    paths = write_shapes_dataset(tmp_path / "shapes", num_train=12, num_val=4, seed=3)
    assert paths["train_json"].name == "instances_train.json" and paths["val_json"].name == "instances_val.json"
    ds = CocoDetection(paths["train_json"], paths["image_dir"])
    assert ds.cat_ids == [1, 3, 7] == shapes_category_ids(3) and ds.cat_id_to_label == {1: 0, 3: 1, 7: 2}
    assert ds.class_names == ["square", "disc", "triangle"] and len(ds) == 12
    raw = json.loads(paths["train_json"].read_text())
    for k in range(len(ds)):
        sample = ds[k]
        image, objects = render_shapes_image(np.random.default_rng([3, 0, k]))  # what the writer drew
        assert np.array_equal(sample["image"], image)  # lossless PNG
        assert 1 <= len(objects) <= 3 and len(sample["boxes"]) == len(objects)
        for box, label, ob in zip(sample["boxes"], sample["labels"], objects, strict=True):
            ys, xs = np.nonzero(ob["mask"])
            np.testing.assert_array_equal(box, [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
            assert label == ob["label"]
            short = 96
            assert short / 6 - 1 <= box[2] - box[0] <= short / 2 + 1
    areas = {a["id"]: a["area"] for a in raw["annotations"]}
    assert all(a["iscrowd"] == 0 for a in raw["annotations"]) and len(areas) == ds.num_boxes()
    first = render_shapes_image(np.random.default_rng([3, 0, 0]))[1][0]["mask"]
    assert raw["annotations"][0]["area"] == int(first.sum())  # the drawn pixel count, as COCO's mask area
    val = CocoDetection(paths["val_json"], paths["image_dir"])
    assert val.image_ids == [13, 14, 15, 16] and not set(val.image_ids) & set(ds.image_ids)


def test_same_seed_same_files_other_seed_other_files(tmp_path):
    a = write_shapes_dataset(tmp_path / "a", num_train=4, num_val=2, seed=0)
    write_shapes_dataset(tmp_path / "b", num_train=4, num_val=2, seed=0)
    c = write_shapes_dataset(tmp_path / "c", num_train=4, num_val=2, seed=1)
    files = lambda root: {p.relative_to(root): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}
    assert files(tmp_path / "a") == files(tmp_path / "b")
    assert files(tmp_path / "a") != files(tmp_path / "c")
    assert a["train_json"].read_bytes() != c["train_json"].read_bytes()


def test_planted_signal_colour_separates_the_classes():
    """A nearest-centroid classifier on each object's mean colour is nearly perfect: the data is learnable."""
    feats, labels = [], []
    for k in range(60):
        image, objects = render_shapes_image(np.random.default_rng([0, 0, k]), class_names=("square", "disc",
                                                                                            "triangle", "diamond"))
        for ob in objects:
            feats.append(image[ob["mask"]].mean(0))
            labels.append(ob["label"])
    feats, labels = np.array(feats), np.array(labels)
    assert set(labels.tolist()) == {0, 1, 2, 3}
    centroids = np.stack([feats[labels == c].mean(0) for c in range(4)])
    predicted = np.argmin(((feats[:, None] - centroids[None]) ** 2).sum(-1), 1)
    assert (predicted == labels).mean() > 0.95


def test_shapes_have_their_own_geometry_and_do_not_overlap():
    mask_fill = {}
    for k in range(40):
        image, objects = render_shapes_image(np.random.default_rng([1, 0, k]), image_size=(96, 128), max_objects=3)
        boxes = [mask_to_coco_box(ob["mask"]) for ob in objects]
        for ob, (_, _, w, h) in zip(objects, boxes, strict=True):
            mask_fill.setdefault(ob["label"], []).append(ob["mask"].sum() / (w * h))
        for i in range(len(boxes)):  # bounding squares are kept 2 px apart
            for j in range(i):
                (x1, y1, w1, h1), (x2, y2, w2, h2) = boxes[i], boxes[j]
                assert x1 >= x2 + w2 or x2 >= x1 + w1 or y1 >= y2 + h2 or y2 >= y1 + h1
    fill = {label: float(np.mean(v)) for label, v in mask_fill.items()}
    assert fill[0] == pytest.approx(1.0) and fill[1] == pytest.approx(np.pi / 4, abs=0.05)
    assert fill[2] == pytest.approx(0.5, abs=0.06)
    assert mask_to_coco_box(np.pad(np.ones((2, 3), bool), ((4, 1), (5, 2)))) == [5, 4, 3, 2]
    with pytest.raises(ValueError):
        write_shapes_dataset("/nonexistent", class_names=("hexagon",))

"""common.data.coco: COCO JSON validation, mmdet CocoDataset rules, the SoftTeacher split, unlabeled2017."""
import json

import numpy as np
import pytest
from PIL import Image

from common.data.coco import CocoDetection, load_coco_json, make_semi_split, read_image, unlabeled_json
from common.data.detection_transforms import weak_pipeline
from common.errors import DataError

# categories in file order 5, 2, 9 (not sorted): labels follow file order as mmdet / pycocotools getCatIds
CATEGORIES = [{"id": 5, "name": "cat"}, {"id": 2, "name": "dog"}, {"id": 9, "name": "never-used"}]


def _ann(i, image_id, cat, bbox, area=None, **extra):
    return {"id": i, "image_id": image_id, "category_id": cat, "bbox": bbox,
            "area": bbox[2] * bbox[3] if area is None else area, "iscrowd": 0, **extra}


def write_tiny_coco(root, with_annotations=True):
    """4 images: 10 (40x50, mixed annotations), 20 (40x50, none), 30 (20x60: min side < 32), 40 (64x64, crowd only)."""
    (root / "img").mkdir(parents=True, exist_ok=True)
    images = [{"id": 10, "file_name": "a.png", "height": 40, "width": 50},
              {"id": 20, "file_name": "b.png", "height": 40, "width": 50},
              {"id": 30, "file_name": "c.png", "height": 20, "width": 60},
              {"id": 40, "file_name": "d.png", "height": 64, "width": 64}]
    for k, im in enumerate(images):
        Image.fromarray(np.full((im["height"], im["width"], 3), 10 * k, np.uint8)).save(root / "img" / im["file_name"])
    anns = [
        _ann(1, 10, 5, [1.5, 2.0, 10.0, 20.0], area=150.0),  # kept: label 0 (cat, first in file)
        _ann(2, 10, 2, [40.0, 30.0, 20.0, 20.0]),  # kept although it sticks out of the image (not clipped)
        _ann(3, 10, 2, [5.0, 5.0, 0.5, 10.0]),  # w < 1: dropped
        _ann(4, 10, 5, [5.0, 5.0, 10.0, 10.0], area=0),  # area <= 0: dropped
        _ann(5, 10, 5, [50.0, 5.0, 10.0, 10.0]),  # starts at the right border: no overlap with the image
        _ann(6, 10, 2, [0.0, 0.0, 8.0, 8.0], iscrowd=1),  # crowd -> ignore_boxes
        _ann(7, 10, 2, [3.0, 3.0, 8.0, 8.0], ignore=1),  # 'ignore' flag: skipped
        _ann(8, 30, 5, [1.0, 1.0, 5.0, 5.0]),  # on the too-small image
        _ann(9, 40, 5, [2.0, 3.0, 4.0, 5.0], iscrowd=1),  # crowd only: image kept (mmdet), with no boxes
    ]
    data = {"info": {"year": 2017}, "licenses": [{"id": 1}], "images": images, "categories": CATEGORIES}
    if with_annotations:
        data["annotations"] = anns
    path = root / "instances_tiny.json"
    path.write_text(json.dumps(data))
    return path


def test_coco_detection_applies_mmdet_filters(tmp_path):
    ds = CocoDetection(write_tiny_coco(tmp_path), tmp_path / "img")
    assert ds.cat_ids == [5, 2, 9] and ds.label_to_cat_id == [5, 2, 9]
    assert ds.cat_id_to_label == {5: 0, 2: 1, 9: 2} and ds.class_names == ["cat", "dog", "never-used"]
    assert [c["id"] for c in ds.categories] == [5, 2, 9]
    assert ds.image_ids == [10, 40] and len(ds) == 2  # 20 has no annotation, 30 is smaller than 32 px
    s = ds[0]
    assert s["image"].shape == (40, 50, 3) and s["image"].dtype == np.uint8 and s["ori_shape"] == (40, 50)
    np.testing.assert_array_equal(s["boxes"], np.array([[1.5, 2.0, 11.5, 22.0], [40, 30, 60, 50]], np.float32))
    assert s["boxes"].dtype == np.float32 and s["labels"].dtype == np.int64 and s["labels"].tolist() == [0, 1]
    np.testing.assert_array_equal(s["ignore_boxes"], [[0, 0, 8, 8]])
    assert s["image_id"] == 10 and s["file_name"] == "a.png"
    crowd_only = ds[1]
    assert crowd_only["boxes"].shape == (0, 4) and crowd_only["labels"].shape == (0,)
    np.testing.assert_array_equal(crowd_only["ignore_boxes"], [[2, 3, 6, 8]])
    assert ds.num_boxes() == 2 and ds.target(0)["labels"].tolist() == [0, 1] and ds.images[1]["id"] == 40

    keep_all = CocoDetection(tmp_path / "instances_tiny.json", tmp_path / "img", filter_empty=False)
    assert keep_all.image_ids == [10, 20, 40]
    assert CocoDetection(tmp_path / "instances_tiny.json", tmp_path / "img", min_size=0).image_ids == [10, 30, 40]


def test_unlabelled_file_without_annotations_key(tmp_path):
    path = write_tiny_coco(tmp_path, with_annotations=False)
    assert load_coco_json(path)["annotations"] == []
    ds = CocoDetection(path, tmp_path / "img", filter_empty=False)
    assert ds.image_ids == [10, 20, 40] and ds[1]["boxes"].shape == (0, 4)
    assert CocoDetection(path, tmp_path / "img").image_ids == []  # filter_empty drops every image


def test_transform_gets_a_rng_keyed_by_seed_nonce_and_index(tmp_path):
    path = write_tiny_coco(tmp_path)
    draw = lambda sample, rng: (sample["image_id"], rng.integers(1 << 30))
    ds = CocoDetection(path, tmp_path / "img", transform=draw, seed=3)
    assert ds[1] == (40, np.random.default_rng([3, 0, 1]).integers(1 << 30))
    assert ds[(1, 0)] == ds[1] and ds[(1, 7)] == (40, np.random.default_rng([3, 7, 1]).integers(1 << 30))
    assert ds[(1, 7)] != ds[(1, 8)] and ds[(0, 7)] != ds[(1, 7)]
    other_seed = CocoDetection(path, tmp_path / "img", transform=draw, seed=4)
    assert other_seed[1] != ds[1]
    # a real pipeline: the same key gives the same view
    ds = CocoDetection(path, tmp_path / "img", transform=weak_pipeline((40, 80), 100), seed=0)
    a, b = ds[(0, 5)], ds[(0, 5)]
    assert np.array_equal(a["image"], b["image"]) and np.array_equal(a["matrix"], b["matrix"])


def test_missing_and_malformed_files_are_data_errors(tmp_path):
    with pytest.raises(DataError, match="cocodataset.org") as e:
        load_coco_json(tmp_path / "instances_train2017.json")
    assert "instances_train2017.json" in str(e.value) and "make_semi_split" in str(e.value)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(DataError, match="bad.json"):
        load_coco_json(bad)
    good = json.loads(write_tiny_coco(tmp_path).read_text())
    cases = [
        (lambda d: d.pop("categories"), "'categories'"),
        (lambda d: d["annotations"][3].update(bbox=[1, 2, 3]), r"annotations\[3\].*bbox"),
        (lambda d: d["annotations"][1].update(category_id=77), r"annotations\[1\].*category_id"),
        (lambda d: d["annotations"][0].update(image_id=99), r"annotations\[0\].*image_id"),
        (lambda d: d["annotations"][2].pop("area"), r"annotations\[2\].*area"),
        (lambda d: d["images"][1].update(width="50"), r"images\[1\]"),
        (lambda d: d["images"].append(dict(d["images"][0])), "duplicate image id 10"),
    ]
    for k, (corrupt, message) in enumerate(cases):
        data = json.loads(json.dumps(good))
        corrupt(data)
        path = tmp_path / f"corrupt{k}.json"
        path.write_text(json.dumps(data))
        with pytest.raises(DataError, match=message) as e:
            load_coco_json(path)
        assert f"corrupt{k}.json" in str(e.value)


def test_missing_image_is_a_data_error(tmp_path):
    ds = CocoDetection(write_tiny_coco(tmp_path), tmp_path / "img")
    (tmp_path / "img" / "d.png").unlink()
    with pytest.raises(DataError, match="d.png"):
        ds[1]
    (tmp_path / "img" / "a.png").write_bytes(b"not an image")
    with pytest.raises(DataError, match="a.png"):
        read_image(tmp_path / "img" / "a.png")


def official_semi_split(anno, seed, percent, seed_offset=0):
    """tools/dataset/semi_coco.py's prepare_coco_data, restated on a loaded dict (global np.random as there)."""
    np.random.seed(seed + seed_offset)
    image_list = anno["images"]
    labeled_tot = int(percent / 100.0 * len(image_list))
    labeled_ind = set(np.random.choice(range(len(image_list)), size=labeled_tot, replace=False))
    labeled_images = [im for i, im in enumerate(image_list) if i in labeled_ind]
    unlabeled_images = [im for i, im in enumerate(image_list) if i not in labeled_ind]
    labeled_id = {im["id"] for im in labeled_images}
    out = []
    for images, keep in ((labeled_images, True), (unlabeled_images, False)):
        anns = [a for a in anno["annotations"] if (a["image_id"] in labeled_id) == keep]
        out.append(json.dumps({"images": images, "annotations": anns, "licenses": anno["licenses"],
                               "categories": anno["categories"], "info": anno["info"]}))
    return out


def write_split_source(path, num_images=40):
    images = [{"id": 1000 + 3 * k, "file_name": f"{k:012d}.jpg", "height": 480, "width": 640}
              for k in range(num_images)]
    anns = [_ann(k + 1, images[k % num_images]["id"], 1 + k % 2, [k, k, 10.5, 20.25]) for k in range(90)]
    path.write_text(json.dumps({"info": {"v": 1}, "licenses": [], "images": images, "annotations": anns,
                                "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]}))
    return path


def test_make_semi_split_matches_the_official_tool_byte_for_byte(tmp_path):
    src = write_split_source(tmp_path / "instances_train2017.json")
    paths = make_semi_split(src, percent=10, fold=1, out_dir=tmp_path / "semi")
    assert paths["labeled"].name == "instances_train2017.1@10.json"
    assert paths["unlabeled"].name == "instances_train2017.1@10-unlabeled.json"
    assert paths["ids"].name == "instances_train2017.1@10.ids.txt"
    labeled_text, unlabeled_text = official_semi_split(json.loads(src.read_text()), seed=1, percent=10.0)
    assert paths["labeled"].read_text() == labeled_text and paths["unlabeled"].read_text() == unlabeled_text
    labeled, unlabeled = load_coco_json(paths["labeled"]), load_coco_json(paths["unlabeled"])
    assert len(labeled["images"]) == 4 and len(unlabeled["images"]) == 36  # int(10 / 100 * 40), no replacement
    ids = [int(x) for x in paths["ids"].read_text().split()]
    assert ids == [im["id"] for im in labeled["images"]] and len(set(ids)) == 4
    assert len(labeled["annotations"]) + len(unlabeled["annotations"]) == 90  # unlabelled keeps its annotations
    assert {a["image_id"] for a in labeled["annotations"]} <= set(ids)

    before = {k: p.read_bytes() for k, p in paths.items()}
    again = make_semi_split(src, percent=10, fold=1, out_dir=tmp_path / "semi")
    assert {k: p.read_bytes() for k, p in again.items()} == before
    other = make_semi_split(src, percent=10, fold=2, out_dir=tmp_path / "semi")
    assert other["ids"].read_text() != before["ids"].decode()
    offset = make_semi_split(src, percent=10, fold=1, out_dir=tmp_path / "offset", seed_offset=1)
    assert offset["labeled"].read_bytes() == other["labeled"].read_bytes()  # the seed is fold + offset


def test_make_semi_split_fractional_percent_and_bad_percent(tmp_path):
    src = write_split_source(tmp_path / "instances_train2017.json")
    paths = make_semi_split(src, percent=2.5, fold=1, out_dir=tmp_path)
    assert paths["labeled"].name == "instances_train2017.1@2.5.json"  # the official int(2.5) would say '@2'
    assert len(load_coco_json(paths["labeled"])["images"]) == 1
    assert make_semi_split(src, percent=5.0, fold=1, out_dir=tmp_path)["labeled"].name.endswith("1@5.json")
    with pytest.raises(ValueError):
        make_semi_split(src, percent=1, fold=1, out_dir=tmp_path)  # 1% of 40 images is none
    with pytest.raises(ValueError):
        make_semi_split(src, percent=150, fold=1, out_dir=tmp_path)


def test_unlabeled_json_adds_empty_annotations_and_categories(tmp_path):
    write_tiny_coco(tmp_path)
    info = {"info": {"description": "unlabeled"}, "licenses": [],
            "images": [{"id": 7, "file_name": "a.png", "height": 40, "width": 50}]}
    (tmp_path / "image_info_unlabeled2017.json").write_text(json.dumps(info))
    out = unlabeled_json(tmp_path / "image_info_unlabeled2017.json", tmp_path / "instances_tiny.json",
                         tmp_path / "out" / "instances_unlabeled2017.json")
    data = json.loads(out.read_text())
    assert list(data) == ["info", "licenses", "images", "annotations", "categories"]
    assert data["annotations"] == [] and data["categories"] == CATEGORIES
    ds = CocoDetection(out, tmp_path / "img", filter_empty=False)
    assert ds.image_ids == [7] and ds[0]["boxes"].shape == (0, 4)
    with pytest.raises(DataError, match="cocodataset.org"):
        unlabeled_json(tmp_path / "nope.json", tmp_path / "instances_tiny.json", tmp_path / "x.json")


@pytest.mark.realdata
def test_real_roboflow_coco_export(real_data):
    folder = real_data("coco_chess/test")
    ann = folder / "_annotations.coco.json"
    raw = load_coco_json(ann)
    assert len(raw["images"]) == 29 and len(raw["annotations"]) == 376 and len(raw["categories"]) == 14
    ds = CocoDetection(ann, folder)
    # every category is a class, the unused supercategory 'pieces' (id 0) included, as mmdet does
    assert ds.class_names[0] == "pieces" and ds.cat_id_to_label[0] == 0 and len(ds.class_names) == 14
    assert len(ds) == 28 and ds.num_boxes() == 376  # one image has no annotation; no crowd or degenerate box
    assert len(CocoDetection(ann, folder, filter_empty=False)) == 29
    used = {int(label) for k in range(len(ds)) for label in ds.target(k)["labels"]}
    assert 0 not in used and ds.cat_id_to_label[1] not in used  # 'pieces' and 'bishop' never occur
    sample = ds[0]
    assert sample["image"].shape == (1371, 2048, 3) and sample["ori_shape"] == (1371, 2048)
    view = weak_pipeline((800, 800), 1333)(sample, np.random.default_rng(0))
    assert view["img_shape"] == (800, 1195)  # scale min(1333 / 2048, 800 / 1371) = 0.58352
    assert len(view["boxes"]) == len(sample["boxes"]) and view["image_id"] == sample["image_id"]
    assert (view["boxes"][:, 2] <= 1195).all() and (view["boxes"][:, 3] <= 800).all()

"""Bad-input suite for the COCO reader (`common.data.coco.CocoDetection` / `load_coco_json` / `read_image`).

Each case takes a freshly generated valid COCO export (`common.data.shapes.write_shapes_dataset`), corrupts one
thing, and reads every sample through the real dataset, which must stop with a `DataError` naming the JSON or
the image file (and the entry or image id). Part of the table-driven bad-input suites
(`tests/test_bad_input_<format>.py`): a new reader must join them with a table of its own (at least 8 cases),
and a new check in a reader adds a row here.
"""
import json
import math
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from common.data.coco import CocoDetection, read_image
from common.data.shapes import write_shapes_dataset
from common.errors import DataError, DataWarning

ANN = "annotations/instances_train.json"
IMG = "images/train_00000.png"


@pytest.fixture(scope="module")
def valid_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("coco_valid") / "shapes"
    write_shapes_dataset(root, num_train=4, num_val=1, image_size=(48, 64))
    return root


def edit_json(fn):
    def corrupt(root):
        data = json.loads((root / ANN).read_text())
        fn(data)
        (root / ANN).write_text(json.dumps(data))  # NaN / Infinity are written as the literals Python reads back
    return corrupt


def every_box(**change):
    def fn(data):
        for a in data["annotations"]:
            a.update(change)
    return edit_json(fn)


def first_ann(**change):
    return edit_json(lambda data: data["annotations"][0].update(change))


def duplicate_ann_id(data):
    data["annotations"][1]["id"] = data["annotations"][0]["id"]


def duplicate_image_id(data):
    data["images"][1]["id"] = data["images"][0]["id"]


def resize_image(root):
    Image.open(root / IMG).resize((32, 24)).save(root / IMG)


def truncated_jpeg(root):
    Image.open(root / IMG).save(root / "images/train_00000.jpg", quality=90)
    data = (root / "images/train_00000.jpg").read_bytes()
    (root / "images/train_00000.jpg").write_bytes(data[: len(data) * 2 // 3])
    edit_json(lambda d: d["images"][0].update(file_name="train_00000.jpg"))(root)


def write(rel, data):
    return lambda root: (root / rel).write_bytes(data if isinstance(data, bytes) else data.encode())


def truncate(rel, keep):
    return lambda root: (root / rel).write_bytes((root / rel).read_bytes()[:keep])


# (case, corrupt(root), file named in the error (relative to root), message fragment)
CASES = [
    ("image_size_differs_from_json", resize_image, IMG, "an image of 64x48 (W x H), as image id 1"),
    ("every_box_outside_its_image", every_box(bbox=[500, 500, 10, 10]), ANN, "no usable box"),
    ("every_box_area_zero", every_box(area=0), ANN, "no usable box"),
    ("every_box_thinner_than_a_pixel", every_box(bbox=[1, 1, 0.5, 10]), ANN, "no usable box"),
    ("duplicate_annotation_id", edit_json(duplicate_ann_id), ANN, "duplicate annotation id 1"),
    ("nan_box_coordinate", first_ann(bbox=[math.nan, 1, 10, 10]), ANN, "4 finite numbers"),
    ("infinite_area", first_ann(area=math.inf), ANN, "finite numeric 'area'"),
    ("box_with_three_numbers", first_ann(bbox=[1, 1, 10]), ANN, "4 finite numbers"),
    ("unknown_category", first_ann(category_id=2), ANN, "'category_id' is not the id"),
    ("unknown_image_id", first_ann(image_id=999), ANN, "'image_id' is not the id"),
    ("duplicate_image_id", edit_json(duplicate_image_id), ANN, "duplicate image id 1"),
    ("missing_categories", edit_json(lambda d: d.pop("categories")), ANN, "missing the 'categories' key"),
    ("json_not_utf8", write(ANN, b'{"images": [], "categories": [{"id": 1, "name": "\xff"}]}'), ANN,
     "not a readable JSON file"),
    ("json_truncated", truncate(ANN, 100), ANN, "not a readable JSON file"),
    ("truncated_jpeg", truncated_jpeg, "images/train_00000.jpg", "truncated JPEG"),
    ("truncated_png", truncate(IMG, 400), IMG, "truncated PNG"),
    ("empty_image_file", write(IMG, b""), IMG, "not a readable image file"),
    ("text_file_as_image", write(IMG, "<html>404</html>"), IMG, "not a readable image file"),
    ("missing_image_file", lambda root: (root / IMG).unlink(), IMG, "image file missing"),
]


def test_valid_data_reads(valid_root):
    ds = CocoDetection(valid_root / ANN, valid_root / "images")
    assert len(ds) == 4 and ds[0]["image"].shape == (48, 64, 3) and ds.num_boxes() > 0


def test_an_image_without_a_usable_box_is_reported(valid_root, tmp_path):
    root = shutil.copytree(valid_root, tmp_path / "shapes")

    def outside(data):
        for a in data["annotations"]:
            if a["image_id"] == 2:
                a["bbox"] = [-50, -50, 10, 10]
    edit_json(outside)(root)
    with pytest.warns(DataWarning, match=r"instances_train.json: 1 image\(s\) have annotations but no usable box.*"
                                         r"id 2 \(train_00001.png\)"):
        ds = CocoDetection(root / ANN, root / "images")
    assert len(ds.target(1)["boxes"]) == 0 and len(ds) == 4


def test_read_image_takes_any_file_name(valid_root, tmp_path):
    odd = tmp_path / b"\xff\xfe.png".decode("utf-8", "surrogateescape")  # not UTF-8: cv2.imread would crash
    shutil.copy(valid_root / IMG, odd)
    assert read_image(odd).shape == (48, 64, 3)


@pytest.mark.parametrize("corrupt, rel, fragment", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_a_data_error_naming_the_file(valid_root, tmp_path, corrupt, rel, fragment):
    root = shutil.copytree(valid_root, tmp_path / "shapes")
    corrupt(root)
    with pytest.raises(DataError) as e:
        ds = CocoDetection(root / ANN, root / "images")
        for i in range(len(ds)):
            ds[i]
    assert e.value.path == str(root / rel), str(e.value)
    assert fragment in str(e.value)


def run_train(method_dir, cwd, *args):
    """The method's real train.sh in a subprocess (one thread) -> CompletedProcess."""
    repo = Path(__file__).resolve().parent.parent
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    return subprocess.run(["bash", str(repo / method_dir / "train.sh"), "--config", "configs/smoke.yaml", *args],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_consistent_teacher_train_stops_on_an_image_of_another_size(valid_root, tmp_path):
    """Issue 12: an image whose size differed from the JSON's width/height trained with misaligned boxes."""
    root = shutil.copytree(valid_root, tmp_path / "shapes")
    for path in (root / "images").glob("train_*.png"):
        Image.open(path).resize((32, 24)).save(path)
    out = run_train("semi_supervised/consistent_teacher", tmp_path, "--dataset", "custom",
                    "--train_ann", f"shapes/{ANN}", "--train_images", "shapes/images",
                    "--val_ann", "shapes/annotations/instances_val.json", "--val_images", "shapes/images",
                    "--percent", "50", "--out_dir", "run")
    assert out.returncode == 2, out.stderr[-2000:]
    assert "an image of 64x48 (W x H), as image id" in out.stderr and "error: shapes/images/train_" in out.stderr
    assert not (tmp_path / "run" / "metrics.json").exists()

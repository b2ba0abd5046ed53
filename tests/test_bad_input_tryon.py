"""Bad-input suite for the try-on readers: pair lists, parse maps, person/cloth images and OpenPose JSON, read
through `common.data.tryon.TryOnDataset` (VITON-HD layout) and `common.data.openpose.read_openpose_json`; and the
DressCode layout's own files (label maps, keypoint JSON, images, pair lists; `DRESSCODE_CASES`).

Each case takes a freshly generated valid dataset (`write_synthetic_tryon`), corrupts one file, and reads one
sample through the real dataset, which must stop with a `DataError` naming the file (and the line for pair
lists). Part of the table-driven bad-input suites (`tests/test_bad_input_<format>.py`): a new reader must join
them with a table of its own (at least 8 cases), and a new check in a reader adds a row here.
"""
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from common.data.openpose import read_openpose_json
from common.data.tryon import TryOnDataset, image_size, write_synthetic_tryon
from common.errors import DataError

PERSON = "train/image/00000_00.jpg"
PARSE = "train/image-parse-v3/00000_00.png"
POSE = "train/openpose_json/00000_00_keypoints.json"


@pytest.fixture(scope="module")
def valid_root(tmp_path_factory):
    return write_synthetic_tryon(tmp_path_factory.mktemp("tryon_valid") / "viton_hd", num_train=2, num_test=2)


def write(rel, data):
    def corrupt(root):
        (root / rel).write_bytes(data if isinstance(data, bytes) else data.encode())
    return corrupt


def truncate(rel):
    def corrupt(root):
        data = (root / rel).read_bytes()
        (root / rel).write_bytes(data[: len(data) // 2])
    return corrupt


def remove(rel):
    return lambda root: (root / rel).unlink()


def edit_parse(fn):
    def corrupt(root):
        img = Image.open(root / PARSE)
        ids = fn(np.array(img))
        out = Image.fromarray(ids, mode="P")
        out.putpalette(img.getpalette())
        out.save(root / PARSE)
    return corrupt


def rgb_parse(root):
    Image.open(root / PARSE).convert("RGB").save(root / PARSE)


def pose_values(fn):
    def corrupt(root):
        data = json.loads((root / POSE).read_text())
        fn(data["people"][0]["pose_keypoints_2d"])
        (root / POSE).write_text(json.dumps(data))  # json.dumps writes float("nan") as NaN, as Python reads it
    return corrupt


def set_value(k, v):
    def fn(values):
        values[k] = v
    return fn


def no_people(root):
    (root / POSE).write_text(json.dumps({"version": 1.3, "people": []}))


# (case, corrupt(root), file named in the error (relative to root), line or None, message fragment)
CASES = [
    ("empty_pair_list", write("train_pairs.txt", "\n\n"), "train_pairs.txt", None, "the list is empty"),
    ("pair_list_non_utf8", write("train_pairs.txt", b"00000_00.jpg 00000_00.jpg\n0000\xe9_00.jpg x.jpg\n"),
     "train_pairs.txt", 2, "expected UTF-8 text"),
    ("pair_list_three_columns", write("train_pairs.txt", "00000_00.jpg 00000_00.jpg extra\n"), "train_pairs.txt",
     1, "'person cloth' per line"),
    ("pair_list_name_without_extension", write("train_pairs.txt", "00000_00\n"), "train_pairs.txt", 1,
     "with its extension"),
    ("parse_size_differs", edit_parse(lambda ids: np.ascontiguousarray(ids[:-8])), PARSE, None,
     "person image's size 48x64"),
    ("parse_label_outside_lip", edit_parse(lambda ids: np.where(ids == 5, 25, ids).astype(np.uint8)), PARSE, None,
     "label ids 0..19 of the parse scheme, found [25]"),
    ("parse_colour_coded", rgb_parse, PARSE, None, "found mode RGB"),
    ("parse_missing", remove(PARSE), PARSE, None, "not found"),
    ("parse_not_an_image", write(PARSE, "<html>not found</html>"), PARSE, None, "not a readable image file"),
    ("person_empty_file", write(PERSON, b""), PERSON, None, "not a readable image file"),
    ("person_text_file", write(PERSON, "hello"), PERSON, None, "not a readable image file"),
    ("person_truncated_jpeg", truncate(PERSON), PERSON, None, "not a readable image file"),
    ("cloth_missing", remove("train/cloth/00000_00.jpg"), "train/cloth/00000_00.jpg", None, "image not found"),
    ("openpose_non_utf8", write(POSE, b'{"people": [{"pose_keypoints_2d": [1.0]}], "x": "\xff"}'), POSE, 1,
     "expected UTF-8 text"),
    ("openpose_invalid_json", write(POSE, '{"people": [{"pose_keypoints_2d": [1.0, '), POSE, 1, "invalid JSON"),
    ("openpose_nan_keypoint", pose_values(set_value(4, float("nan"))), POSE, None, "found nan (joint 1, value 1"),
    ("openpose_null_keypoint", pose_values(set_value(6, None)), POSE, None, "found None (joint 2, value 0"),
    ("openpose_string_keypoint", pose_values(set_value(0, "12.5")), POSE, None, "found '12.5'"),
    ("openpose_wrong_count", pose_values(lambda v: v.pop()), POSE, None, "found 74"),
    ("openpose_no_people", no_people, POSE, None, "at least 1 entry in 'people'"),
]


def test_valid_data_reads(valid_root):
    ds = TryOnDataset(valid_root, "viton_hd", "train")
    assert len(ds) == 2 and ds[0]["agnostic"].shape == (3, 64, 48)
    assert image_size(valid_root / PERSON) == (64, 48)
    assert read_openpose_json(valid_root / POSE)[1] == "body25"


@pytest.mark.parametrize("corrupt, rel, line, fragment", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_a_data_error_naming_the_file(valid_root, tmp_path, corrupt, rel, line, fragment):
    root = shutil.copytree(valid_root, tmp_path / "viton_hd")
    corrupt(root)
    with pytest.raises(DataError) as e:
        TryOnDataset(root, "viton_hd", "train")[0]
    assert e.value.path == str(root / rel), str(e.value)
    assert fragment in str(e.value)
    assert e.value.line == line, str(e.value)


# DressCode (one upper_body category folder, 64x48 images; keypoints in DressCode's 384x512 space)
DC_PERSON, DC_CLOTH = "images/000001_0.jpg", "images/000001_1.jpg"
DC_LABELS, DC_KEYPOINTS = "label_maps/000001_4.png", "keypoints/000001_2.json"


@pytest.fixture(scope="module")
def dresscode_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("dresscode_valid") / "upper_body"
    for sub in ("images", "label_maps", "keypoints"):
        (root / sub).mkdir(parents=True)
    labels = np.zeros((64, 48), np.uint8)
    labels[4:14, 18:30], labels[14:40, 12:36], labels[16:38, 6:12], labels[16:38, 36:42] = 11, 4, 15, 14
    image = np.full((64, 48, 3), 220, np.uint8)
    image[labels > 0] = 90
    Image.fromarray(image).save(root / DC_PERSON)
    Image.fromarray(np.where(labels[..., None] == 4, image, 255).astype(np.uint8)).save(root / DC_CLOTH)
    Image.fromarray(labels).save(root / DC_LABELS)
    joints = [(24, 9), (24, 15), (14, 16), (9, 27), (8, 37), (34, 16), (39, 27), (40, 37), (18, 40), (18, 50),
              (18, 62), (30, 40), (30, 50), (30, 62), (22, 7), (26, 7), (20, 8), (28, 8)]
    rows = [[x * 8.0, y * 8.0, 1.0, i] for i, (x, y) in enumerate(joints)]
    (root / DC_KEYPOINTS).write_text(json.dumps({"keypoints": rows}))
    (root / "train_pairs.txt").write_text("000001_0.jpg 000001_1.jpg\n")
    return root


def dc_keypoints(fn):
    def corrupt(root):
        data = json.loads((root / DC_KEYPOINTS).read_text())
        fn(data)
        (root / DC_KEYPOINTS).write_text(json.dumps(data))
    return corrupt


def dc_labels(ids_fn):
    def corrupt(root):
        Image.fromarray(ids_fn(np.array(Image.open(root / DC_LABELS)))).save(root / DC_LABELS)
    return corrupt


def _set_nan(data):
    data["keypoints"][3][1] = float("nan")


DRESSCODE_CASES = [
    ("dc_pair_list_empty", write("train_pairs.txt", "\n"), "train_pairs.txt", "the list is empty"),
    ("dc_keypoints_missing", remove(DC_KEYPOINTS), DC_KEYPOINTS, "DressCode keypoint JSON not found"),
    ("dc_keypoints_invalid_json", write(DC_KEYPOINTS, '{"keypoints": [[1, 2, '), DC_KEYPOINTS,
     "a 'keypoints' list of 18 [x, y, score, id] rows"),
    ("dc_keypoints_no_key", write(DC_KEYPOINTS, '{"people": []}'), DC_KEYPOINTS, "a 'keypoints' list"),
    ("dc_keypoints_17_rows", dc_keypoints(lambda d: d["keypoints"].pop()), DC_KEYPOINTS, "18 keypoints, found 17"),
    ("dc_keypoints_nan", dc_keypoints(_set_nan), DC_KEYPOINTS, "finite keypoint values"),
    ("dc_labels_outside_scheme", dc_labels(lambda ids: np.where(ids == 4, 18, ids).astype(np.uint8)), DC_LABELS,
     "label ids 0..17 of the parse scheme, found [18]"),
    ("dc_labels_other_aspect", dc_labels(lambda ids: np.ascontiguousarray(ids[:, :40])), DC_LABELS,
     "a label map with the person image's aspect ratio (48x64), found 40x64"),
    ("dc_labels_missing", remove(DC_LABELS), DC_LABELS, "not found"),
    ("dc_labels_colour_coded", lambda root: Image.open(root / DC_LABELS).convert("RGB").save(root / DC_LABELS),
     DC_LABELS, "found mode RGB"),
    ("dc_person_truncated", truncate(DC_PERSON), DC_PERSON, "not a readable image file"),
    ("dc_garment_missing", remove(DC_CLOTH), DC_CLOTH, "image not found"),
]


def test_valid_dresscode_reads(dresscode_root):
    ds = TryOnDataset(dresscode_root, "dresscode", "train")
    assert ds.category == "upper_body" and ds[0]["agnostic"].shape == (3, 64, 48)
    assert ds.paths(0) == {"person": dresscode_root / DC_PERSON, "cloth": dresscode_root / DC_CLOTH,
                           "parse": dresscode_root / DC_LABELS, "keypoints": dresscode_root / DC_KEYPOINTS}


@pytest.mark.parametrize("corrupt, rel, fragment", [c[1:] for c in DRESSCODE_CASES],
                         ids=[c[0] for c in DRESSCODE_CASES])
def test_bad_dresscode_input_is_a_data_error_naming_the_file(dresscode_root, tmp_path, corrupt, rel, fragment):
    root = shutil.copytree(dresscode_root, tmp_path / "upper_body")
    corrupt(root)
    with pytest.raises(DataError) as e:
        TryOnDataset(root, "dresscode", "train")[0]
    assert e.value.path == str(root / rel), str(e.value)
    assert fragment in str(e.value), str(e.value)


def test_explicit_empty_pairs_are_refused(valid_root):
    with pytest.raises(DataError, match="at least one"):
        TryOnDataset(valid_root, "viton_hd", "train", pairs=[])


def run_train(method_dir, cwd, *args):
    """The method's real train.sh in a subprocess (one thread) -> CompletedProcess."""
    repo = Path(__file__).resolve().parent.parent
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    return subprocess.run(["bash", str(repo / method_dir / "train.sh"), "--config", "configs/smoke.yaml", *args],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_daflow_train_stops_on_a_parse_map_of_another_size(tmp_path):
    """Issue 12: a parse map whose size differed from the person image was silently resized."""
    root = write_synthetic_tryon(tmp_path / "vhd", num_train=4, num_test=2)
    for path in (root / "train" / "image-parse-v3").glob("*.png"):
        img = Image.open(path)
        out = Image.fromarray(np.ascontiguousarray(np.array(img)[:-8]), mode="P")
        out.putpalette(img.getpalette())
        out.save(path)
    out = run_train("virtual_tryon/daflow", tmp_path, "--dataset", "x", "--data_root", "vhd", "--out_dir", "run",
                    "--epochs", "1")
    assert out.returncode == 2, out.stderr[-2000:]
    assert "a parse map of the person image's size 48x64 (W x H), found 48x56" in out.stderr
    assert "error: vhd/train/image-parse-v3/" in out.stderr
    assert not (tmp_path / "run" / "metrics.json").exists()

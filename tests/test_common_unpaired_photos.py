"""The unpaired photo-folder reader: a generated folder reads back exactly; a corrupt file is a DataError naming it."""
import json

import numpy as np
import pytest
from PIL import Image

from common.data.openpose import coco18_to_body25
from common.data.unpaired_photos import UnpairedPhotos, read_parsing, read_photo, write_unpaired_photo
from common.errors import DataError

H, W = 32, 24


def sample(seed=0):
    rng = np.random.default_rng(seed)
    person = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    parse = np.zeros((H, W), np.uint8)
    parse[8:20, 6:18] = 5  # upper clothes
    parse[2:7, 9:15] = 13  # face
    kps = np.zeros((18, 3), np.float32)
    kps[:, 0], kps[:, 1], kps[:, 2] = np.linspace(2, W - 2, 18), np.linspace(2, H - 2, 18), 0.8
    return person, parse, kps


def folder(tmp_path, n=2):
    root = tmp_path / "photos"
    for i in range(n):
        person, parse, kps = sample(i)
        write_unpaired_photo(root, f"p{i}.png", person, parse, kps, flavour="body25" if i else "coco18")
    return root


def test_generated_folder_reads_back(tmp_path):
    root = folder(tmp_path)
    ds = UnpairedPhotos(root)
    assert ds.names == ["p0.png", "p1.png"] and len(ds) == 2
    for i in range(2):
        person, parse, kps = sample(i)
        item = ds[i]
        np.testing.assert_array_equal(item["person"], person)  # PNG: lossless
        np.testing.assert_array_equal(item["parse"], parse)
        np.testing.assert_allclose(item["keypoints"], kps, atol=1e-5)  # both OpenPose flavours -> COCO-18
    (root / "list.txt").write_text("p1.png\n\n")
    assert UnpairedPhotos(root).names == ["p1.png"]
    assert UnpairedPhotos(root, require_upper=False).load(0)["name"] == "p1.png"


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _jpeg_truncated(root):
    Image.fromarray(sample()[0]).save(root / "image" / "p0.jpg", quality=95)
    (root / "image" / "p0.png").unlink()
    _truncate(root / "image" / "p0.jpg")
    return root / "image" / "p0.jpg"


def _rgb_parsing(root):
    path = root / "parsing" / "p0.png"
    Image.fromarray(np.zeros((H, W, 3), np.uint8)).save(path)
    return path


def _resized_parsing(root):
    path = root / "parsing" / "p0.png"
    Image.fromarray(np.full((H // 2, W // 2), 5, np.uint8)).save(path)
    return path


def _label_out_of_range(root):
    path = root / "parsing" / "p0.png"
    parse = sample()[1]
    parse[0, 0] = 42
    Image.fromarray(parse).save(path)
    return path


def _no_upper_garment(root):
    path = root / "parsing" / "p0.png"
    Image.fromarray(np.zeros((H, W), np.uint8)).save(path)
    return path


def _keypoints(root, text):
    path = root / "keypoints" / "p0_keypoints.json"
    path.write_text(text)
    return path


def _delete(path):
    path.unlink()
    return path


# (case, corrupt(root) -> the file the error must name, expected words)
BAD_INPUTS = [
    ("photo is not an image", lambda r: (r / "image" / "p0.png").write_text("not a png") and r / "image" / "p0.png",
     "readable"),
    ("photo truncated", lambda r: (_truncate(r / "image" / "p0.png"), r / "image" / "p0.png")[1], "readable"),
    ("jpeg photo truncated", _jpeg_truncated, "readable"),
    ("parsing missing", lambda r: _delete(r / "parsing" / "p0.png"), "not found"),
    ("parsing colour-coded", _rgb_parsing, "mode RGB"),
    ("parsing of another size", _resized_parsing, "size"),
    ("parsing label out of range", _label_out_of_range, "0..20, found 42"),
    ("parsing truncated", lambda r: (_truncate(r / "parsing" / "p0.png"), r / "parsing" / "p0.png")[1], "readable"),
    ("no upper garment", _no_upper_garment, "upper garment"),
    ("keypoints missing", lambda r: _delete(r / "keypoints" / "p0_keypoints.json"), "not found"),
    ("keypoints not JSON", lambda r: _keypoints(r, "{people: ["), "invalid JSON"),
    ("keypoints without people", lambda r: _keypoints(r, json.dumps({"version": 1.3, "people": []})), "people"),
    ("keypoints of 17 joints", lambda r: _keypoints(r, json.dumps({"people": [{"pose_keypoints_2d": [1.0] * 51}]})),
     "found 51"),
    ("keypoints not finite", lambda r: _keypoints(r, '{"people": [{"pose_keypoints": [NaN' + ", 1" * 53 + "]}]}"),
     "finite"),
]


@pytest.mark.parametrize("case,corrupt,words", BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS])
def test_bad_input_is_a_data_error_naming_the_file(tmp_path, case, corrupt, words):
    root = folder(tmp_path, n=1)
    bad = corrupt(root)
    with pytest.raises(DataError, match=words) as err:
        UnpairedPhotos(root).load(0)
    assert err.value.path == str(bad) and str(bad) in str(err.value)


def test_bad_folder_and_list_are_data_errors_naming_them(tmp_path):
    with pytest.raises(DataError) as err:
        UnpairedPhotos(tmp_path / "nowhere")
    assert "nowhere" in err.value.path
    root = folder(tmp_path, n=1)
    (root / "list.txt").write_text("p0.png\nmissing.png\n")
    with pytest.raises(DataError, match="missing.png") as err:
        UnpairedPhotos(root)
    assert err.value.path == str(root / "list.txt") and err.value.line == 2
    (root / "list.txt").unlink()
    (root / "image" / "p0.png").unlink()
    with pytest.raises(DataError, match="at least one photo"):
        UnpairedPhotos(root)
    with pytest.raises(DataError, match="not found"):
        read_parsing(root / "parsing" / "nope.png", (H, W))
    with pytest.raises(DataError, match="photo not found"):
        read_photo(root / "image" / "nope.jpg")


def test_body25_keypoints_are_converted(tmp_path):
    root = folder(tmp_path, n=1)
    kps = sample()[2]
    _keypoints(root, json.dumps({"people": [{"pose_keypoints_2d": coco18_to_body25(kps).reshape(-1).tolist()}]}))
    np.testing.assert_allclose(UnpairedPhotos(root).load(0)["keypoints"], kps, atol=1e-5)

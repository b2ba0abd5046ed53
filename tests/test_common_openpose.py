"""Tests of common/data/openpose.py: both JSON flavours round trip, COCO-18 <-> BODY_25, skeleton rendering."""
import json

import numpy as np
import pytest

from common.data.openpose import (
    BODY25_NAMES,
    BODY25_TO_COCO18,
    COCO18_NAMES,
    body25_to_coco18,
    coco18_to_body25,
    read_openpose_json,
    render_skeleton,
    write_openpose_json,
)
from common.errors import DataError


def hand_made_coco18():
    """An upright person on a 64x48 canvas; joint 4 (right wrist) and 16, 17 (ears) missing."""
    kps = np.zeros((18, 3), np.float32)
    xy = {0: (24, 8), 1: (24, 16), 2: (16, 17), 3: (13, 27), 4: (0, 0), 5: (32, 17), 6: (35, 27), 7: (36, 36),
          8: (19, 36), 9: (19, 48), 10: (19, 60), 11: (29, 36), 12: (29, 48), 13: (29, 60), 14: (22, 6),
          15: (26, 6)}
    for i, (x, y) in xy.items():
        kps[i] = (x, y, 0.0 if i == 4 else 0.8)
    return kps


def test_name_tables_and_mapping_agree():
    assert len(COCO18_NAMES) == 18 and len(BODY25_NAMES) == 25
    assert [BODY25_NAMES[j] for j in BODY25_TO_COCO18] == list(COCO18_NAMES)
    assert BODY25_TO_COCO18[8] == 9  # r_hip: COCO index 8, BODY_25 index 9 (mid_hip sits at 8)


@pytest.mark.parametrize("flavour,key,joints", [("coco18", "pose_keypoints", 18), ("body25", "pose_keypoints_2d", 25)])
def test_json_round_trip_both_flavours(tmp_path, flavour, key, joints):
    kps = np.random.default_rng(0).uniform(0, 100, (joints, 3)).astype(np.float32)
    path = tmp_path / "x_keypoints.json"
    write_openpose_json(path, kps)
    raw = json.loads(path.read_text())
    assert key in raw["people"][0] and len(raw["people"][0][key]) == 3 * joints
    back, found = read_openpose_json(path)
    assert found == flavour
    np.testing.assert_allclose(back, kps, rtol=1e-6)


def test_mapping_round_trip_and_mid_hip():
    coco = hand_made_coco18()
    body = coco18_to_body25(coco)
    np.testing.assert_array_equal(body25_to_coco18(body), coco)
    np.testing.assert_allclose(body[8], (coco[8] + coco[11]) / 2)  # mid_hip
    assert (body[19:] == 0).all()  # feet unknown
    no_hip = coco.copy()
    no_hip[11] = 0
    assert (coco18_to_body25(no_hip)[8] == 0).all()


def test_reader_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"people": [')
    with pytest.raises(DataError, match="bad.json"):
        read_openpose_json(bad)
    (tmp_path / "empty.json").write_text('{"version": 1.3, "people": []}')
    with pytest.raises(DataError, match="people"):
        read_openpose_json(tmp_path / "empty.json")
    (tmp_path / "short.json").write_text('{"people": [{"pose_keypoints_2d": [1, 2, 3]}]}')
    with pytest.raises(DataError, match="54"):
        read_openpose_json(tmp_path / "short.json")
    with pytest.raises(DataError, match="not found"):
        read_openpose_json(tmp_path / "missing.json")


def test_skeleton_on_hand_made_keypoints():
    kps = hand_made_coco18()
    img = render_skeleton(kps, 64, 48)
    assert img.shape == (64, 48, 3) and img.dtype == np.uint8
    # Only the nose: a disc of radius 4 in colour 0, (255, 0, 0) written as BGR -> (0, 0, 255) in RGB.
    nose = np.zeros_like(kps)
    nose[0] = (24, 8, 0.9)
    alone = render_skeleton(nose, 64, 48)
    assert alone[8, 24].tolist() == [0, 0, 255] and alone[8, 28].tolist() == [0, 0, 255]
    assert alone[8, 30].tolist() == [0, 0, 0] and (alone > 0).any(-1).sum() < 70
    # Neck + right shoulder: two discs, then limb 0 (colour 0) blended 0.4 canvas + 0.6 limb at its midpoint.
    pair = np.zeros_like(kps)
    pair[1], pair[2] = (24, 16, 0.9), (8, 16, 0.9)
    two = render_skeleton(pair, 64, 48)
    assert two[16, 16].tolist() == [0, 0, round(0.6 * 255)]
    # At the neck the disc (colour 1, (255, 85, 0) -> RGB (0, 85, 255)) lies under the limb: 0.4 disc + 0.6 limb.
    assert two[16, 23].tolist() == [0, round(0.4 * 85), 255]
    # Missing wrist (joint 4 at the origin, confidence 0): nothing drawn at the top-left corner.
    assert (img[:3, :3] == 0).all()
    # Left upper arm (limb 5-6 = joints 5-6, colour 4) crosses its midpoint; far from every joint it is black.
    assert img[22, 33].sum() > 0
    assert (img[60:, 40:] == 0).all()
    # Raising the threshold above every confidence draws nothing.
    assert render_skeleton(kps, 64, 48, threshold=0.9).sum() == 0
    with pytest.raises(ValueError):
        render_skeleton(coco18_to_body25(kps), 64, 48)

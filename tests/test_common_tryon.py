"""Tests of common/data/tryon.py: pair lists and their naming inversion, the agnostic builder on hand-made
keypoints, the three layouts read through `TryOnDataset`, the synthetic generator, and the real VITON samples."""
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from common.data.openpose import coco18_to_body25, write_openpose_json
from common.data.tryon import (
    DRESSCODE_CATEGORIES,
    DRESSCODE_TO_LIP,
    LAYOUTS,
    LIP_LABELS,
    TryOnDataset,
    agnostic_person,
    dresscode_agnostic,
    dresscode_agnostic_mask,
    dresscode_category,
    image_to_tensor,
    pair_list_path,
    read_dresscode_keypoints,
    read_label_map,
    read_pairs,
    read_rgb,
    write_synthetic_tryon,
)
from common.errors import DataError


def test_read_pairs_quirks(tmp_path):
    f = tmp_path / "pairs.txt"
    f.write_text("000010_0.jpg 000048_1.jpg\n\n000020_0.jpg   000074_1.jpg")  # blank line, no final newline
    assert read_pairs(f) == [("000010_0.jpg", "000048_1.jpg"), ("000020_0.jpg", "000074_1.jpg")]
    f.write_text("000003_0.jpg\n")  # DAFlow train.txt: one column, cloth = _0 -> _1
    assert read_pairs(f) == [("000003_0.jpg", "000003_1.jpg")]
    f.write_text("a.jpg b.jpg c.jpg\n")
    with pytest.raises(DataError, match=r"pairs.txt:1"):
        read_pairs(f)
    with pytest.raises(DataError, match="not found"):
        read_pairs(tmp_path / "none.txt")


def test_pair_list_naming_inversion_is_explicit(tmp_path):
    assert pair_list_path(tmp_path, "daflow", "paired").name == "test_pairs.txt"
    assert pair_list_path(tmp_path, "daflow", "unpaired").name == "test_unpairs.txt"
    assert pair_list_path(tmp_path, "cpvton", "paired").name == "test_pairs_same.txt"
    assert pair_list_path(tmp_path, "cpvton", "unpaired").name == "test_pairs.txt"
    assert pair_list_path(tmp_path, "viton_hd", "unpaired").name == "test_pairs.txt"
    assert pair_list_path(tmp_path, "dresscode", "paired").name == "test_pairs_paired.txt"
    with pytest.raises(ValueError):
        pair_list_path(tmp_path, "mpv", "paired")


def hand_made_person(h=256, w=192):
    """A flat person: parse map with head, upper clothes, arms, pants; keypoints placed on it (COCO-18)."""
    parse = np.zeros((h, w), np.uint8)
    parse[20:60, 76:116] = LIP_LABELS.index("face")
    parse[10:20, 76:116] = LIP_LABELS.index("hair")
    parse[70:160, 50:142] = LIP_LABELS.index("upper_clothes")
    parse[70:150, 30:50] = LIP_LABELS.index("right_arm")
    parse[70:150, 142:162] = LIP_LABELS.index("left_arm")
    parse[160:250, 60:132] = LIP_LABELS.index("pants")
    image = np.full((h, w, 3), 220, np.uint8)
    for lab, colour in ((13, (200, 160, 140)), (2, (40, 30, 20)), (5, (10, 200, 10)), (14, (200, 160, 140)),
                        (15, (200, 160, 140)), (9, (20, 20, 120))):
        image[parse == lab] = colour
    kps = np.zeros((18, 3), np.float32)
    for i, (x, y) in {0: (96, 40), 1: (96, 66), 2: (60, 72), 3: (40, 110), 4: (38, 148), 5: (132, 72),
                      6: (152, 110), 7: (154, 148), 8: (76, 160), 9: (76, 205), 10: (76, 245), 11: (116, 160),
                      12: (116, 205), 13: (116, 245), 14: (90, 36), 15: (102, 36)}.items():
        kps[i] = (x, y, 0.9)
    return image, parse, kps


def test_agnostic_on_hand_made_keypoints():
    image, parse, kps = hand_made_person()
    out = agnostic_person(image, parse, kps)
    assert out.shape == image.shape and out.dtype == np.uint8
    upper = parse == 5
    assert (out[upper] == 0).all()  # every upper-clothes pixel is zeroed or painted black
    head = np.isin(parse, (2, 13))
    assert (out[head] == image[head]).all()  # head pasted back (even under the neck square)
    lower = parse == 9
    assert (out[lower] == image[lower]).all()
    # Neck square (+-4r = 40 px around joint 1) and arm lines (10r wide) are black where not head/lower.
    assert (out[66, 70:80] == 0).all() and (out[110, 40] == 0).all()
    # Far from the body the image is untouched.
    assert (out[250, :20] == image[250, :20]).all() and (out[5, 5] == image[5, 5]).all()
    # Arms are not pasted back (the official hand paste-back is a no-op): an arm pixel under the arm line.
    assert parse[110, 40] == 15 and (out[110, 40] == 0).all()
    # BODY_25 keypoints give the same image.
    np.testing.assert_array_equal(agnostic_person(image, parse, coco18_to_body25(kps)), out)
    # Scaling with the width: r = 10 * W / 192, so a 2x image gives a (nearly) 2x mask.
    up = lambda a: np.repeat(np.repeat(a, 2, 0), 2, 1)  # noqa: E731
    big = agnostic_person(up(image), up(parse), kps * [2, 2, 1])
    black_small, black_big = (out == 0).all(-1).mean(), (big == 0).all(-1).mean()
    assert abs(black_small - black_big) < 0.02


def test_synthetic_generator_in_viton_hd_layout_is_read_back(tmp_path):
    root = write_synthetic_tryon(tmp_path / "syn", num_train=3, num_test=2, height=64, width=48, seed=1)
    for sub in ("image", "cloth", "cloth-mask", "image-parse-v3", "openpose_json"):
        assert len(list((root / "train" / sub).iterdir())) == 3
    parse = Image.open(root / "train" / "image-parse-v3" / "00000_00.png")
    assert parse.mode == "P" and 5 in np.array(parse)
    ds = TryOnDataset(root, "viton_hd", "train")
    item = ds[0]
    for key in ("cloth", "person", "agnostic", "pose"):
        assert item[key].shape == (3, 64, 48) and item[key].min() >= -1 and item[key].max() <= 1
    # The garment region of the person is hidden in the agnostic image.
    garment = torch.from_numpy(np.array(parse) == 5)
    assert (item["agnostic"][:, garment] == -1).all()
    # Unpaired test list pairs person i with cloth i+1; paired mode uses the person's own name.
    assert TryOnDataset(root, "viton_hd", "test", "unpaired").pairs[0] == ("00000_00.jpg", "00001_00.jpg")
    assert TryOnDataset(root, "viton_hd", "test", "paired").pairs[0] == ("00000_00.jpg", "00000_00.jpg")
    # Same seed -> same files.
    again = write_synthetic_tryon(tmp_path / "again", num_train=3, num_test=2, height=64, width=48, seed=1)
    name = Path("train") / "image" / "00001_00.jpg"
    assert (again / name).read_bytes() == (root / name).read_bytes()


def test_daflow_and_cpvton_layouts(tmp_path):
    image, parse, kps = hand_made_person()
    image, parse, kps = image[::4, ::4].copy(), parse[::4, ::4].copy(), kps * [0.25, 0.25, 1]  # 64x48
    # DAFlow layout: precomputed agnostic + skeleton images.
    d = tmp_path / "VITON"
    for sub in ("clothes", "test_img", "img_agnostic", "vis_pose"):
        (d / "VITON_test" / sub).mkdir(parents=True)
    Image.fromarray(image).save(d / "VITON_test" / "test_img" / "000001_0.jpg")
    Image.fromarray(image).save(d / "VITON_test" / "clothes" / "000001_1.jpg")
    Image.fromarray(image // 2).save(d / "VITON_test" / "img_agnostic" / "000001_0.jpg")
    Image.fromarray(image // 3).save(d / "VITON_test" / "vis_pose" / "000001_0_keypoints.jpg")
    (d / "test_pairs.txt").write_text("000001_0.jpg 000001_1.jpg\n")
    item = TryOnDataset(d, "daflow", "test", "paired")[0]
    assert item["person_name"] == "000001_0.jpg" and item["cloth_name"] == "000001_1.jpg"
    assert item["agnostic"].mean() < item["person"].mean()
    with pytest.raises(DataError, match="test_unpairs.txt"):
        TryOnDataset(d, "daflow", "test", "unpaired")
    # CP-VTON+ layout: agnostic and skeleton built from parse + legacy COCO-18 JSON.
    c = tmp_path / "cp"
    for sub in ("image", "cloth", "image-parse-new", "pose"):
        (c / "test" / sub).mkdir(parents=True)
    Image.fromarray(image).save(c / "test" / "image" / "000001_0.jpg")
    Image.fromarray(image).save(c / "test" / "cloth" / "000002_1.jpg")
    Image.fromarray(parse).save(c / "test" / "image-parse-new" / "000001_0.png")
    write_openpose_json(c / "test" / "pose" / "000001_0_keypoints.json", kps)
    (c / "test_pairs.txt").write_text("000001_0.jpg 000002_1.jpg")
    ds = TryOnDataset(c, "cpvton", "test", "unpaired")
    arrays = ds.load_arrays(0)
    np.testing.assert_array_equal(arrays["agnostic"], agnostic_person(arrays["person"], parse, kps))
    assert arrays["pose"].any()
    with pytest.raises(DataError, match="dataset folder"):
        TryOnDataset(tmp_path / "nowhere", "cpvton", "test")
    assert set(LAYOUTS) == {"daflow", "cpvton", "viton_hd", "dresscode"}
    small = read_rgb(c / "test" / "image" / "000001_0.jpg", (32, 24))
    assert small.shape == (32, 24, 3)
    t = image_to_tensor(small)
    assert t.shape == (3, 32, 24) and t.min() >= -1 and t.max() <= 1
    labels = read_label_map(c / "test" / "image-parse-new" / "000001_0.png", (32, 24))
    assert labels.shape == (32, 24) and 5 in labels and set(np.unique(labels)) <= set(np.unique(parse))


@pytest.mark.realdata
def test_real_viton_samples_in_cpvton_layout(real_data):
    root = real_data("viton_cpvton/data/test").parent
    # The shipped list has no trailing newline and pairs a person with another person's garment (unpaired).
    pairs = read_pairs(root / "test_samples_pair.txt")
    assert pairs == [("000010_0.jpg", "000048_1.jpg")]
    ds = TryOnDataset(root, "cpvton", "test", pairs=pairs + [("000066_0.jpg", "000074_1.jpg"),
                                                             ("image3.jpg", "000118_1.jpg")])
    for i in range(len(ds)):
        item = ds[i]
        assert item["agnostic"].shape == (3, 256, 192)
        # Upper clothes (LIP 5) are hidden; the face (13) is kept.
        parse = np.array(Image.open(root / "test" / "image-parse-new" / ds.pairs[i][0].replace(".jpg", ".png")))
        ag = ds.load_arrays(i)["agnostic"]
        assert (ag[parse == 5] == 0).all()
        person = ds.load_arrays(i)["person"]
        assert (ag[parse == 13] == person[parse == 13]).all()
    # Quirk: 000020_0 has parse and pose but no image -> a DataError naming the missing file.
    with pytest.raises(DataError, match="000020_0.jpg"):
        TryOnDataset(root, "cpvton", "test", pairs=[("000020_0.jpg", "000048_1.jpg")])[0]
    # Quirk: the colour-coded image-parse/ maps are not label maps; the reader says so instead of misreading.
    with pytest.raises(DataError, match="mode RGB"):
        read_label_map(root / "test" / "image-parse" / "000010_0.png", None)
    # Quirk: two byte-identical cloth masks; the reader does not care, both decode to the same mask.
    a = np.array(Image.open(root / "test" / "cloth-mask" / "000010_0.jpg"))
    b = np.array(Image.open(root / "test" / "cloth-mask" / "000066_0.jpg"))
    assert np.array_equal(a, b)


def write_dresscode_sample(root, image, dc_parse, kps, person="020714_0.jpg", cloth="020715_1.jpg", missing=()):
    """Write one pair in DressCode's on-disk format under `root` (a category folder): images/, label_maps/<id>_4.png,
    keypoints/<id>_2.json (18 [x, y, score, id] rows in 384x512 pixels, `missing` joints as (0, 0)) and
    test_pairs_paired.txt. kps are (18, 3) in the pixels of `image`."""
    import json
    for sub in ("images", "label_maps", "keypoints"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    h, w = dc_parse.shape
    stem = person.rsplit("_", 1)[0]
    Image.fromarray(image).save(root / "images" / person, quality=100)
    Image.fromarray(image).save(root / "images" / cloth)
    Image.fromarray(dc_parse).save(root / "label_maps" / f"{stem}_4.png")
    rows = [[float(x) * 384 / w, float(y) * 512 / h, 0.7, i] for i, (x, y, _) in enumerate(kps)]
    for i in missing:
        rows[i] = [0.0, 0.0, 0.0, i]
    (root / "keypoints" / f"{stem}_2.json").write_text(json.dumps({"keypoints": rows}))
    (root / "test_pairs_paired.txt").write_text(f"{person} {cloth}\n")
    return root


def test_dresscode_layout_maps_labels_and_keypoint_space(tmp_path):
    image, parse, kps = hand_made_person()
    image, parse = image[::4, ::4].copy(), parse[::4, ::4].copy()  # 64x48 images
    lip_to_dc = {int(lip): dc for dc, lip in enumerate(DRESSCODE_TO_LIP) if lip}
    dc_parse = np.vectorize(lambda v: lip_to_dc.get(int(v), 0))(parse).astype(np.uint8)
    assert (DRESSCODE_TO_LIP[dc_parse] == parse).all()
    root = tmp_path / "DressCode" / "upper_body"
    # Keypoints live in 384x512 pixels: x2 of the 192x256 hand-made ones; a missing joint is (0, 0).
    write_dresscode_sample(root, image, dc_parse, kps / [4, 4, 1], missing=(4,))
    loaded = read_dresscode_keypoints(root / "keypoints" / "020714_2.json")
    assert loaded[4].tolist() == [0, 0, 0] and loaded[0].tolist() == [192.0, 80.0, 1.0]
    ds = TryOnDataset(root, "dresscode", "test", "paired")
    assert ds.category == "upper_body"
    arrays = ds.load_arrays(0)
    expected_kps = loaded * np.array([48 / 384, 64 / 512, 1], np.float32)
    np.testing.assert_array_equal(arrays["agnostic"], agnostic_person(arrays["person"], parse, expected_kps))
    assert ds[0]["cloth_name"] == "020715_1.jpg"
    (root / "keypoints" / "bad_2.json").write_text('{"keypoints": [[1, 2, 3, 0]]}')
    with pytest.raises(DataError, match="18 keypoints"):
        read_dresscode_keypoints(root / "keypoints" / "bad_2.json")


def dresscode_person(category, h=256, w=192):
    """hand_made_person's body in DressCode labels, with a neck, long arms (hands below the wrists), pants over two
    legs and shoes; for "dresses" the upper clothes and pants are one dress (label 7)."""
    image, _, kps = hand_made_person(h, w)
    parse = np.zeros((h, w), np.uint8)
    parse[20:60, 76:116] = 11  # head
    parse[10:20, 76:116] = 2  # hair
    parse[60:72, 88:104] = 11  # neck (part of DressCode's "head")
    parse[70:150, 50:142] = 4  # upper clothes
    parse[70:190, 30:50] = 15  # right arm; wrist at y=148, rows 170-189 are the hand
    parse[70:190, 142:162] = 14  # left arm
    parse[150:200, 60:132] = 6  # pants
    parse[200:245, 60:95] = 13  # right leg
    parse[200:245, 97:132] = 12  # left leg
    parse[245:252, 60:132] = 9  # shoes
    if category == "dresses":
        parse[np.isin(parse, (4, 6))] = 7
    image = np.full((h, w, 3), 220, np.uint8)
    for lab, colour in ((11, (200, 160, 140)), (2, (40, 30, 20)), (4, (10, 200, 10)), (14, (190, 150, 130)),
                        (15, (190, 150, 130)), (6, (20, 20, 120)), (7, (180, 20, 60)), (12, (205, 165, 145)),
                        (13, (205, 165, 145)), (9, (10, 10, 10))):
        image[parse == lab] = colour
    return image, parse, kps


def test_dresscode_category_from_folder_name_or_option(tmp_path):
    for cat in DRESSCODE_CATEGORIES:
        assert dresscode_category(tmp_path / "DressCode" / cat) == cat
        assert dresscode_category(str(tmp_path / "DressCode" / cat) + "/") == cat  # trailing slash
        assert dresscode_category(tmp_path / "my_copy", cat) == cat  # explicit override wins
    assert dresscode_category(tmp_path / "upper_body", "dresses") == "dresses"
    with pytest.raises(DataError, match="category.*'my_copy'.*--category"):
        dresscode_category(tmp_path / "my_copy")
    with pytest.raises(ValueError, match="category must be one of"):
        dresscode_category(tmp_path / "upper_body", "tops")
    image, parse, kps = dresscode_person("lower_body", 64, 48)
    root = write_dresscode_sample(tmp_path / "my_copy", image, parse, kps * [0.25, 0.25, 1])
    with pytest.raises(DataError, match="DressCode category folder"):
        TryOnDataset(root, "dresscode", "test")
    assert TryOnDataset(root, "dresscode", "test", category="lower_body").category == "lower_body"
    with pytest.raises(ValueError, match="applies to layout .dresscode. only"):
        TryOnDataset(root, "cpvton", "test", category="lower_body")


def test_dresscode_agnostic_lower_body_hides_pants_skirt_and_legs_keeps_upper():
    image, parse, kps = dresscode_person("lower_body")
    hidden = dresscode_agnostic_mask(parse, kps, "lower_body")
    assert hidden.shape == parse.shape and hidden.dtype == bool
    assert hidden[parse == 6].all() and hidden[np.isin(parse, (12, 13))].all()  # pants and both legs
    kept_labels = (2, 4, 9, 11, 14, 15)  # hair, upper clothes, shoes, head (neck included), both arms
    assert not hidden[np.isin(parse, kept_labels)].any()
    # Dilated 5x by a 5x5 kernel: the background 10 px left of the pants is hidden, 11 px is not.
    assert hidden[175, 50] and not hidden[175, 49] and not hidden[5:60, :60].any()
    # A skirt (label 5) is hidden too.
    skirt = parse.copy()
    skirt[150:200, 60:132] = 5
    assert dresscode_agnostic_mask(skirt, kps, "lower_body")[skirt == 5].all()
    out = dresscode_agnostic(image, parse, kps, "lower_body")
    assert (out[hidden] == 128).all() and (out[~hidden] == image[~hidden]).all()  # official fill: mid-grey
    # Joints do not matter for lower_body (no arm / neck drawing).
    np.testing.assert_array_equal(dresscode_agnostic_mask(parse, np.zeros_like(kps), "lower_body"), hidden)


def test_dresscode_agnostic_dresses_and_upper_body_arms_neck_hands():
    image, parse, kps = dresscode_person("dresses")
    hidden = dresscode_agnostic_mask(parse, kps, "dresses")
    assert hidden[parse == 7].all() and hidden[np.isin(parse, (12, 13))].all()  # the dress and both legs
    assert not hidden[np.isin(parse, (2, 9))].any()  # hair, shoes
    # Arms under the 30 px wrist-elbow-shoulder polyline are hidden; the hands below it are kept.
    assert hidden[100, 30:50].all() and hidden[100, 142:162].all()
    assert not hidden[175:190, 30:40].any() and not hidden[175:190, 152:162].any()
    # Neck: head pixels below the shoulder line (y=72) raised by 20 * 256/512 = 10 px are hidden.
    assert hidden[62:72, 88:104].all() and not hidden[20:62][parse[20:62] == 11].any()
    # upper_body: upper clothes hidden, pants, legs and hands kept; same arm and neck handling.
    image_u, parse_u, _ = dresscode_person("upper_body")
    hidden_u = dresscode_agnostic_mask(parse_u, kps, "upper_body")
    assert hidden_u[parse_u == 4].all() and hidden_u[62:72, 88:104].all() and hidden_u[100, 30:50].all()
    assert not hidden_u[np.isin(parse_u, (6, 12, 13, 9))].any() and not hidden_u[175:190, 30:40].any()
    # A missing wrist is left out of the polyline (no stroke to the image corner): its hand stays kept.
    no_wrist = kps.copy()
    no_wrist[4] = 0
    hidden_nw = dresscode_agnostic_mask(parse, no_wrist, "dresses")
    assert not hidden_nw[:60, :20].any() and not hidden_nw[150:190, 30:40].any() and hidden_nw[100, 30:50].all()
    # Above 512 px the official larger kernels apply; the same labels are hidden / kept at 1024x768.
    big_parse = np.repeat(np.repeat(parse, 4, 0), 4, 1)
    big = dresscode_agnostic_mask(big_parse, kps * [4, 4, 1], "dresses")
    assert big[big_parse == 7].all() and not big[np.isin(big_parse, (2, 9))].any()
    with pytest.raises(ValueError, match="category"):
        dresscode_agnostic_mask(parse, kps, "auto")


def test_dresscode_layout_lower_body_and_dresses_through_the_reader(tmp_path):
    for cat in ("lower_body", "dresses"):
        image, parse, kps = dresscode_person(cat)
        root = write_dresscode_sample(tmp_path / "DressCode" / cat, image, parse, kps)
        ds = TryOnDataset(root, "dresscode", "test", "paired")
        assert ds.category == cat
        arrays = ds.load_arrays(0)
        loaded = read_dresscode_keypoints(root / "keypoints" / "020714_2.json") * np.array([0.5, 0.5, 1], np.float32)
        hidden = dresscode_agnostic_mask(parse, loaded, cat)
        np.testing.assert_array_equal(arrays["agnostic"], dresscode_agnostic(arrays["person"], parse, loaded, cat,
                                                                              fill=0))
        garment = parse == (6 if cat == "lower_body" else 7)
        assert (arrays["agnostic"][garment] == 0).all()  # the garment to replace is hidden (black)
        assert (arrays["agnostic"][~hidden] == arrays["person"][~hidden]).all()
        if cat == "lower_body":  # the upper clothes stay visible
            assert (arrays["agnostic"][parse == 4] == arrays["person"][parse == 4]).all()
        # The explicit option overrides the folder name: the same files read as upper_body give DAFlow's recipe.
        as_upper = TryOnDataset(root, "dresscode", "test", "paired", category="upper_body").load_arrays(0)
        np.testing.assert_array_equal(as_upper["agnostic"], agnostic_person(
            arrays["person"], DRESSCODE_TO_LIP[parse], loaded))


def test_dresscode_upper_body_agnostic_unchanged():
    """Regression: the upper_body agnostic is DAFlow's recipe, byte for byte what it was before lower_body /
    dresses were added (digest taken from that version on the hand-made person)."""
    import hashlib
    image, parse, kps = hand_made_person()
    out = agnostic_person(image, parse, kps)
    assert hashlib.sha256(out.tobytes()).hexdigest() == \
        "344edd8c7e08569d683b635787e0a5c798e76bce954a64a0349baad9e3dd9a26"
    kps[4] = 0
    assert hashlib.sha256(agnostic_person(image, parse, kps).tobytes()).hexdigest() == \
        "0f359bee83fc2f9d8208afed408d94820f6ea16bbd21e9b0465f0a1502b9ca6d"

"""common.data.detection_transforms: box / matrix tracking checked against the moved pixels, hand-computed sizes,
colour-op magnitudes, the teacher -> student box mapping, tensors and collation."""
import numpy as np
import pytest
import torch

import common.data.detection_transforms as T
from common.data.detection_transforms import (
    COLOR_OPS,
    ColorOp,
    MultiBranch,
    OneOf,
    Pipeline,
    RandomErase,
    RandomFlip,
    RandomResize,
    Resize,
    Rotate,
    Sequential,
    ShearX,
    ShearY,
    ShuffledSequential,
    TranslateX,
    TranslateY,
    collate_views,
    color_one_of,
    geometric_one_of,
    labeled_pipeline,
    rescale_size,
    start_view,
    strong_pipeline,
    to_tensor_view,
    transform_boxes,
    weak_pipeline,
)


def rect_sample(h, w, boxes):
    """Black image with white filled rectangles at integer x1y1x2y2 `boxes` (pixels x1..x2-1, y1..y2-1)."""
    image = np.zeros((h, w, 3), np.uint8)
    for x1, y1, x2, y2 in boxes:
        image[y1:y2, x1:x2] = 255
    return {"image": image, "boxes": np.asarray(boxes, np.float32), "labels": np.arange(len(boxes), dtype=np.int64),
            "image_id": 7, "ori_shape": (h, w)}


def pixel_extent(image, thr=127):
    """x1y1x2y2 (pixel edges) of the pixels brighter than thr (a white rectangle after bilinear warping)."""
    mask = image.mean(2) > thr
    xs, ys = np.flatnonzero(mask.any(0)), np.flatnonzero(mask.any(1))
    return np.array([xs[0], ys[0], xs[-1] + 1, ys[-1] + 1], np.float64)


def test_rescale_size_and_resize_by_hand():
    assert rescale_size(300, 500, 1333, 600) == (600, 1000)  # short-edge limited: scale 2
    assert rescale_size(100, 1000, 1333, 800) == (133, 1333)  # long-edge limited: scale 1.333
    assert rescale_size(480, 640, 800, 1333) == (800, 1067)  # the two edges may come in either order
    view = RandomResize((600, 600), 1333)(start_view(rect_sample(300, 500, [[10, 20, 110, 220]])),
                                          np.random.default_rng(0))
    assert view["image"].shape == (600, 1000, 3) and view["img_shape"] == (600, 1000)
    np.testing.assert_allclose(view["matrix"], np.diag([2.0, 2.0, 1.0]))
    np.testing.assert_allclose(view["boxes"], [[20, 40, 220, 440]])
    np.testing.assert_allclose(pixel_extent(view["image"]), view["boxes"][0], atol=1)
    view = Resize(1333, 800)(start_view(rect_sample(100, 1000, [[0, 0, 1000, 100]])))
    assert view["img_shape"] == (133, 1333)
    np.testing.assert_allclose(view["matrix"], np.diag([1.333, 1.33, 1.0]))  # realised per-axis factors
    np.testing.assert_allclose(view["boxes"], [[0, 0, 1333, 133]])


def test_random_resize_draws_the_short_edge_inclusively():
    resize = RandomResize((400, 401), 1333)
    rng = np.random.default_rng(0)
    heights = {resize(start_view(rect_sample(10, 20, [[1, 1, 5, 5]])), rng)["img_shape"][0] for _ in range(30)}
    assert heights == {400, 401}  # scale = min(1333 / 20, s / 10): the new height is the short edge s


def test_flip_maps_x_to_w_minus_x():
    sample = rect_sample(40, 100, [[10, 5, 30, 25]])
    view = RandomFlip(p=1.0)(start_view(sample), np.random.default_rng(0))
    np.testing.assert_allclose(view["boxes"], [[70, 5, 90, 25]])
    np.testing.assert_allclose(pixel_extent(view["image"]), [70, 5, 90, 25])
    np.testing.assert_allclose(view["matrix"], [[-1, 0, 100], [0, 1, 0], [0, 0, 1]])
    same = RandomFlip(p=0.0)(start_view(sample), np.random.default_rng(0))
    assert same["image"] is sample["image"] and np.array_equal(same["matrix"], np.eye(3))


@pytest.mark.parametrize("op", [TranslateX(), TranslateY(), Rotate(), ShearX(), ShearY()],
                         ids=lambda op: type(op).__name__)
def test_geometric_op_boxes_bound_the_moved_rectangle(op):
    sample = rect_sample(200, 200, [[40, 30, 90, 70]])
    filled = 0
    for seed in range(6):
        view = op(start_view(sample), np.random.default_rng(seed))
        assert view["image"].shape == (200, 200, 3) and view["labels"].tolist() == [0]
        # exact up to bilinear edges for shifts; rotate / shear also carry the official sub-pixel offset
        np.testing.assert_allclose(pixel_extent(view["image"]), view["boxes"][0], atol=1.5)
        np.testing.assert_allclose(transform_boxes(torch.tensor(sample["boxes"]), view["matrix"], (200, 200)),
                                   view["boxes"], atol=1e-3)
        filled += bool((view["image"] == 125).all(2).any())  # where the image moved away: the fill value
    assert filled >= 4


def test_official_magnitudes_of_the_geometric_ops():
    shape = (100, 200)
    np.testing.assert_allclose(TranslateX().affine(shape, 0.1), [[1, 0, 20], [0, 1, 0], [0, 0, 1]])
    np.testing.assert_allclose(TranslateY().affine(shape, -0.1), [[1, 0, 0], [0, 1, -10], [0, 0, 1]])
    np.testing.assert_allclose(ShearX().affine(shape, 30)[0, 1], np.tanh(-np.pi / 6))  # tanh, as the official
    np.testing.assert_allclose(ShearY().affine(shape, 30)[1, 0], np.tanh(np.pi / 6))
    rot = Rotate().affine(shape, 90)  # clockwise on screen (y down) about ((w - 1) / 2, (h - 1) / 2)
    np.testing.assert_allclose(rot @ [99.5, 49.5, 1], [99.5, 49.5, 1], atol=1e-9)
    np.testing.assert_allclose(rot @ [109.5, 49.5, 1], [99.5, 59.5, 1], atol=1e-9)


def test_boxes_moved_out_of_the_image_are_dropped_with_their_labels():
    sample = rect_sample(50, 100, [[10, 10, 30, 30], [60, 10, 90, 30], [5, 35, 95, 45]])
    view = TranslateX(ratio=(0.5, 0.5))(start_view(sample), np.random.default_rng(0))
    np.testing.assert_allclose(view["boxes"], [[60, 10, 80, 30], [55, 35, 100, 45]])
    assert view["labels"].tolist() == [0, 2]
    sample["ignore_boxes"] = np.array([[70, 0, 90, 5]], np.float32)
    view = TranslateX(ratio=(0.5, 0.5))(start_view(sample), np.random.default_rng(0))
    assert view["ignore_boxes"].shape == (0, 4) and view["labels"].tolist() == [0, 2]


def test_composed_pipelines_track_the_rectangle():
    sample = rect_sample(120, 160, [[40, 30, 100, 80]])
    tight = 0
    for seed in range(8):
        rng = np.random.default_rng(seed)
        geo = Pipeline([RandomResize((100, 300), 400), RandomFlip(), geometric_one_of()])(sample, rng)
        # the box bounds the moved rectangle; as in the official code it is not tight after the ShearX -> ShearY
        # pair (the second shear maps the first one's box) nor where a corner left the image (clipped corners)
        extent, box = pixel_extent(geo["image"]), geo["boxes"][0]
        assert (extent[:2] >= box[:2] - 1.5).all() and (extent[2:] <= box[2:] + 1.5).all()
        corners = np.array([[40, 30, 1], [100, 30, 1], [40, 80, 1], [100, 80, 1]]) @ geo["matrix"].T
        inside = (corners[:, :2] > 0).all() and (corners[:, 0] < geo["img_shape"][1]).all() \
            and (corners[:, 1] < geo["img_shape"][0]).all()
        direct = transform_boxes(torch.tensor(sample["boxes"]), geo["matrix"], geo["img_shape"])[0].numpy()
        if inside and np.allclose(direct, box, atol=1e-3):
            np.testing.assert_allclose(extent, box, atol=1.5)
            tight += 1
        weak = weak_pipeline((100, 300), 400)(sample, rng)
        np.testing.assert_allclose(pixel_extent(weak["image"]), weak["boxes"][0], atol=1.0)
        mapped = transform_boxes(torch.tensor(sample["boxes"]), weak["matrix"], weak["img_shape"])
        np.testing.assert_allclose(mapped, weak["boxes"], atol=1e-3)
        assert weak["image_id"] == 7 and weak["ori_shape"] == (120, 160)
    assert tight >= 4


def test_teacher_boxes_map_onto_the_student_view():
    sample = rect_sample(120, 160, [[40, 30, 100, 80], [10, 90, 30, 110]])
    for seed in range(10):
        rng = np.random.default_rng(seed)
        views = MultiBranch(weak=weak_pipeline((100, 300), 400), strong=strong_pipeline((100, 300), 400))(sample, rng)
        weak, strong = views["weak"], views["strong"]
        teacher_to_student = strong["matrix"] @ np.linalg.inv(weak["matrix"])
        mapped = transform_boxes(torch.tensor(weak["boxes"], dtype=torch.float64), teacher_to_student,
                                 strong["img_shape"])
        direct = transform_boxes(torch.tensor(sample["boxes"], dtype=torch.float64), strong["matrix"],
                                 strong["img_shape"])
        torch.testing.assert_close(mapped, direct, atol=1e-3, rtol=0)
        # the student's own boxes were mapped op by op: where nothing was clipped they contain the matrix-mapped
        # ones (equal except after the shear pair)
        h, w = strong["img_shape"]
        inside = ((direct[:, :2] > 0).all(1) & (direct[:, 2] < w) & (direct[:, 3] < h)).numpy()
        assert len(strong["boxes"]) == 2 and inside.any()
        assert (strong["boxes"][inside, :2] <= direct[inside, :2].numpy() + 1e-3).all()
        assert (strong["boxes"][inside, 2:] >= direct[inside, 2:].numpy() - 1e-3).all()


def test_transform_boxes_any_dtype_extra_columns_and_empty():
    boxes = torch.tensor([[10.0, 20.0, 30.0, 60.0, 0.9]], dtype=torch.float64)
    flip_scale = np.array([[-2.0, 0, 100], [0, 0.5, 0], [0, 0, 1]])
    out = transform_boxes(boxes, flip_scale, (50, 100))
    assert out.dtype == torch.float64
    torch.testing.assert_close(out, torch.tensor([[40.0, 10.0, 80.0, 30.0, 0.9]], dtype=torch.float64))
    out = transform_boxes(boxes[:, :4].float(), torch.tensor(flip_scale), (20, 70))  # clipped to (h, w)
    torch.testing.assert_close(out, torch.tensor([[40.0, 10.0, 70.0, 20.0]]))
    homography = torch.tensor([[1.0, 0, 0], [0, 1, 0], [0, 0, 2]])  # the homogeneous divide
    torch.testing.assert_close(transform_boxes(boxes[:, :4], homography, (100, 100)),
                               torch.tensor([[5.0, 10.0, 15.0, 30.0]], dtype=torch.float64))
    assert transform_boxes(torch.zeros(0, 4), np.eye(3), (10, 10)).shape == (0, 4)


def test_colour_ops_keep_the_geometry_and_follow_the_stac_magnitudes():
    sample = rect_sample(32, 48, [[4, 4, 20, 20]])
    sample["image"][:, 24:] = 100
    rng = np.random.default_rng(0)
    for name in COLOR_OPS:
        view = ColorOp(name)(start_view(sample), rng)
        assert view["image"].shape == sample["image"].shape and view["image"].dtype == np.uint8
        assert np.array_equal(view["matrix"], np.eye(3)) and np.array_equal(view["boxes"], sample["boxes"])
    img = np.array([[[100, 200, 0]]], np.uint8)
    m5 = lambda name: ColorOp(name, magnitude_range=(5, 6))(start_view({"image": img, "boxes": np.zeros((0, 4)),
                                                                         "labels": np.zeros(0)}), rng)["image"]
    assert m5("solarize").tolist() == [[[100, 55, 0]]]  # threshold int(5 * 256 / 10) = 128
    assert m5("posterize").tolist() == [[[64, 192, 0]]]  # 4 - int(5 * 4 / 10) = 2 bits
    assert m5("brightness").tolist() == img.tolist()  # factor 5 * 1.8 / 10 + 0.1 = 1
    m9 = ColorOp("brightness", magnitude_range=(9, 10))(start_view({"image": img, "boxes": np.zeros((0, 4)),
                                                                    "labels": np.zeros(0)}), rng)["image"]
    assert m9.tolist() == [[[172, 255, 0]]]  # factor 1.72
    with pytest.raises(ValueError):
        ColorOp("blur")


def test_one_of_is_uniform_and_shuffled_sequential_permutes():
    tag = lambda k: (lambda view, rng: {**view, "trace": view.get("trace", "") + k})
    rng = np.random.default_rng(0)
    counts = {}
    for _ in range(3000):
        k = OneOf([tag("a"), tag("b"), tag("c")])({}, rng)["trace"]
        counts[k] = counts.get(k, 0) + 1
    assert sorted(counts) == ["a", "b", "c"] and all(900 < c < 1100 for c in counts.values())
    orders = {ShuffledSequential([tag("a"), tag("b")])({}, rng)["trace"] for _ in range(50)}
    assert orders == {"ab", "ba"}
    assert Sequential([tag("a"), tag("b")])({}, rng)["trace"] == "ab"
    assert len(color_one_of().transforms) == 9 and len(geometric_one_of().transforms) == 4


def test_random_erase_fills_square_ratio_patches_only():
    sample = rect_sample(100, 200, [[10, 10, 50, 50]])
    sample["image"][:] = 0
    for seed in range(10):
        view = RandomErase()(start_view(sample), np.random.default_rng(seed))
        erased = (view["image"] == 125).all(2)
        assert ((view["image"] == 0) | (view["image"] == 125)).all()
        assert erased.sum() <= 4 * 20 * 40  # at most 4 patches of at most 0.2 h x 0.2 w
        assert np.array_equal(view["boxes"], sample["boxes"]) and np.array_equal(view["matrix"], np.eye(3))
    assert (sample["image"] == 0).all()  # the input is not modified


def test_pipelines_are_deterministic_in_the_rng_and_leave_the_sample_alone():
    sample = rect_sample(120, 160, [[40, 30, 100, 80]])
    before = sample["image"].copy()
    for make in (labeled_pipeline, weak_pipeline, strong_pipeline):
        pipe = make((100, 300), 400)
        a, b = pipe(sample, np.random.default_rng(5)), pipe(sample, np.random.default_rng(5))
        assert np.array_equal(a["image"], b["image"]) and np.array_equal(a["boxes"], b["boxes"])
        assert np.array_equal(a["matrix"], b["matrix"]) and a["img_shape"] == a["image"].shape[:2]
        outs = [pipe(sample, np.random.default_rng(s))["matrix"] for s in range(6)]
        assert any(not np.array_equal(outs[0], o) for o in outs[1:])
    assert np.array_equal(sample["image"], before)
    test = T.test_pipeline(400, 100)
    assert test(sample, None)["img_shape"] == (100, 133)


def test_to_tensor_view_and_collate_views():
    image = np.zeros((50, 70, 3), np.uint8)
    image[0, 0] = (124, 116, 104)
    image[0, 1] = (255, 255, 255)
    view = start_view({"image": image, "boxes": np.array([[1, 2, 3, 4]], np.float32), "labels": np.array([2]),
                       "image_id": 1})
    t = to_tensor_view(view)
    assert t["image"].shape == (3, 50, 70) and t["image"].dtype == torch.float32
    torch.testing.assert_close(t["image"][:, 0, 0], torch.tensor([(124 - 123.675) / 58.395, (116 - 116.28) / 57.12,
                                                                   (104 - 103.53) / 57.375]))
    torch.testing.assert_close(t["image"][0, 0, 1], torch.tensor((255 - 123.675) / 58.395))
    assert t["labels"].dtype == torch.int64 and t["boxes"].dtype == torch.float32 and t["matrix"].shape == (3, 3)
    other = start_view({"image": np.full((64, 33, 3), 255, np.uint8), "boxes": np.zeros((0, 4), np.float32),
                        "labels": np.zeros(0, np.int64), "image_id": 2})
    batch = collate_views([t, other])  # tensor views and raw views mix
    assert batch["image"].shape == (2, 3, 64, 96) and batch["matrix"].shape == (2, 3, 3)
    torch.testing.assert_close(batch["image"][0, :, :50, :70], t["image"])
    assert (batch["image"][0, :, 50:] == 0).all() and (batch["image"][0, :, :, 70:] == 0).all()
    assert (batch["image"][1, :, :, 33:] == 0).all() and (batch["image"][1, :, :, :33] > 2).all()
    assert batch["img_shape"] == [(50, 70), (64, 33)] and batch["image_id"] == [1, 2]
    assert [b.shape for b in batch["boxes"]] == [(1, 4), (0, 4)] and batch["labels"][0].tolist() == [2]
    assert collate_views([other], size_divisor=1)["image"].shape == (1, 3, 64, 33)

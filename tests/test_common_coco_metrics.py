"""common.metrics.coco: pycocotools bbox mAP on hand-made cases whose answers are worked out by hand, and
detections_to_coco."""
import copy
import json

import numpy as np
import pytest
import torch

from common.metrics.coco import (
    CocoBboxResult,
    coco_bbox_eval,
    coco_bbox_map,
    coco_per_class_ap,
    detections_to_coco,
    load_coco_gt,
)


def make_gt(boxes_per_image, categories=(1, 3)):
    """boxes_per_image: {image_id: [(category_id, [x, y, w, h]), ...]}; area = w * h."""
    images = [{"id": i, "file_name": f"{i}.jpg", "width": 640, "height": 480} for i in boxes_per_image]
    anns = [{"id": n + 1, "image_id": i, "category_id": c, "bbox": list(b), "area": b[2] * b[3], "iscrowd": 0}
            for n, (i, c, b) in enumerate((i, c, b) for i, objs in boxes_per_image.items() for c, b in objs)]
    return {"images": images, "annotations": anns, "categories": [{"id": c, "name": f"c{c}"} for c in categories]}


def det(image_id, category_id, bbox, score):
    return {"image_id": image_id, "category_id": category_id, "bbox": list(bbox), "score": score}


SMALL, MEDIUM, LARGE = [10, 10, 20, 20], [100, 100, 50, 50], [200, 200, 150, 120]   # areas 400, 2500, 18000


def test_perfect_detections_score_one_in_every_area():
    gt = make_gt({1: [(1, SMALL), (3, LARGE)], 2: [(1, MEDIUM)]})
    dets = [det(1, 1, SMALL, 0.9), det(1, 3, LARGE, 0.8), det(2, 1, MEDIUM, 0.7)]
    m = coco_bbox_map(gt, dets)
    keys = ("bbox_mAP", "bbox_mAP_50", "bbox_mAP_75", "bbox_mAP_s", "bbox_mAP_m", "bbox_mAP_l")
    assert m == pytest.approx({k: 1.0 for k in keys})


def test_iou_0_62_counts_at_50_55_60_only():
    # det [0, 0, 100, 62] inside GT [0, 0, 100, 100]: IoU 0.62 -> a match at thresholds .50, .55, .60 (3 of 10)
    gt = make_gt({1: [(1, [0, 0, 100, 100])]})
    m = coco_bbox_map(gt, [det(1, 1, [0, 0, 100, 62], 0.9)])
    assert m["bbox_mAP_50"] == pytest.approx(1.0) and m["bbox_mAP_75"] == 0.0
    assert m["bbox_mAP"] == pytest.approx(0.3)
    assert m["bbox_mAP_l"] == pytest.approx(0.3)                        # GT area 10000 > 96^2
    assert "bbox_mAP_s" not in m and "bbox_mAP_m" not in m              # no GT of those sizes: pycocotools says -1


def test_false_positive_ranked_above_a_true_positive():
    """2 GTs; detections by score: TP, FP, TP. Recall (.5, .5, 1), precision (1, .5, 2/3); the monotone envelope is
    (1, 2/3, 2/3). Of the 101 recall points 0, .01, ..., 1 the 51 up to .50 read precision 1 and the 50 above read 2/3:
    AP = (51 + 50 * 2/3) / 101 at every IoU threshold (the true positives are exact)."""
    a, b = [10, 10, 50, 50], [300, 200, 60, 40]
    gt = make_gt({1: [(1, a)], 2: [(1, b)]})
    dets = [det(1, 1, a, 0.9), det(1, 1, [400, 400, 30, 30], 0.8), det(2, 1, b, 0.7)]
    want = (51 + 50 * 2 / 3) / 101
    m = coco_bbox_map(gt, dets)
    assert m["bbox_mAP"] == pytest.approx(want) and m["bbox_mAP_50"] == pytest.approx(want)
    assert m["bbox_mAP_75"] == pytest.approx(want)
    # both GTs are medium; the unmatched FP is 30 x 30 (small), so the medium evaluation ignores it
    assert m["bbox_mAP_m"] == pytest.approx(1.0) and "bbox_mAP_s" not in m
    # the FP ranked last instead costs nothing
    dets[1]["score"] = 0.1
    assert coco_bbox_map(gt, dets)["bbox_mAP"] == pytest.approx(1.0)


def test_small_medium_large_keys():
    gt = make_gt({1: [(1, SMALL), (1, LARGE)]})
    m = coco_bbox_map(gt, [det(1, 1, SMALL, 0.9)])                      # the large object is missed
    assert m["bbox_mAP_s"] == pytest.approx(1.0) and m["bbox_mAP_l"] == 0.0 and "bbox_mAP_m" not in m
    # all-area AP: recall reaches .5 at precision 1 -> 51 of 101 recall points
    assert m["bbox_mAP"] == pytest.approx(51 / 101)


def test_empty_detections_score_zero():
    gt = make_gt({1: [(1, SMALL), (3, LARGE)]})
    m = coco_bbox_map(gt, [])
    assert m == {"bbox_mAP": 0.0, "bbox_mAP_50": 0.0, "bbox_mAP_75": 0.0, "bbox_mAP_s": 0.0, "bbox_mAP_l": 0.0}


def test_per_class_summary_path_and_no_mutation(tmp_path):
    a, b = [10, 10, 50, 50], [300, 200, 60, 40]
    gt = make_gt({1: [(1, a), (3, SMALL)], 2: [(1, b)]}, categories=(1, 3, 7))
    dets = [det(1, 1, a, 0.9), det(1, 1, [400, 400, 30, 30], 0.8), det(2, 1, b, 0.7), det(1, 3, SMALL, 0.5)]
    gt_before, dets_before = copy.deepcopy(gt), copy.deepcopy(dets)
    path = tmp_path / "instances.json"
    path.write_text(json.dumps(gt))
    result = coco_bbox_eval(str(path), dets)
    assert isinstance(result, CocoBboxResult)
    assert result.per_class_ap == pytest.approx({1: (51 + 50 * 2 / 3) / 101, 3: 1.0})   # class 7 has no GT
    assert coco_per_class_ap(gt, dets) == result.per_class_ap
    assert result.metrics["bbox_mAP"] == pytest.approx(np.mean(list(result.per_class_ap.values())))
    assert result.metrics == coco_bbox_map(path, dets) == coco_bbox_map(gt, dets)
    assert "Average Precision" in result.summary and len(result.summary.splitlines()) == 12
    assert gt == gt_before and dets == dets_before                     # inputs untouched
    assert load_coco_gt(gt) == gt and load_coco_gt(gt)["annotations"][0] is not gt["annotations"][0]


def test_bad_inputs_raise():
    gt = make_gt({1: [(1, SMALL)]})
    with pytest.raises(ValueError, match="image ids"):
        coco_bbox_map(gt, [det(99, 1, SMALL, 0.9)])
    no_area = copy.deepcopy(gt)
    del no_area["annotations"][0]["area"]
    with pytest.raises(ValueError, match="area"):
        coco_bbox_map(no_area, [])
    with pytest.raises(ValueError, match="categories"):
        load_coco_gt({"images": [], "annotations": []})


def test_detections_to_coco():
    boxes = torch.tensor([[10.0, 20.0, 40.0, 60.0], [0.5, 1.5, 2.5, 4.0]])
    entries = detections_to_coco(boxes, torch.tensor([0.9, 0.25]), torch.tensor([1, 0]), image_id=np.int64(7),
                                 label_to_cat_id=[1, 3])
    assert entries == [{"image_id": 7, "category_id": 3, "bbox": [10.0, 20.0, 30.0, 40.0], "score": pytest.approx(0.9)},
                       {"image_id": 7, "category_id": 1, "bbox": [0.5, 1.5, 2.0, 2.5], "score": 0.25}]
    assert all(type(v) is float for e in entries for v in [*e["bbox"], e["score"]])
    assert type(entries[0]["image_id"]) is int and type(entries[0]["category_id"]) is int
    # numpy input, a dict mapping, no detections
    assert detections_to_coco(np.array([[1, 2, 3, 5]]), np.array([0.5]), np.array([2]), 3, {2: 90})[0]["bbox"] == \
        [1.0, 2.0, 2.0, 3.0]
    assert detections_to_coco(torch.zeros(0, 4), torch.zeros(0), torch.zeros(0, dtype=torch.long), 1, [1]) == []
    with pytest.raises(ValueError, match="boxes"):
        detections_to_coco(torch.zeros(2, 4), torch.zeros(1), torch.zeros(2), 1, [1])


def test_round_trip_with_detections_to_coco():
    gt = make_gt({5: [(1, SMALL), (3, MEDIUM)]})
    xyxy = torch.tensor([[10.0, 10.0, 30.0, 30.0], [100.0, 100.0, 150.0, 150.0]])
    dets = detections_to_coco(xyxy, torch.tensor([0.8, 0.6]), torch.tensor([0, 1]), 5, [1, 3])
    assert coco_bbox_map(gt, dets)["bbox_mAP"] == pytest.approx(1.0)

"""COCO box detection metrics computed by pycocotools, the reference evaluator of the field.

`coco_bbox_eval` runs `COCOeval(iouType='bbox')` with its default parameters (IoU thresholds .50:.05:.95, 101 recall
points, maxDets 1/10/100, areas all/small/medium/large from the GT's `area` field) on the images of the GT file, and
returns pycocotools' numbers as fractions:
    bbox_mAP, bbox_mAP_50, bbox_mAP_75, bbox_mAP_s, bbox_mAP_m, bbox_mAP_l   (= COCOeval.stats[0..5])
An s/m/l key is left out when pycocotools reports -1 (no GT in that area range); the three main keys report such a -1
(a GT file with no annotation at all) as 0.0. pycocotools' `loadRes` fails on an empty result list; an empty list is
evaluated here against an empty result set instead, which scores 0 wherever there is GT.
pycocotools' console output is captured and returned as `summary`.
"""
import contextlib
import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

STAT_KEYS = ("bbox_mAP", "bbox_mAP_50", "bbox_mAP_75", "bbox_mAP_s", "bbox_mAP_m", "bbox_mAP_l")
MAIN_KEYS = STAT_KEYS[:3]


@dataclass
class CocoBboxResult:
    metrics: dict        # STAT_KEYS -> fraction (see the module docstring for missing keys)
    per_class_ap: dict   # COCO category id -> AP@[.5:.95] (area all, maxDets 100); categories without GT are left out
    summary: str         # pycocotools' printed summary (the 12 AP/AR lines)


def load_coco_gt(gt):
    """A COCO instances dict from a path to its JSON file or from an already-loaded dict (which is copied, since
    pycocotools writes an `ignore` flag into the annotations). Every annotation needs `area`, as pycocotools uses it."""
    if isinstance(gt, (str, Path)):
        with open(gt) as f:
            gt = json.load(f)
    missing = [key for key in ("images", "annotations", "categories") if key not in gt]
    if missing:
        raise ValueError(f"COCO ground truth lacks {missing}")
    for ann in gt["annotations"]:
        if "area" not in ann:
            raise ValueError(f"COCO annotation {ann.get('id')} has no 'area' (pycocotools reads it for APs/APm/APl)")
    return {**gt, "annotations": [dict(ann) for ann in gt["annotations"]]}


def coco_bbox_eval(gt, detections):
    """Evaluate `detections` (a list of {"image_id", "category_id", "bbox": [x, y, w, h], "score"}) against `gt` (a
    path or a dict) with pycocotools. Returns a CocoBboxResult."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt = load_coco_gt(gt)
    image_ids = {img["id"] for img in gt["images"]}
    unknown = sorted({d["image_id"] for d in detections} - image_ids)
    if unknown:
        raise ValueError(f"detections refer to image ids that are not in the ground truth: {unknown[:10]}")

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        coco_gt = COCO()
        coco_gt.dataset = gt
        coco_gt.createIndex()
        if detections:
            coco_dt = coco_gt.loadRes([dict(d) for d in detections])  # loadRes writes area/id/iscrowd into each dict
        else:
            coco_dt = COCO()
            coco_dt.dataset = {"images": gt["images"], "categories": gt["categories"], "annotations": []}
            coco_dt.createIndex()
        evaluator = COCOeval(coco_gt, coco_dt, iouType="bbox")
        evaluator.params.imgIds = sorted(image_ids)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()

    metrics = {}
    for key, value in zip(STAT_KEYS, evaluator.stats[:6], strict=True):
        if value > -1:
            metrics[key] = float(value)
        elif key in MAIN_KEYS:
            metrics[key] = 0.0
    # precision: (T iou thresholds, R recall points, K categories, A areas, M maxDets); -1 where a category has no GT
    precision = evaluator.eval["precision"][:, :, :, 0, -1]
    per_class_ap = {}
    for k, cat_id in enumerate(evaluator.params.catIds):
        p = precision[:, :, k]
        if (p > -1).any():
            per_class_ap[cat_id] = float(np.mean(p[p > -1]))
    summary = "\n".join(line for line in out.getvalue().splitlines() if "Average" in line)
    return CocoBboxResult(metrics=metrics, per_class_ap=per_class_ap, summary=summary)


def coco_bbox_map(gt, detections):
    """bbox_mAP, bbox_mAP_50, bbox_mAP_75 and (where the GT has objects of that size) bbox_mAP_s/m/l, as fractions."""
    return coco_bbox_eval(gt, detections).metrics


def coco_per_class_ap(gt, detections):
    """COCO category id -> AP@[.5:.95] for every category that has GT."""
    return coco_bbox_eval(gt, detections).per_class_ap


def detections_to_coco(boxes_xyxy, scores, labels, image_id, label_to_cat_id):
    """One image's detections as COCO result entries.

    boxes_xyxy: (K, 4) x1y1x2y2 in pixels of the original image (tensor or array); scores (K,); labels (K,) contiguous
    class indices; label_to_cat_id: a sequence or dict mapping a class index to its COCO category id.
    -> K dicts {"image_id", "category_id", "bbox": [x, y, w, h], "score"} of python numbers.
    """
    boxes, scores, labels = (_numpy(v) for v in (boxes_xyxy, scores, labels))
    boxes = boxes.reshape(-1, 4).astype(np.float64)
    if not len(boxes) == len(scores) == len(labels):
        raise ValueError(f"got {len(boxes)} boxes, {len(scores)} scores and {len(labels)} labels")
    xywh = np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1)
    return [{"image_id": int(image_id), "category_id": int(label_to_cat_id[int(c)]),
             "bbox": [float(v) for v in box], "score": float(s)}
            for box, s, c in zip(xywh, scores, labels, strict=True)]


def _numpy(x):
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)

"""COCO bbox evaluation of a detector and pictures of its detections (shared by train and eval)."""
import json
from pathlib import Path

import cv2
import numpy as np
import torch

from common.data.detection_transforms import IMAGENET_MEAN_255, IMAGENET_STD_255, collate_views, transform_boxes
from common.metrics.coco import coco_bbox_eval, detections_to_coco
from common.runtime import autocast

from .semi_step import to_device

MEAN = np.array(IMAGENET_MEAN_255, dtype=np.float32)
STD = np.array(IMAGENET_STD_255, dtype=np.float32)


def map_boxes_unclipped(boxes, matrix):
    """(K, 4) x1y1x2y2 boxes through a (3, 3) matrix by their 4 corners (min / max), NOT clipped to any image: the
    official test path (mmdet `bbox_mapping_back` / `bboxes / scale_factor`) leaves boxes that reach past the image
    edge as they are."""
    if boxes.shape[0] == 0:
        return boxes
    x1, y1, x2, y2 = boxes.unbind(1)
    corners = torch.stack([torch.stack(c, -1) for c in ((x1, y1), (x2, y1), (x2, y2), (x1, y2))], 1)  # (K, 4, 2)
    pts = torch.cat([corners, torch.ones_like(corners[..., :1])], -1) @ matrix.to(boxes).T
    pts = pts[..., :2] / pts[..., 2:3]
    return torch.cat([pts.min(1).values, pts.max(1).values], 1)


@torch.no_grad()
def run_detector(model, dataset, device, cfg, batch_size=2, num_workers=0, amp=False, progress=None):
    """Detections of `model` on every image of `dataset`, in ORIGINAL image pixels, as COCO result entries.

    Boxes are not clipped to the image (official), unless `cfg.clip_test_boxes`.
    Returns (COCO results list, list of (view dict, detections in view pixels) for the first `cfg.vis_images`)."""
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, num_workers=num_workers,
                                         collate_fn=collate_views)
    model.eval()
    results, shown = [], []
    for batch in (progress(loader, desc="eval") if progress else loader):
        batch = to_device(batch, device)
        with autocast(device, amp):
            dets = model.predict(batch["image"], batch["img_shape"], score_thr=cfg.score_thr, nms_pre=cfg.nms_pre,
                                 iou_thr=cfg.nms_iou, max_per_img=cfg.max_per_img,
                                 clip=getattr(cfg, "clip_test_boxes", False))
        for i, det in enumerate(dets):
            image_id = int(batch["image_id"][i])
            back = torch.linalg.inv(batch["matrix"][i].float())  # view pixels -> original image pixels
            if getattr(cfg, "clip_test_boxes", False):
                boxes = transform_boxes(det["boxes"].float(), back, batch["ori_shape"][i])
            else:  # official: rescaled back, not clipped
                boxes = map_boxes_unclipped(det["boxes"].float(), back)
            results += detections_to_coco(boxes.cpu(), det["scores"].float().cpu(), det["labels"].cpu(), image_id,
                                          dataset.label_to_cat_id)
            if len(shown) < cfg.vis_images:
                shown.append((batch["image"][i].cpu(), batch["img_shape"][i],
                              {k: v.float().cpu() if k != "labels" else v.cpu() for k, v in det.items()}))
    return results, shown


def evaluate(model, dataset, device, cfg, out_dir, prefix="", **kw):
    """bbox mAP of `model` on `dataset` -> metrics dict. Writes into out_dir the detections (COCO results JSON),
    pycocotools' summary (`coco_summary.txt`), the AP of every class (`per_class_ap.json`) and a picture."""
    results, shown = run_detector(model, dataset, device, cfg, **kw)
    out_dir = Path(out_dir)
    (out_dir / f"{prefix}detections.json").write_text(json.dumps(results))
    evaluation = coco_bbox_eval(dataset.ann_file, results)
    metrics = evaluation.metrics
    (out_dir / f"{prefix}coco_summary.txt").write_text(evaluation.summary)
    names = {cat_id: name for cat_id, name in zip(dataset.label_to_cat_id, dataset.class_names, strict=True)}
    per_class = {names.get(cat_id, str(cat_id)): ap for cat_id, ap in evaluation.per_class_ap.items()}
    (out_dir / f"{prefix}per_class_ap.json").write_text(json.dumps(per_class, indent=1))
    if shown:
        cv2.imwrite(str(out_dir / f"{prefix}detections.png"), detection_grid(shown, dataset.class_names))
    return metrics


def denormalize(image):
    """(3, H, W) normalised tensor -> uint8 HxWx3 BGR for OpenCV."""
    rgb = image.permute(1, 2, 0).numpy() * STD + MEAN
    return np.ascontiguousarray(np.clip(rgb, 0, 255).astype(np.uint8)[:, :, ::-1])


def draw_boxes(image_bgr, boxes, labels, scores=None, class_names=(), color=(0, 220, 0), min_score=0.3):
    """Draw boxes with 'name score' captions; boxes under `min_score` are skipped."""
    out = image_bgr.copy()
    for j, (box, label) in enumerate(zip(boxes.tolist(), labels.tolist(), strict=True)):
        score = None if scores is None else float(scores[j])
        if score is not None and score < min_score:
            continue
        x1, y1, x2, y2 = (int(round(v)) for v in box)
        cv2.rectangle(out, (x1, y1), (x2, y2), color, 1)
        name = class_names[label] if label < len(class_names) else str(label)
        text = name if score is None else f"{name} {score:.2f}"
        cv2.putText(out, text, (x1 + 2, max(y1 - 3, 9)), cv2.FONT_HERSHEY_SIMPLEX, 0.35, color, 1, cv2.LINE_AA)
    return out


def detection_grid(shown, class_names, columns=4, cell=256):
    """A grid of images with their detections (score >= 0.3; boxes without scores are all drawn), each cell
    scaled to `cell` px on its long side."""
    tiles = []
    for image, (h, w), det in shown:
        canvas = denormalize(image)[:h, :w]
        canvas = draw_boxes(canvas, det["boxes"], det["labels"], det.get("scores"), class_names)
        scale = cell / max(h, w)
        tile = np.full((cell, cell, 3), 255, np.uint8)
        small = cv2.resize(canvas, (max(1, round(w * scale)), max(1, round(h * scale))))
        tile[: small.shape[0], : small.shape[1]] = small
        tiles.append(tile)
    while len(tiles) % columns:
        tiles.append(np.full((cell, cell, 3), 255, np.uint8))
    rows = [np.concatenate(tiles[i:i + columns], axis=1) for i in range(0, len(tiles), columns)]
    return np.concatenate(rows, axis=0)

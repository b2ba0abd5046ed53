"""Region similarity J and boundary accuracy F as the official DAVIS-2017 evaluation computes them.

A line-by-line port of `davisvideochallenge/davis2017-evaluation` (`davis2017/metrics.py`, `utils.py`,
`evaluation.py`, `evaluation_method.py`), semi-supervised task, so our numbers can be put beside the
official tool's on the same PNGs:

- J (`db_eval_iou`): |S ∩ G| / |S ∪ G| outside void pixels; 1 when the union is empty.
- F (`f_measure`): 1-pixel boundary maps (`seg2bmap`), each dilated with a disk of radius
  ceil(0.008 * ||(H, W)||_2) pixels via cv2.dilate (8 px at 854x480); precision = |B_pred ∧ dil(B_gt)| /
  |B_pred|, recall = |B_gt ∧ dil(B_pred)| / |B_gt|, F = 2PR / (P + R). Both boundaries empty -> 1, exactly
  one empty -> 0. (A dilation approximation, no bipartite matching, exactly like the official Python code.)
- Semi-supervised: frames 1..N-2 only (first and last dropped); objects = 1..max id of GT frame 0; a
  prediction with fewer ids is zero-padded, one with more is an error; void (255) is read as background in
  GT and not used for scoring (the official code passes `None`).
- Per object: mean (nanmean), recall (fraction > 0.5) and decay (mean of the first of 4 bins minus the
  last; bin edges as `db_statistics`, including its uint8 cast). Global J-Mean / F-Mean pool all objects of
  all sequences; J&F-Mean = (J-Mean + F-Mean) / 2.
"""
import math
import warnings

import cv2
import numpy as np

VOID = 255


def disk(radius):
    """skimage.morphology.disk(radius): the (2r+1)^2 uint8 footprint of x^2 + y^2 <= r^2."""
    r = np.arange(-radius, radius + 1)
    x, y = np.meshgrid(r, r)
    return (x ** 2 + y ** 2 <= radius ** 2).astype(np.uint8)


def db_eval_iou(annotation, segmentation, void_pixels=None):
    """J for one mask or a stack: (..., H, W) bool-like -> float or (...,) array."""
    annotation, segmentation = np.asarray(annotation).astype(bool), np.asarray(segmentation).astype(bool)
    if annotation.shape != segmentation.shape:
        raise ValueError(f"annotation {annotation.shape} and segmentation {segmentation.shape} differ")
    keep = ~(np.zeros_like(segmentation) if void_pixels is None else np.asarray(void_pixels).astype(bool))
    inters = np.sum(segmentation & annotation & keep, axis=(-2, -1))
    union = np.sum((segmentation | annotation) & keep, axis=(-2, -1))
    with np.errstate(divide="ignore", invalid="ignore"):
        j = inters / union
    if j.ndim == 0:
        return 1.0 if np.isclose(union, 0) else float(j)
    j[np.isclose(union, 0)] = 1
    return j


def seg2bmap(seg):
    """The official `_seg2bmap` at the mask's own size: a pixel is boundary if it differs from its east,
    south or south-east neighbour; the last row compares east only, the last column south only, and the
    bottom-right pixel is never boundary. (H, W) -> (H, W) bool."""
    seg = np.asarray(seg).astype(bool)
    e, s, se = np.zeros_like(seg), np.zeros_like(seg), np.zeros_like(seg)
    e[:, :-1] = seg[:, 1:]
    s[:-1, :] = seg[1:, :]
    se[:-1, :-1] = seg[1:, 1:]
    b = (seg ^ e) | (seg ^ s) | (seg ^ se)
    b[-1, :] = seg[-1, :] ^ e[-1, :]
    b[:, -1] = seg[:, -1] ^ s[:, -1]
    b[-1, -1] = 0
    return b


def boundary_radius(shape, bound_th=0.008):
    """Dilation radius in pixels: `bound_th` itself if >= 1, else ceil(bound_th * ||(H, W)||_2)."""
    return bound_th if bound_th >= 1 else math.ceil(bound_th * np.linalg.norm(shape[:2]))


def f_measure(foreground_mask, gt_mask, void_pixels=None, bound_th=0.008):
    """Boundary F of one predicted mask against one GT mask (both (H, W) bool-like)."""
    foreground_mask, gt_mask = np.asarray(foreground_mask).astype(bool), np.asarray(gt_mask).astype(bool)
    keep = np.ones_like(gt_mask) if void_pixels is None else ~np.asarray(void_pixels).astype(bool)
    footprint = disk(boundary_radius(foreground_mask.shape, bound_th))
    fg_boundary, gt_boundary = seg2bmap(foreground_mask & keep), seg2bmap(gt_mask & keep)
    fg_dil = cv2.dilate(fg_boundary.astype(np.uint8), footprint)
    gt_dil = cv2.dilate(gt_boundary.astype(np.uint8), footprint)
    n_fg, n_gt = fg_boundary.sum(), gt_boundary.sum()
    if n_fg == 0 and n_gt > 0:
        precision, recall = 1.0, 0.0
    elif n_fg > 0 and n_gt == 0:
        precision, recall = 0.0, 1.0
    elif n_fg == 0 and n_gt == 0:
        precision, recall = 1.0, 1.0
    else:
        precision = np.sum(fg_boundary * gt_dil) / float(n_fg)
        recall = np.sum(gt_boundary * fg_dil) / float(n_gt)
    if precision + recall == 0:
        return 0.0
    return float(2 * precision * recall / (precision + recall))


def db_eval_boundary(annotation, segmentation, void_pixels=None, bound_th=0.008):
    """F per frame of a (T, H, W) stack (or a single (H, W) mask)."""
    annotation, segmentation = np.asarray(annotation), np.asarray(segmentation)
    if annotation.shape != segmentation.shape:
        raise ValueError(f"annotation {annotation.shape} and segmentation {segmentation.shape} differ")
    if annotation.ndim == 2:
        return f_measure(segmentation, annotation, void_pixels, bound_th)
    out = np.zeros(len(annotation))
    for t in range(len(annotation)):
        void = None if void_pixels is None else void_pixels[t]
        out[t] = f_measure(segmentation[t], annotation[t], void, bound_th)
    return out


def db_statistics(per_frame_values):
    """(mean, recall, decay) of one object's per-frame J or F, as the official `utils.db_statistics`."""
    values = np.asarray(per_frame_values, dtype=np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)
        mean = np.nanmean(values)
        recall = np.nanmean(values > 0.5)
    # 4 bins over the frames; the official code casts the bin edges to uint8 (wraps beyond 255 frames)
    ids = (np.round(np.linspace(1, len(values), 5) + 1e-10) - 1).astype(np.uint8)
    bins = [values[ids[i]:ids[i + 1] + 1] for i in range(4)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)
        decay = np.nanmean(bins[0]) - np.nanmean(bins[3])
    return float(mean), float(recall), float(decay)


def split_objects(ids, num_objects):
    """(T, H, W) ids -> (num_objects, T, H, W) bool, object k+1 in slot k (void and others are background)."""
    ids = np.asarray(ids)
    return np.stack([ids == k for k in range(1, num_objects + 1)]) if num_objects else \
        np.zeros((0, *ids.shape), bool)


def evaluate_sequence(gt_ids, pred_ids, bound_th=0.008):
    """Per-object per-frame J and F of one sequence, semi-supervised protocol.

    Args:
        gt_ids: (T, H, W) GT object ids of every frame (255 = void, read as background).
        pred_ids: (T, H, W) predicted ids of the same frames (frame 0 is ignored, as the official tool does).
    Returns (J, F), each (num_objects, T - 2) over frames 1..T-2.
    """
    gt_ids, pred_ids = np.asarray(gt_ids), np.asarray(pred_ids)
    if gt_ids.shape != pred_ids.shape:
        raise ValueError(f"GT {gt_ids.shape} and prediction {pred_ids.shape} differ in shape")
    gt_ids = np.where(gt_ids == VOID, 0, gt_ids)
    num_objects = int(gt_ids[0].max())
    gt, pred = gt_ids[1:-1], pred_ids[1:-1]
    num_pred = int(pred.max(initial=0))
    if num_pred > num_objects:
        raise ValueError(f"the prediction has id {num_pred} but the GT has only {num_objects} objects in frame 0")
    gt_masks, pred_masks = split_objects(gt, num_objects), split_objects(pred, num_objects)
    j = np.zeros((num_objects, len(gt)))
    f = np.zeros((num_objects, len(gt)))
    for k in range(num_objects):
        j[k] = db_eval_iou(gt_masks[k], pred_masks[k])
        f[k] = db_eval_boundary(gt_masks[k], pred_masks[k], bound_th=bound_th)
    return j, f


def davis_summary(per_sequence):
    """Pool per-object statistics over sequences like `evaluation_method.py`.

    Args:
        per_sequence: {seq name: (J, F)} with J, F of shape (num_objects, frames) from `evaluate_sequence`.
    Returns (global, per_object): global has jf_mean, j_mean, j_recall, j_decay, f_mean, f_recall, f_decay
    (fractions); per_object maps `<seq>_<k>` to {j_mean, f_mean, ...}.
    """
    per_object = {}
    for seq, (j, f) in per_sequence.items():
        for k in range(len(j)):
            jm, jr, jd = db_statistics(j[k])
            fm, fr, fd = db_statistics(f[k])
            per_object[f"{seq}_{k + 1}"] = dict(j_mean=jm, j_recall=jr, j_decay=jd, f_mean=fm, f_recall=fr,
                                                f_decay=fd)
    if not per_object:
        raise ValueError("no objects to evaluate (every sequence has an empty first-frame annotation)")
    glob = {key: float(np.mean([o[key] for o in per_object.values()])) for key in next(iter(per_object.values()))}
    glob["jf_mean"] = (glob["j_mean"] + glob["f_mean"]) / 2
    return glob, per_object


def evaluate_results_dir(sequences, results_dir, bound_th=0.008):
    """Score a results folder `<results_dir>/<seq>/<frame>.png` (palette PNGs) against DAVIS sequences.

    Args:
        sequences: `common.data.davis.DavisSequence`s with every frame annotated (DAVIS trainval).
    Returns (global, per_object) as `davis_summary`. A missing result PNG is an error naming it.
    """
    from pathlib import Path

    from ..data.davis import read_annotation
    from ..errors import DataError

    per_sequence = {}
    for seq in sequences:
        gt = np.stack([seq.annotation(t) for t in range(len(seq))])
        preds = []
        for frame in seq.frames:
            path = Path(results_dir) / seq.name / f"{Path(frame).stem}.png"
            if not path.is_file():
                raise DataError(path, "result PNG missing (one palette PNG per frame is expected)")
            preds.append(read_annotation(path))
        per_sequence[seq.name] = evaluate_sequence(gt, np.stack(preds), bound_th)
    return davis_summary(per_sequence)

"""The paper's metrics as the official evaluation computes them (utils/eval_utils.py, "EU").

* RefCOCO/+/g Acc@0.5 (EU:173-203, tasks/mm_tasks/refcoco.py:96-124): predicted bins -> pixels of the original
  image, hit when IoU >= 0.5 with a positive overlap.
* SNLI-VE accuracy and the VQA score (EU:103-170): the predicted answer's score in the question's reference
  dict (0 when absent).
"""
import torch


def bins_to_box(tokens, tokenizer, ratio, max_image_size=512):
    """4 bin token ids -> (x0, y0, x1, y1) in original pixels: k / (num_bins - 1) * max_image_size / ratio
    (tasks/mm_tasks/refcoco.py:116-121). Non-bin tokens give None."""
    if len(tokens) < 4 or not all(tokenizer.is_bin(t) for t in tokens[:4]):
        return None
    v = [(t - tokenizer.bin_start) / (tokenizer.num_bins - 1) * max_image_size for t in tokens[:4]]
    return (v[0] / ratio[0], v[1] / ratio[1], v[2] / ratio[0], v[3] / ratio[1])


def box_iou(a, b):
    """IoU of two (x0, y0, x1, y1) boxes, and whether they overlap at all."""
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0, False
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union, True


def grounding_hits(pred_boxes, gt_boxes, threshold=0.5):
    """1.0 per prediction with IoU >= threshold and a positive overlap (EU:190-203); None predictions miss."""
    hits = []
    for p, g in zip(pred_boxes, gt_boxes, strict=True):
        if p is None:
            hits.append(0.0)
            continue
        iou, overlap = box_iou(p, [float(x) for x in g])
        hits.append(float(overlap and iou >= threshold))
    return hits


def answer_scores(predictions, references):
    """VQA score / accuracy: the reference dict's score of each predicted answer (EU:103-170)."""
    return [float(refs.get(p, 0.0)) for p, refs in zip(predictions, references, strict=True)]


def mean(values):
    return float(torch.tensor(values, dtype=torch.float64).mean()) if values else float("nan")

"""Adaptive Sample Assignment (ASA): the official `DynamicSoftLabelAssigner`
(`ssod/core/bbox/assigners/dynamic_assigner.py`), vectorised over anchors and GTs.

Per image, with the student's own (detached) predictions:
1. candidates: anchors whose prior centre lies strictly inside some GT box (`valid_mask`); the rest are negative.
2. cost C_ij between candidate j and GT i (all GTs, not only the ones containing j, as in the official code):
   C = C_cls + iou_factor * C_reg + C_ctr, with
   C_cls = sum_c BCE(p_jc, t_ic) * (alpha t + (1 - alpha)(1 - t)) * |t - p_jc|^gamma, t = onehot(y_i), alpha .25,
           gamma 2 (a focal-weighted BCE on a hard label; the official code has no IoU-soft label, unlike RTMDet);
   C_reg = -log(IoU(b_j, g_i) + 1e-7);
   C_ctr = 0.001 * 10^(||c_j - centre(g_i)||_2 / s_j), s_j = the prior's stride.
3. dynamic k (OTA / YOLOX): k_i = max(1, int(sum of the top-q IoUs of GT i over the candidates)),
   q = min(topk, #candidates); GT i claims its k_i lowest-cost candidates.
4. a candidate claimed by several GTs is given to argmin_i C_ij over *all* GTs (the official `cost.min(dim=1)`).
The positives keep the IoU with their GT (the official `assign_metrics` = `max_overlaps`; -1e8 at negatives there, where
it is never read, 0 here).
"""
from typing import NamedTuple

import torch
import torch.nn.functional as F


class Assignment(NamedTuple):
    """Result for the A anchors of one image; unpacks as `gt_inds, ious = assignment`."""
    gt_inds: torch.Tensor  # (A,) int64: index of the assigned GT, -1 for negatives
    ious: torch.Tensor     # (A,) float: IoU of the anchor's predicted box with its assigned GT, 0 for negatives


def pairwise_iou(boxes1, boxes2, eps=1e-6):
    """IoU of every pair as mmdet's BboxOverlaps2D computes it (union clamped to >= eps, so degenerate boxes give 0, not
    NaN). (N, 4), (M, 4) x1y1x2y2 -> (N, M)"""
    area1 = (boxes1[:, 2] - boxes1[:, 0]) * (boxes1[:, 3] - boxes1[:, 1])
    area2 = (boxes2[:, 2] - boxes2[:, 0]) * (boxes2[:, 3] - boxes2[:, 1])
    lt = torch.max(boxes1[:, None, :2], boxes2[None, :, :2])           # (N, M, 2)
    rb = torch.min(boxes1[:, None, 2:], boxes2[None, :, 2:])
    overlap = (rb - lt).clamp(min=0).prod(-1)                          # (N, M)
    union = (area1[:, None] + area2[None, :] - overlap).clamp(min=eps)
    return overlap / union


def centre_inside(priors, gt_boxes):
    """Is the prior centre strictly inside the GT box? (A, 4) [cx, cy, sw, sh], (G, 4) -> (A, G) bool"""
    centre = priors[:, None, :2]                                        # (A, 1, 2)
    deltas = torch.cat([centre - gt_boxes[None, :, :2], gt_boxes[None, :, 2:] - centre], dim=-1)  # (A, G, 4)
    return deltas.min(dim=-1).values > 0


def assign_costs(pred_scores, priors, decoded_boxes, gt_boxes, gt_labels, *, iou_factor=2.0, alpha=0.25, gamma=2.0):
    """The ASA cost matrix of the given (candidate) anchors against all GTs, and their IoUs.

    pred_scores (V, C) probabilities, priors (V, 4) [cx, cy, sw, sh], decoded_boxes (V, 4), gt_boxes (G, 4),
    gt_labels (G,) -> cost (V, G), ious (V, G).

    The class cost uses that the target is one-hot: sum_c cost(p_c, t_c) = sum_c cost(p_c, 0) - cost(p_y, 0) +
    cost(p_y, 1), which avoids the official (V, G, C) tensor; BCE keeps torch's log clamp at -100 like the official
    `F.binary_cross_entropy`.
    """
    ious = pairwise_iou(decoded_boxes, gt_boxes)                        # (V, G)
    iou_cost = -torch.log(ious + 1e-7)

    p = pred_scores
    neg = F.binary_cross_entropy(p, torch.zeros_like(p), reduction="none") * (1 - alpha) * p.pow(gamma)  # (V, C)
    pos = F.binary_cross_entropy(p, torch.ones_like(p), reduction="none") * alpha * (1 - p).pow(gamma)
    cls_cost = neg.sum(-1, keepdim=True) - neg[:, gt_labels] + pos[:, gt_labels]             # (V, G)

    gt_centre = (gt_boxes[:, :2] + gt_boxes[:, 2:]) / 2                  # (G, 2)
    distance = (priors[:, None, :2] - gt_centre[None]).pow(2).sum(-1).sqrt() / priors[:, 2:3]  # (V, G), in strides
    dis_cost = 0.001 * torch.pow(10, distance)
    return cls_cost + iou_factor * iou_cost + dis_cost, ious


def dynamic_soft_label_assign(pred_scores, priors, decoded_boxes, gt_boxes, gt_labels, *, topk=13, iou_factor=2.0):
    """ASA for one image.

    pred_scores: (A, C) sigmoid probabilities (detached); priors: (A, 4) [cx, cy, stride_w, stride_h] (the official head
    passes anchor centre and anchor size / octave_base_scale 8); decoded_boxes: (A, 4) x1y1x2y2 predictions (detached);
    gt_boxes: (G, 4) x1y1x2y2; gt_labels: (G,) int64. Returns an `Assignment` (gt_inds, ious), both (A,).
    """
    num_anchors, num_gt = decoded_boxes.shape[0], gt_boxes.shape[0]
    gt_inds = torch.full((num_anchors,), -1, dtype=torch.long, device=decoded_boxes.device)
    assigned_ious = decoded_boxes.new_zeros((num_anchors,), dtype=torch.float)
    if num_gt == 0 or num_anchors == 0:
        return Assignment(gt_inds, assigned_ious)
    valid = centre_inside(priors, gt_boxes).any(dim=1)                 # (A,) the official valid_mask
    valid_idx = valid.nonzero().squeeze(1)                             # (V,)
    if len(valid_idx) == 0:
        return Assignment(gt_inds, assigned_ious)

    cost, ious = assign_costs(pred_scores[valid_idx].float(), priors[valid_idx].float(),
                              decoded_boxes[valid_idx].float(), gt_boxes.float(), gt_labels.long(),
                              iou_factor=iou_factor)                    # (V, G) each
    num_valid = len(valid_idx)

    # dynamic k per GT from the sum of its top-q IoUs (int() truncates, like the official `.int()`)
    q = min(topk, num_valid)
    dynamic_ks = ious.topk(q, dim=0).values.sum(0).int().clamp(min=1, max=num_valid)   # (G,)
    # each GT takes its k_i cheapest candidates: rank the costs once, keep rank < k_i
    k_max = int(dynamic_ks.max())
    cheapest = cost.topk(k_max, dim=0, largest=False).indices            # (k_max, G)
    keep = torch.arange(k_max, device=cost.device)[:, None] < dynamic_ks[None, :]       # (k_max, G)
    matching = torch.zeros_like(cost, dtype=torch.bool)                  # (V, G)
    gt_cols = torch.arange(num_gt, device=cost.device).expand(k_max, num_gt)
    matching[cheapest[keep], gt_cols[keep]] = True

    # a candidate claimed by several GTs goes to its min-cost GT among all GTs
    multi = matching.sum(1) > 1
    if multi.any():
        matching[multi] = F.one_hot(cost[multi].argmin(dim=1), num_gt).bool()

    fg = matching.any(dim=1)                                           # (V,)
    matched = matching[fg].float().argmax(dim=1)                       # (P,)
    gt_inds[valid_idx[fg]] = matched
    assigned_ious[valid_idx[fg]] = ious[fg].gather(1, matched[:, None]).squeeze(1)
    return Assignment(gt_inds, assigned_ious)

"""The detection loss of ConsistentTeacher's head (official `FAM3DHead.loss` / `loss_single` / `_get_target_single`),
used unchanged for the labelled images and for the pseudo-labelled ones.

Targets come from ASA (`assigner.dynamic_soft_label_assign`) run per image on the detached student predictions.
With P the positives of the whole batch, g(j) the GT of positive j and w_j its box weight:
    N      = max(1, reduce_mean(sum_{j in P} w_j))
    L_cls  = (1 / N) * sum_{all anchors j} sum_c FL(p_jc, t_jc)     (hard one-hot targets, zeros for negatives;
                                                                    every valid anchor has label weight 1)
    L_box  = (box_weight / N) * sum_{j in P} w_j * (1 - GIoU(b_j, g(j)))
w_j is the official normalised alignment metric m_j / (max_{k: g(k)=g(j)} m_k + 1e-7) * max_{k: g(k)=g(j)} IoU_k with
m = IoU (the assigner's `assign_metrics` are its IoUs), i.e. IoU_j * M / (M + 1e-7), M the best IoU of that GT: the IoU
itself up to 1e-7. The same sum of w_j normalises both terms (`cls_avg_factors` and `bbox_avg_factors` are both sums of
the normalised metrics); the official per-call `avg_factor=1.0` makes each level's loss a plain sum.

Deviations (numerically negligible, documented):
- the official head outputs probabilities and applies mmdet's focal loss on probabilities (`activated=True`, log clamped
  at -100); we keep logits and use `torchvision.ops.sigmoid_focal_loss`, the same function of the logit, and stabler.
- GIoU: `torchvision.ops.generalized_box_iou_loss` with eps=1e-6 added to the union and the enclosing area, on pixel
  boxes; mmdet clamps both to >= 1e-6 and is fed boxes in units of the level's stride. GIoU itself is scale-invariant.
- mmdet divides by (avg_factor + float32 eps) = 1 + 1.2e-7; we divide by N only.
"""
import torch
from torchvision.ops import generalized_box_iou_loss, sigmoid_focal_loss

from .assigner import dynamic_soft_label_assign


def box_weights(gt_inds, ious, num_gt):
    """The official per-GT normalised alignment metric at the positives: IoU_j * M_g / (M_g + 1e-7), M_g the largest IoU
    among the positives of GT g. gt_inds (P,) in [0, num_gt), ious (P,) -> (P,)"""
    best = ious.new_zeros(num_gt).scatter_reduce(0, gt_inds, ious, reduce="amax", include_self=False)  # (G,)
    m = best[gt_inds]
    return ious / (m + 1e-7) * m


def detection_loss(cls_logits, pred_boxes, priors, gt_boxes, gt_labels, *, valid=None, topk=13, iou_factor=2.0,
                   box_weight=2.0, alpha=0.25, gamma=2.0, reduce_mean=None):
    """Focal + IoU-weighted GIoU loss with ASA targets for a batch.

    cls_logits: (B, A, C) logits. pred_boxes: (B, A, 4) decoded x1y1x2y2 pixels (with grad). priors: (A, 4)
    [cx, cy, stride_w, stride_h], shared by the batch. gt_boxes / gt_labels: B tensors (G_b, 4) / (G_b,) int64, possibly
    empty. valid: optional (B, A) bool, the anchors inside each image's own padded extent (mmdet's `valid_flags`; with
    `allowed_border=-1` they are the official `inside_flags`): the others are left out of the assignment and, like
    mmdet's `unmap` with label weight 0, out of the focal sum. reduce_mean: callable averaging a scalar tensor over
    processes (DDP all-reduce mean); identity by default.
    Returns dict(loss_cls, loss_box, num_pos) (num_pos: positives in this process's batch, an int64 tensor).
    """
    batch, num_anchors, _ = cls_logits.shape
    cls_logits, pred_boxes = cls_logits.float(), pred_boxes.float()
    probs, boxes, priors = cls_logits.detach().sigmoid(), pred_boxes.detach(), priors.to(pred_boxes)

    if valid is None:
        valid = torch.ones(batch, num_anchors, dtype=torch.bool, device=cls_logits.device)
    valid = valid.to(cls_logits.device)
    targets = torch.zeros_like(cls_logits)                             # (B, A, C)
    pos_pred, pos_target, pos_weight = [], [], []
    for b in range(batch):
        gts, labels = gt_boxes[b].to(boxes), gt_labels[b].to(cls_logits.device).long()
        keep = valid[b].nonzero().squeeze(1)                           # (A_b,) anchors the assigner sees
        gt_inds, ious = dynamic_soft_label_assign(probs[b, keep], priors[keep], boxes[b, keep], gts, labels,
                                                  topk=topk, iou_factor=iou_factor)
        is_pos = gt_inds >= 0
        pos, matched, ious = keep[is_pos], gt_inds[is_pos], ious[is_pos]                      # (P_b,) each
        targets[b, pos, labels[matched]] = 1.0
        pos_pred.append(pred_boxes[b, pos])
        pos_target.append(gts[matched])
        pos_weight.append(box_weights(matched, ious, len(gts)))
    pos_pred, pos_target, pos_weight = torch.cat(pos_pred), torch.cat(pos_target), torch.cat(pos_weight)

    total_weight = pos_weight.sum()
    if reduce_mean is not None:
        total_weight = reduce_mean(total_weight)
    norm = total_weight.clamp(min=1)

    focal = sigmoid_focal_loss(cls_logits, targets, alpha=alpha, gamma=gamma, reduction="none")   # (B, A, C)
    loss_cls = (focal * valid[..., None]).sum() / norm
    if len(pos_pred):
        giou = generalized_box_iou_loss(pos_pred, pos_target, reduction="none", eps=1e-6)    # (P,) = 1 - GIoU
        loss_box = box_weight * (pos_weight * giou).sum() / norm
    else:
        loss_box = pred_boxes.sum() * 0                                 # keeps the graph for DDP
    num_pos = torch.tensor(len(pos_pred), device=cls_logits.device)
    return dict(loss_cls=loss_cls, loss_box=loss_box, num_pos=num_pos)

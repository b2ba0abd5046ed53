"""One Consistent-Teacher training iteration (official `ConsistentTeacher.forward_train`), shared by train and bench.

    teacher(weak views) -> detections -> PseudoLabeler (count prior + per-class GMM threshold)
    -> boxes mapped weak view -> strong view (M = T_strong @ T_weak^-1, `transform_boxes`)
    student(labelled views ++ strong views) in one forward -> ASA + focal/GIoU loss on each group
    L = L_sup + w_u * L_unsup, with w_u = 0 before `unsup_warmup` and L_unsup x background_weight when fewer than
    half of the unlabelled images kept a pseudo box.
"""
import math

import torch
import torch.nn.functional as F

from common.data.detection_transforms import transform_boxes

from .losses import detection_loss


def pad_cat(a, b):
    """Concatenate two (B, 3, H, W) batches padded (bottom / right, zeros) to a common size."""
    h, w = max(a.shape[2], b.shape[2]), max(a.shape[3], b.shape[3])
    pad = lambda x: F.pad(x, (0, w - x.shape[3], 0, h - x.shape[2]))
    return torch.cat([pad(a), pad(b)])


def valid_anchor_mask(level_sizes, strides, img_shapes, size_divisor=32, device=None):
    """(B, A) bool: anchors inside each image's own padded area (mmdet `valid_flags` from `pad_shape`).

    In a batch padded to its largest image, the anchors over another image's extra padding take no part in its
    loss (label weight 0 in mmdet). With `allowed_border=-1` (the configs) this is the only anchor filter."""
    masks = []
    for h, w in img_shapes:
        ph, pw = (math.ceil(h / size_divisor) * size_divisor, math.ceil(w / size_divisor) * size_divisor)
        per_level = []
        for (fh, fw), s in zip(level_sizes, strides, strict=True):
            vh, vw = min(math.ceil(ph / s), fh), min(math.ceil(pw / s), fw)
            m = torch.zeros(fh, fw, dtype=torch.bool, device=device)
            m[:vh, :vw] = True
            per_level.append(m.flatten())
        masks.append(torch.cat(per_level))
    return torch.stack(masks)


def to_device(batch, device):
    """Move a collated batch (tensors and lists of tensors) to `device`."""
    out = {}
    for k, v in batch.items():
        if torch.is_tensor(v):
            out[k] = v.to(device, non_blocking=True)
        elif isinstance(v, list) and v and torch.is_tensor(v[0]):
            out[k] = [x.to(device, non_blocking=True) for x in v]
        else:
            out[k] = v
    return out


@torch.no_grad()
def pseudo_targets(teacher, pseudo_labeler, weak, strong, cfg):
    """Teacher detections on the weak views, filtered and mapped into the strong views.

    Returns (boxes list, labels list, mean GMM threshold)."""
    dets = teacher.predict(weak["image"], weak["img_shape"], score_thr=cfg.score_thr, nms_pre=cfg.nms_pre,
                           iou_thr=cfg.nms_iou, max_per_img=cfg.max_per_img)
    kept, gmm_thr, _ = pseudo_labeler(dets)
    boxes, labels = [], []
    for det, m_weak, m_strong, shape in zip(kept, weak["matrix"], strong["matrix"], strong["img_shape"],
                                            strict=True):
        m = m_strong.float() @ torch.linalg.inv(m_weak.float())
        boxes.append(transform_boxes(det["boxes"].float(), m, shape))
        labels.append(det["labels"])
    return boxes, labels, gmm_thr


def semi_supervised_loss(student, teacher, pseudo_labeler, batch, cfg, step, reduce_mean=None, pseudo_out=None):
    """Loss of one iteration. `student` may be DDP-wrapped; `teacher` is the bare EMA model in eval mode.

    Returns (total loss, dict of logged floats). A dict given as `pseudo_out` receives this iteration's pseudo
    boxes and labels in the strong views (for pictures)."""
    lab, weak, strong = batch["labeled"], batch.get("weak"), batch.get("strong")
    n_lab = lab["image"].shape[0]
    logs = {}
    if cfg.semi:
        p_boxes, p_labels, gmm_thr = pseudo_targets(teacher, pseudo_labeler, weak, strong, cfg)
        images = pad_cat(lab["image"], strong["image"])
        shapes = list(lab["img_shape"]) + list(strong["img_shape"])
        logs.update(gmm_thr=gmm_thr, pseudo_boxes_per_image=sum(len(b) for b in p_boxes) / max(1, len(p_boxes)))
        if pseudo_out is not None:
            pseudo_out.update(boxes=p_boxes, labels=p_labels)
    else:
        images, shapes = lab["image"], list(lab["img_shape"])
    out = student(images)
    valid = valid_anchor_mask(out.level_sizes, out.strides, shapes, device=images.device)
    kw = dict(topk=cfg.topk, iou_factor=cfg.iou_factor, box_weight=cfg.box_weight, reduce_mean=reduce_mean)
    sup = detection_loss(out.cls_logits[:n_lab], out.boxes[:n_lab], out.priors, lab["boxes"], lab["labels"],
                         valid=valid[:n_lab], **kw)
    loss = sup["loss_cls"] + sup["loss_box"]
    logs.update(sup_loss_cls=float(sup["loss_cls"].detach()), sup_loss_box=float(sup["loss_box"].detach()))
    if cfg.semi:
        unsup = detection_loss(out.cls_logits[n_lab:], out.boxes[n_lab:], out.priors, p_boxes, p_labels,
                               valid=valid[n_lab:], **kw)
        unsup_loss = unsup["loss_cls"] + unsup["loss_box"]
        if sum(len(b) > 0 for b in p_boxes) < len(p_boxes) / 2:
            unsup_loss = unsup_loss * cfg.background_weight
        weight = 0.0 if step < cfg.unsup_warmup else cfg.unsup_weight
        loss = loss + weight * unsup_loss
        logs.update(unsup_loss_cls=float(unsup["loss_cls"].detach()), unsup_loss_box=float(unsup["loss_box"].detach()),
                    unsup_weight=weight)
    return loss, logs

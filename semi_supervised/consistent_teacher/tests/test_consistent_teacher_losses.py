"""consistent_teacher.losses: focal and GIoU terms by hand, the IoU normaliser, empty images, gradients, and the
logits form against the official probability form (mmdet FocalLoss(activated=True) + GIoULoss on stride units)."""
import math

import pytest
import torch
import torch.nn.functional as F
from consistent_teacher.losses import box_weights, detection_loss


def focal(x, t, alpha=0.25, gamma=2.0):
    """FL of one logit x against a 0/1 target t, from the definition: -alpha_t (1 - p_t)^gamma log p_t."""
    p = 1 / (1 + math.exp(-x))
    p_t = p if t else 1 - p
    return -(alpha if t else 1 - alpha) * (1 - p_t) ** gamma * math.log(p_t)


def prior(cx, cy, stride=8.0):
    return [cx, cy, stride, stride]


def test_one_positive_by_hand():
    # anchor 0 (centre 8,8) lies in the GT [5,5,15,15] and predicts [0,0,10,10]; anchor 1 is far away (negative)
    priors = torch.tensor([prior(8, 8), prior(100, 100)])
    logits = torch.tensor([[[0.0, -1.0], [2.0, 0.5]]], requires_grad=True)                     # (1, 2, 2)
    boxes = torch.tensor([[[0.0, 0.0, 10.0, 10.0], [90.0, 90.0, 110.0, 110.0]]], requires_grad=True)
    out = detection_loss(logits, boxes, priors, [torch.tensor([[5.0, 5.0, 15.0, 15.0]])], [torch.tensor([0])])
    iou = 25 / 175                                                      # k = max(1, int(iou)) = 1 positive
    giou = iou - (225 - 175) / 225                                      # enclosing box [0, 0, 15, 15]
    norm = 1.0                                                          # max(1, sum of IoUs = 1/7)
    want_cls = (focal(0.0, 1) + focal(-1.0, 0) + focal(2.0, 0) + focal(0.5, 0)) / norm
    want_box = 2.0 * iou * (1 - giou) / norm
    assert out["num_pos"].item() == 1
    assert out["loss_cls"].item() == pytest.approx(want_cls, rel=1e-5)
    assert out["loss_box"].item() == pytest.approx(want_box, rel=1e-5)
    (out["loss_cls"] + out["loss_box"]).backward()
    assert logits.grad.abs().gt(0).all()                                # every anchor and class gets a focal gradient
    assert boxes.grad[0, 0].abs().gt(0).any() and boxes.grad[0, 1].eq(0).all()   # only the positive's box


def two_image_batch():
    """Image 0: GT0 [0,0,100,100] (class 1) and GT1 [200,0,300,100] (class 0), predicted at IoU .9 and .8 by the
    anchors centred in them; image 1: no GT."""
    priors = torch.tensor([prior(50, 50), prior(250, 50), prior(500, 500)])
    boxes = torch.tensor([[[0.0, 0.0, 100.0, 90.0], [200.0, 0.0, 300.0, 80.0], [480.0, 480.0, 520.0, 520.0]],
                          [[0.0, 0.0, 100.0, 90.0], [200.0, 0.0, 300.0, 80.0], [480.0, 480.0, 520.0, 520.0]]])
    logits = torch.tensor([[[-1.0, 1.0], [0.5, -2.0], [-3.0, -1.0]], [[0.2, 0.1], [-0.4, 1.5], [-2.0, -2.5]]])
    gts = [torch.tensor([[0.0, 0.0, 100.0, 100.0], [200.0, 0.0, 300.0, 100.0]]), torch.zeros(0, 4)]
    labels = [torch.tensor([1, 0]), torch.zeros(0, dtype=torch.long)]
    return logits, boxes, priors, gts, labels


def test_iou_normaliser_and_reduce_mean():
    logits, boxes, priors, gts, labels = two_image_batch()
    out = detection_loss(logits, boxes, priors, gts, labels)
    targets = torch.zeros(2, 3, 2)
    targets[0, 0, 1] = targets[0, 1, 0] = 1
    fl = sum(focal(x, t) for x, t in zip(logits.flatten().tolist(), targets.flatten().tolist(), strict=True))
    w0, w1 = 0.9 * 0.9 / (0.9 + 1e-7), 0.8 * 0.8 / (0.8 + 1e-7)        # IoU * M / (M + 1e-7), one positive per GT
    norm = w0 + w1                                                      # 1.7 > 1
    assert out["num_pos"].item() == 2
    assert out["loss_cls"].item() == pytest.approx(fl / norm, rel=1e-5)
    # GIoU = IoU here (the predictions lie inside their GTs)
    assert out["loss_box"].item() == pytest.approx(2.0 * (w0 * 0.1 + w1 * 0.2) / norm, rel=1e-5)
    # DDP: the normaliser is the all-reduce mean of the per-process sums (here: the others had twice as much)
    out3 = detection_loss(logits, boxes, priors, gts, labels, reduce_mean=lambda t: t * 3)
    assert out3["loss_cls"].item() == pytest.approx(fl / (3 * norm), rel=1e-5)
    assert out3["loss_box"].item() == pytest.approx(out["loss_box"].item() / 3, rel=1e-5)


def test_empty_gt_gives_only_negative_focal_term():
    logits, boxes, priors, _, _ = two_image_batch()
    logits, boxes = logits.clone().requires_grad_(), boxes.clone().requires_grad_()
    empty = [torch.zeros(0, 4), torch.zeros(0, 4)]
    no_labels = [torch.zeros(0, dtype=torch.long)] * 2
    out = detection_loss(logits, boxes, priors, empty, no_labels)
    fl = sum(focal(x, 0) for x in logits.flatten().tolist())            # N = max(1, 0) = 1
    assert out["loss_cls"].item() == pytest.approx(fl, rel=1e-5)
    assert out["loss_box"].item() == 0 and out["num_pos"].item() == 0
    (out["loss_cls"] + out["loss_box"]).backward()                      # the zero box loss stays in the graph
    assert boxes.grad is not None and boxes.grad.eq(0).all() and logits.grad.abs().gt(0).all()


def test_box_weights_normalise_per_gt():
    gt_inds = torch.tensor([0, 0, 1, 0])
    ious = torch.tensor([0.5, 0.8, 0.3, 0.2])
    m = torch.tensor([0.8, 0.8, 0.3, 0.8])
    torch.testing.assert_close(box_weights(gt_inds, ious, 2), ious / (m + 1e-7) * m)


def official_probability_loss(cls_logits, pred_boxes, priors, gt_boxes, gt_labels, strides, assignments,
                              alpha=0.25, gamma=2.0):
    """FAM3DHead.loss as the official code computes it: probabilities, mmdet's probability focal loss (BCE log clamp),
    GIoU on boxes divided by the level stride with mmdet's eps clamps, alignment metrics normalised per GT.
    `assignments`: per image (gt_inds, ious) as the official DynamicSoftLabelAssigner returned them (not ours)."""
    probs = cls_logits.sigmoid()
    loss_cls, loss_box, norm = 0.0, 0.0, 0.0
    for b in range(len(gt_boxes)):
        gt_inds, ious = assignments[b]
        target = torch.zeros_like(probs[b])
        pos = (gt_inds >= 0).nonzero().squeeze(1)
        target[pos, gt_labels[b][gt_inds[pos]]] = 1
        pt = (1 - probs[b]) * target + probs[b] * (1 - target)
        weight = (alpha * target + (1 - alpha) * (1 - target)) * pt.pow(gamma)
        loss_cls = loss_cls + (F.binary_cross_entropy(probs[b], target, reduction="none") * weight).sum()
        metric = torch.zeros(len(priors))
        for g in gt_inds[pos].unique():
            members = pos[gt_inds[pos] == g]
            metric[members] = ious[members] / (ious[members].max() + 10e-8) * ious[members].max()
        s = strides[pos, None]
        p, t = pred_boxes[b, pos] / s, gt_boxes[b][gt_inds[pos]] / s
        lt, rb = torch.max(p[:, :2], t[:, :2]), torch.min(p[:, 2:], t[:, 2:])
        overlap = (rb - lt).clamp(min=0).prod(1)
        union = ((p[:, 2:] - p[:, :2]).prod(1) + (t[:, 2:] - t[:, :2]).prod(1) - overlap).clamp(min=1e-6)
        enclose = (torch.max(p[:, 2:], t[:, 2:]) - torch.min(p[:, :2], t[:, :2])).clamp(min=0).prod(1).clamp(min=1e-6)
        giou = overlap / union - (enclose - union) / enclose
        loss_box = loss_box + 2.0 * (metric[pos] * (1 - giou)).sum()
        norm = norm + metric.sum()
    norm = max(float(norm), 1.0)
    return loss_cls / norm, loss_box / norm


def loss_inputs(seed):
    """(logits, boxes, priors, gts, labels) of a random 2-image batch on a 2-level 64 x 64 grid (strides 8, 16)."""
    g = torch.Generator().manual_seed(seed)
    priors = []
    for stride in (8, 16):
        ys, xs = torch.meshgrid(torch.arange(0, 64, stride), torch.arange(0, 64, stride), indexing="ij")
        ones = torch.full_like(xs.flatten(), stride)
        priors.append(torch.stack([xs.flatten(), ys.flatten(), ones, ones], 1).float())
    priors = torch.cat(priors)                                          # (80, 4)
    batch, num_classes = 2, 4
    centre = priors[:, :2] + torch.randn(batch, len(priors), 2, generator=g) * 3
    half = priors[:, 2:3] * (1 + torch.rand(batch, len(priors), 2, generator=g) * 2)
    boxes = torch.cat([centre - half, centre + half], -1)
    logits = torch.randn(batch, len(priors), num_classes, generator=g) * 2
    gts, labels = [], []
    for n in (3 + seed, seed):                                          # the second image is empty for seed 0
        xy = torch.rand(n, 2, generator=g) * 40
        gts.append(torch.cat([xy, xy + 8 + torch.rand(n, 2, generator=g) * 24], 1))
        labels.append(torch.randint(0, num_classes, (n,), generator=g))
    return logits, boxes, priors, gts, labels


@pytest.mark.parametrize("seed", range(3))
def test_logits_form_equals_official_probability_form(seed):
    import json
    from pathlib import Path
    logits, boxes, priors, gts, labels = loss_inputs(seed)
    logits, boxes = logits.requires_grad_(), boxes.requires_grad_()
    # the official DynamicSoftLabelAssigner's outputs on these inputs (tests/data/dump_official_asa.py)
    cases = json.loads((Path(__file__).resolve().parent / "data" / "official_asa_assignments.json").read_text())
    case = cases["loss"][seed]
    assert float(logits.sum() + boxes.sum()) == pytest.approx(case["checksum"], rel=1e-6)
    assignments = [(torch.tensor([i - 1 for i in img["assigned_gt_inds"]]),
                    torch.tensor([max(v, 0.0) for v in img["max_overlaps"]])) for img in case["images"]]
    out = detection_loss(logits, boxes, priors, gts, labels)
    want_cls, want_box = official_probability_loss(logits, boxes, priors, gts, labels, strides=priors[:, 2],
                                                   assignments=assignments)
    assert out["num_pos"].item() > 0
    torch.testing.assert_close(out["loss_cls"], want_cls, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out["loss_box"], want_box, rtol=1e-5, atol=1e-6)
    grads = torch.autograd.grad(out["loss_cls"] + out["loss_box"], (logits, boxes))
    want_grads = torch.autograd.grad(want_cls + want_box, (logits, boxes))
    for got, want in zip(grads, want_grads, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)


def test_invalid_anchors_are_left_out():
    """valid=False anchors (outside an image's own padded extent) take no part: the result equals dropping them."""
    logits, boxes, priors, gts, labels = two_image_batch()
    valid = torch.tensor([[True, False, True], [True, True, False]])
    out = detection_loss(logits, boxes, priors, gts, labels, valid=valid)
    # anchor 1 of image 0 would be GT1's only candidate: without it GT1 has no positive
    assert out["num_pos"].item() == 1
    parts = [detection_loss(logits[b:b + 1, valid[b]], boxes[b:b + 1, valid[b]], priors[valid[b]], gts[b:b + 1],
                            labels[b:b + 1]) for b in range(2)]
    w0 = 0.9 * 0.9 / (0.9 + 1e-7)                                       # normalisers: max(1, .9) = 1 and 1
    assert out["loss_cls"].item() == pytest.approx(sum(p["loss_cls"].item() for p in parts), rel=1e-5)
    assert out["loss_box"].item() == pytest.approx(2.0 * w0 * 0.1, rel=1e-5)
    assert out["loss_box"].item() == pytest.approx(parts[0]["loss_box"].item(), rel=1e-5)

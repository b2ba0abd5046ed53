"""consistent_teacher.assigner (ASA): the candidate rule, costs by hand, dynamic k, conflicts, empty cases, and random
images against a loop-over-GTs reference written from the official DynamicSoftLabelAssigner."""
import math

import pytest
import torch
import torch.nn.functional as F
from consistent_teacher.assigner import (
    Assignment,
    assign_costs,
    centre_inside,
    dynamic_soft_label_assign,
    pairwise_iou,
)


def prior(cx, cy, stride=8.0):
    return [cx, cy, stride, stride]


def test_centre_inside_is_strict():
    priors = torch.tensor([prior(5, 5), prior(0, 5), prior(10, 5), prior(5, 10), prior(9.9, 9.9), prior(20, 20)])
    gt = torch.tensor([[0.0, 0.0, 10.0, 10.0]])
    assert centre_inside(priors, gt)[:, 0].tolist() == [True, False, False, False, True, False]


def test_pairwise_iou_by_hand():
    a = torch.tensor([[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 0.0, 0.0]])
    b = torch.tensor([[5.0, 5.0, 15.0, 15.0], [0.0, 0.0, 10.0, 20.0]])
    iou = pairwise_iou(a, b)
    assert iou[0].tolist() == pytest.approx([25 / 175, 100 / 200])
    assert iou[1].tolist() == [0.0, 0.0]                                # degenerate box: 0, not NaN


def test_costs_by_hand_two_anchors():
    """2 anchors, 1 GT of class 0 out of 2 classes."""
    scores = torch.tensor([[0.8, 0.1], [0.3, 0.6]])
    priors = torch.tensor([prior(5, 5), prior(5, 12, stride=16)])
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [0.0, 5.0, 10.0, 15.0]])
    gt = torch.tensor([[0.0, 0.0, 10.0, 20.0]])
    cost, iou = assign_costs(scores, priors, boxes, gt, torch.tensor([0]), iou_factor=2.0)
    # anchor 0: focal-weighted BCE of p = (.8, .1) against t = (1, 0); IoU 100/200; centre distance 5 px / stride 8
    cls0 = -math.log(0.8) * 0.25 * 0.2 ** 2 - math.log(0.9) * 0.75 * 0.1 ** 2
    want0 = cls0 + 2.0 * -math.log(0.5 + 1e-7) + 0.001 * 10 ** (5 / 8)
    # anchor 1: p = (.3, .6); IoU 100/200; distance 2 px / stride 16
    cls1 = -math.log(0.3) * 0.25 * 0.7 ** 2 - math.log(0.4) * 0.75 * 0.6 ** 2
    want1 = cls1 + 2.0 * -math.log(0.5 + 1e-7) + 0.001 * 10 ** (2 / 16)
    assert iou[:, 0].tolist() == pytest.approx([0.5, 0.5])
    assert cost[:, 0].tolist() == pytest.approx([want0, want1], rel=1e-6)
    # the same priors in ASA: q = 2, k = int(0.5 + 0.5) = 1, the cheaper anchor 0 wins
    gt_inds, ious = dynamic_soft_label_assign(scores, priors, boxes, gt, torch.tensor([0]))
    assert gt_inds.tolist() == [0, -1] and ious.tolist() == pytest.approx([0.5, 0.0])


def same_place_priors(n, cx=50.0, cy=50.0):
    """n anchors at one location: equal centre cost, so with equal scores the cost order is the IoU order."""
    return torch.tensor([prior(cx, cy)] * n)


def boxes_with_ious(ious, side=100.0):
    """Boxes [0, 0, side, side * u] against the GT [0, 0, side, side]: IoU = u."""
    return torch.tensor([[0.0, 0.0, side, side * u] for u in ious])


def test_dynamic_k_from_top_q_iou_sum():
    gt = torch.tensor([[0.0, 0.0, 100.0, 100.0]])
    ious = [0.3, 0.9, 0.7, 0.8, 0.2]
    scores = torch.full((5, 3), 0.2)
    # q = min(13, 5) = 5: k = int(0.3 + 0.9 + 0.7 + 0.8 + 0.2) = int(2.9) = 2 -> the two best IoUs (anchors 1, 3)
    res = dynamic_soft_label_assign(scores, same_place_priors(5), boxes_with_ious(ious), gt, torch.tensor([2]))
    assert isinstance(res, Assignment)
    assert res.gt_inds.tolist() == [-1, 0, -1, 0, -1]
    assert res.ious.tolist() == pytest.approx([0, 0.9, 0, 0.8, 0])
    # q = 3: k = int(0.9 + 0.8 + 0.7) = 2; q = 1: k = int(0.9) -> clamped to 1
    res = dynamic_soft_label_assign(scores, same_place_priors(5), boxes_with_ious(ious), gt, torch.tensor([2]), topk=3)
    assert (res.gt_inds >= 0).sum() == 2
    res = dynamic_soft_label_assign(scores, same_place_priors(5), boxes_with_ious(ious), gt, torch.tensor([2]), topk=1)
    assert res.gt_inds.tolist() == [-1, 0, -1, -1, -1]


def test_prior_claimed_by_two_gts_keeps_min_cost():
    # one candidate anchor inside both GTs: each GT takes it (k >= 1), the conflict keeps the cheaper GT
    priors = torch.tensor([prior(50, 50), prior(500, 500)])
    gts = torch.tensor([[0.0, 0.0, 100.0, 100.0], [20.0, 20.0, 80.0, 80.0]])
    boxes = torch.tensor([[20.0, 20.0, 80.0, 80.0], [0.0, 0.0, 1.0, 1.0]])        # predicted box = GT 1 exactly
    scores = torch.tensor([[0.5, 0.5], [0.5, 0.5]])
    gt_inds, ious = dynamic_soft_label_assign(scores, priors, boxes, gts, torch.tensor([0, 1]))
    assert gt_inds.tolist() == [1, -1] and ious.tolist() == pytest.approx([1.0, 0.0])
    # make GT 0 the cheaper one through the class cost: the anchor is confident in class 0
    scores = torch.tensor([[0.999, 0.001], [0.5, 0.5]])
    boxes = torch.tensor([[10.0, 10.0, 90.0, 90.0], [0.0, 0.0, 1.0, 1.0]])        # IoU .64 with GT 0, .5625 with GT 1
    cost, _ = assign_costs(scores[:1], priors[:1], boxes[:1], gts, torch.tensor([0, 1]))
    assert cost[0, 0] < cost[0, 1]
    gt_inds, ious = dynamic_soft_label_assign(scores, priors, boxes, gts, torch.tensor([0, 1]))
    assert gt_inds.tolist() == [0, -1] and ious[0].item() == pytest.approx(0.64)


def test_no_gt_or_no_candidate_gives_all_negative():
    priors = torch.tensor([prior(5, 5), prior(15, 5)])
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [10.0, 0.0, 20.0, 10.0]])
    scores = torch.rand(2, 4)
    no_gt, no_label = torch.zeros(0, 4), torch.zeros(0, dtype=torch.long)
    gt_inds, ious = dynamic_soft_label_assign(scores, priors, boxes, no_gt, no_label)
    assert gt_inds.tolist() == [-1, -1] and ious.tolist() == [0.0, 0.0] and gt_inds.dtype == torch.long
    far = torch.tensor([[100.0, 100.0, 200.0, 200.0]])                          # contains no prior centre
    gt_inds, ious = dynamic_soft_label_assign(scores, priors, boxes, far, torch.tensor([1]))
    assert gt_inds.tolist() == [-1, -1] and ious.tolist() == [0.0, 0.0]


def reference_assign(pred_scores, priors, decoded_boxes, gt_boxes, gt_labels, topk=13, iou_factor=2.0):
    """The official algorithm step by step: the (V, G, C) focal BCE cost, a python loop of per-GT top-k, conflicts by
    the min over all GTs."""
    num_gt = len(gt_boxes)
    out = torch.full((len(priors),), -1, dtype=torch.long)
    out_iou = torch.zeros(len(priors))
    if num_gt == 0:
        return out, out_iou
    lt = priors[:, None, :2] - gt_boxes[None, :, :2]
    rb = gt_boxes[None, :, 2:] - priors[:, None, :2]
    valid = torch.cat([lt, rb], -1).min(-1).values.gt(0).any(1)
    if not valid.any():
        return out, out_iou
    boxes, scores, pri = decoded_boxes[valid], pred_scores[valid], priors[valid]
    ious = pairwise_iou(boxes, gt_boxes)
    centre = (gt_boxes[:, :2] + gt_boxes[:, 2:]) / 2
    dist = (pri[:, None, :2] - centre[None]).pow(2).sum(-1).sqrt() / pri[:, 2:3]
    target = F.one_hot(gt_labels, scores.shape[1]).float()[None].expand(len(boxes), -1, -1)
    pred = scores[:, None].expand(-1, num_gt, -1)
    pt = (1 - pred) * target + pred * (1 - target)
    weight = (0.25 * target + 0.75 * (1 - target)) * pt.pow(2)
    cls_cost = (F.binary_cross_entropy(pred, target, reduction="none") * weight).sum(-1)
    cost = cls_cost + iou_factor * -torch.log(ious + 1e-7) + 0.001 * torch.pow(10, dist)
    matching = torch.zeros_like(cost)
    ks = torch.clamp(torch.topk(ious, min(topk, len(boxes)), dim=0).values.sum(0).int(), min=1)
    for g in range(num_gt):
        matching[torch.topk(cost[:, g], k=int(ks[g]), largest=False).indices, g] = 1
    multi = matching.sum(1) > 1
    if multi.any():
        argmin = cost[multi].argmin(1)
        matching[multi] = 0
        matching[multi.nonzero().squeeze(1), argmin] = 1
    fg = matching.sum(1) > 0
    idx = valid.nonzero().squeeze(1)[fg]
    out[idx] = matching[fg].argmax(1)
    out_iou[idx] = (matching * ious).sum(1)[fg]
    return out, out_iou


def random_image_inputs(seed):
    """(scores, priors, boxes, gts, labels) of one random image: a 2-level grid of priors on 64 x 64 (strides 8, 16),
    1 + seed GTs of 5 classes, predicted boxes jittered around the priors."""
    g = torch.Generator().manual_seed(seed)
    priors = []
    for stride in (8, 16):
        ys, xs = torch.meshgrid(torch.arange(0, 64, stride), torch.arange(0, 64, stride), indexing="ij")
        priors.append(torch.stack([xs.flatten(), ys.flatten(), torch.full_like(xs.flatten(), stride),
                                   torch.full_like(xs.flatten(), stride)], 1).float())
    priors = torch.cat(priors)                                             # (80, 4)
    num_gt, num_classes = 1 + seed, 5
    xy = torch.rand(num_gt, 2, generator=g) * 40
    gts = torch.cat([xy, xy + 8 + torch.rand(num_gt, 2, generator=g) * 24], 1)
    labels = torch.randint(0, num_classes, (num_gt,), generator=g)
    centre = priors[:, :2] + torch.randn(len(priors), 2, generator=g) * 3
    half = priors[:, 2:3] * (1 + torch.rand(len(priors), 2, generator=g) * 2)
    boxes = torch.cat([centre - half, centre + half], 1)
    scores = torch.rand(len(priors), num_classes, generator=g)
    return scores, priors, boxes, gts, labels


@pytest.mark.parametrize("seed", range(6))
def test_matches_reference_on_random_images(seed):
    scores, priors, boxes, gts, labels = random_image_inputs(seed)
    got = dynamic_soft_label_assign(scores, priors, boxes, gts, labels, topk=13, iou_factor=2.0)
    want = reference_assign(scores, priors, boxes, gts, labels)
    assert (got.gt_inds >= 0).sum() > 0
    assert torch.equal(got.gt_inds, want[0])
    torch.testing.assert_close(got.ious, want[1])


def official_assignments():
    """Assignments computed by the official DynamicSoftLabelAssigner (see tests/data/official_asa_assignments.json
    and the script that made it, tests/data/dump_official_asa.py)."""
    import json
    from pathlib import Path
    return json.loads((Path(__file__).resolve().parent / "data" / "official_asa_assignments.json").read_text())


@pytest.mark.parametrize("seed", range(6))
def test_matches_the_official_assigner_outputs(seed):
    """Our ASA against the values the official ssod DynamicSoftLabelAssigner(topk=13, iou_factor=2.0) returned on the
    same inputs (official gt index i + 1 -> ours i, 0 -> -1; IoU of unassigned priors -> 0)."""
    data = official_assignments()
    case = data["assigner"][seed]
    scores, priors, boxes, gts, labels = random_image_inputs(seed)
    assert float(scores.sum() + boxes.sum() + gts.sum()) == pytest.approx(case["checksum"], rel=1e-6)
    got = dynamic_soft_label_assign(scores, priors, boxes, gts, labels, topk=13, iou_factor=2.0)
    assert got.gt_inds.tolist() == [i - 1 for i in case["assigned_gt_inds"]]
    want_iou = torch.tensor([max(v, 0.0) for v in case["max_overlaps"]])
    torch.testing.assert_close(got.ious, want_iou, rtol=1e-5, atol=1e-6)

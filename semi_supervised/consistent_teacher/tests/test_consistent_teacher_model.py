"""Unit tests of the Consistent-Teacher detector: anchors, box coder, FPN extras, FAM-3D, post-processing."""
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from consistent_teacher.model import (
    ConsistentTeacherDetector,
    DetectorOutput,
    anchor_priors,
    deform_sampling,
    delta_decode,
    delta_encode,
    fam3d_align,
    grid_anchors,
    postprocess,
)

from common.errors import ConfigError


def images(b=2, h=64, w=64, seed=0):
    return torch.randn(b, 3, h, w, generator=torch.Generator().manual_seed(seed))


def test_tiny_output_shapes_and_every_parameter_gets_a_gradient():
    torch.manual_seed(0)
    model = ConsistentTeacherDetector.tiny(3).train()
    out = model(images(2, 96, 128))
    sizes = [(12, 16), (6, 8), (3, 4), (2, 2), (1, 1)]
    a = sum(h * w for h, w in sizes)
    assert isinstance(out, DetectorOutput) and out.level_sizes == sizes
    assert out.cls_logits.shape == (2, a, 3) and out.boxes.shape == (2, a, 4)
    assert out.anchors.shape == (a, 4) and out.priors.shape == (a, 4)
    assert torch.isfinite(out.cls_logits).all() and torch.isfinite(out.boxes).all()
    # Initial logits sit at the prior -log(99); initial boxes are close to the anchors (tiny deltas and offsets).
    assert out.cls_logits.mean().item() == pytest.approx(-math.log(99), abs=0.05)
    assert (out.boxes - out.anchors).abs().max() < 0.2 * (out.anchors[:, 2] - out.anchors[:, 0]).max()
    g = torch.Generator().manual_seed(1)
    loss = (out.cls_logits * torch.randn(out.cls_logits.shape, generator=g)).sum() + \
        (out.boxes * torch.randn(out.boxes.shape, generator=g)).sum()
    loss.backward()
    missing = [n for n, p in model.named_parameters()
               if p.requires_grad and (p.grad is None or p.grad.abs().sum() == 0)]
    assert not missing, missing
    assert all(p.requires_grad for p in model.parameters())  # tiny: nothing frozen


def test_paper_variant_shapes_frozen_stages_norm_eval_and_weight_loading(tmp_path):
    torch.manual_seed(0)
    reference = torchvision.models.resnet50()
    path = tmp_path / "resnet50-0676ba61.pth"
    torch.save(reference.state_dict(), path)
    torch.manual_seed(1)
    model = ConsistentTeacherDetector.paper(80, backbone_weights=str(path)).train()
    assert torch.equal(model.backbone.layer3[0].conv2.weight, reference.layer3[0].conv2.weight)
    assert torch.equal(model.backbone.bn1.running_var, reference.bn1.running_var)
    bb = model.backbone
    for frozen in (bb.conv1, bb.bn1, bb.layer1):
        assert not any(p.requires_grad for p in frozen.parameters())
    for trainable in (bb.layer2, bb.layer3, bb.layer4, model.neck, model.bbox_head):
        assert all(p.requires_grad for p in trainable.parameters())
    assert bb.layer2[0].bn1.weight.requires_grad  # BN affine trainable (COCO-partial configs)
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(bns) == 53 and not any(m.training for m in bns)  # norm_eval
    fresh = ConsistentTeacherDetector.paper(80)  # norm_eval holds before any .train() call too
    assert not any(m.training for m in fresh.modules() if isinstance(m, nn.BatchNorm2d))
    assert model.bbox_head.training and model.bbox_head.cls_convs[0].gn.num_groups == 32
    assert model.bbox_head.pyramid_mapping_module[0].weight.shape == (64, 2048, 1, 1)
    stats = bns[5].running_mean.clone()
    with torch.no_grad():
        out = model(images(1, 64, 64))
    assert torch.equal(bns[5].running_mean, stats)  # running statistics never update
    assert out.level_sizes == [(8, 8), (4, 4), (2, 2), (1, 1), (1, 1)]
    assert out.cls_logits.shape == (1, 86, 80) and out.boxes.shape == (1, 86, 4)
    assert torch.isfinite(out.boxes).all()


def test_frozen_bn_affine_and_missing_weights():
    model = ConsistentTeacherDetector(2, backbone="tiny", frozen_stages=1, norm_groups=8, fpn_channels=32,
                                      stacked_convs=1)
    bb = model.backbone
    assert not any(p.requires_grad for p in [*bb.stem.parameters(), *bb.layer1.parameters()])
    assert all(p.requires_grad for p in bb.layer2.parameters())
    with pytest.raises(ConfigError, match="no_such_resnet.pth"):
        ConsistentTeacherDetector.paper(2, backbone_weights="/nonexistent/no_such_resnet.pth")
    with pytest.raises(ConfigError, match="vgg"):
        ConsistentTeacherDetector(2, backbone="vgg")


def test_resnet_bn_affine_frozen_option():
    from consistent_teacher.model import ResNet50Backbone
    bb = ResNet50Backbone(frozen_stages=-1, bn_affine_trainable=False)
    assert bb.conv1.weight.requires_grad and bb.layer1[0].conv1.weight.requires_grad
    assert not any(p.requires_grad for m in bb.modules() if isinstance(m, nn.BatchNorm2d) for p in m.parameters())


def test_anchors_follow_the_mmdet_formula():
    levels = grid_anchors([(2, 3), (1, 1)], (16, 32))
    a = levels[0]
    assert a.shape == (6, 4)
    # Row-major: index 5 is (y=1, x=2): centre (2*16, 1*16), side 8*16 = 128, no half-pixel offset.
    assert a[5].tolist() == [32 - 64, 16 - 64, 32 + 64, 16 + 64]
    assert a[1].tolist() == [16 - 64, -64, 16 + 64, 64]
    assert levels[1].tolist() == [[-128, -128, 128, 128]]
    priors = anchor_priors(torch.cat(levels))
    assert priors[5].tolist() == [32, 16, 16, 16] and priors[6].tolist() == [0, 0, 32, 32]
    # Same grid as torchvision's AnchorGenerator with sizes 8*s (it rounds the half sizes, exact here).
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.models.detection.image_list import ImageList
    tv = AnchorGenerator(((128,),), ((1.0,),))
    tv_anchors = tv(ImageList(torch.zeros(1, 3, 32, 48), [(32, 48)]), [torch.zeros(1, 1, 2, 3)])[0]
    assert torch.equal(tv_anchors, a)


def test_box_coder_round_trip_and_clamp():
    anchors = torch.tensor([[0.0, 0.0, 64.0, 64.0], [10.0, 20.0, 138.0, 148.0]])
    boxes = torch.tensor([[4.0, -6.0, 50.0, 80.0], [30.0, 25.0, 100.0, 200.0]])
    deltas = delta_encode(anchors, boxes)
    # Hand-computed first row: centre (27, 37) vs (32, 32), size (46, 86) vs (64, 64).
    expected = torch.tensor([(27 - 32) / 64 / 0.1, (37 - 32) / 64 / 0.1, math.log(46 / 64) / 0.2,
                             math.log(86 / 64) / 0.2])
    torch.testing.assert_close(deltas[0], expected)
    torch.testing.assert_close(delta_decode(anchors, deltas), boxes)
    # dw, dh are clamped on both sides to |log(16/1000)| after the std scaling; dx, dy are not.
    big = torch.tensor([[1.0, -2.0, 100.0, -100.0]])
    r = abs(math.log(16 / 1000))
    out = delta_decode(anchors[:1], big)
    w, h = 64 * math.exp(r), 64 * math.exp(-r)
    cx, cy = 32 + 0.1 * 64, 32 - 0.2 * 64
    torch.testing.assert_close(out, torch.tensor([[cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]]))
    # Broadcasting: (A, 4) anchors against (B, A, 4) deltas.
    assert delta_decode(anchors, deltas.expand(3, 2, 4)).shape == (3, 2, 4)


def test_p7_has_no_relu_before_it():
    torch.manual_seed(0)
    model = ConsistentTeacherDetector.tiny(2)
    extra = model.neck.extra_blocks
    p5 = torch.randn(1, 32, 8, 8)
    results, names = extra([torch.zeros(1, 32, 32, 32), torch.zeros(1, 32, 16, 16), p5], [], ["c3", "c4", "c5"])
    p6, p7 = results[3], results[4]
    assert names == ["c3", "c4", "c5", "p6", "p7"]
    assert (p6 < 0).any()  # a ReLU would matter
    torch.testing.assert_close(p6, F.conv2d(p5, extra.p6.weight, extra.p6.bias, stride=2, padding=1))
    torch.testing.assert_close(p7, F.conv2d(p6, extra.p7.weight, extra.p7.bias, stride=2, padding=1))
    with_relu = F.conv2d(F.relu(p6), extra.p7.weight, extra.p7.bias, stride=2, padding=1)
    assert not torch.allclose(p7, with_relu)
    # mmdet FPN init: Xavier-uniform weights (bound sqrt(6 / (fan_in + fan_out))), zero biases.
    bound = math.sqrt(6 / (32 * 9 * 2))
    assert extra.p7.weight.abs().max() <= bound and extra.p7.weight.abs().max() > 0.9 * bound
    assert not extra.p7.bias.any()


def test_fam3d_with_zero_offsets_returns_the_decoded_boxes():
    torch.manual_seed(0)
    model = ConsistentTeacherDetector.tiny(2)
    head = model.bbox_head
    for conv in (head.pyramid_offset, head.reg_offset_module):
        nn.init.zeros_(conv.weight)
        nn.init.zeros_(conv.bias)
    with torch.no_grad():
        head.scales[1].scale.fill_(1.5)
        head.tood_reg.bias.copy_(torch.tensor([0.3, -0.2, 0.5, -0.4]))  # make the deltas visibly non-zero
        out = model(images(1, 64, 64))
        feats = list(model.neck(dict(zip(("c3", "c4", "c5"), model.backbone(images(1, 64, 64)), strict=True))).values())
        anchors = grid_anchors(out.level_sizes)
        start = 0
        for level, (x, a, s) in enumerate(zip(feats, anchors, model.strides, strict=True)):
            # Manual decode: reg tower -> tood_reg -> Scale_l -> delta_decode against the level's anchors.
            reg = x
            for conv in head.reg_convs:
                reg = conv(reg)
            deltas = head.tood_reg(reg) * head.scales[level].scale
            expected = delta_decode(a, deltas[0].permute(1, 2, 0).reshape(-1, 4))
            got = out.boxes[0, start:start + len(a)]
            torch.testing.assert_close(got, expected / s * s, rtol=0, atol=0)
            start += len(a)


def test_head_offsets_read_the_cross_level_concat_lower_current_upper():
    torch.manual_seed(0)
    model = ConsistentTeacherDetector.tiny(2)
    head = model.bbox_head
    with torch.no_grad():
        x = images(1, 64, 96)
        feats = list(model.neck(dict(zip(("c3", "c4", "c5"), model.backbone(x), strict=True))).values())
        anchors = grid_anchors([tuple(f.shape[-2:]) for f in feats])
        per_level = [head.forward_single(f, a, level) for level, (f, a) in enumerate(zip(feats, anchors, strict=True))]
        boxes, offset_feats = [p[1] for p in per_level], [p[2] for p in per_level]
        c = offset_feats[0].shape[1]
        k = int(offset_feats[2].abs().sum((0, 2, 3)).argmax())  # a channel that survived the ReLU
        # Scale offsets: a constant per coordinate. Spatial offsets: dy of coordinate 0 reads the upper (coarser)
        # slice of the concat, dx of coordinate 0 the lower (finer) slice, dy of coordinate 1 the current level.
        nn.init.zeros_(head.pyramid_offset.weight)
        head.pyramid_offset.bias.copy_(torch.tensor([0.3, -0.2, 0.5, -0.4]))
        nn.init.zeros_(head.reg_offset_module.weight)
        nn.init.zeros_(head.reg_offset_module.bias)
        gain = 0.5 / offset_feats[2][0, k].max()
        head.reg_offset_module.weight[0, 2 * c + k, 1, 1] = gain
        head.reg_offset_module.weight[1, k, 1, 1] = gain
        head.reg_offset_module.weight[2, c + k, 1, 1] = gain
        _, got = head(feats, anchors)
        scale_offsets, spatial_offsets = [], []
        resize = lambda t, ref: F.interpolate(t, size=ref.shape[-2:], mode="bilinear", align_corners=False)
        for level, cur in enumerate(offset_feats):
            lower = resize(offset_feats[max(level - 1, 0)], cur)
            upper = resize(offset_feats[min(level + 1, len(offset_feats) - 1)], cur)
            delta = torch.zeros(1, 8, *cur.shape[-2:])
            delta[:, 0], delta[:, 1], delta[:, 2] = gain * upper[:, k], gain * lower[:, k], gain * cur[:, k]
            spatial_offsets.append(delta)
            scale_offsets.append(torch.tensor([0.3, -0.2, 0.5, -0.4]).view(1, 4, 1, 1).expand_as(boxes[level]))
        assert spatial_offsets[1].abs().amax((0, 2, 3))[:3].min() > 0.05  # the offsets move the samples
        expected = fam3d_align(boxes, scale_offsets, spatial_offsets, model.strides)
        for g, e in zip(got, expected, strict=True):
            torch.testing.assert_close(g, e)


def test_scale_offset_mixes_with_the_neighbour_levels_as_the_formula_says():
    g = torch.Generator().manual_seed(0)
    fine = torch.rand(1, 4, 2, 2, generator=g) * 10  # stride 8, in stride units
    coarse = torch.rand(1, 4, 1, 1, generator=g) * 10  # stride 16
    zeros8 = [torch.zeros(1, 8, 2, 2), torch.zeros(1, 8, 1, 1)]
    w_fine = torch.full((1, 4, 2, 2), 0.25)
    w_coarse = torch.full((1, 4, 1, 1), -0.5)
    out_fine, out_coarse = fam3d_align([fine, coarse], [w_fine, w_coarse], zeros8, strides=(8, 16))
    # Finest level, w = 0.25 >= 0 reads the coarser level: 0.75 B_0 + 0.25 * up(B_1) * 16 / 8.
    torch.testing.assert_close(out_fine, 0.75 * fine + 0.25 * coarse.expand(1, 4, 2, 2) * 2)
    # Coarsest level, w = -0.5 reads the finer level; bilinear 2x2 -> 1x1 (align_corners=False) is the mean.
    expected = 0.5 * coarse + 0.5 * fine.mean((2, 3), keepdim=True) * 8 / 16
    torch.testing.assert_close(out_coarse, expected)
    # Clamps: the finest level cannot read a finer one (w < 0 -> 0), the coarsest not a coarser one (w > 0 -> 0).
    out_fine, out_coarse = fam3d_align([fine, coarse], [-w_fine, -w_coarse], zeros8, strides=(8, 16))
    torch.testing.assert_close(out_fine, fine)
    torch.testing.assert_close(out_coarse, coarse)
    # A middle level clamps to [-1, 1]: w = 3 takes the coarser box only, per coordinate channel.
    mid = torch.rand(1, 4, 1, 1, generator=g)
    top = torch.rand(1, 4, 1, 1, generator=g)
    w_mid = torch.tensor([3.0, 0.0, -0.2, 0.1]).view(1, 4, 1, 1)
    zeros = [torch.zeros(1, 8, 1, 1)] * 3
    _, out_mid, _ = fam3d_align([coarse, mid, top], [torch.zeros(1, 4, 1, 1), w_mid, torch.zeros(1, 4, 1, 1)],
                                zeros, strides=(8, 16, 32))
    expected = torch.stack([top[0, 0] * 2, mid[0, 1], 0.8 * mid[0, 2] + 0.2 * coarse[0, 2] * 0.5,
                            0.9 * mid[0, 3] + 0.1 * top[0, 3] * 2]).view(1, 4, 1, 1)
    torch.testing.assert_close(out_mid, expected)


def grid_sample_reference(boxes, offsets):
    """out[b, c, y, x] = bilinear(boxes[b, c], (y + dy_c, x + dx_c)), zero padding, via F.grid_sample."""
    b, c, h, w = boxes.shape
    ys, xs = torch.meshgrid(torch.arange(h, dtype=boxes.dtype), torch.arange(w, dtype=boxes.dtype), indexing="ij")
    off = offsets.view(b, c, 2, h, w)
    py, px = ys + off[:, :, 0], xs + off[:, :, 1]  # (B, C, H, W) sampling positions in pixels
    grid = torch.stack([2 * px / (w - 1) - 1, 2 * py / (h - 1) - 1], dim=-1)  # align_corners=True convention
    out = F.grid_sample(boxes.reshape(b * c, 1, h, w), grid.reshape(b * c, h, w, 2), mode="bilinear",
                        padding_mode="zeros", align_corners=True)
    return out.view(b, c, h, w)


def test_deform_sampling_matches_grid_sample():
    g = torch.Generator().manual_seed(0)
    boxes = torch.rand(2, 4, 5, 6, generator=g, dtype=torch.float64) * 20
    offsets = (torch.rand(2, 8, 5, 6, generator=g, dtype=torch.float64) - 0.5) * 5  # non-integer, some off-map
    torch.testing.assert_close(deform_sampling(boxes, offsets), grid_sample_reference(boxes, offsets))
    # Hand-checked: channel 2 at (1, 1) with offset (dy, dx) = (0.5, 0.25) reads a bilinear blend.
    offsets = torch.zeros(1, 8, 3, 3, dtype=torch.float64)
    offsets[0, 4, 1, 1], offsets[0, 5, 1, 1] = 0.5, 0.25
    b = boxes[:1, :, :3, :3]
    expected = (0.5 * 0.75 * b[0, 2, 1, 1] + 0.5 * 0.25 * b[0, 2, 1, 2] + 0.5 * 0.75 * b[0, 2, 2, 1]
                + 0.5 * 0.25 * b[0, 2, 2, 2])
    out = deform_sampling(b.contiguous(), offsets)
    torch.testing.assert_close(out[0, 2, 1, 1], expected)
    torch.testing.assert_close(out[0, 3], b[0, 3])  # other channels untouched


def test_postprocess_topk_class_aware_nms_clip_and_max_per_img():
    level_sizes = [(1, 4), (1, 1)]
    logit = lambda p: math.log(p / (1 - p))
    boxes = torch.tensor([[[0.0, 0.0, 10.0, 10.0],  # A0
                           [1.0, 1.0, 11.0, 11.0],  # A1 overlaps A0 (IoU ~ 0.68)
                           [50.0, 50.0, 60.0, 60.0],  # A2
                           [-5.0, 20.0, 200.0, 30.0],  # A3 leaves the image
                           [20.0, 0.0, 30.0, 10.0]]])  # A4 on the second level
    probs = torch.full((1, 5, 3), 0.01)
    probs[0, 0, 0] = 0.9
    probs[0, 1, 0] = 0.8  # same class as A0: suppressed
    probs[0, 1, 1] = 0.7  # different class at the same place: kept
    probs[0, 2, 2] = 0.6
    probs[0, 3, 1] = 0.5
    probs[0, 4, 0] = 0.04  # below score_thr
    cls_logits = probs.clone().apply_(logit)
    (det,) = postprocess(cls_logits, boxes, level_sizes, [(40, 100)], clip=True)
    assert det["labels"].tolist() == [0, 1, 2, 1]
    torch.testing.assert_close(det["scores"], torch.tensor([0.9, 0.7, 0.6, 0.5]))
    assert det["boxes"][3].tolist() == [0.0, 20.0, 100.0, 30.0]  # clipped to (h, w) = (40, 100)
    assert det["boxes"][2].tolist() == [50.0, 40.0, 60.0, 40.0]
    assert det["labels"].dtype == torch.int64
    (unclipped,) = postprocess(cls_logits, boxes, level_sizes, [(40, 100)])  # the official default
    assert unclipped["boxes"][3].tolist() == [-5.0, 20.0, 200.0, 30.0]
    (bf16,) = postprocess(cls_logits.bfloat16(), boxes, level_sizes, [(40, 100)])
    assert bf16["scores"].dtype == torch.float32
    (det,) = postprocess(cls_logits, boxes, level_sizes, [(40, 100)], max_per_img=2)
    assert det["scores"].tolist() == pytest.approx([0.9, 0.7])
    # nms_pre is per level: the first level keeps its 2 best (anchor, class) pairs, the second level its own.
    probs[0, 4, 0] = 0.3
    (det,) = postprocess(probs.clone().apply_(logit), boxes, level_sizes, [(40, 100)], nms_pre=2)
    assert det["scores"].tolist() == pytest.approx([0.9, 0.3])  # 0.8 (A1, class 0) is suppressed by A0
    (det,) = postprocess(torch.full((1, 5, 3), -10.0), boxes, level_sizes, [(40, 100)])
    assert det["boxes"].shape == (0, 4) and det["scores"].shape == (0,)


def test_predict_returns_sorted_boxes_inside_the_image():
    torch.manual_seed(0)
    model = ConsistentTeacherDetector.tiny(3).train()
    with torch.no_grad():
        model.bbox_head.tood_cls.bias.fill_(2.0)  # every (anchor, class) pair passes score_thr
    dets = model.predict(images(2, 64, 96), [(60, 90), (64, 70)], max_per_img=20, clip=True)
    assert model.training and len(dets) == 2
    for det, (h, w) in zip(dets, [(60, 90), (64, 70)], strict=True):
        assert 0 < len(det["boxes"]) <= 20
        assert (det["boxes"] >= 0).all() and (det["boxes"][:, 0::2] <= w).all() and (det["boxes"][:, 1::2] <= h).all()
        assert (det["scores"][:-1] >= det["scores"][1:]).all()
        assert not det["scores"].requires_grad


def test_determinism_under_a_fixed_seed():
    x = images(2, 64, 64, seed=3)
    outs = []
    for _ in range(2):
        torch.manual_seed(7)
        outs.append(ConsistentTeacherDetector.tiny(4)(x))
    assert torch.equal(outs[0].cls_logits, outs[1].cls_logits) and torch.equal(outs[0].boxes, outs[1].boxes)

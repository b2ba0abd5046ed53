"""The Consistent-Teacher detector (Wang et al., CVPR 2023, arXiv 2209.01589) without mmdet.

The official code (Adamdad/ConsistentTeacher, `configs/consistent-teacher/*.py`) builds an mmdet 2.x `RetinaNet`
wrapper: ResNet-50 (pytorch style, frozen stem + layer1, BN in eval mode) -> FPN P3-P7 (256 channels,
`add_extra_convs='on_output'`) -> `FAM3DHead` (`ssod/models/dense_heads/fam3d.py`, `anchor_type='anchor_based'`):
an ATSS/TOOD-like head with one square anchor per location whose boxes are re-read from the best pyramid level
and the best position by the feature alignment module FAM-3D. Module names inside the
head are the official ones (`cls_convs.0.conv`, `tood_cls`, `pyramid_offset`, ...), the backbone keeps
torchvision's (= mmdet's) ResNet names.

Conventions (mmdet 2.x): boxes are x1y1x2y2 in input pixels; anchors of a level are flattened row-major
(y, then x); levels are concatenated fine to coarse; A = sum_l H_l * W_l. The head returns classification
LOGITS where the official head returns sigmoid probabilities (its focal loss is called with `activated=True`);
the training loss applies `torchvision.ops.sigmoid_focal_loss` to the logits, which is the same function.
"""
import logging
import math
import os
from collections import OrderedDict
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from torchvision.ops import batched_nms, clip_boxes_to_image, deform_conv2d
from torchvision.ops.feature_pyramid_network import ExtraFPNBlock, FeaturePyramidNetwork

from common.errors import ConfigError

logger = logging.getLogger(__name__)

STRIDES = (8, 16, 32, 64, 128)
BOX_STDS = (0.1, 0.1, 0.2, 0.2)  # DeltaXYWHBBoxCoder target_stds; target_means are 0


# ----------------------------------------------------------------------------- anchors and box coder


def grid_anchors(level_sizes, strides=STRIDES, *, octave_base_scale=8, device=None):
    """mmdet `AnchorGenerator(ratios=[1.0], octave_base_scale=8, scales_per_octave=1, center_offset=0)`.

    One square anchor of side octave_base_scale * s per location, centred at (x * s, y * s) (no half-pixel
    shift). Returns a list of (H_l * W_l, 4) tensors, row-major (y, then x) like mmdet's `grid_priors`.
    """
    anchors = []
    for (h, w), s in zip(level_sizes, strides, strict=True):
        half = octave_base_scale * s / 2
        ys = torch.arange(h, dtype=torch.float32, device=device) * s
        xs = torch.arange(w, dtype=torch.float32, device=device) * s
        cy, cx = torch.meshgrid(ys, xs, indexing="ij")  # (H, W) each
        cx, cy = cx.reshape(-1), cy.reshape(-1)
        anchors.append(torch.stack([cx - half, cy - half, cx + half, cy + half], dim=-1))
    return anchors


def anchor_priors(anchors, *, octave_base_scale=8):
    """(A, 4) anchors -> (A, 4) [cx, cy, stride_w, stride_h], as `FAM3DHead._get_target_single` feeds the assigner."""
    centres = (anchors[:, :2] + anchors[:, 2:]) / 2
    strides = (anchors[:, 2:] - anchors[:, :2]) / octave_base_scale
    return torch.cat([centres, strides], dim=-1)


def delta_encode(anchors, boxes, *, stds=BOX_STDS):
    """mmdet `bbox2delta` (no +1): (..., 4) anchors and target boxes -> normalised (dx, dy, dw, dh)."""
    pxy, pwh = (anchors[..., :2] + anchors[..., 2:]) / 2, anchors[..., 2:] - anchors[..., :2]
    gxy, gwh = (boxes[..., :2] + boxes[..., 2:]) / 2, boxes[..., 2:] - boxes[..., :2]
    deltas = torch.cat([(gxy - pxy) / pwh, torch.log(gwh / pwh)], dim=-1)
    return deltas / deltas.new_tensor(stds)


def delta_decode(anchors, deltas, *, stds=BOX_STDS, wh_ratio_clip=16 / 1000):
    """mmdet `delta2bbox` without `max_shape` (FAM3DHead decodes unclipped): dw, dh clamped to +-|log(clip)|.

    anchors (..., 4) broadcast against deltas (..., 4); returns x1y1x2y2 boxes of the deltas' shape.
    """
    deltas = deltas * deltas.new_tensor(stds)
    max_ratio = abs(math.log(wh_ratio_clip))
    pxy, pwh = (anchors[..., :2] + anchors[..., 2:]) * 0.5, anchors[..., 2:] - anchors[..., :2]
    gxy = pxy + deltas[..., :2] * pwh
    gwh = pwh * deltas[..., 2:].clamp(min=-max_ratio, max=max_ratio).exp()
    return torch.cat([gxy - gwh * 0.5, gxy + gwh * 0.5], dim=-1)


# ----------------------------------------------------------------------------------------- FAM-3D


def deform_sampling(boxes, offsets):
    """Bilinearly re-read every box coordinate map at its own offset position (the official `deform_sampling`).

    boxes (B, 4, H, W), offsets (B, 8, H, W) as (dy, dx) pairs per coordinate channel. A 1x1 deformable conv with
    an all-ones (4, 1, 1, 1) weight and 4 groups / 4 offset groups is exactly
    out[b, c, y, x] = bilinear(boxes[b, c], (y + dy_c, x + dx_c)), zero outside the map.
    """
    return deform_conv2d(boxes, offsets, boxes.new_ones(boxes.shape[1], 1, 1, 1))


def fam3d_align(boxes, scale_offsets, spatial_offsets, strides=STRIDES):
    """FAM-3D box alignment across scales and positions, in the order of `FAM3DHead.forward`.

    boxes: per level (B, 4, H_l, W_l) decoded boxes divided by the level stride s_l (levels fine to coarse);
    scale_offsets: per level (B, 4, H_l, W_l) raw `pyramid_offset` outputs w_l; spatial_offsets: per level
    (B, 8, H_l, W_l) raw `reg_offset_module` outputs. Per level l (R = bilinear resize to (H_l, W_l),
    align_corners=False):
        w_l  = clamp(w_l, -1, 1), and additionally >= 0 at the finest and <= 0 at the coarsest level
        B'_l = (1 - |w_l|) B_l + max(-w_l, 0) R(B_{l-1}) s_{l-1} / s_l + max(w_l, 0) R(B_{l+1}) s_{l+1} / s_l
        B''_l = deform_sampling(B'_l, delta_l)
    so a positive w reads the coarser level, a negative w the finer one, per box coordinate. The neighbours
    mixed in are the un-aligned B_{l+-1}. Returns per level (B, 4, H_l, W_l), still in stride units.
    """
    num_levels = len(boxes)
    aligned = []
    for idx in range(num_levels):
        h, w = boxes[idx].shape[-2:]
        weight = scale_offsets[idx].clamp(min=0.0 if idx == 0 else -1.0, max=0.0 if idx == num_levels - 1 else 1.0)
        box = boxes[idx] * (1 - weight.abs())
        if idx > 0:  # finer neighbour
            finer = F.interpolate(boxes[idx - 1], size=(h, w), mode="bilinear", align_corners=False)
            box = box + (-weight).clamp(min=0) * finer * strides[idx - 1] / strides[idx]
        if idx < num_levels - 1:  # coarser neighbour
            coarser = F.interpolate(boxes[idx + 1], size=(h, w), mode="bilinear", align_corners=False)
            box = box + weight.clamp(min=0) * coarser * strides[idx + 1] / strides[idx]
        aligned.append(deform_sampling(box.contiguous(), spatial_offsets[idx].contiguous()))
    return aligned


class ConvGNReLU(nn.Module):
    """mmcv `ConvModule(norm_cfg=GN)`: conv3x3 (no bias, the norm follows) -> GroupNorm -> ReLU."""

    def __init__(self, in_channels, out_channels, *, stride=1, groups=32):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.gn = nn.GroupNorm(groups, out_channels)

    def forward(self, x):
        return F.relu(self.gn(self.conv(x)))


class Scale(nn.Module):
    """mmcv `Scale`: one learnable scalar per pyramid level, initialised to 1."""

    def __init__(self, init=1.0):
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(float(init)))

    def forward(self, x):
        return x * self.scale


class FAM3DHead(nn.Module):
    """`FAM3DHead` with `anchor_type='anchor_based'` (official `ssod/models/dense_heads/fam3d.py`).

    Per level: `stacked_convs` GN towers for classification and regression (shared across levels),
    logits = tood_cls(cls tower), boxes B_l = decode(anchor, Scale_l * tood_reg(reg tower)) / s_l; the offset
    features O_l = ReLU(conv1x1(all tower outputs)) with feat_channels / offset_channel_shrink channels; the
    cross-level input O~_l = [R(O_{l-1}), O_l, R(O_{l+1})] (an edge level uses O_l for the missing neighbour);
    scale offsets w_l = pyramid_offset(O~_l) (4 channels) and spatial offsets delta_l = reg_offset_module(O~_l)
    (8 channels) feed `fam3d_align`. Init as the official `init_weights`: towers, tood_cls and tood_reg N(0, 0.01),
    tood_cls bias -log((1 - 0.01) / 0.01); the 1x1 mapping and both offset convs N(0, 0.001); other biases 0.
    """

    def __init__(self, num_classes, in_channels, *, feat_channels=256, stacked_convs=4, offset_channel_shrink=4,
                 strides=STRIDES, norm_groups=32, prior_prob=0.01):
        super().__init__()
        self.num_classes, self.strides = num_classes, tuple(strides)
        self.cls_convs = nn.ModuleList(
            ConvGNReLU(in_channels if i == 0 else feat_channels, feat_channels, groups=norm_groups)
            for i in range(stacked_convs))
        self.reg_convs = nn.ModuleList(
            ConvGNReLU(in_channels if i == 0 else feat_channels, feat_channels, groups=norm_groups)
            for i in range(stacked_convs))
        self.tood_cls = nn.Conv2d(feat_channels, num_classes, 3, padding=1)
        self.tood_reg = nn.Conv2d(feat_channels, 4, 3, padding=1)
        offset_channels = feat_channels // offset_channel_shrink
        self.pyramid_mapping_module = nn.Sequential(
            nn.Conv2d(feat_channels * stacked_convs * 2, offset_channels, 1), nn.ReLU())
        self.reg_offset_module = nn.Conv2d(offset_channels * 3, 4 * 2, 3, padding=1)  # spatial offsets
        self.pyramid_offset = nn.Conv2d(offset_channels * 3, 4, 3, padding=1)  # scale offsets
        self.scales = nn.ModuleList(Scale(1.0) for _ in self.strides)

        for m in [*self.cls_convs, *self.reg_convs]:
            nn.init.normal_(m.conv.weight, std=0.01)
        for conv, std in [(self.tood_cls, 0.01), (self.tood_reg, 0.01), (self.pyramid_mapping_module[0], 0.001),
                          (self.reg_offset_module, 0.001), (self.pyramid_offset, 0.001)]:
            nn.init.normal_(conv.weight, std=std)
            nn.init.zeros_(conv.bias)
        nn.init.constant_(self.tood_cls.bias, -math.log((1 - prior_prob) / prior_prob))

    def forward_single(self, x, anchors, level):
        """x (B, C_in, H, W), anchors (H*W, 4) -> logits (B, K, H, W), boxes / stride (B, 4, H, W), O_l."""
        b, _, h, w = x.shape
        cls_feat, reg_feat, inter_feats = x, x, []
        for conv in self.cls_convs:
            cls_feat = conv(cls_feat)
            inter_feats.append(cls_feat)
        for conv in self.reg_convs:
            reg_feat = conv(reg_feat)
            inter_feats.append(reg_feat)
        logits = self.tood_cls(cls_feat)
        # Decoded in float32 (the official `.float()`), then expressed in units of the level stride.
        deltas = self.scales[level](self.tood_reg(reg_feat)).float().permute(0, 2, 3, 1).reshape(b, h * w, 4)
        boxes = delta_decode(anchors, deltas).reshape(b, h, w, 4).permute(0, 3, 1, 2) / self.strides[level]
        offset_feat = self.pyramid_mapping_module(torch.cat(inter_feats, dim=1))  # (B, C_off, H, W)
        return logits, boxes, offset_feat

    def forward(self, feats, anchors):
        """feats: per level (B, C_in, H_l, W_l); anchors: per level (H_l*W_l, 4).

        Returns per level logits (B, K, H_l, W_l) and FAM-3D aligned boxes (B, 4, H_l, W_l) divided by s_l.
        """
        per_level = [self.forward_single(x, a, level) for level, (x, a) in enumerate(zip(feats, anchors, strict=True))]
        logits, boxes, offset_feats = (list(t) for t in zip(*per_level, strict=True))
        scale_offsets, spatial_offsets = [], []
        for idx, cur in enumerate(offset_feats):
            resize = dict(size=cur.shape[-2:], mode="bilinear", align_corners=False)
            # An edge level stands in for its missing neighbour.
            lower = F.interpolate(offset_feats[idx - 1], **resize) if idx > 0 else cur
            upper = F.interpolate(offset_feats[idx + 1], **resize) if idx + 1 < len(offset_feats) else cur
            joint = torch.cat([lower, cur, upper], dim=1)  # (B, 3 * C_off, H_l, W_l)
            scale_offsets.append(self.pyramid_offset(joint))
            spatial_offsets.append(self.reg_offset_module(joint))
        return logits, fam3d_align(boxes, scale_offsets, spatial_offsets, self.strides)


# ----------------------------------------------------------------------------- backbones and FPN


def _freeze(stages):
    for stage in stages:
        for p in stage.parameters():
            p.requires_grad_(False)


class ResNet50Backbone(nn.Module):
    """torchvision ResNet-50 (= mmdet `ResNet(depth=50, style='pytorch')`) returning C3, C4, C5.

    frozen_stages=k freezes the stem and layer1..layerk (mmdet semantics; -1 freezes nothing). `norm_eval`:
    every BatchNorm stays in eval mode (ImageNet running statistics) even under .train(); its affine parameters
    are trainable unless bn_affine_trainable=False (the VOC / full-data configs).
    """

    out_channels = (512, 1024, 2048)

    def __init__(self, *, weights="", frozen_stages=1, bn_affine_trainable=True):
        super().__init__()
        net = torchvision.models.resnet50()
        if weights:
            if not os.path.isfile(weights):
                raise ConfigError(f"backbone_weights: {weights} does not exist (expected torchvision's "
                                  "resnet50-0676ba61.pth, the IMAGENET1K_V1 state dict)")
            net.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
        else:
            logger.warning("ResNet-50 backbone randomly initialised (no backbone_weights given)")
        self.conv1, self.bn1, self.maxpool = net.conv1, net.bn1, net.maxpool
        self.layer1, self.layer2, self.layer3, self.layer4 = net.layer1, net.layer2, net.layer3, net.layer4
        stages = [nn.ModuleList([self.conv1, self.bn1]), self.layer1, self.layer2, self.layer3, self.layer4]
        _freeze(stages[:frozen_stages + 1])
        if not bn_affine_trainable:
            _freeze(m for m in self.modules() if isinstance(m, nn.BatchNorm2d))
        self.train()  # norm_eval from the start, not only after the first .train() call

    def train(self, mode=True):
        super().train(mode)
        for m in self.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.eval()
        return self

    def forward(self, x):
        x = self.maxpool(F.relu(self.bn1(self.conv1(x))))  # (B, 64, H/4, W/4)
        c3 = self.layer2(self.layer1(x))  # (B, 512, H/8, W/8)
        c4 = self.layer3(c3)  # (B, 1024, H/16, W/16)
        return [c3, c4, self.layer4(c4)]  # ..., (B, 2048, H/32, W/32)


class TinyBackbone(nn.Module):
    """A small conv-GN-ReLU CNN laid out like ResNet (stem /2, layer1 /4, layer2..4 = C3..C5 at /8, /16, /32).

    For CPU smoke runs; trained from scratch. frozen_stages has the ResNet meaning (-1: nothing frozen).
    """

    def __init__(self, *, widths=(16, 32, 64, 128), norm_groups=8, frozen_stages=-1):
        super().__init__()
        w0, w3, w4, w5 = widths
        self.stem = ConvGNReLU(3, w0, stride=2, groups=norm_groups)
        self.layer1 = ConvGNReLU(w0, w0, stride=2, groups=norm_groups)
        self.layer2, self.layer3, self.layer4 = (
            nn.Sequential(ConvGNReLU(cin, cout, stride=2, groups=norm_groups),
                          ConvGNReLU(cout, cout, groups=norm_groups))
            for cin, cout in [(w0, w3), (w3, w4), (w4, w5)])
        self.out_channels = (w3, w4, w5)
        _freeze([self.stem, self.layer1, self.layer2, self.layer3, self.layer4][:frozen_stages + 1])

    def forward(self, x):
        c3 = self.layer2(self.layer1(self.stem(x)))
        c4 = self.layer3(c3)
        return [c3, c4, self.layer4(c4)]


class LastLevelP6P7NoReLU(ExtraFPNBlock):
    """mmdet FPN `add_extra_convs='on_output'`, `relu_before_extra_convs=False`: P6 = conv3x3/2(P5 output),
    P7 = conv3x3/2(P6) with no ReLU in between (torchvision's `LastLevelP6P7` applies one)."""

    def __init__(self, channels):
        super().__init__()
        self.p6 = nn.Conv2d(channels, channels, 3, stride=2, padding=1)
        self.p7 = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, results, x, names):
        p6 = self.p6(results[-1])
        return [*results, p6, self.p7(p6)], [*names, "p6", "p7"]


# ----------------------------------------------------------------------------- detector


@dataclass
class DetectorOutput:
    """Dense predictions of a batch, all levels concatenated (fine to coarse, row-major within a level)."""

    cls_logits: torch.Tensor  # (B, A, K) classification logits
    boxes: torch.Tensor  # (B, A, 4) FAM-3D aligned x1y1x2y2 boxes in input pixels
    anchors: torch.Tensor  # (A, 4) anchors in input pixels
    priors: torch.Tensor  # (A, 4) [cx, cy, stride_w, stride_h] (anchor centre, anchor size / 8)
    level_sizes: list  # [(H_l, W_l)] per level
    strides: tuple = STRIDES  # stride of each level


class ConsistentTeacherDetector(nn.Module):
    """Backbone -> FPN (P3-P7) -> FAM3DHead; the detector of Consistent-Teacher (teacher and student alike).

    The FPN is mmdet's: start_level=1 (C3-C5), nearest top-down upsampling, no norm or activation, extra levels
    from the P5 output without ReLU, Xavier-uniform init with zero biases. The forward pass is the same in train
    and eval mode (all BatchNorms are kept in eval mode, the head uses GroupNorm), so `predict` needs no mode switch.
    """

    def __init__(self, num_classes, *, backbone="resnet50", backbone_weights="", fpn_channels=256, stacked_convs=4,
                 offset_channel_shrink=4, bn_affine_trainable=True, frozen_stages=1, norm_groups=32):
        super().__init__()
        self.num_classes, self.strides = num_classes, STRIDES
        if backbone == "resnet50":
            self.backbone = ResNet50Backbone(weights=backbone_weights, frozen_stages=frozen_stages,
                                             bn_affine_trainable=bn_affine_trainable)
        elif backbone == "tiny":
            if backbone_weights:
                raise ConfigError(f"backbone_weights={backbone_weights!r}: the tiny backbone has no pretrained weights")
            self.backbone = TinyBackbone(norm_groups=norm_groups, frozen_stages=frozen_stages)
        else:
            raise ConfigError(f"backbone={backbone!r}: expected one of 'resnet50', 'tiny'")
        self.neck = FeaturePyramidNetwork(list(self.backbone.out_channels), fpn_channels,
                                          extra_blocks=LastLevelP6P7NoReLU(fpn_channels))
        for m in self.neck.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
        self.bbox_head = FAM3DHead(num_classes, fpn_channels, feat_channels=fpn_channels, stacked_convs=stacked_convs,
                                   offset_channel_shrink=offset_channel_shrink, strides=STRIDES,
                                   norm_groups=norm_groups)

    @classmethod
    def paper(cls, num_classes, backbone_weights="", bn_affine_trainable=True):
        """The official config: ResNet-50, FPN 256, 4 stacked convs, offset_channel_shrink 4, GN(32)."""
        return cls(num_classes, backbone="resnet50", backbone_weights=backbone_weights, fpn_channels=256,
                   stacked_convs=4, offset_channel_shrink=4, bn_affine_trainable=bn_affine_trainable,
                   frozen_stages=1, norm_groups=32)

    @classmethod
    def tiny(cls, num_classes):
        """CPU smoke variant: TinyBackbone (C3/C4/C5 = 32/64/128 channels), FPN 32, 2 stacked convs, GN(8)."""
        return cls(num_classes, backbone="tiny", fpn_channels=32, stacked_convs=2, offset_channel_shrink=4,
                   frozen_stages=-1, norm_groups=8)

    def forward(self, images):
        """images (B, 3, H, W), normalised and padded -> DetectorOutput."""
        feats = self.backbone(images)
        feats = list(self.neck(OrderedDict(zip(("c3", "c4", "c5"), feats, strict=True))).values())  # P3..P7
        level_sizes = [tuple(f.shape[-2:]) for f in feats]
        anchors = grid_anchors(level_sizes, self.strides, device=images.device)
        logits, boxes = self.bbox_head(feats, anchors)
        b = images.shape[0]
        cls_logits = torch.cat([x.permute(0, 2, 3, 1).reshape(b, -1, self.num_classes) for x in logits], dim=1)
        # Back to pixels: the official head multiplies by the stride in `loss` and `_get_bboxes_single`.
        boxes = torch.cat([x.permute(0, 2, 3, 1).reshape(b, -1, 4) * s
                           for x, s in zip(boxes, self.strides, strict=True)], dim=1)
        anchors = torch.cat(anchors)
        return DetectorOutput(cls_logits, boxes, anchors, anchor_priors(anchors), level_sizes, tuple(self.strides))

    @torch.no_grad()
    def predict(self, images, img_shapes, *, score_thr=0.05, nms_pre=1000, iou_thr=0.6, max_per_img=100,
                clip=False):
        """Detections per image (the official test_cfg); see `postprocess`. img_shapes: [(h, w)] unpadded sizes."""
        out = self(images)
        return postprocess(out.cls_logits, out.boxes, out.level_sizes, img_shapes, score_thr=score_thr,
                           nms_pre=nms_pre, iou_thr=iou_thr, max_per_img=max_per_img, clip=clip)


def postprocess(cls_logits, boxes, level_sizes, img_shapes, *, score_thr=0.05, nms_pre=1000, iou_thr=0.6,
                max_per_img=100, clip=False):
    """`FAM3DHead._get_bboxes_single` + mmdet `_bbox_post_process` for a batch.

    Per image and level: the (anchor, class) pairs with sigmoid probability > score_thr, the nms_pre highest
    (nms_pre <= 0 keeps all); an anchor may give several classes. All levels then go through class-aware NMS
    (`batched_nms` at iou_thr) and the max_per_img highest-scoring survivors are kept, sorted by score.
    As the official FAM3DHead override, boxes are NOT clipped to the image (pseudo boxes are clipped later, when
    they are mapped into the student view); `clip=True` clips them to the image's (h, w) before NMS, as mmdet's
    generic heads do. Scores are computed in float32 even under bf16 autocast (the official head is
    `force_fp32`; bf16 scores would tie and break the count prior). Returns a list of dicts with boxes (N, 4),
    scores (N,) and labels (N,) int64.
    """
    splits = [h * w for h, w in level_sizes]
    results = []
    for logits_i, boxes_i, (h, w) in zip(cls_logits, boxes, img_shapes, strict=True):
        det_boxes, det_scores, det_labels = [], [], []
        probs_i, boxes_i = logits_i.float().sigmoid(), boxes_i.float()
        for probs, level_boxes in zip(probs_i.split(splits), boxes_i.split(splits), strict=True):
            keep = (probs > score_thr).nonzero()  # (N, 2): anchor, class
            scores, order = probs[keep[:, 0], keep[:, 1]].sort(descending=True)
            if nms_pre > 0:
                scores, order = scores[:nms_pre], order[:nms_pre]
            det_boxes.append(level_boxes[keep[order, 0]])
            det_scores.append(scores)
            det_labels.append(keep[order, 1])
        det_boxes = torch.cat(det_boxes)
        if clip:
            det_boxes = clip_boxes_to_image(det_boxes, (int(h), int(w)))
        det_scores, det_labels = torch.cat(det_scores), torch.cat(det_labels)
        keep = batched_nms(det_boxes, det_scores, det_labels, iou_thr)[:max_per_img]
        results.append(dict(boxes=det_boxes[keep], scores=det_scores[keep], labels=det_labels[keep]))
    return results

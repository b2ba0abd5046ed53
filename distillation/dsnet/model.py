"""DS-Net supernets: the official `slimmable_mbnet_v1_bn_uniform` (DS-MBNet) and DS-ResNet-50 (DS-ViT++: vit.py).

One call runs one sub-network, named by `width`:
  "largest"    every slimmable layer at its widest (official `set_mode('largest')`)
  "smallest"   every slimmable layer at its slimmest
  int r        official `set_mode('uniform', choice=r)`: the routed stages (the gated stage and the ones after it)
               at choice r, the earlier ones at their slimmest (MBNet); for DS-ResNet every gated stage at r
  tuple        DS-ResNet: one choice per gated stage
  "dynamic"    the double-headed gate picks the route per sample: masked path (`SoftChoice`), differentiable
  "dynamic_sliced"  the gate picks, then the rest runs truly sliced; all samples of the batch must pick the same
               route (batch-1 per-sample inference, the real speed-up)
After a call, `model.madds` holds the multiply-adds of each sample ((B,) tensor or a float) and
`model.gates` one `GateOutput` per gate that ran.

Provenance (also in README): DS-MBNet = official code (changlin31/DS-Net @ 15cd303,
`dyn_slim/models/dyn_slim_{net,stages,blocks}.py`), module names kept so the released checkpoint loads.
DS-ResNet-50 = [assumption] from the research notes §4.7.3 (paper body not readable here): bottleneck
ResNet-50, widths rho in {0.25, 0.5, 0.75, 1.0} of each stage, one double-headed gate in the first block of
stages 2-4 (after its 3x3 conv, as the MBNet gate sits after the depthwise conv), stage 1 fixed at full width.
"""
import torch.nn.functional as F
from torch import nn

from .gating import GateOutput, SlimmableNet  # noqa: F401 (GateOutput: re-exported)
from .ops import SlimBatchNorm2d, SlimConv2d, SlimLinear, SoftChoice, global_avg_pool
from .vit import ds_vit_deit_s, ds_vit_tiny

# official `choices_cfgs['slimmable_mbnet_v1_bn_uniform']`: (out channels list, layers, kernel, stride, has_gate)
MBNET_V1_STEM = ([16, 24], 3, 2)
MBNET_V1_STAGES = [
    ([32, 88], 1, 3, 1, False),
    ([48, 168], 2, 3, 2, False),
    ([96, 264], 2, 3, 2, False),
    (list(range(224, 640 + 1, 32)), 6, 3, 2, True),
    (list(range(736, 1152 + 1, 32)), 2, 3, 2, False),
]


def make_divisible(v, divisor=8):
    """Official `make_divisible` (timm)."""
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < 0.9 * v else new_v


def index_of(channels_list, x):
    return channels_list.index(x.shape[1])


class MultiHeadGate(nn.Module):
    """Double-headed dynamic gate (official `MultiHeadGate`): avg-pool -> 1x1 conv (C -> C*se_ratio) -> ReLU;
    attention head: 1x1 conv back to C -> sigmoid -> channel re-weighting (an SE block);
    slimming head (`gate.0`, only where has_gate): 1x1 conv, no bias, to K route logits."""

    def __init__(self, channels_list, se_ratio=0.25, num_routes=0):
        super().__init__()
        self.channels_list = channels_list
        reduced = make_divisible(channels_list[-1] * se_ratio, 1)
        self.conv_reduce = SlimConv2d(channels_list, [reduced], 1, bias=True)
        self.conv_expand = SlimConv2d([reduced], channels_list, 1, bias=True)
        self.has_gate = num_routes > 1
        if self.has_gate:
            self.gate = nn.Sequential(SlimConv2d([reduced], [num_routes], 1, bias=False))

    def forward(self, x, choice):
        """x: (B, C, H, W) -> (x * attention, reduced (B, C_r, 1, 1), madds)."""
        pooled, m0 = global_avg_pool(x, self.channels_list, choice)
        r, m1 = self.conv_reduce(pooled, 0, choice)
        r = F.relu(r)
        out_choice = choice if isinstance(choice, SoftChoice) else index_of(self.channels_list, x)
        a, m2 = self.conv_expand(r, out_choice)
        return x * a.sigmoid(), r, m0 + m1 + m2

    def route_logits(self, reduced):
        logits, madds = self.gate[0](reduced, 0)
        return logits.flatten(1), madds  # (B, K)


class DSDepthwiseSeparable(nn.Module):
    """Official `DSDepthwiseSeparable` with noskip (MBNet v1): dw conv -> BN -> Swish -> gate (SE [+ routing])
    -> pw conv -> BN -> Swish. The dw conv runs at the input's width; the pw output width is `out_choice`, or
    the gate's decision in a gated block."""

    def __init__(self, in_list, out_list, kernel_size, stride, se_ratio=0.25, num_routes=0):
        super().__init__()
        self.in_list, self.out_list = in_list, out_list
        self.conv_dw = SlimConv2d(in_list, in_list, kernel_size, stride, depthwise=True)
        self.bn1 = SlimBatchNorm2d(in_list)
        self.gate = MultiHeadGate(in_list, se_ratio, num_routes)
        self.conv_pw = SlimConv2d(in_list, out_list, 1)
        self.bn2 = SlimBatchNorm2d(out_list)

    def forward(self, x, in_choice, out_choice, decide=None):
        x, m0 = self.conv_dw(x, in_choice=in_choice)
        x = F.silu(self.bn1(x, in_choice))
        x, reduced, m1 = self.gate(x, in_choice)
        madds = m0 + m1
        if decide is not None and self.gate.has_gate:
            logits, m2 = self.gate.route_logits(reduced)
            out_choice, madds = decide(logits), madds + m2
        x, m3 = self.conv_pw(x, out_choice, in_choice)
        x = F.silu(self.bn2(x, out_choice))
        return x, out_choice, madds + m3


class DSStage(nn.Module):
    """Official `DSStage`: `first_block` (may hold the gate; strided) + `residual_blocks`, all at one width."""

    def __init__(self, in_list, out_list, layers, kernel_size, stride, se_ratio=0.25, num_routes=0):
        super().__init__()
        self.first_block = DSDepthwiseSeparable(in_list, out_list, kernel_size, stride, se_ratio, num_routes)
        self.residual_blocks = nn.Sequential(*[DSDepthwiseSeparable(out_list, out_list, kernel_size, 1, se_ratio)
                                               for _ in range(layers - 1)])

    def forward(self, x, in_choice, out_choice, decide=None):
        x, choice, madds = self.first_block(x, in_choice, out_choice, decide)
        for block in self.residual_blocks:
            x, _, m = block(x, choice, choice)
            madds = madds + m
        return x, choice, madds


class DSMobileNetV1(SlimmableNet):
    """Official `DSNet` built from `choices_cfgs['slimmable_mbnet_v1_bn_uniform']`: Swish, SE (0.25) in every
    block, no skips, no head conv, dropout 0.2 before the classifier (largest net only), 14 width choices of the
    gated stage (224..640 step 32) and the last stage (736..1152), a K-way gate over choices
    [route_start, route_start + K) (official: K = 4, start 0)."""

    def __init__(self, num_classes=1000, stem=MBNET_V1_STEM, stages=MBNET_V1_STAGES, se_ratio=0.25,
                 drop_rate=0.2, num_routes=4, route_start=0, tau=1.0, eval_noise=True):
        super().__init__()
        stem_list, k, s = stem
        self.num_routes, self.route_start, self.drop_rate = num_routes, route_start, drop_rate
        self.conv_stem = SlimConv2d([3], stem_list, k, s)
        self.bn1 = SlimBatchNorm2d(stem_list)
        self.blocks = nn.ModuleList()
        in_list = stem_list
        for out_list, layers, k, s, has_gate in stages:
            self.blocks.append(DSStage(in_list, out_list, layers, k, s, se_ratio, num_routes if has_gate else 0))
            in_list = out_list
        self.routed_from = next(i for i, st in enumerate(stages) if st[4])  # the gated stage and those after it
        self.num_widths = len(stages[self.routed_from][0])
        self.num_features = in_list
        self.classifier = SlimLinear(in_list, num_classes)
        self.configure_gate(tau, eval_noise)
        self.init_weights()

    def static_widths(self):
        """The official evaluation's sub-networks: uniform choices 0 .. 13."""
        return list(range(self.num_widths))

    def forward(self, x, width="largest"):
        self.gates = []
        base = -1 if width == "largest" else 0
        x, madds = self.conv_stem(x, base)
        x = F.silu(self.bn1(x, base))
        choice = base
        for i, stage in enumerate(self.blocks):
            routed = i >= self.routed_from
            dynamic = routed and str(width).startswith("dynamic")
            decide = self.make_decide(width) if dynamic else None
            # routed stages after the gated one follow its choice (official: the stage inherits channel_choice)
            out = width if routed and isinstance(width, int) else choice if dynamic else base
            x, choice, m = stage(x, choice, out, decide)
            madds = madds + m
        x, m0 = global_avg_pool(x, self.num_features, choice)
        x = x.flatten(1)
        if self.drop_rate > 0 and width == "largest":
            x = F.dropout(x, self.drop_rate, self.training)
        x, m1 = self.classifier(x, choice)
        self.madds = madds + m0 + m1
        return x


def slimmable_mbnet_v1_bn_uniform(num_classes=1000, small_input=False, **kwargs):
    """The released DS-MBNet supernet (official registry name). small_input [ours, for 32x32 CIFAR images]:
    stem stride 1 instead of 2 (the rest unchanged)."""
    stem = (MBNET_V1_STEM[0], MBNET_V1_STEM[1], 1 if small_input else MBNET_V1_STEM[2])
    return DSMobileNetV1(num_classes, stem=stem, **kwargs)


def ds_mbnet_v1_tiny(num_classes=10, small_input=True, **kwargs):
    """Smoke-test size [ours]: the official structure (14 widths of the gated and last stages, SE, Swish, one 4-way
    gate) with every channel list about 1/8 and one or two blocks per stage; stem stride 1 for 32x32 input."""
    stem = ([4, 6], 3, 1 if small_input else 2)
    stages = [([8, 12], 1, 3, 1, False), ([12, 24], 1, 3, 2, False), ([16, 32], 1, 3, 2, False),
              (list(range(28, 80 + 1, 4)), 2, 3, 2, True), (list(range(92, 144 + 1, 4)), 1, 3, 2, False)]
    return DSMobileNetV1(num_classes, stem=stem, stages=stages, **kwargs)


class SlimBottleneck(nn.Module):
    """ResNet-50 bottleneck with sliceable widths [assumption, §4.7.3]: conv1 1x1 -> conv2 3x3 (stride) -> gate
    (SE attention [+ routing]) -> conv3 1x1 (x4), projection shortcut (1x1 conv + BN) in the first block of a
    stage, sliced to the same width so the residual add matches. conv1/conv2 run at `mid_choice` (the previous
    gated stage's choice, full width after an ungated stage); conv3 and the shortcut at the output choice (the
    gate's decision in a gated block)."""

    def __init__(self, in_list, mid_list, out_list, stride, se_ratio=0.25, num_routes=0, attention=True):
        super().__init__()
        self.conv1 = SlimConv2d(in_list, mid_list, 1)
        self.bn1 = SlimBatchNorm2d(mid_list)
        self.conv2 = SlimConv2d(mid_list, mid_list, 3, stride)
        self.bn2 = SlimBatchNorm2d(mid_list)
        self.gate = MultiHeadGate(mid_list, se_ratio, num_routes) if attention or num_routes else None
        self.conv3 = SlimConv2d(mid_list, out_list, 1)
        self.bn3 = SlimBatchNorm2d(out_list)
        self.downsample = None
        if stride != 1 or in_list[-1] != out_list[-1]:
            self.downsample = nn.ModuleDict({"conv": SlimConv2d(in_list, out_list, 1, stride),
                                             "bn": SlimBatchNorm2d(out_list)})
        self.stride = stride

    def forward(self, x, in_choice, mid_choice, out_choice, decide=None):
        identity = x
        h, madds = self.conv1(x, mid_choice, in_choice)
        h = F.relu(self.bn1(h, mid_choice))
        h, m = self.conv2(h, mid_choice, mid_choice)
        h = F.relu(self.bn2(h, mid_choice))
        madds = madds + m
        if self.gate is not None:
            h, reduced, m = self.gate(h, mid_choice)
            madds = madds + m
            if decide is not None and self.gate.has_gate:
                logits, m = self.gate.route_logits(reduced)
                out_choice, madds = decide(logits), madds + m
        h, m = self.conv3(h, out_choice, mid_choice)
        h = self.bn3(h, out_choice)
        madds = madds + m
        if self.downsample is not None:
            identity, m = self.downsample["conv"](x, out_choice, in_choice)
            identity = self.downsample["bn"](identity, out_choice)
            madds = madds + m
        return F.relu(h + identity), out_choice, madds


class DSResNet(SlimmableNet):
    """DS-ResNet [assumption, research notes §4.7.3; CVPR §5.1 not readable here]: ResNet-50 (3/4/6/3 bottlenecks),
    every width of stage s a ratio of its base width, stage 1 fixed at full width, a double-headed gate in the
    first block of stages 2-4; the other blocks keep the SE attention head (`attention=True`) and reuse rho.

    `width` int r: every gated stage at choice r; tuple: one choice per gated stage. Static widths = int r."""

    def __init__(self, num_classes=1000, layers=(3, 4, 6, 3), base_width=64, ratios=(0.25, 0.5, 0.75, 1.0),
                 gated_stages=(1, 2, 3), se_ratio=0.25, num_routes=None, route_start=0, tau=1.0, eval_noise=True,
                 small_input=False):
        super().__init__()
        self.ratios, self.gated_stages = list(ratios), tuple(gated_stages)
        self.num_gated_stages = len(self.gated_stages)
        self.num_routes = num_routes or len(ratios)
        self.route_start = route_start
        stem_c = base_width
        if small_input:  # CIFAR: 3x3 stride-1 stem, no max-pool
            self.conv_stem = SlimConv2d([3], [stem_c], 3, 1)
        else:
            self.conv_stem = SlimConv2d([3], [stem_c], 7, 2)
        self.small_input = small_input
        self.bn1 = SlimBatchNorm2d([stem_c])
        self.stages = nn.ModuleList()
        in_list = [stem_c]
        for s, n in enumerate(layers):
            mid = base_width * 2 ** s
            gated = s in self.gated_stages
            scale = lambda c, gated=gated: [max(1, int(round(c * r))) for r in self.ratios] if gated else [c]  # noqa: E731
            mid_list, out_list = scale(mid), scale(mid * 4)
            blocks = [SlimBottleneck(in_list, mid_list, out_list, 1 if s == 0 else 2, se_ratio,
                                     self.num_routes if gated else 0)]
            blocks += [SlimBottleneck(out_list, mid_list, out_list, 1, se_ratio) for _ in range(n - 1)]
            self.stages.append(nn.ModuleList(blocks))
            in_list = out_list
        self.num_features = in_list
        self.classifier = SlimLinear(in_list, num_classes)
        self.num_widths = len(ratios)
        self.configure_gate(tau, eval_noise)
        self.init_weights()

    def static_widths(self):
        return list(range(self.num_widths))

    def forward(self, x, width="largest"):
        self.gates = []
        x, madds = self.conv_stem(x, 0)
        x = F.relu(self.bn1(x, 0))
        if not self.small_input:
            x = F.max_pool2d(x, 3, 2, 1)
        choice, g = 0, 0
        for s, blocks in enumerate(self.stages):
            gated = s in self.gated_stages
            decide, out = None, 0
            if gated:
                if width == "largest":
                    out = -1
                elif isinstance(width, int):
                    out = width
                elif isinstance(width, (tuple, list)):
                    out = width[g]
                elif str(width).startswith("dynamic"):
                    decide = self.make_decide(width)
                g += 1
            in_choice, mid = choice, choice if s - 1 in self.gated_stages else -1
            for b, block in enumerate(blocks):
                x, choice, m = block(x, in_choice, mid, out, decide if b == 0 else None)
                out = in_choice = mid = choice
                madds = madds + m
        x, m0 = global_avg_pool(x, self.num_features, choice)
        x, m1 = self.classifier(x.flatten(1), choice)
        self.madds = madds + m0 + m1
        return x


def ds_resnet50(num_classes=1000, **kwargs):
    return DSResNet(num_classes, **kwargs)


def ds_resnet_tiny(num_classes=10, small_input=True, **kwargs):
    """Smoke-test size [ours]: one bottleneck per stage, base width 8."""
    return DSResNet(num_classes, layers=(1, 1, 1, 1), base_width=8, small_input=small_input, **kwargs)


MODELS = {"ds_mbnet_v1": slimmable_mbnet_v1_bn_uniform, "ds_mbnet_v1_tiny": ds_mbnet_v1_tiny,
          "ds_resnet50": ds_resnet50, "ds_resnet_tiny": ds_resnet_tiny,
          "ds_vit_deit_s": ds_vit_deit_s, "ds_vit_tiny": ds_vit_tiny}


def build_model(name, num_classes, **kwargs):
    return MODELS[name](num_classes, **kwargs)


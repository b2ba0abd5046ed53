"""Batch-1 per-sample inference latency of DS-MBNet and DS-ViT++: gated (truly sliced) vs the full network vs
standalone dense networks of each static width: the measurement behind the paper's "1.62x real-world acceleration".

    bash bench.sh [--device cuda] [--image_size 224] [--iters 50] [--out bench.json]

Protocol (research notes §4.7.8, [assumption] where the papers are silent): eval mode, batch 1, `inference_mode`,
`warmup` untimed calls then `iters` timed calls of one forward each (the device synchronised around each call on
CUDA); the median (and p90) in milliseconds. Rows:
  full            the widest static width (choice 13, the official sub-net table's last column), sliced
  largest         the official 'largest' mode (every stage at its widest, 820M MAdds at 224)
  width_<i>       static width i run through the supernet (weights sliced on every call)
  dense_<i>       the same sub-network exported to plain nn.Conv2d / nn.Linear with its own dense weights
  gated_slimmest  the gated network, gate forced to its slimmest route, sliced (`dynamic_sliced`): gate overhead
                  included
  gated           the gated network with the untrained gate's own per-sample decisions (argmax, no noise)
Ratios in the JSON: width_i / dense_i (slicing overhead, goal <= 1.2) and full / gated_slimmest (goal >= 1.5).
Weights are random (latency does not depend on their values); BN uses its running statistics.

DS-ViT++ (`--vit true`, default; `vit_model` ds_vit_deit_s at `vit_image_size` 224): the same rows for the ViT
supernet under the JSON key "vit" (its own rows / ratios / full_width; the DS-MBNet keys above are unchanged):
width_<i> (every stage at choice i, sliced, dynamic idle slicing), dense_<i> (the same sub-network exported to
plain nn.Linear / nn.LayerNorm modules with their own weights, the idle channels still concatenated back),
gated_slimmest (the three stage gates forced to their slimmest route) and gated (the untrained gates' own routes).
"""
import copy
import dataclasses
import json
import platform
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from common.benchmark import sync
from common.config import RunConfig, option, parse_config
from common.errors import exit_on_user_error
from common.runtime import seed_everything, select_device

from .model import MODELS, DSMobileNetV1, slimmable_mbnet_v1_bn_uniform
from .vit import DSViT

HERE = Path(__file__).resolve().parent


@dataclasses.dataclass
class BenchConfig(RunConfig):
    model: str = option("ds_mbnet_v1", "supernet (the official DS-MBNet)", choices=("ds_mbnet_v1",))
    num_classes: int = option(1000, "classes")
    image_size: int = option(224, "input height and width")
    widths: list[int] = option([], "static widths to time (default: all 14)")
    warmup: int = option(10, "untimed calls first")
    iters: int = option(50, "timed calls per row")
    out: str = option("bench.json", "where to write the JSON results")
    cpu_threads: int = option(1, "torch intra-op threads on CPU (0: torch's default)")
    vit: bool = option(True, "also time DS-ViT++ (JSON key 'vit')")
    vit_model: str = option("ds_vit_deit_s", "the DS-ViT++ supernet", choices=("ds_vit_deit_s", "ds_vit_tiny"))
    vit_image_size: int = option(224, "DS-ViT++ input height and width")


class DenseBlock(nn.Module):
    """One depthwise-separable block of a static sub-network as plain dense layers."""

    def __init__(self, block, c_in, c_out):
        super().__init__()
        self.dw = dense_conv(block.conv_dw, c_in, c_in, groups=c_in)
        self.bn1 = dense_bn(block.bn1, c_in)
        self.se_reduce = dense_conv(block.gate.conv_reduce, c_in, block.gate.conv_reduce.out_channels)
        self.se_expand = dense_conv(block.gate.conv_expand, block.gate.conv_expand.in_channels, c_in)
        self.pw = dense_conv(block.conv_pw, c_in, c_out)
        self.bn2 = dense_bn(block.bn2, c_out)

    def forward(self, x):
        x = F.silu(self.bn1(self.dw(x)))
        s = F.relu(self.se_reduce(x.mean((2, 3), keepdim=True)))
        x = x * self.se_expand(s).sigmoid()
        return F.silu(self.bn2(self.pw(x)))


def dense_conv(conv, c_in, c_out, groups=1):
    dense = nn.Conv2d(c_in, c_out, conv.kernel_size, conv.stride, conv.padding, groups=groups,
                      bias=conv.bias is not None)
    with torch.no_grad():
        dense.weight.copy_(conv.weight[:c_out] if groups > 1 else conv.weight[:c_out, :c_in])
        if conv.bias is not None:
            dense.bias.copy_(conv.bias[:c_out])
    return dense


def dense_bn(bn, c):
    dense = nn.BatchNorm2d(c, eps=bn.aux_bn[-1].eps)
    stats = bn.aux_bn[bn.channels_list.index(c)]
    with torch.no_grad():
        dense.weight.copy_(bn.aux_bn[-1].weight[:c])
        dense.bias.copy_(bn.aux_bn[-1].bias[:c])
        dense.running_mean.copy_(stats.running_mean)
        dense.running_var.copy_(stats.running_var)
    return dense.eval()


class DenseSubnet(nn.Module):
    """Static width `width` of a DSMobileNetV1 exported as a standalone dense network (own weight tensors)."""

    def __init__(self, supernet: DSMobileNetV1, width):
        super().__init__()
        base = -1 if width == "largest" else 0
        choice = lambda s, i: width if isinstance(width, int) and i >= s.routed_from else base  # noqa: E731
        stem_c = supernet.conv_stem.out_channels_list[base]
        self.stem = dense_conv(supernet.conv_stem, 3, stem_c)
        self.bn1 = dense_bn(supernet.bn1, stem_c)
        blocks, c_in = [], stem_c
        for i, stage in enumerate(supernet.blocks):
            c_out = stage.first_block.out_list[choice(supernet, i)]
            blocks.append(DenseBlock(stage.first_block, c_in, c_out))
            blocks += [DenseBlock(b, c_out, c_out) for b in stage.residual_blocks]
            c_in = c_out
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(c_in, supernet.classifier.out_features)
        with torch.no_grad():
            self.fc.weight.copy_(supernet.classifier.weight[:, :c_in])
            self.fc.bias.copy_(supernet.classifier.bias)

    def forward(self, x):
        x = self.blocks(F.silu(self.bn1(self.stem(x))))
        return self.fc(x.mean((2, 3)))


def dense_linear(slim, c_out, c_in):
    """A SlimTokenLinear's leading slice as an nn.Linear with its own weight."""
    w = slim.sliced_weight(c_out, c_in)
    dense = nn.Linear(c_in, w.shape[0], bias=slim.bias is not None)
    with torch.no_grad():
        dense.weight.copy_(w)
        if slim.bias is not None:
            dense.bias.copy_(slim.sliced_bias(c_out))
    return dense


def dense_layer_norm(ln, c):
    dense = nn.LayerNorm(c, eps=ln.eps)
    with torch.no_grad():
        dense.weight.copy_(ln.weight[:c])
        dense.bias.copy_(ln.bias[:c])
    return dense


class DenseViTBlock(nn.Module):
    """One DS-ViT++ block at width (d, h, m) as plain modules; channels [d:] of the stream still idle."""

    def __init__(self, block, c):
        super().__init__()
        d, h, m = block.embed_list[c], block.attn.heads_list[c], block.mlp.fc1.out_features_list[c]
        self.d, self.heads, self.head_dim = d, h, block.attn.head_dim
        inner = h * self.head_dim
        self.norm1, self.norm2 = dense_layer_norm(block.norm1, d), dense_layer_norm(block.norm2, d)
        self.qkv, self.proj = dense_linear(block.attn.qkv, inner, d), dense_linear(block.attn.proj, d, inner)
        self.fc1, self.fc2 = dense_linear(block.mlp.fc1, m, d), dense_linear(block.mlp.fc2, d, m)
        self.passthrough = block.idle == "passthrough"

    def forward(self, x, scale=None):
        h, idle = x[..., :self.d], x[..., self.d:]
        b, n, _ = h.shape
        q, k, v = self.qkv(self.norm1(h)).view(b, n, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        h = h + self.proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, -1))
        f = F.gelu(self.fc1(self.norm2(h)))
        h = h + self.fc2(f if scale is None else f * scale[:, None, :])
        if idle.shape[-1] == 0:
            return h
        return torch.cat([h, idle if self.passthrough else torch.zeros_like(idle)], -1)


class DenseViT(nn.Module):
    """Static width `width` (every stage at that choice) of a DSViT exported as a standalone dense network."""

    def __init__(self, supernet: DSViT, width):
        super().__init__()
        c = supernet.num_widths - 1 if width == "largest" else width
        src = supernet.patch_embed.proj
        self.patch = nn.Conv2d(3, src.out_channels, src.kernel_size, src.stride)
        self.patch.load_state_dict(src.state_dict())
        self.cls_token = nn.Parameter(supernet.cls_token.detach().clone())
        self.pos_embed = nn.Parameter(supernet.pos_embed.detach().clone())
        self.gate_input, self.gates = [], nn.ModuleList()
        for g in supernet.stage_gates:
            gate = nn.Module()
            gate.norm = copy.deepcopy(g.norm)
            gate.reduce = copy.deepcopy(g.reduce)
            gate.expand = dense_linear(g.expand, g.expand.out_features_list[c], g.reduce.out_features) \
                if g.expand is not None else None
            self.gates.append(gate)
            self.gate_input.append(g.gate_input)
        bounds = zip(supernet.stage_starts[:-1], supernet.stage_starts[1:], strict=True)
        self.stages = nn.ModuleList([nn.ModuleList([DenseViTBlock(supernet.blocks[i], c) for i in range(a, b)])
                                     for a, b in bounds])
        self.norm, self.head = copy.deepcopy(supernet.norm), copy.deepcopy(supernet.head)

    def forward(self, x):
        t = self.patch(x).flatten(2).transpose(1, 2)
        t = torch.cat([self.cls_token.expand(t.shape[0], -1, -1), t], 1) + self.pos_embed
        for gate, kind, blocks in zip(self.gates, self.gate_input, self.stages, strict=True):
            pooled = t[:, 1:].mean(1) if kind == "mean_patch" else t[:, 0]
            r = F.relu(gate.reduce(gate.norm(pooled)))
            scale = gate.expand(r).sigmoid() if gate.expand is not None else None
            for i, block in enumerate(blocks):
                t = block(t, scale if i == 0 else None)
        return self.head(self.norm(t)[:, 0])


def time_call(fn, x, device, warmup, iters):
    """(median ms, p90 ms) of `iters` calls after `warmup`; the device is synchronised around each call."""
    with torch.inference_mode():
        for _ in range(warmup):
            fn(x)
        sync(device)
        times = []
        for _ in range(iters):
            t0 = time.perf_counter()
            fn(x)
            sync(device)
            times.append((time.perf_counter() - t0) * 1e3)
    times.sort()
    return statistics.median(times), times[min(len(times) - 1, int(0.9 * len(times)))]


def hardware(device):
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"


def bench_supernet(net, dense_of, x, device, cfg, widths, print_prefix=""):
    """Rows and ratios of one supernet: width_<i> / dense_<i> for `widths` and the full width, largest (MBNet
    only), gated_slimmest, gated. `dense_of(net, width)` exports a standalone dense sub-network."""
    rows = {}

    def record(name, fn, madds):
        median, p90 = time_call(fn, x, device, cfg.warmup, cfg.iters)
        rows[name] = {"median_ms": median, "p90_ms": p90, "madds": float(madds)}
        print(f"{print_prefix}{name:16s} {median:8.2f} ms (p90 {p90:.2f})  {float(madds) / 1e6:7.1f}M MAdds",
              flush=True)

    def madds_of(width):
        with torch.inference_mode():
            net(x, width)
        return net.madds

    if isinstance(net, DSMobileNetV1):
        record("largest", lambda t: net(t, "largest"), madds_of("largest"))
    full = net.num_widths - 1
    for w in sorted(set(widths) | {full}):
        record(f"width_{w}", lambda t, w=w: net(t, w), madds_of(w))
        dense = dense_of(net, w).to(device).eval()
        record(f"dense_{w}", dense, madds_of(w))
    slimmest = torch.full((1, net.num_routes), -1e4, device=device)
    slimmest[0, 0] = 1e4  # Gumbel "noise" that makes route 0 win: the gate still runs, its choice is forced

    def gated_slimmest(t):
        net.gumbel_noise, net.eval_noise = slimmest, True
        out = net(t, "dynamic_sliced")
        net.gumbel_noise, net.eval_noise = None, False
        return out

    with torch.inference_mode():
        gated_slimmest(x)
    record("gated_slimmest", gated_slimmest, net.madds)
    with torch.inference_mode():
        net(x, "dynamic_sliced")
    record("gated", lambda t: net(t, "dynamic_sliced"), net.madds)
    ratios = {f"width_{w}_over_dense": rows[f"width_{w}"]["median_ms"] / rows[f"dense_{w}"]["median_ms"]
              for w in sorted(set(widths) | {full})}
    ratios["full_over_gated_slimmest"] = rows[f"width_{full}"]["median_ms"] / rows["gated_slimmest"]["median_ms"]
    return rows, ratios, full


@exit_on_user_error
def main(argv=None):
    cfg = parse_config(BenchConfig, argv, config_dir=HERE, description=__doc__)
    device = select_device(cfg.device)
    if device.type == "cpu" and cfg.cpu_threads > 0:
        torch.set_num_threads(cfg.cpu_threads)
    seed_everything(0)
    net = slimmable_mbnet_v1_bn_uniform(cfg.num_classes, eval_noise=False).to(device).eval()
    x = torch.randn(1, 3, cfg.image_size, cfg.image_size, device=device)
    rows, ratios, full = bench_supernet(net, DenseSubnet, x, device, cfg, cfg.widths or net.static_widths())
    result = {"model": cfg.model, "device": hardware(device), "torch": torch.__version__, "batch_size": 1,
              "image_size": cfg.image_size, "warmup": cfg.warmup, "iters": cfg.iters,
              "date": time.strftime("%Y-%m-%d"), "full_width": full, "rows": rows, "ratios": ratios}
    for k, v in ratios.items():
        print(f"{k:28s} {v:.3f}")
    if cfg.vit:
        seed_everything(0)
        vit = MODELS[cfg.vit_model](cfg.num_classes, img_size=cfg.vit_image_size, eval_noise=False).to(device).eval()
        xv = torch.randn(1, 3, cfg.vit_image_size, cfg.vit_image_size, device=device)
        v_rows, v_ratios, v_full = bench_supernet(vit, DenseViT, xv, device, cfg, vit.static_widths(), "vit ")
        result["vit"] = {"model": cfg.vit_model, "image_size": cfg.vit_image_size, "full_width": v_full,
                         "rows": v_rows, "ratios": v_ratios}
        for k, v in v_ratios.items():
            print(f"vit {k:24s} {v:.3f}")
    Path(cfg.out).parent.mkdir(parents=True, exist_ok=True)
    Path(cfg.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {cfg.out}")
    return result


if __name__ == "__main__":
    main()

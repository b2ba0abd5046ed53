"""DS-ViT++: a DeiT-style vision transformer supernet with dynamic weight slicing and dynamic idle slicing.

Paper: Li et al., "DS-Net++: Dynamic Weight Slicing for Efficient Inference in CNNs and Vision Transformers",
TPAMI (arXiv 2109.10060). Only its abstract could be read here and no official ViT code exists (changlin31/DS-Net
has only the MobileNetV1 supernet), so this is a re-implementation from the research notes §4.7.4. Source labels
(also in the README's assumption table):
  [paper-abstract] the sliced dimensions embedding dimension and number of heads ("... etc."), contiguous leading
                   slices, dynamic idle slicing for the drastic embedding reduction, MvCo for supernet training.
  [recalled]       the MLP hidden width as the third sliced dimension; DeiT backbone; q/k/v/proj sliced to the
                   leading heads with the head dim fixed, MLP fc1/fc2 to the leading hidden units, LayerNorm/linear
                   inputs to the leading embedding channels; a stage-wise double-headed gate on the token features
                   at the start of the stage.
  [assumption]     the idle-slicing equation out = concat(x[..., :d] + f(x[..., :d]), x[..., d:]) (`idle`); the
                   width lists of DeiT-S (embedding {192, 256, 320, 384}, heads {3, 4, 5, 6}, MLP hidden 4x the
                   embedding width, all tied to one choice per stage); 3 gated stages of 4 blocks (gates at blocks
                   1, 5, 9); gate input = LayerNorm of the mean patch token (`gate_input`); the gate's attention
                   head re-weights the MLP hidden units of the stage's first block (`gate_attention`, the ViT
                   analogue of the SE the CNN gate's attention head is); patch embedding, class token, position
                   embedding, final norm and head always at the full width D.

Widths: one choice index c per stage names (embed_dims[c], num_heads[c], mlp_dims[c]); `width` as in model.py:
"largest", "smallest", an int (every stage at c), a tuple (one c per stage), "dynamic" (masked, differentiable)
or "dynamic_sliced" (the gate picks, then the rest runs truly sliced; batch 1).

Dynamic idle slicing: the residual stream always has D channels. A block at width d computes only on x[..., :d]
(its LayerNorms, attention and MLP see d channels, small dense weights); channels [d:] are idle: not computed,
passed through unchanged by the identity shortcut (`idle="passthrough"`, default) or zeroed (`idle="zero"`, the
alternative of dropping them). The masked path keeps the full width and multiplies every branch output by the
channel mask, so the idle channels get x + 0 = x exactly.

MAdds (ops.py rule): patch embedding conv 3*D*p*p per patch; per block and token 3*d*h*d_h (qkv) + h*d_h*d (proj)
+ 2*d*m (MLP), plus 2*N*h*d_h for the two attention matmuls; gate: mean pooling D*(N-1), reduce D*r, attention
head r*m, slimming head r*K; head D*classes on the class token. LayerNorm, softmax, GELU are not counted.
"""
import torch
import torch.nn.functional as F
from torch import nn

from .gating import SlimmableNet
from .ops import SlimLayerNorm, SlimTokenLinear, SoftChoice, apply_mask, slim_attention

IDLE_MODES = ("passthrough", "zero")
GATE_INPUTS = ("mean_patch", "cls")


class DropPath(nn.Module):
    """Stochastic depth (DeiT): drops a sample's residual branch with probability `rate` in training."""

    def __init__(self, rate=0.0):
        super().__init__()
        self.rate = rate

    def forward(self, x):
        if not self.training or self.rate == 0:
            return x
        keep = x.new_empty(x.shape[0], *([1] * (x.dim() - 1))).bernoulli_(1 - self.rate)
        return x * keep / (1 - self.rate)


class SlimAttention(nn.Module):
    """Multi-head self-attention with the leading h heads (head dim fixed): qkv (d -> 3 h d_h), proj (h d_h -> d)."""

    def __init__(self, embed_list, heads_list, head_dim):
        super().__init__()
        self.heads_list, self.head_dim = heads_list, head_dim
        inner = [h * head_dim for h in heads_list]
        self.qkv = SlimTokenLinear(embed_list, inner, chunks=3)
        self.proj = SlimTokenLinear(inner, embed_list)

    def forward(self, x, choice):
        qkv, m0 = self.qkv(x, choice, choice)                              # (B, N, 3 h d_h)
        y, m1 = slim_attention(qkv, self.head_dim, self.heads_list, choice)  # (B, N, h d_h)
        y, m2 = self.proj(y, choice, choice)                              # (B, N, d)
        return y, m0 + m1 + m2


class SlimMlp(nn.Module):
    """fc1 (d -> m) -> GELU [-> x gate attention] -> fc2 (m -> d), m the leading hidden units."""

    def __init__(self, embed_list, mlp_list):
        super().__init__()
        self.fc1 = SlimTokenLinear(embed_list, mlp_list)
        self.fc2 = SlimTokenLinear(mlp_list, embed_list)

    def forward(self, x, choice, scale=None):
        h, m0 = self.fc1(x, choice, choice)
        h = F.gelu(h)                                                     # (B, N, m); GELU(0) = 0 keeps the mask
        if scale is not None:
            h = h * scale[:, None, :]
        y, m1 = self.fc2(h, choice, choice)
        return y, m0 + m1


class SlimViTBlock(nn.Module):
    """Pre-norm transformer block (DeiT) on the leading d channels of the residual stream (dynamic idle slicing)."""

    def __init__(self, embed_list, heads_list, mlp_list, head_dim, drop_path=0.0, idle="passthrough"):
        super().__init__()
        if idle not in IDLE_MODES:
            raise ValueError(f"idle must be one of {IDLE_MODES}, got {idle!r}")
        self.embed_list, self.idle = embed_list, idle
        self.norm1 = SlimLayerNorm(embed_list)
        self.attn = SlimAttention(embed_list, heads_list, head_dim)
        self.norm2 = SlimLayerNorm(embed_list)
        self.mlp = SlimMlp(embed_list, mlp_list)
        self.drop_path = DropPath(drop_path)

    def forward(self, x, choice, mlp_scale=None):
        """x: (B, N, D), the full residual stream. choice: int (sliced: x[..., :d] runs, x[..., d:] idles) or
        SoftChoice (masked: full width, branch outputs zero beyond each sample's d). Returns ((B, N, D), madds)."""
        masked = isinstance(choice, SoftChoice)
        if masked:
            h = x
        else:
            d = self.embed_list[choice]
            h, idle = x[..., :d], x[..., d:]                              # (B, N, d), (B, N, D - d)
        a, m0 = self.attn(self.norm1(h, choice), choice)
        h = h + self.drop_path(a)
        f, m1 = self.mlp(self.norm2(h, choice), choice, mlp_scale)
        h = h + self.drop_path(f)
        if masked:
            return (h if self.idle == "passthrough" else apply_mask(h, self.embed_list, choice)), m0 + m1
        if idle.shape[-1] == 0:
            return h, m0 + m1
        return torch.cat([h, idle if self.idle == "passthrough" else torch.zeros_like(idle)], -1), m0 + m1


class TokenGate(nn.Module):
    """Double-headed gate of a ViT stage [recalled structure; input and placement assumed]: trunk = LayerNorm of
    the mean patch token (or the class token) -> linear D -> r (r = D * ratio) -> ReLU; attention head: linear
    r -> m, sigmoid, re-weights the MLP hidden units of the stage's first block (sliced to the stage's m);
    slimming head (`gate.0`, no bias): r -> K route logits. The trunk sees the full-width stream, so its cost does
    not depend on the width."""

    def __init__(self, dim, mlp_list, ratio=0.25, num_routes=0, gate_input="mean_patch", attention=True):
        super().__init__()
        if gate_input not in GATE_INPUTS:
            raise ValueError(f"gate_input must be one of {GATE_INPUTS}, got {gate_input!r}")
        reduced = max(1, int(dim * ratio))
        self.gate_input = gate_input
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.reduce = nn.Linear(dim, reduced)
        self.expand = SlimTokenLinear([reduced], mlp_list) if attention else None
        self.has_gate = num_routes > 1
        if self.has_gate:
            self.gate = nn.Sequential(nn.Linear(reduced, num_routes, bias=False))

    def trunk(self, x):
        """x: (B, N, D) -> (reduced (B, r), madds)."""
        b, n, d = x.shape
        pooled = x[:, 1:].mean(1) if self.gate_input == "mean_patch" else x[:, 0]
        r = F.relu(self.reduce(self.norm(pooled)))
        return r, (d * (n - 1) if self.gate_input == "mean_patch" else 0) + d * self.reduce.out_features

    def route_logits(self, reduced):
        return self.gate[0](reduced), reduced.shape[1] * self.gate[0].out_features  # (B, K)

    def attention(self, reduced, choice):
        """(B, m) sigmoid weights of the chosen stage width (full width in the masked path), madds."""
        if self.expand is None:
            return None, 0
        a, madds = self.expand(reduced[:, None], choice)
        return a[:, 0].sigmoid(), madds


class DSViT(SlimmableNet):
    """DS-ViT++ supernet (DeiT-style; see the module docstring for what is paper, recalled or assumed).

    Args:
        embed_dims, num_heads, mlp_dims: the W width choices (ascending, equal lengths); mlp_dims default
            mlp_ratio * embed_dims. embed_dims[c] must equal num_heads[c] * head_dim (the attention's inner width).
        stages: blocks per gated stage (a gate at the first block of each).
        idle: "passthrough" (dynamic idle slicing) or "zero".
        gate_input: "mean_patch" or "cls"; gate_attention: the gate's attention head on/off.
        num_routes, route_start: the K-way routing space [route_start, route_start + K) of every gate.
    """

    def __init__(self, num_classes=1000, img_size=224, patch_size=16, embed_dims=(192, 256, 320, 384),
                 num_heads=(3, 4, 5, 6), head_dim=64, mlp_ratio=4.0, mlp_dims=None, stages=(4, 4, 4), drop_path=0.0,
                 idle="passthrough", gate_input="mean_patch", gate_attention=True, gate_ratio=0.25, num_routes=None,
                 route_start=0, tau=1.0, eval_noise=True):
        super().__init__()
        self.embed_dims, self.num_heads = list(embed_dims), list(num_heads)
        self.mlp_dims = list(mlp_dims) if mlp_dims else [int(mlp_ratio * d) for d in self.embed_dims]
        if not len(self.embed_dims) == len(self.num_heads) == len(self.mlp_dims):
            raise ValueError("embed_dims, num_heads and mlp_dims need one entry per width")
        self.head_dim, self.patch_size, self.img_size = head_dim, patch_size, img_size
        self.num_widths = len(self.embed_dims)
        self.num_routes, self.route_start = num_routes or self.num_widths, route_start
        if route_start + self.num_routes > self.num_widths:
            raise ValueError(f"route_start + num_routes must be <= {self.num_widths} (the widths of this ViT)")
        dim = self.embed_dims[-1]
        self.num_features = dim
        num_patches = (img_size // patch_size) ** 2
        self.patch_embed = nn.Module()
        self.patch_embed.proj = nn.Conv2d(3, dim, patch_size, patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, num_patches + 1, dim))
        depth = sum(stages)
        rates = [drop_path * i / max(1, depth - 1) for i in range(depth)]  # DeiT: linear in depth
        self.blocks = nn.ModuleList([SlimViTBlock(self.embed_dims, self.num_heads, self.mlp_dims, head_dim, rates[i],
                                                  idle) for i in range(depth)])
        self.stage_starts = [sum(stages[:s]) for s in range(len(stages))] + [depth]
        self.num_gated_stages = len(stages)
        self.stage_gates = nn.ModuleList([TokenGate(dim, self.mlp_dims, gate_ratio, self.num_routes, gate_input,
                                                    gate_attention) for _ in stages])
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, num_classes)
        self.configure_gate(tau, eval_noise)
        self.init_weights()

    def init_weights(self):
        """DeiT / timm ViT: truncated normal (std 0.02) for the linear weights, the class token and the position
        embedding; zero biases; LayerNorms at (1, 0); the patch-embedding conv keeps PyTorch's default."""
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.cls_token, std=0.02)

    def static_widths(self):
        """Every stage at choice c, c = 0 .. W-1."""
        return list(range(self.num_widths))

    def stage_choice(self, width, s):
        if width == "largest":
            return self.num_widths - 1
        if width == "smallest":
            return 0
        if isinstance(width, int):
            return width
        if isinstance(width, (tuple, list)):
            return width[s]
        raise ValueError(f"unknown width {width!r}")

    def forward(self, x, width="largest"):
        """x: (B, 3, H, W) -> logits (B, classes); `self.madds` (float or (B,)), `self.gates` (one per stage)."""
        self.gates = []
        dynamic = str(width).startswith("dynamic")
        decide = self.make_decide(width) if dynamic else None
        t = self.patch_embed.proj(x).flatten(2).transpose(1, 2)               # (B, P, D)
        dim, patches = t.shape[2], t.shape[1]
        madds = 3 * dim * self.patch_size ** 2 * patches
        t = torch.cat([self.cls_token.expand(t.shape[0], -1, -1), t], 1) + self.pos_embed  # (B, N, D)
        for s, gate in enumerate(self.stage_gates):
            reduced, m = gate.trunk(t)
            madds = madds + m
            if dynamic:
                logits, m = gate.route_logits(reduced)
                choice, madds = decide(logits), madds + m
            else:
                choice = self.stage_choice(width, s)
            scale, m = gate.attention(reduced, choice)
            madds = madds + m
            for i in range(self.stage_starts[s], self.stage_starts[s + 1]):
                t, m = self.blocks[i](t, choice, scale if i == self.stage_starts[s] else None)
                madds = madds + m
        t = self.norm(t)
        out = self.head(t[:, 0])
        self.madds = madds + dim * self.head.out_features
        return out


def ds_vit_deit_s(num_classes=1000, img_size=224, **kwargs):
    """DS-ViT++ on DeiT-S (D = 384, 6 heads of 64, MLP 1536, 12 blocks, patch 16) with the §4.7.4 width lists."""
    return DSViT(num_classes, img_size=img_size, **kwargs)


def ds_vit_tiny(num_classes=10, img_size=32, **kwargs):
    """Smoke-test size [ours]: 32x32 images in 8x8 patches (16 + 1 tokens), D = 64 with embedding {16, 32, 48, 64},
    heads {1, 2, 3, 4} of 16, MLP 4x, three gated stages of one block each."""
    kwargs = {"patch_size": 8, "embed_dims": (16, 32, 48, 64), "num_heads": (1, 2, 3, 4), "head_dim": 16,
              "stages": (1, 1, 1), **kwargs}
    return DSViT(num_classes, img_size=img_size, **kwargs)

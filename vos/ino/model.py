"""INO networks: a ViT with a learnable mask token and interpolated position embeddings, the DINO head,
and the student/teacher pair (In-N-Out, Pan et al., ACM MM 2022, arXiv 2203.15312; official INO_VOS code).

Parameter names follow DINO's `vision_transformer.py` (`patch_embed.proj`, `blocks.i.attn.qkv`, `norm`,
`pos_embed`, `cls_token`), so DINO ViT-S/8 and INO checkpoints load with a key-prefix strip only
(`checkpoints.py`).
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class PatchEmbed(nn.Module):
    """Non-overlapping p x p patches -> dim (a strided convolution)."""

    def __init__(self, patch_size=8, in_chans=3, embed_dim=384):
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x):  # (B, 3, H, W) -> (B, h*w, D)
        return self.proj(x).flatten(2).transpose(1, 2)


class Attention(nn.Module):
    def __init__(self, dim, num_heads, qkv_bias=True):
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):  # (B, N, D)
        b, n, d = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.num_heads, d // self.num_heads).permute(2, 0, 3, 1, 4)
        x = F.scaled_dot_product_attention(q, k, v)  # (B, heads, N, D/heads)
        return self.proj(x.transpose(1, 2).reshape(b, n, d))


class Mlp(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1, self.act, self.fc2 = nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


def drop_path(x, p, training):
    """Stochastic depth: drop the whole residual branch of a sample with probability p."""
    if p == 0.0 or not training:
        return x
    keep = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(1 - p)
    return x * keep / (1 - p)


class Block(nn.Module):
    def __init__(self, dim, num_heads, mlp_ratio=4.0, qkv_bias=True, drop_path=0.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads, qkv_bias)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.drop_path = drop_path

    def forward(self, x):
        x = x + drop_path(self.attn(self.norm1(x)), self.drop_path, self.training)
        return x + drop_path(self.mlp(self.norm2(x)), self.drop_path, self.training)


class VisionTransformer(nn.Module):
    """ViT backbone returning the normalised [CLS] and patch tokens.

    The learnable position embedding is created for a `pos_grid` x `pos_grid` patch grid (INO: img_size 64
    with patch 8 -> 8x8) and bicubically interpolated to every input's grid (DINO's
    `interpolate_pos_encoding`). A boolean patch mask replaces masked patch embeddings by `mask_token`
    before the position embedding is added (INO's in-generative masking).
    """

    def __init__(self, patch_size=8, embed_dim=384, depth=12, num_heads=6, mlp_ratio=4.0, qkv_bias=True,
                 drop_path_rate=0.0, pos_grid=8):
        super().__init__()
        self.patch_size, self.embed_dim, self.depth = patch_size, embed_dim, depth
        self.patch_embed = PatchEmbed(patch_size, 3, embed_dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + pos_grid * pos_grid, embed_dim))
        self.mask_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        rates = torch.linspace(0, drop_path_rate, depth).tolist()
        self.blocks = nn.ModuleList(Block(embed_dim, num_heads, mlp_ratio, qkv_bias, r) for r in rates)
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)
        for p in (self.pos_embed, self.cls_token, self.mask_token):
            nn.init.trunc_normal_(p, std=0.02)
        self.apply(self._init)

    @staticmethod
    def _init(m):
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)

    def interpolate_pos_encoding(self, h, w):
        """Position embeddings for an h x w patch grid: (1, 1 + h*w, D). Bicubic, with DINO's +0.1 offset."""
        n = self.pos_embed.shape[1] - 1
        if h * w == n and h == w:
            return self.pos_embed
        g = int(math.sqrt(n))
        grid = self.pos_embed[:, 1:].reshape(1, g, g, -1).permute(0, 3, 1, 2)
        grid = F.interpolate(grid, scale_factor=((h + 0.1) / g, (w + 0.1) / g), mode="bicubic", align_corners=False)
        if grid.shape[-2:] != (h, w):  # the +0.1 offset guards against float flooring; fix it if it did not
            grid = F.interpolate(grid, size=(h, w), mode="bicubic", align_corners=False)
        return torch.cat([self.pos_embed[:, :1], grid.permute(0, 2, 3, 1).reshape(1, h * w, -1)], dim=1)

    def prepare_tokens(self, x, mask=None):
        """(B, 3, H, W), mask (B, h*w) bool or None -> (B, 1 + h*w, D) tokens with position embeddings."""
        b, _, hh, ww = x.shape
        h, w = hh // self.patch_size, ww // self.patch_size
        t = self.patch_embed(x)  # (B, h*w, D)
        if mask is not None:
            t = torch.where(mask.unsqueeze(-1), self.mask_token.to(t.dtype), t)
        t = torch.cat([self.cls_token.expand(b, -1, -1), t], dim=1)
        return t + self.interpolate_pos_encoding(h, w).to(t.dtype)

    def forward(self, x, mask=None):
        """-> (B, 1 + h*w, D) tokens after the last block and the final LayerNorm."""
        t = self.prepare_tokens(x, mask)
        for blk in self.blocks:
            t = blk(t)
        return self.norm(t)

    def block_features(self, x, block):
        """Patch tokens after block `block` (1-based) and the final LayerNorm -> (B, h, w, D).

        INO inference uses `get_intermediate_layers(n=6)[0]` of ViT-S (12 blocks) = block 7.
        """
        if not 1 <= block <= self.depth:
            raise ValueError(f"block must be in 1..{self.depth}, got {block}")
        h, w = x.shape[-2] // self.patch_size, x.shape[-1] // self.patch_size
        t = self.prepare_tokens(x)
        for blk in self.blocks[:block]:
            t = blk(t)
        return self.norm(t)[:, 1:].reshape(x.shape[0], h, w, -1)


class DINOHead(nn.Module):
    """Shared projection head: MLP (in -> hidden -> hidden -> bottleneck), L2-normalise, weight-normed linear
    to K prototypes without bias; the weight norm's scale is frozen at 1 (`norm_last_layer=True`)."""

    def __init__(self, in_dim, out_dim=4096, hidden_dim=2048, bottleneck_dim=256):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.GELU(), nn.Linear(hidden_dim, hidden_dim),
                                 nn.GELU(), nn.Linear(hidden_dim, bottleneck_dim))
        for m in self.mlp:
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)
        self.last_layer = nn.utils.parametrizations.weight_norm(nn.Linear(bottleneck_dim, out_dim, bias=False))
        self.last_layer.parametrizations.weight.original0.data.fill_(1.0)
        self.last_layer.parametrizations.weight.original0.requires_grad = False

    def forward(self, x):  # (..., in_dim) -> (..., K)
        return self.last_layer(F.normalize(self.mlp(x), dim=-1))


class INONetwork(nn.Module):
    """Backbone + shared head (DINO's MultiCropWrapper): one forward for the global and the local crops."""

    def __init__(self, backbone, head):
        super().__init__()
        self.backbone, self.head = backbone, head

    def forward(self, x, mask=None, local_crops=None):
        """x (B, 3, G, G), mask (B, N) bool or None, local_crops (B', 3, l, l) or None ->
        head outputs of [CLS] (B, K), of the patches (B, N, K), and of the local crops' [CLS] (B', K) or None."""
        out = self.head(self.backbone(x, mask))  # (B, 1 + N, K)
        local = None if local_crops is None else self.head(self.backbone(local_crops)[:, 0])
        return out[:, 0], out[:, 1:], local


ARCHS = {
    # name: (embed_dim, depth, num_heads)
    "vit_small": (384, 12, 6),
    "vit_tiny": (192, 12, 3),
    "vit_micro": (64, 4, 2),  # smoke tests only
}


def vit(arch="vit_small", patch_size=8, drop_path_rate=0.0, pos_grid=8):
    """Named constructors: `vit("vit_small", 8)` is INO's ViT-S/8."""
    if arch not in ARCHS:
        raise ValueError(f"unknown arch {arch!r}; one of {', '.join(ARCHS)}")
    dim, depth, heads = ARCHS[arch]
    return VisionTransformer(patch_size, dim, depth, heads, drop_path_rate=drop_path_rate, pos_grid=pos_grid)


def build_ino(arch="vit_small", patch_size=8, out_dim=4096, hidden_dim=2048, bottleneck_dim=256,
              drop_path_rate=0.1, pos_grid=8):
    """Student (with drop path) and teacher (without) of identical architecture; teacher = student's weights."""
    student = INONetwork(vit(arch, patch_size, drop_path_rate, pos_grid),
                         DINOHead(ARCHS[arch][0], out_dim, hidden_dim, bottleneck_dim))
    teacher = INONetwork(vit(arch, patch_size, 0.0, pos_grid),
                         DINOHead(ARCHS[arch][0], out_dim, hidden_dim, bottleneck_dim))
    teacher.load_state_dict(student.state_dict())
    for p in teacher.parameters():
        p.requires_grad = False
    return student, teacher


@torch.no_grad()
def ema_update(teacher, student, momentum):
    """teacher <- m * teacher + (1 - m) * student, parameter by parameter."""
    for pt, ps in zip(teacher.parameters(), student.parameters(), strict=True):
        pt.mul_(momentum).add_(ps.detach(), alpha=1 - momentum)

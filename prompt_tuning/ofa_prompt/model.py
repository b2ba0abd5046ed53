"""OFA, the unified sequence-to-sequence multimodal model, in plain PyTorch, with prompt-tuning hooks.

Follows the official fairseq code (OFA-Sys/OFA @ a36b91c; abbreviations as in the research note:
UT = models/ofa/unify_transformer.py, UTL = unify_transformer_layer.py, MHA = unify_multihead_attention.py,
RN = models/ofa/resnet.py) with the flags every released checkpoint was trained with hard-wired:
pre-LN blocks with the NormFormer extras (`scale_attn`, `scale_fc`, `scale_heads` on, `scale_resids` off),
`--disable-entangle` (absolute positions enter only as an attention bias, TUPE-style), one token matrix shared
by encoder, decoder and output projection, embed_scale 1.0, type embeddings, attention scale factor 2.

Module and parameter names are the official ones (`encoder.layers.0.self_attn.c_attn`, `...attn_ln`, ...), so
a fairseq state dict loads by name (see `checkpoint.py`).

Shapes: B batch, N image tokens, T text tokens, S = N + T encoder length, H heads, hd head dim, l prompt length.
"""
import dataclasses
import math

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.resnet import Bottleneck

# OFA's architecture table (models/ofa/ofa.py: ofa_tiny/medium/base/large/huge; research note §6.1).
SIZES = {
    "tiny": dict(encoder_layers=4, decoder_layers=4, embed_dim=256, heads=4, ffn_dim=1024, resnet_layers=(3, 4, 6)),
    "medium": dict(encoder_layers=4, decoder_layers=4, embed_dim=512, heads=8, ffn_dim=2048,
                   resnet_layers=(3, 4, 23)),
    "base": dict(encoder_layers=6, decoder_layers=6, embed_dim=768, heads=12, ffn_dim=3072,
                 resnet_layers=(3, 4, 23)),
    "large": dict(encoder_layers=12, decoder_layers=12, embed_dim=1024, heads=16, ffn_dim=4096,
                  resnet_layers=(3, 8, 36)),
    "huge": dict(encoder_layers=24, decoder_layers=12, embed_dim=1280, heads=16, ffn_dim=5120,
                 resnet_layers=(3, 8, 36)),
}
VOCAB_SIZE = 59457          # 4 specials + 50260 BPE + <mask> + 8192 codes + 1000 bins (research note §6.6)


@dataclasses.dataclass
class OFAConfig:
    vocab_size: int = VOCAB_SIZE
    encoder_layers: int = 6
    decoder_layers: int = 6
    embed_dim: int = 768
    heads: int = 12
    ffn_dim: int = 3072
    resnet_layers: tuple = (3, 4, 23)
    max_positions: int = 1024          # text positions: Embedding(max_positions + 2, d) (UT:634-635)
    token_bucket_size: int = 256       # 511 relative text buckets (UT:673-682)
    image_bucket_size: int = 42        # (2*42-1)^2 + 3 relative image buckets, grids up to 42x42 (UT:684-695)
    attn_scale_factor: float = 2.0     # q scaled by (hd * factor)^-0.5 (MHA:58)
    dropout: float = 0.0               # arch default 0.0; the task scripts use 0.1 (set by the config)
    attention_dropout: float = 0.0
    activation_dropout: float = 0.0
    drop_path_rate: float = 0.0        # stochastic depth, linear 0 -> rate over each stack's layers (UT:659-665);
    #                                    arch default 0.0, the task scripts 0.2 (0.1 caption), set by the config
    padding_idx: int = 1
    # prompt tuning (UT:100-139, 542-551, 1231-1240): K/V prefixes in every self-attention layer
    encoder_prompt_length: int = 0     # 0: no encoder prompt
    decoder_prompt_length: int = 0
    prompt_projection: bool = False    # Embedding(l, d) -> Linear(d, proj) -> ReLU -> Linear(proj, L*2*d)
    prompt_dim: int = 0                # proj width; 0: 2 * embed_dim (the official default)
    prompt_dropout: float = 0.2        # fixed Dropout(0.2) on the prompt K/V (UT:551)
    adapter_dim: int = 0               # >0: Adapter_Layer after every FFN (UTL:49-93)

    @classmethod
    def of_size(cls, size, **overrides):
        if size not in SIZES:
            raise ValueError(f"unknown OFA size {size!r}; choose one of {sorted(SIZES)}")
        return cls(**{**SIZES[size], **overrides})

    @property
    def head_dim(self):
        return self.embed_dim // self.heads


# ---------------------------------------------------------------------------------------------------------------
# relative position buckets (UT:54-97)

def token_bucket_position(bucket_size, max_position=1024):
    """[P, P] bucket ids of text offsets i - j: exact within +-bucket_size/2, log-spaced beyond (UT:54-73)."""
    pos = torch.arange(max_position)
    rel = pos[:, None] - pos[None, :]
    sign = torch.sign(rel)
    mid = bucket_size // 2
    abs_pos = torch.where((rel < mid) & (rel > -mid), torch.full_like(rel, mid - 1), rel.abs())
    log_pos = torch.ceil(torch.log(abs_pos / mid) / math.log((max_position - 1) / mid) * (mid - 1)) + mid
    bucket = torch.where(abs_pos <= mid, rel, log_pos.int() * sign).long()
    return bucket + bucket_size - 1


def image_bucket_position(bucket_size, num_relative_distance):
    """[G*G+1, G*G+1] 2-D relative bucket ids for patch ids r*G+c+1; row/col 0 hold three special ids (UT:76-97)."""
    coords = torch.stack(torch.meshgrid(torch.arange(bucket_size), torch.arange(bucket_size), indexing="ij"))
    flat = coords.flatten(1)                                             # [2, G*G]
    rel = (flat[:, :, None] - flat[:, None, :]).permute(1, 2, 0).contiguous()
    rel[:, :, 0] += bucket_size - 1
    rel[:, :, 1] += bucket_size - 1
    rel[:, :, 0] *= 2 * bucket_size - 1
    index = torch.zeros((bucket_size * bucket_size + 1,) * 2, dtype=rel.dtype)
    index[1:, 1:] = rel.sum(-1)
    index[0, 0:] = num_relative_distance - 3
    index[0:, 0] = num_relative_distance - 2
    index[0, 0] = num_relative_distance - 1
    return index


def image_position_ids(height, width, bucket_size, device=None):
    """Patch (r, c) of an h x w grid -> embedding id r * G + c + 1 (UT:752-753); [h * w], row-major."""
    rows = torch.arange(height, device=device)[:, None] * bucket_size
    cols = torch.arange(width, device=device)[None, :]
    return (rows + cols + 1).flatten()


# ---------------------------------------------------------------------------------------------------------------
# image stem: ResNet layer1..layer3 only (RN:136-222)

class ResNetStem(nn.Module):
    """torchvision v1.5 bottlenecks, conv7x7/2 + maxpool, then layer1..layer3: 1024 channels at stride 16."""

    def __init__(self, layers):
        super().__init__()
        self.inplanes = 64
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(64, layers[0])
        self.layer2 = self._make_layer(128, layers[1], stride=2)
        self.layer3 = self._make_layer(256, layers[2], stride=2)

    def _make_layer(self, planes, blocks, stride=1):
        downsample = None
        if stride != 1 or self.inplanes != planes * Bottleneck.expansion:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes * Bottleneck.expansion, 1, stride=stride, bias=False),
                nn.BatchNorm2d(planes * Bottleneck.expansion))
        layers = [Bottleneck(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * Bottleneck.expansion
        layers += [Bottleneck(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x):                                  # [B, 3, H, W] -> [B, 1024, H/16, W/16]
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer3(self.layer2(self.layer1(x)))


# ---------------------------------------------------------------------------------------------------------------
# prompts and adapters

class PromptEncoder(nn.Module):
    """Per-layer K/V prefixes from prompt ids 0..l-1 (UT:100-139): [B, l] -> [B, l, L * 2 * d]."""

    def __init__(self, length, layers, embed_dim, projection=False, proj_dim=0):
        super().__init__()
        self.length, self.layers = length, layers
        out = layers * 2 * embed_dim
        self.projection = projection
        if projection:
            self.embedding = nn.Embedding(length, embed_dim)
            self.trans = nn.Sequential(nn.Linear(embed_dim, proj_dim or 2 * embed_dim), nn.ReLU(),
                                       nn.Linear(proj_dim or 2 * embed_dim, out))
        else:
            self.embedding = nn.Embedding(length, out)

    def forward(self, prefix):
        x = self.embedding(prefix)
        return self.trans(x) if self.projection else x


def split_prompt(prompt, layers, heads, head_dim, dropout):
    """[B, l, L*2*d] -> per layer (K, V), each [B, H, l, hd] (get_encoder_prompt, UT:796-808)."""
    b, l, _ = prompt.shape
    x = dropout(prompt.view(b, l, layers * 2, heads, head_dim))
    x = x.permute(2, 0, 3, 1, 4)                           # [2L, B, H, l, hd]
    return [(x[2 * i], x[2 * i + 1]) for i in range(layers)]


class Adapter(nn.Module):
    """Adapter_Layer (UTL:49-93): x + scale * up(ReLU(down(x))), after the FFN and before the block residual."""

    def __init__(self, embed_dim, bottleneck, scale=1.0):
        super().__init__()
        self.down = nn.Linear(embed_dim, bottleneck)
        self.up = nn.Linear(bottleneck, embed_dim)
        self.scale = scale

    def forward(self, x):
        return x + self.scale * self.up(F.relu(self.down(x)))


# ---------------------------------------------------------------------------------------------------------------
# attention and layers

class DropPath(nn.Module):
    """Stochastic depth per sample on a residual branch (UTL:19-35, `drop_path`): in training each sample's branch
    is zeroed with probability p and the kept ones are scaled by 1 / (1 - p); identity in eval mode or at p = 0.
    (The official tensors are [T, B, C] with mask shape (1, B, 1); ours are [B, T, C] with mask (B, 1, 1).)"""

    def __init__(self, p=0.0):
        super().__init__()
        self.p = p

    def forward(self, x):
        if self.p == 0.0 or not self.training:
            return x
        keep = 1.0 - self.p
        mask = (keep + torch.rand(x.shape[0], 1, 1, dtype=x.dtype, device=x.device)).floor_()
        return x.div(keep) * mask

    def extra_repr(self):
        return f"p={self.p}"


def drop_path_rates(rate, layers):
    """Per-layer rates, linearly spaced from 0 to `rate` (UT:659-665, 1310-1320)."""
    return [float(r) for r in torch.linspace(0, rate, layers)]


class MultiheadAttention(nn.Module):
    """OFA attention (MHA:117-407): q scaled by (hd * 2)^-0.5, an additive bias on the real key columns only,
    prompt K/V prepended (never cached), fp32 softmax, and NormFormer's per-head scale `c_attn`."""

    def __init__(self, embed_dim, heads, dropout=0.0, scale_factor=2.0):
        super().__init__()
        self.heads, self.head_dim = heads, embed_dim // heads
        self.scaling = (self.head_dim * scale_factor) ** -0.5
        self.q_proj = nn.Linear(embed_dim, embed_dim)
        self.k_proj = nn.Linear(embed_dim, embed_dim)
        self.v_proj = nn.Linear(embed_dim, embed_dim)
        self.out_proj = nn.Linear(embed_dim, embed_dim)
        self.c_attn = nn.Parameter(torch.ones(heads))        # scale_heads
        self.dropout = nn.Dropout(dropout)

    def _heads(self, x):                                    # [B, T, d] -> [B, H, T, hd]
        b, t, _ = x.shape
        return x.view(b, t, self.heads, self.head_dim).transpose(1, 2)

    def attend(self, query, key, key_padding_mask=None, attn_bias=None, attn_mask=None, prompt_kv=None,
               cache=None, static_kv=False):
        """Attention probabilities [B, H, T, l + S] (prompt slots first) and values [B, H, l + S, hd].

        query [B, T, d], key [B, S, d]; key_padding_mask [B, S] True = pad (real keys only); attn_bias
        [B, H, T, S] and attn_mask [T, S] (additive, causal) apply to the real key columns only, so prompt slots
        get no position bias and are never masked (MHA:348-373); prompt_kv (K, V) [B, H, l, hd]; cache: dict for
        incremental decoding, filled before the prompt is prepended (prompts are never cached, MHA:334-339)."""
        q = self._heads(self.q_proj(query)) * self.scaling
        if cache is not None and static_kv and "k" in cache:
            k, v = cache["k"], cache["v"]
        else:
            k, v = self._heads(self.k_proj(key)), self._heads(self.v_proj(key))
            if cache is not None and not static_kv and "k" in cache:
                k, v = torch.cat([cache["k"], k], 2), torch.cat([cache["v"], v], 2)
        if cache is not None:
            cache["k"], cache["v"] = k, v
        src_len = k.shape[2]
        if prompt_kv is not None:
            k, v = torch.cat([prompt_kv[0], k], 2), torch.cat([prompt_kv[1], v], 2)
        logits = q @ k.transpose(-1, -2)                    # [B, H, T, l + S]
        extra = torch.zeros_like(logits[..., -src_len:])
        if attn_bias is not None:
            extra = extra + attn_bias[..., -src_len:]
        if attn_mask is not None:
            extra = extra + attn_mask[..., -src_len:]
        if key_padding_mask is not None:
            extra = extra.masked_fill(key_padding_mask[:, None, None, -src_len:], float("-inf"))
        logits = torch.cat([logits[..., :-src_len], logits[..., -src_len:] + extra], -1)
        return logits.float().softmax(-1).to(q.dtype), v    # softmax in fp32 (MHA:378-381)

    def forward(self, query, key, **kwargs):
        probs, v = self.attend(query, key, **kwargs)
        out = self.dropout(probs) @ v                       # [B, H, T, hd]
        out = out * self.c_attn.view(1, -1, 1, 1)           # scale_heads (MHA:393-397)
        b, _, t, _ = out.shape
        return self.out_proj(out.transpose(1, 2).reshape(b, t, -1))


class EncoderLayer(nn.Module):
    """Pre-LN encoder layer with NormFormer's attn_ln and ffn_layernorm (UTL:222-292)."""

    def __init__(self, cfg, drop_path=0.0):
        super().__init__()
        d = cfg.embed_dim
        self.self_attn = MultiheadAttention(d, cfg.heads, cfg.attention_dropout, cfg.attn_scale_factor)
        self.self_attn_layer_norm = nn.LayerNorm(d)
        self.attn_ln = nn.LayerNorm(d)
        self.final_layer_norm = nn.LayerNorm(d)
        self.fc1 = nn.Linear(d, cfg.ffn_dim)
        self.fc2 = nn.Linear(cfg.ffn_dim, d)
        self.ffn_layernorm = nn.LayerNorm(cfg.ffn_dim)
        self.dropout = nn.Dropout(cfg.dropout)
        self.activation_dropout = nn.Dropout(cfg.activation_dropout)
        self.adapter = Adapter(d, cfg.adapter_dim) if cfg.adapter_dim else None
        self.drop_path = DropPath(drop_path)                # residual_connection: residual + drop_path(x) (UTL:196)

    def ffn(self, x):
        """final_layer_norm -> fc1 -> GELU (in fp32) -> ffn_layernorm -> fc2 [-> adapter] (UTL:273-286)."""
        h = self.activation_dropout(F.gelu(self.fc1(self.final_layer_norm(x)).float()).type_as(x))
        h = self.dropout(self.fc2(self.ffn_layernorm(h)))
        return self.adapter(h) if self.adapter is not None else h

    def forward(self, x, padding_mask, attn_bias, prompt_kv=None):
        h = self.self_attn_layer_norm(x)
        h = self.self_attn(h, h, key_padding_mask=padding_mask, attn_bias=attn_bias, prompt_kv=prompt_kv)
        x = x + self.drop_path(self.dropout(self.attn_ln(h)))
        return x + self.drop_path(self.ffn(x))


class DecoderLayer(EncoderLayer):
    """Pre-LN decoder layer: self-attn (self_attn_ln), cross-attn `encoder_attn` (cross_attn_ln), FFN
    (UTL:431-581). Prompts enter the self-attention only."""

    def __init__(self, cfg, drop_path=0.0):
        super().__init__(cfg, drop_path)
        d = cfg.embed_dim
        del self.attn_ln
        self.self_attn_ln = nn.LayerNorm(d)
        self.encoder_attn = MultiheadAttention(d, cfg.heads, cfg.attention_dropout, cfg.attn_scale_factor)
        self.encoder_attn_layer_norm = nn.LayerNorm(d)
        self.cross_attn_ln = nn.LayerNorm(d)

    def forward(self, x, enc, enc_padding_mask, self_bias, cross_bias, self_mask, padding_mask=None,
                prompt_kv=None, cache=None):
        h = self.self_attn_layer_norm(x)
        h = self.self_attn(h, h, key_padding_mask=padding_mask, attn_bias=self_bias, attn_mask=self_mask,
                           prompt_kv=prompt_kv, cache=None if cache is None else cache.setdefault("self", {}))
        x = x + self.drop_path(self.dropout(self.self_attn_ln(h)))
        h = self.encoder_attn_layer_norm(x)
        h = self.encoder_attn(h, enc, key_padding_mask=enc_padding_mask, attn_bias=cross_bias,
                              cache=None if cache is None else cache.setdefault("cross", {}), static_kv=True)
        x = x + self.drop_path(self.dropout(self.cross_attn_ln(h)))
        return x + self.drop_path(self.ffn(x))


# ---------------------------------------------------------------------------------------------------------------
# encoder and decoder stacks

class _Stack(nn.Module):
    """What encoder and decoder share: positions, position LNs, relative bias tables and buckets, prompts."""

    def __init__(self, cfg, embed_tokens, num_layers, prompt_length, side):
        super().__init__()
        d = cfg.embed_dim
        self.cfg = cfg
        self.embed_tokens = embed_tokens
        self.layernorm_embedding = nn.LayerNorm(d)
        self.embed_positions = nn.Embedding(cfg.max_positions + 2, d)
        self.embed_image_positions = nn.Embedding(cfg.image_bucket_size ** 2 + 1, d)
        self.pos_ln = nn.LayerNorm(d)
        self.image_pos_ln = nn.LayerNorm(d)
        self.token_rel_pos_table_list = nn.ModuleList(
            nn.Embedding(2 * cfg.token_bucket_size - 1, cfg.heads) for _ in range(num_layers))
        n_img = (2 * cfg.image_bucket_size - 1) ** 2 + 3
        self.image_rel_pos_table_list = nn.ModuleList(nn.Embedding(n_img, cfg.heads) for _ in range(num_layers))
        # recomputed from the config, never loaded (research note §6.11)
        self.register_buffer("token_rp_bucket", token_bucket_position(cfg.token_bucket_size, cfg.max_positions),
                             persistent=False)
        self.register_buffer("image_rp_bucket", image_bucket_position(cfg.image_bucket_size, n_img),
                             persistent=False)
        self.dropout = nn.Dropout(cfg.dropout)
        self.layer_norm = nn.LayerNorm(d)
        self.prompt_length = prompt_length
        self.prompt_name = f"{side}_prompt_encoder"                 # official names (UT:542-551, 1231-1240)
        if prompt_length:
            setattr(self, self.prompt_name,
                    PromptEncoder(prompt_length, num_layers, d, cfg.prompt_projection, cfg.prompt_dim))
            self.prompt_dropout = nn.Dropout(cfg.prompt_dropout)

    def prompts(self, batch, device):
        """Per-layer (K, V) prompt prefixes [B, H, l, hd], or a list of None."""
        if not self.prompt_length:
            return [None] * len(self.layers)
        ids = torch.arange(self.prompt_length, device=device).expand(batch, -1)
        return split_prompt(getattr(self, self.prompt_name)(ids), len(self.layers), self.cfg.heads, self.cfg.head_dim,
                            self.prompt_dropout)

    def token_rel_bias(self, layer, q_len, k_len):                # [H, q_len, k_len] for the last positions
        bucket = self.token_rp_bucket[k_len - q_len:k_len, :k_len]
        return self.token_rel_pos_table_list[layer](bucket).permute(2, 0, 1)

    def image_rel_bias(self, layer, ids):                         # ids [N] -> [H, N, N]
        bucket = self.image_rp_bucket[ids[:, None], ids[None, :]]
        return self.image_rel_pos_table_list[layer](bucket).permute(2, 0, 1)

    def abs_bias(self, q_linear, k_linear, pos_q, pos_k):       # [B, Tq, d], [B, Tk, d] -> [B, H, Tq, Tk]
        h, hd = self.cfg.heads, self.cfg.head_dim
        scaling = (hd * self.cfg.attn_scale_factor) ** -0.5
        q = q_linear(pos_q).view(*pos_q.shape[:2], h, hd).transpose(1, 2) * scaling
        k = k_linear(pos_k).view(*pos_k.shape[:2], h, hd).transpose(1, 2)
        return q @ k.transpose(-1, -2)


class Encoder(_Stack):
    """Image tokens (ResNet stem -> image_proj) before text tokens; absolute + relative position biases
    (UT:537-1070)."""

    def __init__(self, cfg, embed_tokens):
        super().__init__(cfg, embed_tokens, cfg.encoder_layers, cfg.encoder_prompt_length, "encoder")
        d = cfg.embed_dim
        self.type_embedding = nn.Embedding(2, d)
        self.embed_images = ResNetStem(cfg.resnet_layers)
        self.image_proj = nn.Linear(1024, d)
        self.patch_layernorm_embedding = nn.LayerNorm(d)
        self.pos_q_linear = nn.Linear(d, d)
        self.pos_k_linear = nn.Linear(d, d)
        self.layers = nn.ModuleList(EncoderLayer(cfg, p)
                                    for p in drop_path_rates(cfg.drop_path_rate, cfg.encoder_layers))

    def forward(self, src_tokens, patch_images=None, patch_masks=None):
        """src_tokens [B, T] (pad = 1); patch_images [B, 3, H, W] or None; patch_masks [B] bool (False: no image).

        Returns dict: out [B, S, d], padding_mask [B, S] (True = pad), position_embeddings [B, S, d]."""
        b, t = src_tokens.shape
        device = src_tokens.device
        pad = src_tokens.eq(self.cfg.padding_idx)
        x = self.embed_tokens(src_tokens) + self.type_embedding(torch.zeros_like(src_tokens))
        x = self.dropout(self.layernorm_embedding(x))
        x = x * (~pad).unsqueeze(-1).type_as(x)                      # padded positions zeroed (UT:997-998)
        pos = self.pos_ln(self.embed_positions(torch.arange(t, device=device))).expand(b, -1, -1)
        n, img_ids = 0, None
        if patch_images is not None:
            feat = self.embed_images(patch_images)                    # [B, 1024, h, w]
            h, w = feat.shape[-2:]
            if max(h, w) > self.cfg.image_bucket_size:
                raise ValueError(f"image grid {h}x{w} exceeds the {self.cfg.image_bucket_size}-bucket position table "
                                 f"(at most {16 * self.cfg.image_bucket_size} px per side)")
            img_ids = image_position_ids(h, w, self.cfg.image_bucket_size, device)
            n = h * w
            img = self.image_proj(feat.flatten(2).transpose(1, 2))    # [B, N, d]
            img = img + self.type_embedding(torch.ones(b, n, dtype=torch.long, device=device))
            img = self.dropout(self.patch_layernorm_embedding(img))
            img_pad = torch.zeros(b, n, dtype=torch.bool, device=device)
            if patch_masks is not None:
                img_pad = img_pad | ~patch_masks[:, None]
            img = img * (~img_pad).unsqueeze(-1).type_as(img)
            x = torch.cat([img, x], 1)
            pad = torch.cat([img_pad, pad], 1)
            img_pos = self.image_pos_ln(self.embed_image_positions(img_ids)).expand(b, -1, -1)
            pos = torch.cat([img_pos, pos], 1)
        abs_bias = self.abs_bias(self.pos_q_linear, self.pos_k_linear, pos, pos)   # [B, H, S, S]
        prompts = self.prompts(b, device)
        for i, layer in enumerate(self.layers):
            bias = abs_bias.clone()
            bias[:, :, -t:, -t:] += self.token_rel_bias(i, t, t)
            if n:
                bias[:, :, :n, :n] += self.image_rel_bias(i, img_ids)
            x = layer(x, pad, bias, prompt_kv=prompts[i])
        return {"out": self.layer_norm(x), "padding_mask": pad, "position_embeddings": pos}


class Decoder(_Stack):
    """Causal text decoder with self and cross position biases (UT:1218-1760); logits through the shared
    token matrix."""

    def __init__(self, cfg, embed_tokens):
        super().__init__(cfg, embed_tokens, cfg.decoder_layers, cfg.decoder_prompt_length, "decoder")
        d = cfg.embed_dim
        self.code_layernorm_embedding = nn.LayerNorm(d)      # image-code targets only (UT:1657-1678); kept to load
        self.self_pos_q_linear = nn.Linear(d, d)
        self.self_pos_k_linear = nn.Linear(d, d)
        self.cross_pos_q_linear = nn.Linear(d, d)
        self.cross_pos_k_linear = nn.Linear(d, d)
        self.layers = nn.ModuleList(DecoderLayer(cfg, p)
                                    for p in drop_path_rates(cfg.drop_path_rate, cfg.decoder_layers))

    def forward(self, prev_tokens, encoder_out, cache=None):
        """prev_tokens [B, T] (starting with <s>); with `cache` (a dict, filled in place) only the last position
        is computed and prev_tokens holds every token so far. Returns logits [B, T or 1, V]."""
        b, t = prev_tokens.shape
        device = prev_tokens.device
        pos = self.pos_ln(self.embed_positions(torch.arange(t, device=device))).expand(b, -1, -1)
        self_bias = self.abs_bias(self.self_pos_q_linear, self.self_pos_k_linear, pos, pos)
        cross_bias = self.abs_bias(self.cross_pos_q_linear, self.cross_pos_k_linear, pos,
                                   encoder_out["position_embeddings"])
        x = self.embed_tokens(prev_tokens)
        padding_mask = prev_tokens.eq(self.cfg.padding_idx)
        mask = torch.full((t, t), float("-inf"), device=device).triu(1)
        if cache is not None:                                         # incremental: the last query only
            x, self_bias, cross_bias, mask = x[:, -1:], self_bias[:, :, -1:], cross_bias[:, :, -1:], mask[-1:]
        x = self.dropout(self.layernorm_embedding(x))
        q_len = x.shape[1]
        prompts = self.prompts(b, device)
        for i, layer in enumerate(self.layers):
            bias = self_bias + self.token_rel_bias(i, q_len, t)
            x = layer(x, encoder_out["out"], encoder_out["padding_mask"], bias, cross_bias, mask,
                      padding_mask=padding_mask if padding_mask.any() else None, prompt_kv=prompts[i],
                      cache=None if cache is None else cache.setdefault(i, {}))
        x = self.layer_norm(x)
        return F.linear(x, self.embed_tokens.weight)                 # output_projection shares the matrix


class OFA(nn.Module):
    """`OFA(OFAConfig.of_size("base", encoder_prompt_length=100, decoder_prompt_length=100))`."""

    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        embed_tokens = nn.Embedding(cfg.vocab_size, cfg.embed_dim, padding_idx=cfg.padding_idx)
        self.encoder = Encoder(cfg, embed_tokens)
        self.decoder = Decoder(cfg, embed_tokens)
        self.apply(init_bert_params)

    def forward(self, src_tokens, prev_tokens, patch_images=None, patch_masks=None):
        return self.decoder(prev_tokens, self.encoder(src_tokens, patch_images, patch_masks))


def init_bert_params(module):
    """N(0, 0.02) for every Linear/Embedding, zero bias and pad row (fairseq init_bert_params, OFA:33)."""
    if isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Embedding):
        nn.init.normal_(module.weight, std=0.02)
        if module.padding_idx is not None:
            module.weight.data[module.padding_idx].zero_()

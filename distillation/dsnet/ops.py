"""Slimmable ops with contiguous ("dynamic weight slicing") width choice, two numerically equal paths each.

Source: official code, changlin31/DS-Net @ 15cd303, `dyn_slim/models/dyn_slim_ops.py` (read, rewritten here).

A layer stores the weight of its widest version. A sub-network of width c uses the *leading* slice
(`weight[:c_out, :c_in]`, never a scattered subset), so it is an ordinary dense op. Width is named by a
*choice*: an index into the layer's own channel list (`channels[choice]`), as the official `channel_choice`.

Two paths, equal in value:
  sliced  `choice` is an int: the weight is sliced and a smaller dense op runs (inference; the real speed-up).
  masked  `choice` is a `SoftChoice` (a per-sample one-hot gate over K routes, from straight-through Gumbel):
          the widest op runs and its output is multiplied by m[b, c] = sum_k g[b, k] 1[c < channels_k]
          (official `apply_differentiable_gate_channel`), so the gate gets gradients through the features and
          through the MAdds count sum_k g_k * channels_k (official `running_inc = g @ channel_list`).

Every op returns (output, madds): the multiply-adds of this call, counted as the official forward hooks do
(`train_slim_gate.py::module_mac`): conv c_in*c_out*k*k*H_out*W_out/groups, linear c_in*c_out, average
pooling c_in*H_in*W_in; BN and activations are not counted. madds is a float (sliced) or a (B,) tensor (masked).

Vision-transformer ops (DS-ViT++, arXiv 2109.10060; no official code exists, so these are written from the "leading
slice" rule of both abstracts, research notes §4.7.4 [unverified - recalled]): `SlimLayerNorm` (the widest LN's
affine sliced; statistics over the active channels only), `SlimTokenLinear` (tokens (B, N, C), in and out features
sliced; `chunks=3` slices the leading heads of q, k and v of a fused qkv weight) and `slim_attention` (fixed head
dim, the leading h heads). Their MAdds follow the same rule: a linear costs c_in*c_out per token, the two attention
matmuls N*N*head_dim per head each; LayerNorm, softmax and GELU are not counted (as BN and activations).
"""
import dataclasses

import torch
import torch.nn.functional as F
from torch import nn


@dataclasses.dataclass
class SoftChoice:
    """A per-sample route over K contiguous choices `start .. start+K-1` of every gated layer's channel list.

    gate: (B, K) one-hot in value (straight-through Gumbel), differentiable through its soft part.
    """
    gate: torch.Tensor
    start: int = 0

    def channels(self, channel_list):
        """(B,) expected channel count sum_k g_k * channels[start + k]."""
        routes = torch.tensor(channel_list[self.start:self.start + self.gate.shape[1]], dtype=self.gate.dtype,
                              device=self.gate.device)
        return self.gate @ routes

    def mask(self, channel_list, num_channels):
        """(B, C) channel mask sum_k g_k * 1[c < channels[start + k]] (C = num_channels, the widest)."""
        routes = torch.tensor(channel_list[self.start:self.start + self.gate.shape[1]], device=self.gate.device)
        keep = (torch.arange(num_channels, device=self.gate.device)[None] < routes[:, None]).to(self.gate.dtype)
        return self.gate @ keep  # (B, K) @ (K, C)


def inference_slice(module, name, key, make):
    """`make()` (a weight slice), kept contiguous in a per-module cache while no gradient is recorded.

    A leading slice `weight[:c_out, :c_in]` is a strided view; a dense kernel would copy it on every call. Under
    `torch.no_grad()` / `inference_mode()` the contiguous copy is kept per (name, width), keyed on the parameter's
    version counter so an optimiser step invalidates it; with gradients on, the view itself is used.
    """
    if torch.is_grad_enabled():
        return make()
    param = getattr(module, name)
    cache = module.__dict__.setdefault("_slice_cache", {})
    stamp = (param._version, param.data_ptr())
    hit = cache.get((name, key))
    if hit is None or hit[0] != stamp:
        hit = (stamp, make().contiguous())
        cache[(name, key)] = hit
    return hit[1]


def as_list(channels):
    return list(channels) if isinstance(channels, (list, tuple)) else [channels]


def num_channels(channel_list, choice):
    """Channel count of a choice: an int for an int choice, (B,) expected count for a SoftChoice."""
    if isinstance(choice, SoftChoice):
        return choice.channels(channel_list)
    return channel_list[choice]


def apply_mask(x, channel_list, choice):
    """x * m for a SoftChoice (m (B, C) broadcast over (B, C, H, W), over the tokens of (B, N, C), or (B, C) as
    it is); x unchanged for an int choice. The channel axis is 1 for images, the last one for tokens."""
    if not isinstance(choice, SoftChoice):
        return x
    if x.dim() == 3:  # tokens (B, N, C)
        return x * choice.mask(channel_list, x.shape[2])[:, None, :]
    m = choice.mask(channel_list, x.shape[1])
    return x * (m[:, :, None, None] if x.dim() == 4 else m)


class SlimConv2d(nn.Conv2d):
    """Conv with sliceable in/out channels (official `DSConv2d`; `depthwise=True` is `DSdwConv2d`).

    Args:
        in_channels_list, out_channels_list: widths this layer can run at (ascending; the last is stored).
        depthwise: groups = channels (in == out list); the slice keeps groups == the sliced width.
    """

    def __init__(self, in_channels_list, out_channels_list, kernel_size, stride=1, depthwise=False, bias=False):
        in_list, out_list = as_list(in_channels_list), as_list(out_channels_list)
        if depthwise:
            out_list = in_list
        super().__init__(in_list[-1], out_list[-1], kernel_size, stride=stride,
                         padding=((stride - 1) + (kernel_size - 1)) // 2, groups=out_list[-1] if depthwise else 1,
                         bias=bias)
        self.in_channels_list, self.out_channels_list, self.depthwise = in_list, out_list, depthwise

    def forward(self, x, out_choice=-1, in_choice=None):
        """x: (B, c_in, H, W) with c_in sliced (int input choice) or the widest, zero-masked (SoftChoice input).

        out_choice: int index into out_channels_list (sliced) or SoftChoice (masked). For a depthwise conv the
        output follows the input, so out_choice is ignored and the input's choice is used.
        """
        c_in = x.shape[1]
        if self.depthwise:
            out_choice = in_choice if isinstance(in_choice, SoftChoice) else self.in_channels_list.index(c_in)
        masked = isinstance(out_choice, SoftChoice)
        c_out = self.out_channels if masked else self.out_channels_list[out_choice]
        if self.depthwise:
            c_out = c_in
        weight = inference_slice(self, "weight", (c_out, c_in), lambda: self.weight[:c_out, :c_in])
        bias = None if self.bias is None else self.bias[:c_out]
        y = F.conv2d(x, weight, bias, self.stride, self.padding, self.dilation, c_out if self.depthwise else 1)
        y = apply_mask(y, self.out_channels_list, out_choice)  # (B, c_out, H', W')
        eff_in = num_channels(self.in_channels_list, in_choice) if isinstance(in_choice, SoftChoice) else c_in
        eff_out = num_channels(self.out_channels_list, out_choice) if masked else c_out
        k = self.kernel_size[0] * self.kernel_size[1]
        madds = (eff_out * k if self.depthwise else eff_in * eff_out * k) * y.shape[2] * y.shape[3]
        return y, madds


class SlimBatchNorm2d(nn.Module):
    """BN with the widest BN's affine sliced and separate running statistics per width (official `DSBatchNorm2d`).

    `aux_bn[i]` holds the running statistics of width `channels[i]` (non-affine for i < last); the last one also
    holds the shared affine weight/bias, of which width c uses the first c entries. Same module/key layout as the
    official code, so the released checkpoint loads as it is.

    Sliced path: the statistics of the input's width are used (and updated in training). Masked path (Stage II,
    BN frozen): per-sample statistics mixed by the gate, sum_k g_k * stats_k (zero-padded), then the mask.
    """

    def __init__(self, channels_list, eps=1e-5, momentum=0.1):
        super().__init__()
        self.channels_list = as_list(channels_list)
        self.aux_bn = nn.ModuleList([nn.BatchNorm2d(c, eps=eps, momentum=momentum, affine=False)
                                     for c in self.channels_list[:-1]])
        self.aux_bn.append(nn.BatchNorm2d(self.channels_list[-1], eps=eps, momentum=momentum))

    def forward(self, x, choice=None):
        c = x.shape[1]
        top = self.aux_bn[-1]
        if isinstance(choice, SoftChoice):
            routes = range(choice.start, choice.start + choice.gate.shape[1])
            mean = torch.stack([F.pad(self.aux_bn[i].running_mean, (0, c - self.channels_list[i])) for i in routes])
            var = torch.stack([F.pad(self.aux_bn[i].running_var, (0, c - self.channels_list[i])) for i in routes])
            mean, var = choice.gate @ mean, choice.gate @ var  # (B, C): per-sample statistics
            y = (x - mean[:, :, None, None]) / torch.sqrt(var[:, :, None, None] + top.eps)
            y = y * top.weight[None, :c, None, None] + top.bias[None, :c, None, None]
            return apply_mask(y, self.channels_list, choice)
        bn = self.aux_bn[self.channels_list.index(c)]
        momentum = bn.momentum
        if self.training and momentum is None:  # cumulative average (used by the BN recalibration)
            bn.num_batches_tracked += 1
            momentum = 1.0 / float(bn.num_batches_tracked)
        return F.batch_norm(x, bn.running_mean, bn.running_var, top.weight[:c], top.bias[:c], self.training,
                            momentum, top.eps)


class SlimLinear(nn.Linear):
    """Linear with sliceable input features (official `DSLinear`): weight[:, :c_in]."""

    def __init__(self, in_features_list, out_features, bias=True):
        in_list = as_list(in_features_list)
        super().__init__(in_list[-1], out_features, bias=bias)
        self.in_features_list = in_list

    def forward(self, x, in_choice=None):
        c_in = x.shape[1]
        y = F.linear(x, inference_slice(self, "weight", c_in, lambda: self.weight[:, :c_in]), self.bias)
        eff_in = num_channels(self.in_features_list, in_choice) if isinstance(in_choice, SoftChoice) else c_in
        return y, eff_in * self.out_features


def global_avg_pool(x, channels_list=None, choice=None):
    """(B, C, H, W) -> (B, C, 1, 1), with the official pooling MAdds c_in * H * W."""
    c = num_channels(channels_list, choice) if isinstance(choice, SoftChoice) else x.shape[1]
    return x.mean((2, 3), keepdim=True), c * x.shape[2] * x.shape[3]


def gumbel_softmax_st(logits, tau=1.0, noise=True):
    """Straight-through Gumbel-softmax (official `dyn_slim_blocks.gumbel_softmax`, hard=True form).

    Returns (y_soft, y_st, index): y_soft (B, K) softmax((logits + G) / tau), y_st = y_hard - y_soft.detach()
    + y_soft (one-hot in value, gradient of y_soft), index (B,) argmax. `noise`: True samples G ~ Gumbel(0, 1),
    False drops it (deterministic), a (B, K) tensor is used as G (per-sample noise drawn by the caller).
    """
    if torch.is_tensor(noise):
        logits = logits + noise.to(logits)
    elif noise:
        logits = logits - torch.empty_like(logits).exponential_().log()  # + Gumbel(0, 1)
    y_soft = (logits / tau).softmax(1)
    index = y_soft.argmax(1)
    y_hard = F.one_hot(index, y_soft.shape[1]).to(y_soft.dtype)
    return y_soft, y_hard - y_soft.detach() + y_soft, index


class SlimLayerNorm(nn.LayerNorm):
    """LayerNorm over the leading c channels of tokens (B, N, C), with the widest LN's affine sliced [assumption:
    the ViT analogue of the official sliced BN affine; a LayerNorm has no running statistics to keep apart].

    Sliced: F.layer_norm over x's c = x.shape[-1] channels with weight[:c], bias[:c]. Masked (`SoftChoice`, x at
    full width C): mean and variance over the channels each sample keeps, sum_c m_c x_c / sum_c m_c, and the output
    masked, so it equals the sliced path sample by sample (and the channel count sum_c m_c carries the gate's
    gradient).
    """

    def __init__(self, channels_list, eps=1e-6):
        self.channels_list = as_list(channels_list)
        super().__init__(self.channels_list[-1], eps=eps)

    def forward(self, x, choice=None):
        if not isinstance(choice, SoftChoice):
            c = x.shape[-1]
            return F.layer_norm(x, (c,), self.weight[:c], self.bias[:c], self.eps)
        m = choice.mask(self.channels_list, x.shape[-1])[:, None, :]      # (B, 1, C)
        count = m.sum(-1, keepdim=True)                                     # (B, 1, 1)
        mean = (x * m).sum(-1, keepdim=True) / count
        var = ((x - mean).square() * m).sum(-1, keepdim=True) / count
        y = (x - mean) / torch.sqrt(var + self.eps) * self.weight + self.bias
        return y * m


class SlimTokenLinear(nn.Linear):
    """Linear on tokens (B, N, C_in) -> (B, N, chunks * C_out), in and out features sliced to a leading slice.

    in_features_list / out_features_list: the widths of the input and of each output chunk (ascending; the last is
    stored). `chunks`: the output is `chunks` equal parts each sliced to its leading c_out rows (a fused qkv weight
    (3 * H * d_h, D): the leading h heads of q, of k and of v), so the weight kept is weight.view(chunks, C_out,
    C_in)[:, :c_out, :c_in]. Masked path: the output is multiplied by the out mask of every chunk.
    """

    def __init__(self, in_features_list, out_features_list, bias=True, chunks=1):
        in_list, out_list = as_list(in_features_list), as_list(out_features_list)
        super().__init__(in_list[-1], chunks * out_list[-1], bias=bias)
        self.in_features_list, self.out_features_list, self.chunks = in_list, out_list, chunks

    def sliced_weight(self, c_out, c_in):
        if self.chunks == 1:
            return self.weight[:c_out, :c_in]
        return self.weight.view(self.chunks, -1, self.in_features)[:, :c_out, :c_in].reshape(-1, c_in)

    def sliced_bias(self, c_out):
        return self.bias.view(self.chunks, -1)[:, :c_out].reshape(-1)

    def forward(self, x, out_choice=-1, in_choice=None):
        """x: (B, N, c_in), sliced (int in_choice / None) or full width and zero beyond each sample's width
        (SoftChoice in_choice). out_choice: int index into out_features_list, or a SoftChoice (masked)."""
        c_in = x.shape[-1]
        masked = isinstance(out_choice, SoftChoice)
        c_out = self.out_features_list[-1] if masked else self.out_features_list[out_choice]
        weight = inference_slice(self, "weight", (c_out, c_in), lambda: self.sliced_weight(c_out, c_in))
        bias = None if self.bias is None else inference_slice(self, "bias", c_out, lambda: self.sliced_bias(c_out))
        y = F.linear(x, weight, bias)                                       # (B, N, chunks * c_out)
        if masked:
            m = out_choice.mask(self.out_features_list, c_out).repeat(1, self.chunks)
            y = y * m[:, None, :]
        eff_in = num_channels(self.in_features_list, in_choice) if isinstance(in_choice, SoftChoice) else c_in
        eff_out = num_channels(self.out_features_list, out_choice) if masked else c_out
        return y, eff_in * eff_out * self.chunks * x.shape[1]


def slim_attention(qkv, head_dim, heads_list=None, choice=None):
    """Multi-head self-attention of a (sliced or masked) fused qkv (B, N, 3 * h * d_h) -> ((B, N, h * d_h), madds).

    The number of heads is h = width / head_dim (head dim fixed, the leading heads kept). In the masked path the
    heads beyond a sample's width have q = k = v = 0, so their output is 0 (a uniform softmax over zero values).
    MAdds: q k^T and attn v, N * N * d_h each per head; masked: the gate's expected head count (B,).
    """
    b, n, c3 = qkv.shape
    h = c3 // (3 * head_dim)
    q, k, v = qkv.view(b, n, 3, h, head_dim).permute(2, 0, 3, 1, 4)      # 3 x (B, h, N, d_h)
    y = F.scaled_dot_product_attention(q, k, v)                           # (B, h, N, d_h)
    y = y.transpose(1, 2).reshape(b, n, h * head_dim)
    heads = num_channels(heads_list, choice) if isinstance(choice, SoftChoice) else h
    return y, 2 * heads * n * n * head_dim

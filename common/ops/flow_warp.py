"""Multi-flow attention warp ("deformable attention flow", DAFlow's ``DAWarp``), reference and fast path.

Bai et al., "Single Stage Virtual Try-on via Deformable Attention Flows", ECCV 2022, arXiv 2207.09161;
official code OFA-Sys/DAFlow ``models/sdafnet.py`` (``apply_offset``, ``DAFlowNet.forward``). For a feature
map F (B, C, H_in, W_in), K sampling grids Phi_k (normalized coordinates in [-1, 1]) and attention maps A_k:

    DAWarp(F, Phi, A)(p) = sum_{k=1..K} A_k(p) * Bilinear(F, Phi_k(p))          (paper Eq. (2)-(3))

Conventions kept exactly as the official code computes them (checkpoint fidelity):
* grids are laid out (B*K, 2, H, W): flow k of sample b is row b*K + k; channel 0 = x, channel 1 = y;
* `offset_to_grid` turns pixel offsets into a grid with the align_corners=True normalization
  ``g = (x + dx) / ((W - 1) / 2) - 1`` while sampling runs with ``grid_sample(align_corners=False)``
  (the torch >= 1.3 default the official code runs under): a half-pixel scale mismatch the released
  weights were trained with;
* bilinear sampling, ``padding_mode='border'``.

Two backends compute the same function:
* ``reference`` (`flow_warp_reference`): the official recipe, repeat_interleave + grid_sample + weighted sum.
  Autograd keeps the K*C*H*W sampled tensor (and the repeated input): ~3 tensors of K*C*H*W.
* ``deform_conv`` (`flow_warp`): one call of ``torchvision.ops.deform_conv2d`` as a depthwise (groups=C)
  1 x K "convolution" with all-ones weights, whose K taps are moved onto the K sampling points by the
  offsets and weighted by the mask = attention. Unnormalization to pixel coordinates uses the
  align_corners=False rule ``x = ((g + 1) W - 1) / 2``, then ``clamp(x, 0, W - 1)`` reproduces the border
  padding (and its zero gradient outside the image). Tap k sits at column j - K + k with padding (0, K), so
  the offsets are ``dy_k = y_k - i`` and ``dx_k = x_k - (j - K + k)`` (torchvision order (dy, dx) per tap);
  the K + 1 extra output columns carry zero mask and are cropped. No autograd.Function of our own: the
  gradients are torchvision's, and the tests check them against the reference in float64.
"""
import torch
import torch.nn.functional as F

__all__ = ["offset_to_grid", "compose_grid", "flow_warp_reference", "flow_warp", "BACKENDS"]

BACKENDS = ("reference", "deform_conv")


def offset_to_grid(offset):
    """Pixel offsets (N, 2, H, W) -> sampling grid (N, 2, H, W) in [-1, 1] coords (official ``apply_offset``).

    ``grid_x = (x + dx) / ((W - 1) / 2) - 1``, ``grid_y = (y + dy) / ((H - 1) / 2) - 1``: the align_corners=True
    normalization, used with align_corners=False sampling as in the official code.
    """
    n, two, h, w = offset.shape
    if two != 2:
        raise ValueError(f"offset must be (N, 2, H, W), got {tuple(offset.shape)}")
    ys, xs = torch.meshgrid(torch.arange(h, device=offset.device, dtype=offset.dtype),
                            torch.arange(w, device=offset.device, dtype=offset.dtype), indexing="ij")
    gx = (xs + offset[:, 0]) / ((w - 1) / 2.0) - 1.0
    gy = (ys + offset[:, 1]) / ((h - 1) / 2.0) - 1.0
    return torch.stack([gx, gy], dim=1)


def compose_grid(prev_grid, offset):
    """Phi_new(p) = Phi_prev(p + delta(p)): resample the previous grid at the offset grid (official composition).

    prev_grid: (N, 2, H, W) or None (coarsest level: the grid is just `offset_to_grid(offset)`).
    """
    grid = offset_to_grid(offset)
    if prev_grid is None:
        return grid
    return F.grid_sample(prev_grid, grid.permute(0, 2, 3, 1), mode="bilinear", padding_mode="border",
                         align_corners=False)


def _check(feat, grid, attn):
    if feat.dim() != 4 or grid.dim() != 4 or attn.dim() != 4:
        raise ValueError("feat (B, C, H_in, W_in), grid (B*K, 2, H, W) and attn (B, K, H, W) must be 4-D")
    b, k = attn.shape[:2]
    if grid.shape != (b * k, 2, *attn.shape[2:]):
        raise ValueError(f"grid must be (B*K, 2, H, W) = {(b * k, 2, *attn.shape[2:])}, got {tuple(grid.shape)}")
    if feat.shape[0] != b:
        raise ValueError(f"feat has batch {feat.shape[0]}, attn has {b}")
    return b, k


def flow_warp_reference(feat, grid, attn):
    """DAWarp as the official code computes it.

    feat (B, C, H_in, W_in), grid (B*K, 2, H, W) normalized, flow k of sample b in row b*K+k, channel 0 = x;
    attn (B, K, H, W). Returns (B, C, H, W) = sum_k attn_k * grid_sample(feat, grid_k).
    """
    b, k = _check(feat, grid, attn)
    c = feat.shape[1]
    h, w = attn.shape[2:]
    sampled = F.grid_sample(feat.repeat_interleave(k, 0), grid.permute(0, 2, 3, 1), mode="bilinear",
                            padding_mode="border", align_corners=False)  # (B*K, C, H, W)
    return (sampled.view(b, k, c, h, w) * attn.unsqueeze(2)).sum(1)


def _deform_conv_warp(feat, grid, attn):
    from torchvision.ops import deform_conv2d

    b, k = _check(feat, grid, attn)
    c, h_in, w_in = feat.shape[1:]
    h, w = attn.shape[2:]
    g = grid.view(b, k, 2, h, w)
    # align_corners=False unnormalization + clamp = border padding.
    x = (((g[:, :, 0] + 1) * w_in - 1) / 2).clamp(0, w_in - 1)  # (B, K, H, W)
    y = (((g[:, :, 1] + 1) * h_in - 1) / 2).clamp(0, h_in - 1)
    ii = torch.arange(h, device=feat.device, dtype=x.dtype).view(1, 1, h, 1)
    jj = torch.arange(w, device=feat.device, dtype=x.dtype).view(1, 1, 1, w)
    kk = torch.arange(k, device=feat.device, dtype=x.dtype).view(1, k, 1, 1)
    dy = y - ii
    dx = x - (jj - k + kk)
    offset = torch.stack([dy, dx], dim=2).reshape(b, 2 * k, h, w)  # (dy_0, dx_0, dy_1, dx_1, ...)
    # The conv output has W + K + 1 columns and H rows (needs H_in == H for the row count to match).
    pad = (0, k + 1)
    offset = F.pad(offset, pad)
    mask = F.pad(attn, pad)
    weight = torch.ones(c, 1, 1, k, device=feat.device, dtype=feat.dtype)
    out = deform_conv2d(feat, offset.to(feat.dtype), weight, padding=(0, k), mask=mask.to(feat.dtype))
    return out[..., :w]


def flow_warp(feat, grid, attn, backend="deform_conv"):
    """DAWarp(F, Phi, A) with the chosen backend; same signature and result as `flow_warp_reference`.

    ``deform_conv`` needs the grid at the feature's resolution (H == H_in, W == W_in, always so in DAFlow);
    other shapes fall back to the reference.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "reference" or feat.shape[2:] != attn.shape[2:]:
        return flow_warp_reference(feat, grid, attn)
    return _deform_conv_warp(feat, grid, attn)

"""Tests of common/ops/flow_warp.py: DAFlow's coordinate convention, gradcheck, deform_conv path == reference."""
import pytest
import torch
import torch.nn.functional as F

from common.ops.flow_warp import BACKENDS, compose_grid, flow_warp, flow_warp_reference, offset_to_grid


def inputs(b=2, c=3, h=5, w=4, k=3, seed=0, dtype=torch.float64, spread=1.3, device="cpu"):
    """Random features, grids partly outside [-1, 1] (border padding region) and positive attention."""
    g = torch.Generator().manual_seed(seed)
    feat = torch.randn(b, c, h, w, generator=g, dtype=dtype)
    grid = (torch.rand(b * k, 2, h, w, generator=g, dtype=dtype) * 2 - 1) * spread
    attn = torch.rand(b, k, h, w, generator=g, dtype=dtype).softmax(1)
    return [t.to(device).requires_grad_() for t in (feat, grid, attn)]


def test_offset_to_grid_uses_the_align_corners_true_normalization():
    off = torch.zeros(1, 2, 3, 5, dtype=torch.float64)
    off[0, 0, 1, 2], off[0, 1, 1, 2] = 1.0, -0.5
    grid = offset_to_grid(off)
    assert grid[0, 0, 0].tolist() == pytest.approx([-1.0, -0.5, 0.0, 0.5, 1.0])  # x = j / ((W-1)/2) - 1
    assert grid[0, 1, :, 0].tolist() == pytest.approx([-1.0, 0.0, 1.0])
    assert grid[0, 0, 1, 2].item() == pytest.approx((2 + 1.0) / 2.0 - 1)
    assert grid[0, 1, 1, 2].item() == pytest.approx((1 - 0.5) / 1.0 - 1)
    with pytest.raises(ValueError):
        offset_to_grid(torch.zeros(1, 3, 2, 2))


def test_zero_offsets_with_align_corners_false_sampling_stretch_the_image_as_the_official_code():
    """Zero offsets are not the identity under the official convention: only the corners map to themselves."""
    h, w = 4, 5
    feat = torch.arange(h * w, dtype=torch.float64).view(1, 1, h, w)
    grid = offset_to_grid(torch.zeros(1, 2, h, w, dtype=torch.float64))
    out = flow_warp_reference(feat, grid, torch.ones(1, 1, h, w, dtype=torch.float64))
    for i, j in ((0, 0), (0, w - 1), (h - 1, 0), (h - 1, w - 1)):
        assert out[0, 0, i, j] == feat[0, 0, i, j]
    # Interior: x = ((g + 1) W - 1) / 2 with g = j / ((W-1)/2) - 1, e.g. j = 1 -> x = 0.75.
    x = ((1 / 2.0) * w - 1) / 2
    assert out[0, 0, 0, 1].item() == pytest.approx(feat[0, 0, 0, 0] * (1 - x) + feat[0, 0, 0, 1] * x)
    assert not torch.equal(out, feat)


def test_compose_grid_samples_the_previous_grid_at_the_offset_positions():
    off = torch.randn(2, 2, 4, 3, dtype=torch.float64)
    assert torch.equal(compose_grid(None, off), offset_to_grid(off))
    prev = torch.randn(2, 2, 4, 3, dtype=torch.float64)
    expected = F.grid_sample(prev, offset_to_grid(off).permute(0, 2, 3, 1), padding_mode="border",
                             align_corners=False)
    assert torch.allclose(compose_grid(prev, off), expected)


def test_reference_is_the_attention_weighted_sum_of_per_flow_grid_samples():
    feat, grid, attn = inputs(k=2)
    out = flow_warp_reference(feat, grid, attn)
    expected = 0
    for kk in range(2):
        g = grid.view(2, 2, 2, 5, 4)[:, kk]  # row b*K + k
        s = F.grid_sample(feat, g.permute(0, 2, 3, 1), padding_mode="border", align_corners=False)
        expected = expected + attn[:, kk:kk + 1] * s
    assert torch.allclose(out, expected, atol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_gradcheck_float64(backend):
    feat, grid, attn = inputs(b=1, c=2, h=4, w=3, k=2, seed=1)
    assert torch.autograd.gradcheck(lambda f, g, a: flow_warp(f, g, a, backend=backend), (feat, grid, attn))


@pytest.mark.parametrize("seed,spread", [(0, 0.9), (1, 1.5), (2, 3.0)])
def test_deform_conv_matches_reference_in_value_and_gradient(seed, spread):
    feat, grid, attn = inputs(b=2, c=4, h=6, w=5, k=3, seed=seed, spread=spread)
    ref = flow_warp_reference(feat, grid, attn)
    fast = flow_warp(feat, grid, attn, backend="deform_conv")
    assert torch.allclose(ref, fast, atol=1e-12, rtol=0)
    upstream = torch.randn_like(ref)
    g_ref = torch.autograd.grad(ref, (feat, grid, attn), upstream)
    g_fast = torch.autograd.grad(fast, (feat, grid, attn), upstream)
    for a, b in zip(g_ref, g_fast, strict=True):
        assert torch.allclose(a, b, atol=1e-11, rtol=0)


def test_float32_parity_and_shape_checks():
    feat, grid, attn = inputs(b=2, c=8, h=16, w=12, k=6, dtype=torch.float32, seed=3)
    assert torch.allclose(flow_warp_reference(feat, grid, attn), flow_warp(feat, grid, attn), atol=1e-5)
    with pytest.raises(ValueError):
        flow_warp(feat, grid[:-1], attn)
    with pytest.raises(ValueError):
        flow_warp(feat, grid, attn, backend="fused")


def test_different_feature_resolution_falls_back_to_the_reference():
    feat = torch.randn(1, 2, 8, 6, dtype=torch.float64)
    _, grid, attn = inputs(b=1, c=2, h=4, w=3, k=2)
    assert torch.equal(flow_warp(feat, grid, attn), flow_warp_reference(feat, grid, attn))


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_parity():
    feat, grid, attn = inputs(b=2, c=4, h=6, w=5, k=3, device="cuda")
    assert torch.allclose(flow_warp_reference(feat, grid, attn), flow_warp(feat, grid, attn), atol=1e-10)


def saved_for_backward_bytes(backend, b=2, c=64, h=32, w=24, k=6):
    """Bytes of the distinct storages autograd keeps for backward (the inputs included) for one warp."""
    feat, grid, attn = inputs(b=b, c=c, h=h, w=w, k=k, dtype=torch.float32)
    storages = {}

    def pack(t):
        storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        flow_warp(feat, grid, attn, backend=backend)
    return sum(storages.values())


def test_deform_conv_path_keeps_far_less_for_backward():
    """Memory-lean on any device: the reference keeps ~2 K*C*H*W tensors (repeated input, samples); the
    deform_conv path keeps the inputs, offsets and mask (C + ~5K per pixel). Measured ratio 0.13 at C=64, K=6."""
    ref, fast = saved_for_backward_bytes("reference"), saved_for_backward_bytes("deform_conv")
    assert fast <= 0.4 * ref, (fast, ref)

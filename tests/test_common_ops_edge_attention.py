"""Tests of common/ops/edge_attention.py: gradcheck, fast path == reference, softmax properties, EdgeIndex."""

import pytest
import torch

from common.ops import edge_attention as ea
from common.ops.edge_attention import (
    EdgeIndex,
    aggregate,
    aggregate_reference,
    edge_softmax,
    edge_softmax_aggregate,
    edge_softmax_reference,
    sort_by_dst,
)

BACKENDS = ["sparse", "chunked"]
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def random_graph(num_nodes, num_edges, seed, device="cpu"):
    """Random multigraph with self loops, duplicated edges and nodes without incoming edges, dst-sorted."""
    g = torch.Generator().manual_seed(seed)
    src = torch.randint(0, num_nodes, (num_edges,), generator=g)
    # The last quarter of the nodes never receives an edge (zero in-degree), but does send.
    dst = torch.randint(0, num_nodes - num_nodes // 4, (num_edges,), generator=g)
    loops = torch.arange(0, num_nodes // 2)
    dup = torch.randint(0, num_edges, (max(1, num_edges // 10),), generator=g)
    src = torch.cat([src, loops, src[dup]])
    dst = torch.cat([dst, loops, dst[dup]])
    src, dst = sort_by_dst(src, dst)
    return EdgeIndex.build(src, dst, num_nodes).to(device)


def test_edge_index_fixture_has_the_awkward_cases():
    index = random_graph(20, 40, seed=0)
    pairs = index.dst * 20 + index.src
    assert (index.in_degree() == 0).any()
    assert (index.src == index.dst).any()
    assert pairs.unique().numel() < pairs.numel()  # multi-edges


# ---------------------------------------------------------------------------------------------- gradcheck


@pytest.mark.parametrize("num_heads", [1, 3])
def test_edge_softmax_gradcheck(num_heads):
    index = random_graph(20, 50, seed=1)
    scores = torch.randn(index.num_edges, num_heads, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda s: edge_softmax(s, index), (scores,))


def test_edge_softmax_gradcheck_1d_scores():
    index = random_graph(15, 30, seed=2)
    scores = torch.randn(index.num_edges, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda s: edge_softmax(s, index), (scores,))


@pytest.mark.parametrize("backend", BACKENDS)
def test_aggregate_gradcheck(backend, monkeypatch):
    monkeypatch.setattr(ea, "_CHUNK_BYTES", 7 * 2 * 4 * 8)  # 7 edges per chunk: several chunks
    index = random_graph(18, 40, seed=3)
    alpha = torch.rand(index.num_edges, 2, dtype=torch.float64, requires_grad=True)
    z = torch.randn(index.num_nodes, 2, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, x: aggregate(a, x, index, backend=backend), (alpha, z))


@pytest.mark.parametrize("backend", BACKENDS)
def test_edge_softmax_aggregate_gradcheck(backend):
    index = random_graph(16, 40, seed=4)
    scores = torch.randn(index.num_edges, 3, dtype=torch.float64, requires_grad=True)
    z = torch.randn(index.num_nodes, 3, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda s, x: edge_softmax_aggregate(s, x, index, backend=backend), (scores, z))


def test_references_gradcheck():
    index = random_graph(12, 30, seed=5)
    scores = torch.randn(index.num_edges, 2, dtype=torch.float64, requires_grad=True)
    z = torch.randn(index.num_nodes, 2, 3, dtype=torch.float64, requires_grad=True)

    def ref(s, x):
        alpha = edge_softmax_reference(s, index.dst, index.num_nodes)
        return aggregate_reference(alpha, x, index.src, index.dst, index.num_nodes)

    assert torch.autograd.gradcheck(ref, (scores, z))


# ---------------------------------------------------------------------------------------------- parity


def _parity(index, num_heads, dim, backend, device, dtype=torch.float32, atol=1e-5, rtol=1e-4):
    g = torch.Generator().manual_seed(6)
    scores = (2 * torch.randn(index.num_edges, num_heads, generator=g)).to(device, dtype)
    z = torch.randn(index.num_nodes, num_heads, dim, generator=g).to(device, dtype)
    grad_out = torch.randn(index.num_nodes, num_heads, dim, generator=g).to(device, dtype)

    def run(fn):
        s, x = scores.clone().requires_grad_(), z.clone().requires_grad_()
        out = fn(s, x)
        out.backward(grad_out)
        return out.detach(), s.grad, x.grad

    fast = run(lambda s, x: edge_softmax_aggregate(s, x, index, backend=backend))
    ref = run(
        lambda s, x: aggregate_reference(
            edge_softmax_reference(s, index.dst, index.num_nodes), x, index.src, index.dst, index.num_nodes
        )
    )
    for name, a, b in zip(("out", "grad_scores", "grad_z"), fast, ref, strict=True):
        torch.testing.assert_close(a, b, atol=atol, rtol=rtol, msg=lambda m, name=name: f"{name}: {m}")


@pytest.mark.parametrize("backend", BACKENDS)
def test_matches_reference_float32(backend):
    index = random_graph(600, 4000, seed=7)
    _parity(index, num_heads=4, dim=16, backend=backend, device="cpu")


def test_separate_ops_match_reference_with_dropout_and_residual_attention():
    # The way Simple-HGN calls them: softmax, dropout, residual mix with a detached previous alpha, aggregate.
    index = random_graph(300, 2000, seed=8)
    scores = torch.randn(index.num_edges, 2, requires_grad=True)
    z = torch.randn(index.num_nodes, 2, 8, requires_grad=True)
    alpha_prev = torch.rand(index.num_edges, 2)
    mask = (torch.rand(index.num_edges, 2) > 0.3).float() / 0.7
    out_fast = aggregate(0.95 * edge_softmax(scores, index) * mask + 0.05 * alpha_prev, z, index)
    grads_fast = torch.autograd.grad(out_fast.square().sum(), (scores, z))
    alpha_ref = edge_softmax_reference(scores, index.dst, index.num_nodes)
    out_ref = aggregate_reference(0.95 * alpha_ref * mask + 0.05 * alpha_prev, z, index.src, index.dst, index.num_nodes)
    grads_ref = torch.autograd.grad(out_ref.square().sum(), (scores, z))
    torch.testing.assert_close(out_fast, out_ref, atol=1e-5, rtol=1e-4)
    for a, b in zip(grads_fast, grads_ref, strict=True):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("backend", BACKENDS)
def test_bf16_close_to_float32(backend):
    index = random_graph(400, 3000, seed=9)
    scores = torch.randn(index.num_edges, 4)
    z = torch.randn(index.num_nodes, 4, 16)
    out32 = edge_softmax_aggregate(scores, z, index, backend=backend)
    s16, z16 = scores.bfloat16().requires_grad_(), z.bfloat16().requires_grad_()
    out16 = edge_softmax_aggregate(s16, z16, index, backend=backend)
    assert out16.dtype == torch.bfloat16
    torch.testing.assert_close(out16.float(), out32, atol=3e-2, rtol=2e-2)
    out16.float().sum().backward()
    assert s16.grad.dtype == z16.grad.dtype == torch.bfloat16
    assert torch.isfinite(s16.grad).all() and torch.isfinite(z16.grad).all()


def test_autocast_bf16_does_not_change_the_result():
    # The ops pick their own precision; CPU CSR kernels have no bf16, so autocast must not reach them.
    index = random_graph(200, 1000, seed=16)
    scores = torch.randn(index.num_edges, 2, requires_grad=True)
    z = torch.randn(index.num_nodes, 2, 8, requires_grad=True)
    expected = edge_softmax_aggregate(scores, z, index)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = edge_softmax_aggregate(scores, z, index)
        out.sum().backward()
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, expected)
    assert scores.grad.dtype == z.grad.dtype == torch.float32


def test_sparse_path_is_used_on_cpu_for_float32_and_float64():
    # Documents the path choice in the module docstring; if a build lacks it, "auto" silently falls back.
    assert ea._sparse_supported("cpu", torch.float32)
    assert ea._sparse_supported("cpu", torch.float64)


# ---------------------------------------------------------------------------------------------- softmax


def test_softmax_sums_to_one_and_is_shift_invariant_per_dst():
    index = random_graph(200, 1500, seed=10)
    scores = 5 * torch.randn(index.num_edges, 3, dtype=torch.float64)
    alpha = edge_softmax(scores, index)
    sums = torch.zeros(index.num_nodes, 3, dtype=torch.float64).index_add_(0, index.dst, alpha)
    has_in = index.in_degree() > 0
    torch.testing.assert_close(sums[has_in], torch.ones_like(sums[has_in]))
    assert (sums[~has_in] == 0).all()
    shift = 100 * torch.randn(index.num_nodes, 3, dtype=torch.float64)
    torch.testing.assert_close(edge_softmax(scores + shift[index.dst], index), alpha)


def test_softmax_is_stable_for_large_scores():
    index = random_graph(50, 300, seed=11)
    scores = 1e4 * torch.randn(index.num_edges, 2)
    alpha = edge_softmax(scores, index)
    assert torch.isfinite(alpha).all()
    torch.testing.assert_close(alpha, edge_softmax_reference(scores, index.dst, index.num_nodes))


# ---------------------------------------------------------------------------------------------- EdgeIndex


def test_build_rejects_unsorted_edges_with_a_hint():
    src, dst = torch.tensor([0, 1, 2]), torch.tensor([2, 0, 1])
    with pytest.raises(ValueError, match="sort_by_dst"):
        EdgeIndex.build(src, dst, 3)
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        EdgeIndex.build(torch.tensor([0, 3]), torch.tensor([0, 1]), 3)


def test_sort_by_dst_keeps_attributes_aligned():
    g = torch.Generator().manual_seed(12)
    src, dst = torch.randint(0, 30, (200,), generator=g), torch.randint(0, 30, (200,), generator=g)
    etype, weight = torch.arange(200), torch.randn(200, 3, generator=g)
    s, d, t, w = sort_by_dst(src, dst, etype, weight)
    assert torch.equal(s, src[t]) and torch.equal(d, dst[t]) and torch.equal(w, weight[t])
    key = d * 30 + s
    assert (key[1:] >= key[:-1]).all()
    same = key[1:] == key[:-1]  # stability: multi-edges keep their input order
    assert (t[1:][same] > t[:-1][same]).all()
    index = EdgeIndex.build(s, d, 30)
    assert torch.equal(index.src[index.perm], s[index.perm])
    assert (index.src[index.perm][1:] >= index.src[index.perm][:-1]).all()
    assert torch.equal(index.colptr[1:] - index.colptr[:-1], torch.bincount(s, minlength=30))


def test_aggregate_on_a_hand_checkable_graph():
    # 0 -> 2, 1 -> 2, 2 -> 2; node 0 and 1 have no incoming edge.
    src, dst = sort_by_dst(torch.tensor([1, 0, 2]), torch.tensor([2, 2, 2]))
    index = EdgeIndex.build(src, dst, 3)
    scores = torch.log(torch.tensor([[1.0], [2.0], [1.0]]))  # edges in (dst, src) order: 0->2, 1->2, 2->2
    z = torch.tensor([[[1.0]], [[10.0]], [[100.0]]])
    out = edge_softmax_aggregate(scores, z, index)
    torch.testing.assert_close(out.view(-1), torch.tensor([0.0, 0.0, (1 + 20 + 100) / 4]))


# ---------------------------------------------------------------------------------------------- size


def test_large_aggregate_runs_on_cpu():
    # E*H*D*4 bytes = 100 MB of messages if materialised; the sparse path never builds them.
    num_nodes, num_edges, heads, dim = 5000, 50_000, 8, 64
    g = torch.Generator().manual_seed(13)
    src, dst = sort_by_dst(torch.randint(0, num_nodes, (num_edges,), generator=g),
                           torch.randint(0, num_nodes, (num_edges,), generator=g))
    index = EdgeIndex.build(src, dst, num_nodes)
    alpha = edge_softmax(torch.randn(num_edges, heads, generator=g), index).requires_grad_()
    z = torch.randn(num_nodes, heads, dim, generator=g, requires_grad=True)
    out = aggregate(alpha, z, index)
    out.backward(torch.ones_like(out))
    # with grad_out = 1: grad_alpha[e, h] = sum_d z[src_e, h, d], grad_z[j] = sum of alpha over out-edges of j
    torch.testing.assert_close(alpha.grad, z.detach().sum(-1)[src], atol=1e-4, rtol=1e-5)
    out_alpha = torch.zeros(num_nodes, heads).index_add_(0, src, alpha.detach())
    torch.testing.assert_close(z.grad, out_alpha[:, :, None].expand(-1, -1, dim), atol=1e-5, rtol=1e-5)


# ---------------------------------------------------------------------------------------------- CUDA


@pytest.mark.cuda
@cuda
@pytest.mark.parametrize("backend", BACKENDS)
def test_matches_reference_float32_cuda(backend):
    index = random_graph(600, 4000, seed=7, device="cuda")
    _parity(index, num_heads=4, dim=16, backend=backend, device="cuda")


@pytest.mark.cuda
@cuda
def test_matches_reference_float64_cuda():
    index = random_graph(300, 2000, seed=14, device="cuda")
    _parity(index, num_heads=3, dim=5, backend="auto", device="cuda", dtype=torch.float64, atol=1e-10, rtol=1e-10)


@pytest.mark.cuda
@cuda
def test_sparse_path_is_used_on_cuda_for_float32():
    assert ea._sparse_supported("cuda", torch.float32)
    assert ea._sparse_supported(str(torch.device("cuda", torch.cuda.current_device())), torch.float32)


@pytest.mark.cuda
@cuda
@pytest.mark.parametrize("backend", BACKENDS)
def test_bf16_close_to_float32_cuda(backend):
    index = random_graph(400, 3000, seed=9, device="cuda")
    scores = torch.randn(index.num_edges, 4, device="cuda")
    z = torch.randn(index.num_nodes, 4, 16, device="cuda")
    out32 = edge_softmax_aggregate(scores, z, index, backend=backend)
    out16 = edge_softmax_aggregate(scores.bfloat16(), z.bfloat16(), index, backend=backend)
    torch.testing.assert_close(out16.float(), out32, atol=3e-2, rtol=2e-2)


@pytest.mark.cuda
@cuda
def test_peak_memory_below_half_the_message_tensor_cuda():
    num_nodes, num_edges, heads, dim = 10_000, 400_000, 8, 64
    message_bytes = num_edges * heads * dim * 4  # ~820 MB
    g = torch.Generator().manual_seed(15)
    src, dst = sort_by_dst(torch.randint(0, num_nodes, (num_edges,), generator=g),
                           torch.randint(0, num_nodes, (num_edges,), generator=g))
    index = EdgeIndex.build(src, dst, num_nodes).to("cuda")
    scores = torch.randn(num_edges, heads, device="cuda", requires_grad=True)
    z = torch.randn(num_nodes, heads, dim, device="cuda", requires_grad=True)

    def peak(fn):
        scores.grad = z.grad = None
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        fn().sum().backward()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - base

    fast = peak(lambda: edge_softmax_aggregate(scores, z, index))
    ref = peak(lambda: aggregate_reference(edge_softmax_reference(scores, index.dst, num_nodes), z,
                                           index.src, index.dst, num_nodes))
    assert ref > message_bytes  # the measurement sees the reference's message tensor
    assert fast < 0.5 * message_bytes, f"peak {fast / 2**20:.0f} MiB vs messages {message_bytes / 2**20:.0f} MiB"

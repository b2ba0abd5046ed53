"""DS-ViT++: the ViT ops and the supernet. Masked (training) == truly sliced (inference) per sample, idle channels
pass through unchanged and are not computed, the sliced weights are small dense tensors, the MAdds counter equals
a hand count, and gradients reach every weight (largest net) and the gates (dynamic net)."""
import pytest
import torch
import torch.nn.functional as F
from dsnet.ops import SlimLayerNorm, SlimTokenLinear, SoftChoice
from dsnet.vit import DSViT, SlimViTBlock, ds_vit_tiny

EMBED, HEADS, MLP, HEAD_DIM = [4, 8, 12], [1, 2, 3], [8, 16, 24], 4


def one_hot(idx, k=3):
    return SoftChoice(F.one_hot(torch.tensor(idx), k).float())


def randomise(module):
    """Non-trivial LayerNorm affines and biases (the init sets them to 1 / 0, which would hide slicing errors)."""
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name.endswith("bias") or "norm" in name:
                p.normal_(0, 0.5).add_(1.0 if "norm" in name and name.endswith("weight") else 0.0)
    return module


def test_layernorm_masked_equals_sliced_and_uses_the_widest_affine():
    torch.manual_seed(0)
    ln = randomise(SlimLayerNorm(EMBED))
    idx = [2, 0, 1]
    x = torch.randn(3, 5, 12) * 3 + 1
    y = ln(x, one_hot(idx))
    for b, i in enumerate(idx):
        c = EMBED[i]
        ref = ln(x[b:b + 1, :, :c], i)
        expect = F.layer_norm(x[b:b + 1, :, :c], (c,), ln.weight[:c], ln.bias[:c], ln.eps)
        torch.testing.assert_close(ref, expect)
        torch.testing.assert_close(y[b:b + 1, :, :c], ref, rtol=1e-5, atol=1e-5)
        assert y[b, :, c:].abs().sum() == 0


def test_fused_qkv_keeps_the_leading_heads_of_q_k_and_v():
    torch.manual_seed(0)
    qkv = SlimTokenLinear(EMBED, [h * HEAD_DIM for h in HEADS], chunks=3)
    x = torch.randn(2, 5, 8)
    y, madds = qkv(x, 1)                                                  # d = 8, h = 2 heads of 4
    w = qkv.weight.view(3, 12, 12)
    b = qkv.bias.view(3, 12)
    expect = torch.cat([x @ w[j, :8, :8].T + b[j, :8] for j in range(3)], -1)
    torch.testing.assert_close(y, expect)
    assert madds == 8 * 3 * 8 * 5
    with torch.no_grad():                                                 # the inference path: a small dense copy
        qkv(x, 1)
    cached = qkv._slice_cache[("weight", (8, 8))][1]
    assert cached.shape == (24, 8) and cached.is_contiguous()


def test_block_masked_equals_sliced_and_idle_channels_pass_through_unchanged():
    torch.manual_seed(0)
    block = randomise(SlimViTBlock(EMBED, HEADS, MLP, HEAD_DIM)).eval()
    idx = [0, 2, 1]
    x = torch.randn(3, 6, 12)
    with torch.no_grad():
        y, madds = block(x, one_hot(idx))
        for b, i in enumerate(idx):
            d = EMBED[i]
            ref, ref_madds = block(x[b:b + 1], i)
            torch.testing.assert_close(y[b:b + 1], ref, rtol=1e-5, atol=1e-5)
            assert torch.equal(ref[..., d:], x[b:b + 1, :, d:])           # sliced: idle channels untouched
            assert torch.equal(y[b, :, d:], x[b, :, d:])                  # masked: x + 0 exactly
            assert not torch.equal(ref[..., :d], x[b:b + 1, :, :d])       # the active channels did change
            assert madds[b].item() == pytest.approx(ref_madds)


def test_idle_channels_are_not_computed():
    """NaN in the idle channels cannot reach the active ones: they never enter the block's computation."""
    torch.manual_seed(0)
    block = randomise(SlimViTBlock(EMBED, HEADS, MLP, HEAD_DIM)).eval()
    x = torch.randn(1, 6, 12)
    poisoned = x.clone()
    poisoned[..., 4:] = float("nan")
    with torch.no_grad():
        clean, _ = block(x, 0)
        out, _ = block(poisoned, 0)
    assert torch.equal(out[..., :4], clean[..., :4]) and out[..., 4:].isnan().all()
    zero = SlimViTBlock(EMBED, HEADS, MLP, HEAD_DIM, idle="zero").eval()
    with torch.no_grad():
        z, _ = zero(x, 0)
        zm, _ = zero(x, one_hot([0]))
    assert z[..., 4:].abs().sum() == 0 and zm[..., 4:].abs().sum() == 0
    torch.testing.assert_close(zm, z, rtol=1e-5, atol=1e-5)


def small_vit(**kwargs):
    return DSViT(3, img_size=8, patch_size=4, embed_dims=(4, 8), num_heads=(1, 2), head_dim=4, mlp_dims=(8, 16),
                 stages=(1, 1), num_routes=2, **kwargs)


def test_madds_counter_equals_a_hand_count():
    net = small_vit().eval()
    x = torch.randn(1, 3, 8, 8)
    # 4 patches + class token = N 5 tokens, D = 8, gate r = 8 * 0.25 = 2; per stage the gate's pool 8*4 + reduce 8*2
    # + attention head 2*m; per block qkv 5*d*3*h*4 + attention 2*h*25*4 + proj 5*h*4*d + fc1, fc2 5*d*m each
    patch, head = 3 * 8 * 4 * 4 * 4, 8 * 3
    net(x, 0)   # d 4, h 1, m 8
    assert net.madds == patch + 2 * ((32 + 16 + 2 * 8) + (240 + 200 + 80 + 160 + 160)) + head == 3368
    net(x, "largest")   # d 8, h 2, m 16
    assert net.madds == patch + 2 * ((32 + 16 + 2 * 16) + (960 + 400 + 320 + 640 + 640)) + head == 7640
    net(x, (0, 1))
    assert net.madds == patch + (64 + 840) + (80 + 2960) + head
    net.eval_noise = False
    net(x, "dynamic_sliced")
    routes = [int(g.index) for g in net.gates]
    plain = net.madds
    net(x, tuple(routes))
    assert plain == net.madds + 2 * (2 * 2)                               # + the two slimming heads, r * K each


def test_the_dynamic_supernet_masked_equals_the_sliced_subnetworks_per_sample():
    torch.manual_seed(0)
    net = randomise(ds_vit_tiny(10)).eval()
    x = torch.randn(4, 3, 32, 32)
    routes = [torch.tensor([0, 3, 1, 2]), torch.tensor([2, 0, 3, 1]), torch.tensor([1, 1, 0, 3])]
    calls = iter(routes)
    net.make_decide = lambda width: (lambda logits: SoftChoice(F.one_hot(next(calls), 4).float()))
    with torch.no_grad():
        out, madds = net(x, "dynamic"), net.madds
        del net.make_decide
        for b in range(4):
            ref = net(x[b:b + 1], tuple(int(r[b]) for r in routes))
            torch.testing.assert_close(out[b:b + 1], ref, rtol=1e-4, atol=1e-5)
            assert madds[b].item() - net.madds == 3 * 16 * 4                # only the three slimming heads are extra
        net.eval_noise = False
        one = x[:1]
        masked, m_madds = net(one, "dynamic"), net.madds.item()
        index = [int(g.index) for g in net.gates]
        sliced = net(one, "dynamic_sliced")
    assert [int(g.index) for g in net.gates] == index
    torch.testing.assert_close(masked, sliced, rtol=1e-4, atol=1e-5)
    assert m_madds == pytest.approx(net.madds)


def test_gradients_reach_every_weight_and_the_gates():
    torch.manual_seed(0)
    net = ds_vit_tiny(10).train()
    net(torch.randn(2, 3, 32, 32), "largest").sum().backward()
    gate = {id(p) for p in net.gate_parameters()}
    assert len(gate) == 3
    assert not [n for n, p in net.named_parameters() if p.grad is None and id(p) not in gate]
    net.zero_grad()
    out = net(torch.randn(2, 3, 32, 32), "dynamic")
    (out.sum() + net.madds.sum() * 1e-6).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.gate_parameters())
    assert len(net.gates) == 3


def test_the_deit_s_supernet_has_the_deit_s_shape():
    net = DSViT(1000)
    assert net.embed_dims == [192, 256, 320, 384] and net.num_heads == [3, 4, 5, 6]
    assert net.mlp_dims == [768, 1024, 1280, 1536] and len(net.blocks) == 12 and net.stage_starts == [0, 4, 8, 12]
    assert net.blocks[0].attn.qkv.weight.shape == (3 * 384, 384) and net.pos_embed.shape == (1, 197, 384)
    with pytest.raises(ValueError, match="route_start"):
        DSViT(10, route_start=1)


def test_forced_routes_override_the_gates_and_equal_the_sliced_subnetworks():
    torch.manual_seed(0)
    net = randomise(ds_vit_tiny(10)).eval()
    x = torch.randn(3, 3, 32, 32)
    routes = torch.tensor([[0, 3, 1], [2, 2, 0], [3, 0, 3]])
    net.forced_routes = routes
    with torch.no_grad():
        out = net(x, "dynamic")
        assert torch.equal(torch.stack([g.index for g in net.gates], 1), routes)
        net.forced_routes = None
        for b in range(3):
            torch.testing.assert_close(out[b:b + 1], net(x[b:b + 1], tuple(routes[b].tolist())), rtol=1e-4, atol=1e-5)

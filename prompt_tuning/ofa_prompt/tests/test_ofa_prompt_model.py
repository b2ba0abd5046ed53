"""OFA model and prompt-tuning mechanics: the properties the official code defines (research note §6)."""
import math

import pytest
import torch
from ofa_prompt.model import (
    OFA,
    DropPath,
    MultiheadAttention,
    OFAConfig,
    image_bucket_position,
    image_position_ids,
    token_bucket_position,
)
from ofa_prompt.prompts import PEFT_MODES, set_trainable


def tiny(**kw):
    base = dict(vocab_size=120, encoder_layers=2, decoder_layers=2, embed_dim=32, heads=4, ffn_dim=64,
                resnet_layers=(1, 1, 1), max_positions=64, token_bucket_size=16, image_bucket_size=6)
    return OFAConfig(**{**base, **kw})


def inputs(b=2, t=6, tt=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    src = torch.randint(4, 120, (b, t), generator=g)
    src[1, -2:] = 1                                             # padding in the second source
    prev = torch.randint(4, 120, (b, tt), generator=g)
    prev[:, 0] = 0
    img = torch.randn(b, 3, 48, 64, generator=g)
    return src, prev, img


def test_size_table_parameter_counts():
    """OFA-tiny and -base as the research note counts them (README: 33M, 180M)."""
    counts = {s: sum(p.numel() for p in OFA(OFAConfig.of_size(s)).parameters()) / 1e6 for s in ("tiny",)}
    assert math.isclose(counts["tiny"], 33.49, abs_tol=0.05)


def test_token_buckets_match_the_official_rule():
    """Exact offsets within +-mid, log-spaced signed buckets beyond, 2*256-1 buckets for 1024 positions."""
    b = token_bucket_position(256, 1024)
    assert b.shape == (1024, 1024) and b.min() == 0 and b.max() == 510
    assert b[10, 10] == 255 and b[10, 0] == 255 + 10 and b[0, 10] == 255 - 10
    assert b[200, 0] == 255 + math.ceil(math.log(200 / 128) / math.log(1023 / 128) * 127) + 128


def test_image_buckets_and_position_ids():
    n = (2 * 42 - 1) ** 2 + 3
    idx = image_bucket_position(42, n)
    assert idx.shape == (1765, 1765)
    assert idx[0, 0] == n - 1 and idx[0, 5] == n - 3 and idx[5, 0] == n - 2
    ids = image_position_ids(2, 3, 42)
    assert ids.tolist() == [1, 2, 3, 43, 44, 45]
    # same (drow, dcol) -> same bucket
    assert idx[ids[0], ids[4]] == idx[ids[1], ids[5]]


def test_prefix_attention_equals_attention_over_concatenated_kv():
    torch.manual_seed(0)
    attn = MultiheadAttention(16, 4)
    x = torch.randn(2, 5, 16)
    pk, pv = torch.randn(2, 4, 3, 4), torch.randn(2, 4, 3, 4)
    got = attn(x, x, prompt_kv=(pk, pv))
    q = attn._heads(attn.q_proj(x)) * attn.scaling
    k = torch.cat([pk, attn._heads(attn.k_proj(x))], 2)
    v = torch.cat([pv, attn._heads(attn.v_proj(x))], 2)
    ref = ((q @ k.transpose(-1, -2)).softmax(-1) @ v).transpose(1, 2).reshape(2, 5, 16)
    torch.testing.assert_close(got, attn.out_proj(ref))


def test_prompt_slots_get_no_position_bias_and_are_never_masked():
    """Bias, causal mask and padding mask apply to the real key columns only (MHA:348-349)."""
    torch.manual_seed(0)
    attn = MultiheadAttention(16, 4)
    x = torch.randn(1, 5, 16)
    pk, pv = torch.randn(1, 4, 3, 4), torch.randn(1, 4, 3, 4)
    causal = torch.full((5, 5), float("-inf")).triu(1)
    pad = torch.tensor([[False, False, False, True, True]])
    bias = torch.full((1, 4, 5, 5), 3.0)
    probs, _ = attn.attend(x, x, key_padding_mask=pad, attn_bias=bias, attn_mask=causal, prompt_kv=(pk, pv))
    q = attn._heads(attn.q_proj(x)) * attn.scaling
    logits_prompt = q @ pk.transpose(-1, -2)                                  # no bias, no mask
    logits_real = (q @ attn._heads(attn.k_proj(x)).transpose(-1, -2) + 3.0 + causal)
    logits_real = logits_real.masked_fill(pad[:, None, None], float("-inf"))
    torch.testing.assert_close(probs, torch.cat([logits_prompt, logits_real], -1).softmax(-1))
    assert (probs[..., :3] > 0).all()                     # every query (the first too) sees every prompt slot
    assert (probs[..., 3:][..., 3:] == 0).all()           # padded real keys are masked


def test_incremental_decoding_equals_full_decoding_with_prompts():
    torch.manual_seed(0)
    model = OFA(tiny(encoder_prompt_length=3, decoder_prompt_length=4)).eval()
    src, prev, img = inputs()
    with torch.no_grad():
        full = model(src, prev, img)
        enc = model.encoder(src, img)
        cache = {}
        steps = torch.stack([model.decoder(prev[:, :i + 1], enc, cache=cache)[:, -1] for i in range(prev.shape[1])], 1)
    torch.testing.assert_close(steps, full, atol=1e-5, rtol=1e-4)


def test_decoder_is_causal_with_prompts():
    torch.manual_seed(0)
    model = OFA(tiny(decoder_prompt_length=4)).eval()
    src, prev, img = inputs()
    with torch.no_grad():
        a = model(src, prev, img)
        prev2 = prev.clone()
        prev2[:, 3:] = 7
        b = model(src, prev2, img)
    torch.testing.assert_close(a[:, :3], b[:, :3])
    assert not torch.allclose(a[:, 3:], b[:, 3:])


def test_padding_does_not_change_real_positions():
    torch.manual_seed(0)
    model = OFA(tiny(encoder_prompt_length=3)).eval()
    src, prev, img = inputs()
    with torch.no_grad():
        a = model(src[1:, :4], prev[1:], img[1:])
        b = model(src[1:], prev[1:], img[1:])                  # same tokens + 2 pads
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_encoder_output_length_excludes_prompts_and_image_comes_first():
    model = OFA(tiny(encoder_prompt_length=5)).eval()
    src, prev, img = inputs()
    out = model.encoder(src, img)
    n = (48 // 16) * (64 // 16)
    assert out["out"].shape == (2, n + src.shape[1], 32)
    assert out["padding_mask"][:, :n].eq(False).all() and out["padding_mask"][1, -2:].all()


@pytest.mark.parametrize("mode", PEFT_MODES)
def test_only_the_mode_parameters_train(mode):
    kw = dict(prompt=dict(encoder_prompt_length=3, decoder_prompt_length=3), adapter=dict(adapter_dim=8),
              bitfit={}, finetune={})[mode]
    model = OFA(tiny(**kw))
    names = set_trainable(model, mode)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == set(names) and trainable
    if mode == "prompt":
        assert all("prompt_encoder" in n for n in trainable)
    elif mode == "adapter":
        assert all(".adapter." in n for n in trainable)
    elif mode == "bitfit":
        assert all(n.endswith(".bias") and ("layer_norm" in n or ".fc" in n) for n in trainable)
    else:
        assert len(trainable) == len(list(model.parameters()))
    src, prev, img = inputs()
    model(src, prev, img).sum().backward()
    no_grad = {n for n, p in model.named_parameters() if p.requires_grad and p.grad is None}
    # the decoder's image-position tables serve image-code targets only, unused for text (the official run
    # needs --find-unused-parameters for the same reason)
    unused = ("decoder.embed_image_positions", "decoder.image_pos_ln", "decoder.code_layernorm_embedding",
              "decoder.image_rel_pos_table_list")
    assert all(n.startswith(unused) for n in no_grad), no_grad
    assert all(p.grad is None for n, p in model.named_parameters() if not p.requires_grad)


def test_prompt_parameter_count_is_the_papers_one_percent():
    """OFA-base, l=100 both sides: 2 * 100 * 6 * 2 * 768 = 1.84M (~1% of 182M)."""
    model = OFA(OFAConfig.of_size("base", encoder_prompt_length=100, decoder_prompt_length=100))
    names = set_trainable(model, "prompt")
    n = sum(p.numel() for k, p in model.named_parameters() if k in names)
    assert n == 2 * 100 * 6 * 2 * 768


def test_drop_path_drops_whole_samples_in_training_and_is_identity_in_eval():
    """UTL:19-35: per-sample keep mask, kept samples scaled by 1 / (1 - p); eval mode passes x through."""
    torch.manual_seed(0)
    x = torch.randn(4000, 3, 8) + 5.0
    layer = DropPath(0.25)
    y = layer(x)
    kept = (y != 0).flatten(1).all(1)
    dropped = (y == 0).flatten(1).all(1)
    assert bool((kept | dropped).all())                        # a sample is dropped whole or kept whole
    assert abs(float(dropped.float().mean()) - 0.25) < 0.03
    assert torch.allclose(y[kept], x[kept] / 0.75)
    assert torch.equal(layer.eval()(x), x)
    assert torch.equal(DropPath(0.0)(x), x)


def test_drop_path_rates_are_linear_per_stack_and_change_no_key():
    """UT:659-665, 1310-1320: layer i of a stack gets linspace(0, rate, L)[i]; drop-path holds no weights."""
    torch.manual_seed(0)
    with_dp = OFA(tiny(drop_path_rate=0.2, encoder_layers=3, decoder_layers=2))
    torch.manual_seed(0)
    without = OFA(tiny(encoder_layers=3, decoder_layers=2))
    assert [layer.drop_path.p for layer in with_dp.encoder.layers] == pytest.approx([0.0, 0.1, 0.2])
    assert [layer.drop_path.p for layer in with_dp.decoder.layers] == pytest.approx([0.0, 0.2])
    assert with_dp.state_dict().keys() == without.state_dict().keys()
    src, prev, img = inputs()
    with torch.no_grad():
        assert torch.equal(with_dp.eval()(src, prev, img), without.eval()(src, prev, img))
        with_dp.train()
        torch.manual_seed(1)
        a = with_dp(src, prev, img)
        torch.manual_seed(2)
        b = with_dp(src, prev, img)
    assert not torch.equal(a, b)                                # stochastic in training (dropout is 0 here)

"""Prompt modules: IPT table lookup, the prefix variant's layer-0 term, generators, saved state, ratios."""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from ipt.encoder import Encoder, EncoderConfig
from ipt.model import PromptClassifier, TrainableParams, build_method
from ipt.prompts import (
    BiLSTMGenerator,
    DeepPrompt,
    InstancePrefix,
    InstancePrompt,
    InstanceTable,
    MLPGenerator,
    TextCNNGenerator,
)

CFG = EncoderConfig(vocab_size=40, hidden_size=8, num_hidden_layers=3, num_attention_heads=2, intermediate_size=16,
                    max_position_embeddings=32, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)


def test_table_lookup_picks_the_rows_of_the_first_n_ids():
    table = InstanceTable(40, 6, num_tokens=4, pad_id=0)
    ids = torch.tensor([[5, 7, 7, 9, 11, 13], [3, 2, 0, 0, 0, 0]])
    out = table(ids)
    assert out.shape == (2, 4, 6)
    assert torch.equal(out[0], table.weight[[5, 7, 7, 9]])
    assert torch.equal(out[1], table.weight[[3, 2, 0, 0]])
    short = table(torch.tensor([[8, 4]]))  # shorter than n: padded with the pad row, as the official code reads
    assert torch.equal(short[0], table.weight[[8, 4, 0, 0]])
    assert table.weight.min() >= -0.5 and table.weight.max() <= 0.5


def test_table_gradient_touches_only_the_rows_read():
    table = InstanceTable(40, 6, num_tokens=3)
    table(torch.tensor([[5, 7, 9, 1]])).sum().backward()
    touched = (table.weight.grad.abs().sum(1) > 0).nonzero().flatten().tolist()
    assert touched == [5, 7, 9]


def test_pretrained_table_init_and_freeze():
    pre = torch.randn(40, 6)
    table = InstanceTable(40, 6, num_tokens=2, pretrained=pre, freeze=True)
    assert torch.equal(table.weight, pre) and not table.weight.requires_grad
    with pytest.raises(ValueError, match="pretrained table"):
        InstanceTable(40, 5, num_tokens=2, pretrained=pre)


def test_prefix_variant_adds_scaled_instance_term_to_layer_zero_only():
    deep = DeepPrompt(4, 3, 8, 2, dropout=0.0)
    table = InstanceTable(40, 16, num_tokens=4)
    ipt = InstancePrefix(deep, table, scale=0.05)
    ids = torch.tensor([[5, 6, 7, 8, 9]])
    kv, base = ipt(ids), deep.prompt_kv(1)
    inst = table(ids)[0]                                                    # [n, 2d]
    # layer 0: K_p = W_K + 0.05 * I[:, :d] (heads split d = 2 x 4), V_p = W_V + 0.05 * I[:, d:]
    heads = lambda t: t.view(4, 2, 4).transpose(0, 1)  # noqa: E731  [n, d] -> [H, n, d_h]
    assert torch.allclose(kv[0][0][0], base[0][0][0] + 0.05 * heads(inst[:, :8]))
    assert torch.allclose(kv[0][1][0], base[0][1][0] + 0.05 * heads(inst[:, 8:]))
    for layer in (1, 2):
        assert torch.equal(kv[layer][0], base[layer][0]) and torch.equal(kv[layer][1], base[layer][1])
    other = ipt(torch.tensor([[1, 2, 3, 4, 9]]))
    assert not torch.allclose(other[0][0], kv[0][0])


def test_deep_prompt_layout_and_reparameterisation():
    """Flat [n, 2Ld] layer-major: layer i's K is slot 2i, V is 2i+1 (P-tuning v2's view/permute/split)."""
    deep = DeepPrompt(5, 3, 8, 2, dropout=0.0)
    kv = deep.prompt_kv(2)
    w = deep.embedding.weight.view(5, 6, 2, 4)                              # [n, 2L, H, d_h]
    assert kv[1][1].shape == (2, 2, 5, 4)
    assert torch.equal(kv[1][1][0], w[:, 3].transpose(0, 1))
    mlp = DeepPrompt(5, 3, 8, 2, projection=True, proj_dim=7)
    assert sum(p.numel() for p in mlp.parameters()) == 5 * 8 + (8 * 7 + 7) + (7 * 48 + 48)


@pytest.mark.parametrize("gen", [MLPGenerator(8, 3, 10), TextCNNGenerator(8, 3, 10), BiLSTMGenerator(8, 3, 10)])
def test_generators_shapes_and_per_example_independence(gen):
    """[B, n, w] -> [B, m, out]; example 0's prompt does not depend on example 1 (the official LSTM mixes
    batch and time axes, which would fail this)."""
    gen.eval()
    e = torch.randn(3, 6, 8)
    out = gen(e)
    assert out.shape == (3, 3, 10)
    e2 = e.clone()
    e2[1] += 1.0
    assert torch.allclose(gen(e2)[0], out[0], atol=1e-6)
    assert not torch.allclose(gen(e2)[1], out[1])


def test_saved_state_holds_only_prompt_and_head_and_loads_back():
    torch.manual_seed(0)
    model = PromptClassifier(Encoder(CFG), build_method("ipt_prefix", Encoder(CFG), prompt_length=4, ipt_tokens=4),
                             num_classes=3)
    state = TrainableParams(model).state_dict()
    assert set(state) == {"prompt.deep.embedding.weight", "prompt.table.weight", "head.1.weight", "head.1.bias"}
    fresh = PromptClassifier(Encoder(CFG), build_method("ipt_prefix", Encoder(CFG), prompt_length=4, ipt_tokens=4),
                             num_classes=3)
    TrainableParams(fresh).load_state_dict(state)
    assert all(torch.equal(state[k], fresh.trainable_state_dict()[k]) for k in state)
    with pytest.raises(KeyError, match="missing"):
        fresh.load_trainable_state_dict({"head.1.bias": state["head.1.bias"]})
    finetune = PromptClassifier(Encoder(CFG), None, 3, train_encoder=True)
    assert "encoder.word_embeddings.weight" in finetune.trainable_state_dict()


def test_parameter_report_counts_with_and_without_the_table():
    enc = Encoder(CFG)
    n, L, d, V = 4, 3, 8, 40
    model = PromptClassifier(enc, build_method("ipt_prefix", enc, prompt_length=n, ipt_tokens=n), 2)
    r = model.parameter_report()
    head = d * 2 + 2
    assert r["table_params"] == V * 2 * d
    assert r["trainable_params"] == n * 2 * L * d + V * 2 * d + head
    assert r["trainable_ratio_without_table"] == pytest.approx((n * 2 * L * d + head) / r["backbone_params"])
    prompt_mode = build_method("ipt_prompt", enc, prompt_length=n, ipt_tokens=n)
    assert isinstance(prompt_mode, InstancePrompt) and prompt_mode.table.weight.shape == (V, d)
    with pytest.raises(ValueError, match="ipt_tokens"):
        build_method("ipt_prompt", enc, prompt_length=n, ipt_tokens=n + 1)


def test_lazy_rowwise_adamw_equals_adamw_when_every_row_is_read_and_leaves_unread_rows_alone():
    from ipt.optim import RowwiseAdamW
    torch.manual_seed(0)
    w0, d0 = torch.randn(6, 3), torch.randn(4)
    ids_all = torch.tensor([[0, 1, 2], [3, 4, 5], [1, 1, 0]])  # every row read in every step
    runs = {}
    for kind in ("dense", "lazy"):
        table, extra = nn.Parameter(w0.clone()), nn.Parameter(d0.clone())
        opt = (torch.optim.AdamW if kind == "dense" else RowwiseAdamW)([table, extra], lr=0.1, weight_decay=0.01)
        for step in range(4):
            e = F.embedding(ids_all, table, sparse=kind == "lazy")
            loss = (e.sum(1) ** 2).sum() * (step + 1) + (extra ** 3).sum() + (e.mean() * extra).sum()
            loss.backward()
            opt.step()
            opt.zero_grad()
        runs[kind] = (table.detach(), extra.detach())
    # float32 rounding only (measured 3e-6 apart); a semantic difference would be ~1e-2
    assert torch.allclose(runs["dense"][0], runs["lazy"][0], atol=1e-5)
    assert torch.allclose(runs["dense"][1], runs["lazy"][1], atol=1e-5)
    # rows 4 and 5 are read only in the first step: lazily they never move again, densely momentum keeps moving them
    for kind in ("dense", "lazy"):
        table = nn.Parameter(w0.clone())
        opt = (torch.optim.AdamW if kind == "dense" else RowwiseAdamW)([table], lr=0.1)
        for step in range(3):
            ids = torch.tensor([[0, 4, 5]]) if step == 0 else torch.tensor([[0, 1, 2]])
            F.embedding(ids, table, sparse=kind == "lazy").pow(2).sum().backward()
            opt.step()
            opt.zero_grad()
            if step == 0:
                first = table.detach().clone()
        runs[kind] = (table.detach(), first)
    (lazy, lazy_first), (dense, dense_first) = runs["lazy"], runs["dense"]
    assert torch.equal(lazy[4:], lazy_first[4:]) and torch.equal(lazy[3], w0[3])
    assert not torch.allclose(dense[4:], dense_first[4:])


def test_lazy_table_update_gives_a_sparse_gradient_of_the_rows_read():
    table = InstanceTable(20, 4, 3, pad_id=0, sparse_grad=True)
    table(torch.tensor([[5, 7, 7, 9], [2, 5, 1, 1]])).sum().backward()
    g = table.weight.grad.coalesce()
    assert g.is_sparse and sorted(g.indices()[0].tolist()) == [1, 2, 5, 7]  # first 3 ids of each row


def test_prefix_instance_term_fast_path_equals_the_flat_sum():
    """Without dropout layer 0 alone gets the instance term (layers 1.. stay broadcast views); the result is the
    official flat sum W + scale * [I, 0] split into layers."""
    torch.manual_seed(0)
    deep = DeepPrompt(4, 3, 8, 2, dropout=0.0)
    ipt = InstancePrefix(deep, InstanceTable(40, 16, num_tokens=4), scale=0.05)
    ids = torch.tensor([[5, 6, 7, 8, 9], [1, 2, 3, 4, 0]])
    inst = ipt.table(ids)
    flat = deep.prompt_kv(2, extra=0.05 * torch.cat([inst, inst.new_zeros(2, 4, 2 * 8 * 2)], dim=2))
    for (k, v), (k_ref, v_ref) in zip(ipt(ids), flat, strict=True):
        assert torch.allclose(k, k_ref) and torch.allclose(v, v_ref)

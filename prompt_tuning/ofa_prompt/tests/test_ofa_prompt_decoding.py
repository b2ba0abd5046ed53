"""Tokenizer (official three-file layout), beam search, trie and all-candidate scoring, checkpoint loading."""
import itertools
import json
from pathlib import Path

import pytest
import torch
from ofa_prompt.checkpoint import SKIPPED_SUFFIXES, build_from_official, config_from_state_dict, load_official
from ofa_prompt.generate import Trie, _banned_ngrams, answer_trie, beam_search, score_candidates
from ofa_prompt.model import OFA, OFAConfig
from ofa_prompt.tokenizer import BOS, EOS, OFATokenizer, pre_caption

from common.errors import DataError

TEXTS = ["a red circle on the left", "a blue square on the right", "what does the image describe?",
         "which region does the text describe?", "yes no maybe"] * 20


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    folder = OFATokenizer.train_official_files(TEXTS, tmp_path_factory.mktemp("bpe"), vocab_size=200)
    return OFATokenizer.from_official(folder, num_codes=16, num_bins=50)


def test_vocabulary_layout(tok):
    assert tok.mask == 4 + len(tok.gpt2_to_index)
    assert tok.code_start == tok.mask + 1 and tok.bin_start == tok.code_start + 16
    assert tok.vocab_size == tok.bin_start + 50


def test_official_sizes_give_the_released_vocabulary():
    """50260 dict.txt lines, 8192 codes, 1000 bins -> bins start at 58457, 59457 entries (research note §6.6)."""
    t = OFATokenizer(bpe=None, dict_ids=list(range(50260)))
    assert (t.mask, t.code_start, t.bin_start, t.vocab_size) == (50264, 50265, 58457, 59457)


def test_encode_decode_round_trip_through_dict_order(tok):
    ids = tok.encode(" a red circle on the left")
    assert ids[0] == BOS and ids[-1] == EOS
    assert all(4 <= i < tok.mask for i in ids[1:-1])
    assert tok.decode(ids) == " a red circle on the left"
    # dict.txt maps GPT-2 id g to line position: the reversed order written by the trainer
    g = tok.bpe.encode(" red").ids[0]
    assert tok.gpt2_to_index[g] == 4 + (len(tok.gpt2_to_index) - 1 - g)
    assert tok.decode([tok.bin_token(3), tok.code_start + 2, tok.mask]) == "<bin_3><code_2><mask>"


@pytest.mark.parametrize("case", ["missing", "dict_bad_line", "dict_out_of_range", "empty_dict", "encoder_not_json"])
def test_bpe_file_errors_name_the_file(tok, tmp_path, case):
    folder = OFATokenizer.train_official_files(TEXTS, tmp_path / "bpe", vocab_size=200)
    name = {"missing": "vocab.bpe", "encoder_not_json": "encoder.json"}.get(case, "dict.txt")
    if case == "missing":
        (folder / name).unlink()
    elif case == "dict_bad_line":
        (folder / name).write_text("5 10\nnot-a-line\n")
    elif case == "dict_out_of_range":
        (folder / name).write_text("5 10\n99999 3\n")
    elif case == "empty_dict":
        (folder / name).write_text("")
    else:
        (folder / name).write_text("{not json")
    with pytest.raises(DataError, match=name):
        OFATokenizer.from_official(folder)


def test_pre_caption_cleaning():
    assert pre_caption(",A Red-Circle / on  the LEFT\n", 4) == "a red circle on"


def test_trie_allows_children_then_eos():
    t = Trie()
    t.insert([0, 5, 6, 2])
    t.insert([0, 5, 7, 2])
    assert sorted(t.allowed([0, 5])) == [6, 7]
    assert t.allowed([0, 9]) == [EOS]


def test_banned_ngrams():
    assert _banned_ngrams([1, 2, 3, 1, 2], 3) == [3]
    assert _banned_ngrams([1, 2], 3) == []


def small_model(seed=0, **kw):
    torch.manual_seed(seed)
    cfg = OFAConfig(vocab_size=40, encoder_layers=1, decoder_layers=2, embed_dim=32, heads=4, ffn_dim=64,
                    resnet_layers=(1, 1, 1), max_positions=32, token_bucket_size=8, image_bucket_size=4, **kw)
    return OFA(cfg).eval()


def brute_force_best(model, enc, max_len, min_len):
    """Best normalised sequence by enumerating every sequence over a 6-token alphabet (ids 4..8 and </s>)."""
    best = (None, float("-inf"))
    alphabet = [4, 5, 6, 7, 8]
    for n in range(min_len, max_len + 1):
        for body in itertools.product(alphabet, repeat=n):
            seq = [BOS, *body, EOS]
            logits = model.decoder(torch.tensor([seq[:-1]]), enc)[0]
            allowed = torch.full_like(logits, float("-inf"))
            allowed[:, alphabet + [EOS]] = 0                   # constraint_range masks before log-softmax
            lp = (logits + allowed).log_softmax(-1)
            s = sum(lp[i, t].item() for i, t in enumerate(seq[1:])) / len(seq[1:])
            best = max(best, (seq[1:], s), key=lambda x: x[1])
    return best


def test_beam_search_with_a_wide_beam_finds_the_best_constrained_sequence():
    model = small_model(decoder_prompt_length=2)
    src = torch.tensor([[0, 5, 6, 7, 2]])
    with torch.no_grad():
        enc = model.encoder(src)
        # restrict to ids 4..8 (+ </s>) so that brute force can enumerate
        hyps = beam_search(model, enc, beam=40, max_len=3, min_len=1, constraint_range=(4, 9))
        best = brute_force_best(model, enc, max_len=3, min_len=1)
    assert hyps[0][0][0] == best[0]
    assert hyps[0][0][1] == pytest.approx(best[1], abs=1e-5)


def test_beam_search_respects_the_trie_and_min_length():
    model = small_model()
    src = torch.tensor([[0, 5, 6, 2], [0, 7, 2, 1]])
    trie = Trie()
    for seq in ([0, 10, 11, 2], [0, 12, 2]):
        trie.insert(seq)
    with torch.no_grad():
        hyps = beam_search(model, model.encoder(src), beam=2, max_len=4, trie=trie)
    for per_input in hyps:
        assert {tuple(h[0]) for h in per_input} == {(10, 11, 2), (12, 2)}
    with torch.no_grad():
        hyps = beam_search(model, model.encoder(src), beam=3, max_len=5, min_len=3)
    assert all(len(h[0]) >= 4 for per_input in hyps for h in per_input)


def test_candidate_scores_equal_the_sum_of_token_log_probs(tok):
    model = small_model()
    src = torch.tensor([[0, 5, 6, 2]])
    cands = [[10, 11, EOS], [12, EOS]]
    trie = Trie()
    for c in cands:
        trie.insert([BOS] + c)
    with torch.no_grad():
        enc = model.encoder(src)
        got = score_candidates(model, enc, [[BOS, 7]], cands, trie=trie)
        for r, c in enumerate(cands):
            seq = [BOS, 7] + c
            logits = model.decoder(torch.tensor([seq[:-1]]), enc)[0]
            total = 0.0
            for t, tok_id in enumerate(c):
                row = logits[1 + t].clone()
                allowed = trie.allowed([BOS] + c[:t])
                masked = torch.full_like(row, float("-inf"))
                masked[allowed] = row[allowed]
                total += masked.log_softmax(-1)[tok_id].item()
            assert got[0, r].item() == pytest.approx(total, abs=1e-5)
    assert answer_trie(tok, ["yes", "no"]).allowed([BOS])


def official_layout_state(model):
    """A state dict with the extra entries a fairseq checkpoint carries (version buffers, rp buckets, the tied
    output projection, image_position_idx), fp16 as the released files."""
    state = {k: v.half() if v.is_floating_point() else v for k, v in model.state_dict().items()}
    state["encoder.version"] = torch.tensor([3.0])
    state["decoder.version"] = torch.tensor([3.0])
    state["decoder.output_projection.weight"] = state["decoder.embed_tokens.weight"]
    state["encoder.token_rp_bucket"] = torch.zeros(2, 2, dtype=torch.long)
    state["decoder.image_position_idx"] = torch.zeros(3, dtype=torch.long)
    return {k: v for k, v in state.items() if "prompt_encoder" not in k}


def test_loader_reads_a_fairseq_checkpoint_and_keeps_prompts_fresh(tmp_path):
    src_model = small_model(seed=1)
    path = tmp_path / "ofa_small.pt"
    torch.save({"args": None, "cfg": {"model": {"_name": "m6_unify_large"}},
                "model": official_layout_state(src_model), "extra_state": {}}, path)
    cfg = config_from_state_dict(official_layout_state(src_model))
    assert (cfg.embed_dim, cfg.heads, cfg.encoder_layers, cfg.decoder_layers, cfg.resnet_layers,
            cfg.image_bucket_size, cfg.token_bucket_size) == (32, 4, 1, 2, (1, 1, 1), 4, 8)
    model = build_from_official(path, encoder_prompt_length=3, decoder_prompt_length=3).eval()
    assert model.encoder.encoder_prompt_encoder.embedding.weight.std() > 0      # fresh N(0, 0.02), not loaded
    for k, v in src_model.state_dict().items():
        torch.testing.assert_close(model.state_dict()[k], v.half().float() if v.is_floating_point() else v)


def test_loader_refuses_foreign_keys_and_shapes(tmp_path):
    model = small_model()
    state = official_layout_state(model)
    state["encoder.layers.0.not_a_module.weight"] = torch.zeros(1)
    with pytest.raises(ValueError, match="unexpected"):
        load_official(small_model(), state)
    state = official_layout_state(model)
    state["encoder.layers.0.fc1.weight"] = torch.zeros(3, 3)
    with pytest.raises(ValueError, match="shape"):
        load_official(small_model(), state)
    bad = tmp_path / "x.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(DataError, match="x.pt"):
        build_from_official(bad)


OFFICIAL_KEYS = Path(__file__).parent / "data" / "ofa_official_keys_tiny.json"


def official_keys():
    return {k: (tuple(shape), dtype) for k, shape, dtype in json.loads(OFFICIAL_KEYS.read_text())["keys"]}


def test_model_has_exactly_the_official_parameters_and_shapes():
    """Key list dumped from the official model classes (OFA-Sys/OFA @ a36b91c, OFA-tiny, the prefix script's
    flags); what we do not hold are the buffers fairseq recomputes and the tied output projection."""
    official = official_keys()
    model = OFA(OFAConfig.of_size("tiny", encoder_prompt_length=100, decoder_prompt_length=100))
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    recomputed = {k for k in official if k.endswith(SKIPPED_SUFFIXES)}
    assert set(official) - recomputed == set(ours)
    assert {k: official[k][0] for k in ours} == ours


def test_loader_reads_a_checkpoint_with_the_official_names(tmp_path):
    """A fairseq checkpoint holding exactly the official keys (random fp16 values), without prompts, loads into
    the prompt model; the prompt encoders stay at their initial values."""
    torch.manual_seed(0)
    state = {k: (torch.randn(shape).half() if dtype == "float32" else torch.zeros(shape, dtype=torch.long))
             for k, (shape, dtype) in official_keys().items() if "prompt_encoder" not in k}
    path = tmp_path / "ofa_tiny.pt"
    torch.save({"args": None, "cfg": {}, "model": state}, path)
    model = build_from_official(path, encoder_prompt_length=100, decoder_prompt_length=100)
    assert model.cfg.embed_dim == 256 and model.cfg.resnet_layers == (3, 4, 6) and model.cfg.vocab_size == 59457
    loaded = model.state_dict()
    for k in ("encoder.layers.3.self_attn.c_attn", "decoder.layers.0.cross_attn_ln.weight",
              "encoder.embed_images.layer3.5.bn3.running_var", "decoder.code_layernorm_embedding.weight"):
        torch.testing.assert_close(loaded[k], state[k].float())
    assert model.encoder.encoder_prompt_encoder.embedding.weight.shape == (100, 4 * 2 * 256)

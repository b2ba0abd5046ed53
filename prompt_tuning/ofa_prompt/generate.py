"""Decoding as the official code does it: beam search (models/sequence_generator.py, "SG"), the answer trie
(utils/trie.py) and all-candidate scoring for classification-like answers (tasks/mm_tasks/{snli_ve,vqa_gen}.py).

Beam search follows SG: decoding starts from <s> (id 0, SG:293), pad is never chosen (SG:397), </s> is banned
before `min_len` (SG:391-393) and forced at `max_len`, repeated n-grams are blocked, the first step expands only
the first beam, a sentence is done when `beam` hypotheses have ended, and finished scores are divided by
len ** lenpen unless `normalize=False` (`--unnormalized`, SG:689-690). A trie restricts every step to the
children of the tokens generated so far (SG:864-876, masking logits before log-softmax).
"""
import torch

from .tokenizer import BOS, EOS, PAD


class Trie:
    """Prefix tree of token sequences; `allowed(prefix)` lists the next ids, or [eos] once the prefix left it."""

    def __init__(self, eos=EOS):
        self.root, self.eos = {}, eos

    def insert(self, seq):
        node = self.root
        for t in seq:
            node = node.setdefault(int(t), {})

    def allowed(self, prefix):
        node = self.root
        for t in prefix:
            node = node.get(int(t))
            if node is None:
                return [self.eos]
        return list(node) or [self.eos]


def answer_trie(tokenizer, answers):
    """Each answer inserted as [<s>] + BPE(' ' + answer) + [</s>] (tasks/mm_tasks/vqa_gen.py:146-166)."""
    trie = Trie()
    for a in answers:
        trie.insert([BOS] + tokenizer.bpe_ids(" " + a) + [EOS])
    return trie


def _reorder(cache, index):
    for key, value in cache.items():
        if isinstance(value, dict):
            _reorder(value, index)
        else:
            cache[key] = value.index_select(0, index)


def _expand(encoder_out, beam):
    return {k: v.repeat_interleave(beam, 0) for k, v in encoder_out.items()}


def _banned_ngrams(tokens, n):
    """Tokens that would repeat an n-gram of `tokens` (a list) if appended."""
    if n <= 0 or len(tokens) < n:
        return []
    key = tuple(tokens[len(tokens) - n + 1:])
    return [tokens[i + n - 1] for i in range(len(tokens) - n + 1) if tuple(tokens[i:i + n - 1]) == key]


@torch.no_grad()
def beam_search(model, encoder_out, beam=5, max_len=16, min_len=1, no_repeat_ngram=0, lenpen=1.0,
                normalize=True, trie=None, constraint_range=None):
    """Returns per input a list of (tokens without <s>, ending in </s>; score), best first.

    encoder_out: `model.encoder(...)` output for B inputs; max_len counts generated tokens before </s>;
    constraint_range (start, end): only ids in [start, end) (and </s>) may be generated (SG:877-880)."""
    b = encoder_out["out"].shape[0]
    device = encoder_out["out"].device
    enc = _expand(encoder_out, beam)
    tokens = torch.full((b * beam, 1), BOS, dtype=torch.long, device=device)
    scores = torch.zeros(b * beam, device=device)
    finished = [[] for _ in range(b)]
    cache = {}
    for step in range(max_len + 1):
        logits = model.decoder(tokens, enc, cache=cache)[:, -1].float()          # [B*K, V]
        v = logits.shape[-1]
        logits[:, PAD] = float("-inf")
        if trie is not None:
            mask = torch.full_like(logits, float("-inf"))
            for r, row in enumerate(tokens.tolist()):
                mask[r, trie.allowed(row)] = 0
            logits = logits + mask
        if constraint_range is not None:
            keep = torch.zeros(v, dtype=torch.bool, device=device)
            keep[constraint_range[0]:constraint_range[1]] = True
            keep[EOS] = True
            logits[:, ~keep] = float("-inf")
        lprobs = logits.log_softmax(-1)
        if step < min_len:
            lprobs[:, EOS] = float("-inf")
        if step == max_len:
            eos_col = lprobs[:, EOS].clone()
            lprobs.fill_(float("-inf"))
            lprobs[:, EOS] = eos_col
        if no_repeat_ngram:
            for r, row in enumerate(tokens.tolist()):
                banned = _banned_ngrams(row[1:], no_repeat_ngram)
                if banned:
                    lprobs[r, banned] = float("-inf")
        cand = scores[:, None] + lprobs                                          # [B*K, V]
        if step == 0:
            cand.view(b, beam, v)[:, 1:] = float("-inf")
        top_scores, top_idx = cand.view(b, beam * v).topk(2 * beam, dim=1)
        new_rows, new_scores, new_tokens = [], [], []
        for i in range(b):
            kept = 0
            for s, j in zip(top_scores[i].tolist(), top_idx[i].tolist(), strict=True):
                if s == float("-inf"):
                    break
                src, tok = i * beam + j // v, j % v
                if len(finished[i]) >= beam:
                    break
                if tok == EOS:
                    seq = tokens[src, 1:].tolist() + [EOS]
                    finished[i].append((seq, s / (len(seq) ** lenpen) if normalize else s))
                elif kept < beam:
                    new_rows.append(src)
                    new_scores.append(s)
                    new_tokens.append(tok)
                    kept += 1
            while kept < beam:                                # a done (or dead) sentence keeps dummy beams
                new_rows.append(i * beam)
                new_scores.append(float("-inf"))
                new_tokens.append(PAD)
                kept += 1
        if all(len(f) >= beam for f in finished):
            break
        index = torch.tensor(new_rows, device=device)
        _reorder(cache, index)
        tokens = torch.cat([tokens[index], torch.tensor(new_tokens, device=device)[:, None]], 1)
        scores = torch.tensor(new_scores, device=device)
    return [sorted(f, key=lambda x: -x[1])[:beam] for f in finished]


@torch.no_grad()
def score_candidates(model, encoder_out, prompt_tokens, candidates, trie=None):
    """All-candidate evaluation (vqa_gen.py:205-257, EU:206-263): log-probability of each candidate answer.

    prompt_tokens: per input, the decoder prompt ([<s>] alone, or the source without </s> for
    `prompt_type=prev_output`); candidates: list of token lists (answer BPE ids + [</s>]). The prompt positions
    contribute 0; with `trie`, logits outside the trie children are masked before log-softmax.
    Returns [B, num_candidates] summed log-probs."""
    b = len(prompt_tokens)
    out = torch.empty(b, len(candidates))
    for i in range(b):
        enc = {k: v[i:i + 1].expand(len(candidates), *v.shape[1:]) for k, v in encoder_out.items()}
        seqs = [list(prompt_tokens[i]) + list(c) for c in candidates]
        width = max(map(len, seqs))
        batch = torch.full((len(seqs), width), PAD, dtype=torch.long)
        for r, s in enumerate(seqs):
            batch[r, :len(s)] = torch.tensor(s)
        device = encoder_out["out"].device
        batch = batch.to(device)
        logits = model.decoder(batch[:, :-1], enc).float()                      # [C, W-1, V]
        if trie is not None:
            mask = torch.zeros_like(logits)
            p = len(prompt_tokens[i])
            for r, c in enumerate(candidates):
                for t in range(len(c)):
                    mask[r, p - 1 + t] = float("-inf")
                    mask[r, p - 1 + t, trie.allowed([BOS] + list(c[:t]))] = 0
            logits = logits + mask
        lprobs = logits.log_softmax(-1).gather(-1, batch[:, 1:, None]).squeeze(-1)
        p = len(prompt_tokens[i])
        for r, c in enumerate(candidates):
            out[i, r] = lprobs[r, p - 1:p - 1 + len(c)].sum()
    return out

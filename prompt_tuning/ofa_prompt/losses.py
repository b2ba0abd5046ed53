"""The official criterion (criterions/label_smoothed_cross_entropy.py, "CRIT").

loss = (1 - eps - eps_i) * nll + eps_i * sum over allowed ids of -log p,  eps_i = eps / (|allowed| - 1)
(CRIT:83-101), pad targets dropped, summed and divided by the number of target tokens (CRIT:199-203). For answer
tasks (VQA, SNLI-VE) the logits outside the answer trie are -inf before the log-softmax and the smoothing mass is
spread over the allowed ids only (CRIT:91-93, 219-226); VQA multiplies each example by its answer's score.
"""
import torch

from .tokenizer import BOS, PAD


def answer_constraint_mask(samples, shape, trie):
    """[B, T, V] bool: at answer positions the trie children of the answer so far; True elsewhere."""
    b, t, v = shape
    allowed = torch.ones(b, t, v, dtype=torch.bool)
    for i, s in enumerate(samples):
        if "prompt" not in s:
            continue
        p = len(s["prompt"])
        answer = s["target"][p - 1:]
        for k in range(len(answer)):
            row = torch.zeros(v, dtype=torch.bool)
            row[trie.allowed([BOS] + answer[:k])] = True
            allowed[i, p - 1 + k] = row
    return allowed


def label_smoothed_loss(logits, target, eps, allowed=None, weight=None):
    """(loss normalised by target tokens, number of target tokens). logits [B, T, V], target [B, T] (pad = 1),
    allowed [B, T, V] bool or None, weight [B] or None."""
    logits = logits.float()
    if allowed is not None:
        logits = logits.masked_fill(~allowed, float("-inf"))
    lprobs = logits.log_softmax(-1)
    keep = target.ne(PAD)
    nll = -lprobs.gather(-1, target.clamp(min=0)[..., None]).squeeze(-1)
    if allowed is None:
        smooth = -lprobs.sum(-1)
        n = torch.full_like(nll, lprobs.shape[-1])
    else:
        smooth = -lprobs.masked_fill(~allowed, 0.0).sum(-1)
        n = allowed.sum(-1).float()
    eps_i = eps / (n - 1).clamp(min=1)
    loss = (1.0 - eps - eps_i) * nll + eps_i * smooth
    if weight is not None:
        loss = loss * weight[:, None]
    ntokens = keep.sum()
    return loss.masked_fill(~keep, 0.0).sum() / ntokens.clamp(min=1), ntokens

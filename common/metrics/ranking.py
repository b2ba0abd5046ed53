"""Ranking metrics of HGB link prediction: ROC-AUC (= sklearn roc_auc_score) and HGB's MRR."""
import numpy as np
from scipy.stats import rankdata


def roc_auc(labels, scores):
    """Area under the ROC curve, ties counted as half (identical to sklearn `roc_auc_score`).

    labels: (M,) 0/1 (nonzero = positive); scores: (M,) finite floats. Raises ValueError with one class only.
    """
    pos, scores = _check(labels, scores)
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError("ROC-AUC needs both positive and negative labels")
    ranks = rankdata(scores)                                # average ranks for ties
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def mrr(heads, labels, scores, ties="optimistic"):
    """HGB's mean reciprocal rank: per head, 1 / (1 + rank of its best-ranked positive among that head's
    candidates), rank 0-based by descending score; mean over heads with at least one positive.

    The rank equals the number of the head's negatives scored above its best positive. ties="optimistic"
    (default) counts only negatives scored strictly higher, i.e. a tie goes to the positive -- what the
    official `np.argsort(-scores)` gives for the usual candidate lists (positives listed first, <= 16
    candidates, where numpy's sort is stable). ties="pessimistic" also counts negatives with an equal score
    (a lower bound, useful for saturated scores).
    """
    if ties not in ("optimistic", "pessimistic"):
        raise ValueError(f"ties must be 'optimistic' or 'pessimistic', got {ties!r}")
    pos, scores = _check(labels, scores)
    _, h = np.unique(np.asarray(heads), return_inverse=True)
    h = h.ravel()
    if len(h) != len(scores):
        raise ValueError(f"heads has {len(h)} entries, scores {len(scores)}")
    num_heads = int(h.max()) + 1 if len(h) else 0
    best = np.full(num_heads, -np.inf)
    np.maximum.at(best, h[pos], scores[pos])                # best positive score per head
    has_pos = np.bincount(h[pos], minlength=num_heads) > 0
    if not has_pos.any():
        raise ValueError("MRR needs at least one head with a positive")
    neg_h, neg_s = h[~pos], scores[~pos]
    above = neg_s > best[neg_h] if ties == "optimistic" else neg_s >= best[neg_h]
    rank = np.bincount(neg_h[above], minlength=num_heads)   # (H,)
    return float(np.mean(1.0 / (1.0 + rank[has_pos])))


def lp_scores_per_relation(relations, heads, labels, scores, ties="optimistic"):
    """ROC-AUC and MRR per relation and their means over relations (HGB's LP score).

    All inputs are (M,) arrays over the scored (head, tail) candidates. Returns
    {"roc_auc": mean, "mrr": mean, "per_relation": {relation: {"roc_auc": ..., "mrr": ...}}}.
    """
    relations, heads = np.asarray(relations), np.asarray(heads)
    labels, scores = np.asarray(labels), np.asarray(scores)
    per = {}
    for r in np.unique(relations):
        m = relations == r
        per[int(r)] = {"roc_auc": roc_auc(labels[m], scores[m]), "mrr": mrr(heads[m], labels[m], scores[m], ties)}
    return {"roc_auc": float(np.mean([v["roc_auc"] for v in per.values()])),
            "mrr": float(np.mean([v["mrr"] for v in per.values()])),
            "per_relation": per}


def _check(labels, scores):
    labels, scores = np.asarray(labels).ravel(), np.asarray(scores, dtype=np.float64).ravel()
    if len(labels) != len(scores):
        raise ValueError(f"labels has {len(labels)} entries, scores {len(scores)}")
    if not np.isfinite(scores).all():
        raise ValueError("scores must be finite")
    return labels != 0, scores

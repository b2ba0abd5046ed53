"""Losses, test-time scoring and the HGB metrics, shared by train.py (after training) and eval.py."""
import numpy as np
import torch
import torch.nn.functional as F

from common.data.hgb import sample_random_negatives, test_negatives_random, test_negatives_two_hop
from common.metrics.classification import f1_scores
from common.metrics.ranking import lp_scores_per_relation
from common.runtime import autocast


def nc_loss(logits, labels, multi_label):
    """Official NC losses: NLL of log-softmax (single-label), BCE of sigmoid (IMDB, run_multi.py)."""
    if multi_label:
        return F.binary_cross_entropy(torch.sigmoid(logits), labels)
    return F.nll_loss(F.log_softmax(logits, 1), labels)


def nc_predict(logits, multi_label):
    """argmax (single-label) or logits > 0, i.e. sigmoid > 0.5 (multi-label) -> numpy."""
    return (logits > 0).int().cpu().numpy() if multi_label else logits.argmax(1).cpu().numpy()


@torch.no_grad()
def nc_test(model, inputs, splits, data, device, amp=False):
    """Macro/micro-F1 of the test nodes -> ({"test_macro_f1", "test_micro_f1"}, predictions)."""
    model.eval()
    with autocast(device, amp):
        logits = model(inputs.features, inputs.graph).float()[splits.test]
    pred = nc_predict(logits, data.multi_label)
    f1 = f1_scores(splits.test_labels, pred, data.num_classes, data.multi_label)
    return {"test_macro_f1": f1["macro_f1"], "test_micro_f1": f1["micro_f1"]}, pred


def lp_candidates(data, pos, rng, device):
    """Positives (M, 3) [head, tail, rel] plus one uniform random tail of the right type per positive (the
    official train/valid negatives, no collision check) -> left, right, rel, labels tensors of length 2M."""
    neg = pos.copy()
    for r in np.unique(pos[:, 2]):
        m = pos[:, 2] == r
        neg[m, 1] = sample_random_negatives(pos[m, 0], data.type_range(int(data.link_meta[r, 1])), rng)
    both = np.concatenate([pos, neg])
    t = torch.as_tensor(both, device=device)
    labels = torch.cat([torch.ones(len(pos)), torch.zeros(len(neg))]).to(device)
    return t[:, 0], t[:, 1], t[:, 2], labels


def official_candidates(data, relation):
    """`<dataset>_ini_<r>_label.txt` when the release ships it (rows: heads, tails[, labels]); labels of a
    two-row file are whether the pair is in link.dat.test (what the leaderboard scorer checks)."""
    path = data.root / f"{data.name}_ini_{relation}_label.txt"
    if not path.exists():
        return None
    rows = np.loadtxt(path, dtype=np.int64, ndmin=2)
    heads, tails = rows[0], rows[1]
    if len(rows) > 2:
        return heads, tails, rows[2]
    test = data.test_links[data.test_links[:, 2] == relation]
    return heads, tails, np.isin(heads * data.num_nodes + tails, test[:, 0] * data.num_nodes + test[:, 1])


@torch.no_grad()
def lp_test(model, inputs, data, relations, device, amp=False):
    """ROC-AUC and MRR per test relation, averaged, on the 2-hop negatives (the leaderboard setting, or the
    official candidate file) and on random negatives. Returns (metrics, (heads, tails, rels, scores) of the
    2-hop candidates, for the submission file)."""
    model.eval()
    with autocast(device, amp):
        emb = model.embed(inputs.features, inputs.graph).float()

    def score(heads, tails, r):
        t = lambda a: torch.as_tensor(a, device=device)  # noqa: E731
        rel = torch.full((len(heads),), int(r), device=device)
        return torch.sigmoid(model.score(emb, t(heads), t(tails), rel)).cpu().numpy()

    metrics, scored = {}, []
    for name, sampler in (("", test_negatives_two_hop), ("random_", test_negatives_random)):
        cols = {"rel": [], "head": [], "tail": [], "label": [], "score": []}
        for r in relations:
            cand = official_candidates(data, r) if name == "" else None
            heads, tails, labels = cand if cand is not None else sampler(data, r, seed=1)
            for k, v in zip(("rel", "head", "tail", "label", "score"),
                            (np.full(len(heads), r), heads, tails, labels, score(heads, tails, r)), strict=True):
                cols[k].append(v)
        cols = {k: np.concatenate(v) for k, v in cols.items()}
        res = lp_scores_per_relation(cols["rel"], cols["head"], cols["label"], cols["score"])
        metrics[f"test_{name}roc_auc"], metrics[f"test_{name}mrr"] = res["roc_auc"], res["mrr"]
        if name == "":
            scored = (cols["head"], cols["tail"], cols["rel"], cols["score"])
    return metrics, scored

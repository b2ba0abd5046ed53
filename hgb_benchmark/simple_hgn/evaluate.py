"""Losses, test-time scoring and the HGB metrics, shared by train.py (after training) and eval.py."""
import numpy as np
import torch
import torch.nn.functional as F

from common.data.hgb import sample_random_negatives, test_negatives_random, test_negatives_two_hop
from common.errors import DataError
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


TEST_SETTINGS = (("", "2-hop"), ("random_", "random"))  # metric-name prefix, negatives


def lp_test_sets(data, relations):
    """The LP test candidates, before any training: {prefix: {relation: (heads, tails, labels)}} for the 2-hop
    negatives (prefix "", the leaderboard setting, or the official candidate file) and the random ones."""
    sets = {}
    for prefix, _ in TEST_SETTINGS:
        sampler = test_negatives_two_hop if prefix == "" else test_negatives_random
        sets[prefix] = {}
        for r in relations:
            cand = official_candidates(data, r) if prefix == "" else None
            sets[prefix][r] = cand if cand is not None else sampler(data, r, seed=1)
    return sets


def check_lp_test_sets(data, sets, log=None):
    """Report every (setting, relation) whose candidate set has no negative or no positive, before training.

    Such a relation cannot be scored (ROC-AUC needs both labels): it is left out of that setting's mean. A
    relation whose head type reaches no node of its tail type in two steps (e.g. paper-author in a star schema
    around papers) has no 2-hop negatives at all. Raises ValueError when no setting has a relation left to
    score (a `DataError` naming link.dat.test); returns {prefix: [unscorable relations]}.
    """
    empty = {}
    for prefix, what in TEST_SETTINGS:
        empty[prefix] = []
        for r, (_heads, _, labels) in sets[prefix].items():
            n_pos, n_neg = int((labels != 0).sum()), int((labels == 0).sum())
            if n_pos and n_neg:
                continue
            empty[prefix].append(r)
            a, b = (int(t) for t in data.link_meta[r])
            name = data.edge_type_names[r] if r < len(data.edge_type_names) else f"{a}-{b}"
            msg = (f"relation {r} ({name}): the {what} test set has {n_pos} positives and {n_neg} negatives, so "
                   f"its {what} ROC-AUC/MRR are not computed")
            if what == "2-hop" and not n_neg:
                msg += (f" (no node of type {b} is two links away from a head of type {a}: the relation's "
                        f"endpoints have no 2-hop paths)")
            if log is not None:
                log.warning(msg)
    if all(len(empty[p]) == len(sets[p]) for p, _ in TEST_SETTINGS):
        raise DataError(data.root / "link.dat.test", f"expected a test relation with both positive and negative "
                        f"candidates; none of relations {sorted(sets[''])} has any, so nothing can be scored")
    return empty


@torch.no_grad()
def lp_test(model, inputs, data, relations, device, amp=False, sets=None):
    """ROC-AUC and MRR per test relation, averaged, on the 2-hop negatives (the leaderboard setting, or the
    official candidate file) and on random negatives; a relation whose candidates lack positives or
    negatives is left out of its setting (see `check_lp_test_sets`), and a setting with no relation left
    has no metrics. `test_<prefix>relations` counts the relations each mean is over. Returns (metrics,
    (heads, tails, rels, scores) of the 2-hop candidates, for the submission file)."""
    sets = lp_test_sets(data, relations) if sets is None else sets
    empty = check_lp_test_sets(data, sets)
    model.eval()
    with autocast(device, amp):
        emb = model.embed(inputs.features, inputs.graph).float()

    def score(heads, tails, r):
        t = lambda a: torch.as_tensor(a, device=device)  # noqa: E731
        rel = torch.full((len(heads),), int(r), device=device)
        return torch.sigmoid(model.score(emb, t(heads), t(tails), rel)).cpu().numpy()

    metrics, scored = {}, None
    for prefix, _ in TEST_SETTINGS:
        cols = {"rel": [np.zeros(0, np.int64)], "head": [np.zeros(0, np.int64)], "tail": [np.zeros(0, np.int64)],
                "label": [np.zeros(0, np.int64)], "score": [np.zeros(0, np.float32)]}
        for r, (heads, tails, labels) in sets[prefix].items():
            if r in empty[prefix]:
                continue
            for k, v in zip(("rel", "head", "tail", "label", "score"),
                            (np.full(len(heads), r), heads, tails, labels, score(heads, tails, r)), strict=True):
                cols[k].append(v)
        cols = {k: np.concatenate(v) for k, v in cols.items()}
        metrics[f"test_{prefix}relations"] = len(sets[prefix]) - len(empty[prefix])
        if len(cols["rel"]):
            res = lp_scores_per_relation(cols["rel"], cols["head"], cols["label"], cols["score"])
            metrics[f"test_{prefix}roc_auc"], metrics[f"test_{prefix}mrr"] = res["roc_auc"], res["mrr"]
        if prefix == "":
            scored = (cols["head"], cols["tail"], cols["rel"], cols["score"])
    return metrics, scored

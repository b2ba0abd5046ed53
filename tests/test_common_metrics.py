"""common/metrics: F1 against scikit-learn, ROC-AUC against scikit-learn, MRR against hand-computed values and a
slow copy of HGB's per-head loop."""
import warnings

import numpy as np
import pytest
from sklearn.metrics import f1_score, roc_auc_score

from common.metrics.classification import f1_scores
from common.metrics.ranking import lp_scores_per_relation, mrr, roc_auc


def sklearn_f1(t, p, c, multi_label):
    """HGB's evaluate: sklearn f1_score on indicator matrices."""
    if not multi_label:
        t, p = np.eye(c, dtype=int)[t], np.eye(c, dtype=int)[p]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")                     # zero_division warnings
        return {"macro_f1": f1_score(t, p, average="macro"), "micro_f1": f1_score(t, p, average="micro")}


@pytest.mark.parametrize("seed", range(5))
def test_f1_single_label_matches_sklearn(seed):
    rng = np.random.default_rng(seed)
    c = 5
    t = rng.integers(0, c, 60)
    p = np.where(rng.random(60) < 0.6, t, rng.integers(0, c, 60))
    p[p == 4] = 0                                           # class 4 never predicted
    t[t == 3], p[p == 3] = 1, 2                             # class 3 neither true nor predicted
    got = f1_scores(t, p, c)
    want = sklearn_f1(t, p, c, False)
    for k in want:
        assert got[k] == pytest.approx(want[k], abs=1e-12)
    assert got["micro_f1"] == pytest.approx((t == p).mean())   # micro-F1 = accuracy


@pytest.mark.parametrize("seed", range(5))
def test_f1_multi_label_matches_sklearn(seed):
    rng = np.random.default_rng(seed)
    t = (rng.random((50, 5)) < 0.35).astype(int)
    p = np.where(rng.random((50, 5)) < 0.7, t, 1 - t)
    t[:, 2], p[:, 2] = 0, 0                                 # an absent class
    p[:, 4] = 0                                             # a never-predicted class
    p[:3] = 0                                               # rows with no predicted label
    got = f1_scores(t, p, 5, multi_label=True)
    want = sklearn_f1(t, p, 5, True)
    for k in want:
        assert got[k] == pytest.approx(want[k], abs=1e-12)


def test_f1_edge_cases():
    assert f1_scores([0, 1, 2], [0, 1, 2], 3) == {"macro_f1": 1.0, "micro_f1": 1.0}
    # 4 classes, class 3 absent everywhere: counts as 0 in the macro mean (sklearn's default)
    assert f1_scores([0, 1, 2], [0, 1, 2], 4)["macro_f1"] == pytest.approx(0.75)
    assert f1_scores(np.zeros((2, 3)), np.zeros((2, 3)), 3, multi_label=True) == {"macro_f1": 0.0, "micro_f1": 0.0}
    with pytest.raises(ValueError, match="class ids"):
        f1_scores([0, 3], [0, 1], 3)
    with pytest.raises(ValueError, match="indicator"):
        f1_scores([0, 1], [0, 1], 2, multi_label=True)


@pytest.mark.parametrize("seed", range(4))
def test_roc_auc_matches_sklearn_with_ties(seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 200)
    s = rng.integers(0, 6, 200) + y                         # many ties
    assert roc_auc(y, s) == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    s = rng.normal(size=200) + y
    assert roc_auc(y, s) == pytest.approx(roc_auc_score(y, s), abs=1e-12)


def test_roc_auc_hand_values_and_errors():
    assert roc_auc([1, 0], [0.9, 0.1]) == 1.0
    assert roc_auc([1, 0], [0.1, 0.9]) == 0.0
    assert roc_auc([1, 0, 1, 0], [0.5, 0.5, 0.5, 0.5]) == 0.5
    with pytest.raises(ValueError, match="both"):
        roc_auc([1, 1], [0.2, 0.3])
    with pytest.raises(ValueError, match="finite"):
        roc_auc([1, 0], [np.nan, 0.3])


def test_mrr_hand_values():
    heads = [7, 7, 7, 7, 3, 3, 3, 5, 5]
    labels = [1, 0, 0, 0, 0, 1, 1, 0, 0]                   # head 5 has no positive: ignored
    scores = [0.5, 0.9, 0.7, 0.1, 0.8, 0.2, 0.6, 0.3, 0.4]
    # head 7: positive 0.5 below two negatives -> rank 2 -> 1/3; head 3: best positive 0.6 below 0.8 -> 1/2
    assert mrr(heads, labels, scores) == pytest.approx((1 / 3 + 1 / 2) / 2)
    # ties: optimistic gives them to the positive, pessimistic to the negative
    assert mrr([1, 1, 1], [1, 0, 0], [0.5, 0.5, 0.2]) == 1.0
    assert mrr([1, 1, 1], [1, 0, 0], [0.5, 0.5, 0.2], ties="pessimistic") == 0.5
    with pytest.raises(ValueError, match="positive"):
        mrr([1, 1], [0, 0], [0.1, 0.2])
    with pytest.raises(ValueError, match="ties"):
        mrr([1], [1], [0.1], ties="average")


def official_mrr(heads, labels, scores):
    """HGB LP data_loader.evaluate's loop (stable sort, so ties follow list order)."""
    rr = []
    for h in dict.fromkeys(heads):
        idx = [i for i, x in enumerate(heads) if x == h]
        lab = np.asarray(labels)[idx][np.argsort(-np.asarray(scores)[idx], kind="stable")]
        pos = np.flatnonzero(lab == 1)
        if len(pos):
            rr.append(1 / (1 + pos.min()))
    return np.mean(rr)


def test_mrr_matches_official_loop():
    rng = np.random.default_rng(0)
    heads = np.repeat(np.arange(40), 6)
    labels = np.tile([1, 1, 0, 0, 0, 0], 40)                # positives listed first, as HGB's test sets
    labels[:6] = 0                                          # a head without positives
    scores = rng.normal(size=240)
    assert mrr(heads, labels, scores) == pytest.approx(official_mrr(heads, labels, scores))
    scores = rng.integers(0, 3, 240).astype(float)          # ties: the stable official order is optimistic
    assert mrr(heads, labels, scores) == pytest.approx(official_mrr(heads, labels, scores))


def test_lp_scores_per_relation_means_over_relations():
    rel = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    heads = np.array([1, 1, 2, 2, 1, 1, 1, 1])
    labels = np.array([1, 0, 1, 0, 1, 1, 0, 0])
    scores = np.array([0.9, 0.1, 0.2, 0.8, 0.3, 0.9, 0.5, 0.1])
    out = lp_scores_per_relation(rel, heads, labels, scores)
    # relation 0: positives 0.9 and 0.2 beat 2 and 1 of the negatives {0.1, 0.8}; heads 1 -> 1, 2 -> 1/2
    assert out["per_relation"][0] == {"roc_auc": 0.75, "mrr": 0.75}
    assert out["per_relation"][1] == {"roc_auc": 0.75, "mrr": 1.0}
    assert out["roc_auc"] == pytest.approx(0.75)
    assert out["mrr"] == pytest.approx(0.875)


def test_mean_std_over_runs():
    from common.metrics.summary import mean_std

    out = mean_std([{"f1": 0.9, "auc": 0.5}, {"f1": 0.7, "auc": 0.7}], count_key="seeds")
    assert out == pytest.approx({"f1": 0.8, "f1_std": 0.1, "auc": 0.6, "auc_std": 0.1, "seeds": 2})
    assert mean_std([{"f1": 0.9}]) == {"f1": 0.9, "repeats": 1}  # no std key for one run
    with pytest.raises(ValueError):
        mean_std([])

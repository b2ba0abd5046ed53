"""common/metrics/accuracy.py against scikit-learn and hand-computed values."""
import numpy as np
import pytest
import torch
from sklearn.metrics import recall_score, top_k_accuracy_score

from common.metrics.accuracy import per_class_recall, topk_accuracy, topk_correct


def test_topk_hand_computed():
    logits = torch.tensor([[0.1, 0.5, 0.4], [0.9, 0.05, 0.05], [0.2, 0.3, 0.5]])
    targets = torch.tensor([2, 0, 0])
    assert topk_correct(logits, targets, (1, 2, 3)) == [1, 2, 3]
    assert topk_accuracy(logits, targets, (1, 2)) == pytest.approx([1 / 3, 2 / 3])


def test_topk_matches_sklearn():
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(200, 10))
    y = rng.integers(0, 10, 200)
    for k in (1, 5):
        ours = topk_accuracy(torch.from_numpy(scores), torch.from_numpy(y), (k,))[0]
        assert ours == pytest.approx(top_k_accuracy_score(y, scores, k=k, labels=np.arange(10)))


def test_per_class_recall_matches_sklearn():
    rng = np.random.default_rng(1)
    y, p = rng.integers(0, 6, 300), rng.integers(0, 6, 300)
    np.testing.assert_allclose(per_class_recall(y, p, 6), recall_score(y, p, average=None, labels=np.arange(6)))
    out = per_class_recall(np.array([0, 0, 1]), np.array([0, 1, 1]), 3)
    assert out[:2].tolist() == [0.5, 1.0] and np.isnan(out[2])  # class 2 has no sample

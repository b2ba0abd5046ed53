"""Top-k accuracy and per-class recall, identical to scikit-learn's `top_k_accuracy_score` / `recall_score`.

Top-k counts a sample as correct when its true class is among the k highest scores. Ties are broken the way
`torch.topk` breaks them (scikit-learn counts a tie at the k-th place as correct); with float logits from a
network exact ties do not occur.
"""
import numpy as np
import torch


def topk_correct(logits, targets, ks=(1, 5)):
    """Number of correct samples for each k: logits (B, C), targets (B,) -> list of ints, one per k."""
    maxk = min(max(ks), logits.shape[1])
    pred = logits.topk(maxk, dim=1).indices                  # (B, maxk)
    hit = pred.eq(targets.view(-1, 1))                        # (B, maxk) bool
    return [int(hit[:, :min(k, maxk)].any(dim=1).sum()) for k in ks]


def topk_accuracy(logits, targets, ks=(1, 5)):
    """Fractions in [0, 1] of samples whose label is in the top k, for each k in `ks`."""
    n = max(len(targets), 1)
    return [c / n for c in topk_correct(torch.as_tensor(logits), torch.as_tensor(targets), ks)]


def per_class_recall(y_true, y_pred, num_classes):
    """Recall of each class (N,) ids -> (C,) float64; a class with no sample gets NaN (sklearn warns, gives 0)."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    support = np.bincount(y_true, minlength=num_classes).astype(np.float64)
    hits = np.bincount(y_true[y_true == y_pred], minlength=num_classes).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(support > 0, hits / support, np.nan)

"""Metrics of the GLUE / SuperGLUE / text-classification tasks, numbers as the official scorers compute them.

Accuracy and macro-F1 reuse `common.metrics.classification.f1_scores` (micro-F1 = accuracy for one label per
example); F1 of the positive class (MRPC, QQP), Matthews correlation (CoLA) and MultiRC's EM / F1a are here.
"""
import numpy as np

from .classification import f1_scores


def binary_f1(y_true, y_pred):
    """F1 of class 1 (sklearn `f1_score(average='binary')`): 2TP / (2TP + FP + FN), 0 when undefined."""
    t, p = np.asarray(y_true) == 1, np.asarray(y_pred) == 1
    tp, fp, fn = (t & p).sum(), (~t & p).sum(), (t & ~p).sum()
    return float(2 * tp / (2 * tp + fp + fn)) if (2 * tp + fp + fn) > 0 else 0.0


def matthews_corrcoef(y_true, y_pred):
    """Binary Matthews correlation (sklearn `matthews_corrcoef`), 0 when a marginal is constant."""
    t, p = np.asarray(y_true) == 1, np.asarray(y_pred) == 1
    tp, tn = float((t & p).sum()), float((~t & ~p).sum())
    fp, fn = float((~t & p).sum()), float((t & ~p).sum())
    denom = np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    return float((tp * tn - fp * fn) / denom) if denom > 0 else 0.0


def multirc_scores(y_true, y_pred, groups):
    """MultiRC (SuperGLUE scorer): EM = share of questions whose answer options are all predicted right;
    F1a = binary F1 over all answer options pooled."""
    y_true, y_pred, groups = np.asarray(y_true), np.asarray(y_pred), np.asarray(groups)
    right = y_true == y_pred
    em = float(np.mean([right[groups == g].all() for g in np.unique(groups)])) if len(groups) else 0.0
    return {"exact_match": em, "f1a": binary_f1(y_true, y_pred)}


def task_metrics(metric_names, y_true, y_pred, num_classes, groups=None):
    """The named metrics (accuracy, macro_f1, f1, mcc, exact_match, f1a) as fractions, plus accuracy always."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    f1 = f1_scores(y_true, y_pred, num_classes)
    out = {"accuracy": f1["micro_f1"]}
    for name in metric_names:
        if name == "macro_f1":
            out[name] = f1["macro_f1"]
        elif name == "f1":
            out[name] = binary_f1(y_true, y_pred)
        elif name == "mcc":
            out[name] = matthews_corrcoef(y_true, y_pred)
        elif name in ("exact_match", "f1a"):
            if groups is None:
                raise ValueError("MultiRC metrics need the question group of every answer option")
            out[name] = multirc_scores(y_true, y_pred, groups)[name]
        elif name != "accuracy":
            raise ValueError(f"unknown metric {name!r}")
    return out

"""Classification metrics, numbers identical to scikit-learn's (the tool HGB's evaluation calls)."""
import numpy as np


def f1_scores(y_true, y_pred, num_classes, multi_label=False):
    """Macro- and micro-F1 as HGB reports them: sklearn `f1_score(Y_true, Y_pred, average=...)` on (N, C)
    one-hot / multi-hot indicator matrices (HGB's data_loader.evaluate).

    y_true, y_pred: (N,) class ids in [0, num_classes), or (N, C) 0/1 indicators when multi_label.
    Per class F1 = 2TP / (2TP + FP + FN); a class with TP + FP + FN = 0 (never true, never predicted) scores 0
    and still counts in the macro mean over all num_classes classes (sklearn's default zero_division).
    Micro-F1 pools TP, FP, FN over classes (= accuracy for single-label). Returns fractions in [0, 1].
    """
    t = _indicator(y_true, num_classes, multi_label, "y_true")     # (N, C) bool
    p = _indicator(y_pred, num_classes, multi_label, "y_pred")
    if len(t) != len(p):
        raise ValueError(f"y_true has {len(t)} rows, y_pred {len(p)}")
    tp = (t & p).sum(0)
    fp = (~t & p).sum(0)
    fn = (t & ~p).sum(0)
    denom = 2 * tp + fp + fn                                        # (C,)
    per_class = np.where(denom > 0, 2 * tp / np.maximum(denom, 1), 0.0)
    micro = 2 * tp.sum() / denom.sum() if denom.sum() > 0 else 0.0
    return {"macro_f1": float(per_class.mean()), "micro_f1": float(micro)}


def _indicator(y, num_classes, multi_label, name):
    y = np.asarray(y)
    if multi_label:
        if y.ndim != 2 or y.shape[1] != num_classes:
            raise ValueError(f"{name}: expected a (N, {num_classes}) indicator matrix, got shape {y.shape}")
        return y != 0
    if y.ndim != 1:
        raise ValueError(f"{name}: expected (N,) class ids, got shape {y.shape}")
    if len(y) and (y.min() < 0 or y.max() >= num_classes):
        raise ValueError(f"{name}: class ids must lie in [0, {num_classes})")
    return y[:, None] == np.arange(num_classes)[None, :]

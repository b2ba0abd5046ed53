"""Losses of the two stages (official `dyn_slim/apis/train_slim.py`, `train_slim_gate.py` @ 15cd303).

Stage I, in-place bootstrapping (IB): the largest sub-network learns from the labels (label-smoothed CE); every
other sampled sub-network learns the softmax of the *EMA* supernet's largest sub-network (soft-target CE).
In-place ensemble bootstrapping (IEB, `ensemble_ib`): the smallest learns the mean softmax of the EMA largest and
the EMA random sub-networks.

Stage II, sandwich gate sparsification (SGS): the online gate target of a sample is the slimmest route if the
smallest sub-network classifies it correctly, else the widest route; loss = gate CE + task CE of the dynamic
network (through straight-through Gumbel) + 0.5 (MAdds / 1e9)^2.

MvCo (DS-ViT++ Stage I, `mvco`): every image comes as V augmented views; the bootstrap target is the EMA largest
sub-network's softmax averaged over the views (`mvco_target`), and every sampled sub-network adds the consistency of
its own predictions across the views (`mvco_consistency`, weight `mvco_weight`).
"""
import torch
import torch.nn.functional as F

GATE_TARGETS = ("smallest", "sandwich")
GATE_CE_INPUTS = ("probabilities", "logits")


def label_smoothing_ce(logits, target, smoothing=0.1):
    """timm `LabelSmoothingCrossEntropy`: (1 - s) NLL + s mean_c(-log p_c) (= PyTorch's label_smoothing)."""
    return F.cross_entropy(logits, target, label_smoothing=smoothing)


def soft_target_ce(logits, target_probs):
    """timm `SoftTargetCrossEntropy`: mean_b sum_c -q_bc log p_bc."""
    return -(target_probs * F.log_softmax(logits, 1)).sum(1).mean()


def sgs_targets(smallest_logits, y, num_routes, rule="smallest", largest_logits=None):
    """Gate targets (B,) and a (B,) bool of samples that carry one.

    rule "smallest" (official code): smallest correct -> 0 (slimmest route), else num_routes - 1 (widest).
    rule "sandwich" [assumption: the paper's SGS as recalled, §4.7.6]: smallest correct -> 0; smallest wrong and
    largest (of the routing space) correct -> widest; both wrong -> no gate target (the sample is left out).
    """
    easy = smallest_logits.argmax(1) == y
    target = torch.where(easy, 0, num_routes - 1)
    if rule == "smallest":
        return target, torch.ones_like(easy)
    hard_but_solvable = largest_logits.argmax(1) == y
    return target, easy | hard_but_solvable


def gate_loss(gate_outputs, target, keep, ce_input="probabilities", smoothing=0.1):
    """Mean over gates of label-smoothed CE(gate, target) on the kept samples.

    ce_input "probabilities" (official quirk): CE is applied to the Gumbel-softmax *probabilities*
    (`keep_gate`), i.e. they go through a second log-softmax; "logits": CE on the slimming head's logits.
    """
    losses = []
    for g in gate_outputs:
        scores = g.soft if ce_input == "probabilities" else g.logits
        if keep.any():
            losses.append(label_smoothing_ce(scores[keep], target[keep], smoothing))
        else:
            losses.append(scores.sum() * 0)
    return torch.stack(losses).mean()


def madds_loss(madds, unit=1e9):
    """Official complexity penalty (mean MAdds / unit)^2, differentiable through the gate's soft one-hot."""
    return (madds.float().mean() / unit) ** 2


def mvco_target(probs, views=1):
    """MvCo bootstrap target [paper-TPAMI abstract names MvCo; form recalled/assumed, notes §4.7.5]: the teacher's
    softmax averaged over the `views` augmented views of each image, the same target for every view.

    probs: (V * B, C), view-major (rows v * B .. (v + 1) * B - 1 are view v). Returns (V * B, C).
    """
    if views == 1:
        return probs
    mean = probs.view(views, -1, probs.shape[1]).mean(0)                   # (B, C)
    return mean.repeat(views, 1)


def mvco_consistency(logits, views=2):
    """Multi-view consistency of one sub-network [assumption: the consistency term's form is not retrieved]: the
    generalised Jensen-Shannon divergence of its predictions on the V views of each image,
    mean_b mean_v KL(p_v || p_bar), p_bar = mean_v p_v. Zero iff every view gets the same prediction (identical
    views give exactly 0), positive otherwise; gradients reach every view's logits.

    logits: (V * B, C), view-major.
    """
    log_p = F.log_softmax(logits.float(), 1).view(views, -1, logits.shape[1])  # (V, B, C)
    log_mean = torch.logsumexp(log_p, 0) - torch.log(torch.tensor(float(views)))  # log p_bar, (B, C)
    return (log_p.exp() * (log_p - log_mean)).sum(2).mean()

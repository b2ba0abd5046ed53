"""KD and IPWD losses (Niu et al., "Respecting Transfer Gap in Knowledge Distillation", NeurIPS 2022).

Notation: z_S student logits, z_T teacher logits, both (B, C); y (B,) labels; tau the temperature;
p^tau = softmax(z / tau).

* `kd_loss`           Hinton et al. 2015 as in RepDistiller's `DistillKL`:
                      tau^2 * KL(p_T^tau || p_S^tau), summed over classes, averaged over the batch.
* `propensity_weight` IPWD's inverse propensity weight w(x, y) = 1 / P(machine | x, y) from two heads on the
                      shared student backbone (derivation in README.md, section "The weight").
* `ipwd_loss`         gamma * CE(z_S, y) + alpha * mean_b[w_b * tau^2 * KL_b] + beta * CE(z_aux, y).
* `pskd_ipwd_loss`    the one-stage setting: PS-KD's progressive self-distillation (Kim et al., ICCV 2021),
                      target (1 - a_t) onehot(y) + a_t p_{t-1}(x), with the self-distillation term re-weighted.
"""
import torch
import torch.nn.functional as F

WEIGHT_FORMULAS = ("bayes", "ce_ratio", "summary_ce_ratio")
WEIGHT_NORMS = ("none", "batch_mean")


def kd_per_sample(student_logits, teacher_logits, temperature):
    """tau^2 * KL(p_T^tau || p_S^tau) per sample: (B, C), (B, C) -> (B,)."""
    log_p_s = F.log_softmax(student_logits / temperature, dim=1)
    log_p_t = F.log_softmax(teacher_logits / temperature, dim=1)
    return (log_p_t.exp() * (log_p_t - log_p_s)).sum(dim=1) * temperature ** 2


def kd_loss(student_logits, teacher_logits, temperature=4.0):
    """Batch mean of `kd_per_sample` (= RepDistiller's `KLDiv(size_average=False) * T^2 / B`)."""
    return kd_per_sample(student_logits, teacher_logits, temperature).mean()


def kd_objective(student_logits, teacher_logits, targets, temperature=4.0, ce_weight=0.1, kd_weight=0.9):
    """The KD baseline of the CRD protocol: gamma * CE + alpha * KD (RepDistiller `-r 0.1 -a 0.9`)."""
    ce = F.cross_entropy(student_logits, targets)
    kd = kd_loss(student_logits, teacher_logits, temperature)
    return ce_weight * ce + kd_weight * kd, {"ce": ce.detach(), "kd": kd.detach()}


def standardize_logits(logits, eps=1e-6):
    """Per-sample z-score over classes: (z - mean_c z) / (std_c z + eps), (B, C) -> (B, C).

    Puts the two heads' logits on one scale before they are compared; the paper's ablation (Table 5)
    reports this standardisation as essential to the weight estimate.
    """
    mean = logits.mean(dim=1, keepdim=True)
    std = logits.std(dim=1, keepdim=True, unbiased=False)
    return (logits - mean) / (std + eps)


def propensity_weight(machine_logits, human_logits, targets, formula="bayes", standardize=True, clip=0.0,
                      normalize="none", detach=True):
    """Inverse propensity weight of each sample, (B, C), (B, C), (B,) -> (B,).

    machine_logits: the student head trained on the teacher's soft targets (machine domain).
    human_logits:   the auxiliary head trained with CE on ground truth (human domain).
    With p_m = softmax(z_m)[y] and p_h = softmax(z_h)[y] (after `standardize_logits` when `standardize`),
    each head's likelihood of the observed pair (x, y) in its domain, and equal domain priors, Bayes' rule gives
    the propensity P(machine | x, y) = p_m / (p_m + p_h), whose inverse is the weight:

        "bayes" (default):    w = 1 + p_h / p_m = 1 + exp(H_m - H_h),   H = -log p (cross-entropy)
        "ce_ratio":           w = 1 + H_m / H_h   (a cross-entropy-ratio surrogate, same direction)
        "summary_ce_ratio":   w = 1 + H_h / H_m   (the formula of a secondary summary of the paper; it gives
                                                   *smaller* weights to under-represented samples - kept only
                                                   to compare, see README)

    A sample the machine domain under-represents (the distilled head fits its label worse than the human head)
    gets w > 2; an over-represented one gets w -> 1. Options: `clip` > 0 caps w at that value; `normalize`
    "batch_mean" rescales to batch mean 1 ("none": as is); `detach` stops gradients through w (the weight is a
    fixed importance weight).
    """
    if formula not in WEIGHT_FORMULAS:
        raise ValueError(f"formula must be one of {WEIGHT_FORMULAS}, got {formula!r}")
    if normalize not in WEIGHT_NORMS:
        raise ValueError(f"normalize must be one of {WEIGHT_NORMS}, got {normalize!r}")
    if standardize:
        machine_logits, human_logits = standardize_logits(machine_logits), standardize_logits(human_logits)
    h_m = F.cross_entropy(machine_logits, targets, reduction="none")   # (B,) = -log p_m
    h_h = F.cross_entropy(human_logits, targets, reduction="none")     # (B,) = -log p_h
    if formula == "bayes":
        w = 1.0 + torch.exp(h_m - h_h)
    elif formula == "ce_ratio":
        w = 1.0 + h_m / h_h.clamp_min(1e-8)
    else:
        w = 1.0 + h_h / h_m.clamp_min(1e-8)
    if detach:
        w = w.detach()
    if clip > 0:
        w = w.clamp(max=clip)
    if normalize == "batch_mean":
        w = w / w.mean()
    return w


def ipwd_loss(student_logits, aux_logits, teacher_logits, targets, temperature=4.0, ce_weight=0.1, kd_weight=0.9,
              aux_weight=1.0, **weight_options):
    """Two-stage IPWD: gamma CE(z_S, y) + alpha mean_b[w_b tau^2 KL_b] + beta CE(z_aux, y).

    `weight_options` go to `propensity_weight` (formula, standardize, clip, normalize, detach).
    Returns (loss, logs) with the mean weight and the unweighted parts for logging.
    """
    w = propensity_weight(student_logits, aux_logits, targets, **weight_options)        # (B,)
    ce = F.cross_entropy(student_logits, targets)
    kd = kd_per_sample(student_logits, teacher_logits, temperature)                    # (B,)
    aux = F.cross_entropy(aux_logits, targets)
    loss = ce_weight * ce + kd_weight * (w * kd).mean() + aux_weight * aux
    return loss, {"ce": ce.detach(), "kd": kd.mean().detach(), "aux_ce": aux.detach(), "weight": w.mean().detach()}


def kd_mean_weight_loss(student_logits, aux_logits, teacher_logits, targets, temperature=4.0, ce_weight=0.1,
                        kd_weight=0.9, aux_weight=1.0, **weight_options):
    """The scale control of IPWD: `ipwd_loss` with every w_b replaced by the batch mean of the weights,
    gamma CE(z_S, y) + alpha mean_b(w) mean_b[tau^2 KL_b] + beta CE(z_aux, y).

    Same heads, same weight estimate and the same total KD weight per batch as IPWD; only the spread of the
    weight over the samples is removed. With `normalize="batch_mean"` the factor is 1: plain KD plus the head.
    """
    w = propensity_weight(student_logits, aux_logits, targets, **weight_options).detach()   # (B,)
    ce = F.cross_entropy(student_logits, targets)
    kd = kd_per_sample(student_logits, teacher_logits, temperature)                            # (B,)
    aux = F.cross_entropy(aux_logits, targets)
    loss = ce_weight * ce + kd_weight * w.mean() * kd.mean() + aux_weight * aux
    return loss, {"ce": ce.detach(), "kd": kd.mean().detach(), "aux_ce": aux.detach(), "weight": w.mean()}


def soft_cross_entropy(logits, target_probs):
    """-sum_c q_c log softmax(z)_c per sample: (B, C), (B, C) -> (B,)."""
    return -(target_probs * F.log_softmax(logits, dim=1)).sum(dim=1)


def pskd_alpha(epoch, epochs, alpha_T=0.8):
    """PS-KD's schedule a_t = alpha_T * (t + 1) / T for 0-based epoch t (Kim et al., ICCV 2021: alpha grows
    linearly over training)."""
    return alpha_T * (epoch + 1) / epochs


def pskd_ipwd_loss(logits, aux_logits, prev_probs, targets, alpha, use_ipwd, aux_weight=1.0, **weight_options):
    """One-stage self-distillation: PS-KD, optionally with IPWD weights on the self-distillation term.

    PS-KD's loss CE(z, (1 - a) onehot(y) + a p_prev) splits into (1 - a) CE(z, y) + a CE(z, p_prev); IPWD
    multiplies the second (machine-domain) term by w (from the main head = self-distilled, and the auxiliary
    CE head). prev_probs (B, C): the model's own softmax of the previous epoch for these samples.
    """
    ce = F.cross_entropy(logits, targets, reduction="none")           # (B,)
    sd = soft_cross_entropy(logits, prev_probs)                         # (B,)
    if use_ipwd:
        w = propensity_weight(logits, aux_logits, targets, **weight_options)
    else:
        w = torch.ones_like(ce)
    aux = F.cross_entropy(aux_logits, targets)
    loss = ((1 - alpha) * ce + alpha * w * sd).mean() + aux_weight * aux
    return loss, {"ce": ce.mean().detach(), "kd": sd.mean().detach(), "aux_ce": aux.detach(),
                  "weight": w.mean().detach()}

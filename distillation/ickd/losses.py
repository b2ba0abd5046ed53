"""ICKD losses (Liu et al., "Exploring Inter-Channel Correlation for Diversity-preserved Knowledge
Distillation", ICCV 2021; official code ADLab-AutoDrive/ICKD @ 403b8d3).

Notation: f (B, C, H, W) a feature map, F = f reshaped to (B, C, HW).

* `icc_matrix`   the inter-channel correlation G = F F^T per sample, (B, C, C); the official code L2-normalises
                 each row (`F.normalize(G, dim=2)`), the paper's Eq. does not.
* `icc_loss`     sum_b ||G_S,b - G_T,b||_F^2 divided by
                   "c_b"   C * B        official CIFAR-100 code (Cifar100/distiller_zoo/ICKD.py, ICKDLoss.batch_loss)
                   "c_b2"  C * B^2      official ImageNet code (ImageNet/torchdistill/losses/single.py, ChSimLoss)
                   "c2_b"  C^2 * B      the paper's L_CC = 1/C^2 ||G^T - G^S||_F^2, averaged over the batch
                 with row normalisation for the two official forms; `paper_exact=True` is the paper's form
                 (c2_b, no row normalisation).
* `grid_icc_loss` grid-level ICC for dense prediction: the map is cut into n x m spatial cells, an ICC loss is
                 computed per cell and the cells are averaged (paper Sec. 3.3); a 1 x 1 grid is the global loss.
* `kd_loss`      Hinton KD as RepDistiller's DistillKL: tau^2 KL(p_T^tau || p_S^tau), batch mean.
* `ickd_objective` beta_CE CE + beta_1 KD + beta_2 L_CC (the official `-r`, `-a`, `-b`).
"""
import torch
import torch.nn.functional as F

REDUCTIONS = ("c_b", "c_b2", "c2_b")


def icc_matrix(feat, normalize_rows=True):
    """Inter-channel correlation of each sample: (B, C, H, W) -> (B, C, C), G = F F^T with F (B, C, HW)."""
    f = feat.flatten(2)                                   # (B, C, HW)
    gram = torch.bmm(f, f.transpose(1, 2))                # (B, C, C)
    return F.normalize(gram, dim=2) if normalize_rows else gram


def icc_loss(f_s, f_t, reduction="c_b", normalize_rows=True, paper_exact=False):
    """ICC loss between the embedded student map f_s and the teacher map f_t, both (B, C, H, W) -> scalar.

    `paper_exact` overrides the two options with the paper's form (reduction "c2_b", no row normalisation).
    """
    if paper_exact:
        reduction, normalize_rows = "c2_b", False
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    if f_s.shape != f_t.shape:
        raise ValueError(f"student (after the embed) and teacher maps differ: {tuple(f_s.shape)} vs {tuple(f_t.shape)}")
    b, c = f_s.shape[:2]
    diff = icc_matrix(f_s, normalize_rows) - icc_matrix(f_t, normalize_rows)   # (B, C, C)
    divisor = {"c_b": c * b, "c_b2": c * b * b, "c2_b": c * c * b}[reduction]
    return (diff * diff).sum() / divisor


def grid_cells(feat, grid):
    """Cut (B, C, H, W) into grid = (n, m) cells along H and W (as even as torch.tensor_split makes them)."""
    n, m = grid
    for rows in torch.tensor_split(feat, n, dim=2):
        yield from torch.tensor_split(rows, m, dim=3)


def grid_icc_loss(f_s, f_t, grid=(1, 1), **options):
    """Grid-level ICC: the mean over the n x m cells of `icc_loss` on each cell (options as icc_loss)."""
    if grid[0] > f_s.shape[2] or grid[1] > f_s.shape[3]:
        raise ValueError(f"grid {tuple(grid)} is finer than the {f_s.shape[2]}x{f_s.shape[3]} feature map")
    losses = [icc_loss(s, t, **options) for s, t in zip(grid_cells(f_s, grid), grid_cells(f_t, grid), strict=True)]
    return torch.stack(losses).mean()


def kd_loss(student_logits, teacher_logits, temperature=4.0):
    """tau^2 KL(softmax(z_T/tau) || softmax(z_S/tau)), summed over classes, averaged over the batch."""
    log_p_s = F.log_softmax(student_logits / temperature, dim=1)
    log_p_t = F.log_softmax(teacher_logits / temperature, dim=1)
    return (log_p_t.exp() * (log_p_t - log_p_s)).sum(dim=1).mean() * temperature ** 2


def ickd_objective(student_logits, teacher_logits, f_s, f_t, targets, *, ce_weight=1.0, kd_weight=0.0,
                   icc_weight=2.5, temperature=4.0, grid=(1, 1), **icc_options):
    """beta_CE CE(z_S, y) + beta_1 KD(z_S, z_T) + beta_2 L_CC(f_s, f_t); returns (loss, logs).

    Official weights: CIFAR-100 ICKD-C `-r 1 -a 0 -b 2.5` (with KL: `-a 1`), tau 4; ImageNet R34 -> R18
    torchdistill KDLoss(T=1, alpha=0.5) = 0.5 CE + 0.5 KL, plus ChSimLoss factor 500.
    """
    ce = F.cross_entropy(student_logits, targets)
    kd = kd_loss(student_logits, teacher_logits, temperature) if kd_weight else student_logits.new_zeros(())
    icc = grid_icc_loss(f_s, f_t, grid, **icc_options)
    loss = ce_weight * ce + kd_weight * kd + icc_weight * icc
    return loss, {"ce": ce.detach(), "kd": kd.detach(), "icc": icc.detach()}

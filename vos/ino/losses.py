"""INO's losses: out-generative ([CLS] distillation across frames and crops) and in-generative (masked patch
distillation + affinity consistency between frames). Reconstructed from the official `losses.py` (the paper's
PDF was not available; see ../../shared/research/vos.md section 1.4 and the README).

Notation: K prototypes, teacher distribution P_t(z) = softmax((z - c) / tau_t) with an EMA centre c, student
log-distribution log P_s(z) = log_softmax(z / tau_s), CE(p, q) = -sum_k p_k log q_k.

- Out-generative (L_out = L_g2g + L_l2g): frames are paired (t, t + T/2). For a pair (a, b) the teacher
  targets are P_t(g_a), P_t(g_b) of the clean global crops; the student views are the (masked) globals
  g~_a, g~_b and all local crops of both frames. Every target is matched to every student view except the
  student global of the same frame, averaged over the 2 (2 + 2L) - 2 terms; then averaged over pairs. The
  [CLS] centre is updated after every pair.
- In-generative MIM (L_mim): at masked patch positions, CE(P_t^patch(teacher token), P_s(student token)),
  averaged over frames, clips and masked positions; its own centre, updated after every frame from that
  frame's masked teacher tokens.
- In-generative affinity (L_aff): L2-normalised head outputs at the masked positions; frame-to-frame
  affinities A^t = Z^t Z^{t+1 T} (n x n) of teacher and student; CE(softmax(A_t / 0.04), log_softmax(A_s / 0.1))
  per row, averaged over clips, consecutive frame pairs and rows. No centring.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from common.distributed import all_reduce_mean


def soft_cross_entropy(target_probs, student_logits, student_temp):
    """-sum_k p_k log_softmax(s / tau_s)_k over the last dimension."""
    return -(target_probs * F.log_softmax(student_logits / student_temp, dim=-1)).sum(-1)


class Centre(nn.Module):
    """The teacher centre c (a buffer, saved with the loss) and the centred, sharpened teacher softmax."""

    def __init__(self, dim, momentum=0.9):
        super().__init__()
        self.momentum = momentum
        self.register_buffer("center", torch.zeros(1, dim))

    def teacher_probs(self, teacher_logits, temp):
        return F.softmax((teacher_logits - self.center) / temp, dim=-1)

    @torch.no_grad()
    def update(self, teacher_logits):
        """c <- m c + (1 - m) mean(teacher outputs), the mean all-reduced over processes."""
        flat = teacher_logits.detach().float().reshape(-1, teacher_logits.shape[-1])
        if len(flat) == 0:
            return
        batch_center = all_reduce_mean(flat.mean(0, keepdim=True))
        self.center.mul_(self.momentum).add_(batch_center, alpha=1 - self.momentum)


def out_generative_loss(teacher_cls, student_global, student_local, centre, teacher_temp, student_temp=0.1):
    """L_out = L_g2g + L_l2g on [CLS] outputs, pair by pair; the centre is updated after each pair.

    Args:
        teacher_cls: (B, T, K) teacher logits of the clean global crops.
        student_global: (B, T, K) student logits of the (masked) global crops.
        student_local: (B, T, L, K) student logits of the local crops.
        centre: the [CLS] `Centre`; as in the official code (one DINOLoss call per pair), each pair is scored
            with the current centre, which is then updated from that pair's teacher outputs.
    Returns the scalar loss, averaged over the pairs (t, t + T/2).
    """
    b, t, l, k = student_local.shape
    if t % 2:
        raise ValueError(f"the out-generative loss pairs frames (t, t + T/2): T must be even, got {t}")
    half = t // 2
    losses = []
    for a in range(half):
        pair = (a, a + half)
        probs = centre.teacher_probs(teacher_cls[:, list(pair)], teacher_temp)  # (B, 2, K)
        views = [student_global[:, f] for f in pair] + [student_local[:, f, i] for f in pair for i in range(l)]
        total, terms = 0.0, 0
        for iq in range(2):  # teacher target of frame pair[iq]
            for iv, view in enumerate(views):
                if iv == iq:  # skip the student's global crop of the same frame
                    continue
                total = total + soft_cross_entropy(probs[:, iq], view, student_temp).mean()
                terms += 1
        losses.append(total / terms)
        centre.update(teacher_cls[:, list(pair)])
    return torch.stack(losses).mean()


def mim_loss(teacher_patch, student_patch, mask, centre, teacher_temp, student_temp=0.1):
    """L_mim: CE at masked positions, mean over frames of the mean over (clip, masked position); frame by frame,
    the patch centre is updated from that frame's masked teacher tokens (official `calc_mim_loss`).

    Args:
        teacher_patch: (B, T, N, K) teacher logits of the clean patch tokens.
        student_patch: (B, T, N, K) student logits of the masked global crops' patch tokens.
        mask: (N,) bool, the positions masked in every frame and clip (non-empty).
    """
    losses = []
    for f in range(teacher_patch.shape[1]):
        target = teacher_patch[:, f, mask]  # (B, n, K)
        ce = soft_cross_entropy(centre.teacher_probs(target, teacher_temp), student_patch[:, f, mask], student_temp)
        losses.append(ce.mean())
        centre.update(target)
    return torch.stack(losses).mean()


def affinity_loss(teacher_patch, student_patch, mask, teacher_temp=0.04, student_temp=0.1):
    """L_aff: teacher frame-to-frame affinities of masked tokens supervise the student's.

    Args:
        teacher_patch, student_patch: (B, T, N, K) head outputs (logits) of the patch tokens.
        mask: (N,) bool; affinities are between the n masked positions of frames t and t + 1.
    """
    zt = F.normalize(teacher_patch[:, :, mask].float(), dim=-1)  # (B, T, n, K)
    zs = F.normalize(student_patch[:, :, mask].float(), dim=-1)
    at = torch.einsum("btik,btjk->btij", zt[:, :-1], zt[:, 1:])  # (B, T-1, n, n)
    a_s = torch.einsum("btik,btjk->btij", zs[:, :-1], zs[:, 1:])
    return soft_cross_entropy(F.softmax(at / teacher_temp, dim=-1), a_s, student_temp).mean()


class INOLoss(nn.Module):
    """L = w_out L_out + w_mim L_mim + w_aff L_aff, with separate centres for [CLS] and patch targets.

    `forward` takes head outputs reshaped per clip and frame and returns (loss, parts); the centres are
    updated inside, after each pair ([CLS]) and each frame (patches), as the official code calls its
    DINOLoss objects. The masked losses (and the patch-centre updates) are skipped when no patch is masked.
    """

    def __init__(self, out_dim, student_temp=0.1, center_momentum=0.9, affinity_teacher_temp=0.04,
                 affinity_student_temp=0.1, out_weight=1.0, mim_weight=1.0, aff_weight=1.0):
        super().__init__()
        self.cls_centre = Centre(out_dim, center_momentum)
        self.patch_centre = Centre(out_dim, center_momentum)
        self.student_temp = student_temp
        self.aff_temps = (affinity_teacher_temp, affinity_student_temp)
        self.weights = (out_weight, mim_weight, aff_weight)

    def forward(self, teacher_cls, teacher_patch, student_cls, student_patch, student_local, mask, teacher_temp):
        """teacher_cls, student_cls (B, T, K); teacher_patch, student_patch (B, T, N, K);
        student_local (B, T, L, K); mask (N,) bool; teacher_temp: this step's tau_t. Updates the centres."""
        teacher_cls, teacher_patch = teacher_cls.float().detach(), teacher_patch.float().detach()
        student_cls, student_patch, student_local = student_cls.float(), student_patch.float(), student_local.float()
        out = out_generative_loss(teacher_cls, student_cls, student_local, self.cls_centre, teacher_temp,
                                  self.student_temp)
        parts = {"out": out}
        loss = self.weights[0] * out
        if mask.any():
            mim = mim_loss(teacher_patch, student_patch, mask, self.patch_centre, teacher_temp, self.student_temp)
            aff = affinity_loss(teacher_patch, student_patch, mask, *self.aff_temps)
            loss = loss + self.weights[1] * mim + self.weights[2] * aff
            parts.update(mim=mim, aff=aff)
        return loss, {k: v.detach() for k, v in parts.items()}

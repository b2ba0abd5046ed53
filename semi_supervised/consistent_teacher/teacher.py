"""The mean-teacher side of Consistent-Teacher: EMA update and GMM-filtered pseudo labels.

Official code: `ssod/utils/hooks/mean_teacher.py` (EMA) and `ssod/models/consistent_teacher.py`
(`extract_teacher_info`, `gmm_policy`, the per-class score queues).
"""
import torch
from torch import nn

from .gmm import gmm_threshold


def ema_momentum(step, momentum=0.9995, warm_up=0):
    """The MeanTeacher hook's momentum at iteration `step`: min(m, 1 - (1 + w) / (step + 1 + w)).

    With warm_up=0 (all official configs) step 0 gives 0, i.e. the teacher starts as a copy of the student.
    """
    return min(momentum, 1.0 - (1.0 + warm_up) / (step + 1.0 + warm_up))


@torch.no_grad()
def ema_update(teacher, student, momentum):
    """teacher <- m * teacher + (1 - m) * student over parameters only (the official hook leaves buffers alone:
    with every BatchNorm in eval mode both networks keep the ImageNet statistics)."""
    for t, s in zip(teacher.parameters(), student.parameters(), strict=True):
        t.mul_(momentum).add_(s.detach(), alpha=1.0 - momentum)


class PseudoLabeler(nn.Module):
    """Turns the teacher's detections on the weak views into pseudo boxes (the paper's GMM-based threshold).

    Two filters, as `extract_teacher_info` applies them:
      1. per image, a count prior: with scores sorted s_(0) >= s_(1) >= ..., n = min(int(sum(s) * dynamic_ratio
         + 0.5), len - 1); keep the boxes with score > s_(n) - 1e-5 (the top n + 1);
      2. per class c, push the surviving scores into a FIFO of the `num_scores` most recent ones (newest first),
         fit a two-component GMM on the positive entries and keep that class's boxes with score > tau_c.
    The queues are a registered buffer so they are checkpointed; under DDP each rank keeps its own (the official
    wrapper runs with broadcast_buffers=False), which this module reproduces by never synchronising them.
    """

    def __init__(self, num_classes, num_scores=100, dynamic_ratio=1.0, policy="high", given_gt_thr=0.0,
                 min_size=0.0):
        super().__init__()
        self.register_buffer("scores", torch.zeros(num_classes, num_scores))
        self.dynamic_ratio = dynamic_ratio
        self.policy = policy
        self.given_gt_thr = given_gt_thr
        self.min_size = min_size

    @staticmethod
    def _keep(boxes, scores, labels, thr, min_size):
        """`filter_invalid`: strict score > thr, then width and height > min_size."""
        keep = scores > thr
        wh = boxes[:, 2:] - boxes[:, :2]
        keep &= (wh > min_size).all(dim=1)
        return boxes[keep], scores[keep], labels[keep]

    @torch.no_grad()
    def forward(self, detections):
        """detections: per image dict(boxes (K,4), scores (K,), labels (K,)) from the teacher's `predict`.

        Returns (per-image list of dict(boxes, scores, labels), mean threshold over the boxes of filter 2 as the
        official log's `gmm_thr`, the per-class thresholds set this step as {class: tau})."""
        stage1 = []
        for det in detections:
            boxes, scores, labels = det["boxes"].float(), det["scores"].float(), det["labels"]
            if len(scores):
                ranked = scores.sort(descending=True).values
                n = min(int(float(ranked.sum()) * self.dynamic_ratio + 0.5), len(ranked) - 1)
                thr = float(ranked[n]) - 1e-5
            else:
                thr = 1.0
            stage1.append(self._keep(boxes, scores, labels, thr, self.min_size))
        all_scores = torch.cat([s for _, s, _ in stage1]) if stage1 else torch.zeros(0)
        all_labels = torch.cat([lab for _, _, lab in stage1]) if stage1 else torch.zeros(0, dtype=torch.long)
        thr_per_box = torch.zeros_like(all_scores)
        class_thr = {}
        for c in torch.unique(all_labels).tolist():
            queue = torch.cat([all_scores[all_labels == c].float().to(self.scores.device), self.scores[c]])
            self.scores[c] = queue[: self.scores.shape[1]]
            kept = self.scores[c][self.scores[c] > 0].cpu().numpy()
            class_thr[c] = gmm_threshold(kept, given_gt_thr=self.given_gt_thr, policy=self.policy)
            thr_per_box[all_labels == c] = class_thr[c]
        mean_thr = float(thr_per_box.mean()) if len(thr_per_box) else 0.0
        out, start = [], 0
        for boxes, scores, labels in stage1:
            thr = thr_per_box[start:start + len(scores)]
            start += len(scores)
            b, s, lab = self._keep(boxes, scores, labels, thr, self.min_size)
            out.append(dict(boxes=b, scores=s, labels=lab))
        return out, mean_thr, class_thr

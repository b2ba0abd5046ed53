"""AdamW with a lazy, row-wise update for sparse gradients (IPT's token table with `--table_update lazy`).

IPT's table E_I is |V| x w (46.9 M values for BERT-base in prefix mode) but a batch reads only the rows of the
first n ids of each example. The official code (and `--table_update dense`) gives it a dense gradient and a
dense AdamW update every step. With `--table_update lazy` the table's lookup returns a sparse gradient
(`F.embedding(..., sparse=True)`) and `RowwiseAdamW` updates only the rows in it:

    for every row r read in this step (s_r = the number of steps that have read row r, this one included):
        m_r = b1 m_r + (1 - b1) g_r,  v_r = b2 v_r + (1 - b2) g_r^2
        w_r = w_r (1 - lr wd) - lr (m_r / (1 - b1^s_r)) / (sqrt(v_r / (1 - b2^s_r)) + eps)

How this differs from dense AdamW for a row that a step does not read (its gradient is exactly 0 there):
dense AdamW still decays m_r and v_r, still moves w_r by lr m_hat / (sqrt(v_hat) + eps) (momentum keeps pushing
a row for many steps after it was last read), applies weight decay, and advances the bias correction with the
global step. The lazy update leaves the row, its moments and its step count untouched, as if that step did
not exist for the row (the "lazy Adam" of `torch.optim.SparseAdam`, but with per-row bias correction and
AdamW's decoupled weight decay). When every row is read in every step the two are identical (tested).
Dense parameters (prompt, head) get exactly torch's AdamW update in the same optimiser.
"""
import torch


class RowwiseAdamW(torch.optim.Optimizer):
    """AdamW; parameters whose gradient is sparse (rows of dim 0) are updated only on the rows present."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None if closure is None else closure()
        for group in self.param_groups:
            lr, (b1, b2), eps, wd = group["lr"], group["betas"], group["eps"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros_like(p)
                    # dense: one step count; sparse: one per row
                    state["step"] = torch.zeros(p.shape[0] if p.grad.is_sparse else (), dtype=torch.float32,
                                                device=p.device)
                if p.grad.is_sparse:
                    g = p.grad.coalesce()
                    rows, grad = g.indices()[0], g.values()                 # [R], [R, ...]
                    state["step"][rows] += 1
                    steps = state["step"][rows].view(-1, *([1] * (grad.dim() - 1)))
                    m = state["exp_avg"][rows].mul_(b1).add_(grad, alpha=1 - b1)
                    v = state["exp_avg_sq"][rows].mul_(b2).addcmul_(grad, grad, value=1 - b2)
                    state["exp_avg"][rows], state["exp_avg_sq"][rows] = m, v
                    denom = (v / (1 - b2 ** steps)).sqrt_().add_(eps)
                    w = p[rows] * (1 - lr * wd)
                    p[rows] = w - lr * (m / (1 - b1 ** steps)) / denom
                else:
                    state["step"] += 1
                    s = float(state["step"])
                    p.mul_(1 - lr * wd)
                    state["exp_avg"].mul_(b1).add_(p.grad, alpha=1 - b1)
                    state["exp_avg_sq"].mul_(b2).addcmul_(p.grad, p.grad, value=1 - b2)
                    denom = (state["exp_avg_sq"] / (1 - b2 ** s)).sqrt_().add_(eps)
                    p.addcdiv_(state["exp_avg"], denom, value=-lr / (1 - b1 ** s))
        return loss

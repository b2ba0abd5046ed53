"""KD, IPWD and PS-KD losses against hand-computed values, and the direction of the inverse propensity weight."""
import math

import pytest
import torch
import torch.nn.functional as F
from ipwd.losses import (
    ipwd_loss,
    kd_loss,
    kd_objective,
    kd_per_sample,
    propensity_weight,
    pskd_alpha,
    pskd_ipwd_loss,
    standardize_logits,
)


def sigmoid(v):
    return 1 / (1 + math.exp(-v))


def test_kd_loss_equals_hand_computed_value():
    # teacher p = softmax([2 ln 3, 0] / 2) = (3/4, 1/4); student p = (1/2, 1/2); tau = 2 -> tau^2 KL
    s = torch.tensor([[0.0, 0.0]])
    t = torch.tensor([[2 * math.log(3), 0.0]])
    expected = 4 * (0.75 * math.log(0.75 / 0.5) + 0.25 * math.log(0.25 / 0.5))
    assert kd_loss(s, t, temperature=2.0).item() == pytest.approx(expected, rel=1e-6)


def test_kd_loss_matches_repdistiller_formula_and_objective_weights():
    g = torch.Generator().manual_seed(0)
    s, t = torch.randn(5, 7, generator=g), torch.randn(5, 7, generator=g)
    y = torch.randint(0, 7, (5,), generator=g)
    # RepDistiller DistillKL: KLDiv(log p_s, p_t, size_average=False) * T^2 / B
    ref = F.kl_div(F.log_softmax(s / 4, 1), F.softmax(t / 4, 1), reduction="sum") * 16 / 5
    torch.testing.assert_close(kd_loss(s, t, 4.0), ref)
    loss, _ = kd_objective(s, t, y, 4.0, ce_weight=0.1, kd_weight=0.9)
    torch.testing.assert_close(loss, 0.1 * F.cross_entropy(s, y) + 0.9 * ref)
    assert kd_loss(t, t).item() == pytest.approx(0.0, abs=1e-6)


def test_standardized_logits_have_zero_mean_unit_std():
    z = torch.tensor([[1.0, 2.0, 6.0], [-3.0, 0.0, 3.0]])
    out = standardize_logits(z)
    torch.testing.assert_close(out.mean(1), torch.zeros(2), atol=1e-6, rtol=0)
    torch.testing.assert_close(out.std(1, unbiased=False), torch.ones(2), atol=1e-5, rtol=0)


def test_weight_hand_computed_and_larger_for_under_represented_sample():
    # Two classes: standardised logits are (+1, -1) or (-1, +1), so p = sigmoid(+-2).
    y = torch.tensor([0, 0])
    machine = torch.tensor([[2.0, 0.0],     # sample 0: the distilled head fits its label (well represented)
                            [0.0, 3.0]])    # sample 1: the distilled head misses it (under-represented)
    human = torch.tensor([[5.0, 1.0], [4.0, 0.0]])  # the CE head fits both
    w = propensity_weight(machine, human, y)
    assert w[0].item() == pytest.approx(2.0, rel=1e-5)                                  # 1 + p_h / p_m, equal
    assert w[1].item() == pytest.approx(1 + sigmoid(2) / sigmoid(-2), rel=1e-5)         # = 1 + e^2
    assert w[1] > w[0]
    # the cross-entropy ratio keeps the direction; the secondary summary's formula reverses it
    w_ce = propensity_weight(machine, human, y, formula="ce_ratio")
    w_summary = propensity_weight(machine, human, y, formula="summary_ce_ratio")
    assert w_ce[1] > w_ce[0] and w_summary[1] < w_summary[0]


def test_weight_is_invariant_to_logit_scale_only_when_standardized():
    g = torch.Generator().manual_seed(1)
    m, h = torch.randn(6, 5, generator=g), torch.randn(6, 5, generator=g)
    y = torch.randint(0, 5, (6,), generator=g)
    w = propensity_weight(m, h, y)
    torch.testing.assert_close(propensity_weight(3 * m + 1.5, 0.5 * h - 2, y), w, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(propensity_weight(3 * m, h, y, standardize=False), propensity_weight(m, h, y,
                                                                                               standardize=False))


def test_weight_options_clip_normalize_detach():
    g = torch.Generator().manual_seed(2)
    m = torch.randn(8, 4, generator=g, requires_grad=True)
    h = torch.randn(8, 4, generator=g)
    y = torch.randint(0, 4, (8,), generator=g)
    assert not propensity_weight(m, h, y).requires_grad
    assert propensity_weight(m, h, y, detach=False).requires_grad
    assert propensity_weight(m, h, y, clip=1.5).max().item() <= 1.5
    assert propensity_weight(m, h, y, normalize="batch_mean").mean().item() == pytest.approx(1.0, rel=1e-5)
    assert (propensity_weight(m, h, y) > 1).all()  # 1 / P(machine | x, y) with P < 1
    with pytest.raises(ValueError):
        propensity_weight(m, h, y, formula="nope")


def test_ipwd_loss_equals_hand_computed_value():
    y = torch.tensor([0, 0])
    student = torch.tensor([[2.0, 0.0], [0.0, 3.0]])
    aux = torch.tensor([[5.0, 1.0], [4.0, 0.0]])
    teacher = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    tau, gamma, alpha, beta = 2.0, 0.1, 0.9, 0.5

    def softmax2(a, b):
        return math.exp(a) / (math.exp(a) + math.exp(b)), math.exp(b) / (math.exp(a) + math.exp(b))

    def kl(t, s):
        pt, ps = softmax2(t[0] / tau, t[1] / tau), softmax2(s[0] / tau, s[1] / tau)
        return tau ** 2 * sum(a * math.log(a / b) for a, b in zip(pt, ps, strict=True))

    w = [2.0, 1 + math.exp(2)]
    ce = (-math.log(softmax2(2, 0)[0]) - math.log(softmax2(0, 3)[0])) / 2
    aux_ce = (-math.log(softmax2(5, 1)[0]) - math.log(softmax2(4, 0)[0])) / 2
    kd = (w[0] * kl((1, 0), (2, 0)) + w[1] * kl((0, 1), (0, 3))) / 2
    expected = gamma * ce + alpha * kd + beta * aux_ce
    loss, logs = ipwd_loss(student, aux, teacher, y, tau, gamma, alpha, beta)
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    assert logs["weight"].item() == pytest.approx(sum(w) / 2, rel=1e-5)


def test_ipwd_with_unit_weights_is_kd_plus_aux_ce():
    g = torch.Generator().manual_seed(3)
    s, a, t = (torch.randn(4, 6, generator=g) for _ in range(3))
    y = torch.randint(0, 6, (4,), generator=g)
    # w > 1 always, so clipping at 1 makes every weight exactly 1
    loss, _ = ipwd_loss(s, a, t, y, 4.0, 0.1, 0.9, 1.0, clip=1.0)
    kd, _ = kd_objective(s, t, y, 4.0, 0.1, 0.9)
    torch.testing.assert_close(loss, kd + F.cross_entropy(a, y))
    torch.testing.assert_close(kd_per_sample(s, t, 4.0).mean(), kd_loss(s, t, 4.0))


def test_pskd_loss_is_soft_target_cross_entropy_and_schedule():
    g = torch.Generator().manual_seed(4)
    z, a = torch.randn(3, 5, generator=g), torch.randn(3, 5, generator=g)
    prev = torch.softmax(torch.randn(3, 5, generator=g), 1)
    y = torch.tensor([1, 0, 4])
    alpha = 0.3
    target = (1 - alpha) * F.one_hot(y, 5).float() + alpha * prev       # PS-KD's soft target
    ref = -(target * F.log_softmax(z, 1)).sum(1).mean()
    loss, logs = pskd_ipwd_loss(z, a, prev, y, alpha, use_ipwd=False, aux_weight=0.0)
    torch.testing.assert_close(loss, ref)
    assert logs["weight"].item() == 1.0
    loss_w, logs_w = pskd_ipwd_loss(z, a, prev, y, alpha, use_ipwd=True, aux_weight=0.0)
    assert logs_w["weight"].item() > 1 and loss_w > loss
    assert pskd_alpha(0, 10, 0.8) == pytest.approx(0.08) and pskd_alpha(9, 10, 0.8) == pytest.approx(0.8)

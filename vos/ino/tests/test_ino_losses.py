"""Each INO loss against a direct (loop-by-loop) implementation of its equation on small tensors."""
import math

import pytest
import torch
from ino.losses import Centre, INOLoss, affinity_loss, mim_loss, out_generative_loss, soft_cross_entropy


def _ce(p, logits, tau):
    """-sum_k p_k log softmax(logits / tau)_k, written out for one pair of vectors."""
    z = [x / tau for x in logits.tolist()]
    m = max(z)
    log_norm = m + math.log(sum(math.exp(x - m) for x in z))
    return -sum(pk * (x - log_norm) for pk, x in zip(p.tolist(), z, strict=True))


def _softmax(v, tau):
    e = torch.exp((v - v.max()) / tau)
    return e / e.sum()


def test_soft_cross_entropy_matches_formula():
    torch.manual_seed(0)
    p, s = torch.softmax(torch.randn(5), 0), torch.randn(5)
    assert soft_cross_entropy(p, s, 0.1).item() == pytest.approx(_ce(p, s, 0.1), rel=1e-5)


def _centred_probs(logits, centre, tau):
    return torch.softmax((logits - centre) / tau, dim=-1)


def test_out_generative_loss_direct():
    torch.manual_seed(0)
    b, t, l, k = 2, 4, 3, 6
    tc = torch.randn(b, t, k)
    sg, sl = torch.randn(b, t, k), torch.randn(b, t, l, k)
    centre = torch.zeros(k)
    pair_losses = []
    for a in range(t // 2):
        fa, fb = a, a + t // 2
        views = [("g", fa, None), ("g", fb, None)] + [("l", f, i) for f in (fa, fb) for i in range(l)]
        terms = []
        for target in (fa, fb):
            for kind, f, i in views:
                if kind == "g" and f == target:
                    continue  # the student global of the teacher's own frame
                logits = [sg[n, f] if kind == "g" else sl[n, f, i] for n in range(b)]
                terms.append(sum(_ce(_centred_probs(tc[n, target], centre, 0.04), logits[n], 0.1)
                                 for n in range(b)) / b)
        assert len(terms) == 2 * (2 + 2 * l) - 2
        pair_losses.append(sum(terms) / len(terms))
        centre = 0.9 * centre + 0.1 * torch.cat([tc[:, fa], tc[:, fb]]).mean(0)  # after each pair
    expected = sum(pair_losses) / len(pair_losses)
    c = Centre(k)
    assert out_generative_loss(tc, sg, sl, c, 0.04, 0.1).item() == pytest.approx(expected, rel=1e-5)
    assert torch.allclose(c.center[0], centre, atol=1e-6)
    with pytest.raises(ValueError, match="even"):
        out_generative_loss(tc[:, :3], sg[:, :3], sl[:, :3], c, 0.04)


def test_mim_loss_direct():
    torch.manual_seed(1)
    b, t, n, k = 2, 3, 5, 4
    tz, sp = torch.randn(b, t, n, k), torch.randn(b, t, n, k)
    mask = torch.tensor([True, False, True, True, False])
    idx = [i for i in range(n) if mask[i]]
    centre, per_frame = torch.zeros(k), []
    for f in range(t):
        per_frame.append(sum(_ce(_centred_probs(tz[x, f, i], centre, 0.04), sp[x, f, i], 0.1)
                             for x in range(b) for i in idx) / (b * len(idx)))
        centre = 0.9 * centre + 0.1 * torch.stack([tz[x, f, i] for x in range(b) for i in idx]).mean(0)
    c = Centre(k)
    assert mim_loss(tz, sp, mask, c, 0.04, 0.1).item() == pytest.approx(sum(per_frame) / t, rel=1e-5)
    assert torch.allclose(c.center[0], centre, atol=1e-6)


def test_affinity_loss_direct():
    torch.manual_seed(2)
    b, t, n, k = 2, 3, 5, 4
    tz, sz = torch.randn(b, t, n, k), torch.randn(b, t, n, k)
    mask = torch.tensor([True, True, False, True, False])
    idx = [i for i in range(n) if mask[i]]
    total, count = 0.0, 0
    for x in range(b):
        for f in range(t - 1):
            unit = lambda v: v / v.norm()  # noqa: E731
            for i in idx:
                a_t = torch.stack([unit(tz[x, f, i]) @ unit(tz[x, f + 1, j]) for j in idx])
                a_s = torch.stack([unit(sz[x, f, i]) @ unit(sz[x, f + 1, j]) for j in idx])
                total += _ce(_softmax(a_t, 0.04), a_s, 0.1)
                count += 1
    assert affinity_loss(tz, sz, mask, 0.04, 0.1).item() == pytest.approx(total / count, rel=1e-4)


def test_centre_sharpening_and_update():
    c = Centre(3, momentum=0.9)
    logits = torch.tensor([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0]])
    assert torch.allclose(c.teacher_probs(logits, 0.5), torch.softmax(logits / 0.5, -1))
    c.update(logits)
    assert torch.allclose(c.center, torch.full((1, 3), 0.2))  # 0.9 * 0 + 0.1 * mean = 0.1 * 2
    assert torch.allclose(c.teacher_probs(logits, 0.5), torch.softmax((logits - 0.2) / 0.5, -1))


def test_ino_loss_sums_the_parts_and_skips_masked_terms_without_mask():
    torch.manual_seed(3)
    b, t, n, l, k = 2, 4, 6, 2, 5
    tc, tpatch = torch.randn(b, t, k), torch.randn(b, t, n, k)
    sc, spatch, sl = torch.randn(b, t, k), torch.randn(b, t, n, k), torch.randn(b, t, l, k)
    crit = INOLoss(k, out_weight=1.0, mim_weight=0.5, aff_weight=2.0)
    mask = torch.tensor([True, False, True, False, False, True])
    loss, parts = crit(tc, tpatch, sc, spatch, sl, mask, teacher_temp=0.04)
    expected = out_generative_loss(tc, sc, sl, Centre(k), 0.04) \
        + 0.5 * mim_loss(tpatch, spatch, mask, Centre(k), 0.04) + 2.0 * affinity_loss(tpatch, spatch, mask)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert set(parts) == {"out", "mim", "aff"}
    before = crit.patch_centre.center.clone()
    loss0, parts0 = crit(tc, tpatch, sc, spatch, sl, torch.zeros(n, dtype=torch.bool), teacher_temp=0.04)
    assert set(parts0) == {"out"} and torch.isfinite(loss0)
    assert torch.equal(crit.patch_centre.center, before)  # no masked tokens: the patch centre stays

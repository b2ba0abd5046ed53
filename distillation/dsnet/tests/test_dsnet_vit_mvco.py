"""MvCo (multi-view consistency, DS-ViT++ Stage I): the consistency term is 0 for identical views, positive otherwise,
and its gradient reaches every view; the bootstrap target is the view average; a Stage I step on two identical views
gives the single-view step's gradients, two different views do not; the two-view dataset draws fresh augmentations."""
import dataclasses

import torch
from dsnet import train as dsnet_train
from dsnet.data import MultiView
from dsnet.losses import mvco_consistency, mvco_target
from dsnet.vit import ds_vit_tiny


def test_consistency_is_zero_for_identical_views_positive_otherwise_and_has_gradients():
    torch.manual_seed(0)
    a = torch.randn(5, 7)
    assert mvco_consistency(torch.cat([a, a]), 2) == 0
    assert mvco_consistency(torch.cat([a, a, a]), 3) == 0
    b = (a + torch.randn(5, 7)).requires_grad_()
    a = a.clone().requires_grad_()
    loss = mvco_consistency(torch.cat([a, b]), 2)
    assert loss > 0
    loss.backward()
    assert a.grad.abs().sum() > 0 and b.grad.abs().sum() > 0
    # the generalised Jensen-Shannon divergence, written out: mean_v KL(p_v || mean_v p_v)
    p, q = a.softmax(1), b.softmax(1)
    m = (p + q) / 2
    js = 0.5 * ((p * (p / m).log()).sum(1) + (q * (q / m).log()).sum(1)).mean()
    torch.testing.assert_close(loss, js)


def test_target_is_the_view_average_repeated_for_every_view():
    p = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5], [0.2, 0.8]])  # views 2, batch 2, view-major
    torch.testing.assert_close(mvco_target(p, 2), torch.tensor([[0.75, 0.25], [0.1, 0.9]]).repeat(2, 1))
    assert mvco_target(p, 1) is p


def grads_of_one_step(cfg, x, y):
    torch.manual_seed(0)
    model = ds_vit_tiny(10).train()
    ema = dsnet_train.EMA(model, 0.9)
    with torch.no_grad():  # an EMA teacher that differs from the online net
        for p in ema.module.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    dsnet_train.supernet_step(cfg, model, model, ema, x, y, step=0, last=None)
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def test_a_stage_one_step_on_identical_views_equals_the_single_view_step():
    torch.manual_seed(1)
    cfg = dataclasses.replace(dsnet_train.DSNetConfig(), model="ds_vit_tiny", mvco="true", mvco_weight=1.0, seed=0)
    x, y = torch.randn(3, 3, 32, 32), torch.tensor([0, 4, 9])
    single = grads_of_one_step(cfg, x, y)
    same = grads_of_one_step(cfg, torch.stack([x, x], 1), y)            # (B, V, 3, H, W)
    other = grads_of_one_step(cfg, torch.stack([x, x.flip(3)], 1), y)
    assert single.keys() == same.keys() == other.keys()
    for n in single:
        torch.testing.assert_close(same[n], single[n], rtol=1e-4, atol=1e-6)
    assert any(not torch.allclose(other[n], single[n], rtol=1e-3, atol=1e-5) for n in single)


def test_multi_view_dataset_draws_independent_augmentations():
    class Noisy(torch.utils.data.Dataset):
        def __len__(self):
            return 3

        def __getitem__(self, i):
            return torch.rand(3, 2, 2), i % 2, i

    torch.manual_seed(0)
    views, label, index = MultiView(Noisy(), 2)[2]
    assert views.shape == (2, 3, 2, 2) and label == 0 and index == 2
    assert not torch.equal(views[0], views[1])
    x, y, v = dsnet_train.flatten_views(views[None].repeat(4, 1, 1, 1, 1), torch.arange(4))
    assert v == 2 and x.shape == (8, 3, 2, 2) and y.tolist() == [0, 1, 2, 3, 0, 1, 2, 3]

"""Slimmable ops: the masked (training) and truly sliced (inference) paths agree, BN statistics stay apart per
width, gradients reach the gate through straight-through Gumbel, and the MAdds counter matches a hand count."""
import torch
import torch.nn.functional as F
from dsnet.model import DSMobileNetV1
from dsnet.ops import SlimBatchNorm2d, SlimConv2d, SlimLinear, SoftChoice, gumbel_softmax_st

CH = [4, 6, 8]


def one_hot(idx, k=3):
    return F.one_hot(torch.tensor(idx), k).float()


def test_conv_masked_equals_sliced():
    torch.manual_seed(0)
    for conv in (SlimConv2d([3], CH, 3, 2, bias=True), SlimConv2d(CH, CH, 3, 1, depthwise=True)):
        idx = [0, 2, 1]
        x = torch.randn(3, conv.in_channels, 7, 7)
        if conv.depthwise:  # a masked input: zeros beyond each sample's width
            x = x * SoftChoice(one_hot(idx)).mask(CH, 8)[:, :, None, None]
        y, madds = conv(x, SoftChoice(one_hot(idx)), SoftChoice(one_hot(idx)) if conv.depthwise else None)
        for b, i in enumerate(idx):
            xb = x[b:b + 1, :CH[i]] if conv.depthwise else x[b:b + 1]
            ref, ref_madds = conv(xb, i, i if conv.depthwise else None)
            assert ref.shape[1] == CH[i]
            torch.testing.assert_close(y[b:b + 1, :CH[i]], ref, rtol=0, atol=1e-6)
            assert y[b, CH[i]:].abs().sum() == 0
            assert madds[b].item() == ref_madds


def test_pointwise_and_linear_slice_the_leading_weights():
    torch.manual_seed(0)
    conv, lin = SlimConv2d(CH, CH, 1), SlimLinear(CH, 5)
    x = torch.randn(2, 6, 4, 4)
    y, _ = conv(x, 0)
    torch.testing.assert_close(y, F.conv2d(x, conv.weight[:4, :6]))
    z, madds = lin(x.mean((2, 3)))
    torch.testing.assert_close(z, x.mean((2, 3)) @ lin.weight[:, :6].T + lin.bias)
    assert madds == 6 * 5


def test_batchnorm_keeps_running_statistics_per_width_and_shares_the_affine():
    torch.manual_seed(0)
    bn = SlimBatchNorm2d(CH).train()
    bn(torch.randn(8, 4, 3, 3) * 3 + 5, 0)
    assert bn.aux_bn[0].running_mean.mean() > 0.3           # width 4 statistics moved towards 5
    assert torch.equal(bn.aux_bn[1].running_mean, torch.zeros(6)) and torch.equal(bn.aux_bn[2].running_mean,
                                                                                  torch.zeros(8))
    bn(torch.randn(8, 8, 3, 3) - 5, 2)
    assert bn.aux_bn[2].running_mean.mean() < -0.3 and bn.aux_bn[0].running_mean.mean() > 0.3
    assert not bn.aux_bn[0].affine and bn.aux_bn[2].affine   # one affine, the widest, sliced
    with torch.no_grad():
        bn.aux_bn[2].weight.copy_(torch.arange(1.0, 9.0))
    bn.eval()
    x = torch.randn(2, 6, 3, 3)
    expect = (x - bn.aux_bn[1].running_mean[:, None, None]) / torch.sqrt(bn.aux_bn[1].running_var[:, None, None]
                                                                       + 1e-5) * torch.arange(1.0, 7.0)[:, None, None]
    torch.testing.assert_close(bn(x, 1), expect)


def test_batchnorm_masked_equals_sliced_per_sample():
    torch.manual_seed(0)
    bn = SlimBatchNorm2d(CH).eval()
    for m in bn.aux_bn:
        m.running_mean.normal_()
        m.running_var.uniform_(0.5, 2)
    nn_w = bn.aux_bn[-1]
    with torch.no_grad():
        nn_w.weight.normal_()
        nn_w.bias.normal_()
    idx = [2, 0, 1]
    x = torch.randn(3, 8, 2, 2)
    y = bn(x, SoftChoice(one_hot(idx)))
    for b, i in enumerate(idx):
        torch.testing.assert_close(y[b:b + 1, :CH[i]], bn(x[b:b + 1, :CH[i]], i))
        assert y[b, CH[i]:].abs().sum() == 0


def test_straight_through_gumbel_is_one_hot_and_passes_gradients_to_the_logits():
    torch.manual_seed(0)
    logits = torch.randn(5, 3, requires_grad=True)
    soft, st, index = gumbel_softmax_st(logits)
    torch.testing.assert_close(st, F.one_hot(index, 3).float())
    conv = SlimConv2d([2], CH, 1)
    y, madds = conv(torch.randn(5, 2, 3, 3), SoftChoice(st))
    (y.square().sum() + madds.sum()).backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0
    _, st0, i0 = gumbel_softmax_st(logits, noise=False)
    assert torch.equal(i0, logits.argmax(1))


def test_madds_counter_equals_a_hand_count():
    net = DSMobileNetV1(10, stem=([2, 4], 3, 2), stages=[([4, 8], 1, 3, 1, True)], num_routes=2).eval()
    net(torch.randn(1, 3, 8, 8), 0)
    # stem 3*2*9*(4*4) + dw 2*9*16 + SE pool 2*16 + reduce 2*1 + expand 1*2 + pw 2*4*16 + pool 4*16 + fc 4*10
    assert net.madds == 864 + 288 + 32 + 2 + 2 + 128 + 64 + 40
    net(torch.randn(1, 3, 8, 8), "largest")
    # stem 3*4*9*16 + dw 4*9*16 + pool 4*16 + reduce 4*1 + expand 1*4 + pw 4*8*16 + pool 8*16 + fc 8*10
    assert net.madds == 1728 + 576 + 64 + 4 + 4 + 512 + 128 + 80

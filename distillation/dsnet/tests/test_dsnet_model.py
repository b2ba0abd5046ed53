"""The supernets: masked == sliced for whole networks, the batch-1 sliced dynamic path, gradients."""
import pytest
import torch
import torch.nn.functional as F
from dsnet.model import DSMobileNetV1, DSResNet
from dsnet.ops import SoftChoice


def randomise_bn(net):
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.normal_(0, 0.1)
            m.running_var.uniform_(0.5, 2)


@pytest.mark.parametrize("make,size", [(lambda: DSMobileNetV1(10), 64),
                                       (lambda: DSResNet(10, layers=(1, 2, 2, 1), base_width=8, small_input=True),
                                        32)])
def test_masked_dynamic_network_equals_the_sliced_subnetworks(make, size):
    torch.manual_seed(0)
    net = make().eval()
    randomise_bn(net)
    x = torch.randn(4, 3, size, size)
    idx = torch.tensor([0, 3, 1, 2])
    net.make_decide = lambda width: (lambda logits: SoftChoice(F.one_hot(idx, 4).float()))
    with torch.no_grad():
        out, madds = net(x, "dynamic"), net.madds
        for b in range(4):
            ref = net(x[b:b + 1], int(idx[b]))
            torch.testing.assert_close(out[b:b + 1], ref, rtol=1e-4, atol=1e-5)
            assert 0 < madds[b] - net.madds <= 4 * 66 * 3  # only the slimming heads' 1x1 convs are extra
    assert madds[1] > madds[3] > madds[2] > madds[0]


def test_dynamic_sliced_equals_dynamic_masked_at_batch_one():
    torch.manual_seed(0)
    net = DSMobileNetV1(10, eval_noise=False).eval()
    randomise_bn(net)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        masked = net(x, "dynamic")
        m_madds, idx = net.madds.item(), net.gates[0].index
        sliced = net(x, "dynamic_sliced")
    assert torch.equal(net.gates[0].index, idx)
    torch.testing.assert_close(masked, sliced, rtol=1e-4, atol=1e-5)
    assert m_madds == pytest.approx(net.madds)
    with pytest.raises(ValueError, match="batch size 1"):
        net.make_decide("dynamic_sliced")(torch.tensor([[5.0, 0, 0, 0], [0, 5.0, 0, 0]]))


def test_every_trainable_parameter_gets_a_gradient_in_the_largest_net_and_the_gate_in_the_dynamic_net():
    torch.manual_seed(0)
    net = DSResNet(10, layers=(1, 1, 1, 1), base_width=8, small_input=True).train()
    net(torch.randn(2, 3, 16, 16), "largest").sum().backward()
    gate = {id(p) for p in net.gate_parameters()}
    missing = [n for n, p in net.named_parameters() if p.grad is None and id(p) not in gate]
    assert not missing
    net.zero_grad()
    out = net(torch.randn(2, 3, 16, 16), "dynamic")
    (out.sum() + net.madds.sum() * 1e-6).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.gate_parameters())
    assert len(net.gates) == 3

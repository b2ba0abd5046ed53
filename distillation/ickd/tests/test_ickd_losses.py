"""ICKD losses on tiny tensors against values computed by hand, for every variant; grid 1x1 = global;
gradients reach the embed and the student only."""
import math

import pytest
import torch
from ickd.losses import grid_icc_loss, icc_loss, icc_matrix, ickd_objective, kd_loss
from ickd.model import Embed, ICKDStudent, teacher_forward

from common.models import build_model

# one sample, two channels, a 1x2 map: F_s = [[1, 0], [1, 1]], F_t = [[1, 1], [0, 1]]
F_S = torch.tensor([[[[1.0, 0.0]], [[1.0, 1.0]]]])   # (1, 2, 1, 2)
F_T = torch.tensor([[[[1.0, 1.0]], [[0.0, 1.0]]]])
# G_s = F_s F_s^T = [[1, 1], [1, 2]];  G_t = [[2, 1], [1, 1]]
# rows normalised: G_s -> [[1/r2, 1/r2], [1/r5, 2/r5]], G_t -> [[2/r5, 1/r5], [1/r2, 1/r2]]
R2, R5 = math.sqrt(2), math.sqrt(5)
ROWNORM_SQ = ((1 / R2 - 2 / R5) ** 2 + (1 / R2 - 1 / R5) ** 2 + (1 / R5 - 1 / R2) ** 2 + (2 / R5 - 1 / R2) ** 2)


def test_icc_matrix_hand_computed():
    assert icc_matrix(F_S, normalize_rows=False).tolist() == [[[1.0, 1.0], [1.0, 2.0]]]
    torch.testing.assert_close(icc_matrix(F_T), torch.tensor([[[2 / R5, 1 / R5], [1 / R2, 1 / R2]]]))


@pytest.mark.parametrize("reduction, divisor", [("c_b", 2 * 1), ("c_b2", 2 * 1 * 1), ("c2_b", 4 * 1)])
def test_official_reductions_one_sample(reduction, divisor):
    assert icc_loss(F_S, F_T, reduction).item() == pytest.approx(ROWNORM_SQ / divisor)


def test_paper_exact_is_unnormalised_frobenius_over_c_squared():
    # G_s - G_t = [[-1, 0], [0, 1]]: squared Frobenius norm 2, divided by C^2 = 4 and B = 1
    assert icc_loss(F_S, F_T, paper_exact=True).item() == pytest.approx(2 / 4)
    assert icc_loss(F_S, F_T, "c2_b", normalize_rows=False).item() == pytest.approx(0.5)


def test_batch_divisors_differ_by_b():
    """Two samples (the hand-computed pair and a zero-difference pair): CIFAR divides by C*B, ImageNet by C*B^2."""
    f_s, f_t = torch.cat([F_S, F_T]), torch.cat([F_T, F_T])     # sample 2 identical -> contributes 0
    assert icc_loss(f_s, f_t, "c_b").item() == pytest.approx(ROWNORM_SQ / (2 * 2))
    assert icc_loss(f_s, f_t, "c_b2").item() == pytest.approx(ROWNORM_SQ / (2 * 4))
    assert icc_loss(f_s, f_t, paper_exact=True).item() == pytest.approx(2 / (4 * 2))


def test_grid_one_by_one_equals_global_and_cells_average():
    torch.manual_seed(0)
    f_s, f_t = torch.randn(3, 4, 6, 4), torch.randn(3, 4, 6, 4)
    for opts in ({"reduction": "c_b"}, {"reduction": "c_b2"}, {"paper_exact": True}):
        torch.testing.assert_close(grid_icc_loss(f_s, f_t, (1, 1), **opts), icc_loss(f_s, f_t, **opts))
    # 2x2 grid = mean of the four quadrant losses, computed here by slicing by hand
    cells = [(slice(0, 3), slice(0, 2)), (slice(0, 3), slice(2, 4)), (slice(3, 6), slice(0, 2)),
             (slice(3, 6), slice(2, 4))]
    by_hand = sum(icc_loss(f_s[:, :, h, w], f_t[:, :, h, w]) for h, w in cells) / 4
    torch.testing.assert_close(grid_icc_loss(f_s, f_t, (2, 2)), by_hand)
    with pytest.raises(ValueError, match="finer"):
        grid_icc_loss(f_s, f_t, (7, 1))


def test_identical_maps_give_zero_and_shape_mismatch_is_refused():
    assert icc_loss(F_S, F_S).item() == 0
    with pytest.raises(ValueError, match="differ"):
        icc_loss(torch.zeros(1, 2, 2, 2), torch.zeros(1, 3, 2, 2))


def test_objective_weights_and_kd():
    torch.manual_seed(1)
    zs, zt, y = torch.randn(2, 5), torch.randn(2, 5), torch.tensor([1, 3])
    p_t = torch.softmax(zt / 4, 1)
    kd_by_hand = (p_t * (p_t.log() - torch.log_softmax(zs / 4, 1))).sum(1).mean() * 16
    torch.testing.assert_close(kd_loss(zs, zt, 4.0), kd_by_hand)
    loss, logs = ickd_objective(zs, zt, F_S.expand(2, -1, -1, -1), F_T.expand(2, -1, -1, -1), y,
                                ce_weight=1.0, kd_weight=1.0, icc_weight=2.5)
    ce = torch.nn.functional.cross_entropy(zs, y)
    torch.testing.assert_close(loss, ce + kd_by_hand + 2.5 * torch.tensor(2 * ROWNORM_SQ / (2 * 2)))
    assert logs["icc"].item() == pytest.approx(ROWNORM_SQ / 2)


def test_gradients_reach_the_embed_and_the_student_only():
    teacher = build_model("resnet14", 10).eval().requires_grad_(False)
    model = ICKDStudent(build_model("resnet8", 10), teacher_channels=64)
    x, y = torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 3])
    with torch.no_grad():
        t_logits, t_map = teacher_forward(teacher, x)
    logits, s_map = model(x)
    assert s_map.shape == t_map.shape == (4, 64, 8, 8)
    loss, _ = ickd_objective(logits, t_logits, s_map, t_map, y, kd_weight=1.0)
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    assert model.embed.conv2d.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in teacher.parameters())
    assert set(model.embed.state_dict()) == {"conv2d.weight", "l2norm.weight", "l2norm.bias", "l2norm.running_mean",
                                             "l2norm.running_var", "l2norm.num_batches_tracked"}
    assert Embed(512, 512, "conv3x3").conv2d.weight.shape == (512, 512, 3, 3)


def test_ickd_uses_the_shared_zoo_not_a_copy():
    from pathlib import Path

    import ickd
    folder = Path(ickd.__file__).parent
    assert not (folder / "models").exists()
    sources = [p for p in folder.rglob("*.py") if "tests" not in p.relative_to(folder).parts]
    assert sources and not any("class CifarResNet" in p.read_text() for p in sources)

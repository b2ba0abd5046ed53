"""ViT / head / student-teacher: shapes, masking, position embeddings, gradients, determinism, loaders."""
import pytest
import torch
from ino.checkpoints import backbone_state, infer_arch, load_backbone
from ino.losses import INOLoss
from ino.masking import shared_patch_mask
from ino.model import DINOHead, build_ino, ema_update, vit
from ino.schedules import cosine_schedule, peak_learning_rate, teacher_temp_schedule


def test_vit_shapes_and_position_interpolation():
    torch.manual_seed(0)
    m = vit("vit_micro", patch_size=8).eval()
    assert m.pos_embed.shape == (1, 65, 64)  # 8 x 8 grid + [CLS], as INO's img_size 64
    assert m(torch.randn(2, 3, 64, 64)).shape == (2, 65, 64)
    assert m.interpolate_pos_encoding(8, 8) is m.pos_embed
    assert m.interpolate_pos_encoding(28, 28).shape == (1, 1 + 784, 64)
    assert m.interpolate_pos_encoding(60, 106).shape == (1, 1 + 6360, 64)
    assert m.block_features(torch.randn(1, 3, 48, 80), block=2).shape == (1, 6, 10, 64)
    with pytest.raises(ValueError, match="1..4"):
        m.block_features(torch.randn(1, 3, 16, 16), block=5)
    s = vit("vit_small")
    assert sum(p.numel() for p in s.parameters()) == pytest.approx(21.7e6, rel=0.02)  # ViT-S: ~21.7 M


def test_mask_token_replaces_masked_patches_only():
    torch.manual_seed(0)
    m = vit("vit_micro").eval()
    x = torch.randn(1, 3, 32, 32)
    mask = torch.zeros(1, 16, dtype=torch.bool)
    mask[0, 3] = True
    clean, masked = m.prepare_tokens(x), m.prepare_tokens(x, mask)
    diff = (clean - masked).abs().sum(-1)[0]
    assert diff[4] > 0 and diff[:4].sum() == 0 and diff[5:].sum() == 0  # token 0 is [CLS]
    assert torch.allclose(masked[0, 4] - clean[0, 4], m.mask_token[0, 0] - m.patch_embed(x)[0, 3])


def test_head_is_weight_normed_with_frozen_scale():
    head = DINOHead(16, out_dim=32, hidden_dim=24, bottleneck_dim=8)
    assert head(torch.randn(5, 16)).shape == (5, 32)
    g = head.last_layer.parametrizations.weight.original0
    assert not g.requires_grad and torch.all(g == 1)


def _batch(b=2, t=4, nl=2):
    g = torch.Generator().manual_seed(0)
    return torch.randn(b * t, 3, 32, 32, generator=g), torch.randn(b * t * nl, 3, 16, 16, generator=g)


def test_every_trainable_parameter_gets_a_gradient_and_teacher_none():
    torch.manual_seed(0)
    student, teacher = build_ino("vit_micro", 8, out_dim=32, hidden_dim=32, bottleneck_dim=16, pos_grid=4)
    glob, loc = _batch()
    mask = torch.zeros(16, dtype=torch.bool)
    mask[[1, 5, 9]] = True
    with torch.no_grad():
        tc, tp, _ = teacher(glob)
    sc, sp, sl = student(glob, mask.expand(8, -1), loc)
    loss, _ = INOLoss(32)(tc.view(2, 4, 32), tp.view(2, 4, 16, 32), sc.view(2, 4, 32), sp.view(2, 4, 16, 32),
                          sl.view(2, 4, 2, 32), mask, 0.04)
    loss.backward()
    no_grad = [n for n, p in student.named_parameters() if p.requires_grad and (p.grad is None or
                                                                                  not p.grad.abs().sum() > 0)]
    assert not no_grad, no_grad
    assert all(p.grad is None for p in teacher.parameters()) and torch.isfinite(loss)


def test_forward_is_deterministic_under_a_seed_and_ema_moves_teacher():
    outs = []
    for _ in range(2):
        torch.manual_seed(1)
        student, teacher = build_ino("vit_micro", 8, out_dim=16, hidden_dim=16, bottleneck_dim=8)
        outs.append(student(_batch()[0])[0])
    assert torch.equal(outs[0], outs[1])
    with torch.no_grad():
        for p in student.parameters():
            p.add_(1.0)
    before = next(teacher.parameters()).clone()
    ema_update(teacher, student, 0.9)
    assert torch.allclose(next(teacher.parameters()), before + 0.1, atol=1e-6)


def test_shared_mask_and_schedules():
    a, b = shared_patch_mask(784, step=3, seed=0), shared_patch_mask(784, step=3, seed=0)
    assert torch.equal(a, b)  # every rank and a resumed run draw the same mask
    counts = [int(shared_patch_mask(784, s, seed=0).sum()) for s in range(200)]
    empty = sum(c == 0 for c in counts)
    assert 60 < empty < 140 and all(c == 0 or 78 <= c <= 392 for c in counts)  # p = 0.5, ratio in [0.1, 0.5]
    lr = cosine_schedule(1.0, 0.0, epochs=4, iters_per_epoch=10, warmup_epochs=1)
    assert len(lr) == 40 and lr[0] == 0 and lr[10] == pytest.approx(1.0) and lr[-1] < 0.01
    assert teacher_temp_schedule(0.02, 0.04, 2, 4, 3).tolist() == pytest.approx([0.02] * 3 + [0.04] * 9)
    assert peak_learning_rate(3e-3, 4, 4, 4) == pytest.approx(1.875e-4)


def test_checkpoint_loaders_ours_official_ino_and_dino(tmp_path):
    torch.manual_seed(0)
    student, teacher = build_ino("vit_micro", 8, out_dim=16, hidden_dim=16, bottleneck_dim=8)
    x = torch.randn(1, 3, 32, 48)
    ref = student.backbone.eval().block_features(x, 3)
    torch.save({"model": student.state_dict(), "ema": teacher.state_dict(), "config": {}}, tmp_path / "ours.pt")
    assert torch.allclose(load_backbone(tmp_path / "ours.pt").block_features(x, 3), ref)
    # official INO: DDP + MultiCropWrapper prefixes, head keys, 'student' / 'teacher' entries
    official = {f"module.{k}": v for k, v in student.state_dict().items()}
    official["module.backbone.masked_embed"] = official.pop("module.backbone.mask_token")
    torch.save({"student": official, "teacher": {}, "epoch": 3}, tmp_path / "checkpoint.pth")
    assert torch.allclose(load_backbone(tmp_path / "checkpoint.pth").block_features(x, 3), ref)
    # DINO release: a bare ViT state dict (no mask token) with a 28 x 28 position grid
    big = vit("vit_micro", pos_grid=28)
    dino = {k: v for k, v in big.state_dict().items() if k != "mask_token"}
    torch.save(dino, tmp_path / "dino.pth")
    loaded = load_backbone(tmp_path / "dino.pth")
    assert loaded.pos_embed.shape == (1, 785, 64)
    assert torch.allclose(loaded.block_features(x, 4), big.eval().block_features(x, 4))
    assert infer_arch(backbone_state(dino)) == ("vit_micro", 8, 4)
    torch.save({"student": {"foo": torch.zeros(1)}}, tmp_path / "bad.pth")
    from common.errors import DataError
    with pytest.raises(DataError, match="bad.pth"):
        load_backbone(tmp_path / "bad.pth")


def test_weight_decay_exempts_biases_and_1d_params_only_as_official():
    """Official `utils.get_params_groups`: `name.endswith('.bias') or len(param.shape) == 1` is not decayed;
    the 3-D tokens and position embedding are."""
    from ino.train import param_groups
    student, _ = build_ino("vit_micro", 8, out_dim=16, hidden_dim=16, bottleneck_dim=8)
    decay, no_decay = param_groups(student)
    names = {id(p): n for n, p in student.named_parameters()}
    no_decay_names = {names[id(p)] for p in no_decay["params"]}
    decay_names = {names[id(p)] for p in decay["params"]}
    assert no_decay["weight_decay"] == 0.0 and "weight_decay" not in decay
    assert {"backbone.cls_token", "backbone.mask_token", "backbone.pos_embed"} <= decay_names
    expected = {n for n, p in student.named_parameters() if p.requires_grad and (n.endswith(".bias") or p.ndim == 1)}
    assert no_decay_names == expected and decay_names.isdisjoint(expected)


def test_eval_speed_never_reads_zero_frames_per_second():
    from ino.eval import speed_text
    assert speed_text(3, 600.0) == "200 s/frame"
    assert speed_text(100, 4.0) == "25 frames/s"
    assert "0.0" not in speed_text(1, 1e4)

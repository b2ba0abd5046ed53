"""The teacher/student zoo: output shapes, gradients, published parameter counts, checkpoint loading."""
import pytest
import torch
from ipwd.models import CIFAR_MODELS, IMAGENET_MODELS, TwoHeadStudent, build_model, extract_state_dict, load_teacher

from common.checkpoint import save_checkpoint
from common.errors import DataError

# Published counts, for the class counts of the publishing paper (CIFAR-10 heads), at the paper's precision:
# He et al. CVPR 2016 Table 6 (CIFAR-10 ResNets, option-B shortcuts in our/RepDistiller's code -> same M at
# 2 decimals), Zagoruyko & Komodakis BMVC 2016 Table 1 (WRN-40-1 0.6M, WRN-40-2 2.2M), and torchvision's
# documented counts for its ImageNet ResNets (exact).
PUBLISHED_CIFAR10 = {"resnet20": (0.27, 2), "resnet32": (0.46, 2), "resnet44": (0.66, 2), "resnet56": (0.85, 2),
                     "resnet110": (1.7, 1), "wrn_40_1": (0.6, 1), "wrn_40_2": (2.2, 1)}
TORCHVISION = {"tv_resnet18": 11_689_512, "tv_resnet34": 21_797_672, "tv_resnet50": 25_557_032}


def n_params(model):
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", sorted(PUBLISHED_CIFAR10))
def test_parameter_count_matches_paper(name):
    millions, digits = PUBLISHED_CIFAR10[name]
    count = n_params(build_model(name, 10))
    # truncation or rounding to the paper's precision
    assert round(count / 1e6, digits) == millions or int(count / 10 ** (6 - digits)) / 10 ** digits == millions


@pytest.mark.parametrize("name", sorted(TORCHVISION))
def test_torchvision_parameter_count(name):
    assert n_params(build_model(name, 1000)) == TORCHVISION[name]


@pytest.mark.parametrize("name", sorted(CIFAR_MODELS))
def test_cifar_model_shape_and_every_parameter_gets_a_gradient(name):
    torch.manual_seed(0)
    model = build_model(name, 7)
    x = torch.randn(2, 3, 32, 32)
    logits = model(x)
    assert logits.shape == (2, 7) and torch.isfinite(logits).all()
    assert model.forward_features(x).shape == (2, model.num_features)
    logits.logsumexp(1).sum().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing


def test_imagenet_resnet_shape_and_gradients():
    model = build_model("tv_resnet18", 5)
    out = model(torch.randn(2, 3, 64, 64))  # adaptive pooling: small inputs keep the test fast
    assert out.shape == (2, 5)
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    assert set(IMAGENET_MODELS) == set(TORCHVISION) | {"mobilenetv1"}


def mobilenetv1_params_by_hand(num_classes):
    """OFD's MobileNet from its layer list (clovaai/overhaul-distillation ImageNet/models/MobileNet.py).

    Stem 3x3 conv 3->32 (no bias) + BN(32): 27*32 + 2*32 = 928. A depthwise-separable block in->out: 3x3
    depthwise conv 9*in, BN 2*in, 1x1 pointwise conv in*out, BN 2*out (no conv biases). fc 1024*C + C.
    """
    blocks = [(32, 64), (64, 128), (128, 128), (128, 256), (256, 256), (256, 512)] + [(512, 512)] * 5 + \
        [(512, 1024), (1024, 1024)]
    stem = 3 * 9 * 32 + 2 * 32
    body = sum(9 * i + 2 * i + i * o + 2 * o for i, o in blocks)
    return stem + body + 1024 * num_classes + num_classes


def test_mobilenetv1_parameter_count_is_the_reference_architecture():
    assert mobilenetv1_params_by_hand(1000) == 4_231_976   # OFD's README: 4.23M
    assert n_params(build_model("mobilenetv1", 1000)) == 4_231_976
    assert n_params(build_model("mobilenetv1", 100)) == mobilenetv1_params_by_hand(100)


def test_mobilenetv1_layout_matches_the_reference_state_dict():
    """Parameter names and shapes of OFD's / mdistiller's MobileNet, so their student files load unchanged."""
    model = build_model("MobileNetV1", 1000)
    state = model.state_dict()
    assert state["model.0.0.weight"].shape == (32, 3, 3, 3) and state["model.0.1.running_mean"].shape == (32,)
    assert state["model.1.0.weight"].shape == (32, 1, 3, 3)        # depthwise
    assert state["model.1.3.weight"].shape == (64, 32, 1, 1)       # pointwise
    assert state["model.13.4.weight"].shape == (1024,) and state["model.13.3.weight"].shape == (1024, 1024, 1, 1)
    assert state["fc.weight"].shape == (1000, 1024) and state["fc.bias"].shape == (1000,)
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 1 + 2 * 13 and all(m.bias is None for m in convs)
    assert sum(k.endswith("running_var") for k in state) == 1 + 2 * 13
    assert not [k for k in state if k.startswith("model.14")]     # 14 stages: stem + 13 blocks


def test_mobilenetv1_shape_pooling_and_every_parameter_gets_a_gradient():
    torch.manual_seed(0)
    model = build_model("mobilenetv1", 1000)
    x = torch.randn(2, 3, 224, 224)
    fmap = model.model(x)
    assert fmap.shape == (2, 1024, 7, 7)                            # total stride 32
    feats = model.forward_features(x)
    # at 224x224 the adaptive pooling is OFD's AvgPool2d(7)
    torch.testing.assert_close(feats, torch.nn.functional.avg_pool2d(fmap, 7).flatten(1))
    logits = model(x)
    assert logits.shape == (2, 1000) and torch.isfinite(logits).all() and model.num_features == 1024
    logits.logsumexp(1).sum().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()
               or not p.grad.abs().sum() > 0]
    assert not missing
    student = TwoHeadStudent(build_model("mobilenetv1", 5), 5)     # the IPWD student, small input for speed
    main, aux = student(torch.randn(2, 3, 64, 64))
    assert main.shape == aux.shape == (2, 5)
    (main.logsumexp(1).sum() + aux.logsumexp(1).sum()).backward()
    assert all(p.grad is not None for p in student.parameters())


def test_two_head_student_heads_share_the_backbone():
    student = TwoHeadStudent(build_model("resnet8", 6), 6)
    main, aux = student(torch.randn(3, 3, 32, 32))
    assert main.shape == aux.shape == (3, 6)
    (main.sum() + aux.sum()).backward()
    assert all(p.grad is not None for p in student.parameters())


def test_repdistiller_aliases_and_unknown_name():
    assert type(build_model("ShuffleV1", 10)) is type(build_model("shufflenetv1", 10))
    with pytest.raises(ValueError, match="unknown model"):
        build_model("resnet9000", 10)


def test_teacher_loader_round_trip_mdistiller_layout(tmp_path):
    torch.manual_seed(0)
    teacher = build_model("resnet8x4", 100).eval()
    # mdistiller / RepDistiller `ckpt_epoch_240.pth`: {'model': state_dict, 'accuracy', 'epoch', ...}; also
    # the DataParallel `module.` prefix some re-trained teachers carry.
    for i, state in enumerate([teacher.state_dict(), {f"module.{k}": v for k, v in teacher.state_dict().items()}]):
        path = tmp_path / f"ckpt{i}.pth"
        torch.save({"model": state, "accuracy": 79.42, "epoch": 240, "optimizer": None}, path)
        loaded = load_teacher("resnet8x4", path, 100).eval()
        x = torch.randn(2, 3, 32, 32)
        torch.testing.assert_close(loaded(x), teacher(x), rtol=0, atol=0)


def test_teacher_loader_reads_our_two_head_checkpoint_and_rejects_bad_files(tmp_path):
    student = TwoHeadStudent(build_model("resnet8", 10), 10)
    save_checkpoint(tmp_path / "best.pt", {"model": student.state_dict(), "config": {}})
    loaded = load_teacher("resnet8", tmp_path / "best.pt", 10).eval()
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(loaded(x), student.eval()(x)[0])
    assert not any(k.startswith("aux_head") for k in extract_state_dict({"model": student.state_dict()}))
    with pytest.raises(DataError, match="resnet20"):       # weights of another architecture
        load_teacher("resnet20", tmp_path / "best.pt", 10)
    with pytest.raises(DataError, match="missing.pth"):    # no such file
        load_teacher("resnet8", tmp_path / "missing.pth", 10)
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(DataError, match="junk.pth"):
        load_teacher("resnet8", tmp_path / "junk.pth", 10)

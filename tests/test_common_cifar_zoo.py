"""common/models: the KD zoo shared by ipwd and ickd keeps the parameter counts it had in ipwd (issue 17)."""
import pytest

from common.models import CIFAR_MODELS, build_model

# measured on the zoo before it moved out of distillation/ipwd/models (100 classes; ipwd README)
PARAMS = {"resnet8": 83_892, "resnet14": 181_108, "resnet20": 278_324, "resnet32": 472_756, "resnet44": 667_188,
          "resnet56": 861_620, "resnet110": 1_736_564, "resnet8x4": 1_233_540, "resnet32x4": 7_433_860,
          "resnet50": 23_705_252, "wrn_16_2": 703_284, "wrn_40_1": 569_780, "wrn_40_2": 2_255_156,
          "vgg8": 3_965_028, "vgg13": 9_462_180, "mobilenetv2": 812_836, "shufflenetv1": 949_258,
          "shufflenetv2": 1_355_528}


def test_every_cifar_model_is_counted():
    assert set(CIFAR_MODELS) == set(PARAMS)


@pytest.mark.parametrize("name", sorted(PARAMS))
def test_parameter_count_unchanged(name):
    assert sum(p.numel() for p in build_model(name, 100).parameters()) == PARAMS[name]


def test_model_classes_blocks_and_the_feature_map_interface():
    """Each builder makes the class and blocks it should; logits = head(mean of forward_feature_map)."""
    import torch

    from common.models.cifar_resnet import BasicBlock, CifarResNet
    from common.models.cifar_resnet50 import Bottleneck, CifarResNet50
    from common.models.classifier import ZooClassifier
    from common.models.mobilenetv2 import InvertedResidual, MobileNetV2
    from common.models.shufflenet import ShuffleNetV1, ShuffleNetV2, ShuffleV1Block, ShuffleV2Block, ShuffleV2Down
    from common.models.vgg import VGG
    from common.models.wrn import WideBasic, WideResNet, WideStage

    expected = {"resnet8": (CifarResNet, [BasicBlock]), "resnet50": (CifarResNet50, [Bottleneck]),
                "wrn_16_2": (WideResNet, [WideStage, WideBasic]), "vgg8": (VGG, []),
                "mobilenetv2": (MobileNetV2, [InvertedResidual]), "shufflenetv1": (ShuffleNetV1, [ShuffleV1Block]),
                "shufflenetv2": (ShuffleNetV2, [ShuffleV2Block, ShuffleV2Down])}
    torch.manual_seed(0)
    x = torch.randn(2, 3, 32, 32)
    for name, (cls, blocks) in expected.items():
        model = build_model(name, 7).eval()
        assert isinstance(model, cls) and isinstance(model, ZooClassifier), name
        assert all(any(isinstance(m, b) for m in model.modules()) for b in blocks), name
        with torch.no_grad():
            fmap = model.forward_feature_map(x)
            assert fmap.ndim == 4 and fmap.shape[1] == model.num_features, name
            torch.testing.assert_close(model(x), model.head(fmap.mean(dim=(2, 3))))


def test_imagenet_models_and_helpers():
    import torch

    from common.models import extract_state_dict
    from common.models.imagenet import ImageNetResNet, resnet18, resnet34
    from common.models.mobilenetv1 import MobileNetV1, conv_bn_relu, depthwise_separable, mobilenetv1
    from common.models.shufflenet import channel_shuffle

    assert isinstance(resnet18(), ImageNetResNet) and sum(p.numel() for p in resnet18().parameters()) == 11_689_512
    assert sum(p.numel() for p in resnet34().parameters()) == 21_797_672          # torchvision's published counts
    net = mobilenetv1(num_classes=5).eval()
    assert isinstance(net, MobileNetV1)
    with torch.no_grad():
        fmap = net.forward_feature_map(torch.randn(1, 3, 64, 64))
    assert fmap.shape == (1, 1024, 2, 2)
    assert [type(m).__name__ for m in conv_bn_relu(3, 8, 2)] == ["Conv2d", "BatchNorm2d", "ReLU"]
    assert depthwise_separable(8, 16, 1)[0].groups == 8 and depthwise_separable(8, 16, 1)[3].out_channels == 16
    # channels 0..5 in 2 groups [0 1 2 | 3 4 5] interleave to 0 3 1 4 2 5
    x = torch.arange(6.0).reshape(1, 6, 1, 1)
    assert channel_shuffle(x, 2).flatten().tolist() == [0, 3, 1, 4, 2, 5]
    state = {"module.fc.weight": torch.ones(1), "module.backbone.conv1.weight": torch.zeros(1),
             "aux_head.weight": torch.ones(1)}
    assert set(extract_state_dict({"model": state})) == {"fc.weight", "conv1.weight"}


def test_each_builder_function_called_directly():
    """The builder functions themselves (not only through build_model) make the counted networks."""
    import torchvision

    from common.models import cifar_resnet, cifar_resnet50, imagenet, mobilenetv2, shufflenet, vgg, wrn

    builders = [cifar_resnet.resnet8, cifar_resnet.resnet14, cifar_resnet.resnet20, cifar_resnet.resnet32,
                cifar_resnet.resnet44, cifar_resnet.resnet56, cifar_resnet.resnet110, cifar_resnet.resnet8x4,
                cifar_resnet.resnet32x4, cifar_resnet50.resnet50, mobilenetv2.mobilenetv2, shufflenet.shufflenetv1,
                shufflenet.shufflenetv2, vgg.vgg8, vgg.vgg13, wrn.wrn_16_2, wrn.wrn_40_1, wrn.wrn_40_2]
    for build in builders:
        assert sum(p.numel() for p in build(num_classes=100).parameters()) == PARAMS[build.__name__], build
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(imagenet.resnet50(num_classes=1000)) == count(torchvision.models.resnet50(num_classes=1000))

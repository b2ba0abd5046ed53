"""Unit tests of the DAFlow network and loss: shapes, gradients, determinism, warp backends, loss weights."""
from pathlib import Path

import pytest
import torch
from daflow.losses import DAFlowLoss, VGG19Features, gram
from daflow.model import SDAFNet


def batch(b=2, h=64, w=48, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.rand(b, 3, h, w, generator=g) * 2 - 1 for _ in range(4)]


def test_tiny_outputs_every_scale_and_all_parameters_get_gradients():
    torch.manual_seed(0)
    model = SDAFNet.tiny()
    cloth, agnostic, pose, person = batch()
    outs = model(cloth, agnostic, pose)
    assert [tuple(o.shape[2:]) for o in outs] == [(8, 6), (16, 12), (32, 24), (64, 48)]
    assert all(torch.isfinite(o).all() for o in outs)
    loss, _ = DAFlowLoss()(outs, person)
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, missing
    assert model(cloth, agnostic, pose, return_all=False)[-1].shape == (2, 3, 64, 48)


def test_paper_configuration_size_and_levels():
    model = SDAFNet.paper()
    params = sum(p.numel() for p in model.parameters())
    assert abs(params / 1e6 - 37.65) < 0.2, params  # 37.65 M computed from the official code
    assert len(model.dafnet.Cross_MFEs) == 5 and model.dafnet.num_flows == 6


def test_determinism_and_backend_parity():
    cloth, agnostic, pose, _ = batch(seed=1)
    torch.manual_seed(3)
    a = SDAFNet.tiny("reference").double().eval()
    torch.manual_seed(3)
    b = SDAFNet.tiny("deform_conv").double().eval()
    args = [t.double() for t in (cloth, agnostic, pose)]
    out_a, out_b = a(*args), b(*args)
    for x, y in zip(out_a, out_b, strict=True):
        assert torch.allclose(x, y, atol=1e-10)
    assert torch.equal(a(*args)[-1], out_a[-1])


def test_multiscale_l1_weights_are_s_plus_one():
    target = torch.zeros(1, 3, 16, 12)
    outs = [torch.full((1, 3, 16 // 2 ** (3 - s), 12 // 2 ** (3 - s)), 1.0) for s in range(4)]
    total, terms = DAFlowLoss()(outs, target)
    assert total.item() == pytest.approx(1 + 2 + 3 + 4) and terms["l1"] == pytest.approx(4.0)


def test_perceptual_terms_with_random_vgg():
    torch.manual_seed(0)
    vgg = VGG19Features(pretrained=False)
    f = torch.randn(2, 4, 3, 5)
    g = gram(f)
    assert torch.allclose(g[0], f[0].reshape(4, 15) @ f[0].reshape(4, 15).T / 60)
    loss = DAFlowLoss(vgg=vgg)
    target = torch.rand(1, 3, 128, 96) * 2 - 1
    outs = [torch.nn.functional.interpolate(target, scale_factor=0.5 ** (3 - s)) + 0.1 for s in range(4)]
    total, terms = loss(outs, target)
    assert terms["style"] > 0 and terms["content"] > 0
    same, terms0 = loss([torch.nn.functional.interpolate(target, size=o.shape[2:], mode="bilinear")
                         for o in outs], target)
    assert same.item() == pytest.approx(0.0, abs=1e-6) and total.item() > 0
    with pytest.raises(Exception, match="vgg19-dcbb9e9d.pth"):
        VGG19Features()


def test_bench_smoke_preset_writes_json(tmp_path):
    from daflow.bench import main as bench_main
    result = bench_main(["--device", "cpu", "--preset", "smoke", "--steps", "1", "--warmup", "0",
                         "--out", str(tmp_path / "b.json")])
    assert (tmp_path / "b.json").exists() and len(result["rows"]) == 2
    assert all(r["ms_per_step"] > 0 for r in result["rows"])


def test_infer_on_own_files(tmp_path):
    """The inference command on a generated person + garment + BODY_25 JSON + parse map."""
    from pathlib import Path

    from daflow.infer import main as infer_main
    from daflow.train import TrainConfig, build_model

    from common.checkpoint import save_checkpoint, training_state
    from common.config import config_from_dict, config_to_dict, load_yaml
    from common.data.tryon import write_synthetic_tryon
    here = Path(__file__).resolve().parents[1]
    cfg = config_from_dict(TrainConfig, load_yaml(here / "configs" / "smoke.yaml"))
    save_checkpoint(tmp_path / "m.pt", training_state(build_model(cfg), config=config_to_dict(cfg)))
    d = write_synthetic_tryon(tmp_path / "syn", num_train=1, num_test=1, height=128, width=96) / "train"
    out = tmp_path / "res.png"
    infer_main(["--checkpoint", str(tmp_path / "m.pt"), "--person", str(d / "image" / "00000_00.jpg"),
                "--cloth", str(d / "cloth" / "00000_00.jpg"), "--keypoints",
                str(d / "openpose_json" / "00000_00_keypoints.json"), "--parse",
                str(d / "image-parse-v3" / "00000_00.png"), "--out", str(out), "--device", "cpu"])
    import cv2
    assert cv2.imread(str(out)).shape == (64, 48, 3)


OFFICIAL_KEYS = Path(__file__).resolve().parent / "data" / "official_sdafnet_state_dict_keys.json"


def official_state_dict(seed=0):
    """Random tensors under the names and shapes that the official SDAFNet_Tryon(ref_in_channel=6) has (the
    committed list was dumped from the official class, OFA-Sys/DAFlow sdafnet.py, not from ours)."""
    import json
    listing = json.loads(OFFICIAL_KEYS.read_text())
    assert "f46388809dd4c1ada8a7202b1338a84f5147c9dc" in listing["source"]
    g = torch.Generator().manual_seed(seed)
    state = {}
    for name, shape in listing["keys"]:
        if name.endswith("num_batches_tracked"):
            state[name] = torch.tensor(7)
        elif name.endswith("running_var"):
            state[name] = torch.rand(shape, generator=g) + 0.5
        else:
            state[name] = torch.randn(shape, generator=g) * 0.05
    return state, listing


def test_our_network_has_the_official_names_and_shapes():
    state, listing = official_state_dict()
    ours = {k: list(v.shape) for k, v in SDAFNet.paper().state_dict().items()}
    assert ours == {k: list(v.shape) for k, v in state.items()}
    assert sum(p.numel() for p in SDAFNet.paper().parameters()) == listing["num_parameters"]


def test_official_checkpoint_layout_loads(tmp_path):
    """A state dict named and shaped as the official class makes it, saved the three ways the official scripts do
    (plain ckpt_viton.pt, training's {state_dict, optim, opt}, DataParallel 'module.' prefix), loads strictly."""
    from daflow.checkpoint import load_official_checkpoint

    from common.errors import DataError
    state, _ = official_state_dict()
    x = [torch.rand(1, 3, 64, 64) * 2 - 1 for _ in range(3)]
    expected = None
    for i, obj in enumerate((state, {"state_dict": state, "optim": {}, "opt": None},
                             {f"module.{k}": v for k, v in state.items()})):
        torch.save(obj, tmp_path / f"{i}.pt")
        model = load_official_checkpoint(tmp_path / f"{i}.pt")
        for k, v in model.state_dict().items():
            assert torch.equal(v, state[k]), k
        out = model(*x, return_all=False)[-1]
        expected = out if expected is None else expected
        assert torch.equal(out, expected)
    torch.save({"foo.weight": torch.zeros(1)}, tmp_path / "bad.pt")
    with pytest.raises(DataError, match="missing"):
        load_official_checkpoint(tmp_path / "bad.pt")


def test_region_ssim_with_the_whole_image_as_region_is_the_daflow_ssim():
    import numpy as np
    from daflow.evaluate import region_ssim

    from common.metrics.tryon import ssim
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 256, (2, 2, 20, 16, 3), dtype=np.uint8)
    whole = np.ones((2, 20, 16), bool)
    to = lambda x: torch.from_numpy(x).permute(0, 3, 1, 2).double() / 255.0  # noqa: E731
    ref = float(ssim(to(a), to(b)))
    assert region_ssim(a, b, whole) == pytest.approx(ref, abs=1e-12)
    half = whole.copy()
    half[:, 10:] = False
    assert region_ssim(a, a, half) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        region_ssim(a, b, np.zeros_like(whole))


class _RecordingLPIPS(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.sizes = []

    def forward(self, x, y):
        self.sizes.append(tuple(x.shape[2:]))
        return (x - y).abs().flatten(1).mean(1)


def test_perceptual_terms_apply_at_every_scale_as_the_official_loss():
    """train_SDAFNet_viton.py applies LPIPS/style/content to all five outputs at 256x192 (s=0 upsampled x2, so
    the VGG inputs are 32x24, 32x24, 64x48, 128x96, 256x192); perceptual_min_side=32 is the old behaviour."""
    target = torch.zeros(1, 3, 256, 192)
    outs = [torch.full((1, 3, 256 // 2 ** (4 - s), 192 // 2 ** (4 - s)), 0.5) for s in range(5)]
    lp = _RecordingLPIPS()
    DAFlowLoss(lpips=lp)(outs, target)
    assert lp.sizes == [(32, 24), (32, 24), (64, 48), (128, 96), (256, 192)]
    lp.sizes.clear()
    DAFlowLoss(lpips=lp, perceptual_min_side=32)(outs, target)
    assert lp.sizes == [(64, 48), (128, 96), (256, 192)]
    small = [torch.zeros(1, 3, 8 * 2 ** s, 6 * 2 ** s) for s in range(4)]  # 64x48, 4 scales: s=0 is 16x12
    with pytest.raises(ValueError, match="too small"):
        DAFlowLoss(lpips=lp)(small, torch.zeros(1, 3, 64, 48))


def test_infer_takes_the_released_checkpoint_layout(tmp_path):
    """infer.py with a plain state_dict named as the official SDAFNet_Tryon (the ckpt_viton.pt form)."""
    import cv2
    from daflow.infer import main as infer_main

    from common.data.tryon import write_synthetic_tryon
    state, _ = official_state_dict()
    torch.save(state, tmp_path / "ckpt_viton.pt")
    d = write_synthetic_tryon(tmp_path / "syn", num_train=1, num_test=1, height=128, width=96) / "train"
    out = tmp_path / "res.png"
    infer_main(["--checkpoint", str(tmp_path / "ckpt_viton.pt"), "--person", str(d / "image" / "00000_00.jpg"),
                "--cloth", str(d / "cloth" / "00000_00.jpg"), "--keypoints",
                str(d / "openpose_json" / "00000_00_keypoints.json"), "--parse",
                str(d / "image-parse-v3" / "00000_00.png"), "--out", str(out), "--device", "cpu",
                "--height", "64", "--width", "64"])
    assert cv2.imread(str(out)).shape == (64, 64, 3)

"""DS-ViT++ end to end on the generated graded-difficulty data (configs/dsvit_smoke.yaml): Stage I (sandwich, in-place
bootstrapping, MvCo, AdamW) then Stage II (three stage gates), the quality floor, eval.py's numbers and picture,
and the ImageNet DeiT-S configs."""
import dataclasses
import json
from pathlib import Path

import cv2
import pytest
import torch
from dsnet import eval as dsnet_eval
from dsnet import train as dsnet_train
from dsnet.vit import ds_vit_tiny

from common.config import parse_config

CONFIGS = Path(dsnet_train.__file__).parent / "configs"


@pytest.fixture(scope="module")
def vit_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("dsvit") / "train"
    dsnet_train.main(["--config", "configs/dsvit_smoke.yaml", "--out_dir", str(out), "--progress", "false"])
    return out


def test_vit_supernet_beats_chance_and_the_gated_madds_lie_between_the_extreme_widths(vit_run):
    """Measured with seeds 0 / 1 / 2 (2026-12-03): top1_width_3 0.853 / 0.847 / 0.831, gated top-1 0.637 / 0.734 /
    0.725 at 1.04M / 0.69M / 0.87M MAdds (width 0: 0.39M, width 3: 2.83M), shuffled-route control 0.547 / 0.688 /
    0.619; chance is 0.1."""
    m = json.loads((vit_run / "metrics.json").read_text())
    assert m["top1_width_3"] >= 0.6, m
    assert m["test_top1"] >= 0.5, m
    assert m["madds_width_0"] < m["mean_madds"] < m["madds_width_3"], m
    # more than the three slimming heads' 3 * 16 * 4 MAdds above the slimmest width: some images go wider
    assert m["mean_madds"] - m["madds_width_0"] > 3 * 16 * 4 * 10, m
    assert {f"top1_width_{i}" for i in range(4)} <= set(m)
    for g in range(3):
        assert sum(m[f"route_frac_gate{g}_{k}"] for k in range(4)) == pytest.approx(1.0)
    # the control: every gate's routes shuffled across the test set, same histograms, so the same mean MAdds; the
    # learned gates beat it (seeds 0 / 1 / 2: +0.091 / +0.047 / +0.106)
    assert m["random_gate_mean_madds"] == pytest.approx(m["mean_madds"], rel=1e-5)
    assert m["test_top1"] - m["random_gate_top1"] >= 0.02, m
    img = cv2.imread(str(vit_run / "accuracy_vs_madds.png"))
    assert img is not None and (img < 250).any()
    ckpt = torch.load(vit_run / "checkpoints" / "last.pt", weights_only=False)
    assert ckpt["stage"] == "gate" and any(k.startswith("stage_gates.2.gate.0") for k in ckpt["model"])


def test_vit_eval_reproduces_the_training_run_numbers(vit_run, tmp_path):
    dsnet_eval.main(["--checkpoint", str(vit_run / "checkpoints" / "last.pt"), "--out_dir", str(tmp_path),
                     "--progress", "false", "--num_workers", "0"])
    ours = json.loads((tmp_path / "metrics.json").read_text())
    train = json.loads((vit_run / "metrics.json").read_text())
    assert ours.keys() == train.keys() and {"test_top1", "mean_madds"} <= ours.keys()
    for k in train:
        assert ours[k] == pytest.approx(train[k]), k
    # the gated point is drawn for a multi-gate net too: the gated PNG differs from the no-gate one
    gated = cv2.imread(str(tmp_path / "accuracy_vs_madds.png"))
    dsnet_eval.main(["--checkpoint", str(vit_run / "checkpoints" / "last.pt"), "--out_dir", str(tmp_path / "static"),
                     "--progress", "false", "--num_workers", "0", "--gated", "false"])
    static = cv2.imread(str(tmp_path / "static" / "accuracy_vs_madds.png"))
    assert gated.shape == static.shape and (gated != static).any()


def test_vit_imagenet_configs_follow_the_deit_s_recipe():
    for stage in ("supernet", "gate"):
        cfg = parse_config(dsnet_train.DSNetConfig, ["--config", str(CONFIGS / f"imagenet_ds_vit_deit_s_{stage}.yaml")])
        assert cfg.model == "ds_vit_deit_s" and cfg.stage == stage and cfg.image_size == 224
        assert dsnet_train.use_mvco(cfg) and cfg.mvco_views == 2 and cfg.vit_idle == "passthrough"
        assert (cfg.optimizer, cfg.epochs, cfg.weight_decay, cfg.drop_path) == ("adamw", 300, 0.05, 0.1)
        assert cfg.lr == pytest.approx(5e-4 * cfg.batch_size / 512) and cfg.warmup_epochs == 5
        assert (cfg.gate_epochs, cfg.gate_lr, cfg.gate_weight_decay, cfg.num_routes) == (30, 0.08, 0.01, 4)
        net = dsnet_train.make_model(cfg, 1000)  # the research notes' DeiT-S lists [assumption], as config keys
        assert (net.embed_dims, net.num_heads, net.mlp_dims) == ([192, 256, 320, 384], [3, 4, 5, 6],
                                                                  [768, 1024, 1280, 1536])
        assert net.stage_starts == [0, 4, 8, 12] and net.img_size == 224
    other = parse_config(dsnet_train.DSNetConfig, ["--config", str(CONFIGS / "dsvit_smoke.yaml"),
                                                   "--vit_mlp_dims", "32,64,96,128", "--vit_stages", "2,1"])
    net = dsnet_train.make_model(other, 10)
    assert net.mlp_dims == [32, 64, 96, 128] and net.stage_starts == [0, 2, 3] and len(net.stage_gates) == 2
    smoke = parse_config(dsnet_train.DSNetConfig, ["--config", str(CONFIGS / "smoke.yaml")])
    assert not dsnet_train.use_mvco(smoke)  # MvCo is on by default for the ViT only


def test_sandwich_draws_uniform_choices_or_one_choice_per_gated_stage():
    net = ds_vit_tiny(10)
    cfg = dataclasses.replace(dsnet_train.DSNetConfig(), model="ds_vit_tiny")
    widths = dsnet_train.sandwich(cfg, net, step=3)
    assert widths[0] == "largest" and widths[-1] == "smallest" and all(1 <= w <= 3 for w in widths[1:-1])
    per_stage = dataclasses.replace(cfg, sandwich_per_stage=True)
    draws = [w for step in range(20) for w in dsnet_train.sandwich(per_stage, net, step)[1:-1]]
    assert all(isinstance(w, tuple) and len(w) == 3 and all(0 <= c <= 3 for c in w) for w in draws)
    assert len({len(set(w)) for w in draws}) > 1  # mixed routes occur
    with torch.no_grad():
        net(torch.randn(1, 3, 32, 32), draws[0])


def test_vit_resume_after_a_kill_in_stage_one_is_bit_identical(tmp_path, monkeypatch):
    """Kill right after the first Stage I checkpoint (MvCo's two-view loader, AdamW, drop-path), resume, and end
    with the uninterrupted run's weights, EMA and metrics (the kill is simulated in-process, as in test_dsnet_train)."""
    args = ["--config", "configs/dsvit_smoke.yaml", "--progress", "false", "--synthetic_train_per_class", "16",
            "--synthetic_test_per_class", "8", "--epochs", "2", "--gate_epochs", "1", "--drop_path", "0.1"]
    dsnet_train.main(args + ["--out_dir", str(tmp_path / "full")])

    real_save, saves = dsnet_train.save_checkpoint, []

    def save_then_die(path, state):
        real_save(path, state)
        saves.append(path.name)
        if saves == ["last.pt"]:
            raise RuntimeError("killed")

    monkeypatch.setattr(dsnet_train, "save_checkpoint", save_then_die)
    with pytest.raises(RuntimeError, match="killed"):
        dsnet_train.main(args + ["--out_dir", str(tmp_path / "cut")])
    monkeypatch.setattr(dsnet_train, "save_checkpoint", real_save)
    dsnet_train.main(args + ["--out_dir", str(tmp_path / "cut"), "--resume"])

    full = torch.load(tmp_path / "full" / "checkpoints" / "last.pt", weights_only=False)
    cut = torch.load(tmp_path / "cut" / "checkpoints" / "last.pt", weights_only=False)
    assert full["stage"] == cut["stage"] == "gate" and full["step"] == cut["step"]
    for part in ("model", "ema"):
        for key in full[part]:
            assert torch.equal(full[part][key], cut[part][key]), (part, key)
    assert json.loads((tmp_path / "full" / "metrics.json").read_text()) == \
        json.loads((tmp_path / "cut" / "metrics.json").read_text())

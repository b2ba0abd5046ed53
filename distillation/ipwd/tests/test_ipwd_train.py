"""End to end on generated CIFAR-format data: IPWD smoke run with a quality floor, eval, KD from a saved
teacher with several seeds, PS-KD + IPWD with an exact resume, and the transfer-gap table."""
import json

import cv2
import pytest
import torch
from ipwd import eval as ipwd_eval
from ipwd import train as ipwd_train


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("smoke") / "train"
    ipwd_train.main(["--config", "configs/smoke.yaml", "--out_dir", str(out), "--progress", "false"])
    return out


def test_ipwd_student_beats_chance_by_a_wide_margin(smoke_run):
    metrics = json.loads((smoke_run / "metrics.json").read_text())
    assert metrics["test_top1"] >= 0.6, metrics  # 10 balanced classes: chance is 0.1
    assert metrics["best_top1"] >= metrics["test_top1"] and 0 <= metrics["test_top5"] <= 1
    assert metrics["teacher_top1"] >= 0.6, metrics


def test_control_plain_kd_on_the_same_data(smoke_run, tmp_path):
    """Issue 19's control: plain KD from the smoke run's own teacher on the same generated data and schedule.

    Measured (README, smoke section): IPWD 1.000 and KD 1.000 top-1, seed noise 0 over seeds 0-2 on this easy
    data, so the smoke run cannot show IPWD's gain; per issue 19 item 2 both are held to "beats chance" only.
    """
    ipwd_train.main(["--config", "configs/smoke.yaml", "--out_dir", str(tmp_path), "--progress", "false",
                     "--method", "kd", "--teacher_checkpoint", str(smoke_run / "checkpoints" / "teacher" / "last.pt"),
                     "--dataset", "cifar100", "--data_root", str(smoke_run / "data" / "synthetic-cifar"),
                     "--class_groups", "0"])
    kd = json.loads((tmp_path / "metrics.json").read_text())
    ipwd = json.loads((smoke_run / "metrics.json").read_text())
    print(f"smoke top-1: ipwd {ipwd['test_top1']:.3f}, kd control {kd['test_top1']:.3f}")
    assert kd["test_top1"] >= 0.6 and ipwd["test_top1"] >= 0.6   # chance is 0.1
    assert kd["teacher_top1"] == pytest.approx(ipwd["teacher_top1"])  # the same teacher on the same test images


def test_eval_reads_the_generated_data_from_the_checkpoint(smoke_run, tmp_path):
    ipwd_eval.main(["--checkpoint", str(smoke_run / "checkpoints" / "last.pt"), "--out_dir", str(tmp_path),
                    "--progress", "false"])
    ours = json.loads((tmp_path / "metrics.json").read_text())
    train = json.loads((smoke_run / "metrics.json").read_text())
    assert set(ours) == {"test_top1", "test_top5", "best_top1"}
    assert ours["test_top1"] == pytest.approx(train["test_top1"]) and ours["best_top1"] == train["best_top1"]


def test_eval_of_an_mdistiller_style_teacher_file(smoke_run, tmp_path):
    ckpt = torch.load(smoke_run / "checkpoints" / "teacher" / "last.pt", weights_only=False)
    torch.save({"model": ckpt["model"], "accuracy": 0.0, "epoch": 240}, tmp_path / "ckpt_epoch_240.pth")
    ipwd_eval.main(["--checkpoint", str(tmp_path / "ckpt_epoch_240.pth"), "--model", "resnet14", "--dataset",
                    "cifar100", "--data_root", str(smoke_run / "data" / "synthetic-cifar"), "--out_dir",
                    str(tmp_path / "eval"), "--progress", "false"])
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["test_top1"] == pytest.approx(json.loads((smoke_run / "metrics.json").read_text())["teacher_top1"])
    assert "best_top1" not in metrics


def test_transfer_gap_table_and_plot(smoke_run):
    rows = (smoke_run / "class_groups.csv").read_text().splitlines()
    assert rows[0] == "group,teacher,student,ipwd_weight" and len(rows) == 5
    assert [r.split(",")[0] for r in rows[1:]] == ["1-3", "4-6", "7-8", "9-10"]
    assert all(float(r.split(",")[3]) > 1 for r in rows[1:])  # mean inverse propensity of each group
    img = cv2.imread(str(smoke_run / "class_groups.png"))
    assert img is not None and img.shape[2] == 3 and (img < 250).any()


def test_kd_from_a_saved_teacher_with_several_seeds(smoke_run, tmp_path):
    teacher = smoke_run / "checkpoints" / "teacher" / "best.pt"
    ipwd_train.main(["--config", "configs/smoke.yaml", "--out_dir", str(tmp_path), "--progress", "false",
                     "--method", "kd", "--teacher_checkpoint", str(teacher), "--epochs", "1", "--seeds", "0,1",
                     "--synthetic_train_per_class", "8", "--student", "resnet14",
                     "--baseline_checkpoint", str(teacher)])
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["seeds"] == 2 and "test_top1_std" in metrics and "best_top1_std" in metrics
    assert metrics["teacher_top1"] >= 0.6  # the loaded teacher is evaluated, not retrained
    for seed in (0, 1):
        assert (tmp_path / "checkpoints" / f"seed{seed}" / "last.pt").exists()
    assert (tmp_path / "checkpoints" / "best.pt").exists()
    assert not (tmp_path / "checkpoints" / "teacher").exists()
    # the teacher is a resnet14 like this student, so it can stand in for the baseline: gain = student - baseline
    header = (tmp_path / "class_groups.csv").read_text().splitlines()[0]
    assert header == "group,teacher,student,baseline,gain"


def test_pskd_ipwd_resume_is_bit_identical(tmp_path, monkeypatch):
    args = ["--config", "configs/smoke.yaml", "--progress", "false", "--method", "pskd_ipwd",
            "--synthetic_train_per_class", "8", "--epochs", "3", "--ipwd_start_epoch", "1"]
    ipwd_train.main(args + ["--out_dir", str(tmp_path / "full")])

    real_save, saves = ipwd_train.save_checkpoint, []

    def save_then_die(path, state):  # simulate a kill right after the second epoch's checkpoint
        real_save(path, state)
        saves.append(path.name)
        if saves.count("last.pt") == 2:
            raise RuntimeError("killed")

    monkeypatch.setattr(ipwd_train, "save_checkpoint", save_then_die)
    with pytest.raises(RuntimeError, match="killed"):
        ipwd_train.main(args + ["--out_dir", str(tmp_path / "cut")])
    monkeypatch.setattr(ipwd_train, "save_checkpoint", real_save)
    ipwd_train.main(args + ["--out_dir", str(tmp_path / "cut"), "--resume"])

    full = torch.load(tmp_path / "full" / "checkpoints" / "last.pt", weights_only=False)
    cut = torch.load(tmp_path / "cut" / "checkpoints" / "last.pt", weights_only=False)
    assert full["epoch"] == cut["epoch"] == 3
    for key in full["model"]:
        assert torch.equal(full["model"][key], cut["model"][key]), key
    assert torch.equal(full["pskd"]["prev_probs"], cut["pskd"]["prev_probs"])
    assert json.loads((tmp_path / "full" / "metrics.json").read_text()) == \
        json.loads((tmp_path / "cut" / "metrics.json").read_text())


def test_every_config_parses_and_follows_the_recipe():
    from pathlib import Path

    from ipwd.models import IMAGENET_MODELS

    from common.config import parse_config

    configs = sorted((Path(ipwd_train.__file__).parent / "configs").glob("*.yaml"))
    assert len(configs) >= 20
    for path in configs:
        cfg = parse_config(ipwd_train.IPWDConfig, ["--config", str(path)])
        if path.stem.startswith("cifar100_") and path.stem.endswith(("_kd", "_ipwd")) and "pskd" not in path.stem:
            assert cfg.method == path.stem.rsplit("_", 1)[1] and cfg.epochs == 240 and cfg.batch_size == 64
            assert cfg.lr == (0.01 if cfg.student in ("mobilenetv2", "shufflenetv1", "shufflenetv2") else 0.05)
            assert (cfg.temperature, cfg.ce_weight, cfg.kd_weight) == (4.0, 0.1, 0.9)
            assert f"{cfg.teacher}_{cfg.student}" in path.stem
        if path.stem.startswith("imagenet_"):
            assert cfg.dataset == "imagenet" and cfg.method == path.stem.rsplit("_", 1)[1]
            assert (cfg.epochs, cfg.batch_size, cfg.lr, cfg.weight_decay) == (100, 256, 0.1, 1e-4)
            assert cfg.lr_decay_epochs == [30, 60, 90] and not cfg.nesterov and cfg.momentum == 0.9
            assert (cfg.temperature, cfg.ce_weight, cfg.kd_weight) == (1.0, 0.5, 0.5)
            assert cfg.student in IMAGENET_MODELS and cfg.teacher in IMAGENET_MODELS
            assert f"{cfg.teacher.removeprefix('tv_')}_{cfg.student.removeprefix('tv_')}" in path.stem
    assert {"imagenet_resnet50_mobilenetv1_kd", "imagenet_resnet50_mobilenetv1_ipwd"} <= {p.stem for p in configs}


def test_class_groups_hand_computed():
    import numpy as np
    from ipwd.class_groups import group_means, group_table, teacher_class_ranking

    ranking = teacher_class_ranking([0.5, 3.0, 1.0, 2.0])                 # classes by teacher mass: 1, 3, 2, 0
    assert ranking.tolist() == [1, 3, 2, 0]
    recall = np.array([0.0, 1.0, 0.5, 0.75])
    assert group_means(ranking, recall, 2) == [0.875, 0.25]            # mean(1.0, 0.75), mean(0.5, 0.0)
    rows = group_table(ranking, {"student": recall, "gain": recall - 0.25}, 4)
    assert [r["group"] for r in rows] == ["1-1", "2-2", "3-3", "4-4"] and rows[0]["gain"] == 0.75
    assert len(group_table(ranking[:3], {"s": recall}, 4)) == 3           # never more groups than classes


def test_two_process_ddp_run(tmp_path):
    """NPROC=2 bash train.sh: torchrun, gloo on CPU; in-run teacher and IPWD student both under DDP."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    script = Path(ipwd_train.__file__).parent / "train.sh"
    env = {**os.environ, "NPROC": "2", "PYTHON": sys.executable}
    proc = subprocess.run(["bash", str(script), "--config", "configs/smoke.yaml", "--out_dir", str(tmp_path),
                           "--progress", "false", "--teacher_epochs", "1", "--epochs", "1",
                           "--synthetic_train_per_class", "8", "--class_groups", "0"],
                          capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert 0 <= metrics["test_top1"] <= 1
    assert torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=False)["epoch"] == 1

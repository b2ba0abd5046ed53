"""Issue 13 (IPWD): weight normalisation and the KD-with-IPWD's-mean-weight control, CIFAR-10 and small-image
ImageFolder data, and teacher paths resolved against the config's folder."""
import json
import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from ipwd import train as ipwd_train
from ipwd.losses import ipwd_loss, kd_mean_weight_loss, kd_per_sample, propensity_weight

from common.config import parse_config
from common.data.cifar import make_synthetic_cifar, write_cifar10
from common.data.imagefolder import write_synthetic_image_folder
from common.errors import DataError

TINY = ["--config", "configs/smoke.yaml", "--progress", "false", "--epochs", "1", "--student", "resnet8",
        "--class_groups", "0", "--batch_size", "8"]


@pytest.fixture(scope="module", autouse=True)
def restore_torch_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_weight_normalize_is_a_named_choice():
    cfg = parse_config(ipwd_train.IPWDConfig, ["--config", "configs/smoke.yaml", "--weight_normalize", "batch_mean"],
                       config_dir=ipwd_train.HERE)
    assert cfg.weight_normalize == "batch_mean"
    torch.manual_seed(0)
    m, h, y = torch.randn(6, 5), torch.randn(6, 5), torch.arange(6) % 5
    raw = propensity_weight(m, h, y, normalize="none")
    torch.testing.assert_close(propensity_weight(m, h, y, normalize="batch_mean"), raw / raw.mean())
    with pytest.raises(ValueError, match="normalize"):
        propensity_weight(m, h, y, normalize="sum")


def test_kd_with_the_mean_weight_hand_computed():
    """kd_meanw = gamma CE + alpha mean(w) mean(KL tau^2) + beta CE_aux; equals IPWD when all weights are equal."""
    torch.manual_seed(1)
    s, a, t, y = torch.randn(4, 3), torch.randn(4, 3), torch.randn(4, 3), torch.tensor([0, 1, 2, 1])
    w = propensity_weight(s, a, y)
    kd = kd_per_sample(s, t, 4.0)
    expected = 0.1 * F.cross_entropy(s, y) + 0.9 * w.mean() * kd.mean() + 1.0 * F.cross_entropy(a, y)
    loss, logs = kd_mean_weight_loss(s, a, t, y, 4.0, 0.1, 0.9, 1.0)
    torch.testing.assert_close(loss, expected)
    assert logs["weight"] == pytest.approx(w.mean().item())
    ipwd, _ = ipwd_loss(s, a, t, y, 4.0, 0.1, 0.9, 1.0)
    assert not torch.isclose(loss, ipwd)  # the weights differ per sample here, so the two objectives differ
    same = torch.zeros(4, 3)  # both heads identical: every w = 2, and IPWD is kd_meanw
    torch.testing.assert_close(kd_mean_weight_loss(same, same, t, y)[0], ipwd_loss(same, same, t, y)[0])
    # batch_mean normalisation: the factor is exactly 1, i.e. plain KD + the auxiliary head's CE
    loss1, _ = kd_mean_weight_loss(s, a, t, y, 4.0, 0.1, 0.9, 1.0, normalize="batch_mean")
    torch.testing.assert_close(loss1, 0.1 * F.cross_entropy(s, y) + 0.9 * kd.mean() + F.cross_entropy(a, y))


def test_kd_meanw_run_writes_the_weight_statistics(tmp_path):
    teacher = tmp_path / "teacher"
    ipwd_train.main(TINY + ["--method", "vanilla", "--student", "resnet8", "--out_dir", str(teacher),
                            "--synthetic_train_per_class", "6"])
    ipwd_train.main(TINY + ["--method", "kd_meanw", "--teacher_checkpoint", str(teacher / "checkpoints/last.pt"),
                            "--teacher", "resnet8", "--out_dir", str(tmp_path / "run"),
                            "--synthetic_train_per_class", "6"])
    stats = json.loads((tmp_path / "run" / "ipwd_weight_stats.json").read_text())
    raw = stats["raw"]
    assert raw["count"] == 60 and 1 < raw["min"] <= raw["p5"] <= raw["p50"] <= raw["p95"] <= raw["max"]
    assert stats["applied"] == raw and stats["weight_normalize"] == "none"
    assert 0 <= json.loads((tmp_path / "run" / "metrics.json").read_text())["test_top1"] <= 1


def test_cifar10_folder_trains(tmp_path):
    (x, y, _), (tx, ty, _) = make_synthetic_cifar(num_classes=4, train_per_class=5, test_per_class=2, seed=0)
    write_cifar10(tmp_path / "cifar-10-batches-py", (x, y), (tx, ty), label_names=list("abcdefghij"))
    ipwd_train.main(TINY + ["--method", "vanilla", "--dataset", "cifar10", "--data_root", str(tmp_path),
                            "--out_dir", str(tmp_path / "run")])
    ckpt = torch.load(tmp_path / "run" / "checkpoints" / "last.pt", weights_only=False)
    assert ckpt["model"]["fc.weight"].shape[0] == 10  # batches.meta lists 10 classes
    assert ckpt["data_dir"] == str(tmp_path / "cifar-10-batches-py")


def test_small_image_folder_with_custom_split_names(tmp_path):
    root = write_synthetic_image_folder(tmp_path / "tree", num_classes=3, per_class=(6, 3), size=48)
    (root / "train").rename(root / "training")
    (root / "val").rename(root / "testing")
    ipwd_train.main(TINY + ["--method", "vanilla", "--dataset", "imagefolder32", "--data_root", str(root),
                            "--train_split", "training", "--test_split", "testing", "--out_dir", str(tmp_path / "run")])
    ckpt = torch.load(tmp_path / "run" / "checkpoints" / "last.pt", weights_only=False)
    assert ckpt["model"]["fc.weight"].shape[0] == 3
    from ipwd.data import build_datasets
    train, test, n = build_datasets("imagefolder32", root, True, "training", "testing")
    assert n == 3 and train[0][0].shape == (3, 32, 32) and test[0][0].shape == (3, 32, 32)  # 48x48 -> 32x32
    with pytest.raises(DataError, match="testing2"):
        build_datasets("imagefolder32", root, True, "training", "testing2")


def test_teacher_path_resolves_against_the_config_folder(tmp_path, monkeypatch):
    teacher = tmp_path / "teacher"
    ipwd_train.main(TINY + ["--method", "vanilla", "--out_dir", str(teacher), "--synthetic_train_per_class", "2"])
    cfg_dir = tmp_path / "project" / "configs"
    (cfg_dir / "teachers").mkdir(parents=True)
    os.replace(teacher / "checkpoints" / "last.pt", cfg_dir / "teachers" / "t.pt")
    text = (ipwd_train.HERE / "configs" / "smoke.yaml").read_text()
    text = text.replace('teacher_checkpoint: ""', "teacher_checkpoint: teachers/t.pt").replace("teacher: resnet14",
                                                                                                 "teacher: resnet8")
    (cfg_dir / "kd.yaml").write_text(text)
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    args = ["--config", str(cfg_dir / "kd.yaml"), "--progress", "false", "--epochs", "1", "--student", "resnet8",
            "--class_groups", "0", "--method", "kd", "--synthetic_train_per_class", "2"]
    ipwd_train.main(args + ["--out_dir", str(tmp_path / "run")])
    saved = (tmp_path / "run" / "config.yaml").read_text()
    assert f"teacher_checkpoint: {cfg_dir / 'teachers' / 't.pt'}" in saved  # the file actually used
    with pytest.raises(DataError) as e:
        ipwd_train.resolve_teacher_checkpoint("teachers/missing.pt", cfg_dir)
    assert str(cfg_dir / "teachers" / "missing.pt") in str(e.value)
    assert str(elsewhere / "teachers/missing.pt") in str(e.value)
    with pytest.raises(SystemExit):  # train.sh: a clear error before any training, exit code non-zero
        ipwd_train.main(args + ["--teacher_checkpoint", "nowhere/t.pt", "--out_dir", str(tmp_path / "run2")])
    assert not (tmp_path / "run2" / "metrics.json").exists()
    assert np.isfinite(json.loads((tmp_path / "run" / "metrics.json").read_text())["test_top1"])

"""End-to-end: the real train.sh / eval.sh on the smoke config reach a quality floor an untrained model fails;
--resume ends with the same weights as an uninterrupted run; the official recipe configs parse."""
import json
import os
import subprocess
from pathlib import Path

import pytest
import torch
from daflow.data import build_dataset
from daflow.evaluate import paired_metrics, run_tryon
from daflow.train import TrainConfig, build_model
from daflow.train import main as train_main

from common.checkpoint import load_checkpoint
from common.config import config_from_dict, load_yaml

HERE = Path(__file__).resolve().parents[1]
SSIM_FLOOR = 0.62  # trained smoke run: ~0.72; untrained models: ~0.50 (3 seeds, 2026-11-23, CPU)


def run(script, *args):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(["bash", str(HERE / script), *args], capture_output=True, text=True, env=env,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]


@pytest.mark.smoke
def test_smoke_train_then_eval_beats_an_untrained_model(tmp_path):
    out = tmp_path / "run"
    run("train.sh", "--config", "configs/smoke.yaml", "--out_dir", str(out), "--progress", "false")
    train = json.loads((out / "metrics.json").read_text())
    assert train["train_l1_last_epoch"] < 0.4 * train["train_l1_first_epoch"], train
    run("eval.sh", "--checkpoint", str(out / "checkpoints" / "last.pt"), "--out_dir", str(tmp_path / "eval"),
        "--progress", "false")
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["ssim"] > SSIM_FLOOR, metrics
    assert metrics["ssim"] == pytest.approx(train["test_ssim"], abs=1e-6)
    assert (tmp_path / "eval" / "grid.png").exists() and len(list((tmp_path / "eval" / "tryon").iterdir())) == 8
    # The same held-out samples through an untrained model of the same configuration stay below the floor.
    ckpt = load_checkpoint(out / "checkpoints" / "last.pt")
    cfg = config_from_dict(TrainConfig, ckpt["config"])
    torch.manual_seed(0)
    untrained = build_model(cfg)
    loader = torch.utils.data.DataLoader(build_dataset(ckpt["data_dir"], cfg, "test"), batch_size=4)
    res = run_tryon(untrained, loader, torch.device("cpu"))
    assert paired_metrics(res["results"], res["persons"])["ssim"] < SSIM_FLOOR


def test_resume_ends_with_the_same_weights(tmp_path):
    cfg = load_yaml(HERE / "configs" / "smoke.yaml")
    args = ["--config", str(HERE / "configs" / "smoke.yaml"), "--synthetic_train", "8", "--synthetic_test", "4",
            "--progress", "false", "--flip", "true"]
    train_main(args + ["--out_dir", str(tmp_path / "a"), "--epochs", "2"])
    train_main(args + ["--out_dir", str(tmp_path / "b"), "--epochs", "1"])
    train_main(args + ["--out_dir", str(tmp_path / "b"), "--epochs", "2", "--resume", "true"])
    a = load_checkpoint(tmp_path / "a" / "checkpoints" / "last.pt")
    b = load_checkpoint(tmp_path / "b" / "checkpoints" / "last.pt")
    assert a["step"] == b["step"] == 4 and cfg["batch_size"] == 4
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k


@pytest.mark.parametrize("name,size", [("viton_256", (256, 192)), ("viton_hd_512", (512, 384)),
                                       ("viton_hd_1024", (1024, 768))])
def test_paper_configs_parse(name, size):
    cfg = config_from_dict(TrainConfig, load_yaml(HERE / "configs" / f"{name}.yaml"))
    assert (cfg.height, cfg.width) == size and cfg.model_size == "paper"
    assert cfg.lambda_style == 100.0 and cfg.lambda_content == 0.1


def test_eval_takes_the_dresscode_category_for_official_checkpoints():
    from daflow.eval import EvalConfig

    from common.config import parse_config
    assert parse_config(EvalConfig, ["--category", "lower_body"]).category == "lower_body"

"""Evaluate an IPT / prompt / fine-tuning checkpoint on its task's test split and write metrics.json.

    bash eval.sh --checkpoint runs/ipt/<run>/checkpoints/best.pt --out_dir runs/<run>-eval

The checkpoint holds only the trained parameters plus the training config and the folders of the backbone
and the data it was trained on; `--data_root` / `--backbone` point to other copies.
"""
import dataclasses
from pathlib import Path

import torch

from common.checkpoint import load_checkpoint
from common.config import RunConfig, config_from_dict, option, parse_config
from common.distributed import init_distributed
from common.errors import ConfigError, exit_on_user_error
from common.rundir import Run

from .data import load_splits, spec_of
from .train import IPTConfig, build_model, evaluate, loaders, metric_names


@dataclasses.dataclass
class EvalConfig(RunConfig):
    checkpoint: str = option("", "a best.pt / last.pt written by train.sh")
    data_root: str = option("", "folder holding the task folder (default: the folder recorded in the checkpoint)")
    backbone: str = option("", "Hugging Face model folder (default: the one recorded in the checkpoint)")
    split: str = option("test", "which split to score", choices=("test", "dev"))


@exit_on_user_error
def main(argv=None):
    cfg = parse_config(EvalConfig, argv, config_dir=Path(__file__).resolve().parent, description=__doc__)
    if not cfg.checkpoint:
        raise ConfigError("--checkpoint is required (e.g. runs/ipt/<run>/checkpoints/best.pt)")
    ckpt = load_checkpoint(cfg.checkpoint, map_location="cpu")
    train_cfg = config_from_dict(IPTConfig, ckpt["config"], source="checkpoint config")
    # --cpu_threads, else the training run's setting
    dist, device = init_distributed(cfg.device, cfg.cpu_threads or train_cfg.cpu_threads)
    run = Run(cfg, "ipt_eval")
    model, tok = build_model(train_cfg, cfg.backbone or ckpt["backbone_dir"])
    model.load_trainable_state_dict(ckpt["model"])
    model.to(device)
    data_dir = Path(ckpt["data_dir"])
    data_dir = Path(cfg.data_root) / data_dir.name if cfg.data_root else data_dir
    splits = load_splits(train_cfg.task, data_dir, train_cfg.dev_fraction, train_cfg.seed, train_cfg.selection)
    _, dev_loader, test_loader, _ = loaders(train_cfg, tok, splits, dist)
    with torch.no_grad():
        metrics = evaluate(model, test_loader if cfg.split == "test" else dev_loader, spec_of(train_cfg.task),
                           device, cfg.amp, metric_names(train_cfg))
    run.write_metrics({f"{cfg.split}_{k}": v for k, v in metrics.items()})
    run.close()


if __name__ == "__main__":
    main()

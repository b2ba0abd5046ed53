"""Evaluate a Simple-HGN checkpoint on its dataset's test set and write metrics.json + the leaderboard file.

    bash eval.sh --checkpoint runs/simple_hgn/acm-<time>/checkpoints/best.pt --out_dir runs/acm-eval

The checkpoint carries its training config and the dataset folder it was trained on; `--data_root` points
to another copy of the datasets (the folder holding `<dataset>/node.dat`).
"""
import dataclasses
from pathlib import Path

import torch

from common.checkpoint import load_checkpoint
from common.config import RunConfig, config_from_dict, option, parse_config
from common.data.hgb import load_hgb, write_lp_submission, write_nc_submission
from common.distributed import init_distributed
from common.errors import ConfigError, exit_on_user_error
from common.rundir import Run

from .data import model_inputs, nc_splits
from .evaluate import lp_test, nc_test
from .train import HGBConfig, build


@dataclasses.dataclass
class EvalConfig(RunConfig):
    checkpoint: str = option("", "a best.pt / last.pt written by train.sh")
    data_root: str = option("", "folder holding <dataset>/ (default: the folder recorded in the checkpoint)")


def evaluate_checkpoint(ckpt, data_root, device, amp=False):
    """Rebuild data and model from a checkpoint and score its test set -> (metrics, data, predictions)."""
    train_cfg = config_from_dict(HGBConfig, ckpt["config"], source="checkpoint config")
    folder = Path(ckpt["data_dir"])
    data = load_hgb(Path(data_root) / folder.name if data_root else folder)
    if train_cfg.task == "nc":
        inputs = model_inputs(data, train_cfg, device)
        model = build(train_cfg, inputs, data.num_classes).to(device)
        model.load_state_dict(ckpt["model"])
        metrics, pred = nc_test(model, inputs, nc_splits(data, train_cfg, device), data, device, amp)
    else:
        from .data import lp_split
        inputs = model_inputs(data, train_cfg, device, links=lp_split(data, train_cfg)[0])
        model = build(train_cfg, inputs, None).to(device)
        model.load_state_dict(ckpt["model"])
        rels = train_cfg.test_relations or sorted(set(data.test_links[:, 2].tolist()))
        metrics, pred = lp_test(model, inputs, data, rels, device, amp)
    return metrics, data, pred, train_cfg


@exit_on_user_error
def main(argv=None):
    cfg = parse_config(EvalConfig, argv, config_dir=Path(__file__).resolve().parent, description=__doc__)
    if not cfg.checkpoint:
        raise ConfigError("--checkpoint is required (e.g. runs/simple_hgn/<run>/checkpoints/best.pt)")
    _, device = init_distributed(cfg.device, cfg.cpu_threads)
    run = Run(cfg, "simple_hgn_eval")
    ckpt = load_checkpoint(cfg.checkpoint, map_location="cpu")
    with torch.no_grad():
        metrics, data, pred, train_cfg = evaluate_checkpoint(ckpt, cfg.data_root, device, cfg.amp)
    run_id = ckpt.get("repeat", 0) + 1
    if train_cfg.task == "nc":
        write_nc_submission(run.dir / f"{data.name}_{run_id}.txt", data.test_nodes, data.target_type, pred,
                            data.multi_label)
    else:
        write_lp_submission(run.dir / f"{data.name}_{run_id}.txt", *pred)
    run.write_metrics(metrics)
    run.close()


if __name__ == "__main__":
    main()

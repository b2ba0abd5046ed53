"""End-to-end BVTON evaluation of a checkpoint: try-on images, grids and metrics.json.

    bash eval.sh --checkpoint RUN/checkpoints/last.pt --out_dir runs/bvton_eval [--unpaired true]
        [--lpips_backbone_weights vgg16.pth --lpips_linear_weights vgg.pth] [--inception_weights inception.pt]
        [--paired_list my_pairs.txt] [--unpaired_list my_unpaired_pairs.txt]

The lists default to the layout's test lists; `--paired_list` / `--unpaired_list` take any pair-list file of the
test split ("person cloth" per line, `common.data.tryon.read_pairs`); an unpaired list implies --unpaired.

Paired list (each person with its own garment; ground truth = the person): ssim (DAFlow's pytorch-ssim protocol),
ssim_gray (HR-VITON's), l1, lpips (with its weights), and BVTON's controls: agnostic_ssim (the agnostic input as the
answer), proxy_l1 / onmodel_crop_l1 (canonical proxy / untouched on-model crop vs the true in-shop garment on its
region). Unpaired list (--unpaired true): images and grid, plus fid and kid (raw MMD^2) against the test persons
with the FID Inception weights. Keys as DAFlow's eval. Images under <out_dir>/tryon and <out_dir>/unpaired/tryon;
grids (person | garment | canonical proxy | layout | result) at <out_dir>/grid.png and <out_dir>/unpaired/grid.png.
"""
import dataclasses
from pathlib import Path

import torch

from common.checkpoint import load_checkpoint
from common.config import RunConfig, config_from_dict, option, parse_config
from common.data.tryon import read_pairs
from common.distributed import init_distributed
from common.errors import ConfigError, exit_on_user_error
from common.metrics.tryon import load_inception
from common.rundir import Run

from .data import PseudoPairDataset, build_sources
from .evaluate import build_lpips, distribution_metrics, paired_metrics, run_bvton
from .train import TrainConfig, build_model


@dataclasses.dataclass
class EvalConfig(RunConfig):
    checkpoint: str = option("", "a last.pt (or synth.pt) written by train.sh after the synth stage")
    data_root: str = option("", "paired dataset folder (default: the training run's)")
    batch_size: int = option(8, "test batch size")
    unpaired: bool = option(False, "also run the unpaired list (for FID/KID)")
    lpips_backbone_weights: str = option("", "local vgg16-397923af.pth: adds lpips")
    lpips_linear_weights: str = option("", "local LPIPS v0.1 vgg.pth")
    inception_weights: str = option("", "local TorchScript inception-2015-12-05.pt: adds fid and kid")
    kid_subset_size: int = option(1000, "KID subset size (capped at the test set size)")
    paired_list: str = option("", "pair list of the paired run (default: the layout's paired test list)")
    unpaired_list: str = option("", "pair list of the unpaired run (default: the layout's; implies --unpaired)")


def load_model(ckpt, device):
    """Rebuild the trained model from a train.sh checkpoint -> (model, train config)."""
    train_cfg = config_from_dict(TrainConfig, ckpt["config"], source="checkpoint config")
    model = build_model(train_cfg).to(device)
    model.load_state_dict(ckpt["model"])
    return model.eval(), train_cfg


@exit_on_user_error
def main(argv=None):
    cfg = parse_config(EvalConfig, argv, config_dir=Path(__file__).resolve().parent, description=__doc__)
    if not cfg.checkpoint:
        raise ConfigError("--checkpoint is required (e.g. runs/bvton/<run>/checkpoints/last.pt)")
    _, device = init_distributed(cfg.device, cfg.cpu_threads)
    run = Run(cfg, "bvton_eval")
    ckpt = load_checkpoint(cfg.checkpoint)
    model, train_cfg = load_model(ckpt, device)
    if ckpt.get("stage", "synth") != "synth":
        raise ConfigError(f"{cfg.checkpoint} ends the {ckpt['stage']} stage; end to end needs the synth stage")
    if cfg.data_root:
        train_cfg.data_root, train_cfg.dataset = cfg.data_root, Path(cfg.data_root).name
    size = (train_cfg.height, train_cfg.width)

    def loader(mode, pair_list):
        paired, _ = build_sources(train_cfg, "test", mode, read_pairs(pair_list) if pair_list else None)
        return torch.utils.data.DataLoader(PseudoPairDataset(paired, None, size, train_cfg), batch_size=cfg.batch_size)

    res = run_bvton(model, loader("paired", cfg.paired_list), device, cfg.amp, run.dir)
    metrics = paired_metrics(res, build_lpips(cfg.lpips_backbone_weights, cfg.lpips_linear_weights))
    if cfg.unpaired or cfg.unpaired_list or cfg.inception_weights:
        unpaired = run_bvton(model, loader("unpaired", cfg.unpaired_list), device, cfg.amp, run.dir / "unpaired")
        if cfg.inception_weights:
            metrics.update(distribution_metrics(load_inception(cfg.inception_weights), unpaired["results"],
                                                res["persons"], kid_subset_size=cfg.kid_subset_size))
    run.write_metrics(metrics)
    run.close()


if __name__ == "__main__":
    main()

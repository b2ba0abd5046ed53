"""Evaluate a DAFlow checkpoint: try-on images, a grid picture and metrics.json.

    bash eval.sh --checkpoint RUN/checkpoints/last.pt --out_dir runs/eval [--lpips_backbone_weights vgg16.pth
        --lpips_linear_weights vgg.pth] [--inception_weights inception-2015-12-05.pt]

Paired test list (person with own garment): ssim (DAFlow's pytorch-ssim protocol), ssim_gray (HR-VITON's), l1
and, with LPIPS weights, lpips. Unpaired list (--unpaired true): fid and kid (raw MMD^2, not x100/x1000) of the
unpaired results against the test persons, with the FID Inception weights. `--paired false` runs the unpaired
list only (for a dataset without each person's own garment, or to save the paired pass before FID). Results go to
`<out_dir>/tryon/` and `<out_dir>/unpaired/tryon/`, grids to `grid.png` (person | garment | result | ground
truth; in the unpaired grid the last column is the person photo again, there is no ground truth).
"""
import dataclasses
from pathlib import Path

import torch

from common.checkpoint import load_checkpoint
from common.config import RunConfig, config_from_dict, option, parse_config
from common.data.tryon import DRESSCODE_CATEGORIES, LAYOUTS
from common.distributed import init_distributed
from common.errors import ConfigError, exit_on_user_error
from common.metrics.tryon import load_inception
from common.ops.flow_warp import BACKENDS
from common.rundir import Run

from .checkpoint import load_official_checkpoint
from .data import build_dataset
from .evaluate import build_lpips, distribution_metrics, paired_metrics, run_tryon
from .train import TrainConfig, build_model


@dataclasses.dataclass
class EvalConfig(RunConfig):
    checkpoint: str = option("", "a last.pt written by train.sh")
    official_checkpoint: str = option("", "the official ckpt_viton.pt instead of --checkpoint (needs --data_root)")
    layout: str = option("daflow", "layout of --data_root with --official_checkpoint", choices=LAYOUTS)
    category: str = option("auto", "layout dresscode with --official_checkpoint: garment category (auto: the "
                           "folder's name)", choices=("auto",) + DRESSCODE_CATEGORIES)
    official_warp_backend: str = option("reference", "DAWarp for --official_checkpoint: reference = grid_sample as "
                                        "the official sdafnet.py (default); deform_conv saves memory on CUDA",
                                        choices=BACKENDS)
    height: int = option(256, "image height with --official_checkpoint")
    width: int = option(192, "image width with --official_checkpoint")
    data_root: str = option("", "dataset folder (default: the one recorded in the checkpoint)")
    batch_size: int = option(8, "test batch size")
    unpaired: bool = option(False, "also run the unpaired list (for FID/KID)")
    paired: bool = option(True, "run the paired list (it needs each test person's own garment); false: the "
                          "unpaired list only (FID/KID against the test persons)")
    lpips_backbone_weights: str = option("", "local vgg16-397923af.pth: adds lpips")
    lpips_linear_weights: str = option("", "local LPIPS v0.1 vgg.pth")
    inception_weights: str = option("", "local TorchScript inception-2015-12-05.pt: adds fid and kid")
    kid_subset_size: int = option(1000, "KID subset size (capped at the test set size)")


def load_model(ckpt, device):
    """Rebuild the trained model from a train.sh checkpoint -> (model, train config)."""
    train_cfg = config_from_dict(TrainConfig, ckpt["config"], source="checkpoint config")
    model = build_model(train_cfg, device).to(device)
    model.load_state_dict(ckpt["model"])
    return model.eval(), train_cfg


@exit_on_user_error
def main(argv=None):
    cfg = parse_config(EvalConfig, argv, config_dir=Path(__file__).resolve().parent, description=__doc__)
    if not (cfg.checkpoint or cfg.official_checkpoint):
        raise ConfigError("--checkpoint is required (e.g. runs/daflow/<run>/checkpoints/last.pt), or "
                          "--official_checkpoint ckpt_viton.pt --data_root DIR")
    if cfg.official_checkpoint and not cfg.data_root:
        raise ConfigError("--official_checkpoint needs --data_root (the dataset folder)")
    _, device = init_distributed(cfg.device, cfg.cpu_threads)
    run = Run(cfg, "daflow_eval")
    if cfg.official_checkpoint:
        model = load_official_checkpoint(cfg.official_checkpoint, cfg.official_warp_backend).to(device)
        train_cfg = TrainConfig(dataset=Path(cfg.data_root).name, layout=cfg.layout, category=cfg.category,
                                height=cfg.height, width=cfg.width)
        root = Path(cfg.data_root)
    else:
        ckpt = load_checkpoint(cfg.checkpoint)
        model, train_cfg = load_model(ckpt, device)
        root = Path(cfg.data_root or ckpt["data_dir"])
    loader = lambda ds: torch.utils.data.DataLoader(ds, batch_size=cfg.batch_size)  # noqa: E731
    metrics, reals = {}, None
    if cfg.paired:
        paired = run_tryon(model, loader(build_dataset(root, train_cfg, "test", "paired")), device, cfg.amp,
                           run.dir)
        lpips = build_lpips(cfg.lpips_backbone_weights, cfg.lpips_linear_weights)
        metrics.update(paired_metrics(paired["results"], paired["persons"], lpips))
        reals = paired["persons"]
    if cfg.unpaired or cfg.inception_weights or not cfg.paired:
        unpaired = run_tryon(model, loader(build_dataset(root, train_cfg, "test", "unpaired")), device, cfg.amp,
                             run.dir / "unpaired")
        if cfg.inception_weights:
            reals = unpaired["persons"] if reals is None else reals  # the test persons either way
            metrics.update(distribution_metrics(load_inception(cfg.inception_weights), unpaired["results"],
                                                reals, kid_subset_size=cfg.kid_subset_size))
    run.write_metrics(metrics)
    run.close()


if __name__ == "__main__":
    main()

"""Train SDAFN (DAFlow) on VITON / VITON-HD, or on generated samples.

    bash train.sh --config configs/viton_256.yaml [--key value ...]

Official recipe (``train_SDAFNet_viton.py``): AdamW lr 5e-5 (wd 0.01), StepLR 30 epochs x0.2, 200 epochs,
batch 8, joint horizontal flip, the multi-scale loss of losses.py. At the end the paired test split is scored
(SSIM, L1) and written to metrics.json with the first and last training L1.
"""
import dataclasses
from pathlib import Path

import torch

from common.checkpoint import load_checkpoint, restore_training_state, save_checkpoint, training_state
from common.config import RunConfig, config_to_dict, option, parse_config
from common.data.tryon import DRESSCODE_CATEGORIES, LAYOUTS
from common.distributed import cleanup_distributed, distributed_sampler, init_distributed, wrap_ddp
from common.errors import ConfigError, exit_on_user_error
from common.ops.flow_warp import BACKENDS
from common.rundir import Run, check_finite
from common.runtime import autocast, maybe_compile, seed_everything

from .data import build_dataset, dataset_dir
from .evaluate import paired_metrics, run_tryon
from .losses import DAFlowLoss, VGG19Features
from .model import SDAFNet

MODEL_SIZES = ("paper", "tiny")


@dataclasses.dataclass
class TrainConfig(RunConfig):
    dataset: str = option("VITON", "folder name under $DATA_ROOT; 'synthetic' generates samples in the run dir")
    layout: str = option("daflow", "on-disk layout of the dataset", choices=LAYOUTS)
    data_root: str = option("", "dataset folder (default: $DATA_ROOT/<dataset>)")
    category: str = option("auto", "layout dresscode: garment category, which decides the agnostic image; auto: "
                           "the data folder's name (DressCode/upper_body ...)",
                           choices=("auto",) + DRESSCODE_CATEGORIES)
    height: int = option(256, "image height")
    width: int = option(192, "image width")
    model_size: str = option("paper", "paper: SDAFN as released; tiny: narrow, for CPU smoke runs",
                             choices=MODEL_SIZES)
    warp_backend: str = option("auto", "DAWarp implementation (same values); auto: deform_conv on CUDA (less "
                               "memory), reference on CPU (torchvision's CPU deform_conv backward is ~5x slower)",
                               choices=("auto",) + BACKENDS)
    batch_size: int = option(8, "per-process batch size")
    lr: float = option(5e-5, "AdamW learning rate")
    weight_decay: float = option(0.01, "AdamW weight decay (torch default, as the official code)")
    epochs: int = option(200, "training epochs (--resume may raise it: no schedule depends on it)", resumable=True)
    lr_step_epochs: int = option(30, "StepLR step size in epochs")
    lr_gamma: float = option(0.2, "StepLR factor")
    flip: bool = option(True, "joint horizontal flip with p=0.5")
    num_workers: int = option(4, "data loader workers")
    lambda_l1: float = option(1.0, "L1 weight")
    lambda_lpips: float = option(1.0, "LPIPS-VGG weight (0 disables, needs no weights)")
    lambda_style: float = option(100.0, "VGG19 Gram (style) weight")
    lambda_content: float = option(0.1, "VGG19 feature (content) weight")
    perceptual_min_side: int = option(0, "0: LPIPS/style/content at every scale (official); N: skip them where the "
                                      "(x2-upsampled at s=0) output's short side is below N (our earlier default, 32)")
    vgg_weights: str = option("", "local vgg19-dcbb9e9d.pth for the style/content terms")
    lpips_backbone_weights: str = option("", "local vgg16-397923af.pth for LPIPS")
    lpips_linear_weights: str = option("", "local LPIPS v0.1 vgg.pth (linear layers)")
    pretrained_losses: bool = option(True, "false: random-weight VGGs (only for tests; the losses then mean little)")
    synthetic_train: int = option(16, "generated training samples (dataset=synthetic)")
    synthetic_test: int = option(8, "generated test samples (dataset=synthetic)")
    log_every: int = option(20, "steps between TensorBoard scalars")


def build_model(cfg, device=None):
    backend = cfg.warp_backend
    if backend == "auto":
        backend = "deform_conv" if device is not None and torch.device(device).type == "cuda" else "reference"
    ctor = SDAFNet.paper if cfg.model_size == "paper" else SDAFNet.tiny
    return ctor(warp_backend=backend)


def build_loss(cfg):
    vgg = None
    if cfg.lambda_style or cfg.lambda_content:
        vgg = VGG19Features(cfg.vgg_weights, pretrained=cfg.pretrained_losses)
    lpips = None
    if cfg.lambda_lpips:
        from common.metrics.tryon import LPIPS
        lpips = LPIPS(cfg.lpips_backbone_weights, cfg.lpips_linear_weights, pretrained=cfg.pretrained_losses)
    return DAFlowLoss(vgg, lpips, cfg.lambda_l1, cfg.lambda_lpips, cfg.lambda_style, cfg.lambda_content,
                      cfg.perceptual_min_side)


@exit_on_user_error
def main(argv=None):
    cfg = parse_config(TrainConfig, argv, config_dir=Path(__file__).resolve().parent, description=__doc__)
    dist, device = init_distributed(cfg.device, cfg.cpu_threads)
    seed_everything(cfg.seed + dist.rank, cfg.deterministic)
    run = Run(cfg, "daflow", dist)
    root = dataset_dir(cfg)
    train_set = build_dataset(root, cfg, "train", flip=cfg.flip)
    sampler = distributed_sampler(train_set, shuffle=True, seed=cfg.seed, drop_last=True)
    loader = torch.utils.data.DataLoader(train_set, batch_size=cfg.batch_size, sampler=sampler, drop_last=True,
                                         num_workers=cfg.num_workers,
                                         persistent_workers=False)
    if len(loader) == 0:  # drop_last: fewer pairs than one batch would train zero steps and still write metrics
        raise ConfigError(f"{len(train_set)} training pairs (per process) give no full batch of --batch_size "
                          f"{cfg.batch_size}: lower --batch_size or add training pairs")
    model = build_model(cfg, device).to(device)
    criterion = build_loss(cfg).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, cfg.lr_step_epochs, cfg.lr_gamma)
    step, start_epoch, history = 0, 0, []
    if cfg.resume and run.last_checkpoint.exists():
        ckpt = load_checkpoint(run.last_checkpoint)
        step, start_epoch = restore_training_state(ckpt, model, optimizer, scheduler)
        history = ckpt.get("l1_history", [])
        run.log.info("resumed from %s at epoch %d, step %d", run.last_checkpoint, start_epoch, step)
    net = maybe_compile(wrap_ddp(model, dist, device), cfg.compile, device)
    for epoch in run.progress(range(start_epoch, cfg.epochs), desc="epochs"):
        model.train()
        sampler.set_epoch(epoch)  # the shuffle of epoch e does not depend on where a run resumed
        epoch_l1 = []
        for batch in loader:
            cloth, agnostic, pose, person = (batch[k].to(device) for k in ("cloth", "agnostic", "pose", "person"))
            with autocast(device, cfg.amp):
                outputs = net(cloth, agnostic, pose)
                loss, terms = criterion([o.float() for o in outputs], person)
            check_finite(loss, step, run.last_checkpoint)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            full_l1 = float((outputs[-1].detach().float() - person).abs().mean())
            epoch_l1.append(full_l1)
            if step % cfg.log_every == 0:
                run.scalars(step, **{"train/loss": float(loss.detach()), "train/l1_full": full_l1,
                                     **{f"train/{k}": v for k, v in terms.items()}})
        scheduler.step()
        history.append(sum(epoch_l1) / max(1, len(epoch_l1)))
        if dist.is_main:
            save_checkpoint(run.last_checkpoint, training_state(
                model, optimizer, scheduler, step=step, epoch=epoch + 1, config=config_to_dict(cfg),
                data_dir=str(root), l1_history=history))
    if dist.is_main:
        test_set = build_dataset(root, cfg, "test", mode="paired")
        test_loader = torch.utils.data.DataLoader(test_set, batch_size=cfg.batch_size, num_workers=cfg.num_workers)
        res = run_tryon(model, test_loader, device, cfg.amp, out_dir=run.dir)
        metrics = {f"test_{k}": v for k, v in paired_metrics(res["results"], res["persons"]).items()}
        metrics.update(train_l1_first_epoch=history[0] / 2, train_l1_last_epoch=history[-1] / 2)  # [0, 1] units
        run.write_metrics(metrics)
    run.close()
    cleanup_distributed()


if __name__ == "__main__":
    main()

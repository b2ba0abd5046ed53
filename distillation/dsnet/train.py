"""Train a DS-Net supernet (Stage I), its gate (Stage II), or both in one run.

    bash train.sh --config configs/imagenet_ds_mbnet_supernet.yaml          # Stage I (+ BN recalibration)
    bash train.sh --config configs/imagenet_ds_mbnet_gate.yaml --supernet_checkpoint DS_MBNet-70_1.pth.tar

Stage I (official `train_slim.py::train_epoch_slim`): per batch the sandwich of sub-networks
[largest, `num_random` uniform choices, smallest]; the largest learns the labels (label-smoothed CE), the others
learn the EMA supernet's largest sub-network's softmax (in-place bootstrapping, IB; `ensemble_ib` for IEB);
gradients are summed over the sub-networks, then one SGD step and one EMA update. After the last epoch the BN
statistics of every static width are recalibrated on training batches (`reset_bn`).

Stage II (official `train_slim_gate.py::train_epoch_slim_gate`): only the slimming heads train, every BN is frozen;
loss = SGS gate CE + task CE of the gated network (straight-through Gumbel) + 0.5 (MAdds / 1e9)^2.

DS-ViT++ (`model: ds_vit_*`, vit.py): the same two stages; Stage I adds MvCo (`mvco`, on by default for the ViT:
V augmented views per image, the bootstrap target averaged over the views, and a cross-view consistency term) and
may use AdamW (`optimizer`, the DeiT recipe); there is no BN to recalibrate.

`stage: both` runs Stage I, the recalibration and Stage II in one run (the smoke config). The final evaluation
writes metrics.json (test_top1, mean_madds, top1_width_<i>, madds_width_<i>, route_frac_<k> or
route_frac_gate<g>_<k>, random_gate_top1) and accuracy_vs_madds.png. `--resume` continues from
checkpoints/last.pt (which records the stage).
"""
import copy
import dataclasses
import json
import math
import random
from pathlib import Path

import torch
import torch.nn.functional as F

from common.checkpoint import load_checkpoint, restore_training_state, save_checkpoint, training_state
from common.config import RunConfig, config_to_dict, option, parse_config
from common.distributed import barrier, cleanup_distributed, distributed_sampler, init_distributed, wrap_ddp
from common.errors import ConfigError, exit_on_user_error
from common.rundir import Run, check_finite
from common.runtime import seed_everything

from .data import DATASETS, MultiView, build_datasets, dataset_dir, loader
from .evaluation import draw_accuracy_vs_madds, evaluate, per_sample_gumbel, summarize
from .losses import (
    GATE_CE_INPUTS,
    GATE_TARGETS,
    gate_loss,
    label_smoothing_ce,
    madds_loss,
    mvco_consistency,
    mvco_target,
    sgs_targets,
    soft_target_ce,
)
from .model import MODELS, build_model
from .official import load_supernet
from .ops import SlimBatchNorm2d
from .vit import GATE_INPUTS, IDLE_MODES, DropPath

HERE = Path(__file__).resolve().parent
STAGES = ("supernet", "gate", "both")


@dataclasses.dataclass
class DSNetConfig(RunConfig):
    # data
    dataset: str = option("imagenet", "imagenet (ImageFolder), cifar100 (pickle batches) or synthetic "
                          "(generated CIFAR-format data with graded difficulty in <out_dir>/data)", choices=DATASETS)
    data_root: str = option("", "folder holding imagenet/ or cifar-100-python/ (default: $DATA_ROOT, else ./data)")
    image_size: int = option(224, "ImageNet crop size")
    synthetic_classes: int = option(10, "synthetic: classes")
    synthetic_train_per_class: int = option(64, "synthetic: training images per class")
    synthetic_test_per_class: int = option(32, "synthetic: test images per class")
    synthetic_seed: int = option(0, "synthetic: generator seed")
    synthetic_noise: list[float] = option([15.0, 90.0], "synthetic: per-image noise levels (easy, hard)")
    synthetic_spread: float = option(60.0, "synthetic: amplitude of the class templates (smaller: harder)")
    train_augment: bool = option(True, "random crop / flip of training images (false: the evaluation transform; "
                                 "the DDP == 1 process test uses it, since augmentation draws differ per rank)")
    num_workers: int = option(8, "DataLoader worker processes")
    # model
    model: str = option("ds_mbnet_v1", "supernet", choices=tuple(MODELS))
    small_input: bool = option(False, "32x32 inputs: stride-1 stem (CIFAR) [ours]")
    drop_rate: float = option(0.2, "dropout before the classifier of the largest sub-network (DS-MBNet)")
    num_routes: int = option(4, "K: gate choices (official: 4, the slimmest four widths)")
    route_start: int = option(0, "first width of the routing space (official start_chn_idx)")
    gumbel_tau: float = option(1.0, "Gumbel-softmax temperature")
    eval_gumbel_noise: bool = option(True, "add Gumbel noise at evaluation too (official quirk; false: argmax)")
    # DS-ViT++ (model ds_vit_*; every choice below is [assumption] or [recalled], see README)
    vit_idle: str = option("passthrough", "ViT: channels [d:] of the residual stream in a block of width d: "
                           "passthrough (dynamic idle slicing, unchanged) or zero", choices=IDLE_MODES)
    vit_gate_input: str = option("mean_patch", "ViT gate input: LayerNorm of the mean patch token, or the class "
                                 "token", choices=GATE_INPUTS)
    vit_gate_attention: bool = option(True, "ViT gate's attention head (re-weights the MLP hidden units of the "
                                      "stage's first block)")
    drop_path: float = option(0.0, "ViT stochastic depth, linear in depth up to this rate (DeiT-S: 0.1)")
    vit_embed_dims: list[int] = option([], "ViT embedding width of each choice (empty: the model's, DeiT-S "
                                       "192, 256, 320, 384)")
    vit_num_heads: list[int] = option([], "ViT heads of each choice (empty: the model's, DeiT-S 3, 4, 5, 6)")
    vit_mlp_dims: list[int] = option([], "ViT MLP hidden width of each choice (empty: 4x the embedding width)")
    vit_stages: list[int] = option([], "ViT blocks per gated stage (empty: the model's, DeiT-S 4, 4, 4)")
    # stages
    stage: str = option("supernet", "supernet (Stage I), gate (Stage II) or both", choices=STAGES)
    supernet_checkpoint: str = option("", "gate stage: supernet weights (our last.pt / supernet.pt, or the "
                                      "official DS_MBNet-70_1.pth.tar)")
    # Stage I (official configs/mobilenetv1_bn_uniform.yml)
    epochs: int = option(150, "Stage I epochs")
    batch_size: int = option(512, "global batch size (official 64 x 8 GPUs)")
    lr: float = option(0.08, "Stage I SGD learning rate (cosine, per epoch)")
    warmup_epochs: int = option(5, "linear warm-up epochs from warmup_lr")
    warmup_lr: float = option(1e-5, "warm-up start learning rate")
    min_lr: float = option(1e-5, "cosine floor")
    weight_decay: float = option(1e-4, "Stage I weight decay")
    momentum: float = option(0.9, "SGD momentum")
    nesterov: bool = option(True, "Nesterov momentum (timm's sgd)")
    label_smoothing: float = option(0.1, "label smoothing of the CE on labels")
    supernet_training: str = option("sandwich", "sandwich (the method) or largest_only (the smoke test's control: only "
                                    "the largest sub-network trains; not a paper setting)",
                                    choices=("sandwich", "largest_only"))
    num_random: int = option(2, "random sub-networks per batch between largest and smallest (sandwich rule)")
    inplace_bootstrap: bool = option(True, "IB: sub-networks learn the EMA largest's softmax (false: labels)")
    ensemble_ib: bool = option(False, "IEB: the smallest learns the EMA ensemble (CVPR; official default false)")
    ema_decay: float = option(0.997, "EMA decay (IB target, and the weights evaluated when eval_ema)")
    optimizer: str = option("sgd", "Stage I optimiser: sgd (official DS-Net) or adamw (DeiT recipe, no weight "
                            "decay on biases, norms, class token, position embedding)", choices=("sgd", "adamw"))
    mvco: str = option("auto", "MvCo multi-view consistency in Stage I: auto (on for ds_vit_*, off for the CNNs), "
                       "true, false", choices=("auto", "true", "false"))
    mvco_views: int = option(2, "MvCo: augmented views per image")
    mvco_weight: float = option(1.0, "MvCo: weight of the cross-view consistency term (0: only the view-averaged "
                                "bootstrap target)")
    sandwich_per_stage: bool = option(False, "random sub-networks of the sandwich draw one choice per gated stage, "
                                      "so the mixed routes of a multi-gate net (ds_vit_*, ds_resnet*) get trained "
                                      "[assumption; false: one uniform choice, the official sampling]")
    drop_zero_grads: bool = option(True, "official quirk: parameters whose summed gradient is exactly 0 skip the step")
    reset_bn: bool = option(True, "recalibrate the BN statistics of every static width after Stage I")
    bn_recal_batches: int = option(1001, "training batches of the recalibration (official: 1001)")
    bn_recal_momentum: float = option(0.1, "BN momentum during recalibration (0: cumulative average)")
    # Stage II (official configs/mobilenetv1_bn_uniform_gate.yml)
    gate_epochs: int = option(30, "Stage II epochs")
    gate_lr: float = option(0.08, "Stage II learning rate (cosine, no warm-up)")
    gate_weight_decay: float = option(0.01, "Stage II weight decay")
    gate_target: str = option("smallest", "SGS target rule (official: smallest net only)", choices=GATE_TARGETS)
    gate_ce_input: str = option("probabilities", "gate CE on the Gumbel probabilities (official quirk) or logits",
                                choices=GATE_CE_INPUTS)
    gate_loss_weight: float = option(1.0, "weight of the SGS gate loss")
    ce_loss_weight: float = option(1.0, "weight of the gated network's task CE")
    madds_loss_weight: float = option(0.5, "weight of (MAdds / madds_unit)^2")
    madds_unit: float = option(1e9, "MAdds unit of the complexity loss (official: 1e9)")
    eval_ema: bool = option(True, "evaluate the EMA weights (what the official trainer reports)")
    eval_batch_size: int = option(256, "evaluation batch size")


class EMA:
    """timm `ModelEma` (v1): a copy in eval mode, every state entry ema = d * ema + (1 - d) * model."""

    def __init__(self, model, decay):
        model.gates, model.madds = [], 0.0  # drop the last call's records (tensors with history do not copy)
        self.module = copy.deepcopy(model).eval().requires_grad_(False)
        self.decay = decay

    @torch.no_grad()
    def update(self, model):
        for e, m in zip(self.module.state_dict().values(), model.state_dict().values(), strict=True):
            if e.dtype.is_floating_point:
                e.mul_(self.decay).add_(m, alpha=1 - self.decay)
            else:
                e.copy_(m)

    def state_dict(self):
        return self.module.state_dict()

    def load_state_dict(self, state):
        self.module.load_state_dict(state)


def cosine_lambda(epochs, base_lr, warmup_epochs=0, warmup_lr=1e-5, min_lr=1e-5):
    """timm CosineLRScheduler stepped per epoch (t_in_epochs), as a LambdaLR factor of base_lr."""
    def factor(epoch):
        if epoch < warmup_epochs:
            return (warmup_lr + (base_lr - warmup_lr) * epoch / warmup_epochs) / base_lr
        t = (epoch - warmup_epochs) / max(1, epochs - warmup_epochs)
        return (min_lr + 0.5 * (base_lr - min_lr) * (1 + math.cos(math.pi * t))) / base_lr
    return factor


def is_vit(cfg):
    return cfg.model.startswith("ds_vit")


def use_mvco(cfg):
    return cfg.mvco == "true" or (cfg.mvco == "auto" and is_vit(cfg))


def model_kwargs(cfg):
    gate = dict(num_routes=cfg.num_routes, route_start=cfg.route_start, tau=cfg.gumbel_tau,
                eval_noise=cfg.eval_gumbel_noise)
    if is_vit(cfg):
        lists = {"embed_dims": cfg.vit_embed_dims, "num_heads": cfg.vit_num_heads, "mlp_dims": cfg.vit_mlp_dims,
                 "stages": cfg.vit_stages}
        return dict(gate, img_size=cfg.image_size if cfg.dataset == "imagenet" else 32, drop_path=cfg.drop_path,
                    idle=cfg.vit_idle, gate_input=cfg.vit_gate_input, gate_attention=cfg.vit_gate_attention,
                    **{k: tuple(v) for k, v in lists.items() if v})
    return dict(gate, small_input=cfg.small_input,
                **({"drop_rate": cfg.drop_rate} if cfg.model.startswith("ds_mbnet") else {}))


def make_model(cfg, num_classes):
    return build_model(cfg.model, num_classes, **model_kwargs(cfg))


def sandwich(cfg, model, step):
    """[largest, num_random uniform choices in 1 .. W-1, smallest] of this step (same on every rank and resume).
    `sandwich_per_stage`: each random sub-network is a tuple of independent choices in 0 .. W-1, one per gated
    stage, so the mixed routes a multi-gate network takes in Stage II are trained too [assumption]."""
    if cfg.supernet_training == "largest_only":
        return ["largest"]
    rng = random.Random(f"{cfg.seed}-{step}")
    if cfg.sandwich_per_stage:
        return ["largest", *[tuple(rng.randint(0, model.num_widths - 1) for _ in range(model.num_gated_stages))
                             for _ in range(cfg.num_random)], "smallest"]
    return ["largest", *[rng.randint(1, model.num_widths - 1) for _ in range(cfg.num_random)], "smallest"]


def flatten_views(x, y=None):
    """MvCo batches (B, V, 3, H, W) -> (V * B, 3, H, W), view-major, labels repeated; other batches unchanged.
    Returns (x, y, V)."""
    if x.dim() != 5:
        return x, y, 1
    views = x.shape[1]
    return x.transpose(0, 1).flatten(0, 1), None if y is None else y.repeat(views), views


def supernet_step(cfg, model, forward, ema, x, y, step, last):
    """One Stage I update's gradients (summed over the sandwich); returns the largest net's loss.

    MvCo (x of shape (B, V, 3, H, W)): the V views run as one batch; the EMA target of every view is the mean over
    the views (`mvco_target`), and each sub-network adds mvco_weight * its cross-view consistency."""
    x, y, views = flatten_views(x, y)

    def teacher(width):
        with torch.no_grad():
            return mvco_target(F.softmax(ema.module(x, width), 1), views)

    guides, loss_largest = [], None
    for width in sandwich(cfg, model, step):
        out = forward(x, width)
        if width == "largest" or not cfg.inplace_bootstrap:
            loss = label_smoothing_ce(out, y, cfg.label_smoothing)
            if width == "largest":
                loss_largest = loss.detach()
                if cfg.inplace_bootstrap:
                    guides.append(teacher("largest"))
        else:
            target = torch.stack(guides).mean(0) if width == "smallest" and cfg.ensemble_ib else guides[0]
            loss = soft_target_ce(out, target)
            if cfg.ensemble_ib and width != "smallest":
                guides.append(teacher(width))
        if views > 1 and cfg.mvco_weight > 0:
            loss = loss + cfg.mvco_weight * mvco_consistency(out, views)
        check_finite(loss, step, last)
        loss.backward()
    return loss_largest


def gate_step(cfg, model, forward, x, y, idx, epoch, step, last):
    """One Stage II loss (SGS + task CE + MAdds), backpropagated; returns logs."""
    with torch.no_grad():
        small = model(x, "smallest")
        large = model(x, cfg.route_start + cfg.num_routes - 1) if cfg.gate_target == "sandwich" else None
        target, keep = sgs_targets(small, y, cfg.num_routes, cfg.gate_target, large)
    model.gumbel_noise = per_sample_gumbel(idx, cfg.num_routes, cfg.seed, salt=epoch + 1).to(x.device)
    out = forward(x, "dynamic")
    model.gumbel_noise = None
    g_loss = gate_loss(model.gates, target, keep, cfg.gate_ce_input, cfg.label_smoothing)
    ce = label_smoothing_ce(out, y, cfg.label_smoothing)
    m_loss = madds_loss(model.madds, cfg.madds_unit)
    loss = cfg.gate_loss_weight * g_loss + cfg.ce_loss_weight * ce + cfg.madds_loss_weight * m_loss
    check_finite(loss, step, last)
    loss.backward()
    return {"loss": loss.detach(), "gate_loss": g_loss.detach(), "ce": ce.detach(),
            "madds": model.madds.detach().float().mean()}


@torch.no_grad()
def recalibrate_bn(cfg, model, train_loader, device):
    """Official `reset_bn`: reset every BN's statistics, then forward `bn_recal_batches` training batches through
    each static width (uniform choice) in train mode (statistics only; no update of weights). A network without BN
    (DS-ViT++) has nothing to recalibrate."""
    if not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules()):
        return
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = cfg.bn_recal_momentum if cfg.bn_recal_momentum > 0 else None
    model.train()
    for b, (x, _, _) in enumerate(train_loader):
        if b >= cfg.bn_recal_batches:
            break
        x = flatten_views(x)[0].to(device)
        for w in model.static_widths():
            model(x, w)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = 0.1


def freeze_bn(model):
    """Stage II: every BN uses its (recalibrated) running statistics, and stochastic depth is off."""
    for m in model.modules():
        if isinstance(m, (torch.nn.BatchNorm2d, SlimBatchNorm2d, DropPath)):
            m.eval()


def run_stage(cfg, run, dist, device, model, train_set, stage, state):
    """Train one stage from state["epoch"] to its end, checkpointing after every epoch. `state` holds the
    optimiser, scheduler and EMA of the stage and the global step; returns nothing (the model is trained)."""
    epochs = cfg.epochs if stage == "supernet" else cfg.gate_epochs
    opt, sched, ema = state["opt"], state["sched"], state["ema"]
    forward = wrap_ddp(model, dist, device)
    views = MultiView(train_set, cfg.mvco_views) if stage == "supernet" and use_mvco(cfg) else train_set
    sampler = distributed_sampler(views, shuffle=True, seed=cfg.seed)
    train_loader = loader(views, cfg.batch_size // dist.world_size, sampler, cfg.num_workers)
    for epoch in range(state["epoch"], epochs):
        sampler.set_epoch(epoch + (0 if stage == "supernet" else 10_000))
        model.train()
        if stage == "gate":
            freeze_bn(model)
        logs = {}
        for x, y, idx in run.progress(train_loader, desc=f"{stage} epoch {epoch + 1}/{epochs}"):
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            opt.zero_grad(set_to_none=True)
            if stage == "supernet":
                logs = {"loss_largest": supernet_step(cfg, model, forward, ema, x, y, state["step"],
                                                      run.last_checkpoint)}
                if cfg.drop_zero_grads:
                    for p in model.parameters():
                        if p.grad is not None and not p.grad.abs().sum():
                            p.grad = None
            else:
                logs = gate_step(cfg, model, forward, x, y, idx, epoch, state["step"], run.last_checkpoint)
            opt.step()
            ema.update(model)
            state["step"] += 1
            if state["step"] % 20 == 0:
                run.scalars(state["step"], **{f"{stage}/{k}": float(v) for k, v in logs.items()},
                            **{f"{stage}/lr": opt.param_groups[0]["lr"]})
        sched.step()
        run.log.info("%s epoch %d/%d: %s", stage, epoch + 1, epochs,
                     " ".join(f"{k} {float(v):.4f}" for k, v in logs.items()))
        state["epoch"] = epoch + 1
        if stage == "supernet" and epoch + 1 == epochs and cfg.reset_bn and not is_vit(cfg):
            recal_loader = loader(train_set, cfg.batch_size // dist.world_size, None, cfg.num_workers)
            recalibrate_bn(cfg, model, recal_loader, device)
            recalibrate_bn(cfg, ema.module, recal_loader, device)
            ema.module.eval()
            run.log.info("recalibrated the BN statistics of %d widths", len(model.static_widths()))
        if run.is_main:
            save_checkpoint(run.last_checkpoint, checkpoint_state(cfg, model, state, stage))
        barrier()


def checkpoint_state(cfg, model, state, stage):
    return training_state(model, state["opt"], state["sched"], state["ema"], step=state["step"],
                          epoch=state["epoch"], config=config_to_dict(cfg), stage=stage,
                          data_dir=str(state["data_dir"]), num_classes=state["num_classes"])


def stage_state(cfg, model, stage, data_dir, num_classes, step=0):
    """Optimiser (SGD; Stage II over the slimming heads only), per-epoch cosine schedule, EMA of one stage."""
    gate = {id(p) for p in model.gate_parameters()}
    for p in model.parameters():  # Stage I never uses the slimming heads; Stage II trains nothing else
        p.requires_grad_((id(p) in gate) == (stage == "gate"))
    if stage == "supernet":
        params = [p for p in model.parameters() if p.requires_grad]
        lr, wd = cfg.lr, cfg.weight_decay
        factor = cosine_lambda(cfg.epochs, lr, cfg.warmup_epochs, cfg.warmup_lr, cfg.min_lr)
    else:
        params = model.gate_parameters()
        lr, wd = cfg.gate_lr, cfg.gate_weight_decay
        factor = cosine_lambda(cfg.gate_epochs, lr, 0, cfg.warmup_lr, cfg.min_lr)
    if stage == "supernet" and cfg.optimizer == "adamw":  # DeiT / timm: no decay on 1-d tensors and the tokens
        no_decay = {id(p) for n, p in model.named_parameters() if p.dim() <= 1 or n in ("cls_token", "pos_embed")}
        groups = [{"params": [p for p in params if id(p) not in no_decay], "weight_decay": wd},
                  {"params": [p for p in params if id(p) in no_decay], "weight_decay": 0.0}]
        opt = torch.optim.AdamW(groups, lr=lr)
    else:
        opt = torch.optim.SGD(params, lr=lr, momentum=cfg.momentum, weight_decay=wd, nesterov=cfg.nesterov)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
    return {"opt": opt, "sched": sched, "ema": EMA(model, cfg.ema_decay), "epoch": 0, "step": step,
            "data_dir": data_dir, "num_classes": num_classes}


def final_evaluation(cfg, run, device, model, test_set, gated):
    metrics = summarize(evaluate(model, loader(test_set, cfg.eval_batch_size, num_workers=cfg.num_workers), device,
                                 dynamic=gated, noise_seed=cfg.seed), cfg.route_start, cfg.num_routes)
    draw_accuracy_vs_madds(run.dir / "accuracy_vs_madds.png", metrics,
                           title=f"{cfg.model}: static widths and the gated network", gated=gated)
    return metrics


@exit_on_user_error
def main(argv=None):
    cfg = parse_config(DSNetConfig, argv, config_dir=HERE, description=__doc__)
    if cfg.stage == "gate" and not cfg.supernet_checkpoint and not cfg.resume:
        raise ConfigError("--stage gate needs --supernet_checkpoint (our supernet.pt / last.pt or the official "
                          "DS_MBNet-70_1.pth.tar)")
    if cfg.route_start + cfg.num_routes > 14 and cfg.model.startswith("ds_mbnet"):
        raise ConfigError("route_start + num_routes must be <= 14 (the widths of DS-MBNet)")
    if cfg.route_start + cfg.num_routes > 4 and cfg.model.startswith("ds_resnet"):
        raise ConfigError("route_start + num_routes must be <= 4 (the widths of DS-ResNet)")
    if is_vit(cfg) and cfg.route_start + cfg.num_routes > (len(cfg.vit_embed_dims) or 4):
        raise ConfigError("route_start + num_routes must be <= the number of DS-ViT++ widths (vit_embed_dims)")
    if cfg.sandwich_per_stage and cfg.model.startswith("ds_mbnet"):
        raise ConfigError("--sandwich_per_stage needs a multi-gate supernet (ds_vit_*, ds_resnet*); DS-MBNet has one")
    if use_mvco(cfg) and cfg.mvco_views < 2:
        raise ConfigError("--mvco needs --mvco_views >= 2")
    dist, device = init_distributed(cfg.device, cfg.cpu_threads)
    run = Run(cfg, "dsnet", dist)
    seed_everything(cfg.seed, cfg.deterministic)
    if run.is_main:
        dataset_dir(cfg)  # rank 0 writes the generated data once
    barrier()
    folder = dataset_dir(cfg)
    train_set, test_set, num_classes = build_datasets(cfg.dataset, folder, cfg.image_size, cfg.train_augment)
    run.log.info("%s: %d train / %d test images, %d classes, device %s", folder, len(train_set), len(test_set),
                 num_classes, device)
    model = make_model(cfg, num_classes).to(device)
    stages = ["supernet", "gate"] if cfg.stage == "both" else [cfg.stage]
    resume = load_checkpoint(run.last_checkpoint) if cfg.resume and run.last_checkpoint.exists() else None
    if resume is not None and resume["stage"] == "gate" and "supernet" in stages:
        stages.remove("supernet")
    if stages == ["gate"] and resume is None:
        load_supernet(model, cfg.supernet_checkpoint, prefer_ema=False)  # official Stage II resumes state_dict
    step = 0
    for stage in stages:
        state = stage_state(cfg, model, stage, folder, num_classes, step)
        if resume is not None and resume["stage"] == stage:
            state["step"], state["epoch"] = restore_training_state(resume, model, state["opt"], state["sched"],
                                                                   state["ema"])
            run.log.info("resumed %s at epoch %d from %s", stage, state["epoch"], run.last_checkpoint)
            resume = None
        run_stage(cfg, run, dist, device, model, train_set, stage, state)
        step = state["step"]
        if stage == "supernet" and run.is_main:
            save_checkpoint(run.ckpt_dir / "supernet.pt", checkpoint_state(cfg, model, state, stage))
    evaluated = state["ema"].module if cfg.eval_ema else model
    metrics = final_evaluation(cfg, run, device, evaluated, test_set, gated="gate" in stages or cfg.stage == "gate")
    run.write_metrics(metrics)
    run.log.info("%s", json.dumps(metrics, sort_keys=True))
    run.close()
    cleanup_distributed()


if __name__ == "__main__":
    main()

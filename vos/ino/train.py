"""Train INO (In-N-Out generative learning) on unlabelled videos.

    bash train.sh --config configs/charades.yaml            # DATA_ROOT holds charades/ (mp4s or frame folders)
    bash train.sh --config configs/smoke.yaml                # generated clips, CPU, < 1 minute
    NPROC=4 bash train.sh --config configs/charades.yaml    # torchrun DDP (4 GPUs x 4 clips, as the paper)

Per step (official `main_VOS.py`): a batch of clips of T frames; every frame gives one global crop and L
local crops; one random patch mask (shared by all frames, clips and ranks) masks the student's global crops;
the EMA teacher sees the clean global crops. Loss = L_out + L_mim + L_aff (`losses.py`). AdamW with cosine
learning-rate (linear warm-up) and weight-decay schedules, per-parameter gradient-norm clipping, cosine EMA
momentum, fp16 (or bf16) autocast on CUDA.
"""
import dataclasses
import math
from pathlib import Path

import torch

from common.checkpoint import load_checkpoint, restore_training_state, save_checkpoint, training_state
from common.config import RunConfig, config_to_dict, option, parse_config
from common.distributed import barrier, cleanup_distributed, distributed_sampler, init_distributed, wrap_ddp
from common.errors import exit_on_user_error
from common.plot import line_plot
from common.rundir import Run, check_finite
from common.runtime import maybe_compile, seed_everything, unwrap_model

from .data import SMOKE, ClipDataset, MultiCrop, smoke_data_dir, training_videos
from .losses import INOLoss
from .masking import shared_patch_mask
from .model import ARCHS, build_ino, ema_update
from .schedules import cosine_schedule, peak_learning_rate, teacher_temp_schedule

HERE = Path(__file__).resolve().parent


@dataclasses.dataclass
class TrainConfig(RunConfig):
    # data
    dataset: str = option("charades", f"folder under data_root with the training videos; {SMOKE!r} generates "
                          "small clips in the DAVIS layout in <out_dir>/data")
    data_root: str = option("", "folder holding the dataset folder (default: $DATA_ROOT, else ./data)")
    frame_rate: float = option(8.0, "resample video files to this fps (official VideoClips frame_rate=8)")
    clip_len: int = option(4, "frames per clip (official seq_length)")
    frame_step: int = option(1, "take every this-many frames (after resampling)")
    clips_per_video: int = option(5, "clips drawn per video and epoch (RandomClipSampler)")
    batch_size: int = option(4, "clips per GPU")
    num_workers: int = option(0, "data-loader worker processes")
    # views and masking
    global_size: int = option(224, "global crop size")
    local_size: int = option(64, "local crop size")
    num_local: int = option(8, "local crops per frame")
    global_scale: list[float] = option([0.80, 0.95], "RandomResizedCrop scale of global crops")
    local_scale: list[float] = option([0.05, 0.80], "RandomResizedCrop scale of local crops")
    mask_prob: float = option(0.5, "probability that a step masks patches at all")
    mask_ratio: list[float] = option([0.1, 0.5], "masked fraction range, drawn uniformly")
    # model
    arch: str = option("vit_small", "ViT size", choices=tuple(ARCHS))
    patch_size: int = option(8, "patch size")
    pos_grid: int = option(8, "learned position-embedding grid (img_size 64 / patch 8), interpolated per input")
    out_dim: int = option(4096, "prototypes K of the head")
    hidden_dim: int = option(2048, "head MLP width")
    bottleneck_dim: int = option(256, "head bottleneck")
    drop_path_rate: float = option(0.1, "student stochastic depth")
    # losses
    student_temp: float = option(0.1, "student temperature")
    teacher_temp: float = option(0.04, "teacher temperature after warm-up")
    warmup_teacher_temp: float = option(0.04, "teacher temperature at the start of its warm-up")
    warmup_teacher_temp_epochs: int = option(0, "epochs of teacher-temperature warm-up")
    center_momentum: float = option(0.9, "EMA momentum of the teacher centres")
    affinity_teacher_temp: float = option(0.04, "teacher temperature of the affinity loss")
    affinity_student_temp: float = option(0.1, "student temperature of the affinity loss")
    out_weight: float = option(1.0, "weight of L_out (cross-frame [CLS] distillation)")
    mim_weight: float = option(1.0, "weight of L_mim (masked patch distillation)")
    aff_weight: float = option(1.0, "weight of L_aff (affinity consistency)")
    # optimisation
    epochs: int = option(25, "training epochs")
    base_lr: float = option(3e-3, "learning rate per 1024 frames (peak = base_lr * clips * T * GPUs / 1024)")
    min_lr: float = option(1e-6, "final learning rate of the cosine")
    warmup_epochs: int = option(5, "linear learning-rate warm-up epochs")
    weight_decay: float = option(0.04, "initial weight decay (cosine schedule)")
    weight_decay_end: float = option(0.4, "final weight decay")
    momentum_teacher: float = option(0.996, "initial EMA momentum (cosine to 1)")
    clip_grad: float = option(3.0, "per-parameter gradient-norm clip (0 disables)")
    freeze_last_layer: int = option(0, "epochs with the head's last layer frozen (official: never fires, 0)")
    amp_dtype: str = option("fp16", "autocast dtype with --amp on CUDA (official: fp16)", choices=("fp16", "bf16"))
    ckpt_every: int = option(1, "write last.pt every this many epochs")
    # label propagation settings recorded for eval.sh (block of the features, input short side)
    eval_block: int = option(7, "ViT block whose patch tokens eval.sh propagates labels with (INO: 7 of 12)")
    eval_short_side: int = option(480, "eval.sh resizes frames to this shorter side (0: native size)")


def autocast(device, cfg):
    """fp16 (official) or bf16 autocast on CUDA with --amp; nothing on CPU."""
    enabled = cfg.amp and device.type == "cuda"
    return torch.autocast("cuda", dtype=torch.float16 if cfg.amp_dtype == "fp16" else torch.bfloat16,
                          enabled=enabled) if enabled else torch.autocast("cpu", enabled=False)


def param_groups(model):
    """AdamW groups as the official `utils.get_params_groups`: no weight decay on biases and 1-D parameters
    (norms); everything else, including the 3-D `cls_token`, `mask_token` and `pos_embed`, is decayed."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (no_decay if p.ndim == 1 or name.endswith(".bias") else decay).append(p)
    return [{"params": decay}, {"params": no_decay, "weight_decay": 0.0}]


def clip_gradients(model, clip):
    """DINO's per-parameter clipping: scale each gradient to norm <= clip."""
    for p in model.parameters():
        if p.grad is not None:
            norm = p.grad.norm(2)
            coef = clip / (norm + 1e-6)
            if coef < 1:
                p.grad.mul_(coef)


def train_step(student, teacher, criterion, batch, mask, teacher_temp, device, cfg):
    """Forward both networks on one batch and return (loss, parts). batch = (globals (B, T, 3, G, G),
    locals (B, T, L, 3, l, l)); mask (N,) bool over the global crops' patches."""
    globals_, locals_ = (x.to(device, non_blocking=True) for x in batch)
    b, t = globals_.shape[:2]
    flat_g = globals_.flatten(0, 1)  # (B T, 3, G, G)
    with autocast(device, cfg):
        with torch.no_grad():
            t_cls, t_patch, _ = teacher(flat_g)
        s_cls, s_patch, s_local = student(flat_g, mask.to(device).expand(b * t, -1), locals_.flatten(0, 2))
    k = t_cls.shape[-1]
    return criterion(t_cls.view(b, t, k), t_patch.view(b, t, -1, k), s_cls.view(b, t, k),
                     s_patch.view(b, t, -1, k), s_local.view(b, t, -1, k), mask.to(device), teacher_temp)


@exit_on_user_error
def main(argv=None):
    cfg = parse_config(TrainConfig, argv, config_dir=HERE, description=__doc__)
    dist, device = init_distributed(cfg.device, cfg.cpu_threads)
    run = Run(cfg, "ino", dist)
    seed_everything(cfg.seed + dist.rank, cfg.deterministic)
    if cfg.dataset == SMOKE and run.is_main:
        smoke_data_dir(cfg.out_dir, cfg.seed)  # generated once, before the other ranks read it
    barrier()
    videos, data_dir = training_videos(cfg)
    transform = MultiCrop(cfg.global_size, cfg.local_size, cfg.num_local, tuple(cfg.global_scale),
                          tuple(cfg.local_scale))
    dataset = ClipDataset(videos, cfg.clip_len, cfg.frame_step, cfg.clips_per_video, transform)
    sampler = distributed_sampler(dataset, shuffle=True, seed=cfg.seed, drop_last=True)
    loader = torch.utils.data.DataLoader(dataset, batch_size=cfg.batch_size, sampler=sampler, drop_last=True,
                                         num_workers=cfg.num_workers, pin_memory=device.type == "cuda")
    iters = len(loader)
    if iters == 0:
        raise ValueError(f"{len(dataset)} clips give no full batch of {cfg.batch_size} per process")
    run.log.info("%d videos, %d clips/epoch, %d steps/epoch, device %s", len(videos), len(dataset), iters, device)

    student, teacher = build_ino(cfg.arch, cfg.patch_size, cfg.out_dim, cfg.hidden_dim, cfg.bottleneck_dim,
                                 cfg.drop_path_rate, cfg.pos_grid)
    student, teacher = student.to(device), teacher.to(device)
    criterion = INOLoss(cfg.out_dim, cfg.student_temp, cfg.center_momentum, cfg.affinity_teacher_temp,
                        cfg.affinity_student_temp, cfg.out_weight, cfg.mim_weight, cfg.aff_weight).to(device)
    optimizer = torch.optim.AdamW(param_groups(student))
    scaler = torch.amp.GradScaler("cuda", enabled=cfg.amp and cfg.amp_dtype == "fp16" and device.type == "cuda")
    peak_lr = peak_learning_rate(cfg.base_lr, cfg.batch_size, cfg.clip_len, dist.world_size)
    lr_s = cosine_schedule(peak_lr, cfg.min_lr, cfg.epochs, iters, cfg.warmup_epochs)
    wd_s = cosine_schedule(cfg.weight_decay, cfg.weight_decay_end, cfg.epochs, iters)
    mom_s = cosine_schedule(cfg.momentum_teacher, 1.0, cfg.epochs, iters)
    temp_s = teacher_temp_schedule(cfg.warmup_teacher_temp, cfg.teacher_temp, cfg.warmup_teacher_temp_epochs,
                                   cfg.epochs, iters)

    start_epoch, step, history = 0, 0, []
    if cfg.resume and run.last_checkpoint.exists():
        ckpt = load_checkpoint(run.last_checkpoint)
        step, start_epoch = restore_training_state(ckpt, student, optimizer, ema=teacher)
        criterion.load_state_dict(ckpt["loss"])
        scaler.load_state_dict(ckpt["scaler"])
        history = ckpt["history"]
        run.log.info("resumed from %s at epoch %d", run.last_checkpoint, start_epoch)
    model = maybe_compile(wrap_ddp(student, dist, device), cfg.compile, device)
    grid = cfg.global_size // cfg.patch_size

    def state(epoch):
        return training_state(student, optimizer, ema=teacher, step=step, epoch=epoch, config=config_to_dict(cfg),
                              loss=criterion.state_dict(), scaler=scaler.state_dict(), history=history,
                              data_dir=str(Path(data_dir).resolve()))

    parts = {}
    for epoch in range(start_epoch, cfg.epochs):
        sampler.set_epoch(epoch)
        model.train()
        for batch in run.progress(loader, desc=f"epoch {epoch}"):
            for i, group in enumerate(optimizer.param_groups):
                group["lr"] = lr_s[step]
                if i == 0:
                    group["weight_decay"] = wd_s[step]
            mask = shared_patch_mask(grid * grid, step, cfg.seed, cfg.mask_prob, *cfg.mask_ratio)
            loss, parts = train_step(model, teacher, criterion, batch, mask, temp_s[step], device, cfg)
            check_finite(loss, step, run.last_checkpoint)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
            if cfg.clip_grad:
                clip_gradients(student, cfg.clip_grad)
            if epoch < cfg.freeze_last_layer:
                for p in student.head.last_layer.parameters():
                    p.grad = None
            scaler.step(optimizer)
            scaler.update()
            ema_update(teacher, unwrap_model(student), mom_s[step])
            values = {"train/loss": loss.item(), "train/lr": lr_s[step], "train/masked": int(mask.sum()),
                      **{f"train/{k}": v.item() for k, v in parts.items()}}
            run.scalars(step, **values)
            history.append((step, loss.item()))
            step += 1
        if run.is_main and ((epoch + 1) % cfg.ckpt_every == 0 or epoch + 1 == cfg.epochs):
            save_checkpoint(run.last_checkpoint, state(epoch + 1))
        run.log.info("epoch %d: loss %.4f", epoch, history[-1][1] if history else math.nan)
    if run.is_main:
        if history:
            line_plot(run.dir / "loss.png", {"loss": tuple(zip(*history, strict=True))}, xlabel="step",
                      ylabel="loss", title=f"INO {cfg.arch}/{cfg.patch_size} on {cfg.dataset}")
        tail = [v for _, v in history[-iters:]] or [math.nan]
        run.write_metrics({"final_loss": sum(tail) / len(tail), "steps": step})
    run.close()
    cleanup_distributed()


if __name__ == "__main__":
    main()

"""Train Consistent-Teacher (semi-supervised detection) on COCO / VOC, or on a generated shapes dataset.

    bash train.sh --config configs/coco_10p.yaml [--key value ...]        NPROC=8 bash train.sh ... for 8 GPUs

Official recipe (`consistent_teacher_r50_fpn_coco_180k_10p.py`): 8 GPUs x (1 labelled + 4 unlabelled), SGD lr 0.01
momentum 0.9 wd 1e-4, grad-norm clip 20, 500-iteration linear warm-up from 0.001 x lr then constant, 180k
iterations, EMA 0.9995 before every iteration, unsupervised weight 2.0 from iteration 10k. The teacher is
evaluated (COCO bbox mAP) every `eval_every` iterations and at the end; metrics.json holds the final teacher's
numbers (`bbox_mAP`, `bbox_mAP_50`, ... as fractions) and the GMM threshold's history summary.
"""
import copy
import dataclasses
import json
from pathlib import Path

import cv2
import torch

from common.checkpoint import load_checkpoint, save_checkpoint
from common.config import RunConfig, config_to_dict, option, parse_config
from common.distributed import all_reduce_mean, barrier, cleanup_distributed, init_distributed, wrap_ddp
from common.errors import exit_on_user_error
from common.plot import line_plot
from common.rundir import Run, check_finite
from common.runtime import autocast, maybe_compile, seed_everything

from .data import DATASETS, SemiIterationData, build_train_sets, build_val_set, dataset_files, iteration_loader
from .evaluate import detection_grid, evaluate
from .model import ConsistentTeacherDetector
from .semi_step import semi_supervised_loss, to_device
from .teacher import PseudoLabeler, ema_momentum, ema_update

MODELS = ("paper", "tiny")


@dataclasses.dataclass
class TrainConfig(RunConfig):
    # data
    dataset: str = option("coco", "coco: partial-label split of train2017; coco_full: train2017 + unlabeled2017; "
                          "voc: VOC07 + VOC12; synthetic: generated shapes; custom: your COCO-format files",
                          choices=DATASETS)
    data_root: str = option("", "dataset folder (default: $DATA_ROOT/coco or $DATA_ROOT/VOCdevkit)")
    train_ann: str = option("", "dataset=custom: COCO instances JSON of the training images")
    train_images: str = option("", "dataset=custom: folder of the training images")
    unlabeled_ann: str = option("", "dataset=custom: optional separate unlabelled set (then train_ann is all labelled)")
    unlabeled_images: str = option("", "dataset=custom: folder of the unlabelled images (default: train_images)")
    val_ann: str = option("", "dataset=custom: COCO instances JSON of the evaluation images")
    val_images: str = option("", "dataset=custom: folder of the evaluation images")
    percent: float = option(10.0, "labelled percentage of train2017 (coco, synthetic)")
    fold: int = option(1, "split fold = numpy seed of the split (official: 1)")
    synthetic_train: int = option(64, "generated training images (dataset=synthetic)")
    synthetic_val: int = option(16, "generated validation images (dataset=synthetic)")
    synthetic_height: int = option(96, "generated image height")
    synthetic_width: int = option(128, "generated image width")
    train_short_range: list[int] = option([400, 1200], "random short side range of the training views (mmdet 'range')")
    max_long: int = option(1333, "long side cap for training and test views")
    test_short: int = option(800, "test short side")
    train_pad: str = option("before_normalize", "training views: pad to a multiple of 32 with black before Normalize "
                            "(official pipelines) or with 0 after it (after_normalize, our earlier behaviour)",
                            choices=("before_normalize", "after_normalize"))
    # model
    model: str = option("paper", "paper: ResNet-50 FPN + FAM-3D; tiny: a small CNN for CPU smoke runs",
                        choices=MODELS)
    backbone_weights: str = option("", "local torchvision resnet50-0676ba61.pth (ImageNet); empty: random init")
    bn_affine_trainable: bool = option(True, "BN weight/bias trainable (COCO partial configs); false for VOC/full")
    # optimisation
    max_iters: int = option(180000, "training iterations (--resume may raise it)", resumable=True)
    lr: float = option(0.01, "SGD learning rate (for 8 GPUs x (1 + 4) images)")
    momentum: float = option(0.9, "SGD momentum")
    weight_decay: float = option(1e-4, "SGD weight decay (every parameter)")
    grad_clip: float = option(20.0, "max L2 norm of the gradients (0: off)")
    warmup_iters: int = option(500, "linear lr warm-up iterations")
    warmup_ratio: float = option(0.001, "lr factor at iteration 0 of the warm-up")
    lr_steps: list[int] = option([], "iterations where the lr is multiplied by lr_gamma (empty: constant, as the "
                            "partial-COCO configs)")
    lr_gamma: float = option(0.1, "lr step factor")
    labeled_per_gpu: int = option(1, "labelled images per process and iteration")
    unlabeled_per_gpu: int = option(4, "unlabelled images per process and iteration")
    # semi-supervised
    semi: bool = option(True, "false: the supervised baseline (labelled split only, same detector and schedule; "
                        "its EMA teacher is evaluated, like the semi-supervised run's)")
    unsup_weight: float = option(2.0, "weight of the pseudo-label loss")
    unsup_warmup: int = option(10000, "iterations with the pseudo-label loss weight at 0")
    ema_momentum: float = option(0.9995, "teacher EMA momentum")
    num_scores: int = option(100, "per-class FIFO of recent pseudo-box scores for the GMM")
    dynamic_ratio: float = option(1.0, "count prior: keep the top int(sum(scores) * ratio + 0.5) + 1 boxes per image")
    gmm_policy: str = option("high", "threshold policy of the GMM", choices=("high", "middle"))
    given_gt_thr: float = option(0.0, "threshold when the GMM cannot be fitted (< 4 scores)")
    background_weight: float = option(0.01, "pseudo-label loss factor when < half the unlabelled images have a box")
    min_pseudo_box_size: float = option(0.0, "pseudo boxes need width and height above this")
    warn_no_pseudo_iters: int = option(500, "warn when the teacher has given no pseudo box for this many iterations "
                                       "in a row (the unsupervised loss then trains on background only); 0: never")
    # head / assignment / test
    topk: int = option(13, "ASA: candidates for the dynamic k")
    iou_factor: float = option(2.0, "ASA: weight of the IoU cost (3.0 in the full-data config)")
    box_weight: float = option(2.0, "GIoU loss weight")
    score_thr: float = option(0.05, "test / teacher score threshold")
    nms_pre: int = option(1000, "candidates per level before NMS")
    nms_iou: float = option(0.6, "NMS IoU threshold")
    max_per_img: int = option(100, "detections per image")
    clip_test_boxes: bool = option(False, "clip evaluated detections to the image (official: unclipped, as "
                                   "FAM3DHead._get_bboxes_single decodes without max_shape and only rescales)")
    # run
    eval_every: int = option(4000, "evaluate the teacher every N iterations (0: only at the end)")
    checkpoint_every: int = option(4000, "write checkpoints/last.pt every N iterations")
    log_every: int = option(50, "iterations between TensorBoard scalars")
    num_workers: int = option(4, "data loader workers")
    eval_batch_size: int = option(2, "images per evaluation batch")
    vis_images: int = option(8, "validation images drawn into detections.png")


def build_model(cfg, num_classes):
    if cfg.model == "tiny":
        return ConsistentTeacherDetector.tiny(num_classes)
    return ConsistentTeacherDetector.paper(num_classes, backbone_weights=cfg.backbone_weights,
                                           bn_affine_trainable=cfg.bn_affine_trainable)


def lr_factor(step, cfg):
    """mmcv's linear warm-up (factor 1 - (1 - ratio) * (1 - step / warmup)) times the step decay."""
    decay = cfg.lr_gamma ** sum(step >= s for s in cfg.lr_steps)
    if step < cfg.warmup_iters:
        return decay * (1 - (1 - cfg.warmup_ratio) * (1 - step / cfg.warmup_iters))
    return decay


def summarize_gmm(history):
    """Summary of the logged per-iteration mean GMM threshold (the official `gmm_thr`)."""
    if not history:
        return {}
    values = torch.tensor([v for _, v in history], dtype=torch.float64)
    tail = values[len(values) // 2:]
    return dict(gmm_thr_first=float(values[0]), gmm_thr_last=float(values[-1]), gmm_thr_mean=float(values.mean()),
                gmm_thr_std=float(values.std()) if len(values) > 1 else 0.0,
                gmm_thr_distinct=int(torch.unique(tail).numel()))


@exit_on_user_error
def main(argv=None):
    cfg = parse_config(TrainConfig, argv, config_dir=Path(__file__).resolve().parent, description=__doc__)
    dist, device = init_distributed(cfg.device, cfg.cpu_threads)
    seed_everything(cfg.seed, cfg.deterministic)  # same init on every rank (DDP broadcasts it anyway)
    run = Run(cfg, "consistent_teacher", dist)
    files = dataset_files(cfg, run.dir, dist.rank)
    barrier()
    labeled, unlabeled = build_train_sets(files, cfg)
    val_set = build_val_set(files, cfg)
    num_classes = len(labeled.class_names)
    run.log.info("%d labelled / %d unlabelled / %d val images, %d classes", len(labeled), len(unlabeled),
                 len(val_set), num_classes)

    student = build_model(cfg, num_classes).to(device)
    teacher = copy.deepcopy(student).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    pseudo = PseudoLabeler(num_classes, cfg.num_scores, cfg.dynamic_ratio, cfg.gmm_policy, cfg.given_gt_thr,
                           cfg.min_pseudo_box_size).to(device)
    params = [p for p in student.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, cfg))
    step, gmm_history, evals = 0, [], []
    if cfg.resume and run.last_checkpoint.exists():
        ckpt = load_checkpoint(run.last_checkpoint)
        student.load_state_dict(ckpt["model"])
        teacher.load_state_dict(ckpt["teacher"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        pseudo.scores.copy_(ckpt["pseudo_scores"][dist.rank % len(ckpt["pseudo_scores"])].to(device))
        step, gmm_history, evals = ckpt["step"], ckpt["gmm_history"], ckpt["evals"]
        run.log.info("resumed from %s at iteration %d", run.last_checkpoint, step)
    net = maybe_compile(wrap_ddp(student, dist, device, broadcast_buffers=False), cfg.compile, device)
    data = SemiIterationData(labeled, unlabeled, cfg.labeled_per_gpu, cfg.unlabeled_per_gpu if cfg.semi else 0,
                             dist.rank, dist.world_size, cfg.max_iters, cfg.seed)
    reduce = all_reduce_mean if dist.world_size > 1 else None  # mmdet reduce_mean of the loss normaliser

    def save():
        scores = [torch.zeros_like(pseudo.scores) for _ in range(dist.world_size)]
        if dist.world_size > 1:  # the queues are per rank (as the official run): keep every rank's
            torch.distributed.all_gather(scores, pseudo.scores)
        else:
            scores = [pseudo.scores]
        if dist.is_main:
            save_checkpoint(run.last_checkpoint, dict(
                model=student.state_dict(), teacher=teacher.state_dict(), optimizer=optimizer.state_dict(),
                scheduler=scheduler.state_dict(), pseudo_scores=[s.cpu() for s in scores], step=step,
                gmm_history=gmm_history, evals=evals, config=config_to_dict(cfg), num_classes=num_classes,
                class_names=list(labeled.class_names), val=[str(f) for f in files["val"]]))

    def evaluate_teacher():
        metrics = evaluate(teacher, val_set, device, cfg, run.dir, batch_size=cfg.eval_batch_size,
                           num_workers=min(cfg.num_workers, 2), amp=cfg.amp)
        evals.append((step, metrics))
        run.scalars(step, **{f"val/{k}": v for k, v in metrics.items()})
        run.log.info("iteration %d teacher %s", step, json.dumps({k: round(v, 4) for k, v in metrics.items()}))
        return metrics

    for name, model in (("teacher", teacher), ("student", student)):  # NaN offsets crash deform_conv2d: stop first
        model.bbox_head.reg_offset_module.register_forward_hook(lambda m, args, out, name=name: check_finite(
            out, step, run.last_checkpoint, what=f"the {name}'s FAM-3D offset map"))
    no_pseudo = 0  # consecutive iterations whose teacher gave no pseudo box at all
    student.train()
    bar = run.progress(iteration_loader(data, step, cfg.num_workers), total=cfg.max_iters, initial=step,
                       desc="iterations")
    for batch in bar:
        ema_update(teacher, student, ema_momentum(step, cfg.ema_momentum))  # before the iteration (MeanTeacher)
        batch = {k: to_device(v, device) for k, v in batch.items()}
        last = {} if step == cfg.max_iters - 1 else None  # keep the final iteration's pseudo boxes for a picture
        with autocast(device, cfg.amp):
            loss, logs = semi_supervised_loss(net, teacher, pseudo, batch, cfg, step, reduce, pseudo_out=last)
        if last and dist.is_main:
            strong = batch["strong"]
            shown = [(strong["image"][i].float().cpu(), strong["img_shape"][i],
                      dict(boxes=last["boxes"][i].float().cpu(), labels=last["labels"][i].cpu()))
                     for i in range(len(last["boxes"]))]
            cv2.imwrite(str(run.dir / "pseudo_labels.png"), detection_grid(shown, labeled.class_names))
        check_finite(loss, step, run.last_checkpoint)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip > 0:
            logs["grad_norm"] = float(torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip))
        optimizer.step()
        scheduler.step()
        step += 1
        if "gmm_thr" in logs:
            gmm_history.append((step, logs["gmm_thr"]))
        no_pseudo = no_pseudo + 1 if logs.get("pseudo_boxes_per_image", 1) == 0 else 0
        if cfg.warn_no_pseudo_iters and no_pseudo and no_pseudo % cfg.warn_no_pseudo_iters == 0:
            run.log.warning("iteration %d: the teacher has given no pseudo box for %d iterations in a row (score_thr "
                            "%g, last GMM threshold %.3g): the unsupervised loss trains on background only. A short or "
                            "small-data run may need a longer supervised phase (unsup_warmup) or more iterations.",
                            step, no_pseudo, cfg.score_thr, logs.get("gmm_thr", float("nan")))
        if step % cfg.log_every == 0 or step == cfg.max_iters:
            run.scalars(step, **{f"train/{k}": v for k, v in logs.items()}, **{"train/loss": float(loss.detach()),
                        "train/lr": scheduler.get_last_lr()[0], "train/ema_momentum": ema_momentum(step - 1,
                        cfg.ema_momentum)})
        if cfg.eval_every and step % cfg.eval_every == 0 and step < cfg.max_iters:
            if dist.is_main:
                evaluate_teacher()
            barrier()
        if step % cfg.checkpoint_every == 0 and step < cfg.max_iters:
            save()
    save()
    if dist.is_main:
        metrics = evaluate_teacher()
        metrics.update(summarize_gmm(gmm_history), iterations=step)
        if len(gmm_history) > 1:
            line_plot(run.dir / "gmm_threshold.png", {"gmm_thr": tuple(zip(*gmm_history, strict=True))},
                      title="mean GMM pseudo-label threshold", xlabel="iteration")
        if len(evals) > 1:
            line_plot(run.dir / "val_map.png", {"teacher": ([s for s, _ in evals], [m["bbox_mAP"] for _, m in evals])},
                      title="teacher bbox mAP", xlabel="iteration")
        run.write_metrics(metrics)
    run.close()
    cleanup_distributed()


if __name__ == "__main__":
    main()

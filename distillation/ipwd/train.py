"""Train a CIFAR-100 / ImageNet model with plain CE, KD, IPWD, PS-KD or PS-KD + IPWD.

    bash train.sh --config configs/cifar100_resnet32x4_resnet8x4_ipwd.yaml [--seeds 0,1,2] [--key value ...]

Methods (`--method`):
  vanilla    cross-entropy only (teacher training, or the "vanilla student" baseline)
  kd         two-stage KD of the CRD protocol: gamma CE + alpha tau^2 KL (frozen teacher)
  ipwd       two-stage IPWD: KD with the KL term of each sample weighted by its inverse propensity score,
             estimated from the student's main head and an auxiliary CE head (losses.ipwd_loss)
  kd_meanw   the scale control of IPWD: the same two-head student and objective, but every sample's KL term
             gets the batch mean of IPWD's weights (losses.kd_mean_weight_loss), so it differs from ipwd
             only in how the weight is spread over the samples, and from kd in the scale and the extra head
  pskd       one-stage progressive self-distillation (PS-KD, Kim et al. ICCV 2021)
  pskd_ipwd  PS-KD with IPWD weights on the self-distillation term from epoch `ipwd_start_epoch` on

Protocol (RepDistiller, CRD): SGD momentum 0.9, lr decayed x0.1 at the epochs of `lr_decay_epochs`
(stepped once per epoch), test accuracy after every epoch; we report the last epoch's top-1/top-5 (the
number RepDistiller's README reports) and the best top-1. `--seeds 0,1,2` trains one student per seed and
writes mean and std (np.std). `teacher_checkpoint: ""` with `teacher_epochs > 0` first trains the teacher
with CE inside this run (checkpoints/teacher/); that is what the smoke config does.
"""
import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from common.checkpoint import load_checkpoint, restore_training_state, save_checkpoint, training_state
from common.config import RunConfig, config_to_dict, option, parse_config
from common.distributed import barrier, cleanup_distributed, distributed_sampler, init_distributed, wrap_ddp
from common.errors import ConfigError, DataError, exit_on_user_error
from common.metrics.accuracy import per_class_recall, topk_correct
from common.metrics.summary import mean_std
from common.rundir import Run, check_finite
from common.runtime import autocast, maybe_compile, seed_everything

from .class_groups import (
    class_mean_weights,
    draw_bar_chart,
    group_table,
    sample_weights,
    teacher_class_mass,
    teacher_class_ranking,
    weight_summary,
    write_table,
)
from .data import DATASETS, build_datasets, dataset_dir, loader
from .losses import (
    WEIGHT_FORMULAS,
    WEIGHT_NORMS,
    ipwd_loss,
    kd_mean_weight_loss,
    kd_objective,
    pskd_alpha,
    pskd_ipwd_loss,
)
from .models import MODELS, TEACHER_HINT, TwoHeadStudent, build_model, extract_state_dict, load_teacher

HERE = Path(__file__).resolve().parent
METHODS = ("vanilla", "kd", "ipwd", "kd_meanw", "pskd", "pskd_ipwd")
TWO_HEAD = ("ipwd", "kd_meanw", "pskd", "pskd_ipwd")  # methods whose student carries the auxiliary CE head
DISTILLED = ("kd", "ipwd", "kd_meanw")  # methods with a frozen teacher


@dataclasses.dataclass
class IPWDConfig(RunConfig):
    # data
    dataset: str = option("cifar100", "cifar100 / cifar10 (pickle batches), imagenet (ImageFolder, 224 crops), "
                          "imagefolder32 (any ImageFolder tree, resized to 32x32 with the CIFAR recipe's "
                          "augmentations) or synthetic (generated CIFAR-format data in <out_dir>/data)",
                          choices=DATASETS)
    data_root: str = option("", "folder holding cifar-100-python/, cifar-10-batches-py/ or imagenet/; for "
                            "imagefolder32 the folder holding the split folders (default: $DATA_ROOT, else ./data)")
    train_split: str = option("train", "training split folder of imagenet / imagefolder32 (CIFAR: fixed files)")
    test_split: str = option("val", "test split folder of imagenet / imagefolder32 (CIFAR: fixed files)")
    synthetic_classes: int = option(10, "synthetic: number of classes")
    synthetic_train_per_class: int = option(100, "synthetic: training images per class")
    synthetic_test_per_class: int = option(20, "synthetic: test images per class")
    synthetic_seed: int = option(0, "synthetic: generator seed")
    num_workers: int = option(4, "DataLoader worker processes")
    # models
    method: str = option("ipwd", "training objective", choices=METHODS)
    student: str = option("resnet8x4", "the model trained", choices=tuple(MODELS))
    teacher: str = option("resnet32x4", "teacher architecture (kd, ipwd)", choices=tuple(MODELS))
    teacher_checkpoint: str = option("", "teacher weights (mdistiller ckpt_epoch_240.pth or one of ours); a "
                                     "relative path is looked up from the working directory, then from the "
                                     "config file's folder; empty: train the teacher here for teacher_epochs")
    teacher_epochs: int = option(0, "epochs of in-run teacher training when teacher_checkpoint is empty")
    teacher_lr: float = option(0.05, "learning rate of in-run teacher training")
    # optimisation (RepDistiller defaults)
    epochs: int = option(240, "training epochs")
    batch_size: int = option(64, "global batch size (split over ranks)")
    lr: float = option(0.05, "SGD learning rate (RepDistiller: 0.01 for MobileNetV2 / ShuffleNet students)")
    lr_decay_epochs: list[int] = option([150, 180, 210], "epochs at which the learning rate is multiplied by "
                                        "lr_decay_rate (also applied to teacher training, scaled to teacher_epochs)")
    lr_decay_rate: float = option(0.1, "learning-rate decay factor")
    weight_decay: float = option(5e-4, "SGD weight decay")
    momentum: float = option(0.9, "SGD momentum")
    nesterov: bool = option(False, "Nesterov momentum")
    # distillation
    temperature: float = option(4.0, "KD temperature tau")
    ce_weight: float = option(0.1, "gamma: weight of CE on the labels (RepDistiller -r)")
    kd_weight: float = option(0.9, "alpha: weight of the (weighted) KD term (RepDistiller -a)")
    aux_weight: float = option(1.0, "beta: weight of the auxiliary head's CE (ipwd, pskd_ipwd)")
    weight_formula: str = option("bayes", "inverse propensity weight, see losses.propensity_weight",
                                 choices=WEIGHT_FORMULAS)
    standardize_logits: bool = option(True, "z-score both heads' logits before the propensity estimate")
    weight_detach: bool = option(True, "no gradient through the weights")
    weight_normalize: str = option("none", "none: the inverse propensity as is (mean about 2); batch_mean: "
                                   "divide by the batch mean, so the KD term keeps KD's scale",
                                   choices=WEIGHT_NORMS)
    weight_clip: float = option(0.0, "cap the weights at this value (0: no cap)")
    ipwd_start_epoch: int = option(0, "first epoch (0-based) with IPWD weights; before it w = 1")
    pskd_alpha: float = option(0.8, "PS-KD alpha_T (final weight of the previous-epoch predictions)")
    # runs
    seeds: list[int] = option([], "train one model per seed and report mean and std (default: [seed])")
    class_groups: int = option(4, "teacher-rank groups of the transfer-gap table (0: skip it)")
    baseline_checkpoint: str = option("", "a vanilla student of the same architecture: adds its recall and "
                                      "the student's gain per group to the transfer-gap table")
    channels_last: bool = option(False, "channels_last memory format on CUDA")


def main_logits(out):
    """The deployed head's logits of a plain model (tensor) or a TwoHeadStudent ((main, aux) tuple)."""
    return out[0] if isinstance(out, tuple) else out


@torch.no_grad()
def predict(model, data_loader, device, amp=False):
    """Logits and labels of a whole (unaugmented) loader: (N, C) float, (N,) int64, on the CPU."""
    model.eval()
    logits, labels = [], []
    for x, y, _ in data_loader:
        with autocast(device, amp):
            out = main_logits(model(x.to(device, non_blocking=True)))
        logits.append(out.float().cpu())
        labels.append(y)
    return torch.cat(logits), torch.cat(labels)


def accuracy_of(logits, labels):
    top1, top5 = topk_correct(logits, labels, (1, 5))
    n = max(len(labels), 1)
    return {"top1": top1 / n, "top5": top5 / n, "loss": float(F.cross_entropy(logits, labels))}


class PSKDMemory:
    """PS-KD's per-sample memory: the model's softmax predictions of the previous epoch, (N, C).

    `prev(idx)` reads the last epoch's predictions, `store(idx, probs)` records this epoch's; `end_epoch`
    swaps them. Saved in the checkpoint so `--resume` continues exactly.
    """

    def __init__(self, num_samples, num_classes):
        self.prev_probs = torch.zeros(num_samples, num_classes)
        self.next_probs = torch.zeros(num_samples, num_classes)
        self.filled = False  # no predictions before the first epoch ends

    def prev(self, idx, device):
        return self.prev_probs[idx].to(device)

    def store(self, idx, probs):
        self.next_probs[idx] = probs.detach().float().cpu()

    def end_epoch(self):
        self.prev_probs, self.next_probs = self.next_probs, self.prev_probs
        self.filled = True

    def state_dict(self):
        return {"prev_probs": self.prev_probs, "filled": self.filled}

    def load_state_dict(self, state):
        self.prev_probs.copy_(state["prev_probs"])
        self.filled = state["filled"]


def weight_options(cfg):
    """The propensity_weight keyword arguments of a config."""
    return dict(formula=cfg.weight_formula, standardize=cfg.standardize_logits, clip=cfg.weight_clip,
                normalize=cfg.weight_normalize, detach=cfg.weight_detach)


def make_objective(cfg, teacher, memory, epochs, device):
    """loss(out, x, y, idx, epoch) -> (loss, logs) for cfg.method; the teacher runs frozen under no_grad."""

    def teacher_logits(x):
        with torch.no_grad(), autocast(device, cfg.amp):
            return teacher(x).float()

    def objective(out, x, y, idx, epoch):
        if cfg.method == "vanilla":
            loss = F.cross_entropy(out, y)
            return loss, {"ce": loss.detach()}
        if cfg.method == "kd":
            return kd_objective(out, teacher_logits(x), y, cfg.temperature, cfg.ce_weight, cfg.kd_weight)
        logits, aux = out
        if cfg.method == "ipwd":
            if epoch < cfg.ipwd_start_epoch:  # plain KD (+ the auxiliary head's CE) before IPWD starts
                loss, logs = kd_objective(logits, teacher_logits(x), y, cfg.temperature, cfg.ce_weight, cfg.kd_weight)
                aux_ce = F.cross_entropy(aux, y)
                return loss + cfg.aux_weight * aux_ce, {**logs, "aux_ce": aux_ce.detach()}
            return ipwd_loss(logits, aux, teacher_logits(x), y, cfg.temperature, cfg.ce_weight, cfg.kd_weight,
                             cfg.aux_weight, **weight_options(cfg))
        if cfg.method == "kd_meanw":
            return kd_mean_weight_loss(logits, aux, teacher_logits(x), y, cfg.temperature, cfg.ce_weight,
                                       cfg.kd_weight, cfg.aux_weight, **weight_options(cfg))
        # pskd / pskd_ipwd; plain PS-KD leaves the auxiliary head untrained (weight 0), so it is exactly PS-KD
        alpha = pskd_alpha(epoch, epochs, cfg.pskd_alpha) if memory.filled else 0.0
        prev = memory.prev(idx, device)
        memory.store(idx, torch.softmax(logits.detach(), dim=1))
        use_ipwd = cfg.method == "pskd_ipwd" and epoch >= cfg.ipwd_start_epoch
        aux_weight = cfg.aux_weight if cfg.method == "pskd_ipwd" else 0.0
        return pskd_ipwd_loss(logits, aux, prev, y, alpha, use_ipwd, aux_weight, **weight_options(cfg))

    return objective


def schedule(milestones, epochs, total):
    """The RepDistiller milestones, rescaled when a stage runs for another number of epochs (teacher stage)."""
    if epochs == total:
        return list(milestones)
    return [max(1, round(m * epochs / total)) for m in milestones]


def fit(cfg, run, dist, device, model, train_set, test_set, ckpt_dir, *, epochs, lr, objective, seed, tag,
        memory=None, data_dir=""):
    """Train `model` for `epochs` with SGD + step decay, checkpointing every epoch; returns its metrics.

    Writes `<ckpt_dir>/last.pt` (full state, for --resume) every epoch and `<ckpt_dir>/best.pt` when the test
    top-1 improves. Returns {"test_top1", "test_top5", "best_top1"} (last epoch and best).
    """
    ckpt_dir = Path(ckpt_dir)
    last, best = ckpt_dir / "last.pt", ckpt_dir / "best.pt"
    model.to(device)
    if cfg.channels_last and device.type == "cuda":
        model.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay,
                          nesterov=cfg.nesterov)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, schedule(cfg.lr_decay_epochs, epochs, cfg.epochs),
                                                 cfg.lr_decay_rate)
    step, start, best_top1 = 0, 0, -1.0
    if cfg.resume and last.exists():
        ckpt = load_checkpoint(last)
        step, start = restore_training_state(ckpt, model, opt, sched)
        best_top1 = ckpt["best_top1"]
        if memory is not None:
            memory.load_state_dict(ckpt["pskd"])
        run.log.info("%s: resumed from %s at epoch %d", tag, last, start)
    forward = maybe_compile(wrap_ddp(model, dist, device), cfg.compile, device)
    sampler = distributed_sampler(train_set, shuffle=True, seed=seed)
    train_loader = loader(train_set, cfg.batch_size // dist.world_size, sampler, num_workers=cfg.num_workers)
    test_loader = loader(test_set, 256, num_workers=cfg.num_workers)

    def state(epoch, top1):
        return training_state(model, opt, sched, step=step, epoch=epoch, config=config_to_dict(cfg), seed=seed,
                              tag=tag, best_top1=top1, data_dir=str(data_dir),
                              pskd=memory.state_dict() if memory is not None else None)

    for epoch in range(start, epochs):
        sampler.set_epoch(epoch)
        model.train()
        for x, y, idx in run.progress(train_loader, desc=f"{tag} epoch {epoch + 1}/{epochs}"):
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            if cfg.channels_last and device.type == "cuda":
                x = x.contiguous(memory_format=torch.channels_last)
            with autocast(device, cfg.amp):
                out = forward(x)
            out = tuple(o.float() for o in out) if isinstance(out, tuple) else out.float()
            loss, logs = objective(out, x, y, idx, epoch)
            check_finite(loss, step, last)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            if step % 50 == 0:
                run.scalars(step, **{f"{tag}/train_loss": loss.item()}, **{f"{tag}/{k}": v for k, v in logs.items()},
                            **{f"{tag}/lr": opt.param_groups[0]["lr"]})
        sched.step()
        if memory is not None:
            memory.end_epoch()
        metrics = accuracy_of(*predict(model, test_loader, device, cfg.amp))
        run.scalars(epoch + 1, **{f"{tag}/test_{k}": v for k, v in metrics.items()})
        run.log.info("%s epoch %d: loss %.4f test top-1 %.4f top-5 %.4f", tag, epoch + 1, loss.item(),
                     metrics["top1"], metrics["top5"])
        if run.is_main:
            if metrics["top1"] > best_top1:
                best_top1 = metrics["top1"]
                save_checkpoint(best, state(epoch + 1, best_top1))
            save_checkpoint(last, state(epoch + 1, best_top1))
        barrier()
    final = accuracy_of(*predict(model, test_loader, device, cfg.amp))
    return {"test_top1": final["top1"], "test_top5": final["top5"], "best_top1": max(best_top1, final["top1"])}


def resolve_teacher_checkpoint(path, config_dir):
    """An existing teacher file: `path` as given (absolute, or relative to the working directory), else
    relative to the config file's folder `config_dir`; otherwise DataError naming every path tried."""
    p = Path(path).expanduser()
    tried = [p.resolve()]
    if p.is_file():
        return p.resolve()
    if not p.is_absolute() and config_dir is not None:
        q = (Path(config_dir) / p).resolve()
        if q.is_file():
            return q
        tried.append(q)
    raise DataError(tried[0], "teacher checkpoint not found (tried " + ", ".join(map(str, tried)) + ")",
                    hint=TEACHER_HINT)


def config_dir_of(argv):
    """The folder of the `--config` file `parse_config` reads (it falls back to this package's folder)."""
    import sys
    args = list(sys.argv[1:] if argv is None else argv)
    if "--config" not in args or args.index("--config") + 1 >= len(args):
        return None
    p = Path(args[args.index("--config") + 1])
    return (p if p.exists() or p.is_absolute() else HERE / p).resolve().parent


def get_teacher(cfg, run, dist, device, train_set, test_set, num_classes, data_dir):
    """The frozen teacher (eval mode, no grad): loaded from teacher_checkpoint, or trained here with CE."""
    if cfg.teacher_checkpoint:
        teacher = load_teacher(cfg.teacher, cfg.teacher_checkpoint, num_classes).to(device)
        acc = accuracy_of(*predict(teacher, loader(test_set, 256, num_workers=cfg.num_workers), device, cfg.amp))
        metrics = {"test_top1": acc["top1"], "test_top5": acc["top5"]}
        run.log.info("teacher %s from %s: test top-1 %.4f", cfg.teacher, cfg.teacher_checkpoint, acc["top1"])
    else:
        if cfg.teacher_epochs <= 0:
            raise ConfigError(f"--method {cfg.method} needs --teacher_checkpoint, or --teacher_epochs > 0 to train "
                              "the teacher in this run")
        seed_everything(cfg.seed, cfg.deterministic)
        teacher = build_model(cfg.teacher, num_classes)
        ce = lambda out, x, y, idx, epoch: (F.cross_entropy(out, y), {})  # noqa: E731
        metrics = fit(cfg, run, dist, device, teacher, train_set, test_set, run.ckpt_dir / "teacher",
                      epochs=cfg.teacher_epochs, lr=cfg.teacher_lr, objective=ce, seed=cfg.seed, tag="teacher",
                      data_dir=data_dir)
        run.log.info("teacher %s trained in-run: %s", cfg.teacher, json.dumps(metrics))
    teacher.eval().requires_grad_(False)
    if cfg.channels_last and device.type == "cuda":
        teacher.to(memory_format=torch.channels_last)
    return maybe_compile(teacher, cfg.compile, device), metrics


def transfer_gap_table(cfg, run, device, teacher, student, folder, num_classes):
    """Per-teacher-rank-group recall (paper Table 1) of teacher, student (and baseline, gain): md, csv, png."""
    train_plain, test_set, _ = build_datasets(cfg.dataset, folder, False, cfg.train_split, cfg.test_split)
    train_loader = loader(train_plain, 256, num_workers=cfg.num_workers)
    mass = teacher_class_mass(teacher, train_loader, device)
    ranking = teacher_class_ranking(mass)
    test_loader = loader(test_set, 256, num_workers=cfg.num_workers)
    recalls = {}
    for name, model in (("teacher", teacher), ("student", student)):
        logits, labels = predict(model, test_loader, device, cfg.amp)
        recalls[name] = per_class_recall(labels.numpy(), logits.argmax(1).numpy(), num_classes)
    if cfg.baseline_checkpoint:
        base = build_model(cfg.student, num_classes).to(device)
        base.load_state_dict(extract_state_dict(load_checkpoint(cfg.baseline_checkpoint)))
        logits, labels = predict(base, test_loader, device, cfg.amp)
        recalls["baseline"] = per_class_recall(labels.numpy(), logits.argmax(1).numpy(), num_classes)
        recalls["gain"] = recalls["student"] - recalls["baseline"]
    if isinstance(student, TwoHeadStudent):  # does the weight favour the classes the teacher ranks low?
        recalls["ipwd_weight"] = class_mean_weights(student, train_loader, device, num_classes, **weight_options(cfg))
    rows = group_table(ranking, recalls, cfg.class_groups)
    text = write_table(rows, run.dir / "class_groups")
    draw_bar_chart(rows, run.dir / "class_groups.png", title=f"{cfg.method}: recall by teacher-rank group")
    np.save(run.dir / "teacher_class_mass.npy", mass)
    run.log.info("per-group recall (classes ranked by the teacher's mean probability):\n%s", text)


def write_weight_stats(cfg, run, device, student, folder):
    """`ipwd_weight_stats.json`: mean, std and percentiles of the inverse propensity weight w over the
    (unaugmented) training set under the trained student, before (`raw`) and after the run's normalisation."""
    train_plain, _, _ = build_datasets(cfg.dataset, folder, False, cfg.train_split, cfg.test_split)
    data = loader(train_plain, cfg.batch_size, num_workers=cfg.num_workers)
    raw, _ = sample_weights(student, data, device, **{**weight_options(cfg), "normalize": "none"})
    applied, _ = sample_weights(student, data, device, **weight_options(cfg))
    stats = {"raw": weight_summary(raw), "applied": weight_summary(applied), "weight_normalize": cfg.weight_normalize,
             "batch_size": cfg.batch_size}
    (run.dir / "ipwd_weight_stats.json").write_text(json.dumps(stats, indent=2) + "\n")
    run.log.info("IPWD weight over the training set: %s", json.dumps(stats["raw"]))


@exit_on_user_error
def main(argv=None):
    cfg = parse_config(IPWDConfig, argv, config_dir=HERE, description=__doc__)
    if cfg.teacher_checkpoint and cfg.method in DISTILLED:  # checked (and made absolute) before the run starts
        cfg.teacher_checkpoint = str(resolve_teacher_checkpoint(cfg.teacher_checkpoint, config_dir_of(argv)))
    dist, device = init_distributed(cfg.device, cfg.cpu_threads)
    if dist.enabled and cfg.method.startswith("pskd"):
        raise ConfigError("PS-KD keeps per-sample predictions in one process; run it without NPROC>1")
    run = Run(cfg, "ipwd", dist)
    seeds = cfg.seeds or [cfg.seed]
    if run.is_main:
        dataset_dir(cfg)  # rank 0 generates the synthetic data once, before the other ranks read it
    barrier()
    folder = dataset_dir(cfg)
    train_set, test_set, num_classes = build_datasets(cfg.dataset, folder, True, cfg.train_split, cfg.test_split)
    run.log.info("%s: %d train / %d test images, %d classes, device %s", folder, len(train_set), len(test_set),
                 num_classes, device)
    teacher, teacher_metrics = None, None
    if cfg.method in DISTILLED:
        teacher, teacher_metrics = get_teacher(cfg, run, dist, device, train_set, test_set, num_classes, folder)
    results = []
    for k, seed in enumerate(seeds):
        ckpt_dir = run.ckpt_dir if len(seeds) == 1 else run.ckpt_dir / f"seed{seed}"
        result_file = ckpt_dir / "result.json"
        if cfg.resume and result_file.exists():
            results.append(json.loads(result_file.read_text()))
            continue
        seed_everything(seed, cfg.deterministic)
        student = build_model(cfg.student, num_classes)
        if cfg.method in TWO_HEAD:
            student = TwoHeadStudent(student, num_classes)
        memory = PSKDMemory(len(train_set), num_classes) if cfg.method.startswith("pskd") else None
        objective = make_objective(cfg, teacher, memory, cfg.epochs, device)
        result = fit(cfg, run, dist, device, student, train_set, test_set, ckpt_dir, epochs=cfg.epochs, lr=cfg.lr,
                     objective=objective, seed=seed, tag=f"seed{seed}", memory=memory, data_dir=folder)
        if teacher_metrics is not None:
            result["teacher_top1"] = teacher_metrics["test_top1"]
        run.log.info("seed %d: %s", seed, json.dumps(result))
        if run.is_main:
            ckpt_dir.mkdir(parents=True, exist_ok=True)
            result_file.write_text(json.dumps(result, indent=2) + "\n")
            if k == 0 and teacher is not None and cfg.class_groups > 0:
                transfer_gap_table(cfg, run, device, teacher, student, folder, num_classes)
            if k == 0 and cfg.method in TWO_HEAD:
                write_weight_stats(cfg, run, device, student, folder)
        results.append(result)
    if run.is_main:
        if len(seeds) > 1:  # eval.sh and make demo look for checkpoints/{best,last}.pt
            for name in ("best.pt", "last.pt"):
                shutil.copyfile(run.ckpt_dir / f"seed{seeds[0]}" / name, run.ckpt_dir / name)
        run.write_metrics(mean_std(results, count_key="seeds"))
    run.close()
    cleanup_distributed()


if __name__ == "__main__":
    main()

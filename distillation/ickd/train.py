"""Train an ICKD student (or, with `--icc_weight 0 --kd_weight 0`, a vanilla one) on CIFAR-100 or ImageNet.

    bash train.sh --config configs/cifar100_resnet32x4_resnet8x4_ickd.yaml [--seeds 0,1,2] [--key value ...]

Objective (losses.ickd_objective): beta_CE CE + beta_1 KD + beta_2 L_CC between the teacher's last-stage map
and the embedded student map (model.ICKDStudent). CIFAR-100 follows the official RepDistiller fork (SGD, lr
0.05, x0.1 at 150/180/210 of 240 epochs, batch 64, wd 5e-4); ImageNet the official torchdistill config (AdamW
2e-4, wd 5e-4, batch 256, 100 epochs, x0.1 at 30/60/90). `teacher_checkpoint: ""` with `teacher_epochs > 0`
trains the teacher with CE inside the run first (the smoke config does). metrics.json: `test_top1`,
`test_top5` (last epoch), `best_top1`, `teacher_top1`; with `--seeds` the mean, `<key>_std` and `seeds`.
Per seed, `icc_curve.json` holds the mean ICC loss of every epoch.
"""
import dataclasses
import json
import shutil
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

from common.checkpoint import load_checkpoint, restore_training_state, save_checkpoint, training_state
from common.config import RunConfig, config_to_dict, option, parse_config
from common.distributed import barrier, cleanup_distributed, distributed_sampler, init_distributed, wrap_ddp
from common.errors import ConfigError, DataError, exit_on_user_error
from common.metrics.accuracy import topk_correct
from common.metrics.summary import mean_std
from common.models import MODELS, TEACHER_HINT, build_model, extract_state_dict, load_teacher
from common.rundir import Run, check_finite
from common.runtime import autocast, seed_everything

from .data import DATASETS, build_datasets, dataset_dir, loader
from .losses import REDUCTIONS, ickd_objective
from .model import KERNELS, ICKDStudent, teacher_forward

HERE = Path(__file__).resolve().parent


@dataclasses.dataclass
class ICKDConfig(RunConfig):
    # data
    dataset: str = option("cifar100", "cifar100 (pickles), imagenet (ImageFolder) or synthetic (generated "
                          "CIFAR-format data in <out_dir>/data)", choices=DATASETS)
    data_root: str = option("", "folder holding cifar-100-python/ or imagenet/ (default: $DATA_ROOT, else ./data)")
    synthetic_classes: int = option(10, "synthetic: number of classes")
    synthetic_train_per_class: int = option(100, "synthetic: training images per class")
    synthetic_test_per_class: int = option(20, "synthetic: test images per class")
    synthetic_seed: int = option(0, "synthetic: generator seed")
    num_workers: int = option(4, "DataLoader worker processes")
    # models
    student: str = option("resnet8x4", "student network (common.models)", choices=tuple(MODELS))
    teacher: str = option("resnet32x4", "teacher network (common.models)", choices=tuple(MODELS))
    teacher_checkpoint: str = option("", "teacher weights (mdistiller/RepDistiller ckpt_epoch_240.pth, torchvision "
                                     "file, or ours); relative: from the working directory, then the config's folder")
    teacher_epochs: int = option(0, "in-run CE teacher training when teacher_checkpoint is empty")
    teacher_lr: float = option(0.05, "learning rate of the in-run teacher")
    student_checkpoint: str = option("", "initial student weights (ImageNet: torchvision resnet18 file; the official "
                                     "R34->R18 config starts from them); empty: random init")
    embed: str = option("conv1x1", "student embed: conv1x1 + BN (CIFAR code) or conv3x3 + BN (ImageNet code)",
                        choices=tuple(KERNELS))
    # optimisation
    optimizer: str = option("sgd", "sgd (CIFAR code) or adamw (ImageNet config)", choices=("sgd", "adamw"))
    epochs: int = option(240, "training epochs")
    batch_size: int = option(64, "global batch size")
    lr: float = option(0.05, "learning rate (RepDistiller: 0.01 for MobileNetV2 / ShuffleNet students)")
    lr_decay_epochs: list[int] = option([150, 180, 210], "epochs at which lr is multiplied by lr_decay_rate")
    lr_decay_rate: float = option(0.1, "learning-rate decay factor")
    weight_decay: float = option(5e-4, "weight decay")
    momentum: float = option(0.9, "SGD momentum")
    # objective
    ce_weight: float = option(1.0, "beta_CE (RepDistiller -r)")
    kd_weight: float = option(0.0, "beta_1, KD weight (-a): 0 for ICKD-C, 1 for ICKD-C + KL")
    icc_weight: float = option(2.5, "beta_2, ICC weight (-b); 0 turns ICKD off (the control)")
    temperature: float = option(4.0, "KD temperature")
    icc_reduction: str = option("c_b", "divisor of the summed squared ICC difference: c_b (CIFAR code), c_b2 "
                                "(ImageNet code), c2_b (paper)", choices=REDUCTIONS)
    icc_normalize_rows: bool = option(True, "L2-normalise each row of the ICC matrix (official code)")
    paper_exact: bool = option(False, "the paper's L_CC: 1/C^2 Frobenius, no row normalisation "
                               "(overrides the two above)")
    grid: list[int] = option([1, 1], "n m: grid-level ICC over n x m cells (1 1 = global ICKD)")
    # runs
    seeds: list[int] = option([], "one student per seed; metrics are mean and std (default: [seed])")


def predict(model, data_loader, device):
    """Logits (N, K) and labels (N,) of a plain network over a loader, on the CPU."""
    model.eval()
    logits, labels = [], []
    with torch.no_grad():
        for x, y, _ in data_loader:
            logits.append(model(x.to(device)).float().cpu())
            labels.append(y)
    return torch.cat(logits), torch.cat(labels)


def accuracy_of(logits, labels):
    top1, top5 = topk_correct(logits, labels, (1, min(5, logits.shape[1])))
    return {"top1": top1 / max(len(labels), 1), "top5": top5 / max(len(labels), 1)}


def resolve_path(path, config_dir):
    """An existing file: `path` as given, else relative to the config's folder; DataError naming both."""
    p = Path(path).expanduser()
    if p.is_file():
        return p.resolve()
    tried = [p.resolve()]
    if not p.is_absolute() and config_dir is not None:
        if (Path(config_dir) / p).is_file():
            return (Path(config_dir) / p).resolve()
        tried.append((Path(config_dir) / p).resolve())
    raise DataError(tried[0], "file not found (tried " + ", ".join(map(str, tried)) + ")", hint=TEACHER_HINT)


def config_dir_of(argv):
    args = list(sys.argv[1:] if argv is None else argv)
    if "--config" not in args or args.index("--config") + 1 >= len(args):
        return None
    p = Path(args[args.index("--config") + 1])
    return (p if p.exists() or p.is_absolute() else HERE / p).resolve().parent


def make_optimizer(cfg, params, lr):
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(params, lr=lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


def fit(cfg, run, dist, device, model, train_set, test_set, ckpt_dir, *, epochs, lr, step_fn, seed, tag, extra,
        eval_net=None):
    """SGD/AdamW + step decay, checkpoint every epoch (last.pt, best.pt), resumable. `step_fn(forward, x, y) ->
    (loss, logs)`; `eval_net` (default: model) is the network scored on the test set. Returns metrics and the
    per-epoch mean ICC loss."""
    eval_net = model if eval_net is None else eval_net
    last, best = Path(ckpt_dir) / "last.pt", Path(ckpt_dir) / "best.pt"
    model.to(device)
    opt = make_optimizer(cfg, model.parameters(), lr)
    milestones = cfg.lr_decay_epochs if epochs == cfg.epochs else [max(1, round(m * epochs / cfg.epochs))
                                                                    for m in cfg.lr_decay_epochs]
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones, cfg.lr_decay_rate)
    step, start, best_top1, curve = 0, 0, -1.0, []
    if cfg.resume and last.exists():
        ckpt = load_checkpoint(last)
        step, start = restore_training_state(ckpt, model, opt, sched)
        best_top1, curve = ckpt["best_top1"], ckpt["icc_curve"]
        run.log.info("%s: resumed from %s at epoch %d", tag, last, start)
    forward = wrap_ddp(model, dist, device)
    sampler = distributed_sampler(train_set, shuffle=True, seed=seed)
    train_loader = loader(train_set, cfg.batch_size // dist.world_size, sampler, num_workers=cfg.num_workers)
    test_loader = loader(test_set, 256, num_workers=cfg.num_workers)
    for epoch in range(start, epochs):
        sampler.set_epoch(epoch)
        model.train()
        icc_sum, n = 0.0, 0
        for x, y, _ in run.progress(train_loader, desc=f"{tag} epoch {epoch + 1}/{epochs}"):
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            with autocast(device, cfg.amp):
                loss, logs = step_fn(forward, x, y)
            check_finite(loss, step, last)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            icc_sum, n = icc_sum + float(logs.get("icc", 0.0)), n + 1
            if step % 50 == 0:
                run.scalars(step, **{f"{tag}/{k}": float(v) for k, v in logs.items()}, **{f"{tag}/loss": loss.item()})
        sched.step()
        curve.append(icc_sum / max(n, 1))
        acc = accuracy_of(*predict(eval_net, test_loader, device))
        run.scalars(epoch + 1, **{f"{tag}/test_top1": acc["top1"], f"{tag}/icc_epoch": curve[-1]})
        run.log.info("%s epoch %d: loss %.4f icc %.5f test top-1 %.4f", tag, epoch + 1, loss.item(), curve[-1],
                     acc["top1"])
        if run.is_main:
            state = lambda top1, step=step, epoch=epoch: training_state(  # noqa: E731
                model, opt, sched, step=step, epoch=epoch + 1, config=config_to_dict(cfg), seed=seed, tag=tag,
                best_top1=top1, icc_curve=curve, **extra)
            if acc["top1"] > best_top1:
                best_top1 = acc["top1"]
                save_checkpoint(best, state(best_top1))
            save_checkpoint(last, state(best_top1))
        barrier()
    final = accuracy_of(*predict(eval_net, test_loader, device))
    return {"test_top1": final["top1"], "test_top5": final["top5"], "best_top1": max(best_top1, final["top1"])}, curve


def get_teacher(cfg, run, dist, device, train_set, test_set, num_classes, folder):
    """The frozen teacher and its test metrics: loaded, or trained here with CE (checkpoints/teacher/)."""
    if cfg.teacher_checkpoint:
        teacher = load_teacher(cfg.teacher, cfg.teacher_checkpoint, num_classes).to(device)
        path = cfg.teacher_checkpoint
    elif cfg.teacher_epochs > 0:
        seed_everything(cfg.seed, cfg.deterministic)
        teacher = build_model(cfg.teacher, num_classes)
        ce = lambda fwd, x, y: (F.cross_entropy(fwd(x).float(), y), {})  # noqa: E731
        fit(cfg, run, dist, device, teacher, train_set, test_set, run.ckpt_dir / "teacher", epochs=cfg.teacher_epochs,
            lr=cfg.teacher_lr, step_fn=ce, seed=cfg.seed, tag="teacher", extra={"data_dir": str(folder)})
        path = str(run.ckpt_dir / "teacher" / "last.pt")
    else:
        raise ConfigError("ICKD needs --teacher_checkpoint, or --teacher_epochs > 0 to train the teacher in this run")
    teacher.eval().requires_grad_(False)
    acc = accuracy_of(*predict(teacher, loader(test_set, 256, num_workers=cfg.num_workers), device))
    run.log.info("teacher %s (%s): test top-1 %.4f", cfg.teacher, path, acc["top1"])
    return teacher, path, acc["top1"]


def build_student(cfg, teacher, num_classes, device):
    """ICKDStudent(zoo student [+ initial weights], embed to the teacher's channel count)."""
    net = build_model(cfg.student, num_classes)
    if cfg.student_checkpoint:
        net.load_state_dict(extract_state_dict(load_checkpoint(cfg.student_checkpoint)))
    return ICKDStudent(net, teacher.num_features, cfg.embed).to(device)


@exit_on_user_error
def main(argv=None):
    cfg = parse_config(ICKDConfig, argv, config_dir=HERE, description=__doc__)
    for key in ("teacher_checkpoint", "student_checkpoint"):
        if getattr(cfg, key):  # resolved (and checked) before the run directory exists
            setattr(cfg, key, str(resolve_path(getattr(cfg, key), config_dir_of(argv))))
    if len(cfg.grid) != 2 or min(cfg.grid) < 1:
        raise ConfigError(f"--grid takes two positive numbers n m, got {cfg.grid}")
    dist, device = init_distributed(cfg.device, cfg.cpu_threads)
    run = Run(cfg, "ickd", dist)
    if run.is_main:
        dataset_dir(cfg)
    barrier()
    folder = dataset_dir(cfg)
    train_set, test_set, num_classes = build_datasets(cfg.dataset, folder)
    run.log.info("%s: %d train / %d test images, %d classes", folder, len(train_set), len(test_set), num_classes)
    teacher, teacher_path, teacher_top1 = get_teacher(cfg, run, dist, device, train_set, test_set, num_classes, folder)
    icc_options = dict(reduction=cfg.icc_reduction, normalize_rows=cfg.icc_normalize_rows,
                       paper_exact=cfg.paper_exact, grid=tuple(cfg.grid))

    def ickd_step(forward, x, y):
        with torch.no_grad():
            t_logits, t_map = teacher_forward(teacher, x)
        logits, s_map = forward(x)
        return ickd_objective(logits.float(), t_logits.float(), s_map.float(), t_map.float(), y,
                              ce_weight=cfg.ce_weight, kd_weight=cfg.kd_weight, icc_weight=cfg.icc_weight,
                              temperature=cfg.temperature, **icc_options)

    seeds, results = cfg.seeds or [cfg.seed], []
    for seed in seeds:
        ckpt_dir = run.ckpt_dir if len(seeds) == 1 else run.ckpt_dir / f"seed{seed}"
        result_file = ckpt_dir / "result.json"
        if cfg.resume and result_file.exists():
            results.append(json.loads(result_file.read_text()))
            continue
        seed_everything(seed, cfg.deterministic)
        model = build_student(cfg, teacher, num_classes, device)
        result, curve = fit(cfg, run, dist, device, model, train_set, test_set, ckpt_dir, epochs=cfg.epochs, lr=cfg.lr,
                            step_fn=ickd_step, seed=seed, tag=f"seed{seed}",
                            extra={"data_dir": str(folder), "teacher_path": teacher_path}, eval_net=model.student)
        result["teacher_top1"] = teacher_top1
        run.log.info("seed %d: %s", seed, json.dumps(result))
        if run.is_main:
            ckpt_dir.mkdir(parents=True, exist_ok=True)
            result_file.write_text(json.dumps(result, indent=2) + "\n")
            (ckpt_dir / "icc_curve.json").write_text(json.dumps(curve) + "\n")
        results.append(result)
    if run.is_main:
        if len(seeds) > 1:
            for name in ("best.pt", "last.pt", "icc_curve.json"):
                shutil.copyfile(run.ckpt_dir / f"seed{seeds[0]}" / name, run.ckpt_dir / name)
        run.write_metrics(mean_std(results, count_key="seeds"))
    run.close()
    cleanup_distributed()


if __name__ == "__main__":
    main()

"""Evaluate an ICKD checkpoint on its test set -> metrics.json, and draw the ICC matrices of one test batch.

    bash eval.sh --checkpoint runs/ickd/<run>/checkpoints/best.pt --out_dir runs/ickd-eval

Writes `metrics.json` (test_top1, test_top5, best_top1 as recorded in training) and `icc_matrices.png`:
the teacher's and the student's (embedded) inter-channel correlation matrices, averaged over one test batch,
and their absolute difference, as heat maps on one colour scale (both divided by the larger maximum): the
row-normalised matrices the official loss compares, or the raw Gram matrices with `paper_exact`. A plain zoo file
(e.g. an mdistiller teacher) is scored with `--model NAME` and gets no picture.
"""
import dataclasses
from pathlib import Path

import cv2
import numpy as np
import torch

from common.checkpoint import load_checkpoint
from common.config import RunConfig, config_from_dict, option, parse_config
from common.distributed import init_distributed
from common.errors import ConfigError, exit_on_user_error
from common.models import MODELS, build_model, extract_state_dict, load_teacher
from common.rundir import Run

from .data import DATASETS, build_datasets, dataset_dir, loader
from .losses import icc_matrix
from .model import ICKDStudent, teacher_forward
from .train import ICKDConfig, accuracy_of, predict

HERE = Path(__file__).resolve().parent


@dataclasses.dataclass
class EvalConfig(RunConfig):
    checkpoint: str = option("", "best.pt / last.pt written by train.sh, or a zoo file with --model")
    data_root: str = option("", "dataset folder (default: the one recorded in the checkpoint)")
    model: str = option("", "architecture of a checkpoint without a config", choices=("",) + tuple(MODELS))
    dataset: str = option("cifar100", "dataset of a checkpoint without a config", choices=DATASETS)
    num_classes: int = option(100, "classes of a checkpoint without a config")
    batch_size: int = option(256, "evaluation batch size")
    picture_batch: int = option(64, "test images averaged in icc_matrices.png")
    num_workers: int = option(4, "DataLoader worker processes")


def heatmap(matrix, size=256):
    """(C, C) array in [0, 1] -> (size, size, 3) uint8 colour image (nearest-neighbour upscaled)."""
    img = (np.clip(matrix, 0, 1) * 255).astype(np.uint8)
    return cv2.applyColorMap(cv2.resize(img, (size, size), interpolation=cv2.INTER_NEAREST), cv2.COLORMAP_VIRIDIS)


def draw_icc(teacher_icc, student_icc, path):
    """Teacher | student | |difference| side by side, titled; each (C, C) numpy in [0, 1]."""
    panels = []
    for title, m in (("teacher ICC", teacher_icc), ("student ICC", student_icc),
                     ("|difference|", np.abs(teacher_icc - student_icc))):
        panel = cv2.copyMakeBorder(heatmap(m), 28, 8, 8, 8, cv2.BORDER_CONSTANT, value=(255, 255, 255))
        cv2.putText(panel, title, (10, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 1, cv2.LINE_AA)
        panels.append(panel)
    if not cv2.imwrite(str(path), np.concatenate(panels, axis=1)):
        raise OSError(f"could not write {path}")


@torch.no_grad()
def batch_icc(teacher, student, x, normalize_rows=True):
    """Batch-mean ICC matrices (C, C) of teacher and embedded student for images x."""
    _, t_map = teacher_forward(teacher, x)
    _, s_map = student(x)
    t, s = icc_matrix(t_map.float(), normalize_rows).mean(0), icc_matrix(s_map.float(), normalize_rows).mean(0)
    scale = torch.maximum(t.abs().max(), s.abs().max()).clamp_min(1e-12)  # one colour scale for both panels
    t, s = t / scale, s / scale
    return t.cpu().numpy(), s.cpu().numpy()


@exit_on_user_error
def main(argv=None):
    cfg = parse_config(EvalConfig, argv, config_dir=HERE, description=__doc__)
    if not cfg.checkpoint:
        raise ConfigError("--checkpoint is required (e.g. runs/ickd/<run>/checkpoints/best.pt)")
    _, device = init_distributed(cfg.device, cfg.cpu_threads)
    ckpt = load_checkpoint(cfg.checkpoint)
    run = Run(cfg, "ickd_eval")
    if ckpt.get("config") is None:  # a plain zoo file
        if not cfg.model:
            raise ConfigError("this checkpoint holds no training config: pass --model (and --dataset, --data_root)")
        net = build_model(cfg.model, cfg.num_classes)
        net.load_state_dict(extract_state_dict(ckpt))
        folder = dataset_dir(dataclasses.replace(ICKDConfig(), dataset=cfg.dataset, data_root=cfg.data_root))
        dataset, train_cfg, student = cfg.dataset, None, None
    else:
        train_cfg = config_from_dict(ICKDConfig, ckpt["config"], source="checkpoint config")
        folder = Path(cfg.data_root) / Path(ckpt["data_dir"]).name if cfg.data_root else Path(ckpt["data_dir"])
        dataset = train_cfg.dataset
        num_classes = next(v.shape[0] for k, v in ckpt["model"].items() if k.endswith(("fc.weight", "linear.weight",
                                                                                         "classifier.weight")))
        if ckpt.get("tag") == "teacher":
            net = build_model(train_cfg.teacher, num_classes)
            net.load_state_dict(ckpt["model"])
            student = None
        else:
            teacher = load_teacher(train_cfg.teacher, ckpt["teacher_path"], num_classes).to(device).eval()
            student = ICKDStudent(build_model(train_cfg.student, num_classes), teacher.num_features, train_cfg.embed)
            student.load_state_dict(ckpt["model"])
            student.to(device).eval()
            net = student.student
    _, test_set, _ = build_datasets(dataset, folder)
    acc = accuracy_of(*predict(net.to(device), loader(test_set, cfg.batch_size, num_workers=cfg.num_workers), device))
    metrics = {"test_top1": acc["top1"], "test_top5": acc["top5"]}
    if ckpt.get("best_top1") is not None:
        metrics["best_top1"] = float(ckpt["best_top1"])
    if student is not None:
        x = next(iter(loader(test_set, cfg.picture_batch)))[0].to(device)
        rows = train_cfg.icc_normalize_rows and not train_cfg.paper_exact
        draw_icc(*batch_icc(teacher, student, x, rows), run.dir / "icc_matrices.png")
    run.log.info("%s on %s: %s", cfg.checkpoint, folder, metrics)
    run.write_metrics(metrics)
    run.close()


if __name__ == "__main__":
    main()

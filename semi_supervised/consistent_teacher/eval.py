"""Evaluate a Consistent-Teacher checkpoint (the teacher, as the official `inference_on="teacher"`) with COCO bbox mAP.

    bash eval.sh --checkpoint RUN/checkpoints/last.pt --out_dir runs/eval [--ann_file A.json --image_dir DIR]

Writes `<out_dir>/metrics.json` (bbox_mAP, bbox_mAP_50, bbox_mAP_75, bbox_mAP_s/m/l as fractions),
`detections.json` (COCO results format, for the evaluation server or other tools) and `detections.png`.
Without --ann_file the validation set recorded in the checkpoint is used.
"""
import dataclasses
from pathlib import Path

from common.checkpoint import load_checkpoint
from common.config import RunConfig, config_from_dict, option, parse_config
from common.distributed import init_distributed
from common.errors import ConfigError, exit_on_user_error
from common.rundir import Run

from .data import build_val_set
from .evaluate import evaluate
from .train import TrainConfig, build_model


@dataclasses.dataclass
class EvalConfig(RunConfig):
    checkpoint: str = option("", "a last.pt written by train.sh")
    weights: str = option("teacher", "which network of the checkpoint to evaluate", choices=("teacher", "student"))
    ann_file: str = option("", "COCO instances JSON to evaluate on (default: the run's validation set)")
    image_dir: str = option("", "image folder of --ann_file")
    batch_size: int = option(2, "images per batch")
    num_workers: int = option(2, "data loader workers")
    vis_images: int = option(8, "images drawn into detections.png")


@exit_on_user_error
def main(argv=None):
    cfg = parse_config(EvalConfig, argv, config_dir=Path(__file__).resolve().parent, description=__doc__)
    if not cfg.checkpoint:
        raise ConfigError("--checkpoint is required (e.g. runs/consistent_teacher/<run>/checkpoints/last.pt)")
    if bool(cfg.ann_file) != bool(cfg.image_dir):
        raise ConfigError("--ann_file and --image_dir go together")
    _, device = init_distributed(cfg.device, cfg.cpu_threads)
    run = Run(cfg, "consistent_teacher_eval")
    ckpt = load_checkpoint(cfg.checkpoint)
    train_cfg = config_from_dict(TrainConfig, ckpt["config"], source=f"{cfg.checkpoint} config")
    model = build_model(train_cfg, ckpt["num_classes"]).to(device)
    model.load_state_dict(ckpt[cfg.weights if cfg.weights == "teacher" else "model"])
    files = {"val": (cfg.ann_file, cfg.image_dir) if cfg.ann_file else tuple(ckpt["val"])}
    val_set = build_val_set(files, train_cfg)
    if val_set.class_names != ckpt["class_names"]:
        raise ConfigError(f"{files['val'][0]} has classes {val_set.class_names}, the checkpoint was trained on "
                          f"{ckpt['class_names']}")
    eval_cfg = dataclasses.replace(train_cfg, vis_images=cfg.vis_images)
    metrics = evaluate(model, val_set, device, eval_cfg, run.dir, batch_size=cfg.batch_size,
                       num_workers=cfg.num_workers, amp=cfg.amp, progress=run.progress)
    run.write_metrics(metrics)
    run.close()


if __name__ == "__main__":
    main()

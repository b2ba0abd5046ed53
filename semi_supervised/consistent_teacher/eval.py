"""Evaluate a Consistent-Teacher checkpoint (the teacher, as the official `inference_on="teacher"`) with COCO bbox mAP.

    bash eval.sh --checkpoint RUN/checkpoints/last.pt --out_dir runs/eval [--ann_file A.json --image_dir DIR]
    bash eval.sh --official_checkpoint consistent_teacher_r50_fpn_coco_180k_10p.pth \
        --ann_file coco/annotations/instances_val2017.json --image_dir coco/val2017 --out_dir runs/eval-official

Writes `<out_dir>/metrics.json` (bbox_mAP, bbox_mAP_50, bbox_mAP_75, bbox_mAP_s/m/l as fractions),
`detections.json` (COCO results format, for the evaluation server or other tools), `per_class_ap.json`,
`coco_summary.txt` (pycocotools' printout) and `detections.png`.
Without --ann_file the validation set recorded in the checkpoint is used.
"""
import dataclasses
from pathlib import Path

from common.checkpoint import load_checkpoint
from common.config import RunConfig, config_from_dict, option, parse_config
from common.distributed import init_distributed
from common.errors import ConfigError, exit_on_user_error
from common.rundir import Run

from .checkpoint import load_official_checkpoint
from .data import build_val_set
from .evaluate import evaluate
from .train import TrainConfig, build_model


@dataclasses.dataclass
class EvalConfig(RunConfig):
    checkpoint: str = option("", "a last.pt written by train.sh")
    official_checkpoint: str = option("", "a released mmdet .pth of Adamdad/ConsistentTeacher instead (needs "
                                      "--ann_file and --image_dir)")
    weights: str = option("teacher", "which network of the checkpoint to evaluate", choices=("teacher", "student"))
    ann_file: str = option("", "COCO instances JSON to evaluate on (default: the run's validation set)")
    image_dir: str = option("", "image folder of --ann_file")
    batch_size: int = option(2, "images per batch")
    num_workers: int = option(2, "data loader workers")
    vis_images: int = option(8, "images drawn into detections.png")
    clip_test_boxes: bool = option(False, "clip detections to the image (official: unclipped)")
    test_short: int = option(0, "test short side (0: the run's; 800 for an official checkpoint, use 600 for VOC)")
    max_long: int = option(0, "test long side cap (0: the run's; 1333 for an official checkpoint, 1000 for VOC)")


@exit_on_user_error
def main(argv=None):
    cfg = parse_config(EvalConfig, argv, config_dir=Path(__file__).resolve().parent, description=__doc__)
    if not (cfg.checkpoint or cfg.official_checkpoint):
        raise ConfigError("--checkpoint is required (e.g. runs/consistent_teacher/<run>/checkpoints/last.pt), or "
                          "--official_checkpoint X.pth --ann_file A.json --image_dir DIR")
    if bool(cfg.ann_file) != bool(cfg.image_dir) or (cfg.official_checkpoint and not cfg.ann_file):
        raise ConfigError("--ann_file and --image_dir go together (and are required with --official_checkpoint)")
    _, device = init_distributed(cfg.device, cfg.cpu_threads)
    run = Run(cfg, "consistent_teacher_eval")
    if cfg.official_checkpoint:
        state, num_classes, _ = load_official_checkpoint(cfg.official_checkpoint, cfg.weights)
        train_cfg, class_names = TrainConfig(model="paper"), None
    else:
        ckpt = load_checkpoint(cfg.checkpoint)
        train_cfg = config_from_dict(TrainConfig, ckpt["config"], source=f"{cfg.checkpoint} config")
        state = ckpt["teacher" if cfg.weights == "teacher" else "model"]
        num_classes, class_names = ckpt["num_classes"], ckpt["class_names"]
    train_cfg = dataclasses.replace(train_cfg, test_short=cfg.test_short or train_cfg.test_short,
                                    max_long=cfg.max_long or train_cfg.max_long)
    model = build_model(train_cfg, num_classes).to(device)
    model.load_state_dict(state)
    files = {"val": (cfg.ann_file, cfg.image_dir) if cfg.ann_file else tuple(ckpt["val"])}
    val_set = build_val_set(files, train_cfg)
    if len(val_set.class_names) != num_classes or (class_names and val_set.class_names != class_names):
        raise ConfigError(f"{files['val'][0]} has classes {val_set.class_names}, the checkpoint was trained on "
                          f"{class_names or str(num_classes) + ' classes'}")
    eval_cfg = dataclasses.replace(train_cfg, vis_images=cfg.vis_images, clip_test_boxes=cfg.clip_test_boxes)
    metrics = evaluate(model, val_set, device, eval_cfg, run.dir, batch_size=cfg.batch_size,
                       num_workers=cfg.num_workers, amp=cfg.amp, progress=run.progress)
    run.write_metrics(metrics)
    run.close()


if __name__ == "__main__":
    main()

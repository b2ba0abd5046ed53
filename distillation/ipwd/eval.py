"""Evaluate a checkpoint written by train.sh on its test set (CIFAR test split / ImageNet val) -> metrics.json.

    bash eval.sh --checkpoint runs/ipwd/<run>/checkpoints/best.pt --out_dir runs/ipwd-eval

The checkpoint carries its training config and the data folder it was trained on (generated data included);
`--data_root` points to another copy (the folder holding cifar-100-python/ or the ImageNet train/ val/).
Also accepts mdistiller/RepDistiller teacher files with `--model NAME` (e.g. to check a downloaded teacher).
metrics.json: test_top1, test_top5 (fractions), and best_top1 as recorded during training when present.
"""
import dataclasses
from pathlib import Path

import torch

from common.checkpoint import load_checkpoint
from common.config import RunConfig, config_from_dict, option, parse_config
from common.distributed import init_distributed
from common.errors import ConfigError, exit_on_user_error
from common.rundir import Run

from .data import DATASETS, build_datasets, dataset_dir, loader
from .models import MODELS, TwoHeadStudent, build_model, extract_state_dict
from .train import TWO_HEAD, IPWDConfig, accuracy_of, predict


@dataclasses.dataclass
class EvalConfig(RunConfig):
    checkpoint: str = option("", "a best.pt / last.pt written by train.sh, or a teacher file with --model")
    data_root: str = option("", "folder holding the dataset (default: the folder recorded in the checkpoint)")
    model: str = option("", "architecture, for checkpoints without a config (mdistiller teachers)",
                        choices=("",) + tuple(MODELS))
    dataset: str = option("cifar100", "dataset of a checkpoint without a config", choices=DATASETS)
    train_split: str = option("train", "ImageFolder training split of a checkpoint without a config")
    test_split: str = option("val", "ImageFolder test split of a checkpoint without a config")
    batch_size: int = option(256, "evaluation batch size")
    num_workers: int = option(4, "DataLoader worker processes")


HEAD_KEYS = ("fc.weight", "linear.weight", "classifier.weight", "classifier.0.weight")  # last layer of each zoo model


def num_classes_of(state):
    """Rows of the deployed head's weight in a state dict (the auxiliary head is skipped)."""
    return next(v.shape[0] for k, v in state.items() if k.endswith(HEAD_KEYS) and not k.startswith("aux_head"))


def restore_model(ckpt, model_name=""):
    """(model with the checkpoint's weights, the training config or None)."""
    if ckpt.get("config") is None:
        if not model_name:
            raise ConfigError("this checkpoint holds no training config: pass --model (and --dataset, --data_root)")
        state = extract_state_dict(ckpt)
        model = build_model(model_name, num_classes_of(state))
        model.load_state_dict(state)
        return model, None
    train_cfg = config_from_dict(IPWDConfig, ckpt["config"], source="checkpoint config")
    is_teacher = ckpt.get("tag") == "teacher"
    num_classes = num_classes_of(ckpt["model"])
    model = build_model(train_cfg.teacher if is_teacher else train_cfg.student, num_classes)
    if train_cfg.method in TWO_HEAD and not is_teacher:
        model = TwoHeadStudent(model, num_classes)
    model.load_state_dict(ckpt["model"])
    return model, train_cfg


@exit_on_user_error
def main(argv=None):
    cfg = parse_config(EvalConfig, argv, config_dir=Path(__file__).resolve().parent, description=__doc__)
    if not cfg.checkpoint:
        raise ConfigError("--checkpoint is required (e.g. runs/ipwd/<run>/checkpoints/best.pt)")
    _, device = init_distributed(cfg.device, cfg.cpu_threads)
    run = Run(cfg, "ipwd_eval")
    ckpt = load_checkpoint(cfg.checkpoint, map_location="cpu")
    model, train_cfg = restore_model(ckpt, cfg.model)
    if train_cfg is None:
        dataset, splits = cfg.dataset, (cfg.train_split, cfg.test_split)
        folder = dataset_dir(dataclasses.replace(IPWDConfig(), dataset=cfg.dataset, data_root=cfg.data_root,
                                                 train_split=cfg.train_split))
    else:
        dataset, splits = train_cfg.dataset, (train_cfg.train_split, train_cfg.test_split)
        folder = Path(ckpt["data_dir"])
        if cfg.data_root:
            folder = Path(cfg.data_root) if dataset == "imagefolder32" else Path(cfg.data_root) / folder.name
    _, test_set, _ = build_datasets(dataset, folder, False, *splits)
    with torch.no_grad():
        acc = accuracy_of(*predict(model.to(device), loader(test_set, cfg.batch_size, num_workers=cfg.num_workers),
                                   device, cfg.amp))
    metrics = {"test_top1": acc["top1"], "test_top5": acc["top5"]}
    if ckpt.get("best_top1") is not None:
        metrics["best_top1"] = float(ckpt["best_top1"])
    run.log.info("%s on %s: %s", cfg.checkpoint, folder, metrics)
    run.write_metrics(metrics)
    run.close()


if __name__ == "__main__":
    main()

"""Evaluate a training checkpoint on a task file: bash eval.sh --checkpoint RUN/checkpoints/best.pt --out_dir DIR

The checkpoint holds the tuned parameters and buffers plus the path of the backbone they started from
(`init_checkpoint`); the model is rebuilt from that backbone with the training config, then the tuned state is
loaded. A `last.pt` of a run with EMA and `ema_eval` is evaluated with its averaged weights, as training validated
them (`best.pt` already holds them). Writes metrics.json (`<split>_accuracy`, `<split>_vqa_score`, ...) and
predictions.jsonl. `--eval_file` scores another TSV of the task folder, e.g. RefCOCO's testB:

    bash eval.sh --checkpoint RUN/checkpoints/best.pt --eval_file refcoco_testB.tsv --out_dir runs/testB
"""
import dataclasses
from pathlib import Path

from common.checkpoint import load_checkpoint
from common.config import RunConfig, config_from_dict, option, parse_config
from common.distributed import init_distributed
from common.errors import ConfigError, DataError, exit_on_user_error
from common.rundir import Run

from .data import TaskDataset, read_tsv
from .evaluate import evaluate
from .train import OFAPromptConfig, build, log_skipped, reader_task, task_folder

HERE = Path(__file__).resolve().parent


@dataclasses.dataclass
class EvalConfig(RunConfig):
    checkpoint: str = option("", "a training run's checkpoints/best.pt or last.pt")
    split: str = option("test", "which file of the training config to evaluate", choices=("val", "test"))
    data_root: str = option("", "override the training run's data_root")
    eval_file: str = option("", "a TSV inside the task folder to score instead of the split's file (metrics keep "
                            "the --split prefix)")


@exit_on_user_error
def main(argv=None):
    cfg = parse_config(EvalConfig, argv, config_dir=HERE, description=__doc__)
    if not cfg.checkpoint:
        raise ConfigError("--checkpoint is required: a training run's checkpoints/best.pt")
    dist, device = init_distributed(cfg.device, cfg.cpu_threads)
    run = Run(cfg, "ofa_prompt_eval", dist)             # refuses a training run's directory before reading anything
    ckpt = load_checkpoint(cfg.checkpoint)
    if "init_checkpoint" not in ckpt or "config" not in ckpt:
        raise DataError(cfg.checkpoint, "expected an ofa_prompt training checkpoint (init_checkpoint, config)")
    train_cfg = config_from_dict(OFAPromptConfig, ckpt["config"], source=str(cfg.checkpoint))
    if cfg.data_root:
        train_cfg.data_root = cfg.data_root
    if ckpt["init_checkpoint"]:
        train_cfg.init_checkpoint = ckpt["init_checkpoint"]
    folder = task_folder(train_cfg)
    task = reader_task(train_cfg)
    model, tok, _ = build(train_cfg, folder)
    weights = ckpt["model"]
    if ckpt.get("ema") is not None and train_cfg.ema_eval:            # last.pt of an EMA run
        weights = {k: v.to(weights[k]) for k, v in ckpt["ema"]["shadow"].items()}
    model.load_state_dict(weights, strict=False)
    model.to(device)
    train_rows = read_tsv(folder / train_cfg.train_file, task)
    answers = sorted({a for r in train_rows for a in r.fields[1]}) if task == "vqa" else None
    rows = read_tsv(folder / (cfg.eval_file or getattr(train_cfg, f"{cfg.split}_file")), task)
    data = TaskDataset(rows, task, tok, train_cfg.patch_image_size, train_cfg.max_src_len, train_cfg.max_tgt_len,
                       train_cfg.max_image_size, answers=answers)
    result = evaluate(model, data, tok, task, device, train_cfg, out_dir=run.dir if run.is_main else None,
                      java_metrics=train_cfg.java_metrics)
    log_skipped(run.log, result)
    run.write_metrics({f"{cfg.split}_{k}": v for k, v in result.items()})
    run.close()


if __name__ == "__main__":
    main()

"""Evaluate a supernet checkpoint: every static width, and the gated network -> metrics.json + accuracy_vs_madds.png.

    bash eval.sh --checkpoint runs/dsnet/<run>/checkpoints/last.pt --out_dir runs/dsnet-eval
    bash eval.sh --checkpoint DS_MBNet-70_1.pth.tar --model ds_mbnet_v1 --data_root $DATA_ROOT --out_dir DIR

Our checkpoints carry their config and data folder (generated data included); the official file needs --model
(and is evaluated on ImageNet val, `--dataset imagenet`). metrics.json: top1_width_<i> / madds_width_<i> of every
static width, test_top1 and mean_madds of the gated network (of the widest width for a supernet without a trained
gate, `--gated false`), route_frac_<k> and random_gate_top1 (the same-MAdds random-routing control).
"""
import dataclasses
from pathlib import Path

from common.checkpoint import load_checkpoint
from common.config import RunConfig, config_from_dict, option, parse_config
from common.distributed import init_distributed
from common.errors import ConfigError, exit_on_user_error
from common.rundir import Run

from .data import DATASETS, build_datasets, dataset_dir
from .evaluation import draw_accuracy_vs_madds, evaluate, summarize
from .model import MODELS
from .official import load_supernet
from .train import DSNetConfig, loader, make_model


@dataclasses.dataclass
class EvalConfig(RunConfig):
    checkpoint: str = option("", "our last.pt / supernet.pt, or the official DS_MBNet-70_1.pth.tar (with --model)")
    data_root: str = option("", "dataset folder (default: the folder recorded in the checkpoint)")
    model: str = option("", "architecture of a checkpoint without our config", choices=("",) + tuple(MODELS))
    dataset: str = option("imagenet", "dataset of a checkpoint without our config", choices=DATASETS)
    gated: str = option("auto", "evaluate the gated network: auto (if the checkpoint trained a gate), true, false",
                        choices=("auto", "true", "false"))
    ema: bool = option(True, "evaluate the EMA weights when the checkpoint has them")
    batch_size: int = option(256, "evaluation batch size")
    num_workers: int = option(8, "DataLoader worker processes")


@exit_on_user_error
def main(argv=None):
    cfg = parse_config(EvalConfig, argv, config_dir=Path(__file__).resolve().parent, description=__doc__)
    if not cfg.checkpoint:
        raise ConfigError("--checkpoint is required (e.g. runs/dsnet/<run>/checkpoints/last.pt)")
    _, device = init_distributed(cfg.device, cfg.cpu_threads)
    run = Run(cfg, "dsnet_eval")
    ckpt = load_checkpoint(cfg.checkpoint)
    if ckpt.get("config") is not None:  # ours
        train_cfg = config_from_dict(DSNetConfig, ckpt["config"], source=f"{cfg.checkpoint} config")
        folder = Path(ckpt["data_dir"])
        if cfg.data_root:
            folder = Path(cfg.data_root) / folder.name
        num_classes, trained_gate = ckpt["num_classes"], ckpt.get("stage") == "gate"
    else:  # the official file
        if not cfg.model:
            raise ConfigError("this checkpoint holds no config of ours: pass --model (ds_mbnet_v1 for DS_MBNet-70_1)")
        train_cfg = dataclasses.replace(DSNetConfig(), model=cfg.model, dataset=cfg.dataset, data_root=cfg.data_root)
        folder, num_classes, trained_gate = dataset_dir(train_cfg), 1000, True
    model = make_model(train_cfg, num_classes)
    load_supernet(model, cfg.checkpoint, prefer_ema=cfg.ema)
    _, test_set, _ = build_datasets(train_cfg.dataset, folder, train_cfg.image_size)
    gated = trained_gate if cfg.gated == "auto" else cfg.gated == "true"
    result = evaluate(model.to(device), loader(test_set, cfg.batch_size, num_workers=cfg.num_workers), device,
                      dynamic=gated, noise_seed=train_cfg.seed)
    metrics = summarize(result, train_cfg.route_start, train_cfg.num_routes)
    draw_accuracy_vs_madds(run.dir / "accuracy_vs_madds.png", metrics, title=f"{train_cfg.model}: {cfg.checkpoint}",
                           gated=gated)
    run.log.info("%s on %s: test_top1 %.4f mean_madds %.4g", cfg.checkpoint, folder, metrics["test_top1"],
                 metrics["mean_madds"])
    run.write_metrics(metrics)
    run.close()


if __name__ == "__main__":
    main()

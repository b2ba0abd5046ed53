"""Where a run's try-on data lives: a real dataset under data_root, or generated samples in the run directory."""
import os
from pathlib import Path

from common.data.tryon import TryOnDataset, write_synthetic_tryon
from common.errors import ConfigError

SYNTHETIC = "synthetic"


def dataset_dir(cfg):
    """`<data_root>` for real data ($DATA_ROOT, else ./data/<dataset>); for dataset=synthetic the samples are
    generated once (seeded) in `<out_dir>/data/synthetic` in the VITON-HD layout and read back by the real reader."""
    if cfg.dataset == SYNTHETIC:
        folder = Path(cfg.out_dir) / "data" / SYNTHETIC
        if not (folder / "test_pairs.txt").exists():
            write_synthetic_tryon(folder, num_train=cfg.synthetic_train, num_test=cfg.synthetic_test,
                                  height=cfg.height, width=cfg.width, seed=cfg.seed)
        return folder
    if cfg.data_root:
        return Path(cfg.data_root)
    return Path(os.environ.get("DATA_ROOT", "data")) / cfg.dataset


def build_dataset(root, cfg, split, mode="paired", flip=False):
    layout = "viton_hd" if cfg.dataset == SYNTHETIC else cfg.layout
    category = getattr(cfg, "category", "auto")
    if category != "auto" and layout != "dresscode":
        raise ConfigError(f"category={category!r} applies to layout dresscode only (layout is {layout!r})")
    return TryOnDataset(root, layout, split=split, mode=mode, size=(cfg.height, cfg.width), flip=flip,
                        category=category)

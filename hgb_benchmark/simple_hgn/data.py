"""From an HGB dataset folder to the tensors the models take (features per type, graph, labels, splits)."""
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from common.data.hgb import (
    OneHot,
    build_features,
    build_homogeneous_graph,
    input_dims,
    load_hgb,
    split_lp_train_valid,
    split_train_val,
    write_synthetic_hgb,
)

from .model import Graph

# synthetic_nc (the smoke data) plants its class signal in the edge types (see write_synthetic_hgb): papers link
# to authors of their own class through "writes" (relation 0, its reverse 1) and, twice as often, to authors
# of the other classes through a decoy relation with the same endpoint types (2, reverse 3). Ignoring edge
# types, every class is equally common around every paper (1 and 2 hops), so GCN and Simple-HGN without its
# edge-type term see only the paper's own (weak) features; the subject and term links are uninformative.
SYNTHETIC = {"synthetic_nc": {"task": "nc", "feature_signal": 2.0, "decoy_relations": (2,),
                              "edge_types": ((0, 1), (1, 0), (0, 1), (1, 0), (0, 2), (2, 0), (0, 3), (3, 0)),
                              "mean_degree": (3, 3, 6, 6, 3, 3, 3, 3), "homophily": (1, 1, 1, 1, 0, 0, 0, 0)},
             "synthetic_nc_multilabel": {"task": "nc", "multi_label": True},
             # LP data sets (LastFM, amazon, PubMed) list no reverse relations: the graph build adds them
             "synthetic_lp": {"task": "lp", "edge_types": ((0, 0), (0, 1), (0, 2), (0, 3)), "lp_relations": (1,),
                              "num_classes": 6, "homophily": 0.95, "feature_signal": 3.0}}


def dataset_dir(cfg):
    """`<data_root>/<dataset>`; data_root defaults to $DATA_ROOT, else ./data.

    The names in `SYNTHETIC` are generated (once, deterministically from `cfg.seed`) in `<out_dir>/data/`,
    in the HGB file format, and then read back through the same reader as the real data.
    """
    if cfg.dataset in SYNTHETIC:
        folder = Path(cfg.out_dir) / "data" / cfg.dataset
        if not (folder / "node.dat").exists():
            write_synthetic_hgb(folder, seed=cfg.seed, **SYNTHETIC[cfg.dataset])
        return folder
    root = cfg.data_root or os.environ.get("DATA_ROOT", "data")
    return Path(root) / cfg.dataset


@dataclass
class Inputs:
    """What a model needs, on one device."""
    data: object  # common.data.hgb.HGBData
    features: list  # per type: float tensor (N_t, F_t) or None (one-hot id)
    in_dims: list
    one_hot: list
    graph: Graph
    num_etypes: int


def model_inputs(data, cfg, device, links=None):
    """Features in `cfg.features` mode and the homogeneous typed graph (`cfg.graph`), moved to `device`."""
    feats = build_features(data, cfg.features)
    src, dst, etype, num_etypes = build_homogeneous_graph(data, symmetric=cfg.graph == "symmetric", links=links)
    graph = Graph.from_edges(src, dst, etype, data.num_nodes).to(device)
    one_hot = [isinstance(f, OneHot) for f in feats]
    tensors = [None if oh else f.to(device) for f, oh in zip(feats, one_hot, strict=True)]
    return Inputs(data, tensors, input_dims(feats), one_hot, graph, num_etypes)


@dataclass
class NCSplits:
    train: torch.Tensor  # node ids
    val: torch.Tensor
    test: torch.Tensor
    labels: torch.Tensor  # (N,) int64 with -1, or (N, C) float multi-hot, for train/val nodes only
    test_labels: np.ndarray  # aligned with test (kept on the CPU, out of the training code's reach)


def nc_splits(data, cfg, device, repeat=0):
    """label.dat -> seeded train/val split (val = `val_fraction`, 20% as HGB); test = the test label file.

    The split is drawn with seed `cfg.seed + repeat`: each repeat of `--repeat N` trains and early-stops on
    its own split, as the official drivers, which draw a new (unseeded) split in every run.
    """
    if data.labels is None:
        raise ValueError(f"{data.root} has no label.dat: it is not a node-classification dataset")
    train, val = split_train_val(data.train_val_nodes, cfg.val_fraction, seed=cfg.seed + repeat)
    as_t = lambda a: torch.as_tensor(a, device=device)  # noqa: E731
    return NCSplits(as_t(train), as_t(val), as_t(data.test_nodes), as_t(data.labels), data.test_labels)


def lp_split(data, cfg):
    """Official LP protocol: link.dat -> (train_links, valid_links) [head, tail, rel]; the graph uses train."""
    return split_lp_train_valid(data, cfg.valid_fraction, seed=cfg.seed)


def load_dataset(cfg):
    return load_hgb(dataset_dir(cfg))

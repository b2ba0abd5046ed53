"""Training-step time and peak memory of Simple-HGN against a torch-geometric GATConv stack.

    bash bench.sh                                   # CPU: dblp; CUDA (when present): dblp and freebase
    bash bench.sh --device cuda --graphs dblp,freebase --amp true --out bench_results/cuda_bf16.json

What is timed: one full-batch training step of node classification -- forward over the whole graph, NLL of
the log-softmax on the target-type nodes (random labels), backward, Adam step -- median over `--repeats`
steps after `--warmup` untimed ones, with dropout on (train mode), as in an epoch of the official driver.

The graphs are generated with the statistics of HGB's DBLP (26,128 nodes, 4 node types, 239,566 links of 6
types: author-paper, paper-term, paper-venue and their reverses) and Freebase (180,098 nodes, 8 node types
with the HGB type sizes, 1,057,688 links of 36 types): per relation, `count` links with uniformly random
endpoints in its (source type, destination type). Freebase's per-relation counts and type pairs are not
HGB's (its links are spread evenly over 36 type pairs); degree distributions are uniform, not power-law.
The links then go through `common.data.hgb.build_homogeneous_graph` -- the same symmetrisation, self-loops
and edge typing (2R + 1 types) as training -- without writing `.dat` files (`write_synthetic_hgb` plants a
learnable signal and is far too slow at Freebase scale). Inputs are one-hot ids for every node type
(training's `--features one_hot`, the official feats-type 3, the DBLP/Freebase default), so the input layer
is a per-type embedding table (Freebase: 11.5 M parameters).

The peer (`pyg_gat`), built only when `torch_geometric` can be imported (it is not a requirement of this
repo; `pip install torch_geometric` to run it): the same `TypeProjection` input layer, then `num_layers`
`GATConv(heads=num_heads, concat=True)` + ELU and an output `GATConv(heads=1, concat=False)` (mean over
heads), all with `add_self_loops=False` (the graph already has typed self-loops), `bias=False`, the same
LeakyReLU slope, attention dropout and feature dropout, node residual (GATConv's `residual=True`, a bias-free
Linear like Simple-HGN's; torch_geometric 2.8.1 was measured) from the second layer on, and an L2-normalised
output -- the widths and heads of Simple-HGN layer for layer. With
`--peer_edge_types true` (default) each layer also gets `edge_dim=edge_dim` and `edge_attr = Embedding(T,
edge_dim)[edge type]`, which is Simple-HGN's edge-type attention term a_e . W_r emb[psi] with the same
parameter shapes when edge_dim == hidden_dim; the peer then lacks only Simple-HGN's residual attention (beta)
and computes W_r emb per edge (E x H*D) where Simple-HGN computes it per type. `--peer_edge_types false`
gives a plain GAT stack. Parameter counts of both models are printed and written.

Peak memory of a case includes the graph, parameters, gradients and Adam state that are resident during the
step. CUDA: `torch.cuda.max_memory_allocated` after `reset_peak_memory_stats`. CPU: growth of the process's
peak resident set size over its size before the graph was built (VmHWM, reset through /proc/self/clear_refs
once the graph and model exist; `ru_maxrss` where that is not permitted). Before that baseline the process
runs one step of the same model on the small graph, so lazily loaded libraries and kernels are not counted.
Every (device, graph, model) case runs in a fresh spawned process, so one model's allocations never count
against the other's; a case whose process dies (e.g. killed for memory) is recorded with an error instead of
stopping the benchmark.

Measured on a 2-core CPU shared with other jobs (`--threads 1`: with two OpenMP threads competing for busy
cores a step can take 20-30x longer, so pass `--threads 1` on a loaded machine), median training step:
dblp simple_hgn ~3.0 s / 0.75 GB, pyg_gat ~21 s / 4.3 GB (~9.5 s / 3.2 GB with `--peer_edge_types false`;
ratios ours / peer 0.14 and 0.17 in time and memory, 0.31 and 0.25 against the plain GAT),
about 3 minutes for the whole run; freebase simple_hgn ~36 s / 4.6 GB, while the peer would need an estimated
30+ GB (its E x H x D message tensors are ~4.7 GB each), which is why CPU defaults to dblp only.
"""
import dataclasses
import json
import statistics
import time
import types
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from common.benchmark import PeakMemory, run_isolated, step_times
from common.config import option, parse_config
from common.data.hgb import build_homogeneous_graph
from common.errors import ConfigError, exit_on_user_error
from common.runtime import autocast

from .model import Graph, SimpleHGN, TypeProjection

HERE = Path(__file__).resolve().parent
MODELS = ("simple_hgn", "pyg_gat")
PEER = "pyg_gat"


@dataclasses.dataclass(frozen=True)
class GraphSpec:
    """A generated heterogeneous graph: node-type sizes and relations (src type, dst type, #links).

    `mirrored`: every relation also appears reversed as its own link type (DBLP's link.dat lists both).
    """
    type_sizes: tuple
    relations: tuple
    num_classes: int
    mirrored: bool = False

    @property
    def num_links(self):
        return sum(c for _, _, c in self.relations) * (2 if self.mirrored else 1)

    @property
    def num_link_types(self):
        return len(self.relations) * (2 if self.mirrored else 1)


def _freebase_relations(num_types=8, num_relations=36, num_links=1_057_688):
    """36 relations on distinct (src, dst) type pairs (every type is a source and a destination), with equal
    link counts summing to HGB's total: relation r = 8k + s links type s to type (s + k + 1) mod 8."""
    counts = [num_links // num_relations + (r < num_links % num_relations) for r in range(num_relations)]
    return tuple((r % num_types, (r + r // num_types + 1) % num_types, c) for r, c in enumerate(counts))


GRAPHS = {
    # HGB DBLP: author 4,057, paper 14,328, term 7,723, venue 20; author-paper, paper-term, paper-venue (+ reverses).
    "dblp": GraphSpec((4057, 14328, 7723, 20), ((0, 1, 19645), (1, 2, 85810), (1, 3, 14328)), num_classes=4,
                      mirrored=True),
    # HGB Freebase: book, film, music, sports, people, location, organization, business.
    "freebase": GraphSpec((40402, 19427, 82351, 1025, 17641, 9368, 2731, 7153), _freebase_relations(),
                          num_classes=7),
    # for tests: a few hundred nodes
    "small": GraphSpec((120, 200, 80, 10), ((0, 1, 400), (1, 2, 600), (1, 3, 200)), num_classes=3, mirrored=True),
}


@dataclasses.dataclass
class BenchConfig:
    graphs: list[str] = option([], "graphs to generate: dblp, freebase, small (default: dblp on CPU, dblp and "
                                   "freebase on CUDA)")
    models: list[str] = option(list(MODELS), "models to measure: simple_hgn, pyg_gat (skipped with a message "
                                             "when torch_geometric is not installed)")
    device: str = option("auto", "auto (CPU, plus CUDA when present), cpu or cuda", choices=("auto", "cpu", "cuda"))
    repeats: int = option(5, "timed training steps per case (the median is reported)")
    warmup: int = option(2, "untimed training steps before timing")
    hidden_dim: int = option(64, "hidden size per head")
    num_heads: int = option(8, "attention heads of the hidden layers")
    num_layers: int = option(2, "hidden attention layers (an output layer is added)")
    edge_dim: int = option(64, "edge-type embedding size")
    dropout: float = option(0.5, "feature and attention dropout")
    negative_slope: float = option(0.05, "LeakyReLU slope of the attention scores")
    beta: float = option(0.05, "Simple-HGN residual attention weight")
    peer_edge_types: bool = option(True, "give GATConv the edge types (edge_dim + per-layer type embedding); "
                                         "false: plain GAT")
    amp: bool = option(False, "bf16 autocast (CUDA only; CPU cases run in float32)")
    threads: int = option(0, "CPU threads per case (torch.set_num_threads; 0: torch's default)")
    seed: int = option(0, "seed of the generated graph, labels and weights")
    out: str = option("bench_results/simple_hgn_bench.json", "JSON file to write")


# ----------------------------------------------------------------------------------------------------------
# graph


def generate_graph(spec, seed=0):
    """Random typed links with `spec`'s counts -> the training graph (symmetrised, self-loops, 2R+1 types).

    Returns (src, dst, etype) int64 tensors sorted by (dst, src), num_etypes, and the node-type offsets.
    """
    rng = np.random.default_rng(seed)
    offsets = np.concatenate([[0], np.cumsum(spec.type_sizes)])
    links = []
    for r, (s, d, count) in enumerate(spec.relations):
        src = offsets[s] + rng.integers(0, spec.type_sizes[s], count)
        dst = offsets[d] + rng.integers(0, spec.type_sizes[d], count)
        links.append(np.stack([src, dst, np.full(count, r)], 1))
        if spec.mirrored:  # the reverse relation is its own link type, numbered after the forward ones
            links.append(np.stack([dst, src, np.full(count, r + len(spec.relations))], 1))
    links = np.concatenate(links).astype(np.int64)
    # build_homogeneous_graph reads only these two fields of an HGBData when the links are passed explicitly.
    meta = types.SimpleNamespace(num_nodes=int(offsets[-1]), num_edge_types=spec.num_link_types)
    src, dst, etype, num_etypes = build_homogeneous_graph(meta, symmetric=True, links=links)
    return src, dst, etype, num_etypes, offsets


# ----------------------------------------------------------------------------------------------------------
# models


class PygGAT(nn.Module):
    """The peer: a torch-geometric GATConv stack shaped like Simple-HGN (see the module docstring)."""

    def __init__(self, in_dims, num_classes, num_etypes, *, hidden_dim=64, num_heads=8, num_layers=2, edge_dim=64,
                 dropout=0.5, negative_slope=0.05, edge_types=True):
        super().__init__()
        from torch_geometric.nn import GATConv  # optional dependency, only for this benchmark

        self.input = TypeProjection(in_dims, [True] * len(in_dims), hidden_dim)
        self.dropout, self.edge_types = dropout, edge_types
        heads = [num_heads] * num_layers + [1]
        dims = [hidden_dim] + [hidden_dim * num_heads] * num_layers
        outs = [hidden_dim] * num_layers + [num_classes]
        self.convs = nn.ModuleList(
            GATConv(dims[i], outs[i], heads[i], concat=i < num_layers, negative_slope=negative_slope,
                    dropout=dropout, add_self_loops=False, edge_dim=edge_dim if edge_types else None, bias=False,
                    residual=i > 0)
            for i in range(num_layers + 1))
        self.edge_embs = nn.ModuleList(nn.Embedding(num_etypes, edge_dim) for _ in self.convs) if edge_types else None

    def forward(self, features, edge_index, etype):
        h = self.input(features)
        for i, conv in enumerate(self.convs):
            x = F.dropout(h, self.dropout, self.training)
            edge_attr = self.edge_embs[i](etype) if self.edge_types else None  # (E, edge_dim)
            h = conv(x, edge_index, edge_attr)  # (N, H*D) hidden layers; (N, C) output (mean over heads)
            if i < len(self.convs) - 1:
                h = F.elu(h)
        return F.normalize(h, dim=1, eps=1e-12)


def peer_status():
    """(True, version) when torch_geometric's GATConv imports, else (False, message)."""
    try:
        import torch_geometric
        from torch_geometric.nn import GATConv  # noqa: F401
    except ImportError as e:
        return False, (f"skipped {PEER}: torch_geometric is not installed ({e}); it is optional and used only "
                       "by this benchmark: pip install torch_geometric")
    return True, torch_geometric.__version__


def build(name, cfg, in_dims, num_classes, num_etypes):
    common = dict(hidden_dim=cfg.hidden_dim, num_heads=cfg.num_heads, num_layers=cfg.num_layers,
                  edge_dim=cfg.edge_dim, negative_slope=cfg.negative_slope)
    if name == "simple_hgn":
        return SimpleHGN(in_dims, [True] * len(in_dims), num_classes, num_etypes, feat_drop=cfg.dropout,
                         attn_drop=cfg.dropout, residual=True, beta=cfg.beta, **common)
    return PygGAT(in_dims, num_classes, num_etypes, dropout=cfg.dropout, edge_types=cfg.peer_edge_types, **common)


# ----------------------------------------------------------------------------------------------------------
# measurement


def training_step(model_name, graph_name, device, cfg):
    """Generate the graph, build the model and its Adam optimiser on `device` -> (step function, case info)."""
    spec = GRAPHS[graph_name]
    torch.manual_seed(cfg.seed)
    src, dst, etype, num_etypes, offsets = generate_graph(spec, cfg.seed)
    n = int(offsets[-1])
    labels = torch.randint(0, spec.num_classes, (spec.type_sizes[0],), device=device)  # target type = type 0
    model = build(model_name, cfg, list(spec.type_sizes), spec.num_classes, num_etypes).to(device)
    features = [None] * len(spec.type_sizes)  # one-hot ids: TypeProjection uses its weight as the table
    if model_name == "simple_hgn":
        graph = Graph.from_edges(src, dst, etype, n).to(device)
        forward = lambda: model(features, graph)  # noqa: E731
    else:
        edge_index, etype = torch.stack([src, dst]).to(device), etype.to(device)  # row 0 = source (PyG)
        forward = lambda: model(features, edge_index, etype)  # noqa: E731
    opt = torch.optim.Adam(model.parameters(), lr=5e-4, weight_decay=1e-4)
    model.train()
    amp = cfg.amp and device.type == "cuda"

    def step():
        opt.zero_grad(set_to_none=True)
        with autocast(device, amp):
            logits = forward()
        loss = F.nll_loss(F.log_softmax(logits.float()[: len(labels)], 1), labels)
        loss.backward()
        opt.step()

    info = {"params": sum(p.numel() for p in model.parameters()), "num_nodes": n, "num_edges": int(src.numel()),
            "num_etypes": num_etypes, "amp": amp}
    return step, info


def measure(model_name, graph_name, device, cfg):
    """Time `cfg.repeats` training steps of one model on one generated graph, in this process -> a dict.

    Use `measure_isolated` for memory numbers that must not include anything else this process holds.
    """
    device = torch.device(device)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    # One step on the small graph first, so that lazily loaded libraries, kernels and handles (code pages,
    # MKL / cuBLAS workspaces) are in the memory baseline rather than counted as the model's.
    step, _ = training_step(model_name, "small", device, cfg)
    step()
    del step
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()
    peak = PeakMemory(device)
    peak.baseline()
    step, info = training_step(model_name, graph_name, device, cfg)
    peak.start()
    times = [1e3 * t for t in step_times(step, cfg.repeats, cfg.warmup, device)]
    peak_mb, memory = peak.peak_mb()
    return {"model": model_name, "graph": graph_name, "device": device.type,
            "median_ms": statistics.median(times), "min_ms": min(times), "step_ms": times,
            "peak_mb": peak_mb, "memory": memory, "threads": torch.get_num_threads(), **info}


def measure_isolated(model_name, graph_name, device, cfg):
    """`measure` in a fresh spawned process; a process that dies gives {"error": ...} instead of a result."""
    return run_isolated(measure, model_name, graph_name, device, cfg,
                        on_error={"model": model_name, "graph": graph_name, "device": device})


def devices_and_graphs(cfg):
    """[(device, [graphs])]: --device auto is CPU plus CUDA when present; default graphs depend on the device."""
    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda was asked for but CUDA is not available; use --device cpu or auto")
    devices = ["cpu", "cuda"] if cfg.device == "auto" else [cfg.device]
    devices = [d for d in devices if d == "cpu" or torch.cuda.is_available()]
    default = {"cpu": ["dblp"], "cuda": ["dblp", "freebase"]}
    return [(d, list(cfg.graphs) or default[d]) for d in devices]


def run(cfg):
    """Measure every (device, graph, model) case, add the ours / peer ratios, write cfg.out -> the results."""
    unknown = sorted(set(cfg.graphs) - set(GRAPHS)) + sorted(set(cfg.models) - set(MODELS))
    if unknown:
        raise ConfigError(f"unknown graph or model name(s) {unknown}; graphs: {', '.join(GRAPHS)}; "
                          f"models: {', '.join(MODELS)}")
    plan = devices_and_graphs(cfg)
    models, skipped = list(cfg.models), {}
    peer_version = None
    if PEER in models:
        ok, info = peer_status()
        if ok:
            peer_version = info
        else:
            models.remove(PEER)
            skipped[PEER] = info
            print(info)
    cases, comparisons = [], []
    for device, graphs in plan:
        for graph_name in graphs:
            row = {m: measure_isolated(m, graph_name, device, cfg) for m in models}
            cases += row.values()
            ours, peer = row.get("simple_hgn"), row.get(PEER)
            if ours and peer and "error" not in ours and "error" not in peer:
                comparisons.append({
                    "device": device, "graph": graph_name,
                    "ours_median_ms": ours["median_ms"], "peer_median_ms": peer["median_ms"],
                    "ours_peak_mb": ours["peak_mb"], "peer_peak_mb": peer["peak_mb"],
                    "time_ratio": ours["median_ms"] / peer["median_ms"],
                    "memory_ratio": ours["peak_mb"] / peer["peak_mb"],
                    "ours_params": ours["params"], "peer_params": peer["params"],
                })
    results = {
        "config": dataclasses.asdict(cfg), "skipped": skipped, "cases": cases, "comparisons": comparisons,
        "env": {"torch": torch.__version__, "torch_geometric": peer_version,
                "cuda_device": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
                "date": time.strftime("%Y-%m-%d")},
    }
    out = Path(cfg.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(format_table(results))
    print(f"wrote {out}")
    return results


def format_table(results):
    lines = [f"{'device':6} {'graph':9} {'model':11} {'nodes':>8} {'edges':>9} {'params':>10} "
             f"{'median ms':>10} {'peak MB':>9}"]
    for c in results["cases"]:
        if "error" in c:
            lines.append(f"{c['device']:6} {c['graph']:9} {c['model']:11} error: {c['error']}")
            continue
        lines.append(f"{c['device']:6} {c['graph']:9} {c['model']:11} {c['num_nodes']:8d} {c['num_edges']:9d} "
                     f"{c['params']:10d} {c['median_ms']:10.1f} {c['peak_mb']:9.1f}")
    for r in results["comparisons"]:
        lines.append(f"{r['device']} {r['graph']}: simple_hgn / {PEER} time x{r['time_ratio']:.2f}, "
                     f"peak memory x{r['memory_ratio']:.2f}")
    lines += list(results["skipped"].values())
    return "\n".join(lines)


@exit_on_user_error
def main(argv=None):
    cfg = parse_config(BenchConfig, argv, config_dir=HERE, description=__doc__)
    run(cfg)


if __name__ == "__main__":
    main()

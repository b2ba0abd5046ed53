"""Label-propagation speed and memory (chunked vs DINO-style dense) and INO training-step throughput.

    bash bench.sh                                  # CPU: small frames (240x432), a tiny ViT for the train step
    bash bench.sh --device cuda --out bench.json   # CUDA: 854x480 (-> 480x848, 60x106 tokens), ViT-S/8

What is timed. Propagation: one target frame against the first frame + `n_context` previous frames (11
context frames by default, INO's DAVIS setting), window radius 40, top-5, temperature 0.1, C = 7 label
channels (INO's slot count), D = 384 features; the inputs are random L2-normalised features (the backbone
is the same for both and is timed separately). `chunked` is `propagate_chunked` (queries in chunks of
`chunk_size`, windows built per chunk); `dense` is `propagate_dense` (the full (M N x N) affinity and a
dense (N x N) window mask at once, as DINO's `eval_video_segmentation.py`). Both run on the same inputs in
one process; their outputs are compared (max abs difference). Median over `repeats` after `warmup`.
Peak memory: `torch.cuda.max_memory_allocated` above the inputs (CUDA only; on CPU it is not measured and
the dense affinity's size is reported from its shape instead).
Training: one full INO step (teacher + student forward on clips of 4 frames, 1 global + L local crops per
frame, masked, the three losses, backward, AdamW, EMA) -> clips/s.
"""
import dataclasses
import json
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from common.config import RunConfig, option, parse_config
from common.errors import exit_on_user_error
from common.runtime import select_device

from .losses import INOLoss
from .model import ARCHS, build_ino, ema_update
from .propagation import propagate_chunked, propagate_dense

HERE = Path(__file__).resolve().parent


@dataclasses.dataclass
class BenchConfig(RunConfig):
    out: str = option("bench.json", "where to write the JSON results")
    height: int = option(0, "frame height (0: 480 on CUDA, 240 on CPU)")
    width: int = option(0, "frame width (0: 854 on CUDA, 432 on CPU)")
    patch_size: int = option(8, "patch size (token grid = floor(size / patch))")
    feat_dim: int = option(384, "feature width (ViT-S)")
    num_classes: int = option(7, "label channels")
    n_context: int = option(10, "previous frames besides the first")
    radius: int = option(40, "window radius in tokens")
    topk: int = option(5, "top-k")
    chunk_size: int = option(1000, "query tokens per chunk")
    repeats: int = option(5, "timed repetitions")
    warmup: int = option(1, "untimed repetitions")
    dense: bool = option(True, "also time the dense reference")
    train_arch: str = option("", "ViT of the training step (default vit_small on CUDA, vit_micro on CPU)",
                             choices=("",) + tuple(ARCHS))
    train_batch: int = option(0, "clips per step (default 4 on CUDA, 2 on CPU)")
    train_global: int = option(0, "global crop size (default 224 on CUDA, 64 on CPU)")
    train_local: int = option(0, "local crop size (default 64 on CUDA, 32 on CPU)")
    train_num_local: int = option(0, "local crops per frame (default 8 on CUDA, 2 on CPU)")
    threads: int = option(0, "torch CPU threads (0: leave as is)")


def _timed(fn, device, repeats, warmup):
    """(median seconds, peak bytes above the memory in use before, output) of fn()."""
    for _ in range(warmup):
        out = fn()
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        if cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    peak = torch.cuda.max_memory_allocated() - base if cuda else None
    return statistics.median(times), peak, out


def bench_propagation(cfg, device):
    h, w = cfg.height // cfg.patch_size, cfg.width // cfg.patch_size  # floored to the patch grid
    m, n = 1 + cfg.n_context, h * w
    g = torch.Generator(device="cpu").manual_seed(0)
    query = F.normalize(torch.randn(n, cfg.feat_dim, generator=g), dim=-1).to(device)
    keys = F.normalize(torch.randn(m, n, cfg.feat_dim, generator=g), dim=-1).to(device)
    labels = torch.softmax(torch.randn(m, cfg.num_classes, n, generator=g), dim=1).to(device)
    kw = dict(topk=cfg.topk, temperature=0.1, radius=cfg.radius)
    result = {"tokens": [h, w], "context_frames": m}
    t, peak, out_c = _timed(lambda: propagate_chunked(query, keys, labels, h, w, chunk_size=cfg.chunk_size, **kw),
                            device, cfg.repeats, cfg.warmup)
    result["chunked"] = {"seconds_per_frame": t, "frames_per_second": 1 / t, "peak_memory_bytes": peak}
    if cfg.dense:
        t, peak, out_d = _timed(lambda: propagate_dense(query, keys, labels, h, w, **kw), device, cfg.repeats,
                                cfg.warmup)
        result["dense"] = {"seconds_per_frame": t, "frames_per_second": 1 / t, "peak_memory_bytes": peak,
                           "affinity_bytes_from_shape": 4 * m * n * n}
        result["max_abs_difference"] = float((out_c - out_d).abs().max())
        result["speedup"] = result["dense"]["seconds_per_frame"] / result["chunked"]["seconds_per_frame"]
    return result


def bench_training(cfg, device):
    arch = cfg.train_arch or ("vit_small" if device.type == "cuda" else "vit_micro")
    cuda = device.type == "cuda"
    b, t = cfg.train_batch or (4 if cuda else 2), 4
    gs, ls, nl = cfg.train_global or (224 if cuda else 64), cfg.train_local or (64 if cuda else 32), \
        cfg.train_num_local or (8 if cuda else 2)
    out_dim = 4096 if cuda else 256
    torch.manual_seed(0)
    student, teacher = build_ino(arch, cfg.patch_size, out_dim=out_dim, hidden_dim=2048 if cuda else 256,
                                 bottleneck_dim=256 if cuda else 64)
    student, teacher = student.to(device), teacher.to(device)
    crit = INOLoss(out_dim).to(device)
    opt = torch.optim.AdamW(student.parameters(), lr=1e-4)
    glob = torch.randn(b * t, 3, gs, gs, device=device)
    loc = torch.randn(b * t * nl, 3, ls, ls, device=device)
    n = (gs // cfg.patch_size) ** 2
    mask = torch.zeros(n, dtype=torch.bool, device=device)
    mask[: int(0.3 * n)] = True  # a masked step: all three losses

    def step():
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.amp and cuda):
            with torch.no_grad():
                tc, tp, _ = teacher(glob)
            sc, sp, sl = student(glob, mask.expand(b * t, -1), loc)
            k = tc.shape[-1]
            loss, _ = crit(tc.view(b, t, k), tp.view(b, t, -1, k), sc.view(b, t, k), sp.view(b, t, -1, k),
                           sl.view(b, t, -1, k), mask, 0.04)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        ema_update(teacher, student, 0.996)

    sec, peak, _ = _timed(step, device, max(2, cfg.repeats // 2), cfg.warmup)
    return {"arch": arch, "clips": b, "frames_per_clip": t, "global": gs, "local": ls, "num_local": nl,
            "seconds_per_step": sec, "clips_per_second": b / sec, "peak_memory_bytes": peak}


@exit_on_user_error
def main(argv=None):
    cfg = parse_config(BenchConfig, argv, config_dir=HERE, description=__doc__)
    device = select_device(cfg.device)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    cuda = device.type == "cuda"
    cfg.height, cfg.width = cfg.height or (480 if cuda else 240), cfg.width or (854 if cuda else 432)
    name = torch.cuda.get_device_name(device) if cuda else f"cpu ({torch.get_num_threads()} threads)"
    results = {"device": name, "torch": torch.__version__, "frame": [cfg.height, cfg.width],
               "settings": {k: getattr(cfg, k) for k in ("n_context", "radius", "topk", "chunk_size", "feat_dim")},
               "propagation": bench_propagation(cfg, device), "training": bench_training(cfg, device)}
    print(json.dumps(results, indent=2))
    Path(cfg.out).parent.mkdir(parents=True, exist_ok=True)
    Path(cfg.out).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()

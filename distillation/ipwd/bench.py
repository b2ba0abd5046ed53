"""Training-step throughput and peak memory: one KD step and one IPWD step, our fast path vs the CRD-style step.

    bash bench.sh [--device cuda] [--batch_sizes 64,256] [--iters 50] [--out bench.json]

Pair: resnet32x4 -> resnet8x4 on 32x32 inputs, 100 classes (the CIFAR-100 setting). For each batch size and
each of {kd, ipwd} it times two implementations of the same update:

  crd_fp32_eager  the step as RepDistiller's `train_distill` writes it: fp32, eager, the batch copied to the
                  device synchronously, `loss.item()` and top-1/top-5 accuracy read back every step.
  fast            bf16 autocast, channels_last, `torch.compile` of teacher and student (CUDA only), batches
                  copied from pinned memory with non_blocking copies one step ahead, no host sync in the loop.

Batches are random tensors (the step, not the data decoding, is measured); both paths see the same inputs.
Reports images/s over `iters` steps after `warmup` steps, and the peak CUDA memory of the timed steps (CPU:
not measured, reported as null). On CPU, autocast, compile and channels_last are skipped (common.runtime
makes the first two no-ops), so the two paths differ only by the host syncs.
"""
import dataclasses
import json
import platform
import time
from pathlib import Path

import torch

from common.config import RunConfig, option, parse_config
from common.errors import exit_on_user_error
from common.metrics.accuracy import topk_correct
from common.runtime import autocast, maybe_compile, seed_everything, select_device

from .losses import ipwd_loss, kd_objective
from .models import MODELS, TwoHeadStudent, build_model

HERE = Path(__file__).resolve().parent


@dataclasses.dataclass
class BenchConfig(RunConfig):
    teacher: str = option("resnet32x4", "teacher", choices=tuple(MODELS))
    student: str = option("resnet8x4", "student", choices=tuple(MODELS))
    num_classes: int = option(100, "classes")
    image_size: int = option(32, "input height and width")
    batch_sizes: list[int] = option([64, 256], "batch sizes to time")
    methods: list[str] = option(["kd", "ipwd"], "steps to time (kd, ipwd)")
    warmup: int = option(10, "untimed steps first (compilation happens here)")
    iters: int = option(50, "timed steps")
    out: str = option("bench.json", "where to write the JSON results")
    cpu_threads: int = option(0, "torch intra-op threads on CPU (0: torch's default)")


def make_models(cfg, method, device, fast):
    teacher = build_model(cfg.teacher, cfg.num_classes).to(device).eval().requires_grad_(False)
    student = build_model(cfg.student, cfg.num_classes)
    if method == "ipwd":
        student = TwoHeadStudent(student, cfg.num_classes)
    student = student.to(device).train()
    if fast and device.type == "cuda":
        teacher.to(memory_format=torch.channels_last)
        student.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(student.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    return teacher, student, opt


def crd_step(teacher, student, opt, method, x_host, y_host, device):
    """RepDistiller `helper/loops.py::train_distill`, KD branch (-r 0.1 -a 0.9), fp32 eager, syncs every step."""
    x, y = x_host.to(device), y_host.to(device)
    out = student(x)
    with torch.no_grad():
        logit_t = teacher(x)
    if method == "kd":
        logit_s = out
        loss, _ = kd_objective(logit_s, logit_t, y, 4.0, 0.1, 0.9)
    else:
        logit_s, aux = out
        loss, _ = ipwd_loss(logit_s, aux, logit_t, y, 4.0, 0.1, 0.9, 1.0)
    top1, top5 = topk_correct(logit_s, y, (1, 5))  # AverageMeter updates: host syncs
    _ = (loss.item(), top1, top5)
    opt.zero_grad()
    loss.backward()
    opt.step()


def fast_step(teacher, student, opt, method, x, y, device):
    """Same update: bf16 autocast, channels_last input, compiled modules, no host sync."""
    with autocast(device, True):
        with torch.no_grad():
            logit_t = teacher(x)
        out = student(x)
    if method == "kd":
        loss, _ = kd_objective(out.float(), logit_t.float(), y, 4.0, 0.1, 0.9)
    else:
        loss, _ = ipwd_loss(out[0].float(), out[1].float(), logit_t.float(), y, 4.0, 0.1, 0.9, 1.0)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def synchronize(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_path(cfg, method, batch, device, fast):
    """images/s and peak memory (MiB, CUDA only) of `iters` steps of one path."""
    seed_everything(0)
    teacher, student, opt = make_models(cfg, method, device, fast)
    pin = device.type == "cuda"
    batches = [(torch.randn(batch, 3, cfg.image_size, cfg.image_size).pin_memory() if pin else
                torch.randn(batch, 3, cfg.image_size, cfg.image_size),
                torch.randint(0, cfg.num_classes, (batch,))) for _ in range(2)]
    if fast:
        teacher, student_fwd = maybe_compile(teacher, True, device), maybe_compile(student, True, device)
        fmt = torch.channels_last if device.type == "cuda" else torch.contiguous_format

        def stage(i):  # the next batch's copy overlaps this step's compute (pinned, non_blocking)
            x, y = batches[i % 2]
            return (x.to(device, non_blocking=True).contiguous(memory_format=fmt), y.to(device, non_blocking=True))

        def run(n):
            nxt = stage(0)
            for i in range(n):
                x, y = nxt
                nxt = stage(i + 1)
                fast_step(teacher, student_fwd, opt, method, x, y, device)
    else:
        def run(n):
            for i in range(n):
                crd_step(teacher, student, opt, method, *batches[i % 2], device)
    run(cfg.warmup)
    synchronize(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    run(cfg.iters)
    synchronize(device)
    seconds = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    return {"images_per_s": batch * cfg.iters / seconds, "peak_mem_mib": peak, "seconds": seconds}


def hardware(device):
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"


@exit_on_user_error
def main(argv=None):
    cfg = parse_config(BenchConfig, argv, config_dir=HERE, description=__doc__)
    device = select_device(cfg.device)
    if device.type == "cpu" and cfg.cpu_threads > 0:
        torch.set_num_threads(cfg.cpu_threads)
    rows = []
    for batch in cfg.batch_sizes:
        for method in cfg.methods:
            for path in ("crd_fp32_eager", "fast"):
                r = time_path(cfg, method, batch, device, fast=path == "fast")
                rows.append({"method": method, "batch_size": batch, "path": path, **r})
                peak = "-" if r["peak_mem_mib"] is None else f"{r['peak_mem_mib']:.0f} MiB"
                print(f"{method:5s} batch {batch:4d} {path:15s} {r['images_per_s']:9.1f} img/s  peak {peak}",
                      flush=True)
    result = {"teacher": cfg.teacher, "student": cfg.student, "device": hardware(device), "torch": torch.__version__,
              "compile": device.type == "cuda", "amp_bf16": device.type == "cuda", "warmup": cfg.warmup,
              "iters": cfg.iters, "date": time.strftime("%Y-%m-%d"), "results": rows}
    Path(cfg.out).parent.mkdir(parents=True, exist_ok=True)
    Path(cfg.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {cfg.out}")
    return result


if __name__ == "__main__":
    main()

"""One ICKD training step against one KD step on the same pair and batch: images/s and peak memory, one run.

    bash bench.sh [--device cuda] [--batch_size 64] [--iters 20] [--out bench.json]

Pair: resnet32x4 -> resnet8x4 on 32x32 inputs, 100 classes (the CIFAR-100 setting of the official README).
`kd` is RepDistiller's KD step (frozen teacher forward, student forward, CE + tau^2 KL, backward, SGD step);
`ickd` is the same step that also embeds the student's last-stage map and adds the ICC loss (ICKD-C + KL, the
official `-a 1 -b 2.5`). Each case runs in a fresh process (common.benchmark.run_isolated) so its memory number
holds nothing else; random tensors stand in for the data. Prints a table and writes JSON with the ratio.
"""
import dataclasses
import json
import platform
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from common.benchmark import PeakMemory, run_isolated, sync
from common.config import RunConfig, option, parse_config
from common.errors import exit_on_user_error
from common.models import MODELS, build_model
from common.runtime import seed_everything, select_device

from .losses import ickd_objective, kd_loss
from .model import ICKDStudent, teacher_forward

HERE = Path(__file__).resolve().parent
STEPS = ("kd", "ickd")


@dataclasses.dataclass
class BenchConfig(RunConfig):
    teacher: str = option("resnet32x4", "teacher", choices=tuple(MODELS))
    student: str = option("resnet8x4", "student", choices=tuple(MODELS))
    num_classes: int = option(100, "classes")
    batch_size: int = option(64, "batch size (RepDistiller's 64)")
    warmup: int = option(3, "untimed steps first")
    iters: int = option(20, "timed steps")
    out: str = option("bench.json", "JSON output")


def measure(cfg_dict, step_name, device_name):
    """Images/s and peak memory (MiB) of `iters` steps of `step_name` ('kd' or 'ickd')."""
    cfg = BenchConfig(**cfg_dict)
    device = torch.device(device_name)
    if cfg.cpu_threads:
        torch.set_num_threads(cfg.cpu_threads)
    memory = PeakMemory(device)
    memory.baseline()
    seed_everything(cfg.seed)
    teacher = build_model(cfg.teacher, cfg.num_classes).to(device).eval().requires_grad_(False)
    model = ICKDStudent(build_model(cfg.student, cfg.num_classes), teacher.num_features).to(device).train()
    params = model.parameters() if step_name == "ickd" else model.student.parameters()
    opt = torch.optim.SGD(params, lr=0.05, momentum=0.9, weight_decay=5e-4)
    x = torch.randn(cfg.batch_size, 3, 32, 32, device=device)
    y = torch.randint(0, cfg.num_classes, (cfg.batch_size,), device=device)

    def step():
        if step_name == "kd":
            with torch.no_grad():
                t_logits = teacher(x)
            logits = model.student(x)
            loss = F.cross_entropy(logits, y) + kd_loss(logits, t_logits, 4.0)
        else:
            with torch.no_grad():
                t_logits, t_map = teacher_forward(teacher, x)
            logits, s_map = model(x)
            loss, _ = ickd_objective(logits, t_logits, s_map, t_map, y, ce_weight=1.0, kd_weight=1.0, icc_weight=2.5)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(cfg.warmup):
        step()
    sync(device)
    memory.start()
    t0 = time.perf_counter()
    for _ in range(cfg.iters):
        step()
    sync(device)
    seconds = time.perf_counter() - t0
    peak, how = memory.peak_mb()
    return {"step": step_name, "images_per_s": cfg.batch_size * cfg.iters / seconds, "peak_mb": peak,
            "memory_measured_by": how}


@exit_on_user_error
def main(argv=None):
    cfg = parse_config(BenchConfig, argv, config_dir=HERE, description=__doc__)
    device = select_device(cfg.device)
    cfg_dict = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(BenchConfig)}
    rows = [run_isolated(measure, cfg_dict, name, str(device), on_error={"step": name}) for name in STEPS]
    by_step = {r["step"]: r for r in rows}
    ok = all("images_per_s" in r for r in rows)
    ratio = by_step["kd"]["images_per_s"] / by_step["ickd"]["images_per_s"] if ok else None
    hw = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{platform.processor() or 'cpu'}, " \
        f"{cfg.cpu_threads or torch.get_num_threads()} threads"
    result = {"pair": f"{cfg.teacher}->{cfg.student}", "batch_size": cfg.batch_size, "iters": cfg.iters,
              "device": str(device), "hardware": hw, "torch": torch.__version__, "steps": rows,
              "ickd_step_cost_vs_kd": ratio}
    print(f"{'step':6} {'images/s':>10} {'peak MiB':>10}")
    for r in rows:
        print(f"{r['step']:6} {r.get('images_per_s', float('nan')):10.1f} {r.get('peak_mb', float('nan')):10.1f}"
              + (f"  error: {r['error']}" if "error" in r else ""))
    if ratio is not None:
        print(f"ICKD step / KD step time: {ratio:.3f}x")
    Path(cfg.out).write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()

"""Training-step speed and peak memory of SDAFN: reference vs deform_conv warp, fp32 vs bf16, in one run.

    bash bench.sh [--device cuda] [--preset paper] [--out bench.json]

preset paper: SDAFN as released with the full loss (random-weight VGG19 + LPIPS: same compute as pretrained),
at 256x192 batch 8 and 1024x768 batch 1. preset smoke: SDAFN.tiny, L1 only, 64x48 batch 2 (runs on a CPU in
seconds; its numbers say nothing about a GPU). Peak memory is torch.cuda.max_memory_allocated (CUDA only).
Goals from the issue (CUDA): at 1024x768 deform_conv <= 0.4x the reference's peak memory; at 256x192 a bf16
step >= 1.5x faster than the fp32 reference step.

Inference (`--cases inference` or `train,inference`; key "inference"): batch-1 forward under
`torch.inference_mode` (warm-up, then `--steps` timed forwards) per warp backend and dtype, each in a fresh
process (`common.benchmark.run_isolated`), at the preset's largest size (`--inference_size HxW` to change it),
on random inputs in [-1, 1] or on the tensors of `--inputs file.pt` (dict cloth, agnostic, pose, each
(1, 3, H, W): another method's bench passes its own inputs so that both are timed on the same ones). Peak
memory: `common.benchmark.PeakMemory` (CUDA allocator peak; on CPU the growth of the process's peak RSS).
"""
import argparse
import json
import time

import torch

from common.benchmark import PeakMemory, run_isolated, sync
from common.runtime import autocast, select_device

from .losses import DAFlowLoss, VGG19Features
from .model import SDAFNet

PRESETS = {"paper": [(256, 192, 8), (1024, 768, 1)], "smoke": [(64, 48, 2)]}


def bench_one(preset, size, backend, amp, device, steps, warmup):
    h, w, b = size
    torch.manual_seed(0)
    model = (SDAFNet.paper if preset == "paper" else SDAFNet.tiny)(warp_backend=backend).to(device)
    if preset == "paper":
        from common.metrics.tryon import LPIPS
        loss_fn = DAFlowLoss(VGG19Features(pretrained=False), LPIPS(pretrained=False)).to(device)
    else:
        loss_fn = DAFlowLoss()
    opt = torch.optim.AdamW(model.parameters(), lr=5e-5, weight_decay=0.01)
    x = [torch.rand(b, 3, h, w, device=device) * 2 - 1 for _ in range(4)]

    def step():
        with autocast(device, amp):
            outs = model(x[0], x[1], x[2])
            loss, _ = loss_fn([o.float() for o in outs], x[3])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    try:
        for _ in range(warmup):
            step()
        sync()
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        sync()
        dt = (time.perf_counter() - t0) / steps
    except torch.OutOfMemoryError:
        return {"oom": True}
    peak = torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else None
    return {"ms_per_step": 1000 * dt, "images_per_s": b / dt, "peak_mib": peak}


def inference_one(preset, size, backend, amp, device_name, steps, warmup, inputs=""):
    """Batch-1 try-on forward (the finest output only, as daflow.infer) in this (fresh) process -> dict."""
    device = torch.device(device_name)
    memory = PeakMemory(device)
    memory.baseline()
    torch.manual_seed(0)
    model = (SDAFNet.paper if preset == "paper" else SDAFNet.tiny)(warp_backend=backend).to(device).eval()
    if inputs:
        x = [torch.load(inputs)[k].to(device) for k in ("cloth", "agnostic", "pose")]
    else:
        g = torch.Generator().manual_seed(0)
        x = [(torch.rand(1, 3, *size, generator=g) * 2 - 1).to(device) for _ in range(3)]

    def forward():
        with torch.inference_mode(), autocast(device, amp):
            return model(*x, return_all=False)[-1]

    for _ in range(warmup):
        forward()
    sync(device)
    memory.start()
    t0 = time.perf_counter()
    for _ in range(steps):
        out = forward()
    sync(device)
    dt = (time.perf_counter() - t0) / steps
    peak, how = memory.peak_mb()
    h, w = x[0].shape[2:]
    return {"case": "inference", "ms": 1000 * dt, "images_per_s": 1 / dt, "peak_mib": peak, "memory": how,
            "height": h, "width": w, "batch": 1, "backend": backend, "dtype": "bf16" if amp else "fp32",
            "inputs": inputs or "random", "output_shape": list(out.shape),
            "params_m": sum(p.numel() for p in model.parameters()) / 1e6}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="auto")
    p.add_argument("--preset", default=None, choices=tuple(PRESETS), help="default: paper on CUDA, smoke on CPU")
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--out", default="bench.json")
    p.add_argument("--cases", default="train", help="comma-separated: train (steps), inference (batch-1 forward)")
    p.add_argument("--inference_size", default="", help="HxW of the inference case (default: the preset's largest)")
    p.add_argument("--inputs", default="", help="a .pt dict {cloth, agnostic, pose} (1, 3, H, W) for inference")
    args = p.parse_args(argv)
    device = select_device(args.device)
    preset = args.preset or ("paper" if device.type == "cuda" else "smoke")
    cases = set(args.cases.split(","))
    if cases - {"train", "inference"}:
        p.error(f"--cases: unknown {sorted(cases - {'train', 'inference'})}; known: train, inference")
    hw = args.inference_size.lower().split("x")
    if args.inference_size and (len(hw) != 2 or not all(v.isdigit() for v in hw)):
        p.error(f"--inference_size: HxW in pixels (e.g. 1024x768), got {args.inference_size!r}")
    rows = []
    for size in PRESETS[preset] if "train" in cases else ():
        for backend in ("reference", "deform_conv"):
            for amp in (False, True):
                if amp and device.type != "cuda":
                    continue  # bf16 autocast is a no-op on CPU (common.runtime.autocast)
                r = bench_one(preset, size, backend, amp, device, args.steps, args.warmup)
                r.update(height=size[0], width=size[1], batch=size[2], backend=backend,
                         dtype="bf16" if amp else "fp32")
                rows.append(r)
                print(json.dumps(r), flush=True)
                if device.type == "cuda":
                    torch.cuda.empty_cache()
    summary = {}
    find = lambda hh, be, dt: next((r for r in rows if r["height"] == hh and r["backend"] == be  # noqa: E731
                                    and r["dtype"] == dt and not r.get("oom")), None)
    if preset == "paper" and device.type == "cuda":
        ref, fast = find(1024, "reference", "fp32"), find(1024, "deform_conv", "fp32")
        if ref and fast:
            summary["mem_ratio_1024_fast_over_ref"] = fast["peak_mib"] / ref["peak_mib"]
        ref, bf = find(256, "reference", "fp32"), [find(256, be, "bf16") for be in ("reference", "deform_conv")]
        if ref:
            summary.update({f"speedup_256_bf16_{be}_over_fp32_reference": ref["ms_per_step"] / r["ms_per_step"]
                            for be, r in zip(("reference", "deform_conv"), bf, strict=True) if r})
    inference = []
    if "inference" in cases:
        size = tuple(int(v) for v in hw) if args.inference_size else max(PRESETS[preset])[:2]
        for backend in ("reference", "deform_conv"):
            for amp in (False, True) if device.type == "cuda" else (False,):
                r = run_isolated(inference_one, preset, size, backend, amp, str(device), args.steps, args.warmup,
                                 args.inputs, on_error={"case": "inference", "backend": backend,
                                                        "dtype": "bf16" if amp else "fp32"})
                inference.append(r)
                print(json.dumps(r), flush=True)
    result = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu", "preset": preset,
              "torch": torch.__version__, "steps": args.steps, "rows": rows, "summary": summary,
              "inference": inference, "warmup": args.warmup}
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)
    print(json.dumps(summary))
    return result


if __name__ == "__main__":
    main()

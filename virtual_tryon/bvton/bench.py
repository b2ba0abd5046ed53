"""BVTON speed and memory: end-to-end inference, each stage's training step, and DAFlow's bench beside it.

    bash bench.sh [--device cuda] [--preset paper] [--out bench.json]

preset paper: the paper-size networks at 1024x768; inference batch 1; training steps at the stage configs' batch
sizes (flow 8, mask 8, synth 4) on CUDA and batch 1 on CPU, with the configs' loss terms (random-weight VGG19 and the
discriminator: the same compute as pretrained ones). preset smoke: the tiny networks at 64x48 (seconds on a CPU; says
nothing about a GPU). Every case runs in a fresh process (`common.benchmark.run_isolated`); peak memory is
`torch.cuda.max_memory_allocated` on CUDA and the growth of the process's peak RSS on CPU.

DAFlow: a method never imports another, so DAFlow's network cannot be built in this process. Instead its own
`../daflow/bench.sh` runs in a subprocess of the same run (`--daflow_preset`, default the same preset: SDAFN as
released at 1024x768 for paper, SDAFN.tiny at 64x48 for smoke) with `--cases inference` and `--inputs`: a file
holding this bench's own inference inputs (the garment and the agnostic person of `random_batch(1, H, W)`, and
its 18 pose heatmaps collapsed to one grey map as a 3-channel pose image, since SDAFN takes a rendered skeleton),
so that DAFlow's batch-1 try-on forward is timed on the same inputs, with the same steps and warm-up. Its JSON and
wall time are stored under "daflow". `--daflow_cases train,inference` also runs DAFlow's training steps (the peer
of the stage rows then; slow on a CPU at the paper preset).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from common.benchmark import PeakMemory, run_isolated, sync
from common.config import config_from_dict, load_yaml
from common.runtime import autocast, select_device

HERE = Path(__file__).resolve().parent
PRESETS = {"paper": dict(size=(1024, 768), config="viton_hd_1024_{stage}.yaml", batch_cuda={"flow": 8, "mask": 8,
                                                                                            "synth": 4}),
           "smoke": dict(size=(64, 48), config="smoke.yaml", batch_cuda={"flow": 2, "mask": 2, "synth": 2})}


def stage_config(preset, stage):
    from .train import TrainConfig
    cfg = config_from_dict(TrainConfig, load_yaml(HERE / "configs" / PRESETS[preset]["config"].format(stage=stage)))
    cfg.pretrained_losses = False  # random VGG weights: same compute, nothing to download
    return cfg


def random_batch(b, h, w, device, seed=0):
    """Inputs of the shapes `PseudoPairDataset` yields (values random)."""
    from .model import NUM_LAYERS
    g = torch.Generator().manual_seed(seed)
    img = lambda: torch.rand(b, 3, h, w, generator=g) * 2 - 1  # noqa: E731
    mask = lambda c: (torch.rand(b, c, h, w, generator=g) > 0.5).float()  # noqa: E731
    batch = dict(person=img(), agnostic=img(), c_on=img(), cloth=img(), misaligned=img(), parts=mask(3),
                 cloth_mask=mask(1), misaligned_mask=mask(1), hole=mask(1), parse_agnostic=mask(NUM_LAYERS),
                 pose=torch.rand(b, 18, h, w, generator=g), layers=torch.randint(0, NUM_LAYERS, (b, h, w), generator=g),
                 use_proxy=(torch.rand(b, generator=g) > 0.5).float(),
                 use_predicted_layout=(torch.rand(b, generator=g) > 0.5).float(), paired=torch.ones(b))
    return {k: v.to(device) for k, v in batch.items()}


def bench_case(kind, preset, device_name, batch, amp, steps, warmup):
    """One case in this (fresh) process: kind = "inference" or a stage name -> dict(ms, peak_mib, ...)."""
    from .losses import VGGPerceptual, lsgan
    from .train import FlowStage, MaskStage, SynthStage, build_discriminator, build_model, trainable
    device = torch.device(device_name)
    memory = PeakMemory(device)
    memory.baseline()
    torch.manual_seed(0)
    h, w = PRESETS[preset]["size"]
    cfg = stage_config(preset, "synth" if kind == "inference" else kind)
    model = build_model(cfg).to(device)
    b = random_batch(batch, h, w, device)
    if kind == "inference":
        model.eval()

        def step():
            with autocast(device, amp):
                model.tryon(b["cloth"], b["cloth_mask"], b["agnostic"], b["parse_agnostic"], b["pose"])
    else:
        vgg = VGGPerceptual(pretrained=False).to(device) if (cfg.lambda_vgg or cfg.lambda_flow_vgg) else None
        model.requires_grad_(False)
        for m in trainable(model, kind):
            m.requires_grad_(True)
        opt = torch.optim.Adam([p for m in trainable(model, kind) for p in m.parameters()], lr=1e-4)
        disc = build_discriminator(cfg) if kind == "synth" else None
        if disc is not None:
            disc = disc.to(device)
            disc_opt = torch.optim.Adam(disc.parameters(), lr=4e-4)
        module = {"flow": lambda: FlowStage(model, cfg, vgg), "mask": lambda: MaskStage(model, cfg),
                  "synth": lambda: SynthStage(model, cfg, vgg, disc)}[kind]()

        def step():
            if disc is not None:
                disc.requires_grad_(False)
            with autocast(device, amp):
                out = module(b)
            opt.zero_grad(set_to_none=True)
            out[0].backward()
            opt.step()
            if disc is not None:
                disc.requires_grad_(True)
                fake, cond = out[2]
                with autocast(device, amp):
                    pred = disc(torch.cat([torch.cat([b["person"], fake]), torch.cat([cond, cond])], 1))[-1]
                    loss = 0.5 * (lsgan([pred[:batch]], True) + lsgan([pred[batch:]], False))
                disc_opt.zero_grad(set_to_none=True)
                loss.backward()
                disc_opt.step()

    for _ in range(warmup):
        step()
    sync(device)
    memory.start()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    sync(device)
    ms = 1000 * (time.perf_counter() - t0) / steps
    peak, how = memory.peak_mb()
    return {"case": kind, "ms": ms, "images_per_s": 1000 * batch / ms, "peak_mib": peak, "memory": how,
            "height": h, "width": w, "batch": batch, "dtype": "bf16" if amp else "fp32",
            "params_m": sum(p.numel() for p in model.parameters()) / 1e6}


def daflow_inputs(h, w, path):
    """This bench's batch-1 inference inputs as DAFlow takes them -> saved to `path` (a dict of (1, 3, H, W))."""
    b = random_batch(1, h, w, "cpu")
    pose = b["pose"].amax(1, keepdim=True).expand(-1, 3, -1, -1) * 2 - 1  # 18 heatmaps -> one grey skeleton image
    torch.save({"cloth": b["cloth"], "agnostic": b["agnostic"], "pose": pose.contiguous()}, path)


def daflow_bench(preset, device_name, steps, warmup, size, cases="inference"):
    """DAFlow's own bench.sh in a subprocess, inference on this bench's inputs -> dict(wall_s, result | error)."""
    script = HERE.parent / "daflow" / "bench.sh"
    if not script.is_file():
        return {"error": f"{script} not found (bvton copied without daflow)"}
    with tempfile.TemporaryDirectory() as tmp:
        out, inputs = Path(tmp) / "daflow.json", Path(tmp) / "inputs.pt"
        daflow_inputs(*size, inputs)
        cmd = ["bash", str(script), "--device", device_name, "--preset", preset, "--steps", str(steps), "--warmup",
               str(warmup), "--cases", cases, "--inputs", str(inputs), "--out", str(out)]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHON": sys.executable})
        wall = time.perf_counter() - t0
        if proc.returncode != 0 or not out.is_file():
            return {"wall_s": wall, "command": " ".join(cmd), "error": proc.stderr.strip().splitlines()[-1:]}
        return {"wall_s": wall, "command": " ".join(cmd), "result": json.loads(out.read_text())}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="auto")
    p.add_argument("--preset", default=None, choices=tuple(PRESETS), help="default: paper on CUDA, smoke on CPU")
    p.add_argument("--cases", default="inference,flow,mask,synth", help="comma-separated subset")
    p.add_argument("--train_batch", type=int, default=0, help="training-step batch (0: configs' on CUDA, 1 on CPU)")
    p.add_argument("--amp", action="store_true", help="bf16 autocast (CUDA)")
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--daflow_preset", default=None, choices=("paper", "smoke", "none"),
                   help="DAFlow's bench.sh preset (default: the same as --preset); none skips it")
    p.add_argument("--daflow_cases", default="inference", help="DAFlow's bench cases: inference, or train,inference")
    p.add_argument("--out", default="bench.json")
    args = p.parse_args(argv)
    device = select_device(args.device)
    preset = args.preset or ("paper" if device.type == "cuda" else "smoke")
    rows = []
    for kind in args.cases.split(","):
        batch = 1 if kind == "inference" else (args.train_batch or (
            PRESETS[preset]["batch_cuda"][kind] if device.type == "cuda" else 1))
        r = run_isolated(bench_case, kind, preset, str(device), batch, args.amp, args.steps, args.warmup,
                         on_error={"case": kind, "batch": batch})
        rows.append(r)
        print(json.dumps(r), flush=True)
    daflow_preset = args.daflow_preset or preset
    daflow = {} if daflow_preset == "none" else daflow_bench(daflow_preset, str(device), args.steps, args.warmup,
                                                             PRESETS[preset]["size"], args.daflow_cases)
    result = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu", "preset": preset,
              "torch": torch.__version__, "steps": args.steps, "warmup": args.warmup, "rows": rows,
              "daflow_preset": daflow_preset, "daflow": daflow}
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(json.dumps({"daflow_wall_s": daflow.get("wall_s"), "daflow_error": daflow.get("error")}))
    return result


if __name__ == "__main__":
    main()

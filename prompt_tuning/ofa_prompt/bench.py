"""Train-step throughput and peak memory of prompt tuning vs full fine-tuning on OFA shapes, and beam-search
decoding latency, in one run (the comparison of the paper's Table 5, GPU-hours FT vs PT).

    bash bench.sh                         # --size tiny: OFA-tiny, 128 px, batch 2 (CPU, seconds)
    bash bench.sh --size paper --device cuda --out bench_results/ofa_prompt_cuda.json   # OFA-base, 480 px, batch 8

Random weights (no released checkpoint is needed for timing). What is timed: one training step (forward,
label-smoothed loss on random targets, backward, AdamW on the trainable parameters) in train mode, median over
`--steps` after `--warmup`; tokens/s counts target tokens. Beam search: beam 5, 16 new tokens, one image.
Peak memory: CUDA allocator peak; CPU: growth of the peak resident size (common.benchmark.PeakMemory).
"""
import dataclasses
import json
import statistics
from pathlib import Path

import torch

from common.benchmark import PeakMemory, step_times
from common.config import option, parse_config
from common.errors import exit_on_user_error
from common.runtime import autocast, select_device

from .generate import beam_search
from .losses import label_smoothed_loss
from .model import OFA, OFAConfig
from .prompts import set_trainable

HERE = Path(__file__).resolve().parent
SHAPES = {"tiny": dict(model="tiny", image=128, batch=2, src=20, tgt=10),
          "paper": dict(model="base", image=480, batch=8, src=40, tgt=20)}


@dataclasses.dataclass
class BenchConfig:
    device: str = option("auto", "auto, cpu or cuda")
    size: str = option("", "tiny (CPU default) or paper (CUDA default): OFA-base at 480 px",
                       choices=("", "tiny", "paper"))
    prompt_length: int = option(100, "encoder and decoder prompt length (paper: 100)")
    steps: int = option(3, "timed steps")
    warmup: int = option(1, "untimed steps first")
    amp: bool = option(False, "bf16 autocast (CUDA only)")
    out: str = option("", "write the JSON here too")


def time_steps(fn, steps, warmup, device):
    return statistics.median(step_times(fn, steps, warmup, device))


def train_case(mode, shape, cfg, device):
    torch.manual_seed(0)
    prompts = cfg.prompt_length if mode == "prompt" else 0
    model = OFA(OFAConfig.of_size(shape["model"], encoder_prompt_length=prompts, decoder_prompt_length=prompts,
                                  dropout=0.1)).to(device).train()
    set_trainable(model, mode)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4)
    b = shape["batch"]
    src = torch.randint(4, 50000, (b, shape["src"]), device=device)
    prev = torch.randint(4, 50000, (b, shape["tgt"]), device=device)
    target = torch.randint(4, 50000, (b, shape["tgt"]), device=device)
    image = torch.randn(b, 3, shape["image"], shape["image"], device=device)

    def step():
        with autocast(device, cfg.amp):
            logits = model(src, prev, image)
        loss, _ = label_smoothed_loss(logits, target, 0.1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    memory = PeakMemory(device)
    memory.baseline()
    memory.start()
    seconds = time_steps(step, cfg.steps, cfg.warmup, device)
    peak, how = memory.peak_mb()
    return {"case": f"train_{mode}", "step_s": seconds, "tokens_per_s": b * shape["tgt"] / seconds,
            "peak_mb": peak, "memory": how, "trainable_params": sum(p.numel() for p in params)}


def beam_case(shape, cfg, device):
    torch.manual_seed(0)
    model = OFA(OFAConfig.of_size(shape["model"], encoder_prompt_length=cfg.prompt_length,
                                  decoder_prompt_length=cfg.prompt_length)).to(device).eval()
    src = torch.randint(4, 50000, (1, shape["src"]), device=device)
    image = torch.randn(1, 3, shape["image"], shape["image"], device=device)

    def decode():
        with torch.no_grad(), autocast(device, cfg.amp):
            beam_search(model, model.encoder(src, image), beam=5, max_len=16, min_len=16)

    return {"case": "beam5_16_tokens", "latency_s": time_steps(decode, cfg.steps, cfg.warmup, device)}


@exit_on_user_error
def main(argv=None):
    cfg = parse_config(BenchConfig, argv, config_dir=HERE, description=__doc__)
    device = select_device(cfg.device)
    size = cfg.size or ("paper" if device.type == "cuda" else "tiny")
    shape = SHAPES[size]
    rows = [train_case("prompt", shape, cfg, device), train_case("finetune", shape, cfg, device),
            beam_case(shape, cfg, device)]
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    result = {"method": "ofa_prompt", "device": name, "torch": torch.__version__, "size": size, "shape": shape,
              "prompt_length": cfg.prompt_length, "cases": rows,
              "prompt_vs_finetune_time": rows[0]["step_s"] / rows[1]["step_s"],
              "prompt_vs_finetune_memory": (rows[0]["peak_mb"] / rows[1]["peak_mb"]
                                            if rows[0]["peak_mb"] and rows[1]["peak_mb"] else None)}
    text = json.dumps(result, indent=2)
    print(text)
    if cfg.out:
        Path(cfg.out).parent.mkdir(parents=True, exist_ok=True)
        Path(cfg.out).write_text(text + "\n")


if __name__ == "__main__":
    main()

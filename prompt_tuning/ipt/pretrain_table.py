"""Pretrained IPT: pretrain the token table E_I (+ a prompt generator) as a topic classifier, for `--table_init`.

    bash pretrain_table.sh --config configs/pretrain_table.yaml --backbone /models/roberta-large
    bash train.sh --config configs/rte_ipt_prompt.yaml --table_init RUN/table.pt

The official "knowledge-enhanced pretraining" (`sequence_models/pretrain_{textcnn,mlp,lstm}.py`): every text of
a JSONL file (`{"text": ..., "label": class id}`, `sequence_models/data/knowledge_cat/{train,dev}.jsonl`, 13
topics) is tokenised with the backbone's tokenizer, truncated / padded to 200 ids with the pad id; ALL its ids
index the table, x -> E_I[x] [B, T, w]; a generator G and a classification head turn that into topic logits;
cross-entropy, plain SGD lr 0.005, batch 1, 35 epochs (the TextCNN script; the MLP / LSTM ones use Adam); every
20 updates the dev accuracy is measured and the table of the best one is saved with `torch.save(tensor)`.
Heads (official `model/*.py`, used only here):
  cnn   Linear(3, C) on the three max-pooled conv features (in parallel with G's Linear(3, m*w))
  mlp   G(x) = Dropout(ReLU(Linear(w, m*w)(mean E_I[x]))) -> Linear(m*w, w) -> ReLU -> Dropout 0.5 -> Linear(w, C)
  lstm  G(x) = Linear(128, m*w)(BiLSTM summary) -> Linear(m*w, C)
The saved `table.pt` is a bare float32 [V, w] tensor, the format `train.py --table_init` (and the official
`emb_checkpoints`) loads; w = d for `--method ipt_prompt / ipt_encoder`, 2d for `ipt_prefix` (`--table_for`).
"""
import dataclasses
import json
import os
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from common.checkpoint import save_checkpoint
from common.config import RunConfig, config_to_dict, option, parse_config
from common.data.text_classification import read_agnews_csv, read_jsonl_records, write_synthetic_agnews
from common.distributed import init_distributed
from common.errors import ConfigError, DataError, exit_on_user_error
from common.rundir import Run, check_finite
from common.runtime import seed_everything

from .data import backbone_dir
from .encoder import EncoderConfig
from .prompts import GENERATORS, InstanceTable
from .tokenizer import Tokenizer

HERE = Path(__file__).resolve().parent
TABLE_FOR = ("ipt_prompt", "ipt_encoder", "ipt_prefix")


@dataclasses.dataclass
class PretrainConfig(RunConfig):
    data: str = option("jsonl", "jsonl: read data_dir; synthetic: generate a 4-class topic task in <out_dir>/data",
                       choices=("jsonl", "synthetic"))
    data_dir: str = option("", "folder with train.jsonl, dev.jsonl and optionally test.jsonl (one JSON object a "
                           "line); default $DATA_ROOT/knowledge_cat")
    text_field: str = option("text", "JSON field holding the text (official: text)")
    label_field: str = option("label", "JSON field holding the class id 0..num_labels-1 (official: label)")
    num_labels: int = option(13, "number of topic classes (official: 13)")
    backbone: str = option("minilm", "Hugging Face folder whose tokenizer, vocabulary size and hidden size the table "
                           "is for (only config.json and the tokenizer files are read), `minilm` or `random_tiny`")
    table_for: str = option("ipt_prompt", "the train.py --method that will load the table: width d for ipt_prompt "
                            "and ipt_encoder, 2d for ipt_prefix", choices=TABLE_FOR)
    generator: str = option("cnn", "generator + head trained with the table (official pretrain_<textcnn|mlp|lstm>)",
                            choices=tuple(GENERATORS))
    prompt_length: int = option(100, "m: vectors the generator writes (official hidden_size 100)")
    max_length: int = option(200, "ids per text: truncated, then padded with the pad id (official 200, pad 1)")
    init_range: float = option(0.5, "table init U(-r, r) (official 0.5)")
    train_table: bool = option(True, "update E_I as the paper describes; false = what the released scripts do "
                               "(their optimiser never gets the table, see README)")
    optimizer: str = option("sgd", "sgd (TextCNN script) or adam (MLP / LSTM scripts)", choices=("sgd", "adam"))
    lr: float = option(0.005, "learning rate (official: 0.005 SGD TextCNN, 1e-4 Adam MLP, 3e-3 Adam LSTM)")
    batch_size: int = option(1, "texts per update (official 1 for TextCNN)")
    epochs: int = option(35, "passes over train.jsonl (official 35 for TextCNN)")
    shuffle: bool = option(True, "reshuffle the training texts every epoch (the official loader does not)")
    eval_every: int = option(20, "validate every N updates (official 20) and at each epoch end; 0: epoch ends only")
    eval_batch_size: int = option(500, "texts per validation batch (official 500)")
    synthetic_train: int = option(800, "data synthetic: training texts")
    synthetic_test: int = option(400, "data synthetic: texts split in half into dev.jsonl and test.jsonl")


def table_width(table_for, hidden_size):
    """Width w of E_I that `train.py --method table_for` builds (model.build_method)."""
    return 2 * hidden_size if table_for == "ipt_prefix" else hidden_size


class TopicClassifier(nn.Module):
    """E_I, a prompt generator G and the official pretraining head: ids [B, T] -> topic logits [B, C].

    Every id of the text indexes the table (the official scripts feed all 200 padded ids, not the first n).
    `sparse=True` gives the table a sparse gradient (exact for plain SGD, and cheap for a 50265-row table).
    """

    def __init__(self, vocab_size, width, num_labels, generator="cnn", length=100, max_length=200, pad_id=0,
                 init_range=0.5, sparse=False):
        super().__init__()
        self.kind, self.sparse = generator, sparse
        self.table = InstanceTable(vocab_size, width, num_tokens=max_length, pad_id=pad_id, init_range=init_range)
        self.generator = GENERATORS[generator](width, length, width)
        if generator == "cnn":      # official TextCNN.linear1: the 3 pooled features -> C
            self.head = nn.Linear(len(self.generator.convs), num_labels)
        elif generator == "mlp":    # official MLP.hidden2 -> ReLU -> Dropout(0.5) -> MLP.out
            self.head = nn.Sequential(nn.Flatten(), nn.Linear(length * width, width), nn.ReLU(), nn.Dropout(0.5),
                                      nn.Linear(width, num_labels))
        else:                       # official LSTM.hidden2label on the generator output
            self.head = nn.Sequential(nn.Flatten(), nn.Linear(length * width, num_labels))

    def forward(self, input_ids):
        e = F.embedding(self.table.token_ids(input_ids), self.table.weight, sparse=self.sparse)  # [B, T, w]
        if self.kind == "cnn":
            return self.head(self.generator.features(e))                    # [B, C]
        return self.head(self.generator(e))                                 # G(e) [B, m, w] -> [B, C]


def read_topic_jsonl(path, num_labels, text_field="text", label_field="label"):
    """One JSON object a line with a text and an integer class id -> (texts, labels); blank lines are skipped.
    Any other line is a DataError naming the file and the line (other fields, e.g. the official `idx`, are
    ignored)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "JSONL file not found", hint="pass --data_dir with train.jsonl and dev.jsonl, "
                        "e.g. the official sequence_models/data/knowledge_cat")
    texts, labels = [], []
    for line_no, row in read_jsonl_records(path):
        for key in (text_field, label_field):
            if key not in row:
                raise DataError(path, f"no field {key!r} (fields: {', '.join(sorted(row))})", line=line_no,
                                hint="--text_field / --label_field name the fields")
        text, label = row[text_field], row[label_field]
        if not isinstance(text, str):
            raise DataError(path, f"{text_field!r} must be a string, got {type(text).__name__}", line=line_no)
        if isinstance(label, bool) or not isinstance(label, int) or not 0 <= label < num_labels:
            raise DataError(path, f"{label_field!r} must be an integer class id in 0..{num_labels - 1}, got "
                            f"{label!r}", line=line_no, hint="set --num_labels to the number of classes")
        texts.append(text)
        labels.append(label)
    if not texts:
        raise DataError(path, "no examples")
    return texts, labels


def write_synthetic_topics(folder, num_train=800, num_test=400, seed=0):
    """The generated 4-class topic task (common.data.text_classification) as train / dev / test JSONL in the
    official format; the held-out texts are split in half into dev and test. Returns the folder."""
    folder = Path(folder)
    if (folder / "test.jsonl").is_file():
        return folder
    csv_dir = write_synthetic_agnews(folder / "csv", num_train=num_train, num_test=num_test, seed=seed)
    train = read_agnews_csv(csv_dir / "train.csv")
    held = read_agnews_csv(csv_dir / "test.csv")
    half = len(held) // 2
    for name, examples in (("train", train), ("dev", held[:half]), ("test", held[half:])):
        with open(folder / f"{name}.jsonl", "w", encoding="utf-8") as f:
            for i, e in enumerate(examples):
                f.write(json.dumps({"text": f"{e.text_a} {e.text_b}", "idx": i, "label": e.label}) + "\n")
    return folder


def encode(tok, texts, max_length):
    """Texts -> [N, max_length] ids: the tokenizer's special tokens, truncated to max_length, padded with pad_id
    (the official TextDataset pads every text to 200 ids with RoBERTa's pad id 1)."""
    ids = torch.full((len(texts), max_length), tok.pad_id, dtype=torch.long)
    for start in range(0, len(texts), 1024):
        batch = tok([(t, None) for t in texts[start:start + 1024]])["input_ids"][:, :max_length]
        ids[start:start + batch.shape[0], : batch.shape[1]] = batch
    return ids


@torch.no_grad()
def accuracy(model, ids, labels, batch_size, device):
    """Accuracy (fraction) of `model` on the whole split."""
    model.eval()
    correct = 0
    for start in range(0, len(ids), batch_size):
        logits = model(ids[start:start + batch_size].to(device))
        correct += int((logits.argmax(-1).cpu() == labels[start:start + batch_size]).sum())
    return correct / len(ids)


def data_folder(cfg):
    if cfg.data == "synthetic":
        return write_synthetic_topics(Path(cfg.out_dir) / "data" / "topics_synthetic", cfg.synthetic_train,
                                      cfg.synthetic_test, cfg.seed)
    if cfg.data_dir:
        return Path(cfg.data_dir)
    return Path(os.environ.get("DATA_ROOT", "data")) / "knowledge_cat"


@exit_on_user_error
def main(argv=None):
    cfg = parse_config(PretrainConfig, argv, config_dir=HERE, description=__doc__)
    if cfg.resume:
        raise ConfigError("--resume is not supported by pretrain_table; start a new run")
    if cfg.amp or cfg.compile:
        raise ConfigError("--amp and --compile are not supported by pretrain_table (a small model; run it in fp32)")
    dist, device = init_distributed(cfg.device, cfg.cpu_threads)
    if dist.enabled:
        raise ConfigError("pretrain_table runs in one process; unset NPROC")
    run = Run(cfg, "ipt_pretrain_table", dist)
    seed_everything(cfg.seed, cfg.deterministic)
    folder, backbone = data_folder(cfg), backbone_dir(cfg)
    config_json = Path(backbone) / "config.json"
    if not config_json.is_file():
        raise DataError(config_json, "backbone config.json not found", hint="--backbone names a Hugging Face folder")
    enc_cfg = EncoderConfig.from_json(config_json)
    tok = Tokenizer(backbone, max_length=cfg.max_length)
    read = lambda name: read_topic_jsonl(folder / name, cfg.num_labels, cfg.text_field, cfg.label_field)  # noqa: E731
    splits = {"train": read("train.jsonl"), "dev": read("dev.jsonl")}
    if (folder / "test.jsonl").is_file():
        splits["test"] = read("test.jsonl")
    data = {k: (encode(tok, texts, cfg.max_length), torch.tensor(labels)) for k, (texts, labels) in splits.items()}
    width = table_width(cfg.table_for, enc_cfg.hidden_size)
    model = TopicClassifier(enc_cfg.vocab_size, width, cfg.num_labels, generator=cfg.generator,
                            length=cfg.prompt_length, max_length=cfg.max_length, pad_id=tok.pad_id,
                            init_range=cfg.init_range, sparse=cfg.optimizer == "sgd" and cfg.train_table).to(device)
    model.table.weight.requires_grad_(cfg.train_table)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = (torch.optim.SGD(params, lr=cfg.lr) if cfg.optimizer == "sgd" else torch.optim.Adam(params, lr=cfg.lr))
    run.log.info("pretraining a %d x %d table (for --method %s) + %s generator on %s (train %d, dev %d%s), "
                 "%d trained parameters, device %s", enc_cfg.vocab_size, width, cfg.table_for, cfg.generator,
                 folder, len(data["train"][0]), len(data["dev"][0]),
                 f", test {len(data['test'][0])}" if "test" in data else "", sum(p.numel() for p in params), device)

    table_path, best_path = run.dir / "table.pt", run.ckpt_dir / "best.pt"
    best = {"acc": -1.0, "state": None, "step": 0, "epoch": 0, "saved": False}

    def validate(step, epoch):
        acc = accuracy(model, *data["dev"], cfg.eval_batch_size, device)
        run.scalars(step, **{"val/accuracy": acc})
        if acc > best["acc"]:
            best.update(acc=acc, step=step, epoch=epoch, saved=False,
                        state={k: v.detach().clone() for k, v in model.state_dict().items()})
        model.train()
        return acc

    def save_best():
        if best["saved"] or best["state"] is None:
            return
        state = best["state"]
        save_checkpoint(table_path, state["table.weight"].float().cpu().contiguous())   # bare [V, w] tensor
        rest = {k: v.cpu() for k, v in state.items() if k != "table.weight"}
        save_checkpoint(best_path, {"model": rest, "config": config_to_dict(cfg), "table": str(table_path),
                                    "val_accuracy": best["acc"], "step": best["step"], "epoch": best["epoch"]})
        best["saved"] = True

    step, last_acc, train_loss, train_acc = 0, 0.0, 0.0, 0.0
    ids, labels = data["train"]
    for epoch in run.progress(range(cfg.epochs), desc="pretrain table"):
        model.train()
        gen = torch.Generator().manual_seed(cfg.seed * 100003 + epoch)
        order = torch.randperm(len(ids), generator=gen) if cfg.shuffle else torch.arange(len(ids))
        loss_sum, correct, seen = 0.0, 0, 0
        for start in range(0, len(ids), cfg.batch_size):
            idx = order[start:start + cfg.batch_size]
            x, y = ids[idx].to(device), labels[idx].to(device)
            logits = model(x)
            loss = F.cross_entropy(logits, y)
            check_finite(loss, step)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            loss_sum += loss.item() * len(idx)
            correct += int((logits.argmax(-1) == y).sum())
            seen += len(idx)
            if cfg.eval_every > 0 and step % cfg.eval_every == 0:
                last_acc = validate(step, epoch)
        train_loss, train_acc = loss_sum / seen, correct / seen
        if cfg.eval_every <= 0 or step % cfg.eval_every != 0:
            last_acc = validate(step, epoch)
        run.scalars(step, **{"train/loss": train_loss, "train/accuracy": train_acc})
        run.log.info("epoch %d: train loss %.4f, train accuracy %.4f, val accuracy %.4f (best %.4f)", epoch,
                     train_loss, train_acc, last_acc, best["acc"])
        save_best()
    if best["state"] is None:  # epochs 0: save the initial table
        validate(step, 0)
        save_best()

    model.load_state_dict(best["state"])
    metrics = {"val_accuracy": best["acc"], "last_val_accuracy": last_acc, "train_loss": train_loss,
               "train_accuracy": train_acc, "steps": step, "best_step": best["step"]}
    if "test" in data:
        metrics["test_accuracy"] = accuracy(model, *data["test"], cfg.eval_batch_size, device)
    run.write_metrics(metrics)
    run.log.info("best-validation table: %s (load with train.sh --table_init %s --method %s)", table_path,
                 table_path, cfg.table_for)
    run.close()


if __name__ == "__main__":
    main()

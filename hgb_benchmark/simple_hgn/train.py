"""Train Simple-HGN (or the GAT / GCN baselines) on an HGB dataset: node classification or link prediction.

    bash train.sh --config configs/acm.yaml [--repeat 5] [--key value ...]

Protocol of the official drivers (THUDM/HGB NC `run_new.py` / `run_multi.py`, LP `run_dist.py`): full-batch
Adam, early stopping on the validation loss (ties count as improvements), the best-validation weights are
tested. `--repeat N` trains N models (seeds seed..seed+N-1) and reports mean and std (np.std) as the paper.
Each repeat keeps its own `checkpoints/repeat<r>/{last,best}.pt` and `result.json`; `--resume` skips the
finished repeats and continues the interrupted one. Under torchrun the repeats are shared out over ranks.
"""
import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from common.checkpoint import load_checkpoint, restore_training_state, save_checkpoint, training_state
from common.config import RunConfig, config_to_dict, option, parse_config
from common.data.hgb import FEATURE_MODES, write_lp_submission, write_nc_submission
from common.distributed import barrier, cleanup_distributed, init_distributed
from common.errors import exit_on_user_error
from common.metrics.summary import mean_std
from common.plot import line_plot
from common.rundir import Run, check_finite
from common.runtime import autocast, maybe_compile, seed_everything

from .data import dataset_dir, load_dataset, lp_split, model_inputs, nc_splits
from .evaluate import check_lp_test_sets, lp_candidates, lp_test, lp_test_sets, nc_loss, nc_test
from .model import DECODERS, MODELS, SimpleHGNLinkPredictor, build_model

HERE = Path(__file__).resolve().parent


@dataclasses.dataclass
class HGBConfig(RunConfig):
    task: str = option("nc", "node classification or link prediction", choices=("nc", "lp"))
    dataset: str = option("ACM", "folder under data_root with node.dat, link.dat, ...; synthetic_nc, "
                          "synthetic_nc_multilabel and synthetic_lp generate a small graph in the run directory")
    data_root: str = option("", "folder holding the dataset folders (default: $DATA_ROOT, else ./data)")
    model: str = option("simple_hgn", "architecture", choices=MODELS)
    features: str = option("all", "input features (official --feats-type 0..5)", choices=FEATURE_MODES)
    graph: str = option("symmetric", "symmetric: links + reverses + self-loops (2R+1 edge types, run_new.py); "
                        "as_given: links + self-loops (R+1 types, IMDB's run_multi.py)",
                        choices=("symmetric", "as_given"))
    hidden_dim: int = option(64, "hidden size per head")
    edge_dim: int = option(64, "edge-type embedding size (official --edge-feats)")
    num_heads: int = option(8, "attention heads of the hidden layers")
    num_layers: int = option(2, "hidden attention layers (an output layer is added)")
    dropout: float = option(0.5, "feature and attention dropout")
    negative_slope: float = option(0.05, "LeakyReLU slope of the attention scores")
    beta: float = option(0.05, "residual attention weight (official alpha; 0 disables)")
    residual: bool = option(True, "node residual connections from the second layer on")
    decoder: str = option("distmult", "LP decoder: distmult (official bilinear) or dot", choices=DECODERS)
    lr: float = option(5e-4, "Adam learning rate")
    weight_decay: float = option(1e-4, "Adam weight decay")
    epochs: int = option(300, "maximum epochs (--resume may raise it)", resumable=True)
    patience: int = option(30, "early-stopping patience, in validations")
    repeat: int = option(1, "independent runs (seeds seed, seed+1, ...); the paper reports 5")
    val_fraction: float = option(0.2, "NC: fraction of label.dat held out for validation (seeded)")
    valid_fraction: float = option(0.1, "LP: probability that a link (not a head's first) goes to validation")
    batch_size: int = option(1024, "LP: positive links per step")
    val_every: int = option(1, "LP: validate (and early-stop) every this many steps (official: 1)")
    test_relations: list[int] = option([], "LP: relations to train and test on (default: those in link.dat.test)")
    ckpt_every: int = option(1, "write last.pt every this many epochs")


def build(cfg, inputs, num_classes):
    kw = dict(hidden_dim=cfg.hidden_dim, num_layers=cfg.num_layers)
    if cfg.model == "gcn":
        kw.update(dropout=cfg.dropout)
    else:
        kw.update(num_heads=cfg.num_heads, edge_dim=cfg.edge_dim, feat_drop=cfg.dropout, attn_drop=cfg.dropout,
                  negative_slope=cfg.negative_slope, residual=cfg.residual, beta=cfg.beta)
    if cfg.task == "lp":
        if cfg.model != "simple_hgn":
            raise ValueError("link prediction is implemented for --model simple_hgn")
        return SimpleHGNLinkPredictor(inputs.in_dims, inputs.one_hot, inputs.num_etypes, decoder=cfg.decoder, **kw)
    return build_model(cfg.model, inputs.in_dims, inputs.one_hot, num_classes, inputs.num_etypes, **kw)


class EarlyStopping:
    """Official `EarlyStopping` on the validation loss: a loss <= the best so far is an improvement."""

    def __init__(self, patience):
        self.patience, self.best, self.counter = patience, float("inf"), 0

    def step(self, val_loss):
        """Returns True when val_loss is a new best (save the model then)."""
        if val_loss <= self.best:
            self.best, self.counter = val_loss, 0
            return True
        self.counter += 1
        return False

    @property
    def stop(self):
        return self.counter >= self.patience

    def state_dict(self):
        return {"best": self.best, "counter": self.counter}

    def load_state_dict(self, state):
        self.best, self.counter = state["best"], state["counter"]


class Repeat:
    """Checkpoint plumbing of one repeat: checkpoints/repeat<r>/{last.pt, best.pt, result.json}."""

    def __init__(self, run, r, cfg, data_dir):
        self.run, self.r, self.cfg, self.data_dir = run, r, cfg, str(data_dir)
        self.dir = run.ckpt_dir / f"repeat{r}"
        self.last, self.best, self.result = self.dir / "last.pt", self.dir / "best.pt", self.dir / "result.json"

        self.history = {"train": [], "val": []}  # (step, loss) pairs, for the curves picture

    def state(self, model, opt=None, stopper=None, epoch=0, step=0):
        return training_state(model, opt, step=step, epoch=epoch, config=config_to_dict(self.cfg), repeat=self.r,
                              data_dir=self.data_dir, early_stopping=stopper.state_dict() if stopper else None,
                              history=self.history)

    def resume(self, model, opt, stopper):
        """(epoch, step) to continue from: (0, 0) for a fresh start."""
        if not (self.cfg.resume and self.last.exists()):
            return 0, 0
        ckpt = load_checkpoint(self.last)
        step, epoch = restore_training_state(ckpt, model, opt)
        stopper.load_state_dict(ckpt["early_stopping"])
        self.history = ckpt.get("history", self.history)  # absent in checkpoints of older runs
        self.run.log.info("repeat %d: resumed from %s at epoch %d", self.r, self.last, epoch)
        return epoch, step

    def record(self, step, train_loss, val_loss):
        self.history["train"].append((step, train_loss))
        self.history["val"].append((step, val_loss))
        self.run.scalars(step, **{f"repeat{self.r}/train_loss": train_loss, f"repeat{self.r}/val_loss": val_loss})

    def plot(self, xlabel):
        """curves_repeat<r>.png: training and validation loss (what early stopping watched)."""
        if self.run.is_main and self.history["train"]:
            series = {f"{k} loss": tuple(zip(*v, strict=True)) for k, v in self.history.items()}
            line_plot(self.run.dir / f"curves_repeat{self.r}.png", series, xlabel=xlabel, ylabel="loss",
                      title=f"{self.cfg.model} on {self.cfg.dataset}, repeat {self.r}")

    def load_best(self, model):
        model.load_state_dict(load_checkpoint(self.best)["model"])


def train_nc(cfg, run, rep, data, device):
    """One NC repeat (official run_new.py / run_multi.py loop); returns its test metrics."""
    seed_everything(cfg.seed + rep.r, cfg.deterministic)
    inputs = model_inputs(data, cfg, device)
    splits = nc_splits(data, cfg, device, repeat=rep.r)  # a new validation split per repeat
    model = build(cfg, inputs, data.num_classes).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    stopper = EarlyStopping(cfg.patience)
    start, _ = rep.resume(model, opt, stopper)
    forward = maybe_compile(model, cfg.compile, device)
    y_train, y_val = splits.labels[splits.train], splits.labels[splits.val]
    bar = run.progress(range(start, cfg.epochs), desc=f"repeat {rep.r}", initial=start, total=cfg.epochs)
    for epoch in bar:
        if stopper.stop:
            break
        model.train()
        with autocast(device, cfg.amp):
            logits = forward(inputs.features, inputs.graph)
        loss = nc_loss(logits.float()[splits.train], y_train, data.multi_label)
        check_finite(loss, epoch, rep.last)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        model.eval()
        with torch.no_grad(), autocast(device, cfg.amp):
            val_loss = nc_loss(forward(inputs.features, inputs.graph).float()[splits.val], y_val,
                               data.multi_label).item()
        if stopper.step(val_loss):
            save_checkpoint(rep.best, rep.state(model, epoch=epoch + 1))
        rep.record(epoch, loss.item(), val_loss)
        bar.set_postfix(train=f"{loss.item():.4f}", val=f"{val_loss:.4f}")
        if (epoch + 1) % cfg.ckpt_every == 0 or stopper.stop or epoch + 1 == cfg.epochs:
            save_checkpoint(rep.last, rep.state(model, opt, stopper, epoch=epoch + 1, step=epoch + 1))
    rep.plot("epoch")
    rep.load_best(model)
    metrics, pred = nc_test(model, inputs, splits, data, device, cfg.amp)
    write_nc_submission(run.dir / "submission" / f"{data.name}_{rep.r + 1}.txt", data.test_nodes,
                        data.target_type, pred, data.multi_label)
    return {**metrics, "best_val_loss": stopper.best}


def train_lp(cfg, run, rep, data, device):
    """One LP repeat (official run_dist.py: one model on all test relations, validated every step)."""
    seed_everything(cfg.seed + rep.r, cfg.deterministic)
    train_links, valid_links = lp_split(data, cfg)
    inputs = model_inputs(data, cfg, device, links=train_links)  # validation links are not message-passed
    rels = cfg.test_relations or sorted(np.unique(data.test_links[:, 2]).tolist())
    train_pos = train_links[np.isin(train_links[:, 2], rels)]
    valid_pos = valid_links[np.isin(valid_links[:, 2], rels)]
    test_sets = lp_test_sets(data, rels)  # checked before training: an unscorable relation is reported now
    check_lp_test_sets(data, test_sets, run.log)
    model = build(cfg, inputs, None).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    stopper = EarlyStopping(cfg.patience)
    start, step = rep.resume(model, opt, stopper)
    for epoch in run.progress(range(start, cfg.epochs), desc=f"repeat {rep.r}", initial=start, total=cfg.epochs):
        if stopper.stop:
            break
        rng = np.random.default_rng([cfg.seed, rep.r, epoch])  # per-epoch stream: resume-exact
        order = rng.permutation(len(train_pos))
        left, right, rel, labels = lp_candidates(data, train_pos[order], rng, device)
        n = len(order)
        for start_ in range(0, n, cfg.batch_size):
            model.train()
            sel = torch.arange(start_, min(start_ + cfg.batch_size, n), device=device)
            sel = torch.cat([sel, sel + n])  # the positives and their negatives
            with autocast(device, cfg.amp):
                logits = model(inputs.features, inputs.graph, left[sel], right[sel], rel[sel]).float()
            loss = F.binary_cross_entropy(torch.sigmoid(logits), labels[sel])  # official BCELoss(sigmoid)
            check_finite(loss, step, rep.last)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            if step % cfg.val_every == 0:
                model.eval()
                with torch.no_grad(), autocast(device, cfg.amp):
                    vl, vr, vrel, vlab = lp_candidates(data, valid_pos, rng, device)
                    vlogits = model(inputs.features, inputs.graph, vl, vr, vrel).float()
                    val_loss = F.binary_cross_entropy(torch.sigmoid(vlogits), vlab).item()
                if stopper.step(val_loss):
                    save_checkpoint(rep.best, rep.state(model, epoch=epoch + 1, step=step))
                rep.record(step, loss.item(), val_loss)
                if stopper.stop:
                    break
        if (epoch + 1) % cfg.ckpt_every == 0 or stopper.stop or epoch + 1 == cfg.epochs:
            save_checkpoint(rep.last, rep.state(model, opt, stopper, epoch=epoch + 1, step=step))
    rep.plot("step")
    rep.load_best(model)
    metrics, scored = lp_test(model, inputs, data, rels, device, cfg.amp, sets=test_sets)
    heads, tails, r, scores = scored
    write_lp_submission(run.dir / "submission" / f"{data.name}_{rep.r + 1}.txt", heads, tails, r, scores)
    return {**metrics, "best_val_loss": stopper.best}


@exit_on_user_error
def main(argv=None):
    cfg = parse_config(HGBConfig, argv, config_dir=HERE, description=__doc__)
    dist, device = init_distributed(cfg.device, cfg.cpu_threads)
    run = Run(cfg, "simple_hgn", dist)
    if run.is_main:
        dataset_dir(cfg)  # generates the synthetic datasets once, before other ranks read them
    barrier()
    data = load_dataset(cfg)
    run.log.info("%s on %s (%s), device %s", cfg.model, data, cfg.task, device)
    train_fn = train_nc if cfg.task == "nc" else train_lp
    for r in range(dist.rank, cfg.repeat, dist.world_size):  # repeats shared out over ranks
        rep = Repeat(run, r, cfg, dataset_dir(cfg))
        if cfg.resume and rep.result.exists():
            continue
        result = train_fn(cfg, run, rep, data, device)
        run.log.info("repeat %d: %s", r, json.dumps(result))
        rep.result.write_text(json.dumps(result, indent=2) + "\n")
    barrier()
    if run.is_main:
        results = [json.loads(Repeat(run, r, cfg, "").result.read_text()) for r in range(cfg.repeat)]
        shutil.copyfile(Repeat(run, 0, cfg, "").best, run.ckpt_dir / "best.pt")  # for eval.sh
        run.write_metrics(mean_std(results, count_key="repeats"))
    run.close()
    cleanup_distributed()


if __name__ == "__main__":
    main()

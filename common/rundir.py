"""The run directory: config.yaml, env.txt, a log file, TensorBoard events, metrics.json, checkpoints/.

Only rank 0 writes; other ranks get a `Run` whose writers do nothing, so entry points never branch on rank.

A run never loses another run's results. Before writing anything, `Run` refuses (a `ConfigError` naming the flag
to pass) a `--out_dir` that is a file; a directory that already holds a run's results (metrics.json or a
checkpoint) unless `--resume` continues it or `--overwrite` replaces it; `--resume` where there is no checkpoint,
or with flags that differ from the run's config.yaml (other than fields declared `resumable`); and, for an
evaluation (a `Run` whose method name ends in `_eval`), any training run's directory, even with `--overwrite`.
"""
import collections
import dataclasses
import datetime
import importlib.metadata
import json
import logging
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

import torch
import yaml
from tqdm.auto import tqdm

from .config import config_to_dict, save_config
from .distributed import DistInfo, broadcast_object
from .errors import ConfigError, DivergedError, NonFiniteLossError

# What a Run writes itself; `--overwrite` removes these first, so nothing of the replaced run is mistaken for
# this one's (a stale checkpoint found by a later --resume, a metrics.json left by a run that then crashed).
RUN_FILES = ("config.yaml", "env.txt", "log.txt", "metrics.json", "checkpoints", "tb")


def default_out_dir(method, config_name, root="runs"):
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    return str(Path(root) / method / f"{config_name}-{stamp}")


def git_commit(path=None):
    """The commit of the git checkout holding `path` (this file by default), or 'unknown' outside git."""
    where = Path(path or __file__).resolve().parent
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=where,
                               capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (out.stdout.strip() + (" (dirty)" if dirty else "")) if out.returncode == 0 else "unknown"


def environment_report():
    """git commit, python/torch/CUDA versions, devices and the installed packages, as text."""
    lines = [f"git_commit: {git_commit()}", f"python: {sys.version.split()[0]} ({platform.platform()})",
             f"torch: {torch.__version__}", f"cuda (torch build): {torch.version.cuda}",
             f"cuda available: {torch.cuda.is_available()}",
             f"cudnn: {torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None}",
             f"command: {' '.join(sys.argv)}"]
    if torch.cuda.is_available():
        lines += [f"gpu {i}: {torch.cuda.get_device_name(i)}" for i in range(torch.cuda.device_count())]
    packages = sorted(f"{d.metadata['Name']}=={d.version}" for d in importlib.metadata.distributions()
                      if d.metadata["Name"])
    return "\n".join(lines + ["", "# packages (pip freeze)"] + packages) + "\n"


def get_logger(name, log_file=None, enabled=True):
    """A logger printing `time level message` to stderr and to `log_file`; silent when not enabled."""
    logger = logging.getLogger(name)
    logger.handlers.clear()
    logger.propagate = False
    logger.setLevel(logging.INFO if enabled else logging.CRITICAL + 1)
    if enabled:
        fmt = logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S")
        handlers = [logging.StreamHandler(sys.stderr)]
        if log_file:
            handlers.append(logging.FileHandler(log_file))
        for h in handlers:
            h.setFormatter(fmt)
            logger.addHandler(h)
    return logger


def _run_kind(path):
    """The entry point that wrote the run directory `path` (env.txt's `run:` line, e.g. `ipwd` or `ipwd_eval`),
    or None where there is no such line."""
    env = Path(path) / "env.txt"
    if env.is_file():
        for line in env.read_text(errors="replace").splitlines():
            if line.startswith("run: "):
                return line[len("run: "):].strip()
    return None


def _checkpoint_files(path):
    """The checkpoints (`*.pt`) anywhere under `<path>/checkpoints`, sorted."""
    ckpt_dir = Path(path) / "checkpoints"
    return sorted(ckpt_dir.rglob("*.pt")) if ckpt_dir.is_dir() else []


def _resume_conflicts(cfg, config_file):
    """`key: recorded -> now` for every field of `cfg` that differs from the run's config.yaml, except the fields
    declared `resumable` (see `common.config.option`). Values are compared as config.yaml stores them."""
    recorded = yaml.safe_load(Path(config_file).read_text()) or {}
    now = config_to_dict(cfg)
    resumable = {f.name for f in dataclasses.fields(cfg) if f.metadata.get("resumable")}
    missing = "<absent>"
    return [f"{k}: {recorded.get(k, missing)!r} -> {now.get(k, missing)!r}" for k in sorted(set(recorded) | set(now))
            if k not in resumable and recorded.get(k, missing) != now.get(k, missing)]


def out_dir_problem(cfg, method):
    """Why this run may not write into `cfg.out_dir`, as a message naming the flag to pass; None when it may."""
    d = Path(cfg.out_dir)
    existing = next((p for p in (d, *d.parents) if p.exists()), None)
    if existing is not None and not existing.is_dir():
        return f"--out_dir {d}: {existing} is a file, not a directory; pass a directory path"
    if cfg.resume and cfg.overwrite:
        return "--resume continues the run in --out_dir and --overwrite replaces it: pass one of them"
    kind, checkpoints, metrics = _run_kind(d), _checkpoint_files(d), (d / "metrics.json").exists()
    if method.endswith("_eval"):
        if cfg.resume:
            return "--resume continues a training run; an evaluation starts afresh (drop --resume)"
        if checkpoints or (kind is not None and not kind.endswith("_eval")):
            by = f"written by {kind}" if kind else "it holds checkpoints"
            return (f"--out_dir {d} is a training run ({by}); an evaluation never writes into one, so that its "
                    f"config.yaml and metrics.json stay the training's: pass a new --out_dir, e.g. {d.name}-eval")
        if metrics and not cfg.overwrite:
            return (f"--out_dir {d} already holds an evaluation (metrics.json); pass --overwrite to replace it, or a "
                    f"new --out_dir")
        return None
    if cfg.resume:
        if not checkpoints:
            return (f"--resume: {d} holds no checkpoint (checkpoints/*.pt), so there is nothing to continue; run "
                    f"without --resume (with --overwrite if the directory holds an earlier run's files)")
        if not (d / "config.yaml").is_file():
            return f"--resume: {d} has no config.yaml to check this run's flags against; start a new run"
        changed = _resume_conflicts(cfg, d / "config.yaml")
        if changed:
            return (f"--resume continues {d} with the config it was started with, but these differ from its "
                    f"config.yaml: {'; '.join(changed)}. Resume with the recorded values, or start a new run "
                    f"(another --out_dir, or --overwrite)")
        return None
    if (checkpoints or metrics) and not cfg.overwrite:
        what = "metrics.json" if metrics else f"{len(checkpoints)} checkpoint(s)"
        return (f"--out_dir {d} already holds a run ({what}); pass --resume to continue it, --overwrite to "
                f"replace it, or a new --out_dir")
    return None


class Run:
    """One run's directory and writers.

    Args:
        cfg: the resolved config dataclass (a `RunConfig` subclass); `cfg.out_dir` is filled in if empty.
        method: package name, used for the default directory `runs/<method>/<config>-<timestamp>`; an
            evaluation entry point passes `<method>_eval` (it then never writes into a training run).
        dist: this process's DistInfo (rank 0 writes, the others stay silent).

    Raises a ConfigError (see `out_dir_problem`) before anything is written when the directory may not be used.
    """

    def __init__(self, cfg, method, dist=None):
        dist = dist or DistInfo()
        self.cfg, self.dist = cfg, dist
        if not cfg.out_dir:
            if cfg.resume:
                raise ConfigError("--resume needs --out_dir: the run directory whose checkpoints/last.pt to continue")
            cfg.out_dir = broadcast_object(default_out_dir(method, getattr(cfg, "_config_name", "default")))
        self.dir = Path(cfg.out_dir)
        self.ckpt_dir = self.dir / "checkpoints"
        self.is_main = dist.is_main
        self.writer = None
        problem = broadcast_object(out_dir_problem(cfg, method) if self.is_main else None)
        if problem:
            raise ConfigError(problem)
        if self.is_main:
            was_run = _run_kind(self.dir) or _checkpoint_files(self.dir) or (self.dir / "metrics.json").exists()
            if cfg.overwrite and was_run:  # only where a run wrote before: never a folder that merely exists
                for path in (self.dir / name for name in RUN_FILES):
                    if path.is_dir():
                        shutil.rmtree(path)
                    else:
                        path.unlink(missing_ok=True)
            self.ckpt_dir.mkdir(parents=True, exist_ok=True)
            save_config(cfg, self.dir / "config.yaml")
            env_file, env = self.dir / "env.txt", f"run: {method}\n{environment_report()}"
            if cfg.resume and env_file.is_file():  # keep the environment the run started in
                env = f"{env_file.read_text()}\n# resumed {datetime.datetime.now():%Y-%m-%d %H:%M:%S}\n{env}"
            env_file.write_text(env)
            from torch.utils.tensorboard import SummaryWriter  # imported late: it is slow to import
            self.writer = SummaryWriter(str(self.dir / "tb"))
        self.log = get_logger(f"{method}.{os.getpid()}", self.dir / "log.txt" if self.is_main else None,
                              self.is_main)

    @property
    def last_checkpoint(self):
        return self.ckpt_dir / "last.pt"

    def progress(self, iterable=None, **kwargs):
        """tqdm on rank 0 when progress bars are on; the bare iterable otherwise."""
        disable = not (self.is_main and getattr(self.cfg, "progress", True))
        return tqdm(iterable, disable=disable, dynamic_ncols=True, leave=False, **kwargs)

    def scalars(self, step, **values):
        """Log scalars to TensorBoard under their names (e.g. `train/loss`)."""
        if self.writer is not None:
            for k, v in values.items():
                self.writer.add_scalar(k, float(v), step)

    def write_metrics(self, metrics, name="metrics.json"):
        """Write final numbers as JSON; every value must be a finite number (fractions, not percent)."""
        bad = {k: v for k, v in metrics.items() if not isinstance(v, (int, float)) or not math.isfinite(v)}
        if bad:
            raise ValueError(f"metrics must be finite numbers, got {bad}")
        if self.is_main:
            path = self.dir / name
            path.write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
            self.log.info("wrote %s: %s", path, json.dumps(metrics, sort_keys=True))

    def close(self):
        if self.writer is not None:
            self.writer.close()


def _checkpoint_note(checkpoint):
    if not checkpoint:
        return ""
    if not Path(checkpoint).exists():
        return "; no checkpoint was written yet (this happened before the first save)"
    return f"; the last good checkpoint {checkpoint} was left as it was"


def check_finite(loss, step, checkpoint=None, what="loss"):
    """Stop the run on a NaN/inf loss with a message naming the step and the intact last checkpoint (or saying
    that none was written yet).

    `loss` may be a tensor of any shape (all of it must be finite) or a number; `what` names it in the message, e.g.
    a forward hook `check_finite(offsets, step, ckpt, what="the teacher's sampling offsets")` stops a run before
    NaN offsets reach an op that would crash on them.
    """
    if torch.is_tensor(loss) and loss.numel() != 1:
        finite = bool(torch.isfinite(loss.detach()).all())
        value = "nan" if not finite and bool(loss.detach().isnan().any()) else "inf"
    else:
        value = float(loss.detach()) if torch.is_tensor(loss) else float(loss)
        finite = math.isfinite(value)
    if not finite:
        raise NonFiniteLossError(f"{what} is {value} at step {step}{_checkpoint_note(checkpoint)}. Lower the "
                                 f"learning rate, check the data, or turn off --amp")


class DivergenceCheck:
    """Stop a run whose loss stays finite but climbs far above where it started.

    A learning rate far too high (e.g. IPT at `--lr 1e9`) can send a cross-entropy from ln(C) to ~1e9 and keep it
    there without ever reaching inf: the run then ends at chance with exit 0. `update` raises `DivergedError`
    once the median of the last `window` losses (so a lone spike does not count) exceeds `factor` times the run's
    first loss. Meant for losses that
    start well above 0 (a freshly initialised head's cross-entropy); keep `state_dict()` in the checkpoint so a
    resumed run compares with the same start.
    """

    def __init__(self, factor=10.0, window=10):
        self.factor, self.window = factor, window
        self.start, self.recent = None, collections.deque(maxlen=window)

    def update(self, loss, step, checkpoint=None):
        value = float(loss.detach()) if torch.is_tensor(loss) else float(loss)
        if self.start is None:
            self.start = value
        self.recent.append(value)
        median = statistics.median(self.recent)
        if len(self.recent) == self.window and self.start > 0 and median > self.factor * self.start:
            note = ""
            if checkpoint:
                note = (f"; {checkpoint} may already hold diverging weights, so start again (--overwrite) rather "
                        f"than --resume" if Path(checkpoint).exists() else "; no checkpoint was written yet")
            raise DivergedError(f"the loss diverged: its median over the last {self.window} steps is {median:.4g} at "
                                f"step {step}, more than {self.factor:g}x its start {self.start:.4g}{note}. Lower "
                                f"the learning rate (or check the data)")

    def state_dict(self):
        return {"start": self.start, "recent": list(self.recent)}

    def load_state_dict(self, state):
        self.start = state["start"]
        self.recent = collections.deque(state["recent"], maxlen=self.window)

"""The run directory: config.yaml, env.txt, a log file, TensorBoard events, metrics.json, checkpoints/.

Only rank 0 writes; other ranks get a `Run` whose writers do nothing, so entry points never branch on rank.
"""
import datetime
import importlib.metadata
import json
import logging
import math
import os
import platform
import subprocess
import sys
from pathlib import Path

import torch
from tqdm.auto import tqdm

from .config import save_config
from .distributed import DistInfo, broadcast_object
from .errors import ConfigError, NonFiniteLossError


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


class Run:
    """One run's directory and writers.

    Args:
        cfg: the resolved config dataclass (a `RunConfig` subclass); `cfg.out_dir` is filled in if empty.
        method: package name, used for the default directory `runs/<method>/<config>-<timestamp>`.
        dist: this process's DistInfo (rank 0 writes, the others stay silent).
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
        if self.is_main:
            self.ckpt_dir.mkdir(parents=True, exist_ok=True)
            save_config(cfg, self.dir / "config.yaml")
            (self.dir / "env.txt").write_text(environment_report())
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


def check_finite(loss, step, checkpoint=None):
    """Stop the run on a NaN/inf loss with a message naming the step and the intact last checkpoint."""
    value = float(loss.detach()) if torch.is_tensor(loss) else float(loss)
    if not math.isfinite(value):
        where = f"; the last good checkpoint {checkpoint} was left as it was" if checkpoint else ""
        raise NonFiniteLossError(f"loss is {value} at step {step}{where}. Lower the learning rate, check the "
                                 f"data, or turn off --amp")

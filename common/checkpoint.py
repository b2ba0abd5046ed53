"""Checkpoints: atomic writes, full training state, RNG states, resume.

A checkpoint is one dict: model, optimizer, scheduler, ema (each a state_dict or None), rng (python, numpy,
torch CPU, every CUDA device), step, epoch, config, and whatever extra the method adds. It is written to a
temporary file in the same folder, flushed to disk, then renamed over the target, so a crash or `kill -9`
at any moment leaves either the previous complete checkpoint or the new complete one, never a torn file.
"""
import os
import random
from pathlib import Path

import numpy as np
import torch

from .errors import DataError
from .runtime import unwrap_model


def capture_rng_state():
    """RNG states of python, numpy, torch CPU and every CUDA device."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state):
    """Inverse of `capture_rng_state` (CUDA states are restored only where CUDA is present)."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path, state):
    """Write `state` to `path` atomically (temp file + fsync + rename); the temp file is removed on error."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def load_checkpoint(path, map_location="cpu"):
    """Load a checkpoint written by `save_checkpoint` (a DataError names the file if it is unreadable).

    Checkpoints hold numpy RNG state and the config, so they are loaded with `weights_only=False`:
    only load checkpoints you trust.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "checkpoint not found", hint="pass --checkpoint with the path of a .pt file")
    try:
        return torch.load(path, map_location=map_location, weights_only=False)
    except Exception as e:  # a truncated or foreign file
        raise DataError(path, f"not a readable checkpoint ({type(e).__name__}: {e})") from None


def training_state(model, optimizer=None, scheduler=None, ema=None, step=0, epoch=0, config=None, **extra):
    """The full state to resume from: weights, optimiser, scheduler, EMA, RNG states, counters, config."""
    state_of = lambda obj: None if obj is None else unwrap_model(obj).state_dict()  # noqa: E731
    return {"model": state_of(model), "optimizer": state_of(optimizer), "scheduler": state_of(scheduler),
            "ema": state_of(ema), "rng": capture_rng_state(), "step": step, "epoch": epoch,
            "config": config, **extra}


def restore_training_state(ckpt, model, optimizer=None, scheduler=None, ema=None, restore_rng=True):
    """Load a `training_state` dict back into the objects; returns (step, epoch)."""
    unwrap_model(model).load_state_dict(ckpt["model"])
    for obj, key in ((optimizer, "optimizer"), (scheduler, "scheduler"), (ema, "ema")):
        if obj is not None and ckpt.get(key) is not None:
            unwrap_model(obj).load_state_dict(ckpt[key])
    if restore_rng and ckpt.get("rng") is not None:
        restore_rng_state(ckpt["rng"])
    return ckpt.get("step", 0), ckpt.get("epoch", 0)

"""Seeding, determinism, device selection, and the AMP / torch.compile switches (no-ops on CPU)."""
import contextlib
import os
import random
import re

import numpy as np
import torch

from .errors import ConfigError


def seed_everything(seed, deterministic=False):
    """Seed python, numpy and torch (all devices); optionally force deterministic kernels.

    `deterministic=True` sets `torch.use_deterministic_algorithms(True)` (with the cuBLAS workspace setting
    it needs) and turns cuDNN benchmarking off; ops without a deterministic kernel then raise.
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
    else:
        torch.use_deterministic_algorithms(False)


def select_device(name="auto", local_rank=0):
    """`auto` -> this process's CUDA device if there is one, else CPU; `cuda` -> cuda:<local_rank>.

    A device that is not there (`--device cuda` without a GPU, `cuda:3` on a 2-GPU machine) or a name that is
    not a device is a ConfigError naming `--device`, before any run directory is written.
    """
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cpu":
        return torch.device("cpu")
    if not re.fullmatch(r"cuda(:\d+)?", name):
        raise ConfigError(f"--device {name}: unknown device; use auto, cpu, cuda or cuda:N")
    if not torch.cuda.is_available():
        raise ConfigError(f"--device {name}: CUDA is not available on this machine; use --device cpu (or auto)")
    device = torch.device(f"cuda:{local_rank}" if name == "cuda" else name)
    if device.index >= torch.cuda.device_count():
        raise ConfigError(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA device(s), "
                          f"numbered from 0")
    torch.cuda.set_device(device)
    return device


def autocast(device, enabled):
    """bf16 autocast on CUDA when enabled; a do-nothing context on CPU or when disabled."""
    if enabled and torch.device(device).type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def maybe_compile(model, enabled, device, **kwargs):
    """`torch.compile(model)` on CUDA when enabled; the model unchanged otherwise."""
    if enabled and torch.device(device).type == "cuda":
        return torch.compile(model, **kwargs)
    return model


def unwrap_model(model):
    """The plain module under DistributedDataParallel and/or torch.compile wrappers."""
    while True:
        if hasattr(model, "module") and isinstance(model, torch.nn.parallel.DistributedDataParallel):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod
        else:
            return model

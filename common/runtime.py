"""Seeding, determinism, device selection, and the AMP / torch.compile switches (no-ops on CPU)."""
import contextlib
import os
import random

import numpy as np
import torch


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
    """`auto` -> this process's CUDA device if there is one, else CPU; `cuda` -> cuda:<local_rank>."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise RuntimeError(f"--device {name} was asked for but CUDA is not available; use --device cpu")
        device = torch.device(f"cuda:{local_rank}" if name == "cuda" else name)
        torch.cuda.set_device(device)
        return device
    if name != "cpu":
        raise ValueError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:N")
    return torch.device("cpu")


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

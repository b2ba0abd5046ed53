import random

import numpy as np
import pytest
import torch

from common.errors import ConfigError
from common.runtime import autocast, maybe_compile, seed_everything, select_device, unwrap_model


def test_seed_everything_repeats_all_generators():
    seed_everything(3)
    a = (random.random(), np.random.rand(), torch.rand(2))
    seed_everything(3)
    b = (random.random(), np.random.rand(), torch.rand(2))
    assert a[0] == b[0] and a[1] == b[1] and torch.equal(a[2], b[2])


def test_deterministic_switch():
    seed_everything(0, deterministic=True)
    assert torch.are_deterministic_algorithms_enabled()
    seed_everything(0, deterministic=False)
    assert not torch.are_deterministic_algorithms_enabled()


def test_select_device():
    assert select_device("cpu") == torch.device("cpu")
    assert select_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="unknown device"):
        select_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="--device cuda: CUDA is not available.*--device cpu"):
            select_device("cuda")


def test_amp_and_compile_are_noops_on_cpu():
    model = torch.nn.Linear(2, 2)
    assert maybe_compile(model, True, "cpu") is model
    with autocast("cpu", True):
        assert model(torch.ones(1, 2)).dtype == torch.float32


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_amp_is_bf16_on_cuda():
    model = torch.nn.Linear(2, 2).cuda()
    with autocast("cuda", True):
        assert model(torch.ones(1, 2, device="cuda")).dtype == torch.bfloat16


def test_unwrap_model():
    inner = torch.nn.Linear(2, 2)

    class Compiled(torch.nn.Module):  # stands in for torch.compile's OptimizedModule
        def __init__(self):
            super().__init__()
            self._orig_mod = inner

    assert unwrap_model(Compiled()) is inner
    assert unwrap_model(inner) is inner

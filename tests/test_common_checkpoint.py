import random

import numpy as np
import pytest
import torch

from common import checkpoint as ck
from common.checkpoint import (
    capture_rng_state,
    load_checkpoint,
    restore_rng_state,
    restore_training_state,
    save_checkpoint,
    training_state,
)
from common.errors import DataError


def test_rng_state_round_trip():
    state = capture_rng_state()
    a = (random.random(), np.random.rand(), torch.rand(3))
    restore_rng_state(state)
    b = (random.random(), np.random.rand(), torch.rand(3))
    assert a[0] == b[0] and a[1] == b[1] and torch.equal(a[2], b[2])


def test_training_state_round_trip(tmp_path):
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    ema = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.StepLR(opt, 1, 0.5)
    model(torch.ones(1, 3)).sum().backward()
    opt.step()
    sched.step()
    save_checkpoint(tmp_path / "last.pt", training_state(model, opt, sched, ema, step=7, epoch=2, config={"a": 1},
                                                         best_val=0.5))
    m2, e2 = torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)
    o2 = torch.optim.Adam(m2.parameters(), lr=0.1)
    s2 = torch.optim.lr_scheduler.StepLR(o2, 1, 0.5)
    ckpt = load_checkpoint(tmp_path / "last.pt")
    assert restore_training_state(ckpt, m2, o2, s2, e2) == (7, 2)
    assert ckpt["config"] == {"a": 1} and ckpt["best_val"] == 0.5
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), m2.state_dict().values(), strict=True))
    assert all(torch.equal(a, b) for a, b in zip(ema.state_dict().values(), e2.state_dict().values(), strict=True))
    assert o2.state_dict()["state"][0]["step"] == opt.state_dict()["state"][0]["step"]
    assert s2.get_last_lr() == sched.get_last_lr()


def test_failed_write_leaves_previous_checkpoint_and_no_temp_file(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    save_checkpoint(path, {"step": 1})

    def torn_save(obj, f):
        f.write(b"partial bytes")
        raise OSError("disk full")

    monkeypatch.setattr(ck.torch, "save", torn_save)
    with pytest.raises(OSError):
        save_checkpoint(path, {"step": 2})
    monkeypatch.undo()
    assert load_checkpoint(path)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_load_checkpoint_errors_name_the_file(tmp_path):
    with pytest.raises(DataError, match="not found"):
        load_checkpoint(tmp_path / "nope.pt")
    (tmp_path / "torn.pt").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(DataError, match="torn.pt.*not a readable checkpoint"):
        load_checkpoint(tmp_path / "torn.pt")

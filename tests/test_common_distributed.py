"""DDP, resume-after-kill and the non-finite guard, on the tiny entry point in tests/tiny_train.py."""
import os
import re
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from common.checkpoint import load_checkpoint
from common.distributed import (
    DistInfo,
    all_reduce_mean,
    barrier,
    broadcast_object,
    cleanup_distributed,
    distributed_sampler,
    init_distributed,
    wrap_ddp,
)

REPO = Path(__file__).resolve().parent.parent
TINY = str(REPO / "tests" / "tiny_train.py")
ENV = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}


def tiny(out_dir, *args, nproc=1, check=True, **popen):
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"] \
        if nproc > 1 else [sys.executable]
    cmd = [*launcher, TINY, "--out_dir", str(out_dir), "--progress", "false", *map(str, args)]
    if popen:
        return subprocess.Popen(cmd, env=ENV, **popen)
    proc = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=300)
    if check:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def weights(out_dir):
    return torch.load(Path(out_dir) / "final_weights.pt")


def test_single_process_helpers_degrade_gracefully():
    info, device = init_distributed("cpu")
    assert info == DistInfo() and info.is_main and not info.enabled and device.type == "cpu"
    model = torch.nn.Linear(2, 2)
    assert wrap_ddp(model, info, device) is model
    x = torch.arange(3.0)
    assert torch.equal(all_reduce_mean(x), x)
    assert broadcast_object({"a": 1}) == {"a": 1}
    barrier()
    cleanup_distributed()
    threads = torch.get_num_threads()
    try:
        init_distributed("cpu", cpu_threads=1)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(threads)
    sampler = distributed_sampler(list(range(10)), shuffle=True, seed=0)
    sampler.set_epoch(1)
    assert sorted(sampler) == list(range(10))


def test_two_process_ddp_matches_one_process_same_global_batch(tmp_path):
    tiny(tmp_path / "one", "--batch_size", 8)
    tiny(tmp_path / "two", "--batch_size", 8, nproc=2)
    a, b = weights(tmp_path / "one"), weights(tmp_path / "two")
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-5)
    # and the comparison can fail: a different global batch gives different weights
    tiny(tmp_path / "other", "--batch_size", 4)
    c = weights(tmp_path / "other")
    assert any(not torch.allclose(a[k], c[k], atol=1e-3) for k in a)


def wait_for_output(proc, pattern, timeout=120):
    """Block until the child's stderr shows `pattern` (select() wakes on each write: no polling with sleeps).

    Fails with the child's output so far when it exits first or `timeout` seconds pass.
    """
    selector = selectors.DefaultSelector()
    selector.register(proc.stderr, selectors.EVENT_READ)
    deadline, text = time.monotonic() + timeout, ""
    while not re.search(pattern, text):
        left = deadline - time.monotonic()
        if left <= 0 or not selector.select(left):
            pytest.fail(f"no {pattern!r} from the run within {timeout} s; its output so far:\n{text[-2000:]}")
        chunk = os.read(proc.stderr.fileno(), 65536)
        if not chunk:
            pytest.fail(f"the run exited ({proc.wait()}) before printing {pattern!r}; its output:\n{text[-2000:]}")
        text += chunk.decode(errors="replace")
    selector.close()


def test_kill_minus_9_then_resume_is_bit_identical(tmp_path):
    args = ["--epochs", 12, "--dropout", 0.3, "--seed", 5]
    tiny(tmp_path / "full", *args)
    out, slow = tmp_path / "killed", [*args, "--step_sleep", 0.03]  # 0.24 s an epoch: room to kill mid-way
    proc = tiny(out, *slow, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        wait_for_output(proc, r"checkpointed epoch 3\b")  # then kill hard, inside epoch 4 or while saving
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stderr.close()
    epoch_at_kill = load_checkpoint(out / "checkpoints" / "last.pt")["epoch"]  # never torn, whenever killed
    assert 3 <= epoch_at_kill < 12, "the run must be killed part-way"
    assert not (out / "final_weights.pt").exists()
    tiny(out, *slow, "--resume")  # the same flags: --resume refuses a changed config
    a, b = weights(tmp_path / "full"), weights(out)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_needs_out_dir(tmp_path):
    proc = subprocess.run([sys.executable, TINY, "--resume"], env=ENV, capture_output=True, text=True,
                          cwd=tmp_path, timeout=120)
    assert proc.returncode == 2 and "--resume needs --out_dir" in proc.stderr


def test_non_finite_loss_stops_with_message_and_keeps_last_good_checkpoint(tmp_path):
    out = tmp_path / "nan"
    proc = tiny(out, "--epochs", 4, "--nan_at_step", 20, check=False)  # 8 steps per epoch: dies in epoch 2
    assert proc.returncode == 2
    assert "loss is nan at step 20" in proc.stderr and "Traceback" not in proc.stderr
    assert load_checkpoint(out / "checkpoints" / "last.pt")["epoch"] == 2


def test_unknown_config_key_is_a_clear_error(tmp_path):
    (tmp_path / "bad.yaml").write_text("epochs: 2\nlearning_rate: 0.1\n")
    proc = tiny(tmp_path / "run", "--config", tmp_path / "bad.yaml", check=False)
    assert proc.returncode == 2
    assert "unknown key(s) learning_rate" in proc.stderr and "valid keys" in proc.stderr
    assert "Traceback" not in proc.stderr

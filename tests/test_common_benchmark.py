"""common.benchmark: sync, PeakMemory and run_isolated."""
import torch

from common.benchmark import PeakMemory, run_isolated, sync


def test_sync_is_a_no_op_on_cpu():
    sync("cpu")
    sync(torch.device("cpu"))


def test_cpu_peak_memory_sees_a_large_temporary_allocation():
    peak = PeakMemory("cpu")
    peak.baseline()
    peak.start()
    block = torch.ones(64 * 2**20 // 4)  # 64 MiB, written so its pages are resident
    del block
    mb, how = peak.peak_mb()
    assert how in ("VmHWM growth", "ru_maxrss growth")
    assert mb >= 60, mb


def test_run_isolated_returns_the_result_or_an_error_record():
    assert run_isolated(divmod, 7, 3) == (2, 1)
    failed = run_isolated(torch.zeros, -1, on_error={"case": "negative"})
    assert failed["case"] == "negative" and "non-negative" in failed["error"]

"""common.benchmark: sync, step_times, PeakMemory and run_isolated."""
import pytest
import torch

from common.benchmark import PeakMemory, run_isolated, step_times, sync


def test_sync_waits_for_cuda_only(monkeypatch):
    waited = []
    monkeypatch.setattr(torch.cuda, "synchronize", waited.append)  # no GPU needed to see the dispatch
    sync("cpu")
    sync(torch.device("cpu"))
    assert waited == []
    sync("cuda:1")
    sync(torch.device("cuda", 0))
    assert waited == ["cuda:1", torch.device("cuda", 0)]


def test_step_times_skips_the_warmup_and_synchronises_around_each_timed_call(monkeypatch):
    events = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device: events.append("sync"))
    clock = iter(range(100))
    monkeypatch.setattr("common.benchmark.time.perf_counter", lambda: next(clock) * 0.5)
    times = step_times(lambda: events.append("call"), steps=3, warmup=2, device="cuda")
    assert events == ["call", "call"] + ["sync", "call", "sync"] * 3
    assert times == [0.5, 0.5, 0.5]                 # one clock tick between start and end of each timed call
    assert step_times(lambda: None, steps=0, warmup=1, device="cpu") == []


def test_cpu_peak_memory_sees_a_large_temporary_allocation():
    """The same measurement without the allocation is the control: a peak that does not start at start() (or a
    baseline that was never taken) shows up there, instead of passing on memory held before the test."""
    peak = PeakMemory("cpu")
    peak.baseline()
    peak.start()
    if not peak.hwm_reset:
        pytest.skip("VmHWM cannot be reset here (/proc/self/clear_refs), so the peak includes the whole test run")
    idle, how = peak.peak_mb()
    assert how == "VmHWM growth" and idle < 16, idle
    block = torch.ones(32 * 2**20 // 4)  # 32 MiB held before start(): not part of the measured section
    peak.baseline()
    peak.start()
    del block
    before, _ = peak.peak_mb()
    assert before < 16, before
    peak.baseline()
    peak.start()
    block = torch.ones(64 * 2**20 // 4)  # 64 MiB, written so its pages are resident
    del block
    mb, _ = peak.peak_mb()
    assert mb >= idle + 60, (mb, idle)


def test_run_isolated_returns_the_result_or_an_error_record():
    assert run_isolated(divmod, 7, 3) == (2, 1)
    failed = run_isolated(torch.zeros, -1, on_error={"case": "negative"})
    assert failed["case"] == "negative" and "non-negative" in failed["error"]

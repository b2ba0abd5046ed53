"""Benchmark plumbing shared by the methods' bench.py: device sync, timed repeats, peak memory of a measured section,
and running one case in a fresh process (so its memory numbers hold nothing else).

    memory = PeakMemory(device)
    memory.baseline()          # CPU: the resident size everything before the measured part already holds
    ... build the case ...
    memory.start()             # CUDA: reset the allocator's peak; CPU: reset VmHWM to the current RSS
    ... timed steps ...
    peak_mb, how = memory.peak_mb()
"""
import concurrent.futures
import multiprocessing
import resource
import time
from pathlib import Path

import torch


def sync(device):
    """Wait for the device's queued work (a no-op on CPU), so wall-clock times cover it."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def step_times(fn, steps, warmup, device):
    """Seconds of each of `steps` calls of fn() after `warmup` untimed calls; the device is synchronised before
    and after each timed call, so queued CUDA work is inside its time."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(steps):
        sync(device)
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return times


def _rss_kib(field):
    """VmRSS / VmHWM of this process in KiB (Linux), else None."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


class PeakMemory:
    """Peak memory of the section after `start()`, in MiB.

    CUDA: `torch.cuda.max_memory_allocated` after `reset_peak_memory_stats`. CPU: the growth of the process's peak
    resident size (VmHWM, reset through /proc/self/clear_refs on Linux >= 4.0) over the RSS recorded by
    `baseline()`; where VmHWM cannot be reset, the growth of `ru_maxrss` over that baseline.
    """

    def __init__(self, device):
        self.device = torch.device(device)
        self.base_kib = 0
        self.hwm_reset = False

    def baseline(self):
        if self.device.type == "cpu":
            self.base_kib = _rss_kib("VmRSS") or 0

    def start(self):
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
            return
        try:
            Path("/proc/self/clear_refs").write_text("5")
            self.hwm_reset = True
        except OSError:
            self.hwm_reset = False

    def peak_mb(self):
        """-> (peak MiB, how it was measured)."""
        if self.device.type == "cuda":
            return torch.cuda.max_memory_allocated(self.device) / 2**20, "cuda.max_memory_allocated"
        peak_kib = _rss_kib("VmHWM") if self.hwm_reset else None
        how = "VmHWM growth" if peak_kib is not None else "ru_maxrss growth"
        if peak_kib is None:
            peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
        return (peak_kib - self.base_kib) / 1024, how


def run_isolated(fn, *args, on_error=None):
    """`fn(*args)` in a fresh spawned process -> its result. A process that dies (e.g. killed for memory) or a
    RuntimeError (e.g. CUDA out of memory) gives `{**on_error, "error": message}` instead."""
    ctx = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
        try:
            return pool.submit(fn, *args).result()
        except concurrent.futures.process.BrokenProcessPool:
            return {**(on_error or {}), "error": "the measuring process died (killed for memory?)"}
        except RuntimeError as e:
            return {**(on_error or {}), "error": str(e).splitlines()[0]}

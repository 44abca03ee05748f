"""Shared bits of the benchmarks: device sync, a bounded timing loop, device and version facts."""

from __future__ import annotations

import math
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch


def sync(device: torch.device) -> None:
    """Wait for queued GPU work (no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass(frozen=True)
class Timing:
    """``first_call_s``: the first call alone (compile, autotune, cuDNN search, caches);
    ``s_per_call``: median of the ``calls`` timed calls after all warm-up calls."""

    first_call_s: float
    s_per_call: float
    calls: int

    def rate(self, items: int) -> float:
        """Items per second (e.g. images per step / seconds per step)."""
        return items / self.s_per_call


def time_calls(
    fn: Callable[[], object], device: torch.device, iters: int, warmup: int = 1, budget_s: float = math.inf
) -> Timing:
    """Time ``fn()``: ``warmup`` untimed calls, then up to ``iters`` synced calls.

    The first call is always timed alone (``first_call_s``); with ``warmup=0`` it is also
    the first timed call (a smoke run's single call).  Warm-up and timed calls stop early
    once ``budget_s`` (counted from the start) is spent; at least one timed call runs.
    """
    end = time.perf_counter() + budget_s
    t0 = time.perf_counter()
    fn()
    sync(device)
    first = time.perf_counter() - t0
    for _ in range(max(0, warmup - 1)):
        if time.perf_counter() >= end:
            break
        fn()
    sync(device)
    times: list[float] = [] if warmup else [first]
    while len(times) < max(1, iters) and (not times or time.perf_counter() < end):
        t0 = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t0)
    return Timing(first, sorted(times)[len(times) // 2], len(times))


def device_name(device: torch.device) -> str:
    """``NVIDIA H200`` or ``CPU (x86_64), 2 threads``."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({platform.processor() or platform.machine()}), {torch.get_num_threads()} threads"


def versions() -> dict[str, str | None]:
    """Python, torch, torchvision, triton, numpy, CUDA and cuDNN versions (None where absent)."""
    out: dict[str, str | None] = {"python": sys.version.split()[0], "torch": torch.__version__}
    for name in ("torchvision", "triton", "numpy"):
        try:
            out[name] = __import__(name).__version__
        except ImportError:
            out[name] = None
    out["cuda"] = torch.version.cuda
    out["cudnn"] = str(torch.backends.cudnn.version()) if torch.backends.cudnn.is_available() else None
    out["cpu_count"] = str(os.cpu_count())
    return out

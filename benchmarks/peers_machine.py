"""What the peers benchmark reads about the machine: process RSS/CPU/threads, whole-machine busy
time (to wait for a quiet window), memory bandwidth (the roofline of each round), free memory."""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path


def _rss_mib(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _cpu(pid: int) -> float:
    try:
        f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError):
        return 0.0


def _sys_busy() -> float:
    """CPU seconds spent busy by the whole machine since boot (/proc/stat, all cores)."""
    f = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return (sum(f[:8]) - f[3] - f[4]) / os.sysconf("SC_CLK_TCK")


def wait_quiet(max_wait: float, limit: float = 0.3) -> dict:
    """Wait (up to max_wait s) until the rest of the machine uses < `limit` cores over 1 s."""
    t0 = time.perf_counter()
    while True:
        b0 = _sys_busy()
        time.sleep(1.0)
        busy = _sys_busy() - b0
        if busy < limit or time.perf_counter() - t0 > max_wait:
            return {"waited_s": round(time.perf_counter() - t0, 1), "others_cores": round(busy, 2)}


def _threads(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/task"))
    except OSError:
        return 0


def bandwidth_probe(buf) -> dict:
    """GB/s of a 2-thread torch sum (read) and copy (read + write) over 1 GiB, best of 3."""
    import torch

    a, b = buf
    rd, cp = [], []
    for _ in range(3):
        t0 = time.perf_counter()
        a.sum()
        rd.append(a.numel() * 4 / (time.perf_counter() - t0) / 1e9)
        t0 = time.perf_counter()
        b.copy_(a)
        cp.append(2 * a.numel() * 4 / (time.perf_counter() - t0) / 1e9)
    return {"read_gb_s": round(max(rd), 2), "copy_gb_s": round(max(cp), 2), "threads": torch.get_num_threads()}


def mem_available_mib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 1024
    return 0.0


def machine() -> dict:
    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")), platform.processor())
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {"cpu": cpu, "cores": os.cpu_count(), "mem_gib": round(mem, 1), "python": platform.python_version(),
            "platform": platform.platform()}

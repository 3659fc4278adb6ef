"""What the benches read of a process in /proc: its CPU time and its memory, and a percentile of samples."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cpu_seconds", "percentile", "status"]


def cpu_seconds(pid: int, *, thread: bool = False, system: bool = False) -> float:
    """CPU seconds of process ``pid``, user and system, all its threads; ``thread``: of its main thread alone
    (an asyncio process's event loop); ``system``: the kernel's part only."""
    stat = f"/proc/{pid}/task/{pid}/stat" if thread else f"/proc/{pid}/stat"
    fields = Path(stat).read_text().rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
    ticks = int(fields[12]) if system else int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def status(pid: int, key: str) -> int:
    """A /proc/<pid>/status figure in KiB (VmRSS, VmHWM); 0 if absent."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def percentile(values: list[float], p: float) -> float:
    """The ``p``-th percentile of ``values`` (nearest rank)."""
    s = sorted(values)
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))]

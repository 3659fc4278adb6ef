"""Process metrics where /proc shows only the process's own directory (the units' ProcSubset=pid)."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import ProcessCollector

from vigil.core.metrics import BootClockProcessCollector


def _pid_only_proc(tmp_path: Path) -> str:
    """A /proc with nothing but ``self``, as ProcSubset=pid leaves it (no /proc/stat)."""
    (tmp_path / "self").symlink_to("/proc/self")
    return str(tmp_path)


def test_process_metrics_need_no_proc_stat(tmp_path: Path) -> None:
    proc = _pid_only_proc(tmp_path)
    assert list(ProcessCollector(proc=proc, registry=None).collect()) == []  # the stock one gives none
    names = {m.name for m in BootClockProcessCollector(proc=proc, registry=None).collect()}
    assert {"process_cpu_seconds", "process_resident_memory_bytes", "process_open_fds",
            "process_start_time_seconds"} <= names, names


def test_the_start_time_agrees_with_the_stock_collector() -> None:
    ours = {m.name: m.samples[0].value for m in BootClockProcessCollector(registry=None).collect()}
    stock = {m.name: m.samples[0].value for m in ProcessCollector(registry=None).collect()}
    # /proc/stat's btime is whole seconds; the clocks give the same instant to within one
    assert abs(ours["process_start_time_seconds"] - stock["process_start_time_seconds"]) <= 1.5

"""Where a running bridge's or rule engine's event loop spends its CPU, by callback (a measuring aid, not Vigil).

Put on PYTHONPATH, Python imports it at start; in ``vigil bridge`` and ``vigil alerting`` it wraps asyncio's
``Handle._run`` and ``BaseEventLoop._run_once`` and counts, per callback (a task by its coroutine and its name),
how often it ran and its CPU time (``time.thread_time``), plus garbage collections and their time. SIGUSR2
writes the counters so far to ``$VIGIL_LOOPTIME_DIR/looptime.<pid>.<tenths of a second>.json``; two dumps
apart give the rates (``bench/looptime/run.sh`` does this for phase 4 of bench/e2e). The wrappers cost a few
µs per callback: compare callbacks with each other, not the totals with an unwrapped run.
"""

from __future__ import annotations

import collections
import gc
import json
import os
import signal
import sys
import time
from typing import Any

if {"bridge", "alerting"} & set(sys.argv):
    import asyncio.base_events
    import asyncio.events

    _counts: collections.Counter[str] = collections.Counter()
    _run = asyncio.events.Handle._run
    _run_once = asyncio.base_events.BaseEventLoop._run_once  # type: ignore[attr-defined]

    def _name(handle: Any) -> str:
        callback = handle._callback
        name = getattr(callback, "__qualname__", None) or type(callback).__name__
        owner = getattr(callback, "__self__", None)
        if owner is not None and hasattr(owner, "get_coro"):  # a task's step or wake-up
            name += ":" + getattr(owner.get_coro(), "__qualname__", "?") + ":" + owner.get_name()
        return str(name)

    def _timed_run(self: Any) -> None:
        name = _name(self)
        start = time.thread_time()
        try:
            _run(self)
        finally:
            _counts[name] += 1
            _counts["us:" + name] += round((time.thread_time() - start) * 1e6)

    def _timed_run_once(self: Any) -> None:
        start = time.thread_time()
        try:
            _run_once(self)
        finally:
            _counts["<loop turn>"] += 1
            _counts["us:<loop turn>"] += round((time.thread_time() - start) * 1e6)

    _gc_start = [0.0]

    def _on_gc(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            _gc_start[0] = time.perf_counter()
        else:
            _counts[f"gc{info['generation']}"] += 1
            _counts[f"us:gc{info['generation']}"] += round((time.perf_counter() - _gc_start[0]) * 1e6)

    def _dump(*_: Any) -> None:
        where = os.environ.get("VIGIL_LOOPTIME_DIR", "/tmp")
        with open(os.path.join(where, f"looptime.{os.getpid()}.{int(time.time() * 10)}.json"), "w") as f:
            json.dump(dict(_counts), f)

    asyncio.events.Handle._run = _timed_run  # type: ignore[method-assign]
    asyncio.base_events.BaseEventLoop._run_once = _timed_run_once  # type: ignore[attr-defined]
    gc.callbacks.append(_on_gc)
    signal.signal(signal.SIGUSR2, _dump)

"""Speed of the Rules page's preview: an unsaved threshold rule replayed over one series at 10 s.

Fills a MemoryStore and a SQLite file with one reading every 10 s (24 h: 8,640; 7 d: 60,480, with
one warm hour a day) and times ``dashboard.preview.preview_rule``, the code behind
``POST /api/v1/rules/preview`` (the store's query, then ``alerting.backtest.backtest``). The last line
has 9 other temperature series of the site in the store, which the rule does not match.

    .venv/bin/python bench/dashboard/preview.py
"""

from __future__ import annotations

import math
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from dashboard.preview import preview_rule  # noqa: E402
from vigil.app.dashboard_wiring import EngineRules  # noqa: E402
from vigil.core.event import Event  # noqa: E402
from vigil.core.stores import Store, open_store  # noqa: E402

RULES = """rules:
  - name: freezer-warm
    match: {metric: temperature, device: freezer}
    above: -15
    clear_below: -17
    for: 5m
"""
END = 1_800_000_000.0


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for days in (1, 7):
            for url in ("memory://", f"sqlite:///{tmp}/bench-{days}.db"):
                store = open_store(url)
                n = days * 8640
                store.write([Event("freezer", "t0", "temperature",
                                   (-10.0 if (i // 360) % 24 == 5 else -18.0) + math.sin(i / 50),
                                   END - days * 86400 + i * 10, "°C") for i in range(n)])
                times, result = timed(store, days * 86400)
                store.close()
                report(f"{days} d, {result['points']:>6} readings, {url.split(':')[0]:6}", times, result)
        store = open_store("memory://")
        for k in range(10):
            store.write([Event("freezer" if k == 0 else f"fridge{k}", "t0", "temperature", -18.0 + math.sin(i / 50),
                               END - 7 * 86400 + i * 10, "°C") for i in range(7 * 8640)])
        times, result = timed(store, 7 * 86400)
        report(f"7 d, {result['points']:>6} readings, memory, 9 other series stored", times, result)


def timed(store: Store, seconds: float) -> tuple[list[tuple[float, float]], dict[str, Any]]:
    """Three previews of the last ``seconds``: (wall, CPU) seconds each; CPU time is steadier on a shared machine."""
    times, result = [], {}
    for _ in range(3):
        t0, c0 = time.perf_counter(), time.process_time()
        result = preview_rule(EngineRules(), RULES, "rules.yaml", "freezer-warm", store, END - seconds, END + 1)
        times.append((time.perf_counter() - t0, time.process_time() - c0))
    return times, result


def report(what: str, times: list[tuple[float, float]], result: dict[str, Any]) -> None:
    print(f"{what}: median {statistics.median(w for w, _ in times):.3f} s wall, "
          f"{statistics.median(c for _, c in times):.3f} s CPU, {result['notifications']} notifications")


if __name__ == "__main__":
    main()

"""Speed of the Rules page's preview: an unsaved threshold rule replayed over one series at 10 s.

Fills a MemoryStore and a SQLite file with one reading every 10 s (24 h: 8,640; 7 d: 60,480, with
one warm hour a day) and times ``dashboard.preview.preview_rule``, the code behind
``POST /api/v1/rules/preview`` (the store's query, then ``alerting.backtest.backtest``).

    .venv/bin/python bench/dashboard/preview.py
"""

from __future__ import annotations

import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from broker_bridge.stores import open_store  # noqa: E402
from dashboard.preview import preview_rule  # noqa: E402
from vigil.event import Event  # noqa: E402

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
                times, result = [], {}
                for _ in range(3):
                    t0 = time.perf_counter()
                    result = preview_rule(RULES, "rules.yaml", "freezer-warm", store, END - days * 86400, END + 1)
                    times.append(time.perf_counter() - t0)
                store.close()
                print(f"{days} d, {result['points']:>6} readings, {url.split(':')[0]:6}: median "
                      f"{statistics.median(times):.3f} s (replay {result['seconds']:.3f} s), "
                      f"{result['notifications']} notifications")


if __name__ == "__main__":
    main()

"""What saving the conditions' learned state costs (issue 16, restart safety): N series (default 10,000) with
stale, stuck and jump rules (3 N alerts that learn) on the real Engine and a SQLite state file, no broker.

After every series sent a few readings, the engine's clock moves one second at a time and ``flush`` runs
(the service flushes after each batch and every 5 s): each run saves one slice (1/30) of the alerts'
learned state (alerting/intake.py), so each alert's is saved every 30 s. Prints the CPU and wall time of
one slice (the longest the engine's loop is held), their total over 30 s as a share of a core, a full save
(a clean stop), and the rows and bytes in the state file.

    .venv/bin/python bench/rules/learned_state.py                 # 10,000 series
    .venv/bin/python bench/rules/learned_state.py --series 2000
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from alerting.engine import Engine  # noqa: E402
from alerting.intake import LEARNED_EVERY, SLICES  # noqa: E402
from alerting.rules import RulesBounds, load_rules_text  # noqa: E402
from alerting.state import StateDB  # noqa: E402
from vigil.core.clock import ManualClock  # noqa: E402
from vigil.core.event import Event  # noqa: E402

RULES = """
rules:
  - {name: silent, match: {metric: "*"}, stale: {factor: 3}}
  - {name: still, match: {metric: "*"}, stuck: {factor: 3, warmup: 1m}}
  - {name: implausible, match: {metric: "*"}, jump: {max_step: 5}}
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--series", type=int, default=10_000)
    n = ap.parse_args().series
    rules, _ = load_rules_text(RULES, "bench.yaml", RulesBounds(chars=10**8, nodes=10**7))
    with tempfile.TemporaryDirectory(dir=ROOT / ".venv" if (ROOT / ".venv").is_dir() else None) as tmp:
        db = StateDB(Path(tmp) / "alerts.db")
        clock = ManualClock(1_700_000_000.0)
        engine = Engine(rules, state=db, clock=clock)
        for r in range(8):
            clock.advance(10)
            for i in range(n):
                engine.on_event(Event(f"d{i // 10}", "s0", f"m{i % 10}", 20.0 + (r % 2) * 0.1, clock.now(), ""))
        engine.flush()  # the series' last-heard times, and a first slice
        cpu, wall = [], []
        for _ in range(SLICES):
            clock.advance(LEARNED_EVERY / SLICES)
            w, c = time.perf_counter(), time.process_time()
            engine.flush()
            cpu.append(time.process_time() - c)
            wall.append(time.perf_counter() - w)
        w, c = time.perf_counter(), time.process_time()
        engine.flush(learned=True)
        full_cpu, full_wall = time.process_time() - c, time.perf_counter() - w
        rows, size = db.conn.execute("SELECT count(*), sum(length(blob)) FROM learned_state").fetchone()
        db.close()
    print(f"series: {n}, alerts that learn: {3 * n}; one slice a second, {SLICES} slices")
    print(f"one slice: {statistics.median(cpu) * 1e3:.1f} ms CPU (median; max {max(cpu) * 1e3:.1f}), "
          f"{statistics.median(wall) * 1e3:.1f} ms wall (max {max(wall) * 1e3:.1f})")
    print(f"share of a core: {sum(cpu) / LEARNED_EVERY * 100:.2f} %")
    print(f"full save (clean stop): {full_cpu * 1e3:.0f} ms CPU, {full_wall * 1e3:.0f} ms wall")
    print(f"state file: {rows} rows, {size / rows:.0f} bytes of JSON a row")


if __name__ == "__main__":
    main()

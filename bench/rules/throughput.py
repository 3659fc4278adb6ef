"""Rule engine throughput and memory: events/s with 1,000 rules over 10,000 series, bytes per series.

In-process, no broker: this measures the engine (index, conditions, state machine, SQLite commits
of changes), not MQTT. Prints events/s, CPU µs per event, and memory per series from tracemalloc.

    .venv/bin/python bench/rules/throughput.py
    .venv/bin/python bench/rules/throughput.py --rules 1000 --series 10000 --events 200000 --window
    .venv/bin/python bench/rules/throughput.py --unmatched 9000    # 9,000 more rules that match nothing
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from alerting.engine import Engine  # noqa: E402
from alerting.notify.outbox import Outbox  # noqa: E402
from alerting.rules import RulesBounds, load_rules_text  # noqa: E402
from alerting.state import StateDB  # noqa: E402
from vigil.core.clock import ManualClock  # noqa: E402
from vigil.core.event import Event  # noqa: E402

METRICS = ["temperature", "humidity", "pressure", "battery", "voltage", "current", "power", "energy",
           "illuminance", "co2"]
SITES = 100


def rules_text(n: int, window: bool, unmatched: int = 0) -> str:
    lines = ["rules:"]
    for i in range(unmatched):
        # rules on metrics and devices no series has: an event must not pay for them
        lines.append(f"  - {{name: u{i}, match: {{metric: other{i % 50}, device: \"x{i}-*\"}}, above: 1}}")
    for i in range(n):
        metric = METRICS[i % len(METRICS)]
        site = (i // len(METRICS)) % SITES
        lines.append(f"  - name: r{i}")
        lines.append(f"    match: {{metric: {metric}, device: \"site{site}-*\"}}")
        if window and i % 4 == 0:
            lines.append("    aggregate: {fn: avg, window: 10m, above: 90}")
        else:
            lines.append("    above: 90")
            lines.append("    clear_below: 80")
        lines.append("    for: 1m")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rules", type=int, default=1000)
    ap.add_argument("--series", type=int, default=10_000)
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--window", action="store_true", help="a quarter of the rules are 10-minute averages")
    ap.add_argument("--unmatched", type=int, default=0, help="extra rules that match no series")
    args = ap.parse_args()

    # One generated file past a person's bounds (512 KB) when --unmatched is large.
    rules, _ = load_rules_text(rules_text(args.rules, args.window, args.unmatched), "bench.yaml",
                               RulesBounds(chars=10**8, nodes=10**7))
    devices = args.series // len(METRICS)
    series = [(f"site{d % SITES}-dev{d}", METRICS[m]) for d in range(devices) for m in range(len(METRICS))]
    rng = random.Random(1)
    with tempfile.TemporaryDirectory() as tmp:
        db = StateDB(Path(tmp) / "alerts.db")
        outbox = Outbox(db.conn)
        outbox.create_tables()
        clock = ManualClock(1_700_000_000.0)
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        engine = Engine(rules, state=db, sink=outbox, clock=clock)
        after_rules = tracemalloc.get_traced_memory()[0]
        # every series once (the first event of a series builds its match cache)
        for device, metric in series:
            engine.on_event(Event(device, "s0", metric, 20.0, clock.now()))
        engine.flush()
        after_series = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()

        events = []
        for _ in range(args.events):
            device, metric = series[rng.randrange(len(series))]
            # about 1 in 1,000 readings crosses a threshold, so alerts fire and resolve too
            value = 95.0 if rng.random() < 0.001 else rng.uniform(10, 70)
            events.append((device, metric, value))
        transitions = 0
        cpu0, t0 = time.process_time(), time.perf_counter()
        for i, (device, metric, value) in enumerate(events):
            if i % 100 == 0:
                clock.advance(1.0)
                transitions += len(engine.tick())
            transitions += len(engine.on_event(Event(device, "s0", metric, value, clock.now())))
        engine.flush()
        wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        db.close()
    print(f"rules: {args.rules} (+{args.unmatched} matching nothing)  series: {len(series)}  events: {args.events}  "
          f"windowed rules: {'yes (1 in 4)' if args.window else 'no'}")
    print(f"throughput: {args.events / wall:,.0f} events/s  ({cpu / args.events * 1e6:.1f} µs CPU per event)")
    print(f"transitions: {transitions}  alerts not ok at the end: {len(engine.active())}")
    print(f"memory: rules {(after_rules - base) / 1024:,.0f} KiB; "
          f"{(after_series - after_rules) / len(series):,.0f} bytes per series (after one event each)")


if __name__ == "__main__":
    main()

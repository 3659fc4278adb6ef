"""Drift against siblings at fleet scale (issue 16): memory per series with 7 days of hours, CPU per reading.

In-process on the real Engine, no broker. N temperature series (default 10,000) in groups of --group per
device (2: pairs, the sibling's hour is the reference; 4: the group's median), one drift rule (max 1.0,
over 7d) on all of them, one reading every 10 s per series, spread evenly over the 10 s.

Warm-up: each series sends one reading, then its 7 days of hours are refilled as the store refill after
a restart does (Drift.refill with 168 hourly values), so the state is the full 7 days. Measured, with
process_time around the engine's calls only:

- ``reading``: 2 simulated minutes inside an hour (the common path: the reading joins its hour);
- ``hour``: the simulated minute across the next hour, where every series completes its hour once and
  the verdict is computed again (7 days of differences, two Theil-Sen fits);

and from them the share of one core in steady state (every series: 360 readings an hour, one new verdict).
Memory: tracemalloc's bytes held after the warm-up per series (a second pass), and the RSS growth.

    .venv/bin/python bench/rules/drift.py --series 2000
    .venv/bin/python bench/rules/drift.py                  # 10,000 series, pairs
    .venv/bin/python bench/rules/drift.py --group 4
"""

from __future__ import annotations

import argparse
import gc
import math
import random
import sys
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from alerting.conditions import Drift  # noqa: E402
from alerting.engine import Engine  # noqa: E402
from alerting.rules import RulesBounds, load_rules_text  # noqa: E402
from vigil.core.clock import ManualClock  # noqa: E402
from vigil.core.event import Event  # noqa: E402

PERIOD = 10
T0 = 1_700_000_000.0 - 1_700_000_000.0 % 3600 + 3600  # on an hour
RULES = "rules:\n  - name: drift\n    match: {metric: temperature}\n    drift: {max: 1.0, over: 7d}\n"


def rss_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def events(n: int, group: int, t: int, rng: random.Random) -> list[Event]:
    k = t % PERIOD
    now = T0 + t
    day = 2.0 * math.sin(2 * math.pi * now / 86400)
    return [Event(f"dev{i // group}", f"t{i % group}", "temperature", round(18 + day + rng.gauss(0, 0.05), 2), now)
            for i in range(k * n // PERIOD, (k + 1) * n // PERIOD)]


def run(n: int, group: int, trace: bool, rules_text: str = RULES) -> dict[str, float]:
    rules, _ = load_rules_text(rules_text, "bench.yaml", RulesBounds(chars=10**8, nodes=10**7))
    rng = random.Random(1)
    clock = ManualClock(T0)
    gc.collect()
    rss0 = rss_kib()
    if trace:
        tracemalloc.start()
    engine = Engine(rules, clock=clock)
    cond = engine.index.get("drift").condition  # type: ignore[union-attr]
    for t in range(2 * PERIOD):
        clock.set(T0 + t)
        for ev in events(n, group, t, rng):
            engine.on_event(ev)
        if t == PERIOD - 1 and isinstance(cond, Drift):  # every series was seen: its 7 days from the "store"
            for sid, data in engine.series.items():
                cond.refill(data, engine.scratch[f"drift/{sid}"],
                            [(T0 - 3600 * h, 18 + rng.gauss(0, 0.05)) for h in range(168, 0, -1)])
    gc.collect()
    if trace:
        held = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        return {"traced_per_series": held / n}
    rss1 = rss_kib()
    out = {"rss_growth_per_series": (rss1 - rss0) * 1024 / n}
    # the common path: 2 minutes inside the hour; then the minute across the next hour
    for name, first, last in (("reading", 2 * PERIOD, 140), ("hour", 3600 - 30, 3600 + 30)):
        cpu, readings = 0.0, 0
        for t in range(first, last):
            batch = events(n, group, t, rng)
            c0 = time.process_time()
            clock.set(T0 + t)
            engine.tick()
            for ev in batch:
                engine.on_event(ev)
            cpu += time.process_time() - c0
            readings += len(batch)
        out[f"{name}_cpu_us"] = cpu / readings * 1e6
        out[f"{name}_readings"] = readings
    # each series completed one hour in the second phase: its extra cost is the hourly verdict
    out["verdict_ms"] = (out["hour_cpu_us"] - out["reading_cpu_us"]) * out["hour_readings"] / n / 1e3
    out["core_share_pct"] = 100 * (n / PERIOD * out["reading_cpu_us"] / 1e6 + n / 3600 * out["verdict_ms"] / 1e3)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--series", type=int, default=10_000)
    ap.add_argument("--group", type=int, default=2, help="series per device (siblings + 1)")
    args = ap.parse_args()
    threshold = RULES.replace("drift: {max: 1.0, over: 7d}", "above: 90")
    held = run(args.series, args.group, trace=True)["traced_per_series"]
    held0 = run(args.series, args.group, trace=True, rules_text=threshold)["traced_per_series"]
    r = run(args.series, args.group, trace=False)
    r0 = run(args.series, args.group, trace=False, rules_text=threshold)
    print(f"drift, {args.series} series in groups of {args.group}, 7 days of hours each:")
    print(f"  memory: {held:.0f} B per series held (tracemalloc; a threshold rule instead: {held0:.0f} B, so drift's "
          f"own: {held - held0:.0f} B), RSS growth {r['rss_growth_per_series']:.0f} B")
    print(f"  CPU: {r['reading_cpu_us']:.1f} us per reading inside an hour (a threshold rule: "
          f"{r0['reading_cpu_us']:.1f} us; {r['reading_readings']} readings); "
          f"{r['verdict_ms']:.2f} ms per hourly verdict")
    print(f"  steady state, a reading every {PERIOD} s: {r['core_share_pct']:.1f} % of one core")


if __name__ == "__main__":
    main()

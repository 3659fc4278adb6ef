"""Sensor health conditions at fleet scale (issue 16): CPU per reading and memory per series.

In-process on the real Engine, no broker. N series (default 10,000: 10 metrics per device, so each
series has 9 siblings by device) each send one reading every 10 s of simulated time, spread evenly
over the 10 s; the engine's timers are polled every simulated second, as the service does. Each
configuration runs in a fresh process (so its RSS growth is its own): a threshold-only baseline, each
of stale (learned), stuck (learned, siblings by device), jump and forecast (window 30m) alone, and all
four together on every series, and the three
but forecast together.

Warm-up: the forecast's 30-minute slots are filled with SeriesData.seed (the path the store refill
takes after a restart, over the span it reads; 180 readings per series, as 30 minutes of live readings
would leave), then
90 simulated seconds of live readings, long enough for stale to learn its interval (5 intervals) and
stuck its longest run (warmup 1m here: the default day cannot be simulated for 10,000 series; the
per-series state of stuck is the same size whatever its warm-up). Then --minutes of simulated time
are measured with process_time around the engine's calls only (building the events is outside), and
the RSS growth from before the engine was built to the end of the warm-up. A second process per
configuration repeats the warm-up under tracemalloc (which slows it and inflates RSS) for the bytes
the engine holds per series: steady (without the refill's history, which a series drops 30 minutes
after a restart) and right after the restart (with it).

Values: a slow daily wave plus noise, rounded to 0.1 (a real sensor's resolution, so equal values
repeat); 1 % of the series are stuck sensors (a constant value); about 1 in 2,000 readings is a
spike to 95 (a jump, and past the threshold), so alerts fire and resolve.

    .venv/bin/python bench/rules/sensor_health.py --series 2000 --minutes 2
    .venv/bin/python bench/rules/sensor_health.py                        # 10,000 series, 3 minutes
    .venv/bin/python bench/rules/sensor_health.py --only all --profile   # cProfile's top functions
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import json
import math
import os
import pstats
import random
import subprocess
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
PERIOD = 10  # seconds between two readings of a series
WINDOW = 1800.0  # the forecast's window: what the seeded history covers
WARMUP_LIVE = 90  # simulated seconds of live readings before measuring

CONDITIONS = {
    "threshold": "above: 90\n    clear_below: 80",
    "stale": "stale: {factor: 3}",
    "stuck": "stuck: {factor: 4, warmup: 1m, min: 2m, siblings: device}",
    "jump": "jump: {max_step: 5, per: 1m}",
    "forecast": "forecast: {above: 90, within: 20m, window: 30m}",
}
CONFIGS = {
    "baseline": ["threshold"],
    "stale": ["stale"],
    "stuck": ["stuck"],
    "jump": ["jump"],
    "forecast": ["forecast"],
    "all": ["stale", "stuck", "jump", "forecast"],
    "all-but-forecast": ["stale", "stuck", "jump"],
}


def rules_text(names: list[str]) -> str:
    lines = ["rules:"]
    for name in names:
        lines += [f"  - name: {name}", f"    {CONDITIONS[name]}"]
    return "\n".join(lines) + "\n"


class Fleet:
    """The simulated series: ids, a value per series at a time."""

    def __init__(self, n: int, seed: int = 1) -> None:
        self.rng = random.Random(seed)
        self.series = [(f"dev{i // len(METRICS)}", METRICS[i % len(METRICS)]) for i in range(n)]
        self.base = [self.rng.uniform(10, 60) for _ in range(n)]
        self.phase = [self.rng.uniform(0, 2 * math.pi) for _ in range(n)]
        self.stuck = {i for i in range(n) if self.rng.random() < 0.01}

    def value(self, i: int, t: float) -> float:
        if i in self.stuck:
            return round(self.base[i], 1)
        if self.rng.random() < 0.0005:
            return 95.0
        wave = 2.0 * math.sin(2 * math.pi * t / 86400 + self.phase[i])
        return round(self.base[i] + wave + self.rng.gauss(0, 0.1), 1)

    def due(self, t: int) -> range:
        """The series whose reading falls in simulated second ``t`` (each series every PERIOD s)."""
        n, k = len(self.series), t % PERIOD
        return range(k * n // PERIOD, (k + 1) * n // PERIOD)

    def events(self, t0: float, t: int) -> list[Event]:
        now = t0 + t
        out = []
        for i in self.due(t):
            device, metric = self.series[i]
            out.append(Event(device, "s0", metric, self.value(i, now), now))
        return out


def rss_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def run(config: str, n: int, minutes: float, profile: bool, trace: bool) -> dict[str, float]:
    rules, _ = load_rules_text(rules_text(CONFIGS[config]), "bench.yaml", RulesBounds(chars=10**8, nodes=10**7))
    fleet = Fleet(n)
    t0 = 1_700_000_000.0
    with tempfile.TemporaryDirectory() as tmp:
        db = StateDB(Path(tmp) / "alerts.db")
        outbox = Outbox(db.conn)
        outbox.create_tables()
        clock = ManualClock(t0)
        gc.collect()
        rss0 = rss_kib()
        if trace:
            tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        engine = Engine(rules, state=db, sink=outbox, clock=clock)
        transitions = 0
        for t in range(WARMUP_LIVE + 1):
            batch = fleet.events(t0, t)
            clock.set(t0 + t)
            transitions += len(engine.tick())
            for ev in batch:
                transitions += len(engine.on_event(ev))
            if t == PERIOD - 1:
                # every series has sent one reading: give it the 30 minutes before (what the store refill
                # after a restart gives it, and 30 minutes of live readings would leave)
                for i, (device, metric) in enumerate(fleet.series):
                    sid = f"{device}/s0/{metric}"
                    data = engine.series[sid]
                    # the span seed_windows (alerting/storetrigger.py) reads for this series
                    span = max([data.keep, *(c.condition.history for c in engine.index.for_series(
                        sid, device, "s0", metric, {}))])
                    if span > 0:
                        first = t0 + i * PERIOD // len(fleet.series)
                        data.seed([(first - PERIOD * k, fleet.value(i, first - PERIOD * k))
                                   for k in range(int(WINDOW) // PERIOD, 0, -1)])
        engine.flush()
        gc.collect()
        rss1 = rss_kib()
        if trace:
            traced = tracemalloc.get_traced_memory()[0] - base
            # the refill's history is kept (SeriesData.seeded) until it is older than the span it
            # covers, 30 minutes after a restart: dropped here as SeriesData.add does then (steady state)
            for data in engine.series.values():
                data.seeded = None
            gc.collect()
            steady = tracemalloc.get_traced_memory()[0] - base
            tracemalloc.stop()
            db.close()
            return {"traced_per_series": steady / n, "traced_after_restart": traced / n}

        readings, cpu = 0, 0.0
        prof = cProfile.Profile() if profile else None
        wall0 = time.perf_counter()
        for t in range(WARMUP_LIVE + 1, WARMUP_LIVE + 1 + int(minutes * 60)):
            batch = fleet.events(t0, t)
            c0 = time.process_time()
            if prof is not None:
                prof.enable()
            clock.set(t0 + t)
            transitions += len(engine.tick())
            for ev in batch:
                transitions += len(engine.on_event(ev))
            engine.flush()  # as the service does after each batch (alert states, learned state when due)
            if prof is not None:
                prof.disable()
            cpu += time.process_time() - c0
            readings += len(batch)
        c0 = time.process_time()
        engine.flush()
        cpu += time.process_time() - c0
        wall = time.perf_counter() - wall0
        active = len(engine.active())
        db.close()
    if prof is not None:
        print(f"--- cProfile, {config}, {readings} readings (top 12 by own time, then by cumulative) ---")
        stats = pstats.Stats(prof, stream=sys.stdout)
        stats.sort_stats("tottime").print_stats(12)
        stats.sort_stats("cumulative").print_stats(15)
    return {"readings": readings, "cpu_us": cpu / readings * 1e6, "wall": wall, "transitions": transitions,
            "active": active, "rss_growth_per_series": (rss1 - rss0) * 1024 / n,
            "rss_mib": rss1 / 1024}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--series", type=int, default=10_000)
    ap.add_argument("--minutes", type=float, default=3.0, help="simulated minutes measured after the warm-up")
    ap.add_argument("--only", choices=sorted(CONFIGS), help="one configuration, in this process")
    ap.add_argument("--profile", action="store_true", help="cProfile the measured minutes (with --only)")
    ap.add_argument("--trace", action="store_true", help="only the warm-up, under tracemalloc (with --only)")
    ap.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.series % PERIOD:
        ap.error(f"--series must be a multiple of {PERIOD}")

    if args.only:
        out = run(args.only, args.series, args.minutes, args.profile, args.trace)
        print(json.dumps(out) if args.json else out)
        return

    print(f"series: {args.series} (10 metrics per device), one reading each per {PERIOD} s; warm-up: 30 min "
          f"seeded + {WARMUP_LIVE} s live; measured: {args.minutes:g} simulated min")
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}  (cpus: {os.cpu_count()})")
    rate = 10_000 / PERIOD  # the load: 10,000 series / 10 s
    print(f"{'config':<16} {'µs CPU/reading':>15} {'share of a core at 1,000/s':>27} {'B/series traced':>16} "
          f"{'(after restart)':>16} {'B/series RSS':>13} {'transitions':>12} {'wall s':>7}")
    for config in CONFIGS:
        r: dict[str, float] = {}
        for extra in ([], ["--trace"]):
            proc = subprocess.run([sys.executable, __file__, "--only", config, "--series", str(args.series),
                                   "--minutes", str(args.minutes), "--json", *extra],
                                  capture_output=True, text=True, check=True)
            r.update(json.loads(proc.stdout.strip().splitlines()[-1]))
        share = rate * r["cpu_us"] / 1e6 * 100
        print(f"{config:<16} {r['cpu_us']:>15.1f} {share:>26.1f}% {r['traced_per_series']:>16,.0f} "
              f"{r['traced_after_restart']:>16,.0f} "
              f"{r['rss_growth_per_series']:>13,.0f} {r['transitions']:>12} {r['wall']:>7.1f}", flush=True)
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print("targets (issue 16, 'all'): under 10 % of one core (100 µs per reading), under 2,048 B per series")


if __name__ == "__main__":
    main()

"""The million-sensor model, from costs measured here: what 1,000,000 sensors at one reading per 10 s
(100,000 readings/s) would need, and a check of the model against this machine.

    .venv/bin/python bench/scale_model.py                       # about 3 minutes
    .venv/bin/python bench/scale_model.py --rates 500 1500 3000 --seconds 20

The whole chain runs as in bench/e2e/run.py (a private Mosquitto with the shipped queue settings, influxd 1.x,
`vigil bridge`, `vigil alerting`, an HTTP receiver), under a steady load from mosquitto_pub processes, at each
rate in turn. For each process (broker, bridge, store, rule engine) the CPU it used is read from /proc:

1. the two lowest rates give each part's cost as a line, CPU = fixed + per_reading x rate;
2. the line predicts the CPU at the highest rate, which is then measured: the model's error, part by part;
3. the rule engine is run again as one partition of 8 (``--partition 0/8``, a new session) at the highest rate:
   every instance of a partitioned engine receives every event and drops those it does not own, so its cost is
   received x skip + owned x evaluate; this run gives the skip cost;
4. from these, the machines for 100,000 readings/s (docs/scaling.md, "A million sensors").
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bridge import dropped  # noqa: E402
from bench.e2e.run import Chain, SteadyLoad  # noqa: E402
from bench.proc import cpu_seconds  # noqa: E402
from bench.rules.latency import RECEIVER  # noqa: E402
from tests.support.services import Influxd, Mosquitto, free_port, shipped_broker_settings, wait_until  # noqa: E402

TARGET = 100_000  # readings/s: 1,000,000 sensors, one reading per 10 s
BUSY = 0.7  # share of a core a single-threaded process is planned at
CORES = 8  # cores of the machines in the model


def measure(chain: Chain, broker: Mosquitto, influxd: Influxd, rate: float, seconds: float,
            devices: int, tag: str) -> dict[str, float]:
    """CPU seconds per second of each part while ``rate`` readings a second flow through the chain."""
    assert chain.bridge is not None and chain.engine is not None
    assert broker.proc is not None and influxd.proc is not None
    pids = {"broker": broker.proc.pid, "bridge": chain.bridge.pid, "store": influxd.proc.pid,
            "engine": chain.engine.pid}
    before = chain.stored()
    cpu0 = {k: cpu_seconds(p) for k, p in pids.items()}
    t0 = time.monotonic()
    load = SteadyLoad(broker, devices, rate, seconds, prefix=tag)
    load.join()
    wait_until(lambda: chain.stored() - before >= load.sent, 60, 0.2)
    took = time.monotonic() - t0
    stored = chain.stored() - before
    used = {k: (cpu_seconds(p) - cpu0[k]) / took for k, p in pids.items()}
    actual = load.sent / took
    print(f"   {actual:7,.0f} readings/s for {took:.0f} s, stored {stored:,}/{load.sent:,}: "
          + ", ".join(f"{k} {v * 100:.0f}%" for k, v in used.items()), flush=True)
    used["rate"] = actual
    return used


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rates", type=float, nargs=3, default=[500, 1500, 3000], metavar="R",
                    help="three steady rates, readings/s: the two lowest fit the model, the highest checks it")
    ap.add_argument("--seconds", type=float, default=20, help="length of each phase")
    ap.add_argument("--devices", type=int, default=50, help="mosquitto_pub processes of the load")
    args = ap.parse_args()
    low, mid, high = sorted(args.rates)
    with tempfile.TemporaryDirectory(prefix="vigil-bench-scale-") as tmp:
        work = Path(tmp)
        broker = Mosquitto(work / "mq", extra_config="\n".join(shipped_broker_settings()) + "\nsys_interval 1\n")
        influxd = Influxd(work / "influxd")
        receiver_port = free_port()
        receiver = subprocess.Popen([sys.executable, "-c", RECEIVER, str(receiver_port), str(work / "arrivals")])
        broker.start()
        influxd.start()
        chain = Chain(work, broker, influxd, influxd.create_database("bench_scale"), receiver_port)
        print(f"{os.cpu_count()} CPUs; load average (1 min) {os.getloadavg()[0]:.2f}; CPU as a share of one core")
        try:
            chain.start_engine()
            chain.start_bridge()
            runs = [measure(chain, broker, influxd, r, args.seconds, args.devices, f"r{i}")
                    for i, r in enumerate((low, mid, high))]
            assert chain.engine is not None
            chain.engine.terminate()
            chain.engine.wait(20)
            chain.engine_argv = [a.replace("bench-alerting", "bench-alerting-p0").replace("alerts.db", "alerts-p0.db")
                                 for a in chain.engine_argv] + ["--partition", "0/8"]
            chain.start_engine()
            part = measure(chain, broker, influxd, high, args.seconds, args.devices, "p")
            print(f"   broker dropped counter: {dropped(broker)}")
        finally:
            chain.stop()
            influxd.stop()
            broker.stop()
            receiver.terminate()
            receiver.wait(5)
    report(runs, part)


def report(runs: list[dict[str, float]], part: dict[str, float]) -> None:
    a, b, c = runs
    print("\nthe model: CPU = fixed + per reading x rate (from the two lowest rates), checked at the highest")
    print(f"{'part':8} {'fixed':>8} {'per reading':>12} {'predicted':>10} {'measured':>9} {'error':>6}")
    per: dict[str, float] = {}
    for k in ("broker", "bridge", "store", "engine"):
        slope = (b[k] - a[k]) / (b["rate"] - a["rate"])
        fixed = a[k] - slope * a["rate"]
        predicted = fixed + slope * c["rate"]
        per[k] = slope
        print(f"{k:8} {fixed * 100:7.1f}% {slope * 1e6:9.1f} µs {predicted * 100:9.1f}% {c[k] * 100:8.1f}% "
              f"{(c[k] - predicted) / c[k] * 100 if c[k] else 0:+5.0f}%")
    # the engine as partition 0 of 8 receives every event and owns about 1/8: per event received r, per owned o
    fixed_e = a["engine"] - per["engine"] * a["rate"]
    per_part = (part["engine"] - fixed_e) / part["rate"]
    own = 1 / 8
    o = max(0.0, (per["engine"] - per_part) / (1 - own))
    r = max(0.0, per["engine"] - o)
    print(f"engine as partition 0/8 at {part['rate']:,.0f} readings/s: {part['engine'] * 100:.0f}% of a core, "
          f"{per_part * 1e6:.1f} µs per event received (fixed part taken off): receiving an event costs about "
          f"{r * 1e6:.1f} µs whether it is owned or not, evaluating an owned one {o * 1e6:.1f} µs more")

    print(f"\n{TARGET:,} readings/s (1,000,000 sensors, one reading per 10 s); single-threaded parts planned at "
          f"{BUSY:.0%} of a core, machines of {CORES} cores, every figure scaled linearly from this machine:")
    print(f"  bridges (shared group):  {TARGET * per['bridge']:6.1f} cores -> "
          f"{math.ceil(TARGET * per['bridge'] / BUSY)} bridges")
    if TARGET * r >= BUSY:
        print(f"  rule engines, as built:  each instance receives all {TARGET:,} events/s, {TARGET * r:.1f} cores "
              f"before it evaluates one: no number of partitions carries it (one instance tops out near "
              f"{BUSY / (r + o / 8):,.0f} readings/s, at any N). THE FIRST BOTTLENECK. Receiving would have to cost "
              f"under {BUSY / TARGET * 1e6:.0f} µs, or the broker route each partition only its events")
    engines = math.ceil(TARGET * per["engine"] / BUSY)
    print(f"  rule engines, routed:    with each partition receiving only its own events: {TARGET * per['engine']:.1f} "
          f"cores -> {engines} partitions")
    # measured with one engine: a reading in and out (to a bridge), its event in and out (to the engine); each
    # further engine that receives every event adds a copy of every event out (about a quarter of the cost)
    routed = TARGET * per["broker"]
    print(f"  broker cluster, routed:  {routed:6.1f} cores of Mosquitto-equivalent work -> "
          f"{math.ceil(routed / (CORES * BUSY))} nodes of {CORES} cores (Mosquitto itself is single-threaded: "
          f"one node tops out near {BUSY / per['broker']:,.0f} readings/s)")
    print(f"  broker, as built:        every engine gets a copy of every event: "
          f"{TARGET * per['broker'] * (3 + engines) / 4:.1f} cores for {engines} engines")
    print(f"  store:                   {TARGET * per['store']:6.1f} cores of influxd 1.x work -> "
          f"{math.ceil(TARGET * per['store'] / (CORES * BUSY))} machine(s) of {CORES} cores")


if __name__ == "__main__":
    main()

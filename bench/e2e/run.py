"""The whole chain, measured: Mosquitto -> `vigil bridge` -> influxd, and `vigil alerting` -> an HTTP receiver.

    .venv/bin/python bench/e2e/run.py                         # the short run (about a minute and a half)
    .venv/bin/python bench/e2e/run.py --readings 40000 --rate 2000 --seconds 30
    .venv/bin/python bench/e2e/run.py --soak                  # 1,000 devices, one reading each per 10 s, 10 min
    .venv/bin/python bench/e2e/run.py --soak --soak-minutes 3
    .venv/bin/python bench/e2e/run.py --compare /work/main/.venv/bin/vigil   # then the same with another engine

Short run, in one go on private servers (loopback, free ports, the shipped Mosquitto queue settings):
1. the load generator alone (C mosquitto_pub processes, one per device; nobody subscribed);
2. the broker's relay rate: a bare paho subscriber draining a backlog (bench/bridge.py's method);
3. sustained throughput: a backlog queued for the bridge while it is frozen (SIGSTOP, connected and
   subscribed), then the bridge continued (SIGCONT) and timed until every reading is stored in influxd and
   the rule engine has evaluated the last one (a final alerting reading, notified only after all before it); loss is the
   stored count against the published, and the broker's dropped counter;
4. latency under steady load (--rate, from mosquitto_pub processes): every 100 ms a reading on a fresh
   device crosses a threshold; reading published -> notification at the receiver (in its own process),
   p50/p99/max; CPU and peak RSS of the bridge and the rule engine in this phase;
5. the same steady load again without the probe: the CPU a reading costs the bridge and the rule engine when
   no alert fires (phase 4's figures hold ten notifications a second, each a new alert sent over HTTP by
   apprise), and from the two the CPU of one notification.

``--compare PATH`` runs the short run again, on fresh servers, with the rule engine of another ``vigil``
executable (e.g. another checkout's, read-only); the bridge is this checkout's in both.

Soak: the fleet's realistic load through the same chain, reporting RSS of the bridge and the engine and
the trigger latency minute by minute (growth and drift).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Optional

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench.bridge import bare_subscriber, dropped, metrics, publish_backlog  # noqa: E402
from bench.proc import cpu_seconds, percentile, status  # noqa: E402
from bench.rules.latency import RECEIVER, _read_arrivals  # noqa: E402
from tests.support.services import Influxd, Mosquitto, free_port, shipped_broker_settings, wait_until  # noqa: E402

VIGIL = str(Path(sys.executable).with_name("vigil"))
THRESHOLD = 100.0


class Chain:
    """The processes under test, each with its log in ``work``."""

    def __init__(self, work: Path, broker: Mosquitto, influxd: Influxd, db: str, receiver_port: int,
                 engine_vigil: str = VIGIL) -> None:
        self.work = work
        self.broker = broker
        self.influxd = influxd
        self.db = db
        self.metrics_port = free_port()
        rules = work / "rules.yaml"
        rules.write_text(f"""
receivers:
  bench: ["json://127.0.0.1:{receiver_port}/hook"]
grouping: {{group_by: [rule, series], group_wait: 0s, group_interval: 1s}}
rules:
  - name: hot
    match: {{metric: temperature}}
    above: {THRESHOLD}
    notify: bench
""")
        self.bridge_argv = [VIGIL, "bridge", "--broker", broker.url, "--store", influxd.url(db),
                            "--client-id", "bench-bridge", "--data-dir", str(work / "bridge"),
                            "--metrics-listen", f"127.0.0.1:{self.metrics_port}"]
        self.engine_argv = [engine_vigil, "alerting", "--broker", broker.url, "--rules", str(rules),
                            "--state", str(work / "alerts.db"), "--client-id", "bench-alerting"]
        self.bridge: Optional[subprocess.Popen[bytes]] = None
        self.engine: Optional[subprocess.Popen[bytes]] = None

    def _spawn(self, argv: list[str], name: str) -> subprocess.Popen[bytes]:
        with (self.work / f"{name}.log").open("ab") as log:
            return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=self.work)

    def start_bridge(self) -> None:
        self.bridge = self._spawn(self.bridge_argv, "bridge")
        if not wait_until(lambda: self._metrics_up(), 30):
            raise SystemExit("the bridge did not start:\n" + (self.work / "bridge.log").read_text()[-2000:])
        time.sleep(0.5)  # subscribed

    def _metrics_up(self) -> bool:
        try:
            metrics(self.metrics_port)
            return True
        except OSError:
            return False

    def stop_bridge(self) -> None:
        if self.bridge is not None:
            self.bridge.terminate()
            self.bridge.wait(20)
            self.bridge = None

    def start_engine(self) -> None:
        self.engine = self._spawn(self.engine_argv, "engine")
        log = self.work / "engine.log"
        if not wait_until(lambda: b"connected to the broker" in log.read_bytes(), 30):
            raise SystemExit("the engine did not start:\n" + log.read_text()[-2000:])

    def stop(self) -> None:
        self.stop_bridge()
        if self.engine is not None:
            self.engine.terminate()
            self.engine.wait(20)

    def stored(self) -> int:
        res = self.influxd.query('SELECT count("value") FROM "temperature"', db=self.db)
        series = res["results"][0].get("series")
        return int(series[0]["values"][0][1]) if series else 0


class Triggers:
    """Readings that cross the threshold on fresh devices, published from here at a low rate."""

    def __init__(self, broker: Mosquitto) -> None:
        self.sent: dict[str, float] = {}
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-trigger-{os.getpid()}")
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()
        self.k = 0

    def fire(self, prefix: str = "trig") -> str:
        device = f"{prefix}{self.k}"
        self.k += 1
        now = time.time()
        body = json.dumps({"value": THRESHOLD + 50, "ts": now, "unit": "°C", "seq": 0})
        self.sent[device] = now
        self.client.publish(f"vigil/readings/{device}/t0", body, qos=1)
        return device

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


class SteadyLoad:
    """``rate`` readings a second over ``devices`` mosquitto_pub -l processes (one topic each), fed from a thread."""

    def __init__(self, broker: Mosquitto, devices: int, rate: float, seconds: float, prefix: str = "dev") -> None:
        self.procs = [subprocess.Popen(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(broker.port), "-q", "1", "-l",
                                        "-i", f"load-{prefix}-{d}", "-t", f"vigil/readings/{prefix}-{d}/t0"],
                                       stdin=subprocess.PIPE) for d in range(devices)]
        self.rate, self.seconds = rate, seconds
        self.sent = 0
        self.thread = threading.Thread(target=self._feed, name="bench-load")
        self.thread.start()

    def _feed(self) -> None:
        start = time.monotonic()
        total = int(self.rate * self.seconds)
        n = len(self.procs)
        while self.sent < total:
            due = min(total, int((time.monotonic() - start) * self.rate))
            chunks: list[list[bytes]] = [[] for _ in range(n)]
            now = time.time()
            while self.sent < due:
                i = self.sent
                seq = i // n
                chunks[i % n].append(json.dumps({"value": 20.0 + (i % 7) / 10, "ts": now - 1 + (i % 1000) / 1e6,
                                                 "unit": "°C", "seq": seq}).encode())
                self.sent += 1
            for proc, lines in zip(self.procs, chunks):
                if lines and proc.stdin is not None:
                    proc.stdin.write(b"\n".join(lines) + b"\n")
                    proc.stdin.flush()
            time.sleep(0.01)
        for proc in self.procs:
            if proc.stdin is not None:
                proc.stdin.close()

    def join(self) -> None:
        self.thread.join()
        for proc in self.procs:
            proc.wait(60)


def arrivals_of(path: Path, sent: dict[str, float]) -> list[float]:
    arrived = _read_arrivals(path)
    return [(arrived[d] - t) * 1000 for d, t in sent.items() if d in arrived]


def wait_notified(path: Path, devices: list[str], timeout: float) -> bool:
    return wait_until(lambda: all(d in _read_arrivals(path) for d in devices), timeout, 0.05)


def short_run(args: argparse.Namespace, work: Path, broker: Mosquitto, influxd: Influxd, receiver_port: int,
              arrivals: Path) -> None:
    n = args.readings - args.readings % args.devices
    gen = publish_backlog(broker, n, args.devices, 0, work)
    print(f"1. load generator alone (mosquitto_pub x{args.devices}, QoS 1): {gen:,.0f} readings/s")
    bare = bare_subscriber(broker, n, work, args.devices)
    print(f"2. broker relay rate (bare paho subscriber, backlog of {n:,}): {bare:,.0f} msg/s")

    db = influxd.create_database("bench_e2e")
    chain = Chain(work, broker, influxd, db, receiver_port, args.engine)
    triggers = Triggers(broker)
    try:
        chain.start_engine()
        chain.start_bridge()
        assert chain.bridge is not None and chain.engine is not None
        # connected, subscribed and idle, then frozen: the backlog queues for it and the clock starts when it
        # wakes (a bridge started after the backlog drained part of it before the clock could start)
        os.kill(chain.bridge.pid, signal.SIGSTOP)
        publish_backlog(broker, n, args.devices, 10**6, work)
        last = triggers.fire("end")
        started = time.perf_counter()
        cpu_b, cpu_e = cpu_seconds(chain.bridge.pid), cpu_seconds(chain.engine.pid)
        os.kill(chain.bridge.pid, signal.SIGCONT)
        ok = wait_notified(arrivals, [last], 600)
        stored_at = time.perf_counter()
        if not wait_until(lambda: chain.stored() >= n + 1, 60, 0.2):
            print(f"   stored only {chain.stored()} of {n + 1}")
        elapsed = stored_at - started
        cpu_b = cpu_seconds(chain.bridge.pid) - cpu_b
        cpu_e = cpu_seconds(chain.engine.pid) - cpu_e
        stored = chain.stored()
        rate = n / elapsed
        print(f"3. sustained, stored and evaluated: {rate:,.0f} readings/s ({n:,} in {elapsed:.1f} s; ratio to the "
              f"broker's relay rate {rate / bare:.2f}); stored {stored - 1:,}/{n:,}, loss {n + 1 - stored}, "
              f"last reading evaluated and notified: {'yes' if ok else 'NO'}")
        print(f"   CPU while draining: bridge {cpu_b / n * 1e6:.1f} µs/reading, rule engine {cpu_e / n * 1e6:.1f} "
              "µs/event")

        # 4. latency under a steady load
        rss0 = {"bridge": status(chain.bridge.pid, "VmRSS"), "engine": status(chain.engine.pid, "VmRSS")}
        cpu_b, cpu_e = cpu_seconds(chain.bridge.pid), cpu_seconds(chain.engine.pid)
        loop_e = cpu_seconds(chain.engine.pid, thread=True)
        before = chain.stored()
        triggers.sent.clear()
        load = SteadyLoad(broker, args.load_devices, args.rate, args.seconds, prefix="load")
        start = time.time()
        while time.time() - start < args.seconds:
            triggers.fire()
            time.sleep(0.1)
        load.join()
        took = time.time() - start
        wait_notified(arrivals, list(triggers.sent), 30)
        wait_until(lambda: chain.stored() - before >= load.sent + len(triggers.sent), 60, 0.2)
        lat = arrivals_of(arrivals, triggers.sent)
        cpu_b = cpu_seconds(chain.bridge.pid) - cpu_b
        cpu_e = cpu_seconds(chain.engine.pid) - cpu_e
        loop_e = cpu_seconds(chain.engine.pid, thread=True) - loop_e
        stored = chain.stored() - before
        expected = load.sent + len(triggers.sent)
        print(f"4. steady load {load.sent / took:,.0f} readings/s over {args.load_devices} devices for {took:.0f} s: "
              f"stored {stored:,}/{expected:,} (loss {expected - stored})")
        if lat:
            print(f"   reading -> notification at the HTTP receiver: p50 {percentile(lat, 50):.0f} ms, "
                  f"p99 {percentile(lat, 99):.0f} ms, max {max(lat):.0f} ms ({len(lat)} of {len(triggers.sent)} "
                  "notified)")
        for name, proc, cpu in (("bridge", chain.bridge, cpu_b), ("rule engine", chain.engine, cpu_e)):
            key = "bridge" if name == "bridge" else "engine"
            per = cpu / max(1, expected) * 1e6
            print(f"   {name} steady: CPU {cpu / took * 100:.0f}% of one core ({per:.0f} µs/reading), "
                  f"RSS {rss0[key] / 1024:.0f} -> {status(proc.pid, 'VmRSS') / 1024:.0f} MB, "
                  f"peak {status(proc.pid, 'VmHWM') / 1024:.0f} MB")
        print(f"   of the rule engine's: its event loop's thread {loop_e / max(1, expected) * 1e6:.0f} µs/reading, "
              f"other threads (apprise's HTTP sends) {(cpu_e - loop_e) / max(1, expected) * 1e6:.0f}; "
              f"{len(lat)} notifications, one a {expected / max(1, len(lat)):.0f} readings")
        print(f"   broker dropped counter: {dropped(broker)}; load average (1 min): {os.getloadavg()[0]:.2f}")

        # 5. the same steady load without the probe: what a reading costs, apart from what an alert costs
        cpu_b5, cpu_e5 = cpu_seconds(chain.bridge.pid), cpu_seconds(chain.engine.pid)
        before = chain.stored()
        # on the devices of phase 4: their series are known, as a site's are
        load = SteadyLoad(broker, args.load_devices, args.rate, args.seconds, prefix="load")
        start = time.time()
        load.join()
        took = time.time() - start
        wait_until(lambda: chain.stored() - before >= load.sent, 60, 0.2)
        cpu_b5 = cpu_seconds(chain.bridge.pid) - cpu_b5
        cpu_e5 = cpu_seconds(chain.engine.pid) - cpu_e5
        per_b, per_e = cpu_b5 / max(1, load.sent) * 1e6, cpu_e5 / max(1, load.sent) * 1e6
        alert = (cpu_e - per_e / 1e6 * expected) / max(1, len(lat)) * 1e3
        print(f"5. the same steady load without the probe's alerts ({load.sent / took:,.0f} readings/s for "
              f"{took:.0f} s): bridge {per_b:.0f} µs/reading, rule engine {per_e:.0f} µs/reading; so each of phase "
              f"4's notifications cost the rule engine about {alert:.1f} ms of CPU")
    finally:
        triggers.close()
        chain.stop()


def soak(args: argparse.Namespace, work: Path, broker: Mosquitto, influxd: Influxd, receiver_port: int,
         arrivals: Path) -> None:
    devices, period = args.soak_devices, 10.0
    db = influxd.create_database("bench_soak")
    chain = Chain(work, broker, influxd, db, receiver_port, args.engine)
    triggers = Triggers(broker)
    pub = paho.Client(CallbackAPIVersion.VERSION2, client_id="bench-soak")
    pub.max_inflight_messages_set(1000)
    pub.connect("127.0.0.1", broker.port)
    pub.loop_start()
    try:
        chain.start_engine()
        chain.start_bridge()
        assert chain.bridge is not None and chain.engine is not None
        print(f"soak: {devices:,} devices, one reading each per {period:.0f} s ({devices / period:,.0f}/s), "
              f"{args.soak_minutes:g} minutes")
        print("minute  bridge RSS MB  engine RSS MB  trigger latency p50/max ms  stored")
        start = time.monotonic()
        sent = 0
        minute = 0
        seq = 0
        rows = []
        while time.monotonic() - start < args.soak_minutes * 60:
            tick = time.monotonic()
            now = time.time()
            for d in range(devices):  # one round: each device once, spread over the period
                pub.publish(f"vigil/readings/soak-{d}/t0", json.dumps(
                    {"value": 20.0 + (d % 50) / 10, "ts": now + d * period / devices, "unit": "°C", "seq": seq}),
                    qos=1)
                sent += 1
                if d % 100 == 99:
                    triggers.fire(f"m{minute}-")
                    time.sleep(max(0.0, tick + (d + 1) * period / devices - time.monotonic()))
            seq += 1
            if time.monotonic() - start >= (minute + 1) * 60:
                minute += 1
                lat = arrivals_of(arrivals, {k: v for k, v in triggers.sent.items() if k.startswith(f"m{minute - 1}-")})
                row = (minute, status(chain.bridge.pid, "VmRSS") / 1024, status(chain.engine.pid, "VmRSS") / 1024,
                       percentile(lat, 50) if lat else float("nan"), max(lat) if lat else float("nan"))
                rows.append(row)
                print(f"{row[0]:6d}  {row[1]:13.1f}  {row[2]:13.1f}  {row[3]:10.0f} / {row[4]:<10.0f}  "
                      f"{chain.stored():,}", flush=True)
        wait_until(lambda: chain.stored() >= sent + len(triggers.sent), 60, 0.5)
        stored = chain.stored()
        print(f"sent {sent:,} readings + {len(triggers.sent)} triggers; stored {stored:,} "
              f"(loss {sent + len(triggers.sent) - stored}); broker dropped counter {dropped(broker)}")
        if len(rows) >= 2:
            first, last = rows[0], rows[-1]
            print(f"memory growth minute 1 -> {last[0]}: bridge {last[1] - first[1]:+.1f} MB, "
                  f"engine {last[2] - first[2]:+.1f} MB; latency p50 drift {last[3] - first[3]:+.0f} ms")
    finally:
        pub.loop_stop()
        pub.disconnect()
        triggers.close()
        chain.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--readings", type=int, default=60000, help="backlog for the throughput phase")
    ap.add_argument("--devices", type=int, default=100, help="devices (mosquitto_pub processes) of the backlog")
    ap.add_argument("--rate", type=float, default=1000, help="steady load of the latency phase, readings/s")
    ap.add_argument("--load-devices", type=int, default=50, help="devices of the steady load")
    ap.add_argument("--seconds", type=float, default=20, help="length of the latency phase")
    ap.add_argument("--soak", action="store_true", help="run the soak instead of the short run")
    ap.add_argument("--soak-devices", type=int, default=1000)
    ap.add_argument("--soak-minutes", type=float, default=10)
    ap.add_argument("--compare", default="", help="then the short run again with this vigil executable's engine")
    args = ap.parse_args()
    runs = [("this checkout's engine", VIGIL)] + ([(f"the engine of {args.compare}", args.compare)]
                                                  if args.compare and not args.soak else [])
    for label, engine in runs:
        if len(runs) > 1:
            print(f"== {label}", flush=True)
        args.engine = engine
        run(args)


def run(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="vigil-bench-e2e-") as tmp:
        work = Path(tmp)
        queue = shipped_broker_settings()
        broker = Mosquitto(work / "mq", extra_config="\n".join(queue) + "\nsys_interval 1\n")
        influxd = Influxd(work / "influxd")
        receiver_port = free_port()
        arrivals = work / "arrivals.txt"
        receiver = subprocess.Popen([sys.executable, "-c", RECEIVER, str(receiver_port), str(arrivals)])
        broker.start()
        influxd.start()
        print(f"Mosquitto with the shipped queue and TCP settings ({', '.join(queue)}); influxd 1.x; "
              f"{os.cpu_count()} CPUs; load average (1 min) {os.getloadavg()[0]:.2f}")
        try:
            if args.soak:
                soak(args, work, broker, influxd, receiver_port, arrivals)
            else:
                short_run(args, work, broker, influxd, receiver_port, arrivals)
        finally:
            influxd.stop()
            broker.stop()
            receiver.terminate()
            receiver.wait(5)


if __name__ == "__main__":
    main()

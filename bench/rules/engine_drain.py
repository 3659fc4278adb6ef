"""The rule engine alone on a private Mosquitto: µs of CPU per event draining a backlog, and at a steady rate.

1. drain: ``vigil alerting`` connected and caught up is stopped (SIGSTOP); ``--events`` normalized events
   are published on ``vigil/events/...`` over ``--series`` series (the broker queues them for the engine's
   persistent session), the last one crossing the threshold; the engine is continued (SIGCONT) and timed
   until its alert for that last event is published. Prints events/s and the engine's CPU per event
   (from /proc: only the draining is counted, not the start-up).
2. steady: ``--rate`` events/s for ``--seconds`` from a paho publisher in this process; every 100 ms an
   event on a fresh series crosses the threshold, and the time from its publish to the engine's retained
   alert state arriving here is the latency (p50/p99). Prints the engine's CPU per event.

``--compare PATH`` runs another ``vigil`` executable (e.g. main's, read-only) the same way, alternating
with this checkout's, ``--repeat`` times each, all in one run on one broker:

    .venv/bin/python bench/rules/engine_drain.py
    .venv/bin/python bench/rules/engine_drain.py --compare /work/main/.venv/bin/vigil --repeat 2
    .venv/bin/python bench/rules/engine_drain.py --events 50000 --rate 1000 --seconds 20
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

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench.proc import cpu_seconds, percentile  # noqa: E402
from tests.support.services import Mosquitto, shipped_broker_settings, wait_until  # noqa: E402

THRESHOLD = 100.0
RULES = f"rules:\n  - name: hot\n    match: {{metric: temperature}}\n    above: {THRESHOLD}\n"


def event(device: str, value: float, ts: float, seq: int) -> bytes:
    """An event as the bridge republishes it."""
    return json.dumps({"device": device, "sensor": "t0", "metric": "temperature", "value": value, "ts": ts,
                       "unit": "°C", "seq": seq, "labels": {}, "source": "vigil"}, separators=(",", ":")).encode()


class Watcher:
    """Notes when each series' alert state arrives (retained on vigil/alerts/hot/<series>)."""

    def __init__(self, broker: Mosquitto, name: str) -> None:
        self.seen: dict[str, float] = {}
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"watch-{name}")
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", broker.port)
        self.client.subscribe("vigil/alerts/hot/#", qos=0)
        self.client.loop_start()

    def _on_message(self, c: paho.Client, u: object, m: paho.MQTTMessage) -> None:
        if m.payload and not m.retain:  # vigil/alerts/hot/<device>/t0/temperature
            self.seen.setdefault(m.topic.split("/")[3], time.time())

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def publisher(broker: Mosquitto, name: str) -> paho.Client:
    c = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"pub-{name}")
    c.max_inflight_messages_set(0)
    c.max_queued_messages_set(0)
    c.connect("127.0.0.1", broker.port)
    c.loop_start()
    return c


PROFILE = ""  # --profile: the engine runs under cProfile, its profile written here at its end


class Engine:
    def __init__(self, vigil: str, broker: Mosquitto, work: Path, name: str) -> None:
        self.work = work / name
        self.work.mkdir()
        rules = self.work / "rules.yaml"
        rules.write_text(RULES)
        self.log = self.work / "engine.log"
        with self.log.open("ab") as log:
            prefix = [sys.executable, "-m", "cProfile", "-o", f"{PROFILE}.{name}", vigil] if PROFILE else [vigil]
            self.proc = subprocess.Popen(
                [*prefix, "alerting", "--broker", broker.url, "--rules", str(rules), "--state",
                 str(self.work / "alerts.db"), "--client-id", f"drain-{name}"], stdout=log,
                stderr=subprocess.STDOUT, cwd=self.work)
        if not wait_until(lambda: b"caught up with the backlog" in self.log.read_bytes(), 60):
            raise SystemExit(f"the engine did not start:\n{self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGCONT)
        self.proc.terminate()
        self.proc.wait(20)


def drain(vigil: str, broker: Mosquitto, work: Path, name: str, n: int, series: int) -> tuple[float, float]:
    """(events/s, CPU µs per event) of the engine draining a backlog of n events."""
    engine = Engine(vigil, broker, work, name)
    watcher = Watcher(broker, name)
    pub = publisher(broker, name)
    try:
        engine.proc.send_signal(signal.SIGSTOP)
        now = time.time()
        info = None
        for i in range(n - 1):
            info = pub.publish(f"vigil/events/d{i % series}/temperature", event(f"d{i % series}", 20 + i % 7, now, i),
                               qos=1)
        info = pub.publish("vigil/events/end/temperature", event("end", THRESHOLD + 50, now, 0), qos=1)
        info.wait_for_publish(120)
        cpu = cpu_seconds(engine.proc.pid)
        started = time.perf_counter()
        engine.proc.send_signal(signal.SIGCONT)
        if not wait_until(lambda: "end" in watcher.seen, 600, 0.005):
            raise SystemExit(f"{name}: the last event was not evaluated:\n{engine.log.read_text()[-2000:]}")
        elapsed = watcher.seen["end"] - (time.time() - (time.perf_counter() - started))
        cpu = cpu_seconds(engine.proc.pid) - cpu
        return n / elapsed, cpu / n * 1e6
    finally:
        pub.loop_stop()
        pub.disconnect()
        watcher.close()
        engine.stop()


def steady(vigil: str, broker: Mosquitto, work: Path, name: str, rate: float, seconds: float,
           series: int) -> tuple[float, list[float], int]:
    """(CPU µs per event, latencies in ms, events sent) at a steady rate with a trigger every 100 ms."""
    engine = Engine(vigil, broker, work, name)
    watcher = Watcher(broker, name)
    pub = publisher(broker, name)
    sent: dict[str, float] = {}
    stop = threading.Event()
    count = [0]

    def triggers() -> None:
        k = 0
        while not stop.is_set():
            device = f"trig{k}"
            k += 1
            sent[device] = time.time()
            pub.publish(f"vigil/events/{device}/temperature", event(device, THRESHOLD + 50, time.time(), 0), qos=1)
            time.sleep(0.1)

    try:
        cpu, sys_cpu = cpu_seconds(engine.proc.pid), cpu_seconds(engine.proc.pid, system=True)
        t = threading.Thread(target=triggers)
        t.start()
        start = time.monotonic()
        while (elapsed := time.monotonic() - start) < seconds:
            due = int(elapsed * rate)
            now = time.time()
            while count[0] < due:
                i = count[0]
                pub.publish(f"vigil/events/s{i % series}/temperature", event(f"s{i % series}", 20 + i % 7, now, i),
                            qos=1)
                count[0] += 1
            time.sleep(0.002)
        stop.set()
        t.join()
        wait_until(lambda: all(d in watcher.seen for d in sent), 30, 0.05)
        cpu = cpu_seconds(engine.proc.pid) - cpu
        sys_cpu = cpu_seconds(engine.proc.pid, system=True) - sys_cpu
        print(f"   (of which in the kernel: {sys_cpu / cpu * 100:.0f}%)")
        lat = [(watcher.seen[d] - t0) * 1000 for d, t0 in sent.items() if d in watcher.seen]
        total = count[0] + len(sent)
        return cpu / total * 1e6, lat, total
    finally:
        pub.loop_stop()
        pub.disconnect()
        watcher.close()
        engine.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=30000, help="backlog to drain")
    ap.add_argument("--series", type=int, default=1000)
    ap.add_argument("--rate", type=float, default=1000, help="steady events/s")
    ap.add_argument("--seconds", type=float, default=15, help="length of the steady phase (0: none)")
    ap.add_argument("--vigil", default=str(Path(sys.executable).with_name("vigil")), help="the engine under test")
    ap.add_argument("--compare", default="", help="another vigil executable, run the same way (e.g. main's)")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--profile", default="", help="run the engine under cProfile; its profiles go to PROFILE.<run>")
    args = ap.parse_args()
    global PROFILE
    PROFILE = args.profile
    runs = [("this", args.vigil)] + ([("compare", args.compare)] if args.compare else [])
    with tempfile.TemporaryDirectory(prefix="vigil-bench-drain-") as tmp:
        work = Path(tmp)
        broker = Mosquitto(work / "mq", extra_config="\n".join(shipped_broker_settings()))
        broker.start()
        print(f"Mosquitto with the shipped queue settings; {os.cpu_count()} CPUs; load average (1 min) "
              f"{os.getloadavg()[0]:.2f}")
        try:
            k = 0
            for r in range(args.repeat):
                for label, vigil in runs:
                    k += 1
                    rate, per = drain(vigil, broker, work, f"d{k}", args.events, args.series)
                    print(f"[{label} {r + 1}] drain {args.events:,} events: {rate:,.0f} events/s, "
                          f"engine CPU {per:.1f} µs/event", flush=True)
                    if args.seconds > 0:
                        per, lat, total = steady(vigil, broker, work, f"s{k}", args.rate, args.seconds, args.series)
                        p = (f"p50 {percentile(lat, 50):.1f} ms, p99 {percentile(lat, 99):.1f} ms, "
                             f"{len(lat)} alerts" if lat else "no alert arrived")
                        print(f"[{label} {r + 1}] steady {args.rate:,.0f} events/s for {args.seconds:g} s "
                              f"({total:,} events): engine CPU {per:.1f} µs/event; event -> alert state {p}; "
                              f"load average {os.getloadavg()[0]:.2f}", flush=True)
        finally:
            broker.stop()


if __name__ == "__main__":
    main()

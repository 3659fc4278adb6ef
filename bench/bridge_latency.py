"""The bridge at rest and under a steady load: idle RSS, CPU per reading, reading -> stored latency.

    .venv/bin/python bench/bridge_latency.py [--rate 1000] [--seconds 20] [--rounds 2] [--before /work/main]

One run on private servers (Mosquitto with the shipped queue settings, influxd 1.x, loopback, free
ports). Each round starts the bridge of each checkout in turn (``--before DIR``: DIR/.venv/bin/vigil,
read only; and this checkout's), alternating which goes first, and measures:

- idle RSS: VmRSS 5 s after the bridge is connected, nothing received yet;
- steady CPU per reading: the bridge's CPU time while ``--rate`` readings/s arrive from 50 devices
  (C mosquitto_pub processes) for ``--seconds``, until all are stored, divided by the readings;
- latency: every 50 ms a probe reading (from this process, paho, QoS 1) whose event is awaited on
  ``vigil/events/probe/#``; the bridge republishes an event only once it is stored, so the time from
  publishing the probe to its event is reading -> stored (and announced), p50 and p99;
- loss: readings stored in influxd against readings sent.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.bridge import forget_session  # noqa: E402
from bench.e2e.run import SteadyLoad  # noqa: E402
from bench.proc import cpu_seconds, percentile, status  # noqa: E402
from tests.support.services import Influxd, Mosquitto, shipped_broker_settings, wait_until  # noqa: E402


class Probes:
    """Probe readings out on vigil/readings/probe/t0, their events back on vigil/events/probe/#."""

    def __init__(self, broker: Mosquitto) -> None:
        self.sent: dict[int, float] = {}
        self.back: dict[int, float] = {}
        self.k = 0
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id="bench-probes")
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", broker.port)
        self.client.subscribe("vigil/events/probe/#", qos=0)
        self.client.loop_start()

    def _on_message(self, client: paho.Client, userdata: object, message: paho.MQTTMessage) -> None:
        seq = json.loads(message.payload).get("seq")
        if seq in self.sent and seq not in self.back:
            self.back[seq] = time.time()

    def fire(self) -> None:
        self.k += 1
        now = time.time()
        self.sent[self.k] = now
        self.client.publish("vigil/readings/probe/t0",
                            json.dumps({"value": 21.5, "ts": now, "unit": "°C", "seq": self.k}), qos=1)

    def latencies(self) -> list[float]:
        return [(self.back[k] - t) * 1000 for k, t in self.sent.items() if k in self.back]

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def stored(influxd: Influxd, db: str) -> int:
    res = influxd.query('SELECT count("value") FROM "temperature"', db=db)
    series = res["results"][0].get("series")
    return int(series[0]["values"][0][1]) if series else 0


def measure(vigil: str, name: str, broker: Mosquitto, influxd: Influxd, work: Path, args: argparse.Namespace,
            run: int) -> dict[str, float]:
    db = influxd.create_database(f"lat_{name}_{run}")
    log = work / f"bridge-{name}-{run}.log"
    client_id = f"bench-lat-{name}-{run}"
    argv = [vigil, "bridge", "--broker", broker.url, "--store", influxd.url(db), "--client-id", client_id,
            "--data-dir", str(work / f"data-{name}-{run}")]
    if args.linger is not None and name == "after":
        conf = work / f"linger-{run}.yaml"
        conf.write_text(f"bridge:\n  batch_linger: {args.linger}\n")
        argv += ["-c", str(conf)]
    with log.open("ab") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=work)
    probes = None
    try:
        if not wait_until(lambda: b"bridge connected" in log.read_bytes(), 30):
            raise SystemExit(f"the {name} bridge did not start:\n{log.read_text()[-2000:]}")
        time.sleep(5)
        idle = status(proc.pid, "VmRSS") / 1024
        probes = Probes(broker)
        cpu0 = cpu_seconds(proc.pid)
        load = SteadyLoad(broker, 50, args.rate, args.seconds, prefix=f"{name}{run}")
        start = time.time()
        while time.time() - start < args.seconds:
            probes.fire()
            time.sleep(0.05)
        load.join()
        took = time.time() - start
        expected = load.sent + len(probes.sent)
        wait_until(lambda: stored(influxd, db) >= expected, 60, 0.2)
        cpu = cpu_seconds(proc.pid) - cpu0
        lat = probes.latencies()
        got = stored(influxd, db)
        return {"idle_mb": idle, "us": cpu / expected * 1e6, "rate": load.sent / took,
                "p50": percentile(lat, 50), "p99": percentile(lat, 99), "loss": expected - got,
                "probes": len(lat), "of": len(probes.sent), "peak_mb": status(proc.pid, "VmHWM") / 1024}
    finally:
        if probes is not None:
            probes.close()
        proc.terminate()
        proc.wait(20)
        forget_session(broker, client_id)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rate", type=float, default=1000, help="steady load, readings/s")
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--linger", type=float, default=None, help="bridge.batch_linger of this checkout's bridge, s")
    ap.add_argument("--before", metavar="DIR", default="", help="another checkout with its .venv, run as 'before'")
    args = ap.parse_args()
    variants = [("after", str(Path(sys.executable).with_name("vigil")))]
    if args.before:
        variants.insert(0, ("before", str(Path(args.before).resolve() / ".venv/bin/vigil")))
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        broker = Mosquitto(work / "mq", extra_config="\n".join(shipped_broker_settings()) + "\n")
        broker.start()
        influxd = Influxd(work / "influxd")
        influxd.start()
        results: dict[str, list[dict[str, float]]] = {name: [] for name, _ in variants}
        try:
            for r in range(args.rounds):
                for name, vigil in (variants if r % 2 == 0 else variants[::-1]):
                    m = measure(vigil, name, broker, influxd, work, args, r)
                    results[name].append(m)
                    print(f"round {r + 1} {name:6s}: idle RSS {m['idle_mb']:.1f} MB; steady {m['rate']:,.0f}/s: "
                          f"{m['us']:.0f} µs/reading, reading->stored p50 {m['p50']:.1f} ms p99 {m['p99']:.1f} ms "
                          f"({m['probes']:.0f}/{m['of']:.0f} probes), loss {m['loss']:.0f}, "
                          f"peak RSS {m['peak_mb']:.1f} MB", flush=True)
        finally:
            influxd.stop()
            broker.stop()
        for name, ms in results.items():
            med = {k: statistics.median(m[k] for m in ms) for k in ms[0]}
            print(f"median {name:6s}: idle RSS {med['idle_mb']:.1f} MB, {med['us']:.0f} µs/reading, "
                  f"p50 {med['p50']:.1f} ms, p99 {med['p99']:.1f} ms, loss {sum(m['loss'] for m in ms):.0f}")


if __name__ == "__main__":
    main()

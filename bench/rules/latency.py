"""End-to-end latency: an event published -> the notification arriving at a local HTTP receiver.

Starts a private Mosquitto and a real ``vigil alerting`` process, publishes normalized events at a
steady rate (2,000/s by default, with the C ``mosquitto_pub``) over 1,000 series, and every 100 ms
one event on a fresh series that crosses a threshold. apprise delivers each alert with ``json://``
to an HTTP server in another process, which notes when it arrives. Prints p50/p99/max latency and
whether any notification was lost.

    .venv/bin/python bench/rules/latency.py
    .venv/bin/python bench/rules/latency.py --rate 2000 --seconds 30
    .venv/bin/python bench/rules/latency.py --protocol 3.1.1      # the engine on MQTT 3.1.1
    .venv/bin/python bench/rules/latency.py --via-bridge          # readings through vigil bridge (SQLite)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import paho.mqtt.client as paho

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench.proc import cpu_seconds, percentile  # noqa: E402
from tests.support.services import Mosquitto, free_port  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rate", type=int, default=2000, help="events per second")
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--series", type=int, default=1000)
    ap.add_argument("--trigger-every", type=float, default=0.1, help="seconds between alerting events")
    ap.add_argument("--protocol", default="5", choices=["5", "3.1.1"], help="the engine's MQTT version")
    ap.add_argument("--via-bridge", action="store_true",
                    help="publish readings (vigil/readings/...) through a real vigil bridge storing into SQLite")
    args = ap.parse_args()

    # The receiver runs in its own process, so the publisher here cannot delay its clock readings.
    http_port = free_port()
    tmp = Path(tempfile.mkdtemp(prefix="vigil-bench-"))
    arrivals = tmp / "arrivals.txt"
    receiver = subprocess.Popen([sys.executable, "-c", RECEIVER, str(http_port), str(arrivals)])
    broker = Mosquitto(tmp / "mosquitto")
    broker.start()
    rules = tmp / "rules.yaml"
    rules.write_text(f"""
receivers:
  bench: ["json://127.0.0.1:{http_port}/hook"]
grouping: {{group_by: [device], group_wait: 0s, group_interval: 1s}}
rules:
  - name: hot
    match: {{metric: temperature}}
    above: 100
    notify: bench
""")
    (tmp / "vigil.yaml").write_text(f'mqtt: {{url: "{broker.url}", protocol: "{args.protocol}"}}\n')
    log = (tmp / "engine.log").open("wb")
    prof = ["-m", "cProfile", "-o", os.environ["BENCH_PROFILE"]] if os.environ.get("BENCH_PROFILE") else []
    engine = subprocess.Popen([sys.executable, *prof, "-m", "vigil.app.cli", "alerting", "-c", str(tmp / "vigil.yaml"),
                               "--rules", str(rules), "--state", str(tmp / "alerts.db")],
                              stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    try:
        deadline = time.time() + 20
        while b"connected to the broker" not in (tmp / "engine.log").read_bytes():
            if time.time() > deadline or engine.poll() is not None:
                raise SystemExit("the engine did not start:\n" + (tmp / "engine.log").read_text())
            time.sleep(0.05)
        bridge = None
        if args.via_bridge:
            blog = (tmp / "bridge.log").open("wb")
            bridge = subprocess.Popen([sys.executable, "-m", "vigil.app.cli", "bridge", "-c", str(tmp / "vigil.yaml"),
                                       "--store", f"sqlite:///{tmp}/vigil.db", "--data-dir", str(tmp / "data")],
                                      stdout=blog, stderr=subprocess.STDOUT, cwd=ROOT)
            time.sleep(3)
        client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="bench-trigger")
        client.connect("127.0.0.1", broker.port)
        client.loop_start()
        # The steady load comes from the C client (mosquitto_pub -l: one message per line), so a
        # Python publisher's CPU does not compete with the engine; Python only writes the lines.
        bg_topic = "vigil/readings/bg/t0" if args.via_bridge else "vigil/events/bg/temperature"
        background = subprocess.Popen(["mosquitto_pub", "-p", str(broker.port), "-q", "1", "-l",
                                       "-t", bg_topic, "-i", "bench-load"], stdin=subprocess.PIPE)
        assert background.stdin is not None
        sent: dict[str, float] = {}
        total = int(args.rate * args.seconds)
        start = time.time()
        next_trigger = start
        k = i = 0
        cpu0 = cpu_seconds(engine.pid)
        load0 = os.getloadavg()[0]
        while i < total:
            now = time.time()
            due = min(total, int((now - start) * args.rate))
            lines = []
            while i < due:
                if args.via_bridge:  # one topic for mosquitto_pub -l: one series, a reading each
                    lines.append(json.dumps({"value": 20.0 + (i % 7), "ts": now + i * 1e-6, "unit": "°C",
                                             "metric": "temperature", "seq": i}))
                else:
                    lines.append(json.dumps({"device": f"dev{i % args.series}", "sensor": "t0",
                                             "metric": "temperature", "value": 20.0 + (i % 7), "ts": now}))
                i += 1
            if lines:
                background.stdin.write(("\n".join(lines) + "\n").encode())
                background.stdin.flush()
            if now >= next_trigger:
                device = f"trig{k}"
                k += 1
                next_trigger += args.trigger_every
                if args.via_bridge:
                    body = json.dumps({"value": 150.0, "ts": now, "unit": "°C", "metric": "temperature", "seq": 1})
                    topic = f"vigil/readings/{device}/t0"
                else:
                    body = json.dumps({"device": device, "sensor": "t0", "metric": "temperature", "value": 150.0,
                                       "ts": now, "unit": "°C"})
                    topic = f"vigil/events/{device}/temperature"
                sent[device] = time.time()
                client.publish(topic, body, qos=1)
            time.sleep(0.005)
        background.stdin.close()
        background.wait(30)
        total += k
        took = time.time() - start
        wait_until = time.time() + 10
        arrived: dict[str, float] = {}
        while time.time() < wait_until:
            arrived = _read_arrivals(arrivals)
            if len(arrived) >= len(sent):
                break
            time.sleep(0.1)
        cpu = cpu_seconds(engine.pid) - cpu0
        client.loop_stop()
        client.disconnect()
        lat = [(arrived[d] - t) * 1000 for d, t in sent.items() if d in arrived]
        if os.environ.get("BENCH_TRACE"):
            print("latencies in publish order (ms):", [round(x) for x in lat])
        print(f"load average of this machine (1 min) before/after: {load0:.2f} / {os.getloadavg()[0]:.2f} "
              "(other work on it shows up in the tail)")
        print(f"published {total} events in {took:.1f}s ({total / took:,.0f}/s), {len(sent)} of them alerting")
        print(f"notifications: {len(lat)} of {len(sent)} arrived ({len(sent) - len(lat)} lost)")
        if lat:
            print(f"latency publish -> HTTP receiver: p50 {percentile(lat, 50):.1f} ms, "
                  f"p99 {percentile(lat, 99):.1f} ms, max {max(lat):.1f} ms")
        print(f"engine CPU: {cpu:.1f}s for {took:.1f}s ({cpu / took * 100:.0f}% of one core, "
              f"{cpu / total * 1e6:.0f} µs per event incl. MQTT)")
    finally:
        if "bridge" in locals() and bridge is not None:
            bridge.send_signal(signal.SIGTERM)
            bridge.wait(20)
        engine.send_signal(signal.SIGTERM)
        engine.wait(10)
        broker.stop()
        receiver.terminate()
        receiver.wait(5)
        if not os.environ.get("BENCH_KEEP"):
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print("kept", tmp)


RECEIVER = """
import json, sys, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
out = open(sys.argv[2], "a", buffering=1)
class H(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        now = time.time()
        title = json.loads(body).get("title", "")
        out.write(title.rsplit(" ", 1)[-1].split("/")[0] + " " + repr(now) + "\\n")
        self.send_response(200)
        self.end_headers()
    def log_message(self, *a):
        pass
ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"""


def _read_arrivals(path: Path) -> dict[str, float]:
    out: dict[str, float] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            device, _, when = line.partition(" ")
            if when:
                out.setdefault(device, float(when))
    return out


if __name__ == "__main__":
    main()

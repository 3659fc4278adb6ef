"""What watching costs: CPU per reading of `vigil bridge`, `vigil alerting` and `vigil dashboard`, 0 and N viewers.

    .venv/bin/python bench/dashboard/watch_cost.py                       # 200 readings/s over 500 series
    .venv/bin/python bench/dashboard/watch_cost.py --warmup 60 --window 300
    .venv/bin/python bench/dashboard/watch_cost.py --code /path/to/other/checkout   # the same bench, other code

In one run, on private servers (Mosquitto with the shipped queue settings, influxd 1.x, loopback, free
ports), the three server parts run as separate processes while this process publishes ``--rate``
readings a second (QoS 1) spread over ``--series`` series. After ``--warmup`` seconds it measures a
window of ``--window`` seconds with no viewer, then starts ``--viewers`` plain HTTP clients (in one
separate process, not measured) reading ``GET /api/v1/live``, waits a few seconds, and measures a
second window. Each part's figure is its CPU seconds (user + system, from /proc) in the window
divided by the readings published in that window. ``--code`` runs the parts from another checkout
(its directory goes first on PYTHONPATH), so that one script measures before and after a change.
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
import urllib.request
from pathlib import Path
from typing import Optional

import httpx
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench.proc import cpu_seconds  # noqa: E402
from tests.support.services import Influxd, Mosquitto, free_port, shipped_broker_settings, wait_until  # noqa: E402

TOKEN = "bench-watch-token-0123456789"
PARTS = ("bridge", "alerting", "dashboard")
RUN_VIGIL = "import sys; from vigil.app.cli import main; sys.exit(main())"


class Load:
    """``rate`` readings a second over ``series`` series (``devices`` x 5 sensors), from a paho thread."""

    def __init__(self, broker: Mosquitto, rate: float, series: int) -> None:
        self.rate = rate
        self.topics = [f"vigil/readings/watch-{i // 5}/s{i % 5}" for i in range(series)]
        self.sent = 0
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-watch-{os.getpid()}")
        self.client.max_inflight_messages_set(1000)
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="bench-watch-load", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        start = time.monotonic()
        n = len(self.topics)
        while not self._stop.is_set():
            due = int((time.monotonic() - start) * self.rate)
            now = time.time()
            while self.sent < due:
                i = self.sent
                body = json.dumps({"value": round(20.0 + (i * 7919 % 1000) / 100, 2), "ts": now, "unit": "°C",
                                   "seq": i // n})
                self.client.publish(self.topics[i % n], body, qos=1)
                self.sent += 1
            time.sleep(0.005)

    def stop(self) -> None:
        self._stop.set()
        self.thread.join(5)
        self.client.loop_stop()
        self.client.disconnect()


class Parts:
    """The three server parts as processes, each logging into ``work``."""

    def __init__(self, work: Path, broker: Mosquitto, influxd: Influxd, code: Optional[Path]) -> None:
        self.work = work
        db = influxd.create_database("bench_watch")
        store = influxd.url(db)
        self.bridge_metrics = free_port()
        self.listen = f"127.0.0.1:{free_port()}"
        (work / "rules.yaml").write_text(f"""
receivers:
  nowhere: ["json://127.0.0.1:{free_port()}/hook"]
rules:
  - name: boiling
    match: {{metric: temperature}}
    above: 1000
    notify: nowhere
""")
        (work / "vigil.yaml").write_text(json.dumps({
            "data_dir": str(work / "data"),
            "dashboard": {"listen": self.listen, "session_secret": "bench-session-secret-0123456789",
                          "tokens": [{"name": "watch", "token": TOKEN, "role": "read-only"}],
                          "rules": str(work / "rules.yaml")},
        }))
        common = ["--broker", broker.url]
        self.argv = {
            "bridge": ["bridge", *common, "--store", store, "--client-id", "bench-bridge",
                       "--data-dir", str(work / "bridge"), "--metrics-listen", f"127.0.0.1:{self.bridge_metrics}"],
            "alerting": ["alerting", *common, "--rules", str(work / "rules.yaml"),
                         "--state", str(work / "alerts.db"), "--client-id", "bench-alerting"],
            "dashboard": ["dashboard", "-c", str(work / "vigil.yaml"), *common, "--store", store],
        }
        self.env = dict(os.environ)
        if code is not None:
            self.env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(code), self.env.get("PYTHONPATH")]))
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self) -> None:
        for name in PARTS:
            with (self.work / f"{name}.log").open("ab") as log:
                self.procs[name] = subprocess.Popen([sys.executable, "-c", RUN_VIGIL, *self.argv[name]], env=self.env,
                                                    stdout=log, stderr=subprocess.STDOUT, cwd=self.work)
        checks = {
            "bridge": lambda: _get(f"http://127.0.0.1:{self.bridge_metrics}/metrics") is not None,
            "alerting": lambda: b"connected to the broker" in (self.work / "alerting.log").read_bytes(),
            "dashboard": lambda: _get(f"http://{self.listen}/api/v1/health") is not None,
        }
        for name, check in checks.items():
            if not wait_until(check, 60, 0.2):
                self.stop()
                raise SystemExit(f"{name} did not start:\n" + (self.work / f"{name}.log").read_text()[-3000:])

    def cpu(self) -> dict[str, float]:
        return {name: cpu_seconds(p.pid) for name, p in self.procs.items()}

    def dashboard_messages(self) -> int:
        body = _get(f"http://{self.listen}/api/v1/metrics", TOKEN) or b""
        for line in body.decode().splitlines():
            if line.startswith("vigil_dashboard_mqtt_messages_total "):
                return int(float(line.split()[1]))
        return -1

    def stop(self) -> None:
        for p in self.procs.values():
            p.terminate()
        for p in self.procs.values():
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()


def _get(url: str, token: str = "") -> Optional[bytes]:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return bytes(r.read())
    except OSError:
        return None


def viewers_main(base: str, n: int, report: Path) -> None:
    """The viewers' process: ``n`` threads, each a client streaming /api/v1/live, counting what arrives."""
    counts = [[0, 0] for _ in range(n)]  # bytes, SSE messages
    stop = threading.Event()

    def view(i: int) -> None:
        with httpx.Client(base_url=base, timeout=30, headers={"Authorization": f"Bearer {TOKEN}"}) as c, \
                c.stream("GET", "/api/v1/live") as r:
            r.raise_for_status()
            for chunk in r.iter_bytes():
                counts[i][0] += len(chunk)
                counts[i][1] += chunk.count(b"\n\n")
                if stop.is_set():
                    return

    threads = [threading.Thread(target=view, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()

    def dump(*_: object) -> None:
        report.write_text(json.dumps(counts))

    signal.signal(signal.SIGUSR1, dump)
    signal.signal(signal.SIGTERM, lambda *_: (dump(), stop.set(), sys.exit(0)))
    while True:
        time.sleep(1)


def window(name: str, parts: Parts, load: Load, seconds: float) -> dict[str, float]:
    cpu0, sent0, got0, t0 = parts.cpu(), load.sent, parts.dashboard_messages(), time.monotonic()
    time.sleep(seconds)
    cpu1, sent1, got1, t1 = parts.cpu(), load.sent, parts.dashboard_messages(), time.monotonic()
    n = max(1, sent1 - sent0)
    per = {k: (cpu1[k] - cpu0[k]) / n * 1e6 for k in PARTS}
    print(f"{name:<12} {n / (t1 - t0):7.0f}/s {n:8d}  " + "  ".join(f"{per[k]:8.0f} µs" for k in PARTS)
          + f"   (dashboard took in {got1 - got0:,}; load average {os.getloadavg()[0]:.2f})", flush=True)
    return per


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rate", type=float, default=200, help="readings a second")
    ap.add_argument("--series", type=int, default=500)
    ap.add_argument("--viewers", type=int, default=3)
    ap.add_argument("--warmup", type=float, default=60, help="seconds before the first window")
    ap.add_argument("--window", type=float, default=120, help="seconds of each measured window")
    ap.add_argument("--code", type=Path, help="a checkout whose code the three parts run (default: this one)")
    ap.add_argument("--viewers-process", nargs=3, metavar=("BASE", "N", "REPORT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.viewers_process:
        viewers_main(args.viewers_process[0], int(args.viewers_process[1]), Path(args.viewers_process[2]))
        return
    with tempfile.TemporaryDirectory(prefix="vigil-bench-watch-") as tmp:
        work = Path(tmp)
        broker = Mosquitto(work / "mq", extra_config="\n".join(shipped_broker_settings()))
        influxd = Influxd(work / "influxd")
        broker.start()
        influxd.start()
        parts = Parts(work, broker, influxd, args.code)
        load: Optional[Load] = None
        viewers: Optional[subprocess.Popen[bytes]] = None
        try:
            parts.start()
            code = args.code or ROOT
            head = subprocess.run(["git", "-C", str(code), "log", "-1", "--format=%h %s"], capture_output=True,
                                  text=True).stdout.strip()
            print(f"code: {code} ({head[:70]}); {os.cpu_count()} CPUs; {args.rate:g} readings/s over "
                  f"{args.series} series; warm-up {args.warmup:g} s, windows of {args.window:g} s", flush=True)
            load = Load(broker, args.rate, args.series)
            time.sleep(args.warmup)
            print(f"{'viewers':<12} {'rate':>9} {'readings':>8}  " + "  ".join(f"{k:>11}" for k in PARTS))
            quiet = window("0", parts, load, args.window)
            report = work / "viewers.json"
            viewers = subprocess.Popen([sys.executable, __file__, "--viewers-process", f"http://{parts.listen}",
                                        str(args.viewers), str(report)])
            time.sleep(5)
            watched = window(str(args.viewers), parts, load, args.window)
            viewers.send_signal(signal.SIGUSR1)
            wait_until(report.exists, 5)
            counts = json.loads(report.read_text()) if report.exists() else []
            print(f"viewers received (bytes, SSE messages) each: {counts}")
            d, b = watched["dashboard"], watched["bridge"]
            print(f"dashboard with {args.viewers} viewers / bridge: {d / b:.2f} (target at most 0.5); "
                  f"{args.viewers} viewers / none: {d / quiet['dashboard']:.2f} (target at most 1.2)")
        finally:
            if viewers is not None:
                viewers.terminate()
                viewers.wait(10)
            if load is not None:
                load.stop()
            parts.stop()
            influxd.stop()
            broker.stop()


if __name__ == "__main__":
    main()

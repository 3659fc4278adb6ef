"""Why deploy/mosquitto/mosquitto.conf sets its queue limits: the bridge under a burst, with
Mosquitto's defaults and with the shipped settings.

    .venv/bin/python bench/mosquitto_queue.py [--readings 20000] [--devices 100]

For each broker configuration, on private servers (Mosquitto, influxd 1.x) on loopback ports:

- live: the real `vigil bridge` runs while N readings arrive as fast as C mosquitto_pub
  processes send them (QoS 1, one process per device);
- away: the same burst arrives while the bridge is stopped (a restart, an upgrade), then the
  bridge starts again and drains what the broker kept in its persistent session.

Prints, per case: readings published, readings stored in InfluxDB, the broker's own drop
counter ($SYS/broker/publish/messages/dropped) and the seconds until the last one was stored.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.support.services import Influxd, Mosquitto, free_port, wait_until

ROOT = Path(__file__).resolve().parent.parent
VIGIL = str(Path(sys.executable).with_name("vigil"))
QUEUE_KEYS = ("max_inflight_messages", "max_queued_messages", "max_queued_bytes", "max_packet_size",
              "persistent_client_expiration")


def shipped_queue_settings() -> str:
    """The queue lines of deploy/mosquitto/mosquitto.conf, as shipped."""
    lines = (ROOT / "deploy" / "mosquitto" / "mosquitto.conf").read_text().splitlines()
    return "\n".join(line for line in lines if line.split(" ", 1)[0] in QUEUE_KEYS)


def broker_conf(workdir: Path, queue: str) -> Path:
    conf = workdir / "bench.conf"
    conf.write_text(f"allow_anonymous true\npersistence true\npersistence_location {workdir}/\n"
                    f"sys_interval 1\n{queue}\n")
    return conf


def publish_burst(broker: Mosquitto, n: int, devices: int, seq0: int, workdir: Path) -> float:
    """n readings over `devices` topics, one mosquitto_pub process per device at once; returns seconds."""
    per = n // devices
    now = time.time()
    procs = []
    started = time.perf_counter()
    for d in range(devices):
        f = workdir / f"dev{d}.txt"
        f.write_text("".join(json.dumps({"value": 4 + (i % 30) / 10, "ts": now - per + i, "unit": "°C",
                                         "seq": seq0 + i}) + "\n" for i in range(per)))
        with f.open("rb") as stdin:
            procs.append(subprocess.Popen(
                ["mosquitto_pub", "-p", str(broker.port), "-q", "1", "-l", "-V", "5", "-i", f"gen-{d}",
                 "-t", f"vigil/readings/dev-{d}/t0"], stdin=stdin))
    for p in procs:
        p.wait()
    return time.perf_counter() - started


def start_bridge(broker: Mosquitto, store: str, workdir: Path, metrics: int) -> subprocess.Popen[bytes]:
    log = (workdir / "bridge.log").open("ab")
    p = subprocess.Popen([VIGIL, "bridge", "--broker", broker.url, "--store", store, "--client-id", "bench-bridge",
                          "--data-dir", str(workdir / "bridge"), "--metrics-listen", f"127.0.0.1:{metrics}"],
                         stdout=log, stderr=subprocess.STDOUT)
    assert wait_until(lambda: _stored_metric(metrics) is not None, 30), "the bridge did not start"
    time.sleep(0.5)  # subscribed
    return p


def _stored_metric(port: int) -> int | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
            text = r.read().decode()
    except OSError:
        return None
    m = re.search(r"^vigil_bridge_stored_total (\d+)", text, flags=re.MULTILINE)
    return int(m.group(1)) if m else 0


def stored_in(influxd: Influxd, db: str) -> int:
    res = influxd.query('SELECT count("value") FROM "temperature"', db=db)["results"][0]
    return int(res["series"][0]["values"][0][1]) if "series" in res else 0


def dropped(broker: Mosquitto) -> int:
    out = subprocess.run(["mosquitto_sub", "-p", str(broker.port), "-t", "$SYS/broker/publish/messages/dropped",
                          "-C", "1", "-W", "5"], capture_output=True, text=True)
    return int(out.stdout.strip() or 0)


def settle(influxd: Influxd, db: str, n: int, started: float) -> tuple[int, float]:
    """Wait until all n are stored or the count stops growing for 5 s; (stored, seconds to the last)."""
    last, last_change = -1, time.perf_counter()
    while True:
        count = stored_in(influxd, db)
        if count != last:
            last, last_change = count, time.perf_counter()
        if count >= n or time.perf_counter() - last_change > 5:
            return count, last_change - started
        time.sleep(0.2)


def run_case(name: str, queue: str, influxd: Influxd, n: int, devices: int, tmp: Path) -> list[str]:
    rows = []
    for mode in ("live", "away"):
        workdir = tmp / f"{name}-{mode}"
        workdir.mkdir()
        broker = Mosquitto(workdir / "mosquitto", conf_file=broker_conf(workdir, queue))
        broker.start()
        db = influxd.create_database(f"q_{name}_{mode}")
        metrics = free_port()
        try:
            bridge = start_bridge(broker, influxd.url(db), workdir, metrics)
            if mode == "away":
                bridge.terminate()
                bridge.wait(30)
            started = time.perf_counter()
            publish_burst(broker, n, devices, 0, workdir)
            if mode == "away":
                bridge = start_bridge(broker, influxd.url(db), workdir, metrics)
            stored, seconds = settle(influxd, db, n, started)
            time.sleep(1.5)  # $SYS is refreshed every second (sys_interval 1)
            rows.append(f"| {name} | {mode} | {n} | {stored} | {dropped(broker)} | {seconds:.1f} |")
            bridge.terminate()
            bridge.wait(30)
        finally:
            broker.stop()
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--readings", type=int, default=20000)
    ap.add_argument("--devices", type=int, default=100)
    args = ap.parse_args()
    n = args.readings - args.readings % args.devices
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        influxd = Influxd(tmp / "influxd")
        influxd.start()
        try:
            rows = run_case("defaults", "", influxd, n, args.devices, tmp)
            rows += run_case("shipped", shipped_queue_settings(), influxd, n, args.devices, tmp)
        finally:
            influxd.stop()
    print("Mosquitto defaults: max_inflight_messages 20, max_queued_messages 1000.")
    print("Shipped:", "; ".join(shipped_queue_settings().splitlines()))
    print()
    print("| broker config | bridge | published | stored | broker dropped | s to last stored |")
    print("|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()

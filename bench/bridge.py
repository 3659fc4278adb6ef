"""Bridge throughput, measured against a bare paho subscriber in the same run, on the same broker.

    .venv/bin/python bench/bridge.py [--readings 20000] [--devices 100]

Method: each consumer's persistent session is made first; then N readings are published
while it is away (the broker queues them), and the consumer is started and timed until it has
taken them all. Timing a drained backlog keeps the load generator (C mosquitto_pub processes)
out of the figure; the generator's own rate is printed too. Everything runs on private
servers (Mosquitto and influxd 1.x) on free loopback ports.

Prints: the generator's rate; the bare subscriber's rate; the bridge's end-to-end rate
(received -> stored in influxd and republished, all acknowledged); their ratio; the loss
(stored count vs published, and the broker's dropped counter); and two bridges in a shared
group against one.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.services import Influxd, Mosquitto, free_port, wait_until

VENV_VIGIL = str(Path(sys.executable).with_name("vigil"))


def publish_backlog(broker: Mosquitto, n: int, devices: int, start_seq: int, workdir: Path) -> float:
    """Publish n readings over `devices` topics with C mosquitto_pub processes; returns msgs/s."""
    per = n // devices
    files = []
    t0 = time.time()
    for d in range(devices):
        f = workdir / f"dev{d}.txt"
        lines = [json.dumps({"value": 20 + (i % 50) / 10, "ts": t0 - per + i, "unit": "°C", "seq": start_seq + i})
                 for i in range(per)]
        f.write_text("\n".join(lines) + "\n")
        files.append(f)
    started = time.perf_counter()
    procs = []
    for d, f in enumerate(files):
        with f.open("rb") as stdin:
            procs.append(subprocess.Popen(
                ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(broker.port), "-q", "1", "-l", "-V", "5",
                 "-i", f"gen-{d}", "-t", f"vigil/readings/dev-{d}/t0"], stdin=stdin))
        if len(procs) >= 16:
            procs.pop(0).wait()
    for p in procs:
        p.wait()
    return per * devices / (time.perf_counter() - started)


PROTOCOL = "5"


def _connect(c: mqtt.Client, broker: Mosquitto, persistent: bool) -> None:
    if PROTOCOL == "5":
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600 if persistent else 0
        c.connect("127.0.0.1", broker.port, clean_start=not persistent, properties=props)
    else:
        c.connect("127.0.0.1", broker.port)


def _client(client_id: str, persistent: bool) -> mqtt.Client:
    if PROTOCOL == "5":
        return mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    return mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311,
                       clean_session=not persistent)


def bare_subscriber(broker: Mosquitto, n: int, workdir: Path, devices: int) -> float:
    """A paho subscriber that only counts, draining a queued backlog; returns msgs/s."""
    got = [0]
    first: list[float] = []
    done = threading.Event()

    def on_message(c: mqtt.Client, u: object, m: mqtt.MQTTMessage) -> None:
        if not first:
            first.append(time.perf_counter())
        got[0] += 1
        if got[0] >= n:
            done.set()

    def connect() -> mqtt.Client:
        c = _client("bare", True)
        c.on_message = on_message
        _connect(c, broker, True)
        return c

    c = connect()
    c.subscribe("vigil/readings/#", qos=1)
    c.loop_start()
    time.sleep(0.5)
    c.disconnect()
    c.loop_stop()
    publish_backlog(broker, n, devices, 0, workdir)
    c = connect()
    started = time.perf_counter()
    c.loop_start()
    done.wait(300)
    elapsed = time.perf_counter() - started
    c.disconnect()
    c.loop_stop()
    forget_session(broker, "bare")
    return got[0] / elapsed


def forget_session(broker: Mosquitto, client_id: str) -> None:
    """Connect once with a clean start and no expiry, so the broker stops queueing for that id."""
    c = _client(client_id, False)
    _connect(c, broker, False)
    c.loop_start()
    time.sleep(0.2)
    c.disconnect()
    c.loop_stop()


def metrics(port: int) -> dict[str, float]:
    out = {}
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        for line in r.read().decode().splitlines():
            if line and not line.startswith("#") and "{" not in line:
                k, v = line.split()
                out[k] = float(v)
    return out


def start_bridges(k: int, broker: Mosquitto, store: str, workdir: Path, group: str | None) -> list[tuple]:
    bridges = []
    for i in range(k):
        port = free_port()
        argv = [VENV_VIGIL, "bridge", "--broker", broker.url, "--store", store, "--metrics-listen",
                f"127.0.0.1:{port}", "--client-id", f"bench-{k}-{i}", "--data-dir", str(workdir / f"b{k}-{i}")]
        if group:
            argv += ["--shared-group", group]
        conf = workdir / "vigil.yaml"
        conf.write_text(f'mqtt:\n  protocol: "{PROTOCOL}"\n')
        argv += ["-c", str(conf)]
        log = (workdir / f"bridge{i}.log").open("ab")
        p = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        assert wait_until(lambda port=port: _up(port), 20), f"bridge {i} did not start"
        bridges.append((p, port))
    time.sleep(0.5)  # let it subscribe
    return bridges


def _up(port: int) -> bool:
    try:
        metrics(port)
        return True
    except OSError:
        return False


def stop(bridges: list[tuple]) -> None:
    for p, _ in bridges:
        p.terminate()
    for p, _ in bridges:
        p.wait(20)


def bridge_run(k: int, broker: Mosquitto, influxd: Influxd, n: int, devices: int, workdir: Path,
               seq0: int) -> tuple[float, int, float]:
    """k bridges drain a backlog of n readings; returns (msgs/s, stored count, cpu seconds per reading)."""
    db = influxd.create_database(f"bench{k}_{seq0}")
    group = "bench" if k > 1 else None
    bridges = start_bridges(k, broker, influxd.url(db), workdir, group)
    stop(bridges)  # sessions exist now; readings queue while the bridges are away
    publish_backlog(broker, n, devices, seq0, workdir)
    bridges = start_bridges(k, broker, influxd.url(db), workdir, group)
    started = time.perf_counter()
    cpu0 = sum(_cpu(p.pid) for p, _ in bridges)

    def all_acked() -> bool:
        return sum(metrics(port).get("vigil_bridge_republished_total", 0) for _, port in bridges) >= n

    wait_until(all_acked, 600, 0.02)
    elapsed = time.perf_counter() - started
    cpu = sum(_cpu(p.pid) for p, _ in bridges) - cpu0
    stop(bridges)
    for i in range(k):
        forget_session(broker, f"bench-{k}-{i}")
    res = influxd.query('SELECT count("value") FROM "temperature"', db=db)
    stored = int(res["results"][0]["series"][0]["values"][0][1]) if res["results"][0].get("series") else 0
    return n / elapsed, stored, cpu / n


def _cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def dropped(broker: Mosquitto) -> int:
    out = subprocess.run(["mosquitto_sub", "-p", str(broker.port), "-t", "$SYS/broker/publish/messages/dropped",
                          "-C", "1", "-W", "15"], capture_output=True, text=True)
    return int(out.stdout.strip() or 0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--readings", type=int, default=20000)
    ap.add_argument("--devices", type=int, default=100)
    ap.add_argument("--protocol", choices=["5", "3.1.1"], default="5", help="MQTT version of bridge and subscriber")
    args = ap.parse_args()
    global PROTOCOL
    PROTOCOL = args.protocol
    n = args.readings - args.readings % args.devices
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        conf = Path(__file__).resolve().parent.parent / "deploy" / "mosquitto" / "mosquitto.conf"
        queue_lines = [ln for ln in conf.read_text().splitlines() if ln.startswith(("max_inflight", "max_queued"))]
        broker = Mosquitto(work / "mq", extra_config="\n".join(queue_lines) + "\nsys_interval 1\n")
        broker.start()
        influxd = Influxd(work / "influxd")
        influxd.start()
        try:
            gen = publish_backlog(broker, n, args.devices, 0, work)  # nobody subscribed: generator alone
            print(f"MQTT {PROTOCOL}; shipped queue settings: {', '.join(queue_lines)}")
            print(f"load generator alone (mosquitto_pub x{args.devices}, QoS 1): {gen:,.0f} msg/s")
            bare = bare_subscriber(broker, n, work, args.devices)
            print(f"bare paho subscriber (counts only):         {bare:,.0f} msg/s")
            one, stored1, cpu1 = bridge_run(1, broker, influxd, n, args.devices, work, 10**6)
            print(f"bridge x1 (stored in influxd + republished): {one:,.0f} msg/s  "
                  f"ratio to bare {one / bare:.2f}  stored {stored1}/{n}  cpu {cpu1 * 1e6:.0f} us/reading")
            two, stored2, _ = bridge_run(2, broker, influxd, n, args.devices, work, 2 * 10**6)
            print(f"bridge x2 in a shared group:                {two:,.0f} msg/s  "
                  f"ratio to x1 {two / one:.2f}  stored {stored2}/{n}")
            print(f"loss: {n - stored1} (x1), {n - stored2} (x2); broker dropped counter: {dropped(broker)}")
        finally:
            influxd.stop()
            broker.stop()


if __name__ == "__main__":
    main()

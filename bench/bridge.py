"""Bridge throughput, measured against a bare paho subscriber in the same run, on the same broker.

    .venv/bin/python bench/bridge.py [--readings 50000] [--devices 100]

Method: each consumer's persistent session is made first; then N readings are published
while it is away (the broker queues them), and the consumer is started and timed while it takes
the middle 80 % of them (from the 10 % mark to the 90 % mark: the steady rate, without the
start-up of the process or the tail). Timing a drained backlog keeps the load generator (C
mosquitto_pub processes) out of the figure; the generator's own rate is printed too. Everything runs on private
servers (Mosquitto and influxd 1.x) on free loopback ports.

Prints: the generator's rate; the bare subscribers' rates (paho, and gmqtt, the bridge's client
library); the bridge's end-to-end rate (received -> stored in influxd and republished, all
acknowledged), its ratio to the bare paho subscriber and its CPU per reading; the loss (stored
count vs published, and the broker's dropped counter); two bridges in a shared group against
one; and how busy the machine's cores were while each bridge run was timed (on 2 cores, Mosquitto,
influxd and the bridges share them).

The broker gets the shipped deploy/mosquitto/mosquitto.conf's queue settings and
``set_tcp_nodelay``; ``--stock-nagle`` leaves the latter out (Mosquitto's default).

``--compare DIR`` measures another checkout's bridge against this one, in the same run, on the same
servers: ``--rounds`` single-bridge runs of each, alternating (DIR's code through PYTHONPATH), then
the Vigil JSON format alone in this process (DIR's broker_bridge/formats/vigil_json.py against
this one's, interleaved rounds, paired ratio). For DIR, e.g. ``git worktree add --detach /tmp/old main``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
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
from bench.proc import cpu_seconds
from tests.support.services import Influxd, Mosquitto, free_port, shipped_broker_settings, wait_until

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
PROFILE = ""


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
    lo, hi = n // 10, n - n // 10
    marks: dict[int, float] = {}
    done = threading.Event()

    def on_message(c: mqtt.Client, u: object, m: mqtt.MQTTMessage) -> None:
        got[0] += 1
        if got[0] in (lo, hi):
            marks[got[0]] = time.perf_counter()
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
    c.loop_start()
    done.wait(300)
    c.disconnect()
    c.loop_stop()
    forget_session(broker, "bare")
    return (hi - lo) / (marks[hi] - marks[lo])


def bare_gmqtt(broker: Mosquitto, n: int, workdir: Path, devices: int) -> float:
    """The same with gmqtt (the bridge's client library), acknowledging on receipt; returns msgs/s."""
    import asyncio

    import gmqtt
    from gmqtt.mqtt.constants import MQTTv50, MQTTv311

    lo, hi = n // 10, n - n // 10
    marks: dict[int, float] = {}

    async def session(drain: bool) -> None:
        got = [0]
        done = asyncio.Event()

        def on_message(client: object, topic: str, payload: bytes, qos: int, properties: object) -> int:
            got[0] += 1
            if got[0] in (lo, hi):
                marks[got[0]] = time.perf_counter()
            if got[0] >= n:
                done.set()
            return 0

        v5 = PROTOCOL == "5"
        c = gmqtt.Client("bare-gmqtt", clean_session=False, **({"session_expiry_interval": 3600} if v5 else {}))
        c.on_message = on_message
        await c.connect("127.0.0.1", broker.port, version=MQTTv50 if v5 else MQTTv311)
        if drain:
            await asyncio.wait_for(done.wait(), 300)
        else:
            c.subscribe("vigil/readings/#", qos=1)
            await asyncio.sleep(0.5)
        await c.disconnect()

    asyncio.run(session(False))
    publish_backlog(broker, n, devices, 0, workdir)
    asyncio.run(session(True))
    forget_session(broker, "bare-gmqtt")
    return (hi - lo) / (marks[hi] - marks[lo])


def forget_session(broker: Mosquitto, client_id: str) -> None:
    """Connect once with a clean start and no expiry, so the broker stops queueing for that id."""
    c = _client(client_id, False)
    _connect(c, broker, False)
    c.loop_start()
    time.sleep(0.2)
    c.disconnect()
    c.loop_stop()


COMPARED = ""  # --compare: the bridge runs from this checkout when set through bridge_run(other=True)


def metrics(port: int, only: str = "") -> dict[str, float]:
    out = {}
    query = f"?name[]={only}" if only else ""  # prometheus-client collects that metric's collector alone
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics{query}", timeout=5) as r:
        for line in r.read().decode().splitlines():
            if line and not line.startswith("#") and "{" not in line:
                k, v = line.split()
                out[k] = float(v)
    return out


def start_bridges(k: int, broker: Mosquitto, store: str, workdir: Path, group: str | None,
                  settle: bool = True, other: bool = False) -> list[tuple]:
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
        env = {**os.environ, "PYTHONPATH": COMPARED} if other else None
        p = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env)
        assert wait_until(lambda port=port: _up(port), 20), f"bridge {i} did not start"
        bridges.append((p, port))
    if settle:
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
               seq0: int, other: bool = False) -> tuple[float, int, float, float]:
    """k bridges drain a backlog of n readings; returns (msgs/s, stored count, cpu seconds per reading, busy)."""
    db = influxd.create_database(f"bench{k}_{seq0}")
    group = "bench" if k > 1 else None
    bridges = start_bridges(k, broker, influxd.url(db), workdir, group, other=other)
    stop(bridges)  # sessions exist now; readings queue while the bridges are away
    publish_backlog(broker, n, devices, seq0, workdir)
    bridges = start_bridges(k, broker, influxd.url(db), workdir, group, settle=False, other=other)
    spy = None
    if PROFILE and k == 1:  # py-spy writes its profile when the bridge exits
        out = Path(PROFILE).resolve() / f"bridge-{PROTOCOL}-{time.time():.0f}.txt"
        spy = subprocess.Popen(["py-spy", "record", "--idle", "--rate", "500", "--format", "raw", "-o", str(out),
                                "--pid", str(bridges[0][0].pid)], stdout=subprocess.DEVNULL)
        time.sleep(1)
    # (time, republished, cpu seconds) until all are through; the rate is taken between the 10 % and 90 % marks
    samples = []
    deadline = time.perf_counter() + 600
    while time.perf_counter() < deadline:
        done = sum(metrics(port, "vigil_bridge_republished_total").get("vigil_bridge_republished_total", 0)
                   for _, port in bridges)
        samples.append((time.perf_counter(), done, sum(cpu_seconds(p.pid) for p, _ in bridges), _machine()))
        if done >= n:
            break
        time.sleep(0.02)  # each scrape costs the bridge 0.3-0.9 ms of CPU: at 5 ms it was 5-10 % of its CPU
    if samples[0][1] >= n // 10:
        print(f"  (bridge x{k} had taken {samples[0][1]:.0f} before the first sample: timed from there)")
    t0, c0, cpu0, m0 = next(x for x in samples if x[1] >= n // 10)
    if c0 >= n // 2:
        raise SystemExit(f"bridge x{k} took half the backlog before it could be timed: use more --readings")
    t1, c1, cpu1, m1 = next(x for x in samples if x[1] >= n - n // 10)
    stop(bridges)
    if spy is not None:
        spy.wait(60)
    for i in range(k):
        forget_session(broker, f"bench-{k}-{i}")
    res = influxd.query('SELECT count("value") FROM "temperature"', db=db)
    stored = int(res["results"][0]["series"][0]["values"][0][1]) if res["results"][0].get("series") else 0
    busy = (m1[0] - m0[0]) / max(1, m1[1] - m0[1])
    return (c1 - c0) / (t1 - t0), stored, (cpu1 - cpu0) / (c1 - c0), busy


def _machine() -> tuple[int, int]:
    """(busy, total) jiffies of all cores, from /proc/stat."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


def dropped(broker: Mosquitto) -> int:
    out = subprocess.run(["mosquitto_sub", "-p", str(broker.port), "-t", "$SYS/broker/publish/messages/dropped",
                          "-C", "1", "-W", "15"], capture_output=True, text=True)
    return int(out.stdout.strip() or 0)


def compare(broker: Mosquitto, influxd: Influxd, n: int, devices: int, work: Path, rounds: int) -> None:
    """--compare: single-bridge runs of DIR's code and this one's, alternating; then the format alone."""
    rates: dict[str, list[float]] = {"compared": [], "this": []}
    for r in range(rounds):
        for other in ((True, False) if r % 2 == 0 else (False, True)):
            rate, stored, cpu, busy = bridge_run(1, broker, influxd, n, devices, work, (3 + 2 * r + other) * 10**6,
                                                 other=other)
            name = "compared" if other else "this"
            rates[name].append(rate)
            print(f"round {r + 1} {name:8s} bridge x1: {rate:,.0f} msg/s  stored {stored}/{n}  "
                  f"cpu {cpu * 1e6:.0f} us/reading  machine busy {busy:.0%}")
    old, new = statistics.median(rates["compared"]), statistics.median(rates["this"])
    print(f"median bridge x1: {COMPARED} {old:,.0f} msg/s, this checkout {new:,.0f} msg/s ({new / old:.2f} x)")
    compare_format()


def compare_format(rounds: int = 200, size: int = 500) -> None:
    """The Vigil JSON format alone: DIR's module against this one's, in this process, interleaved rounds."""
    import importlib.util

    from broker_bridge.formats.vigil_json import VigilJson
    from broker_bridge.settings import SourceSettings
    from vigil.core.errors import VigilError

    spec = importlib.util.spec_from_file_location("broker_bridge.formats._compared_vigil_json",
                                                  Path(COMPARED) / "broker_bridge/formats/vigil_json.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    source, fields = SourceSettings(name="vigil", format="vigil_json"), {"device": "d", "sensor": "s"}
    good = [json.dumps({"value": 20 + i / 10, "ts": 1.7e9 + i, "unit": "°C", "seq": i}).encode() for i in range(size)]
    bad = [b'{"value":"21.5","ts":1700000000,"unit":"C"}'] * size

    def timed(fmt: object, payloads: list[bytes]) -> float:
        started = time.perf_counter()
        for payload in payloads:
            try:
                fmt.parse("vigil/readings/d/s", payload, source, fields)  # type: ignore[attr-defined]
            except (ValueError, VigilError):  # a refusal (vigil.core.refusal.Refusal), before it was a ValueError
                pass
        return (time.perf_counter() - started) / len(payloads) * 1e6

    for what, payloads in (("a good reading", good), ("a refused reading", bad)):
        pairs = []
        for r in range(rounds):
            first, second = (module.VigilJson(), VigilJson()) if r % 2 else (VigilJson(), module.VigilJson())
            a, b = timed(first, payloads), timed(second, payloads)
            pairs.append((a, b) if r % 2 else (b, a))
        old = statistics.median(p[0] for p in pairs)
        new = statistics.median(p[1] for p in pairs)
        ratio = statistics.median(p[1] / p[0] for p in pairs)
        print(f"vigil_json format, {what}: compared {old:.2f} us, this {new:.2f} us (median of {rounds} "
              f"interleaved rounds); this/compared paired {ratio:.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--readings", type=int, default=50000)
    ap.add_argument("--devices", type=int, default=100)
    ap.add_argument("--protocol", choices=["5", "3.1.1"], default="5", help="MQTT version of bridge and subscriber")
    ap.add_argument("--stock-nagle", action="store_true",
                    help="leave out the shipped set_tcp_nodelay (Mosquitto's default: Nagle's algorithm on)")
    ap.add_argument("--compare", metavar="DIR", default="",
                    help="also run the bridge of the checkout DIR, alternating with this one's (see above)")
    ap.add_argument("--rounds", type=int, default=3, help="with --compare: single-bridge runs of each")
    ap.add_argument("--profile", metavar="DIR", default="",
                    help="profile the single bridge with py-spy (pip install py-spy; --idle, raw format) into DIR")
    args = ap.parse_args()
    global PROTOCOL, PROFILE, COMPARED
    PROTOCOL, PROFILE, COMPARED = args.protocol, args.profile, str(Path(args.compare).resolve()) if args.compare else ""
    n = args.readings - args.readings % args.devices
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        queue_lines = shipped_broker_settings(nagle=args.stock_nagle)
        broker = Mosquitto(work / "mq", extra_config="\n".join(queue_lines) + "\nsys_interval 1\n")
        broker.start()
        influxd = Influxd(work / "influxd")
        influxd.start()
        try:
            gen = publish_backlog(broker, n, args.devices, 0, work)  # nobody subscribed: generator alone
            print(f"MQTT {PROTOCOL}; shipped broker settings: {', '.join(queue_lines)}")
            print(f"load generator alone (mosquitto_pub x{args.devices}, QoS 1): {gen:,.0f} msg/s")
            bare = bare_subscriber(broker, n, work, args.devices)
            print(f"bare paho subscriber (counts only):         {bare:,.0f} msg/s")
            bare_g = bare_gmqtt(broker, n, work, args.devices)
            print(f"bare gmqtt subscriber (counts only):        {bare_g:,.0f} msg/s  ({bare_g / bare:.2f} x paho)")
            if COMPARED:
                compare(broker, influxd, n, args.devices, work, args.rounds)
                return
            one, stored1, cpu1, busy1 = bridge_run(1, broker, influxd, n, args.devices, work, 10**6)
            print(f"bridge x1 (stored in influxd + republished): {one:,.0f} msg/s  "
                  f"ratio to bare paho {one / bare:.2f}  stored {stored1}/{n}  cpu {cpu1 * 1e6:.0f} us/reading  "
                  f"machine busy {busy1:.0%}")
            two, stored2, cpu2, busy2 = bridge_run(2, broker, influxd, n, args.devices, work, 2 * 10**6)
            print(f"bridge x2 in a shared group:                {two:,.0f} msg/s  "
                  f"ratio to x1 {two / one:.2f}  stored {stored2}/{n}  cpu {cpu2 * 1e6:.0f} us/reading  "
                  f"machine busy {busy2:.0%}")
            print(f"loss: {n - stored1} (x1), {n - stored2} (x2); broker dropped counter: {dropped(broker)}")
        finally:
            influxd.stop()
            broker.stop()


if __name__ == "__main__":
    main()

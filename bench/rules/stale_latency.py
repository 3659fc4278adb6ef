"""How late a ``stale`` alert fires (issue 16: "within two seconds of the configured time, measured").

Through the real chain on private servers: readings published as an edge agent does (``vigil/readings/
<device>/<sensor>``, source time in ``ts``) -> Mosquitto -> `vigil bridge` (SQLite store) -> `vigil alerting`
-> a local HTTP receiver (apprise json://, in its own process, which notes when each notification arrives).
--series series each report every second (spread evenly over the second). Two rules watch every series:
``fixed`` (``stale: {after: 5s}``) and ``learned`` (``stale: {factor: 3, min: 1s}``: three times the learned
1 s interval; ``min`` is lowered from its 10 s default so the factor decides). After a warm-up (the learned
rule judges once 5 intervals were seen), each of --rounds rounds stops --stop running series at once (each at
its own phase in the second) and waits until they went silent for longer than the limit.

Per stopped series and rule, lateness = (when the FIRING notification reached the receiver) - (when the
series' last reading was published + the limit): ``after`` for ``fixed``, the learned limit the engine
reports in the alert's ``reason.limit`` for ``learned``. The same is measured when the bench's subscriber
received the FIRING state on the retained ``vigil/alerts/<rule>/<series>`` topic (the engine's lateness, without
notification delivery), and that again counted from when the last reading reached the engine (``reason.last``)
rather than from its publication: the timer and the alert's publication alone, without the reading's transit
through the bridge. (The transition's own ``at`` is the due time by design, so it shows no lateness.)
Grouping adds no delay here: ``group_by: [rule, series]`` (each alert its own group, so never waits for
another) and ``group_wait: 0s`` (the default is 5s, which a group's first message waits: --default-grouping
measures that).

Checked, not timed: each rule and stopped series told exactly once as FIRING (alone, or in a grouped message),
and no series that kept reporting; the bench exits 1 otherwise.

    .venv/bin/python bench/rules/stale_latency.py
    .venv/bin/python bench/rules/stale_latency.py --series 200 --after 5 --rounds 5 --stop 10
    .venv/bin/python bench/rules/stale_latency.py --default-grouping
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench.proc import percentile  # noqa: E402
from tests.support.alerting import EngineProcess  # noqa: E402
from tests.support.bridge import BridgeProcess, reading  # noqa: E402
from tests.support.services import Mosquitto, free_port, wait_until  # noqa: E402

FACTOR = 3.0
#: an alert's headline, alone (the title) or one of a grouped message's (its body's "- [FIRING ...] ..." lines)
HEADLINE = re.compile(r"\[FIRING [^\]]*\] (\w+) (s\d+/t0/temperature)")
WARMUP = 10.0  # seconds of readings before the first stop: the learned rule judges after 5 intervals

RECEIVER = """
import json, sys, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
out = open(sys.argv[2], "a", buffering=1)
class H(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        now = time.time()
        d = json.loads(body)
        out.write(json.dumps([d.get("title", "") + "\\n" + d.get("message", ""), now]) + "\\n")
        self.send_response(200)
        self.end_headers()
    def log_message(self, *a):
        pass
ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"""


def rules(port: int, after: float, default_grouping: bool) -> str:
    grouping = "" if default_grouping else "grouping: {group_by: [rule, series], group_wait: 0s, group_interval: 1s}\n"
    return f"""\
receivers:
  bench: ["json://127.0.0.1:{port}/hook"]
{grouping}rules:
  - name: fixed
    match: {{metric: temperature}}
    stale: {{after: {after}s}}
    notify: bench
  - name: learned
    match: {{metric: temperature}}
    stale: {{factor: {FACTOR:g}, min: 1s}}
    notify: bench
"""


class Fleet:
    """Series ``s<i>/t0`` publishing a reading every second at phase i/N, until stopped."""

    def __init__(self, port: int, n: int) -> None:
        self.n = n
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id="bench-fleet")
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        self.lock = threading.Lock()
        self.stopped: set[int] = set()
        self.last: dict[int, float] = {}  # series -> when its latest reading was published
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        start, k = time.time(), 0  # k: readings published so far, in schedule order
        while not self.done.is_set():
            due = int((time.time() - start) * self.n)
            while k <= due:
                i = k % self.n
                with self.lock:
                    if i not in self.stopped:
                        now = time.time()
                        self.client.publish(f"vigil/readings/s{i}/t0", reading(20.0 + k % 3, now, seq=k // self.n),
                                            qos=1)
                        self.last[i] = now
                k += 1
            time.sleep(0.01)

    def stop(self, series: list[int]) -> None:
        with self.lock:
            self.stopped.update(series)

    def close(self) -> None:
        self.done.set()
        self.thread.join(5)
        self.client.loop_stop()
        self.client.disconnect()


class Alerts:
    """The retained alert states: the first FIRING of each rule/series, with when it was received here."""

    def __init__(self, port: int) -> None:
        self.firing: dict[str, tuple[float, dict[str, Any]]] = {}
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id="bench-alerts")
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.subscribe("vigil/alerts/#", qos=1)
        self.client.loop_start()

    def _on_message(self, client: Any, userdata: Any, msg: paho.MQTTMessage) -> None:
        now = time.time()
        body = json.loads(msg.payload) if msg.payload else {}
        if body.get("state") == "firing":
            self.firing.setdefault(msg.topic.removeprefix("vigil/alerts/"), (now, body))

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def summary(label: str, late: list[float]) -> str:
    if not late:
        return f"{label}: none measured"
    return (f"{label}: n={len(late)} p50 {percentile(late, 50):.2f} s, p95 {percentile(late, 95):.2f} s, "
            f"p99 {percentile(late, 99):.2f} s, max {max(late):.2f} s, over 2 s: {sum(x > 2 for x in late)}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--series", type=int, default=200, help="series, each reporting every second")
    ap.add_argument("--after", type=float, default=5.0, help="the fixed rule's limit, seconds")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--stop", type=int, default=10, help="series stopped per round")
    ap.add_argument("--default-grouping", action="store_true",
                    help="keep the default grouping (group_by [rule], group_wait 5s): what it adds to delivery")
    args = ap.parse_args()
    if args.rounds * args.stop >= args.series:
        ap.error("--rounds x --stop must leave some series running")

    tmp = Path(tempfile.mkdtemp(prefix="vigil-stale-"))
    http_port = free_port()
    arrivals = tmp / "arrivals.jsonl"
    receiver = subprocess.Popen([sys.executable, "-c", RECEIVER, str(http_port), str(arrivals)])
    broker = Mosquitto(tmp / "mosquitto")
    broker.start()
    (tmp / "rules.yaml").write_text(rules(http_port, args.after, args.default_grouping))
    bridge = BridgeProcess(broker, f"sqlite:///{tmp}/vigil.db", tmp / "bridge")
    engine = EngineProcess(["alerting", "--broker", broker.url, "--rules", str(tmp / "rules.yaml"),
                            "--state", str(tmp / "alerts.db")], tmp / "engine.log")
    fleet = alerts = None
    try:
        bridge.start()
        engine.start()
        if not wait_until(lambda: "connected to the broker" in engine.output(), 30):
            raise SystemExit("the engine did not start:\n" + engine.output()[-3000:])
        alerts = Alerts(broker.port)
        fleet = Fleet(broker.port, args.series)
        time.sleep(WARMUP)
        rng = random.Random(16)
        order = rng.sample(range(args.series), args.rounds * args.stop)
        for r in range(args.rounds):
            fleet.stop(order[r * args.stop:(r + 1) * args.stop])
            time.sleep(max(args.after, FACTOR) + 4.0)
        time.sleep(3.0)  # a second notification, or one for a running series, would come now
        stopped = set(order)
        heard = [json.loads(line) for line in arrivals.read_text().splitlines()] if arrivals.exists() else []
        told = Counter(m.groups() for text, _ in heard for m in HEADLINE.finditer(str(text)))
        expected = Counter((rule, f"s{i}/t0/temperature") for i in stopped for rule in ("fixed", "learned"))
        arrived: dict[tuple[str, str], float] = {}
        for text, at in heard:
            for m in HEADLINE.finditer(str(text)):
                arrived.setdefault((m[1], m[2]), float(at))
        last = dict(fleet.last)
        results: dict[str, dict[str, list[float]]] = {}
        limits: list[float] = []
        for rule in ("fixed", "learned"):
            out = results.setdefault(rule, {"receiver": [], "mqtt": [], "arrival": []})
            for i in sorted(stopped):
                series = f"s{i}/t0/temperature"
                got = alerts.firing.get(f"{rule}/{series}")
                if got is None:
                    continue
                seen, body = got
                reason = body.get("reason") or {}
                limit = args.after if rule == "fixed" else float(reason["limit"])
                if rule == "learned":
                    limits.append(limit)
                due = last[i] + limit
                out["mqtt"].append(seen - due)
                out["arrival"].append(seen - (float(reason["last"]) + limit))
                if (rule, series) in arrived:
                    out["receiver"].append(arrived[rule, series] - due)
        print(f"{args.series} series every 1 s; {len(stopped)} stopped in {args.rounds} rounds of {args.stop}; "
              f"fixed: stale after {args.after:g}s; learned: {FACTOR:g} x interval "
              f"(limits {min(limits, default=0):.2f}-{max(limits, default=0):.2f} s)")
        grouping = "default (group_by [rule], group_wait 5s)" if args.default_grouping else \
            "group_by [rule, series], group_wait 0s"
        print(f"lateness = arrival - (last reading published + limit); grouping: {grouping}")
        for rule, out in results.items():
            print(summary(f"{rule:7} at the HTTP receiver         ", out["receiver"]))
            print(summary(f"{rule:7} at vigil/alerts (MQTT)       ", out["mqtt"]))
            print(summary(f"{rule:7} at vigil/alerts, from arrival", out["arrival"]))
        ok = told == expected and len(alerts.firing) == len(expected)
        wrong = sorted(set(told) ^ set(expected)) + [t for t, c in told.items() if c > 1]
        print(f"alerts told: {sum(told.values())} in {len(heard)} notifications, for {len(expected)} expected "
              f"(one per rule and stopped series, none for the {args.series - len(stopped)} running): "
              f"{'OK' if ok else 'WRONG'}" + ("" if ok else f" {wrong[:10]}"))
        return 0 if ok else 1
    finally:
        if fleet is not None:
            fleet.close()
        if alerts is not None:
            alerts.close()
        engine.stop()
        bridge.stop()
        broker.stop()
        receiver.terminate()
        receiver.wait(5)
        if os.environ.get("BENCH_KEEP"):
            print("kept", tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

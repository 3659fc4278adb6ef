"""``vigil status``: the health of every part in one screen, with what to do about each problem."""

from __future__ import annotations

import argparse
import json
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Optional

from vigil.app.config import VigilConfig
from vigil.app.runtime import add_common_arguments, config_from_args
from vigil.core.exitcodes import EXIT_FAILED, EXIT_OK
from vigil.core.health import STALE_AFTER, PartHealth, parse_health
from vigil.core.urls import BrokerUrl, mask_url

__all__ = ["add_arguments", "run"]

DESCRIPTION = """\
Print the health of every part of Vigil in one screen: the broker, each part's own health (bridge,
rule engine, dashboard: what they publish retained on vigil/health/<part>/<instance>), the store,
the spool, the last reading stored, devices online, alerts firing and notifications failing; each
problem with what to do. The exit status is 1 when something is wrong (a FAIL line), 0 otherwise,
so a cron job or a monitoring agent can run it.

It connects with the MQTT account of the configuration. On the shipped broker configuration the
username is the client id: give vigil status an account of its own, never a running service's, or it
would take that service's session (the shipped vigil.acl grants vigil-status what it reads:
deploy/mosquitto/add-service.sh PASSWD ACL vigil-status)."""

EPILOG = """\
examples:
  vigil status -c /etc/vigil/vigil.yaml
  vigil status --broker mqtt://vigil-status:PASSWORD@127.0.0.1:1883 --store influxdb1://127.0.0.1:8086/vigil
  vigil status -c vigil.yaml --json            # the same, as JSON
  vigil status -c vigil.yaml || mail -s "Vigil needs a look" ops@example.org < /dev/null
"""

OK, WARN, FAIL = "ok", "WARN", "FAIL"
PARTS = (("bridge", FAIL), ("alerting", FAIL), ("dashboard", WARN))


@dataclass(frozen=True, slots=True)
class Line:
    level: str
    what: str
    text: str
    todo: str = ""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser)
    parser.add_argument("--wait", type=float, default=2.0, metavar="SECONDS",
                        help="how long to collect the retained messages (default 2)")
    parser.add_argument("--json", action="store_true", help="print the lines as JSON")


def run(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    lines = check(config, wait=max(0.2, args.wait))
    if args.json:
        print(json.dumps([asdict(line) for line in lines], indent=2, ensure_ascii=False))
    else:
        print(render(lines))
    return EXIT_FAILED if any(line.level == FAIL for line in lines) else EXIT_OK


def render(lines: list[Line]) -> str:
    out = []
    for line in lines:
        out.append(f"{'[' + line.level + ']':7} {line.what:28} {line.text}")
        if line.todo and line.level != OK:
            out.append(f"{'':7} {'':28} -> {line.todo}")
    bad = sum(1 for line in lines if line.level == FAIL)
    out.append(f"\n{bad} problem(s)" if bad else "\nall parts report healthy")
    return "\n".join(out)


def check(config: VigilConfig, wait: float = 2.0, now: Optional[float] = None) -> list[Line]:
    """Every line of the report."""
    seen = _collect(config, wait)
    now = time.time() if now is None else now
    lines: list[Line] = []
    if seen.error:
        lines.append(Line(FAIL, "broker", f"cannot connect to {seen.error}",
                          "start Mosquitto (systemctl start mosquitto); check mqtt.url and the account's password"))
    else:
        lines.append(Line(OK, "broker", f"{mask_url(seen.broker)} answers"))
        lines += _parts(seen, now)
        lines += _devices_and_alerts(seen)
    lines += _store(config, now)
    return lines


class _Seen:
    def __init__(self) -> None:
        self.error = ""
        self.broker = ""  # the one that answered (of several: the first in mqtt.url's order)
        self.health: dict[tuple[str, str], PartHealth] = {}
        self.devices: dict[str, bool] = {}
        self.alerts: dict[str, dict[str, Any]] = {}


def _collect(config: VigilConfig, wait: float) -> _Seen:
    """What the first broker that answers holds; with several brokers (failover), each is tried in turn."""
    errors = []
    for b in config.mqtt.brokers():
        seen = _listen(config, wait, config.mqtt.protocol == "5", b)
        if "Unsupported protocol version" in seen.error:  # an MQTT 3.1.1 broker (vigil up's embedded one)
            seen = _listen(config, wait, False, b)
        if not seen.error:
            seen.broker = str(b)
            return seen
        errors.append(f"{b}: {seen.error}")
    seen.error = "; ".join(errors)
    return seen


def _listen(config: VigilConfig, wait: float, v5: bool, b: BrokerUrl) -> _Seen:
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    from vigil.core.mqtt import ssl_context

    seen = _Seen()
    topics = config.mqtt.topics
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"vigil-status-{time.time_ns() % 10**9}",
                         protocol=paho.MQTTv5 if v5 else paho.MQTTv311)
    if b.username:
        client.username_pw_set(b.username, b.password)
    if b.tls:
        client.tls_set_context(ssl_context(config.mqtt))
    connected = threading.Event()
    lock = threading.Lock()

    def on_connect(c: Any, u: Any, flags: Any, reason: Any, props: Any = None) -> None:
        if getattr(reason, "is_failure", False):
            seen.error = f"the broker refused the connection ({reason})"
        else:
            for flt in (topics.all_health, topics.all_status, topics.all_alerts):
                c.subscribe(flt, qos=0)
        connected.set()

    def on_message(c: Any, u: Any, m: Any) -> None:
        with lock:
            _take(seen, topics, m.topic, bytes(m.payload))

    client.on_connect = on_connect
    client.on_message = on_message
    try:
        client.connect(b.host, b.port, keepalive=30)
    except (OSError, ValueError) as exc:
        seen.error = str(exc) or type(exc).__name__
        return seen
    client.loop_start()
    try:
        if not connected.wait(5):
            seen.error = "no answer to CONNECT within 5 s"
        elif not seen.error:
            time.sleep(wait)  # retained messages come at once; the wait covers a slow link
    finally:
        client.disconnect()
        client.loop_stop()
    return seen


def _take(seen: _Seen, topics: Any, topic: str, payload: bytes) -> None:
    root = topics.root + "/"
    kind, _, rest = topic[len(root):].partition("/") if topic.startswith(root) else ("", "", "")
    if kind == "health":
        h = parse_health(topics, topic, payload)
        if h is not None:
            seen.health[(h.part, h.instance)] = h
    elif kind == "status" and payload:
        from alerting.payloads import parse_status

        state = parse_status(payload)
        if state is not None:
            seen.devices[rest] = state
    elif kind == "alerts" and payload and len(payload) < 64 * 1024:
        try:
            body = json.loads(payload)
        except (ValueError, RecursionError):
            return
        if isinstance(body, dict):
            seen.alerts[rest] = body


def _ago(now: float, at: Optional[float]) -> str:
    if at is None:
        return "at an unknown time"
    return f"{max(0.0, now - at):.0f} s ago ({time.strftime('%H:%M:%S', time.localtime(at))})"


_TODO = {
    "bridge": "start it (systemctl start vigil-bridge); its log: journalctl -u vigil-bridge",
    "alerting": "start it (systemctl start vigil-alerting); its log: journalctl -u vigil-alerting",
    "dashboard": "start it (systemctl start vigil-dashboard); its log: journalctl -u vigil-dashboard",
}


def _parts(seen: _Seen, now: float) -> list[Line]:
    lines = []
    for part, missing_level in PARTS:
        found = sorted((inst, h) for (p, inst), h in seen.health.items() if p == part)
        if not found:
            lines.append(Line(missing_level, part, "publishes no health (not running, or never connected)",
                              _TODO[part]))
        for instance, h in found:
            what = f"{part} {instance}"
            if h.state == "offline":
                why = f" ({'; '.join(h.problems)})" if h.problems else " (its last will: it stopped or died)"
                lines.append(Line(FAIL, what, f"offline{why}", _TODO[part]))
            elif h.at is not None and now - h.at > STALE_AFTER * h.every + 5:
                lines.append(Line(FAIL, what, f"last health {_ago(now, h.at)}: it may hang or have lost the broker",
                                  "read its log and restart it"))
            elif h.problems:
                lines.append(Line(FAIL, what, "; ".join(h.problems), "see each problem above; its log says more"))
            else:
                lines.append(Line(OK, what, _summary(h, now)))
            lines += _part_details(h, what)
    return lines


def _summary(h: PartHealth, now: float) -> str:
    d = h.details
    bits = [f"health {_ago(now, h.at)}"]
    if h.part == "bridge":
        bits += [f"received {d.get('counters', {}).get('received', 0)}", f"spool {h.number('spool_events') or 0:.0f}",
                 f"lag {h.number('lag_seconds') or 0:.1f} s"]
    if h.part == "alerting":
        bits += [f"events {d.get('events', 0)}", f"last event {_ago(now, h.number('last_event'))}"]
    return ", ".join(bits)


def _part_details(h: PartHealth, what: str) -> list[Line]:
    if h.part != "alerting" or h.state == "offline":
        return []
    lines = []
    failing = h.number("notify_failing") or 0
    if failing:
        lines.append(Line(FAIL, "notifications", f"{failing:.0f} receiver URL(s) keep failing ({what})",
                          "vigil notify status --state <its state file>; vigil notify test <rules> --receiver NAME"))
    else:
        lines.append(Line(OK, "notifications", "no receiver failing"))
    refused = h.details.get("refused") or {}
    if isinstance(refused, dict) and refused:
        shown = ", ".join(f"{k}: {v}" for k, v in sorted(refused.items())[:5])
        lines.append(Line(WARN, "refused messages", f"{what} refused {shown}", "its log names the topics, once each"))
    return lines


def _devices_and_alerts(seen: _Seen) -> list[Line]:
    lines = []
    online = sorted(d for d, on in seen.devices.items() if on)
    offline = sorted(d for d, on in seen.devices.items() if not on)
    if offline:
        shown = ", ".join(offline[:5]) + (f" and {len(offline) - 5} more" if len(offline) > 5 else "")
        lines.append(Line(WARN, "devices", f"{len(online)} online, {len(offline)} offline: {shown}",
                          "check those devices' power, network and `vigil edge` service"))
    else:
        lines.append(Line(OK, "devices", f"{len(online)} online"))
    firing = sorted(k for k, b in seen.alerts.items() if b.get("state") in ("firing", "flapping"))
    pipeline = [k for k in firing if k.startswith("vigil-pipeline/")]
    for key in pipeline:
        lines.append(Line(FAIL, "pipeline", str(seen.alerts[key].get("message", "stalled"))[:1000],
                          "fix what the message names; the alert resolves by itself"))
    others = [k for k in firing if k not in pipeline]
    if others:
        shown = ", ".join(others[:5]) + (f" and {len(others) - 5} more" if len(others) > 5 else "")
        lines.append(Line(WARN, "alerts", f"{len(others)} firing: {shown}", "see the dashboard's alerts page"))
    else:
        lines.append(Line(OK, "alerts", "none firing"))
    return lines


def _store(config: VigilConfig, now: float) -> list[Line]:
    from vigil.core.stores import StoreError, open_store

    url = config.store.store_url()
    shown = mask_url(str(url))
    if url.kind == "sqlite" and not Path(url.path).exists():
        return [Line(FAIL, "store", f"no SQLite file at {url.path}",
                     "is this the configuration the bridge uses? the bridge creates it when it starts")]
    try:
        store = open_store(url, retention=config.store.retention)
    except (StoreError, OSError, ValueError) as exc:
        return [Line(FAIL, "store", f"cannot open {shown}: {exc}", "check store.url and its credentials")]
    try:
        store.ping()
        latest = store.latest()
    except (StoreError, OSError, ValueError) as exc:
        return [Line(FAIL, "store", f"{shown} does not answer: {exc}",
                     "start it (systemctl status influxdb) and check store.url, its token or password")]
    finally:
        store.close()
    newest = max((e.ts for e in latest), default=None)
    return [Line(OK, "store", f"{shown} answers; {len(latest)} series"),
            Line(OK if newest is not None else WARN, "last reading stored",
                 _ago(now, newest) if newest is not None else "none yet",
                 "" if newest is not None else "no reading was ever stored: is a device sending?")]

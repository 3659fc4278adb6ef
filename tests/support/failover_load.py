"""What the rule-engine failover tests on PostgreSQL share: who holds which partition (the lease table, read as an
operator would), what the stand-in receiver was told, per alert and kind, and a steady stream of readings in which
each device goes hot at a scheduled time and cools when the test says."""

from __future__ import annotations

import json
import math
import os
import re
import threading
import time
from collections import Counter
from typing import Any, Optional

import paho.mqtt.client as paho
import psycopg

from tests.support.alerting import Receiver

__all__ = ["Stream", "dump_state", "holders", "tally"]

_HEADLINE = re.compile(r"\[(FIRING|RESOLVED) \w+\] (\w+) (d\d+)/")


def holders(url: str) -> dict[int, str]:
    """Partition -> the member holding it now."""
    with psycopg.connect(url, autocommit=True) as conn:
        if conn.execute("SELECT to_regclass('engine_leases')").fetchone() == (None,):
            return {}  # no member has made the table yet
        rows = conn.execute("SELECT p, owner FROM engine_leases WHERE owner IS NOT NULL "
                            "AND expires > extract(epoch from clock_timestamp())").fetchall()
    return {int(p): str(owner) for p, owner in rows}


def dump_state(url: str, keys: list[str]) -> str:
    """What the shared state holds about alert ``keys`` (``rule/series``), every table an alert's message passes
    through, for a failure's report: the engine's state and outbox, the dispatcher's alerts, groups, deliveries,
    and the ledger."""
    like = [f"%{k}%" for k in keys]
    queries = {
        "alert_state": "SELECT key, state, state_since, firing_since FROM alert_state WHERE key = ANY(%s)",
        "notify_outbox": "SELECT seq, key, done, enqueued, substr(body, 1, 160) FROM notify_outbox WHERE key = ANY(%s)"
                         " ORDER BY seq",
        "notify_alerts": "SELECT key, state, fired_at FROM notify_alerts WHERE key = ANY(%s)",
        "notify_told": "SELECT key, receiver, told_at FROM notify_told WHERE key = ANY(%s)",
        "notify_pending": "SELECT id, key, kind, due FROM notify_pending WHERE key = ANY(%s)",
        "notify_deliveries": "SELECT id, title, state, attempts, in_doubt, created, sent_at FROM notify_deliveries"
                             " WHERE keys LIKE ANY(%s) ORDER BY id",
        "ledger": "SELECT seq, kind, key, at FROM ledger WHERE key = ANY(%s) ORDER BY seq",
    }
    out = []
    with psycopg.connect(url, autocommit=True) as conn:
        for table, sql in queries.items():
            try:
                rows = conn.execute(sql, (like if "LIKE" in sql else keys,)).fetchall()
            except psycopg.Error as exc:
                out.append(f"{table}: {exc}")
                continue
            out.append(f"{table}:" + "".join(f"\n  {r}" for r in rows))
    return "\n".join(out)


#: what a message sent again after its send was cut off says first (alerting/notify/courier.py; docs/notifications.md,
#: "Exactly once, and the crash window")
IN_DOUBT = "you may have received it already"


def tally(receiver: Receiver, in_doubt: Optional[bool] = None) -> Counter[tuple[str, str, str]]:
    """(FIRING or RESOLVED, rule, device) -> messages that told it, from the headlines of the receiver's bodies (a
    message of one alert has it in its title, one of several in each of its blocks); ``in_doubt``: only the
    messages sent again after a cut-off send (True), or only the others (False)."""
    out: Counter[tuple[str, str, str]] = Counter()
    for text in receiver.texts():
        if in_doubt is None or (IN_DOUBT in text) == in_doubt:
            out.update(m.groups() for m in _HEADLINE.finditer(text))  # type: ignore[misc]
    return out


def first_told(receiver: Receiver, kind: str, rule: str, device: str) -> float:
    """When the receiver first heard of it (its clock), or inf."""
    for body, at in zip(list(receiver.bodies), list(receiver.times)):
        if any(m.groups() == (kind, rule, device) for m in _HEADLINE.finditer(f"{body.get('title', '')}\n"
                                                                            f"{body.get('message', '')}")):
            return at
    return math.inf


class Stream:
    """Readings of ``devices`` (temperature of sensor t0), each device ``per_second`` times a second, from a thread
    with its own MQTT client (QoS 1): 20 °C, and 40 °C from ``hot_at[device]`` (seconds after :meth:`start`) until
    :attr:`cool_at` (seconds after start; set by the test, inf until then); it stops at :attr:`stop_at`."""

    def __init__(self, port: int, hot_at: dict[str, float], per_second: float = 5.0, root: str = "vigil") -> None:
        self.hot_at, self.period, self.root = hot_at, 1.0 / per_second, root
        self.cool_at = math.inf
        self.stop_at = math.inf
        self.t0 = 0.0
        self.sent = 0
        self.first_hot: dict[str, float] = {}  # device -> the time (ts) of its first hot reading
        self.last_hot: dict[str, float] = {}
        self.first_cool: dict[str, float] = {}  # after its hot ones
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"stream-{os.getpid()}-{time.time()}")
        self.client.max_inflight_messages_set(100)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._run, name="test-stream", daemon=True)
        self._infos: list[Any] = []

    def start(self) -> None:
        self.t0 = time.time()
        self._thread.start()

    def elapsed(self) -> float:
        return time.time() - self.t0

    def _run(self) -> None:
        k = 0
        while not self._halt.is_set():
            at = self.t0 + k * self.period
            delay = at - time.time()
            if delay > 0:
                self._halt.wait(delay)
            t = time.time() - self.t0
            if t >= self.stop_at:
                break
            for d, hot in self.hot_at.items():
                ts = time.time()
                is_hot = hot <= t < self.cool_at
                if is_hot:
                    self.first_hot.setdefault(d, ts)
                    self.last_hot[d] = ts
                elif d in self.first_hot:
                    self.first_cool.setdefault(d, ts)
                body = {"device": d, "sensor": "t0", "metric": "temperature", "value": 40.0 if is_hot else 20.0,
                        "ts": ts, "unit": "°C"}
                self._infos.append(self.client.publish(f"{self.root}/events/{d}/temperature", json.dumps(body), qos=1))
                self.sent += 1
            k += 1

    def done(self) -> bool:
        return not self._thread.is_alive()

    def close(self) -> None:
        """Stop, wait until every reading sent reached the broker, disconnect."""
        self._halt.set()
        self._thread.join(10)
        for info in self._infos:
            info.wait_for_publish(10)
        self.client.loop_stop()
        self.client.disconnect()

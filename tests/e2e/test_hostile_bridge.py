"""Hostile input through the real `vigil bridge` process, on InfluxDB and on SQLite.

A corpus of bad messages in every format (values that are finite as sent but not once converted,
nesting, sizes, invisible characters in names, odd topics), each between good readings: every
good reading is stored exactly once, every bad message is dead-lettered with its reason, and the
bridge is still running. And a poison message: one that the bridge was handling when it was
killed, twice, is dead-lettered on its next delivery instead of handled a third time.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.support.bridge import BridgeProcess, Recorder, publish_many
from tests.support.services import Influxd, Mosquitto, sqlite_says, wait_until
from vigil.core.poison import fingerprint, marked

SOURCES = """
bridge:
  max_payload_bytes: {max_payload}
  sources:
    - {{name: tasmota, format: tasmota, topic: "tele/{{device}}/SENSOR"}}
    - {{name: z2m, format: zigbee2mqtt, topic: "zigbee2mqtt/{{device}}"}}
    - {{name: shelly, format: shelly, topic: "shellies/{{device}}/ext_temperature/{{sensor}}",
       defaults: {{metric: temperature, unit: "°C"}}}}
    - {{name: esphome, format: plain, topic: "esphome/{{device}}/sensor/{{sensor}}/state",
       defaults: {{metric: power, unit: kW}}}}
    - {{name: ha, format: json_path, topic: "home/{{device}}", options: {{value_path: "t"}},
       defaults: {{metric: pressure, unit: psi}}}}
    - {{name: lp, format: line_protocol, topic: "telegraf/{{host}}"}}
"""


def _now() -> float:
    return round(time.time() - 60, 3)


def vj(value: Any, unit: str = "°C", metric: str = "temperature", **extra: Any) -> bytes:
    return json.dumps({"value": value, "ts": _now(), "unit": unit, "metric": metric, **extra},
                      ensure_ascii=True).encode()


def deep(n: int) -> bytes:
    return b'{"value":' + b"[" * n + b"]" * n + b"}"


BIG = 70_000  # over the default bridge.max_payload_bytes (65,536)

# (topic, payload, the reason of its dead letter)
BAD: list[tuple[str, bytes, str]] = [
    # values: finite as sent, not once converted to the stored unit; huge, not finite, not numbers
    ("vigil/readings/bad/kw", vj(1e305, "kW", "power"), "value"),
    ("vigil/readings/bad/psi", vj(1e307, "psi", "pressure"), "value"),
    ("vigil/readings/bad/bar", vj(1e306, "bar", "pressure"), "value"),
    ("vigil/readings/bad/kpa", vj(1e308, "kPa", "pressure"), "value"),
    ("vigil/readings/bad/inhg", vj(1e307, "inHg", "pressure"), "value"),
    ("vigil/readings/bad/mwh", vj(1e306, "MWh", "energy"), "value"),
    ("vigil/readings/bad/kv", vj(1e306, "kV", "voltage"), "value"),
    ("vigil/readings/bad/kv17", vj(1e17, "kV", "voltage"), "value"),
    ("vigil/readings/bad/digits", b'{"value":' + b"9" * 400 + b',"ts":%d,"unit":"C"}' % _now(), "value"),
    ("vigil/readings/bad/e999", b'{"value":1e999,"ts":%d,"unit":"C"}' % _now(), "value"),
    ("vigil/readings/bad/nan", b'{"value":NaN,"ts":%d,"unit":"C"}' % _now(), "json"),
    ("vigil/readings/bad/str", vj("21.5"), "value"),
    ("esphome/bad/sensor/kw/state", b"1e305", "value"),
    ("home/bad-psi", b'{"t": 1e307}', "value"),
    ("tele/bad-f/SENSOR", b'{"DS18B20":{"Temperature":1e308},"TempUnit":"F"}', "value"),
    ("telegraf/h", b"power,device=bad-lp value=1e305", "value"),
    ("shellies/bad/ext_temperature/0", b"1e300", "value"),
    # nesting and size, in every format that parses JSON, and in the others
    ("vigil/readings/bad/deep", deep(30_000), "json"),
    ("tele/bad-deep/SENSOR", deep(30_000), "json"),
    ("zigbee2mqtt/bad-deep", deep(30_000), "json"),
    ("home/bad-deep", deep(30_000), "json"),
    ("vigil/readings/bad/big", b'{"value":1,"pad":"' + b"x" * BIG + b'"}', "too_large"),
    ("tele/bad-big/SENSOR", b"[" * BIG, "too_large"),
    ("zigbee2mqtt/bad-big", b" " * BIG, "too_large"),
    ("home/bad-big", b"{" * BIG, "too_large"),
    ("esphome/bad/sensor/big/state", b"1" * BIG, "too_large"),
    ("shellies/bad/ext_temperature/9", b"2" * BIG, "too_large"),
    ("telegraf/big", b"t,device=x value=1\n" * (BIG // 19 + 1), "too_large"),
    ("vigil/readings/bad/empty", b"", "json"),
    ("vigil/readings/bad/binary", b"\xff\xfe\x00junk", "encoding"),
    # names a reader cannot see or that display reversed
    ("vigil/readings/free\u200bzer/t0", vj(1.0), "name"),
    ("vigil/readings/bidi\u202egnp.exe/t0", vj(1.0), "name"),
    ("vigil/readings/bad/t\u2066", vj(1.0), "name"),
    ("vigil/readings/bad/bom\ufeff", vj(1.0), "name"),
    ("vigil/readings/bad/label", vj(1.0, labels={"room": "lab\u200f2"}), "schema"),
    ("vigil/readings/bad/unit", vj(1.0, "\ud800", "foo"), "unit"),
    ("zigbee2mqtt/z\u2060b", b'{"temperature": 21.5}', "name"),
    ("tele/t\u200d/SENSOR", b'{"DS18B20":{"Temperature":21.5}}', "name"),
    # two readings with lone surrogates for sensor names: two dead letters (their JSON once failed to encode)
    ("tele/sur/SENSOR", b'{"\\ud800":{"Temperature":1},"B\\udfff":{"Temperature":2}}', "name,name"),
    ("telegraf/h", "temperature,device=lp\u202ex value=1".encode(), "name"),
    # odd topics
    ("vigil/readings/a/b/c", vj(1.0), "topic"),
    ("vigil/readings/$dollar/t0", vj(1.0), "name"),
]


def good_messages() -> list[tuple[str, bytes, str]]:
    """One good reading in each format, on its own device: (topic, payload, device)."""
    return [
        ("vigil/readings/good-vj-{n}/t0", vj(21.5), "good-vj-{n}"),
        ("tele/good-tas-{n}/SENSOR", b'{"DS18B20":{"Temperature":21.5},"TempUnit":"C"}', "good-tas-{n}"),
        ("zigbee2mqtt/good-z2m-{n}", b'{"temperature":21.5}', "good-z2m-{n}"),
        ("esphome/good-esp-{n}/sensor/p/state", b"1.5", "good-esp-{n}"),
        ("home/good-ha-{n}", b'{"t": 14.7}', "good-ha-{n}"),
        ("telegraf/h", b"temperature,device=good-lp-{n} value=21.5", "good-lp-{n}"),
    ]


def interleaved() -> tuple[list[tuple[str, bytes]], set[str]]:
    """The bad corpus, each bad message between two good ones; and the good devices."""
    out: list[tuple[str, bytes]] = []
    devices: set[str] = set()
    kinds = good_messages()
    n = 0
    for topic, payload, _ in BAD:
        for _ in range(2 if n == 0 else 1):
            t, p, d = kinds[n % len(kinds)]
            out.append((t.format(n=n), p.replace(b"{n}", str(n).encode())))
            devices.add(d.format(n=n))
            n += 1
        out.append((topic, payload))
        t, p, d = kinds[n % len(kinds)]
        out.append((t.format(n=n), p.replace(b"{n}", str(n).encode())))
        devices.add(d.format(n=n))
        n += 1
    return out, devices


class Stored:
    """Readings per device in the bridge's store, whichever it is."""

    def __init__(self, kind: str, tmp_path: Path, influxd: Influxd | None = None, db: str = "") -> None:
        self.kind, self.influxd, self.db = kind, influxd, db
        self.path = tmp_path / "vigil.db"
        self.url = influxd.url(db) if influxd is not None else f"sqlite:///{self.path}"

    def counts(self) -> Counter[str]:
        if self.influxd is None:
            if not self.path.exists():
                return Counter()
            with sqlite3.connect(self.path) as conn:
                try:
                    return Counter(dict(conn.execute("SELECT device, count(*) FROM readings GROUP BY device")))
                except sqlite3.OperationalError:
                    return Counter()
        res = self.influxd.query('SELECT count("value") FROM /.*/ GROUP BY "device"', db=self.db)
        out: Counter[str] = Counter()
        for s in res["results"][0].get("series", []):
            out[s["tags"]["device"]] += int(s["values"][0][1])
        return out


@pytest.fixture(params=["influxdb", "sqlite"])
def stored(request: pytest.FixtureRequest, tmp_path: Path) -> Stored:
    if request.param == "sqlite":
        return Stored("sqlite", tmp_path)
    influxd: Influxd = request.getfixturevalue("influxd")
    return Stored("influxdb", tmp_path, influxd, request.getfixturevalue("influx_db"))


def bridge_with(mosquitto: Mosquitto, stored: Stored, tmp_path: Path, max_payload: int = 65_536) -> BridgeProcess:
    conf = tmp_path / "vigil.yaml"
    conf.write_text(SOURCES.format(max_payload=max_payload))
    return BridgeProcess(mosquitto, stored.url, tmp_path / "bridge", extra=["-c", str(conf)])


def dead_letters(recorder: Recorder) -> list[dict[str, Any]]:
    return [d for _, d in recorder.json()]


def test_hostile_corpus_is_dead_lettered_with_reasons_and_every_good_reading_stored_once(
        mosquitto: Mosquitto, stored: Stored, tmp_path: Path) -> None:
    messages, good = interleaved()
    recorder = Recorder(mosquitto, "vigil/deadletter/#")
    bridge = bridge_with(mosquitto, stored, tmp_path)
    bridge.start()
    try:
        publish_many(mosquitto, messages)
        assert wait_until(lambda: len(recorder.messages) >= len(BAD) + 1 and sum(stored.counts().values()) >= len(good),
                          60), (len(recorder.messages), stored.counts())
        time.sleep(0.5)  # nothing more comes
        assert stored.counts() == Counter(dict.fromkeys(good, 1))
        letters = dead_letters(recorder)
        expected = Counter((topic, reason) for topic, _, reasons in BAD for reason in reasons.split(","))
        assert Counter((d["topic"], d["reason"]) for d in letters) == expected
        for d in letters:
            assert d["detail"] and "Error" not in d["reason"], d  # a sentence, not a traceback
        assert bridge.proc is not None and bridge.proc.poll() is None  # still running
        assert bridge.metric("vigil_bridge_received_total") == len(messages)
        assert bridge.metric("vigil_bridge_consuming") == 1
        assert bridge.metric("vigil_bridge_restarts_total") == 0
        assert "Traceback" not in bridge.output()
    finally:
        recorder.close()
        bridge.stop()


def test_a_message_in_hand_when_the_bridge_was_killed_twice_is_dead_lettered_as_poison(
        mosquitto: Mosquitto, stored: Stored, tmp_path: Path) -> None:
    # A 16 MB line-protocol message of 240,000 readings takes the bridge seconds to parse: long
    # enough to kill it, from outside, while that message is in hand. Killed in the middle of it
    # twice, the bridge dead-letters it on the third delivery; everything around it is stored once.
    now = time.time() - 600
    lines = [f"temperature,device=heavy,sensor=s{i} value=1 {int((now + i / 1000) * 1e9)}" for i in range(240_000)]
    heavy = ("telegraf/heavy", "\n".join(lines).encode())
    fp = fingerprint(*heavy)
    before = [(f"vigil/readings/good-{i}/t0", vj(float(i))) for i in range(100)]
    after = [(f"vigil/readings/good-{i}/t0", vj(float(i))) for i in range(100, 200)]
    recorder = Recorder(mosquitto, "vigil/deadletter/#")
    bridge = bridge_with(mosquitto, stored, tmp_path, max_payload=16 * 1024 * 1024)
    spool = tmp_path / "bridge" / "bridge-spool.db"
    bridge.start()
    publisher = threading.Thread(target=publish_many, args=(mosquitto, [*before, heavy, *after]))
    publisher.start()
    try:
        # 1: killed while the heavy message is in hand within a batch
        assert wait_until(lambda: fp in marked(spool), 60)
        bridge.kill()
        publisher.join(60)
        # 2: it comes back as a suspect, handled alone; killed again while it is
        bridge.start()
        assert wait_until(sqlite_says(spool, "SELECT count(*) FROM suspects WHERE fp = ? AND alone = 1", fp), 60)
        bridge.kill()
        # 3: poison: dead-lettered, not handled a third time
        bridge.start()
        assert wait_until(lambda: any(d["reason"] == "poison" for d in dead_letters(recorder)), 30), \
            bridge.output()[-3000:]
        good = {f"good-{i}" for i in range(200)}
        assert wait_until(lambda: set(stored.counts()) >= good, 30)
        time.sleep(0.5)
        counts = stored.counts()
        assert {d: counts[d] for d in good} == dict.fromkeys(good, 1)
        [letter] = dead_letters(recorder)
        assert (letter["topic"], letter["reason"], letter["size"]) == ("telegraf/heavy", "poison", len(heavy[1]))
        assert "stopped twice while handling this message" in letter["detail"]
        assert bridge.metric("vigil_bridge_suspects") == 0
        assert sqlite_says(spool, "SELECT count(*) = 0 FROM suspects")()
        assert bridge.proc is not None and bridge.proc.poll() is None
    finally:
        publisher.join(60)
        recorder.close()
        bridge.stop()

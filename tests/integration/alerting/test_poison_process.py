"""A message that kills the real `vigil alerting` process while in hand, twice, is refused on its next
delivery instead of handled a third time: no crash loop. Every event around it is still evaluated,
and its alert reaches a local HTTP receiver exactly once.

The message: a rules reload, which takes the engine a second or so with a folder of 3,000 rules; the
engine is killed (SIGKILL) while it is in hand, as its marks file shows."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from alerting.inhand import marked
from tests.support.alerting import EngineProcess, MqttProbe, Receiver, wait_for
from tests.support.services import Mosquitto, sqlite_says
from vigil.core.poison import fingerprint

pytestmark = pytest.mark.integration


def test_a_message_in_hand_when_the_engine_was_killed_twice_is_refused_and_every_event_alerts_once(
        tmp_path: Path, mosquitto: Mosquitto, probe: MqttProbe, receiver: Receiver,
        engine_process: Callable[[list[str]], EngineProcess]) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "a.yaml").write_text(f"""
receivers:
  ops: ["{receiver.url}"]
grouping: {{group_by: [rule, series], group_wait: 0s, group_interval: 1s}}
rules:
  - {{name: hot, match: {{metric: temperature}}, above: 30, notify: ops, message: "{{{{ device }}}} is hot"}}
""")
    health: list[dict[str, Any]] = []
    probe.client.message_callback_add("vigil/health/alerting/#", lambda c, u, m: health.append(json.loads(m.payload)))
    probe.client.subscribe("vigil/health/alerting/#", qos=1)
    engine = engine_process(["alerting", "--broker", mosquitto.url, "--rules", str(rules),
                             "--state", str(tmp_path / "alerts.db")])
    marks = tmp_path / "alerts.poison.db"
    engine.start()
    wait_for(lambda: "connected to the broker" in engine.output(), 30, "the engine to connect")
    for i in range(5):
        probe.event(f"good-{i}", 35.0)
    wait_for(lambda: len(receiver.bodies) >= 5, 30, "the alerts before the poison message")
    big = rules / "big.yaml"  # a reload now takes a second or so: long enough to be caught in hand
    big.write_text("rules:\n" + "".join(f"  - {{name: r{i}, match: {{metric: m{i}}}, above: 1}}\n"
                                         for i in range(3000)))
    poison = ("vigil/control/rules/reload", b"poison")
    fp = fingerprint(*poison)
    probe.raw(*poison)
    for i in range(5, 10):
        probe.event(f"good-{i}", 35.0)
    # 1: killed while the reload is in hand within a batch
    wait_for(lambda: fp in marked(marks), 60, "the reload in hand")
    engine.kill()
    # 2: it comes back a suspect and is handled alone; killed again while it is
    engine.start()
    wait_for(sqlite_says(marks, "SELECT count(*) FROM suspects WHERE fp = ? AND alone = 1", fp), 90,
             "the reload in hand alone")
    engine.kill()
    big.unlink()  # a reload would now be quick: handled, it would say "rules reloaded"
    # 3: poison: refused (logged with its topic, counted, acknowledged), not handled a third time
    engine.start()
    expected = {f"[FIRING warning] hot good-{i}/t0/temperature" for i in range(10)}
    wait_for(lambda: {b.get("title") for b in receiver.bodies} == expected, 90,
             f"every alert; got {[b.get('title') for b in receiver.bodies]}")
    wait_for(lambda: health and health[-1].get("refused", {}).get("poison") == 1, 30,
             f"the engine's health to count the poison message: {health[-1:]}")
    wait_for(sqlite_says(marks, "SELECT count(*) = 0 FROM suspects"), 10, "no suspect left")
    log = engine.output()
    assert log.count("refused a message on 'vigil/control/rules/reload' (poison)") == 1, log[-3000:]
    assert log.count("rules reloaded") == 0, log[-3000:]  # never handled to the end
    assert engine.proc is not None and engine.proc.poll() is None, log[-3000:]
    assert Counter(b.get("title") for b in receiver.bodies) == Counter(dict.fromkeys(expected, 1))
    for i in range(10, 13):  # and the engine goes on
        probe.event(f"good-{i}", 35.0)
    wait_for(lambda: len(receiver.bodies) == 13, 30, "the alerts after it")

"""The engine in-process against a private Mosquitto, a private influxd and a local HTTP receiver."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.alerting import MqttProbe, Receiver
from tests.support.freezers import freezer_rules
from vigil.app.cli import main
from vigil.app.commands.alerting import serve_alerting
from vigil.app.config import load_config
from vigil.core.event import Event
from vigil.core.stores import open_store

pytestmark = pytest.mark.integration


async def until(check: Any, timeout: float = 15.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@contextlib.asynccontextmanager
async def running(tmp_path: Path, broker_url: str, rules: str, store_url: str | None = None,
                  grace: str = "60s") -> AsyncIterator[None]:
    (tmp_path / "rules.yaml").write_text(rules)
    overrides = {"mqtt.url": (broker_url, "--broker"), "alerting.rules": (str(tmp_path / "rules.yaml"), "--rules"),
                 "alerting.state": (str(tmp_path / "alerts.db"), "--state"),
                 "alerting.device_reconnect_grace": (grace, "vigil.yaml")}
    if store_url:
        overrides["store.url"] = (store_url, "--store")
    config = load_config(None, overrides=overrides)
    ready = asyncio.Event()
    task = asyncio.create_task(serve_alerting(config, ready=ready))
    try:
        await asyncio.wait_for(ready.wait(), 10)
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_failing_receiver_gets_the_notification_once_and_ack_is_published(
        tmp_path: Path, mosquitto: Any, probe: MqttProbe, receiver: Receiver) -> None:
    receiver.fail_first = 3
    rules = freezer_rules(receiver.url, grouping="grouping: {group_wait: 0s, group_interval: 1s}\n"
                                                "delivery: {retry_initial: 100ms, retry_max: 200ms}")
    async with running(tmp_path, mosquitto.url, rules):
        await asyncio.to_thread(probe.event, "freezer-{{ 7*7 }}", -3.04)
        await until(lambda: receiver.bodies, what="the notification after three failures")
        await asyncio.sleep(1.0)
        assert receiver.attempts == 4
        assert [b["title"] for b in receiver.bodies] == [
            "[FIRING critical] freezer-warm freezer-{{ 7*7 }}/t0/temperature"]
        assert receiver.bodies[0]["message"].startswith("freezer-{{ 7*7 }} is at -3.0 °C\nValue: -3.0\n")
        key = "freezer-warm/freezer-{{ 7*7 }}/t0/temperature"
        await asyncio.to_thread(probe.raw, "vigil/ack/" + key, json.dumps({"by": "ana", "comment": "defrosting"}))
        acked = await until(lambda: [b for b in probe.alerts.get(key, []) if b.get("acknowledged_by") == "ana"],
                            what="the acknowledged state")
        assert acked[-1]["state"] == "firing" and acked[-1]["ack_comment"] == "defrosting"


async def test_store_rule_watches_points_written_by_other_tools(
        tmp_path: Path, mosquitto: Any, probe: MqttProbe, receiver: Receiver, influxd: Any, influx_db: str) -> None:
    url = influxd.url(influx_db)
    store = open_store(url)
    now = time.time()
    store.write([Event("cellar", "t0", "temperature", 15.0 + i * 0.1, now - 300 + i * 30) for i in range(10)])
    rules = f"""
receivers:
  ops: ["{receiver.url}"]
grouping: {{group_wait: 0s, group_interval: 1s}}
rules:
  - name: cellar-avg
    source: store
    every: 1s
    match: {{metric: temperature, device: cellar}}
    aggregate: {{fn: avg, window: 10m, above: 12}}
    notify: ops
    message: "{{{{ device }}}} averaged {{{{ value | round(2) }}}} °C over 10 minutes"
"""
    try:
        async with running(tmp_path, mosquitto.url, rules, store_url=url):
            await until(lambda: receiver.bodies, what="the store rule's notification")
            assert receiver.bodies[0]["title"] == "[FIRING warning] cellar-avg cellar/t0/temperature"
            assert receiver.bodies[0]["message"].startswith("cellar averaged 15.45 °C over 10 minutes")
    finally:
        store.close()


def test_backtest_replays_influxdb_history_and_sends_nothing(
        tmp_path: Path, influxd: Any, influx_db: str, receiver: Receiver, capsys: pytest.CaptureFixture[str]) -> None:
    url = influxd.url(influx_db)
    store = open_store(url)
    t0 = 1_700_000_000.0
    values = [-20.0] * 5 + [-10.0] * 10 + [-20.0] * 5   # warm from minute 5 to minute 15
    try:
        store.write([Event("freezer-1", "t0", "temperature", v, t0 + i * 60) for i, v in enumerate(values)])
        store.write([Event("oven", "t0", "temperature", 200.0, t0 + i * 60) for i in range(20)])
    finally:
        store.close()
    (tmp_path / "rules.yaml").write_text(f"""
receivers:
  ops: ["{receiver.url}"]
rules:
  - name: freezer-warm
    match: {{metric: temperature, device: "freezer-*"}}
    above: -15
    for: 5m
    notify: ops
    message: "{{{{ device }}}} at {{{{ value }}}}"
""")
    code = main(["rules", "backtest", str(tmp_path / "rules.yaml"), "--store", url,
                 "--from", str(t0), "--to", str(t0 + 3600)])
    out = capsys.readouterr().out
    assert code == 0, out
    lines = out.splitlines()
    assert lines[0] == ("backtest 2023-11-14 22:13:20 UTC .. 2023-11-14 23:13:20 UTC: 1 series, 20 points, "
                        "1 rules (nothing is sent)")
    assert lines[1:] == [
        "2023-11-14 22:23:20 UTC  FIRING    freezer-warm freezer-1/t0/temperature: freezer-1 at -10.0",
        "2023-11-14 22:28:20 UTC  RESOLVED  freezer-warm freezer-1/t0/temperature: freezer-1 at -20.0",
        "2 notifications would have gone out (1 firing)",
    ]
    assert receiver.attempts == 0


async def test_device_offline_from_its_last_will_and_rules_reload(
        tmp_path: Path, mosquitto: Any, probe: MqttProbe, receiver: Receiver) -> None:
    rules = f"""
receivers:
  ops: ["{receiver.url}"]
grouping: {{group_wait: 0s, group_interval: 1s}}
rules:
  - name: device-offline
    offline: true
    match: {{device: "freezer-*"}}
    severity: critical
    notify: ops
    message: "{{{{ device }}}} went offline"
"""
    # a fresh engine hears its input from the first event, then gives devices device_reconnect_grace to
    # come back before their offline status counts: none here
    async with running(tmp_path, mosquitto.url, rules, grace="0s"):
        await asyncio.to_thread(probe.event, "oven", 20.0)
        await asyncio.to_thread(probe.raw, "vigil/status/freezer-1", "offline", True)
        await until(lambda: receiver.bodies, what="the offline notification")
        assert receiver.bodies[0]["title"] == "[FIRING critical] device-offline freezer-1/device/status"
        assert receiver.bodies[0]["message"].startswith("freezer-1 went offline")

        # a broken file is refused and the rules in force stay
        (tmp_path / "rules.yaml").write_text(rules + "  - {name: broken, above: warm}\n")
        await asyncio.to_thread(probe.raw, "vigil/control/rules/reload", "")
        await asyncio.sleep(0.5)
        (tmp_path / "rules.yaml").write_text(rules.replace("went offline", "is gone") + """
  - name: hot
    match: {metric: temperature}
    above: 30
    notify: ops
""")
        await asyncio.to_thread(probe.raw, "vigil/control/rules/reload", "")
        await asyncio.sleep(0.5)
        await asyncio.to_thread(probe.event, "oven", 250.0)
        await until(lambda: len(receiver.bodies) >= 2, what="the new rule's notification")
        assert receiver.bodies[1]["title"] == "[FIRING warning] hot oven/t0/temperature"
        await asyncio.to_thread(probe.raw, "vigil/status/freezer-1", '{"status": "online"}', True)
        await until(lambda: len(receiver.bodies) >= 3, what="the resolve")
        assert receiver.bodies[2]["title"] == "[RESOLVED critical] device-offline freezer-1/device/status"
        assert receiver.bodies[2]["message"].startswith("freezer-1 is gone")


async def test_engine_reconnects_after_the_broker_restarts(
        tmp_path: Path, mosquitto: Any, receiver: Receiver) -> None:
    rules = f"""
receivers:
  ops: ["{receiver.url}"]
grouping: {{group_by: [device], group_wait: 0s, group_interval: 1s}}
rules:
  - {{name: hot, above: 30, notify: ops, message: "{{{{ device }}}} at {{{{ value }}}}"}}
"""
    async with running(tmp_path, mosquitto.url, rules):
        await asyncio.to_thread(mosquitto.stop)
        await asyncio.sleep(1.0)
        await asyncio.to_thread(mosquitto.start)
        probe = await asyncio.to_thread(MqttProbe, mosquitto.port)
        try:
            await asyncio.sleep(0.5)
            for _ in range(40):  # until the engine is back: the event waits in its persistent session anyway
                await asyncio.to_thread(probe.event, "oven", 250.0)
                if receiver.bodies:
                    break
                await asyncio.sleep(0.5)
            await until(lambda: receiver.bodies, timeout=30, what="a notification after the broker restart")
            assert receiver.bodies[0]["title"] == "[FIRING warning] hot oven/t0/temperature"
            await until(lambda: "firing" in probe.states("hot/oven/t0/temperature"), what="the retained state")
        finally:
            await asyncio.to_thread(probe.close)

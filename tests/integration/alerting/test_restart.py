"""SIGKILL a real ``vigil alerting`` while alerts are pending and firing: nothing is lost, nothing repeated but
a send the kill cut off (resent marked as a possible duplicate, docs/notifications.md)."""

from __future__ import annotations

import json
import re
import sqlite3
import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable

import pytest

from tests.support.alerting import EngineProcess, MqttProbe, Receiver, wait_for

pytestmark = pytest.mark.integration

RULES = """
receivers:
  ops: ["{url}"]
grouping: {group_by: [device], group_wait: 0s, group_interval: 1s}
rules:
  - name: warm
    match: {metric: temperature}
    above: 5
    for: 2s
    severity: critical
    notify: ops
    message: "{{ device }} is at {{ value }} °C"
"""
IN_DOUBT = "(Vigil stopped while sending this message; you may have received it already.)\n"


def outbox(state: Path) -> list[dict[str, Any]]:
    with sqlite3.connect(state) as conn:
        return [json.loads(r[0]) for r in conn.execute("SELECT body FROM notify_outbox ORDER BY seq")]


def unsent(state: Path) -> int:
    """Messages not yet known to be delivered: waiting, being sent or sent again after a crash."""
    with sqlite3.connect(state) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM notify_deliveries WHERE state != 'sent'").fetchone()[0])


def test_sigkill_while_pending_and_firing(tmp_path: Path, mosquitto: Any, probe: MqttProbe, receiver: Receiver,
                                          engine_process: Callable[[list[str]], EngineProcess]) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES.replace("{url}", receiver.url))
    state = tmp_path / "alerts.db"
    argv = ["alerting", "--broker", mosquitto.url, "--rules", str(rules), "--state", str(state)]
    first = engine_process(argv)
    first.start()
    wait_for(lambda: "connected to the broker" in first.output(), what="the engine to connect")
    probe.event("b", 10.0)
    probe.event("c", 10.0)
    wait_for(lambda: "firing" in probe.states("warm/b/t0/temperature")
             and "firing" in probe.states("warm/c/t0/temperature"), what="b and c firing")
    probe.event("a", 10.0)
    pending = wait_for(lambda: [x for x in probe.alerts.get("warm/a/t0/temperature", []) if x["state"] == "pending"],
                       what="a pending")
    first.kill()
    pending_since = pending[0]["at"]

    probe.event("c", 0.0)  # c recovers while the engine is down: the broker keeps it for the session
    time.sleep(2.5)        # a's for: 2s runs out while the engine is down
    second = engine_process(argv)
    second.start()
    wait_for(lambda: "firing" in probe.states("warm/a/t0/temperature"), what="a firing after the restart")
    wait_for(lambda: "resolved" in probe.states("warm/c/t0/temperature"), what="c resolved after the restart")
    fired_a = [x for x in probe.alerts["warm/a/t0/temperature"] if x["state"] == "firing"][-1]
    assert fired_a["at"] == pytest.approx(pending_since + 2.0, abs=1e-6)  # at its original time
    assert fired_a["message"] == "a is at 10.0 °C"

    second.kill()
    third = engine_process(argv)
    third.start()
    wait_for(lambda: third.output().count("connected to the broker") >= 1, what="the third engine")
    time.sleep(1.0)
    sent = [(x["state"], x["series"]) for x in outbox(state)]
    assert sorted(sent) == sorted([
        ("firing", "b/t0/temperature"),
        ("firing", "c/t0/temperature"),
        ("firing", "a/t0/temperature"),
        ("resolved", "c/t0/temperature"),
    ])
    # Each transition reaches the receiver once. The one exception is documented (docs/notifications.md, "Exactly
    # once, and the crash window"): a SIGKILL after a send was marked sending and before it was marked sent (the
    # test kills the engine just after alerts change, when that is likely) makes the next engine log it and send it
    # again, marked as a possible duplicate. So: one plain copy at most, and only logged resends carry the note.
    titles = {
        "[FIRING critical] warm a/t0/temperature",
        "[FIRING critical] warm b/t0/temperature",
        "[FIRING critical] warm c/t0/temperature",
        "[RESOLVED critical] warm c/t0/temperature",
    }
    wait_for(lambda: titles <= {b["title"] for b in receiver.bodies} and not unsent(state), what="all sent")
    resent = Counter(re.findall(r"sending '(.+?)' to \S+ again: Vigil stopped during its send",
                                second.output() + third.output()))
    assert {b["title"] for b in receiver.bodies} == titles
    for title in titles:
        copies = [b["message"] for b in receiver.bodies if b["title"] == title]
        noted = [m for m in copies if m.startswith(IN_DOUBT)]
        assert len(copies) - len(noted) <= 1, f"{title} sent twice without a crash in its send: {copies}"
        assert len(noted) <= resent[title], f"{title}: {len(noted)} resends, {resent[title]} logged: {copies}"
    by_title = {b["title"]: b["message"].removeprefix(IN_DOUBT) for b in receiver.bodies}
    assert by_title["[FIRING critical] warm a/t0/temperature"].startswith("a is at 10.0 °C\nValue: 10\nFiring since ")
    assert by_title["[RESOLVED critical] warm c/t0/temperature"].startswith("c is at 0.0 °C\nFired for ")

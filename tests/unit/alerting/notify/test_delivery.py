"""Delivery behaviour on a ManualClock: what a person receives, and when."""

from __future__ import annotations

import json

import pytest

from alerting.engine import Engine
from alerting.notify import RecordingSender
from alerting.rules import RuleSet
from alerting.service import AlertService
from alerting.settings import AlertingSettings
from alerting.transition import AlertState, Severity
from tests.support.dispatcher import START, Harness, config, transition
from vigil.core.settings import MqttSettings

TITLE = "[FIRING critical] freezer-warm freezer-1/t0/temperature"


async def test_firing_waits_for_group_wait_then_sends_title_and_body(h: Harness) -> None:
    h.enqueue(transition(message="freezer-1 is at -12.5 °C since 20:26"))
    await h.at(0)
    await h.at(29)
    assert h.sender.sent == []
    await h.at(30)
    [m] = h.sender.sent
    assert m.title == TITLE
    assert m.urls == ("json://127.0.0.1:9/staff",)
    assert m.body.splitlines() == [
        "freezer-1 is at -12.5 °C since 20:26",
        "Value: -12.5",
        "Firing since 2026-05-28 20:26:40 UTC (30s).",
    ]
    assert m.severity is Severity.CRITICAL and not m.resolved


async def test_resolved_says_resolved_and_how_long_it_fired(h: Harness) -> None:
    h.enqueue(transition(at=START))
    await h.at(0)
    await h.at(30)
    h.enqueue(transition(state=AlertState.RESOLVED, at=START + 750, message="freezer-1 is back at -18 °C"))
    await h.at(750)
    await h.at(780)
    assert h.titles() == [TITLE, "[RESOLVED critical] freezer-warm freezer-1/t0/temperature"]
    resolved = h.sender.sent[1]
    assert resolved.resolved
    assert resolved.body.splitlines() == [
        "freezer-1 is back at -18 °C",
        "Fired for 12m30s, from 2026-05-28 20:26:40 UTC to 2026-05-28 20:39:10 UTC.",
    ]


async def test_resolved_before_anyone_was_told_sends_nothing(h: Harness) -> None:
    h.enqueue(transition(at=START))
    await h.at(5)
    h.enqueue(transition(state=AlertState.RESOLVED, at=START + 10))
    await h.at(10)
    await h.at(3600)
    assert h.sender.sent == []


async def test_alerts_in_one_group_arrive_in_one_message_listing_each(h: Harness) -> None:
    for i, at in enumerate((0, 10, 20)):
        h.enqueue(transition(series=f"freezer-{i}/t0/temperature", at=START + at))
        await h.at(at)
    await h.at(30)
    [m] = h.sender.sent
    assert m.title == "[FIRING 3] freezer-warm (3 alerts)"
    headlines = [line for line in m.body.splitlines() if line.startswith("- ")]
    assert headlines == [f"- [FIRING critical] freezer-warm freezer-{i}/t0/temperature" for i in range(3)]
    # a fourth alert of the same group is news: it waits group_wait (30s), not group_interval (5m)
    h.enqueue(transition(series="freezer-9/t0/temperature", at=START + 60))
    await h.at(60)
    await h.at(89)
    assert len(h.sender.sent) == 1
    await h.at(90)
    assert h.titles()[1] == "[FIRING critical] freezer-warm freezer-9/t0/temperature"


async def test_different_rules_are_different_groups(h: Harness) -> None:
    h.enqueue(transition(rule="a"), transition(rule="b"))
    await h.at(0)
    await h.at(30)
    assert sorted(h.titles()) == ["[FIRING critical] a freezer-1/t0/temperature",
                                  "[FIRING critical] b freezer-1/t0/temperature"]


async def test_repeat_interval_renotifies_until_acknowledged(h: Harness) -> None:
    h.enqueue(transition())
    await h.at(0)
    await h.at(30)
    await h.at(30 + 4 * 3600 - 1)
    assert len(h.sender.sent) == 1
    await h.at(30 + 4 * 3600)
    await h.at(30 + 4 * 3600 + 300)  # the repeat joins its group, which may send every 5m
    assert h.titles() == [TITLE, TITLE]
    assert "Still firing and not acknowledged." in h.sender.sent[1].body
    assert h.dispatcher.acknowledge("freezer-warm/freezer-1/t0/temperature", "ana", "door fixed")
    await h.at(30 + 12 * 3600)
    assert len(h.sender.sent) == 2
    [alert] = h.dispatcher.status().alerts
    assert (alert.acked_by, alert.ack_comment) == ("ana", "door fixed")


async def test_acknowledge_of_unknown_alert_is_false(h: Harness) -> None:
    assert not h.dispatcher.acknowledge("no-rule/x/y/z", "ana")


async def test_escalation_reaches_the_next_receiver_when_nobody_acknowledges(tmp_path) -> None:  # type: ignore[no-untyped-def]
    h = Harness(tmp_path / "a.db", config(escalation=[{"after": "15m", "receivers": ["manager"],
                                                       "match": {"severity": "critical"}}]))
    try:
        h.enqueue(transition())
        await h.at(0)
        await h.at(30)
        await h.at(15 * 60 - 1)
        assert [m.urls for m in h.sender.sent] == [("json://127.0.0.1:9/staff",)]
        await h.at(15 * 60)
        await h.at(15 * 60 + 30)
        assert h.sender.sent[1].urls == ("json://127.0.0.1:9/manager",)
        assert h.sender.sent[1].title == "[ESCALATED critical] freezer-warm freezer-1/t0/temperature"
        assert "Nobody acknowledged it in 15m30s; escalated to you." in h.sender.sent[1].body
        # resolve: both who were told hear it
        h.enqueue(transition(state=AlertState.RESOLVED, at=START + 1000))
        await h.at(1000)
        await h.at(1300)
        assert sorted(m.urls[0].rsplit("/", 1)[1] for m in h.sender.sent[2:]) == ["manager", "staff"]
    finally:
        h.close()


async def test_acknowledged_alert_does_not_escalate(tmp_path) -> None:  # type: ignore[no-untyped-def]
    h = Harness(tmp_path / "a.db", config(escalation=[{"after": "15m", "receivers": ["manager"]}]))
    try:
        h.enqueue(transition())
        await h.at(0)
        await h.at(30)
        h.dispatcher.acknowledge("freezer-warm/freezer-1/t0/temperature", "ana")
        await h.at(3600)
        assert len(h.sender.sent) == 1
    finally:
        h.close()


async def test_device_offline_inhibits_its_own_temperature_alerts_only(tmp_path) -> None:  # type: ignore[no-untyped-def]
    cfg = config(inhibit=[{"source": {"rule": "device-offline"}, "target": {"metric": "temperature"},
                           "equal": ["device"]}])
    h = Harness(tmp_path / "a.db", cfg)
    try:
        h.enqueue(transition(rule="device-offline", series="freezer-1/status/status", severity=Severity.WARNING))
        h.enqueue(transition(series="freezer-1/t0/temperature"), transition(series="freezer-2/t0/temperature"))
        await h.at(0)
        await h.at(30)
        titles = sorted(h.titles())
        assert titles == ["[FIRING critical] freezer-warm freezer-2/t0/temperature",
                          "[FIRING warning] device-offline freezer-1/status/status"]
        [inhibited] = [a for a in h.dispatcher.status().alerts if a.series == "freezer-1/t0/temperature"]
        assert inhibited.quiet == "inhibited"
        # the device comes back: the still-firing temperature alert is sent
        h.enqueue(transition(rule="device-offline", series="freezer-1/status/status",
                             state=AlertState.RESOLVED, at=START + 100))
        await h.at(100)
        await h.at(400)
        assert TITLE in h.titles()
    finally:
        h.close()


async def test_silence_keeps_quiet_until_it_expires(h: Harness) -> None:
    sid = h.dispatcher.add_silence({"device": "freezer-*"}, START + 3600, by="ana", comment="defrosting")
    h.enqueue(transition())
    await h.at(0)
    await h.at(30)
    await h.at(600)
    assert h.sender.sent == []
    [silence] = h.dispatcher.status().silences
    assert (silence.id, silence.by, silence.comment) == (sid, "ana", "defrosting")
    assert h.dispatcher.expire_silence(sid)
    assert not h.dispatcher.expire_silence(sid)
    await h.at(601)
    await h.at(631)
    assert h.titles() == [TITLE]


async def test_silence_runs_out_by_itself(h: Harness) -> None:
    h.dispatcher.add_silence({"rule": "freezer-warm"}, START + 600, by="ana")
    h.enqueue(transition())
    await h.at(0)
    await h.at(30)
    await h.at(599)
    assert h.sender.sent == []
    await h.at(600)
    await h.at(630)
    assert h.titles() == [TITLE]


async def test_static_silence_from_the_rules_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    h = Harness(tmp_path / "a.db", config(silences=[{"match": {"device": "freezer-1"},
                                                     "until": "2026-05-29T00:00:00Z"}]))
    try:
        h.enqueue(transition(), transition(series="freezer-2/t0/temperature"))
        await h.at(0)
        await h.at(30)
        assert h.titles() == ["[FIRING critical] freezer-warm freezer-2/t0/temperature"]
    finally:
        h.close()


async def test_routes_by_severity_and_label_globs_with_continue(tmp_path) -> None:  # type: ignore[no-untyped-def]
    cfg = config(receivers={"staff": ["json://h/staff"], "manager": ["json://h/manager"], "site": ["json://h/site"]},
                 routes=[{"match": {"severity": "critical"}, "receivers": ["manager"], "continue": True},
                         {"match": {"site": "kitchen-*"}, "receivers": ["site"]},
                         {"match": {}, "receivers": ["staff"]}])
    h = Harness(tmp_path / "a.db", cfg)
    try:
        h.enqueue(transition(rule="a", labels={"site": "kitchen-2"}, notify=()),
                  transition(rule="b", severity=Severity.WARNING, labels={"site": "lab"}, notify=()))
        await h.at(0)
        await h.at(30)
        got = sorted((m.title.split()[2], m.urls[0].rsplit("/", 1)[1]) for m in h.sender.sent)
        assert got == [("a", "manager"), ("a", "site"), ("b", "staff")]
    finally:
        h.close()


async def test_flapping_sends_one_message_then_stays_quiet(h: Harness) -> None:
    h.enqueue(transition(state=AlertState.FLAPPING, previous=AlertState.FIRING))
    await h.at(0)
    await h.at(30)
    await h.at(10 * 3600)
    assert h.titles() == ["[FLAPPING critical] freezer-warm freezer-1/t0/temperature"]
    assert "no more messages until it settles" in h.sender.sent[0].body


async def test_same_transition_enqueued_twice_is_sent_once(h: Harness) -> None:
    t = transition()
    h.enqueue(t)
    h.enqueue(t)
    await h.at(0)
    await h.at(30)
    await h.at(60)
    assert h.titles() == [TITLE]


async def test_reload_sends_to_the_new_receivers(h: Harness) -> None:
    h.dispatcher.reload(config(receivers={"staff": ["json://new/staff"]}))
    h.enqueue(transition())
    await h.at(0)
    await h.at(30)
    assert h.sender.sent[0].urls == ("json://new/staff",)


async def test_receiver_removed_by_reload_is_logged_not_crashed(h: Harness, caplog) -> None:  # type: ignore[no-untyped-def]
    h.enqueue(transition(notify=("ghost",)))
    await h.at(0)
    await h.at(30)
    assert h.sender.sent == []
    assert "receiver 'ghost' is no longer configured" in caplog.text


async def test_receivers_in_status_show_who_was_told(h: Harness) -> None:
    h.enqueue(transition())
    await h.at(0)
    await h.at(30)
    [a] = h.dispatcher.status().alerts
    assert (a.key, a.state, a.told, a.fired_at) == ("freezer-warm/freezer-1/t0/temperature", "firing",
                                                    ("staff",), START)


async def test_sender_records_no_success_without_a_send(tmp_path) -> None:  # type: ignore[no-untyped-def]
    sender = RecordingSender(failures={"json://127.0.0.1:9/staff": 1})
    h = Harness(tmp_path / "a.db", sender=sender)
    try:
        h.enqueue(transition())
        await h.at(0)
        await h.at(30)
        assert sender.sent == [] and sender.attempts == 1
        assert h.dispatcher.status().waiting == 1
    finally:
        h.close()


async def test_add_silence_refuses_nonsense(h: Harness) -> None:
    with pytest.raises(ValueError, match="expected a glob or a list of globs"):
        h.dispatcher.add_silence({"device": 42}, START + 60, by="ana")
    with pytest.raises(ValueError, match="a silence must end after it starts"):
        h.dispatcher.add_silence({"device": "x"}, START - 60, by="ana")
    with pytest.raises(ValueError, match="severity 'loud' is none of"):
        h.dispatcher.add_silence({"severity": "loud"}, START + 60, by="ana")
    assert h.dispatcher.status().silences == ()


async def test_history_is_pruned_after_a_week(h: Harness) -> None:
    h.enqueue(transition())
    await h.at(0)
    await h.at(30)
    h.enqueue(transition(state=AlertState.RESOLVED, at=START + 60))
    await h.at(60)
    await h.at(400)
    assert len(h.sender.sent) == 2
    await h.at(8 * 86400)
    counts = [h.engine.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
              for table in ("notify_outbox", "notify_deliveries", "notify_pending", "notify_alerts", "notify_told",
                            "notify_groups")]
    assert counts == [0, 0, 0, 0, 0, 0]


def _service(h: Harness) -> AlertService:
    """The rule engine's service: it takes the dashboard's retained silences from MQTT to the dispatcher."""
    return AlertService(AlertingSettings(), MqttSettings(), Engine(RuleSet(), clock=h.clock), dispatcher=h.dispatcher)


async def test_dashboard_silence_messages_set_and_expire_silences(h: Harness) -> None:
    payload = json.dumps({"matchers": {"device": "freezer-*"}, "until": START + 3600, "by": "ana",
                          "comment": "defrost", "created": START}).encode()
    service = _service(h)
    service.handle("vigil/silences/a1b2c3", payload)
    service.handle("vigil/silences/a1b2c3", payload)  # the retained copy again after a reconnect
    [s] = h.dispatcher.status().silences
    assert (s.id, s.by, s.comment, s.ends) == (service.silences["a1b2c3"], "ana", "defrost", START + 3600)
    restarted = _service(h)
    restarted.handle("vigil/silences/a1b2c3", payload)  # and after a restart of the engine: the same silence
    assert h.dispatcher.status().silences == (s,) and restarted.silences["a1b2c3"] == s.id
    h.enqueue(transition())
    await h.at(0)
    await h.at(30)
    assert h.sender.sent == []
    restarted.handle("vigil/silences/a1b2c3", b"")
    await h.at(31)
    await h.at(61)
    assert h.titles() == [TITLE]


async def test_a_silence_already_over_is_ignored(h: Harness) -> None:
    _service(h).handle("vigil/silences/old", b'{"matchers": {"device": "x"}, "until": 1}')
    assert h.dispatcher.status().silences == ()


@pytest.mark.parametrize("payload", [
    b"{not json", b"[]", b"null", b'"x"', json.dumps({"matchers": {"device": "x"}}).encode(),
    b'{"matchers": {"device": "x"}, "until": NaN}', b'{"matchers": {"device": 7}, "until": 1e12}',
    b'{"matchers": {"severity": "loud"}, "until": 1e12}', b'{"matchers": "all", "until": 1e12}',
    b"\xff\xfe", b"{" * 100_000, b"[" * 100_000,
])
async def test_hostile_silence_messages_are_ignored(h: Harness, payload: bytes, caplog) -> None:  # type: ignore[no-untyped-def]
    _service(h).handle("vigil/silences/bad", payload)
    assert "ignoring silence bad" in caplog.text or "refused a message on 'vigil/silences/bad'" in caplog.text
    assert h.dispatcher.status().silences == ()


async def test_repeat_held_by_a_silence_comes_when_it_ends(h: Harness) -> None:
    h.enqueue(transition())
    await h.at(0)
    await h.at(30)
    h.dispatcher.add_silence({"rule": "freezer-warm"}, START + 6 * 3600, by="ana")
    await h.at(5 * 3600)
    assert len(h.sender.sent) == 1
    await h.at(6 * 3600)
    await h.at(6 * 3600 + 300)
    assert h.titles() == [TITLE, TITLE]


async def test_alert_without_any_receiver_is_logged(h: Harness, caplog) -> None:  # type: ignore[no-untyped-def]
    h.enqueue(transition(notify=()))
    await h.at(0)
    await h.at(30)
    assert h.sender.sent == []
    assert "alert freezer-warm/freezer-1/t0/temperature fires but no receiver hears it" in caplog.text

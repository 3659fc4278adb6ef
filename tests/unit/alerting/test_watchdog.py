"""The pipeline watchdog on a manual clock: each problem fires the built-in alert once, after its bound,
and it resolves once; its state survives a restart; the heartbeat pings only while all is well."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from alerting.heartbeat import Heartbeat
from alerting.notify.outbox import OUTBOX_TABLE, Outbox
from alerting.notify.state import ReceiverFailure
from alerting.settings import HeartbeatSettings, WatchdogSettings
from alerting.state import StateDB
from alerting.watchdog import RULE, SERIES, Watchdog
from tests.support.alerting import Pings
from tests.support.alerting import pings as pings  # the fixture
from tests.support.engine import T0, Recorder
from tests.support.services import free_port
from vigil.core.clock import ManualClock
from vigil.core.health import PartHealth, parse_health
from vigil.core.topics import Topics

BOUNDS = WatchdogSettings(no_events=30.0, bridge_offline=10.0, store_down=20.0, spool_events=100, lag=60.0,
                          notify_failing=15.0, broker_down=10.0, clear_after=5.0, notify=["ops"])


def _dog(settings: WatchdogSettings = BOUNDS) -> tuple[Watchdog, Recorder, ManualClock]:
    clock = ManualClock(T0)
    sink = Recorder()
    w = Watchdog(settings, clock, sink=sink)
    w.broker(True)
    return w, sink, clock


def _run(w: Watchdog, clock: ManualClock, seconds: int, **every_second: Any) -> list[str]:
    """Evaluate once a second for ``seconds``; returns the states of the transitions made."""
    out = []
    for _ in range(seconds):
        clock.advance(1)
        if every_second.get("events"):
            w.saw_event()
        out += [t.state.value for t in w.evaluate()]
    return out


def bridge(state: str = "ok", every: float = 10.0, **details: Any) -> PartHealth:
    return PartHealth("bridge", "b1", state, every=every, details=details)


def test_no_events_while_a_device_is_online_fires_once_after_the_bound_and_resolves_once() -> None:
    w, sink, clock = _dog()
    w.saw_status("freezer", True)
    assert _run(w, clock, 20, events=True) == []  # events flow: nothing
    assert _run(w, clock, 29) == []
    assert _run(w, clock, 60) == ["firing"]
    t = sink.items[0]
    assert (t.rule, t.series, t.severity.value, t.notify) == (RULE, SERIES, "critical", ("ops",))
    assert "no event from the bridge since" in t.message and "1 device(s) report online (freezer)" in t.message
    assert "vigil status" in t.message
    assert _run(w, clock, 4, events=True) == []  # clear_after 5 s
    assert _run(w, clock, 30, events=True) == ["resolved"]
    assert [x.state.value for x in sink.items] == ["firing", "resolved"]
    assert sink.items[1].message.startswith("Vigil's pipeline works again")


def test_no_devices_online_means_silence_is_not_a_stall() -> None:
    w, _, clock = _dog()
    w.saw_status("freezer", True)
    w.saw_status("freezer", False)
    assert _run(w, clock, 300) == []


def test_a_bridge_offline_by_its_last_will_fires_after_bridge_offline() -> None:
    w, sink, clock = _dog()
    w.saw_health(bridge())
    w.saw_health(bridge("offline"))
    assert _run(w, clock, 9) == []
    assert _run(w, clock, 2) == ["firing"]
    assert "the bridge b1 is offline since" in sink.items[0].message
    assert "systemctl start vigil-bridge" in sink.items[0].message
    w.saw_health(bridge())
    assert _run(w, clock, 10) == ["resolved"]


def test_a_bridge_whose_health_stops_is_offline_too() -> None:
    w, sink, clock = _dog()
    w.saw_health(bridge())
    assert _run(w, clock, 29) == []  # stale after 3 periods of 10 s
    assert _run(w, clock, 10) == []  # ... plus bridge_offline 10 s
    assert _run(w, clock, 2) == ["firing"]
    assert "has not reported its health since" in sink.items[0].message


def test_store_down_fires_after_store_down_and_a_growing_spool_at_once() -> None:
    w, sink, clock = _dog()
    w.saw_health(bridge(store_ok=False, spool_events=5))
    assert _run(w, clock, 19) == []
    assert _run(w, clock, 2) == ["firing"]
    assert "cannot write to its store" in sink.items[0].message and "5 events wait" in sink.items[0].message
    w2, sink2, clock2 = _dog()
    w2.saw_health(bridge(store_ok=True, spool_events=101))
    assert _run(w2, clock2, 1) == ["firing"]
    assert "holds 101 events" in sink2.items[0].message


def test_lag_past_its_bound_for_as_long_fires_and_a_replayed_backlog_does_not() -> None:
    w, _sink, clock = _dog()
    w.saw_health(bridge(lag_seconds=3600))  # an edge agent's hour of backlog, replayed in seconds
    assert _run(w, clock, 10) == []
    for _ in range(12):  # a fresh document every 10 s, as the bridge publishes
        w.saw_health(bridge(lag_seconds=0.5))
        assert _run(w, clock, 10) == []
    w.saw_health(bridge(lag_seconds=61, every=60))
    assert _run(w, clock, 59) == []
    w.saw_health(bridge(lag_seconds=75, every=60))
    assert _run(w, clock, 2) == ["firing"]


def test_a_failing_receiver_fires_after_notify_failing_and_resolves_when_it_works() -> None:
    w, sink, clock = _dog()
    failing = [ReceiverFailure("ops", "json://127.0.0.1:9/hook", 3, "connection refused", 2)]
    w.receivers_failing(failing)
    assert _run(w, clock, 14) == []
    assert _run(w, clock, 2) == ["firing"]
    assert "receiver ops (json://127.0.0.1:9/hook) keep failing: connection refused; 2 message(s) wait" in \
        sink.items[0].message
    w.receivers_failing([])
    assert _run(w, clock, 10) == ["resolved"]


def test_the_engine_without_its_broker_fires_and_judges_nothing_else() -> None:
    w, sink, clock = _dog()
    w.saw_status("freezer", True)
    w.broker(False)
    assert _run(w, clock, 11) == ["firing"]
    assert "has not reached the MQTT broker" in sink.items[0].message
    assert "no event" not in sink.items[0].message
    assert w.input_stalled()


def test_many_problems_at_once_are_one_alert() -> None:
    w, _sink, clock = _dog()
    w.saw_status("freezer", True)
    w.saw_health(bridge("offline"))
    w.receivers_failing([ReceiverFailure("ops", "x", 3, "e", 1)])
    assert _run(w, clock, 120) == ["firing"]
    assert len([p for p in w.problems() if p.counts(clock.now())]) == 3


def test_the_alert_state_survives_a_restart(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    db = StateDB(tmp_path / "alerts.db")
    Outbox(db.conn).create_tables()
    w = Watchdog(BOUNDS, clock, state=db, sink=Outbox(db.conn))
    w.broker(True)
    w.saw_health(bridge("offline"))
    assert _run(w, clock, 11) == ["firing"]
    db.close()
    db = StateDB(tmp_path / "alerts.db")
    w = Watchdog(BOUNDS, clock, state=db, sink=Outbox(db.conn))
    w.broker(True)
    w.saw_health(bridge("offline"))
    assert w.firing and json.loads(w.retained() or b"{}")["state"] == "firing"
    assert _run(w, clock, 30) == []  # still stalled: not told again
    w.saw_health(bridge())
    assert _run(w, clock, 10) == ["resolved"]
    rows = db.conn.execute(f"SELECT body FROM {OUTBOX_TABLE} ORDER BY seq").fetchall()
    assert [json.loads(r[0])["state"] for r in rows] == ["firing", "resolved"]
    db.close()


def test_disabled_watchdog_says_nothing() -> None:
    w, sink, clock = _dog(BOUNDS.model_copy(update={"enabled": False}))
    w.saw_health(bridge("offline"))
    assert _run(w, clock, 100) == [] and sink.items == []


@pytest.mark.parametrize("payload", [b"offline", b'{"state": "offline"}', b'{"state":"ok","every":5,"spool_events":3}'])
def test_health_documents_parse(payload: bytes) -> None:
    h = parse_health(Topics(), "vigil/health/bridge/b1", payload)
    assert h is not None and (h.part, h.instance) == ("bridge", "b1")


@pytest.mark.parametrize("topic,payload", [
    ("vigil/health/bridge", b'{"state":"ok"}'), ("vigil/health/bridge/b1/x", b'{"state":"ok"}'),
    ("vigil/health/bridge/b1", b'{"state":"fine"}'), ("vigil/health/bridge/b1", b"[" * 5000),
    ("vigil/health/bridge/b1", b'{"state":"ok","at":Infinity}'), ("vigil/health/bridge/b1", b"x" * 20000),
])
def test_bad_health_documents_are_none(topic: str, payload: bytes) -> None:
    assert parse_health(Topics(), topic, payload) is None


async def test_heartbeat_pings_only_while_healthy(pings: Pings, caplog: pytest.LogCaptureFixture) -> None:
    healthy = [True]
    hb = Heartbeat(HeartbeatSettings(url=pings.url, every=60, timeout=2), lambda: healthy[0], ManualClock(T0))
    assert await hb.ping()
    healthy[0] = False
    assert not await hb.ping()
    healthy[0] = True
    pings.status = 503
    assert not await hb.ping()
    pings.status = 200
    assert await hb.ping()
    assert pings.paths == ["/ping/secret-uuid"] * 3
    assert (hb.sent, hb.failed, hb.skipped) == (2, 1, 1)
    assert "HTTP 503" in caplog.text and "secret-uuid" not in caplog.text


async def test_heartbeat_to_nothing_listening_fails_without_raising() -> None:
    hb = Heartbeat(HeartbeatSettings(url=f"http://127.0.0.1:{free_port()}/x", every=60, timeout=1), lambda: True,
                   ManualClock(T0))
    assert not await hb.ping() and hb.failed == 1


def test_heartbeat_url_must_be_http() -> None:
    with pytest.raises(ValueError, match="http:// or https://"):
        HeartbeatSettings(url="ftp://example.invalid/x")

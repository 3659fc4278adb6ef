"""Time-correct recovery in the engine: source time, catch-up order, the engine's own deafness, late truth,
and replays (``vigil rules test``, ``vigil rules backtest``) that agree with the live engine."""

from __future__ import annotations

import textwrap
from pathlib import Path

from alerting.backtest import backtest
from alerting.conditions.status import SETTLE
from alerting.engine import RESUME_WAIT, Engine
from alerting.rules import load_rules_text
from alerting.ruletest import START, run_test_file
from alerting.settings import WatchdogSettings
from alerting.state import StateDB
from alerting.transition import Transition
from alerting.watchdog import Watchdog
from tests.support.engine import T0, Recorder, engine, ev
from vigil.core.clock import ManualClock
from vigil.core.event import Event
from vigil.core.health import PartHealth
from vigil.core.stores import open_store

SILENT = """
rules:
  - name: silent
    match: {metric: temperature}
    nodata: 8s
    message: "{{ device }} has sent nothing for {{ value | duration }}"
"""

WARM = """
rules:
  - name: warm
    match: {metric: temperature}
    above: 5
    for: 5s
    message: "{{ device }} is at {{ value }} °C"
"""


def test_a_sensor_that_kept_sending_during_a_restart_never_fires_and_a_silent_one_fires_at_its_time(
        tmp_path: Path) -> None:
    db = StateDB(tmp_path / "alerts.db")
    first, _, clock = engine(SILENT, state=db)
    for i in range(11):  # both report every second until T0+10
        clock.set(T0 + i)
        first.on_event(ev(1.0, T0 + i, "a"))
        first.on_event(ev(1.0, T0 + i, "b"))
    first.flush()
    clock.set(T0 + 22.6)  # 12.6 s away; a kept sending, b stopped at T0+10
    second, sink, _ = engine(SILENT, clock=clock, state=db)
    for i in range(11, 23):  # the backlog the broker kept, in order, before any timer (the service's catch-up)
        second.on_event(ev(1.0, T0 + i, "a"))
    second.tick()
    assert [(t.state.value, t.series, t.at, t.value) for t in sink.items] == [
        ("firing", "b/t0/temperature", T0 + 18, 8.0)]
    assert sink.items[0].message == "b has sent nothing for 8s"
    assert sink.items[0].reported is None  # learned 4.6 s after: not late


def test_a_for_period_is_measured_on_source_time() -> None:
    e, sink, clock = engine(WARM)
    clock.set(T0 + 30)  # a backlog of readings taken at T0+0..T0+12 arrives now
    for i in range(13):
        e.on_event(ev(10.0, T0 + i, "a"))
    assert [(t.state.value, t.at) for t in sink.items] == [("firing", T0 + 5)]
    assert sink.items[0].reported == T0 + 30
    assert sink.items[0].message.endswith(
        "(reported late: it happened at 2023-11-14 22:13:25 UTC, Vigil learned of it at 2023-11-14 22:13:50 UTC)")


def test_an_excursion_in_an_edge_backlog_is_told_once_with_its_time_and_as_late() -> None:
    e, sink, clock = engine(WARM)
    e.on_event(ev(1.0, T0, "a"))
    clock.set(T0 + 3600)  # the edge was away for an hour; its backlog comes now, one reading a minute
    backlog = [1.0] * 20 + [10.0] * 10 + [1.0] * 30
    for i, v in enumerate(backlog):
        e.on_event(ev(v, T0 + 60 * (i + 1), "a"))
    assert [(t.state.value, t.at, t.reported) for t in sink.items] == [
        ("firing", T0 + 60 * 21 + 5, T0 + 3600), ("resolved", T0 + 60 * 31, T0 + 3600)]
    assert "reported late: it happened at 2023-11-14 22:34:25 UTC" in sink.items[0].message
    assert Transition.from_json(sink.items[0].to_json()) == sink.items[0]


def test_a_late_reading_does_not_move_an_alert_back_in_time() -> None:
    e, sink, clock = engine(SILENT)
    e.on_event(ev(1.0, T0, "a"))
    clock.set(T0 + 20)
    e.tick()
    e.on_event(ev(1.0, T0 + 5, "a"))  # taken before the alert fired, arrived after
    assert [(t.state.value, t.at) for t in sink.items] == [("firing", T0 + 8), ("resolved", T0 + 8)]


def test_after_the_engine_could_not_hear_silence_counts_from_when_input_came_back() -> None:
    e, sink, clock = engine(SILENT, clock=ManualClock(T0 - 30))
    e.on_event(ev(1.0, T0 - 30, "gone"))  # silent since before the outage: fires before it
    clock.set(T0 - 10)
    e.tick()
    assert [(t.state.value, t.series) for t in sink.items] == [("firing", "gone/t0/temperature")]
    for i in range(11):
        clock.set(T0 + i)
        e.on_event(ev(1.0, T0 + i, "a"))
        e.on_event(ev(1.0, T0 + i, "b"))
    clock.set(T0 + 40)  # the broker was away from T0+10 to T0+40: timers were held, nothing came
    e.resume(T0 + 40)
    e.tick()
    clock.set(T0 + 41)
    e.on_event(ev(1.0, T0 + 41, "a"))  # a reports again after the outage; b does not
    clock.set(T0 + 45)
    e.on_event(ev(1.0, T0 + 45, "a"))
    clock.set(T0 + 49.5)
    e.tick()
    got = [(t.state.value, t.series, t.at, t.value) for t in sink.items[1:]]
    # once, a no-data period after the first event came back, saying how long since b was heard
    assert got == [("firing", "b/t0/temperature", T0 + 49, 39.0)]
    assert e.alerts["silent/gone/t0/temperature"].state.value == "firing"  # still firing, not resolved


def test_after_the_engine_could_not_hear_and_no_event_comes_back_silence_counts_from_the_longest_wait() -> None:
    e, sink, clock = engine(SILENT)
    e.on_event(ev(1.0, T0, "a"))
    clock.set(T0 + 5)
    e.resume(T0 + 5)  # the bridge does not publish again (the pipeline's own alert tells of that)
    clock.set(T0 + 5 + RESUME_WAIT)
    e.tick()
    assert sink.items == []
    clock.set(T0 + 5 + RESUME_WAIT + 8)
    e.tick()
    assert [(t.state.value, t.at, t.value) for t in sink.items] == [
        ("firing", T0 + 5 + RESUME_WAIT + 8, 5 + RESUME_WAIT + 8)]


RULES = """
rules:
  - name: warm
    match: {metric: temperature}
    above: 5
    for: 3s
    message: "{{ device }} is at {{ value }} °C"
  - name: silent
    match: {metric: temperature}
    nodata: 8s
    message: "{{ device }} has sent nothing for {{ value | duration }}"
"""


def _recorded() -> tuple[list[tuple[float, Event]], float]:
    """(arrival, reading): a warms from 10 s to 20 s, b stops at 15 s, c's readings of 30..35 s arrive at 36 s,
    in order (an edge agent's backlog), and contain an excursion."""
    out: list[tuple[float, Event]] = []
    for i in range(60):
        t = START + i
        out.append((t + 0.1, Event("a", "t0", "temperature", 10.0 if 10 <= i < 20 else 1.0, t, "°C")))
        if i <= 15:
            out.append((t + 0.1, Event("b", "t0", "temperature", 1.0, t, "°C")))
        arrival = START + 36 + (i - 30) * 0.01 if 30 <= i < 36 else t + 0.1
        out.append((arrival, Event("c", "t0", "temperature", 9.0 if 31 <= i < 36 else 1.0, t, "°C")))
    return sorted(out, key=lambda x: x[0]), START + 70


def _live(tmp_path: Path, kills: list[float], away: float) -> list[tuple[str, str, str, float]]:
    """The live engine on arrival times; at each kill it stops (what it acknowledged was committed),
    is away ``away`` seconds, comes back on the same state file and takes in the backlog first."""
    readings, end = _recorded()
    rules, _ = load_rules_text(textwrap.dedent(RULES), "t.yaml")
    db = StateDB(tmp_path / "live.db")
    clock = ManualClock(START)
    sink = Recorder()
    e = Engine(rules, state=db, sink=sink, clock=clock)
    backlog: list[Event] = []
    down_until = None
    for arrival, event in readings:
        if down_until is None and kills and arrival >= kills[0]:
            kills.pop(0)
            down_until = arrival + away
        if down_until is not None and arrival < down_until:
            backlog.append(event)
            continue
        if down_until is not None:
            clock.set(down_until)
            e = Engine(rules, state=db, sink=sink, clock=clock)
            for b in backlog:
                e.on_event(b)
                e.flush()
            backlog, down_until = [], None
        clock.set(max(clock.now(), arrival))
        e.tick()
        e.on_event(event)
        e.flush()
    clock.set(end)
    e.tick()
    return [(t.rule, t.series, t.state.value, t.at) for t in sink.items]


def test_rules_test_and_backtest_agree_with_the_live_engine_through_restarts_and_late_arrivals(
        tmp_path: Path) -> None:
    readings, end = _recorded()
    calm = _live(tmp_path / "calm", [], 0)
    assert _live(tmp_path / "restarts", [START + 12.0, START + 35.0], 5.0) == calm
    assert sorted(calm) == sorted([
        ("warm", "a/t0/temperature", "firing", START + 13), ("warm", "a/t0/temperature", "resolved", START + 20),
        ("silent", "b/t0/temperature", "firing", START + 23), ("warm", "c/t0/temperature", "firing", START + 34),
        ("warm", "c/t0/temperature", "resolved", START + 36), ("silent", "a/t0/temperature", "firing", START + 67),
        ("silent", "c/t0/temperature", "firing", START + 67)])

    store = open_store("memory://")
    store.write([e for _, e in readings])
    rules, _ = load_rules_text(textwrap.dedent(RULES), "t.yaml")
    result = backtest(rules, store, START, end)
    assert sorted((t.rule, t.series, t.state.value, t.at) for t in result.notifications) == sorted(calm)

    (tmp_path / "rules.yaml").write_text(textwrap.dedent(RULES))
    series = {}
    for _, e in readings:
        series.setdefault(e.device, {})[int(e.ts - START)] = e.value
    inputs = "".join(f"      - series: {d}/t0/temperature\n        values: \""
                     + " ".join(str(v.get(i, "_")) for i in range(60)) + "\"\n" for d, v in series.items())
    expected = "".join(f"      - {{at: {int(at - START)}s, rule: {r}, series: {s}, state: {st}}}\n"
                       for r, s, st, at in sorted(calm, key=lambda x: (x[3], x[0], x[1])))
    (tmp_path / "recorded.test.yaml").write_text(
        f"rule_files: [rules.yaml]\ntests:\n  - name: recorded\n    interval: 1s\n    until: 70s\n"
        f"    input_series:\n{inputs}    notifications:\n{expected}")
    report = run_test_file(tmp_path / "recorded.test.yaml")
    assert report.ok, (report.failures, report.issues)


def test_while_the_input_is_known_missing_no_data_waits_for_the_first_event_back() -> None:
    """The watchdog says the bridge stopped: however long that lasts, no per-sensor no-data fires;
    after the hold is released (the first event back), a sensor still silent fires once, a no-data period later."""
    e, sink, clock = engine(SILENT)
    for i in range(3):
        clock.set(T0 + i)
        e.on_event(ev(1.0, T0 + i, "a"))
        e.on_event(ev(1.0, T0 + i, "b"))
    clock.set(T0 + 3)
    e.hold()  # the bridge is gone (the pipeline's own alert tells of that)
    for t in (10, 100, 1000):  # far past RESUME_WAIT too: it does not end a hold
        clock.set(T0 + t)
        e.tick()
    assert sink.items == []
    clock.set(T0 + 1001)
    e.on_event(ev(1.0, T0 + 1001, "a"))  # the bridge is back; a reports, b does not
    e.release(T0 + 1001)  # the watchdog no longer says the input is missing (the service's watch loop)
    for t in range(1002, 1012):
        clock.set(T0 + t)
        e.on_event(ev(1.0, T0 + t, "a"))
        e.tick()
    assert [(t.state.value, t.series, t.at) for t in sink.items] == [("firing", "b/t0/temperature", T0 + 1009)]



class _Guard:
    """The engine, its watchdog and what the service does between them, a second at a time: the watch loop
    holds no-data while the watchdog says the input is stalled and releases the hold when it no longer
    does; timers wait while the broker is away; a reconnect resumes (the catch-up's ``on_resumed``)."""

    def __init__(self) -> None:
        self.engine, self.sink, self.clock = engine(SILENT)
        self.dog = Watchdog(WatchdogSettings(broker_down=10.0), self.clock, sink=Recorder())
        self.dog.broker(True)
        self.connected = True
        self.bridge_alive = True
        self.missing = False
        self.stalled: dict[float, bool] = {}

    def run_until(self, t: float, events: tuple[str, ...] = ()) -> None:
        while self.clock.now() < t:
            self.clock.advance(1)
            now = self.clock.now()
            if self.connected and self.bridge_alive:
                self.dog.saw_health(PartHealth("bridge", "b1", "ok", every=10.0, details={}))
                for device in events:
                    self.dog.saw_event()
                    self.engine.on_event(ev(1.0, now, device))
            if self.connected:
                self.engine.tick()
            self.dog.evaluate()
            if self.dog.input_stalled() != self.missing:  # alerting.guard.Guard.watch
                self.missing = not self.missing
                if self.missing:
                    self.engine.hold()
                else:
                    self.engine.release(now)
            self.stalled[now - T0] = self.missing

    def reconnect(self) -> None:
        """The broker is back: the retained statuses and health come again, and the engine resumes."""
        self.connected = True
        self.dog.broker(True)
        for device in ("a", "b"):
            self.dog.saw_status(device, True)
        self.dog.saw_health(PartHealth("bridge", "b1", "ok", every=10.0, details={}))
        self.engine.resume(self.clock.now())


def test_a_broker_reconnect_while_the_bridge_is_still_away_keeps_the_hold_no_storm() -> None:
    """The broker is away past broker_down (the hold begins) and the bridge died meanwhile (a reboot where it
    did not come back): after the broker is back nothing tells the watchdog at once that the bridge is
    gone. The hold stays until events come back; before, the reconnect replaced it with a RESUME_WAIT, and
    a no-data period later every sensor fired."""
    g = _Guard()
    g.reconnect()
    g.run_until(T0 + 5, events=("a", "b"))
    g.connected = g.bridge_alive = False  # the broker goes away; the bridge dies meanwhile
    g.dog.broker(False)
    g.run_until(T0 + 35)
    assert g.stalled[15] and not g.stalled[14]  # broker_down: the hold begins
    g.reconnect()
    g.run_until(T0 + 35 + RESUME_WAIT + 100)
    assert g.sink.items == [], [(t.state.value, t.series, t.at - T0) for t in g.sink.items]
    assert all(g.stalled[s] for s in range(15, 196)), g.stalled
    g.bridge_alive = True  # the bridge is back: a reports, b does not
    g.run_until(T0 + 210, events=("a",))
    assert not g.missing
    assert [(t.state.value, t.series, t.at - T0) for t in g.sink.items] == [("firing", "b/t0/temperature", 196 + 8)]


def test_a_restart_while_the_input_is_known_lost_holds_from_the_start(tmp_path: Path) -> None:
    """The engine restarts while the bridge is away: the watchdog's saved alert says the input was lost,
    so no-data is held from the start, not only once the bounds have run again (every sensor's silence
    would be due at once after the catch-up)."""
    settings = WatchdogSettings(bridge_offline=1.0)
    clock = ManualClock(T0)
    dog = Watchdog(settings, clock, state=StateDB(tmp_path / "a.db"), sink=Recorder())
    dog.broker(True)
    dog.saw_health(PartHealth("bridge", "b1", "offline", every=10.0, details={}))
    clock.advance(2)
    assert [t.state.value for t in dog.evaluate()] == ["firing"] and dog.input_stalled()
    again = Watchdog(settings, clock, state=StateDB(tmp_path / "a.db"), sink=Recorder())
    assert again.input_stalled()  # not yet connected: the broker problem is there, uncounted
    again.broker(True)
    again.saw_health(PartHealth("bridge", "b1", "offline", every=10.0, details={}))  # retained, anew
    assert again.input_stalled()
    again.saw_event()  # input is back
    assert not again.input_stalled()


def test_a_restart_after_a_pipeline_alert_not_about_input_holds_nothing(tmp_path: Path) -> None:
    settings = WatchdogSettings(store_down=1.0)
    clock = ManualClock(T0)
    dog = Watchdog(settings, clock, state=StateDB(tmp_path / "a.db"), sink=Recorder())
    dog.broker(True)
    dog.saw_health(PartHealth("bridge", "b1", "ok", every=10.0, details={"store_ok": False}))
    clock.advance(2)
    assert [t.state.value for t in dog.evaluate()] == ["firing"] and not dog.input_stalled()
    assert not Watchdog(settings, clock, state=StateDB(tmp_path / "a.db"), sink=Recorder()).input_stalled()


OFFLINE = """
rules:
  - name: offline
    offline: true
    message: "{{ device }} is offline"
"""


def test_wills_the_broker_sends_as_it_stops_are_judged_by_who_is_back_after_the_grace() -> None:
    """Mosquitto sends every client's last will as it stops, just before the engine's own connection drops:
    the devices did not go offline, Vigil's broker did. Each status is judged once Vigil hears again and the
    devices had the grace to reconnect; only the one still offline then is told, once."""
    e, sink, clock = engine(OFFLINE)
    for d in ("d1", "d2", "d3"):
        assert e.on_status(d, True) == []
    for d in ("d1", "d2", "d3"):  # the broker stops: wills; the engine's timers wait while it is away
        assert e.on_status(d, False) == []
    clock.advance(12)  # the broker is back; the engine reconnects and hears again
    e.resume(clock.now())
    assert e.on_event(ev(-18, clock.now())) == []  # input again: silence and statuses count from here
    clock.advance(10)
    assert e.on_status("d1", True) == [] and e.on_status("d2", True) == []  # two agents reconnect
    assert e.tick() == []
    clock.advance(60 - 10 + SETTLE - 1)
    assert e.tick() == []
    clock.advance(1)
    assert [(t.series, t.state.value) for t in e.tick()] == [("d3/device/status", "firing")]
    assert sink.states() == [("firing", "d3/device/status")]


def test_an_offline_status_counts_after_it_settles_without_an_outage() -> None:
    e, _sink, clock = engine(OFFLINE)
    assert e.on_status("d1", False) == []
    clock.advance(SETTLE - 0.5)
    assert e.tick() == []
    clock.advance(0.5)
    assert [t.state.value for t in e.tick()] == ["firing"]

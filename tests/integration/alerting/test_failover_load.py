"""Rule-engine failover on PostgreSQL under a steady stream of readings (40 devices, 200 readings/s): real
``vigil alerting`` processes on a private PostgreSQL and a private Mosquitto, each device going hot at a scheduled
second (alert ``hot`` at once, ``slow`` after 4 s, so timers are pending at every fault) and cooling once the fault
is over. Whatever happens meanwhile (an engine SIGKILLed; a second engine joining, then the first leaving with
SIGTERM; the database stopped for 5 s, or 12 s), every firing and every resolve is told exactly once, none
missing, and the retained alert states end resolved."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable

import pytest

from alerting.partition import owns
from tests.support.alerting import EngineProcess, MqttProbe, Receiver, wait_for
from tests.support.failover_load import Stream, dump_state, first_told, holders, tally
from tests.support.postgres import Postgres

pytestmark = pytest.mark.integration

PARTITIONS = 4
FOR = 4.0  # the slow rule's for:
RULES = """
receivers:
  ops: ["{url}"]
grouping: {group_by: [device, alertname], group_wait: 0s, group_interval: 1s}
rules:
  - {name: hot, match: {metric: temperature}, above: 30, notify: ops, message: "hot {{ device }}"}
  - {name: slow, match: {metric: temperature}, above: 30, for: 4s, notify: ops, message: "slow {{ device }}"}
"""
DEVICES = [f"d{i}" for i in range(40)]
HOT_AT = {d: 2.0 + 0.2 * i for i, d in enumerate(DEVICES)}  # seconds after the stream starts: 2.0 .. 9.8
EXPECTED = Counter({(kind, rule, d): 1 for kind in ("FIRING", "RESOLVED") for rule in ("hot", "slow") for d in DEVICES})

Engines = Callable[[list[str]], EngineProcess]


def engine(make: Engines, tmp_path: Path, mosquitto: Any, pg_url: str, receiver: Receiver, i: int) -> EngineProcess:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES.replace("{url}", receiver.url))
    p = make(["alerting", "--broker", mosquitto.url, "--rules", str(rules), "--state", pg_url,
              "--client-id", "vigil-alerting", "--data-dir", str(tmp_path / f"data-{i}")])
    p.start()
    return p


def member_of(p: EngineProcess, url: str) -> set[int]:
    """The partitions the process holds."""
    assert p.proc is not None
    return {part for part, m in holders(url).items() if m.endswith(f":{p.proc.pid}")}


def split_evenly(url: str, members: int) -> bool:
    held = holders(url)
    return len(held) == PARTITIONS and sorted(Counter(held.values()).values()) == [PARTITIONS // members] * members


def two_engines_streaming(make: Engines, tmp_path: Path, mosquitto: Any, pg_url: str, receiver: Receiver
                          ) -> tuple[list[EngineProcess], Stream]:
    """Two engines holding two partitions each, and the stream of readings started."""
    engines = [engine(make, tmp_path, mosquitto, pg_url, receiver, i) for i in range(2)]
    wait_for(lambda: split_evenly(pg_url, 2), timeout=40, what="two engines holding two partitions each")
    stream = Stream(mosquitto.port, HOT_AT)
    stream.start()
    return engines, stream


def told_exactly_once(receiver: Receiver) -> None:
    """Every expected firing and resolve told, nothing else, none twice: except that a send cut off by the fault (its
    result could not be recorded: the database away, the sender killed) is sent again saying "you may have received
    it already", the one duplicate Vigil allows (docs/notifications.md, Exactly once, and the crash window)."""
    plain, again = tally(receiver, in_doubt=False), tally(receiver, in_doubt=True)
    assert {k: v for k, v in plain.items() if v > 1} == {}, "told twice, the second time not marked as a resend"
    assert {k: v for k, v in again.items() if v > 1} == {}, "sent again twice"
    assert sorted(set(EXPECTED) - set(plain + again)) == [], "never told"
    assert sorted(set(plain + again) - set(EXPECTED)) == [], "told what did not happen"
    if again:
        print(f"sent again after a cut-off send, marked as a possible duplicate: {sorted(again)}")


def finish(stream: Stream, receiver: Receiver, probe: MqttProbe, after: float, url: str) -> None:
    """Cool every device ``after`` s after the stream's start (not before its schedule), then check: each firing and
    resolve told once, none missing, none twice; the retained states end resolved. On a failure, what the shared
    state (``url``) holds about the alerts told wrong is printed."""
    stream.cool_at = max(after, max(HOT_AT.values()) + FOR + 2)
    stream.stop_at = stream.cool_at + 4
    wait_for(stream.done, timeout=stream.stop_at - stream.elapsed() + 30, what="the stream's end")
    stream.close()
    print(f"{stream.sent} readings sent in {stream.stop_at:.0f} s; all cool from {stream.cool_at:.1f} s")
    assert set(stream.first_hot) == set(DEVICES) and set(stream.first_cool) == set(DEVICES)
    try:
        try:
            wait_for(lambda: set(tally(receiver)) == set(EXPECTED), timeout=60, what="every firing and resolve told")
        finally:
            told_exactly_once(receiver)
        time.sleep(3)  # anything told twice would have come by now
        told_exactly_once(receiver)
    except AssertionError:
        told = tally(receiver)
        wrong = sorted({f"{rule}/{d}/t0/temperature" for (kind, rule, d) in set(EXPECTED) ^ set(told)} |
                       {f"{rule}/{d}/t0/temperature" for (kind, rule, d), n in told.items() if n > 1})
        print(f"the shared state about {wrong}:\n{dump_state(url, wrong)}")
        raise
    keys = [f"{rule}/{d}/t0/temperature" for rule in ("hot", "slow") for d in DEVICES]
    wait_for(lambda: all(probe.states(k)[-1:] == ["resolved"] for k in keys), timeout=15,
             what="every retained state resolved")
    assert all("firing" in probe.states(k) for k in keys)


def lateness(stream: Stream, receiver: Receiver, devices: list[str]) -> float:
    """The worst delay of a slow alert's message after its timer was due (first hot reading + for:)."""
    return max((first_told(receiver, "FIRING", "slow", d) - (stream.first_hot[d] + FOR) for d in devices),
               default=0.0)


def test_an_engine_killed_under_load_loses_nothing_and_tells_nothing_twice(
        tmp_path: Path, mosquitto: Any, probe: MqttProbe, receiver: Receiver, pg_url: str,
        engine_process: Engines) -> None:
    engines, stream = two_engines_streaming(engine_process, tmp_path, mosquitto, pg_url, receiver)
    # the victim holds partition 0: the dispatcher moves too
    victim = next(e for e in engines if 0 in member_of(e, pg_url))
    survivor = next(e for e in engines if e is not victim)
    victim_parts = member_of(victim, pg_url)
    of_victim = [d for d in DEVICES if any(owns(f"{d}/t0/temperature", (p, PARTITIONS)) for p in victim_parts)]
    try:
        wait_for(lambda: stream.elapsed() >= 7, timeout=30, what="the stream's 7th second")
        pending = [d for d in of_victim if HOT_AT[d] + FOR > 7]
        victim.kill()
        killed = time.monotonic()
        wait_for(lambda: member_of(survivor, pg_url) == set(range(PARTITIONS)), timeout=40,
                 what="the survivor holding every partition")
        taken = time.monotonic() - killed
        finish(stream, receiver, probe, stream.elapsed() + 3, pg_url)
    finally:
        stream.close()
    print(f"partitions {sorted(victim_parts)} taken over {taken:.1f} s after the SIGKILL; "
          f"{len(of_victim)} devices were the victim's, {len(pending)} of them pending or going hot at the kill; "
          f"worst lateness of a slow firing: {lateness(stream, receiver, pending):.1f} s (victim's), "
          f"{lateness(stream, receiver, [d for d in DEVICES if d not in of_victim]):.1f} s (survivor's)")
    assert pending


def test_an_engine_joins_then_the_first_leaves_under_load_and_nothing_is_lost_or_told_twice(
        tmp_path: Path, mosquitto: Any, probe: MqttProbe, receiver: Receiver, pg_url: str,
        engine_process: Engines) -> None:
    first = engine(engine_process, tmp_path, mosquitto, pg_url, receiver, 0)
    wait_for(lambda: member_of(first, pg_url) == set(range(PARTITIONS)), timeout=40, what="one engine holding all")
    stream = Stream(mosquitto.port, HOT_AT)
    stream.start()
    try:
        wait_for(lambda: stream.elapsed() >= 4, timeout=30, what="the stream's 4th second")
        second = engine(engine_process, tmp_path, mosquitto, pg_url, receiver, 1)
        joined = time.monotonic()
        wait_for(lambda: split_evenly(pg_url, 2), timeout=40, what="the second engine holding half")
        shared = time.monotonic() - joined
        wait_for(lambda: stream.elapsed() >= 8, timeout=30, what="the stream's 8th second")
        left = time.monotonic()
        first.stop()  # SIGTERM: leave() hands its partitions over at once
        wait_for(lambda: member_of(second, pg_url) == set(range(PARTITIONS)), timeout=40,
                 what="the second engine holding every partition")
        taken = time.monotonic() - left
        finish(stream, receiver, probe, stream.elapsed() + 3, pg_url)
    finally:
        stream.close()
    print(f"half handed to the joining engine {shared:.1f} s after it started; the rest {taken:.1f} s after the "
          f"first's SIGTERM; worst lateness of a slow firing: {lateness(stream, receiver, DEVICES):.1f} s")


# Stopping PostgreSQL under load found eight defects, fixed on 2026-12-04 (docs/proof.md, "What stopping PostgreSQL
# under load found"), the last after 30 runs in a row; 22 more passed after it. On a failure the test prints what the
# shared state holds about each alert told wrong.
@pytest.mark.parametrize("away", [5.0, 12.0])  # 12 s: every lease expires meanwhile (ttl 10 s), taken again after
def test_the_database_away_under_load_loses_nothing_and_tells_nothing_twice(
        tmp_path: Path, mosquitto: Any, probe: MqttProbe, receiver: Receiver, postgres: Postgres, pg_url: str,
        engine_process: Engines, away: float) -> None:
    engines, stream = two_engines_streaming(engine_process, tmp_path, mosquitto, pg_url, receiver)
    try:
        wait_for(lambda: stream.elapsed() >= 5, timeout=30, what="the stream's 5th second")
        postgres.stop_fast()
        time.sleep(away)
        postgres.start()
        back = time.monotonic()
        wait_for(lambda: split_evenly(pg_url, 2), timeout=40, what="the partitions held again")
        held = time.monotonic() - back
        finish(stream, receiver, probe, stream.elapsed() + 5, pg_url)
    finally:
        stream.close()
        if not postgres.running:
            postgres.start()
    # the dispatcher is not failing on a lost connection forever
    logs = [e.output() for e in engines]
    time.sleep(2)
    assert [e.output().count("notification state not updated") for e in engines] == \
        [log.count("notification state not updated") for log in logs]
    print(f"database away {away:.0f} s; partitions held evenly again {held:.1f} s after it came back; worst lateness "
          f"of a slow firing: {lateness(stream, receiver, DEVICES):.1f} s")

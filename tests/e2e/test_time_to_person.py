"""Time to a person (issue 21), through Mosquitto, `vigil bridge`, influxd and `vigil alerting` as processes.

With the shipped grouping, a staggered burst of freezers is told within the bound in a handful of
messages; a receiver that refuses connections and one that answers 500 fall back, once, and lose
nothing when they recover; a rule engine SIGKILLed between the failed attempts and the fallback
still falls back once.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.chain import Chain, Hook, wait_connected
from tests.support.freezers import Burst, Freezers, TimedBodies, freezer_rules, mentions, named, timed
from tests.support.services import Influxd, Mosquitto, wait_until

pytestmark = pytest.mark.integration

BOUND = 15.0  # the issue's: every freezer of the burst told within 15 s of its first warm reading


@pytest.fixture
def backup() -> Iterator[Hook]:
    h = Hook()
    yield h
    h.down()


@pytest.fixture
def pager() -> Iterator[Hook]:
    h = Hook()
    yield h
    h.down()


def chain(tmp_path: Path, broker: Mosquitto, influxd: Influxd, db: str, hook: Hook, rules: str) -> Chain:
    c = Chain(tmp_path, broker, influxd, db, hook, rules=rules)
    try:
        c.start()
    except BaseException:
        c.close()
        raise
    return c


def test_a_staggered_burst_is_told_within_the_bound_in_a_handful_of_messages(
        tmp_path: Path, mosquitto: Mosquitto, influxd: Influxd, influx_db: str, hook: Hook) -> None:
    bodies = timed(hook)
    c = chain(tmp_path, mosquitto, influxd, influx_db, hook, freezer_rules(hook.url))  # no grouping: shipped
    try:
        # 20 freezers over 10 s (the burst spreads them over 30 s: bench/time_to_person.py; same bound)
        result = Burst(mosquitto, bodies, count=20, spread=10).run(timeout=BOUND + 5, settle=2)
    finally:
        c.close()
    assert result.missing == (), (result, hook.bodies)
    assert result.slowest <= BOUND, result
    # group_wait 5s: at most one message per 5 s of the 10 s spread, each naming only freezers not yet told
    assert result.messages <= 4, (result, hook.titles())
    told_of = [device for body in bodies for device in mentions(body)]
    assert len(told_of) == len(set(told_of)) == 20, hook.bodies


def told(bodies: TimedBodies, because: str) -> list[float]:
    """When the backup received each message passed on because ``because`` failed."""
    return [at for at, b in zip(bodies.times, list(bodies))
            if str(b.get("message", "")).startswith(f"(Sent to you because {because} ")]


def test_a_refused_and_a_failing_receiver_fall_back_once_and_lose_nothing_when_they_recover(
        tmp_path: Path, mosquitto: Mosquitto, influxd: Influxd, influx_db: str, hook: Hook, pager: Hook,
        backup: Hook) -> None:
    hook.down()  # phone: connection refused
    pager.fail_first = 10**6  # pager: HTTP 500
    receivers = f"""\
receivers:
  phone: {{urls: ["{hook.url}"], fallback: [backup], after: 3s}}
  pager: {{urls: ["{pager.url}"], fallback: [backup], attempts: 2}}
  backup: ["{backup.url}"]
delivery: {{retry_initial: 500ms, retry_max: 1s}}
routes:
  - {{match: {{}}, receivers: [pager]}}
"""
    bodies, phone_bodies, pager_bodies = timed(backup), timed(hook), timed(pager)
    c = chain(tmp_path, mosquitto, influxd, influx_db, hook, freezer_rules(receivers=receivers))
    try:
        first = Freezers(mosquitto, count=3, spread=1)
        assert wait_until(lambda: told(bodies, "phone") and told(bodies, "pager"), 30), backup.bodies
        warm = min(first.first_warm.values())
        # group_wait 5s, then: phone 3 s of failures, pager 2 failed attempts (0.5 s apart)
        assert told(bodies, "phone")[0] - warm <= 5 + 3 + 4, (told(bodies, "phone"), warm)
        assert told(bodies, "pager")[0] - warm <= 5 + 1 + 4, (told(bodies, "pager"), warm)
        time.sleep(2)  # a second fallback would arrive now
        assert len(told(bodies, "phone")) == len(told(bodies, "pager")) == 1, backup.bodies
        assert set(named(bodies)) == set(first.devices)
        first_phone = told(bodies, "phone")
        # both recover; freezers that turn warm now reach them, and the messages that fell back do not
        hook.up()
        pager.fail_first = 0
        second = Freezers(mosquitto, count=2, spread=1, first=10)
        assert wait_until(lambda: hook.bodies and pager.bodies, 20), (hook.bodies, pager.bodies)
        time.sleep(2)
        first.stop()
        second.stop()
    finally:
        c.close()
    for channel in (phone_bodies, pager_bodies):
        assert len(channel) == 1, channel
        assert set(named(channel)) == set(second.devices)
    assert told(bodies, "phone") == first_phone and len(backup.bodies) == 2, backup.bodies


def test_an_engine_killed_between_the_failed_attempts_and_the_fallback_falls_back_once(
        tmp_path: Path, mosquitto: Mosquitto, influxd: Influxd, influx_db: str, hook: Hook,
        backup: Hook) -> None:
    hook.down()
    receivers = f"""\
receivers:
  phone: {{urls: ["{hook.url}"], fallback: [backup], after: 6s}}
  backup: ["{backup.url}"]
delivery: {{retry_initial: 500ms, retry_max: 1s}}
"""
    bodies = timed(backup)
    c = chain(tmp_path, mosquitto, influxd, influx_db, hook, freezer_rules(receivers=receivers))
    freezers = Freezers(mosquitto, count=1, spread=0)
    try:
        assert wait_until(lambda: "failed 2 time(s)" in c.engine.output(), 20), c.engine.output()[-3000:]
        c.engine.kill()
        assert backup.bodies == []
        c.engine.start()
        wait_connected(c.engine, times=2)
        # the bound runs from the first failed attempt, before the kill: 5 s group_wait + 6 s, and slack
        assert wait_until(lambda: backup.bodies, 20), c.engine.output()[-3000:]
        assert bodies.times[0] - freezers.first_warm["freezer-0"] <= 5 + 6 + 5
        time.sleep(2)  # a second fallback would arrive now
    finally:
        freezers.stop()
        c.close()
    [body] = backup.bodies
    assert str(body["message"]).startswith("(Sent to you because phone (json://127.0.0.1:")
    assert named(bodies).keys() == {"freezer-0"}

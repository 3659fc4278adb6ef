"""Scheduled reports across a takeover, with two real ``vigil alerting`` processes on one private PostgreSQL: the
member holding partition 0 sends the last day's report at its start; it is killed (SIGKILL) a few seconds before
the next day's report is due, so that report comes due while nobody holds partition 0. The survivor takes
partition 0 and sends it exactly once, and does not send the earlier one again."""

from __future__ import annotations

import datetime as dt
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

from tests.support.alerting import EngineProcess, Receiver, wait_for
from tests.support.failover_load import holders
from tests.support.services import Mosquitto
from vigil.core.event import Event
from vigil.core.stores.sqlite import SqliteStore

pytestmark = pytest.mark.integration

#: seconds from the test's start to the earliest the report may be due: the two members up and the first report sent
LEAD = 15.0
#: seconds before the due time at which partition 0's holder is killed: its lease (10 s) outlives the due time
KILL_BEFORE = 4.0


def test_a_report_due_while_partition_0_s_holder_is_dead_is_sent_once_by_the_survivor(
        tmp_path: Path, mosquitto: Mosquitto, receiver: Receiver, pg_url: str,
        engine_process: Callable[[list[str]], EngineProcess]) -> None:
    due = (int(time.time() + LEAD) // 60 + 1) * 60  # the next minute after LEAD: the report's "at", in UTC
    day = dt.datetime.fromtimestamp(due, dt.timezone.utc).date()
    sent_before, sent_after = (str(day - dt.timedelta(days=n)) for n in (2, 1))  # the periods' labels
    midnight = dt.datetime.combine(day - dt.timedelta(days=2), dt.time(0), dt.timezone.utc).timestamp()
    with SqliteStore(tmp_path / "store.db") as store:
        store.write([Event("freezer-1", "t0", "temperature", -18.0 + (i % 3) * 0.2, midnight + i * 600, unit="°C")
                     for i in range(2 * 144)])
    (tmp_path / "rules.yaml").write_text(f"""receivers:
  hook: ["{receiver.url}"]
reports:
  - {{name: daily, series: [freezer-1/t0/temperature], every: day, at: "{time.strftime('%H:%M', time.gmtime(due))}",
     time_zone: UTC, formats: [csv], receivers: [hook]}}
""")

    def start(i: int, done: Callable[[], object], what: str) -> EngineProcess:
        engine = engine_process(["alerting", "--broker", mosquitto.url, "--rules", str(tmp_path / "rules.yaml"),
                                 "--state", pg_url, "--store", f"sqlite:///{tmp_path / 'store.db'}",
                                 "--client-id", "vigil-alerting", "--data-dir", str(tmp_path / f"data-{i}")])
        engine.start()
        wait_for(done, timeout=max(1.0, due - KILL_BEFORE - 1 - time.time()), what=what)
        return engine

    # one after the other: the first takes every partition and sends the last day's report; the second is handed
    # the highest partitions, so partition 0 stays with the first
    victim = start(0, lambda: len(holders(pg_url)) == 4 and receiver.bodies, "the last day's report")
    survivor = start(1, lambda: sorted(Counter(holders(pg_url).values()).values()) == [2, 2], "two members")
    held = holders(pg_url)
    member = held[0]
    assert victim.proc is not None and member.endswith(f":{victim.proc.pid}"), held
    assert f"report daily of {sent_before} sent to hook" in victim.output(), victim.output()
    assert time.time() < due - KILL_BEFORE, "the members took too long to start"
    time.sleep(due - KILL_BEFORE - time.time())
    victim.kill()
    time.sleep(due + 1 - time.time())
    assert holders(pg_url).get(0) == member  # the report came due while partition 0 was the dead member's
    wait_for(lambda: len(receiver.bodies) == 2, timeout=30, what="the report due after the kill")
    print(f"the report due after the kill sent {receiver.times[1] - due:.1f} s after its due time")
    time.sleep(2)  # a report sent twice would have come by now
    assert [b["title"] for b in receiver.bodies] == [f"Temperature report daily {d}" for d in (sent_before, sent_after)]
    assert f"report daily of {sent_after} sent to hook" in survivor.output(), survivor.output()
    assert f"report daily of {sent_before} sent" not in survivor.output()
    assert set(holders(pg_url).values()) == set(held.values()) - {member}
    with psycopg.connect(pg_url, autocommit=True) as conn:
        runs = conn.execute('SELECT period, state, done, owner, claimed_until FROM report_runs ORDER BY start')
        assert runs.fetchall() == [(sent_before, "sent", '["hook"]', None, None),
                                   (sent_after, "sent", '["hook"]', None, None)]

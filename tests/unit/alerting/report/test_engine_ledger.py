"""The report reads the ledger the real engine writes (latched rule: fired, cleared, a stale acknowledgement,
fired again, acknowledged by its episode, resolved) and the dispatcher's ``told`` rows."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from alerting import ledger
from alerting.report import ReportRequest, make_report
from alerting.state import StateDB
from tests.support.engine import T0, engine, ev, feed
from vigil.core.stores import MemoryStore

SERIES = "freezer-1/t0/temperature"


def test_excursions_as_the_engine_recorded_them(tmp_path: Path) -> None:
    state = tmp_path / "alerts.db"
    db = StateDB(state)
    e, _, clock = engine("rules: [{name: hot, above: 30, latch: true}]", state=db)
    store = MemoryStore()
    for value, step in [(35.0, 10), (40.0, 10), (20.0, 100), (33.0, 10), (31.0, 10), (20.0, 0)]:
        store.write([ev(value, clock.now())])
        feed(e, clock, value)
        clock.advance(step)
    assert e.acknowledge("hot", SERIES, "ana", episode=T0) is None  # stale: the first excursion's link
    with db.transaction() as conn:  # the dispatcher's row, as alerting/notify/state.py writes it
        ledger.append(conn, "told", f"hot/{SERIES}", {"receiver": "kitchen-phone", "kind": "firing",
                                                      "at": T0 + 121}, T0 + 121)
    assert e.acknowledge("hot", SERIES, "ana", "door shut", via="link", episode=T0 + 120) is not None
    db.conn.close()
    utc = dt.timezone.utc
    report = make_report(store, state, ReportRequest([SERIES], T0 - 3600, T0 + 3600, zone=utc), now=T0 + 7200,
                         seal=False)
    first, second = report.units[0].excursions
    assert (first.since, first.ended, first.peak, first.acks, first.told) == (T0, T0 + 20, 40.0, [], [])
    assert (second.since, second.ended, second.peak) == (T0 + 120, T0 + 140, 33.0)
    assert second.resolved_at is not None and second.latched and second.severity == "warning"
    assert [(a["by"], a["via"], a["comment"]) for a in second.acks] == [("ana", "link", "door shut")]
    assert [t["receiver"] for t in second.told] == ["kitchen-phone"]
    assert report.units[0].count == 6 and report.units[0].high == 40.0

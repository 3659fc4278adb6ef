"""Alert history survives a restart of the dashboard, without counting retained states twice."""

from __future__ import annotations

import json
import time
from pathlib import Path

from dashboard.journal import AlertJournal
from dashboard.live import LiveState
from vigil.core.topics import Topics

NOW = time.time() - 3600  # the journal prunes by the real clock when it opens


def change(state: str, at: float, rule: str = "hot", series: str = "freezer/t0/temperature",
           severity: str = "critical") -> bytes:
    return json.dumps({"rule": rule, "series": series, "state": state, "at": at, "since": at,
                       "severity": severity, "message": f"{rule} {state}"}).encode()


def test_history_survives_a_restart_and_retained_states_are_not_new(tmp_path: Path) -> None:
    journal = AlertJournal(tmp_path / "alerts.db")
    live = LiveState(Topics(), journal=journal)
    live.handle("vigil/alerts/hot/freezer/t0/temperature", change("pending", NOW), NOW)
    live.handle("vigil/alerts/hot/freezer/t0/temperature", change("firing", NOW + 60), NOW + 60)
    journal.close()

    again = AlertJournal(tmp_path / "alerts.db")
    restarted = LiveState(Topics(), journal=again)
    assert [a["state"] for a in restarted.history] == ["firing", "pending"]
    # On reconnect the broker hands over the retained state again.
    restarted.handle("vigil/alerts/hot/freezer/t0/temperature", change("firing", NOW + 60), NOW + 600)
    assert [a["state"] for a in restarted.history] == ["firing", "pending"]
    assert len(again.query()) == 2
    again.close()


def test_filters_and_pruning(tmp_path: Path) -> None:
    journal = AlertJournal(tmp_path / "alerts.db", keep_days=1)
    live = LiveState(Topics(), journal=journal)
    live.handle("vigil/alerts/hot/freezer/t0/temperature", change("firing", NOW), NOW)
    live.handle("vigil/alerts/cold/pi/t1/temperature", change("pending", NOW + 1, "cold", "pi/t1/temperature",
                                                                "warning"), NOW)
    live.handle("vigil/alerts/x/a/b/c", change("firing", NOW + 2, "x'; DROP TABLE alert_history; --", "a/b/c"),
                NOW)
    assert [a["rule"] for a in journal.query(severity="warning")] == ["cold"]
    assert [a["rule"] for a in journal.query(series="freezer")] == ["hot"]
    assert [a["rule"] for a in journal.query(state="firing", limit=1)] == ["x'; DROP TABLE alert_history; --"]
    assert len(journal.query()) == 3
    journal.prune(now=NOW + 86400 + 1.5)
    assert [a["rule"] for a in journal.query()] == ["x'; DROP TABLE alert_history; --"]
    journal.close()

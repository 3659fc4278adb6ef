"""What the overview and the alerts page are built from: acknowledgements that survive, limits per series."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from dashboard.journal import AlertJournal
from dashboard.live import LiveState
from dashboard.settings import DashboardSettings
from dashboard.thresholds import limits_for, rule_limits
from vigil.app.dashboard_wiring import EngineRules
from vigil.core.topics import Topics

NOW = time.time() - 3600  # the journal prunes by the real clock when it opens
TOPIC = "vigil/alerts/hot/freezer/t0/temperature"


def engine_state(state: str, since: float, at: float, acked_by: str | None = None) -> bytes:
    """What the rule engine publishes retained (service._publish_record): who acknowledged, not when."""
    return json.dumps({"rule": "hot", "series": "freezer/t0/temperature", "state": state, "at": at, "since": since,
                       "severity": "critical", "message": "is the door open?", "value": -11.913,
                       "acknowledged_by": acked_by, "ack_comment": "door closed" if acked_by else None}).encode()


def test_the_acknowledgement_time_survives_the_engines_confirmation_and_a_restart(tmp_path: Path) -> None:
    journal = AlertJournal(tmp_path / "alerts.db")
    live = LiveState(Topics(), journal=journal)
    live.handle(TOPIC, engine_state("firing", NOW, NOW + 60), NOW + 60)
    live.handle("vigil/ack/hot/freezer/t0/temperature",
                json.dumps({"by": "ana", "comment": "door closed", "at": NOW + 120}).encode(), NOW + 121)
    # The engine confirms by publishing the state again, with acknowledged_by and no time.
    live.handle(TOPIC, engine_state("firing", NOW, NOW + 60, acked_by="ana"), NOW + 122)
    alert = live.alerts["hot/freezer/t0/temperature"]
    assert (alert["acknowledged_by"], alert["acknowledged_at"], alert["ack_comment"]) == ("ana", NOW + 120,
                                                                                           "door closed")
    journal.close()

    again = AlertJournal(tmp_path / "alerts.db")
    restarted = LiveState(Topics(), journal=again)
    restarted.handle(TOPIC, engine_state("firing", NOW, NOW + 60, acked_by="ana"), NOW + 900)  # retained
    alert = restarted.alerts["hot/freezer/t0/temperature"]
    assert (alert["acknowledged_by"], alert["acknowledged_at"]) == ("ana", NOW + 120)
    # A new firing (another since) is not acknowledged by the old one.
    restarted.handle(TOPIC, engine_state("firing", NOW + 5000, NOW + 5000), NOW + 5000)
    assert "acknowledged_at" not in restarted.alerts["hot/freezer/t0/temperature"]
    again.close()


RULES = """\
rules:
  - {name: freezer-warm, match: {metric: temperature, device: freezer*}, above: -15, clear_below: -16,
     for: 5m, severity: critical}
  - {name: fridge-range, match: {device: fridge}, above: 8, below: 2}
  - {name: kitchen-avg, match: {metric: temperature, labels: {room: kitchen}},
     aggregate: {fn: avg, window: 10m, above: 5}}
  - {name: freezer-quiet, match: {device: freezer*}, nodata: 10m}
  - {name: disabled, match: {device: freezer*}, above: 100, enabled: false}
"""


def test_limits_are_those_of_the_matching_rules(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(RULES)
    rules = rule_limits(EngineRules(), path)
    freezer = {"device": "freezer1", "sensor": "t0", "metric": "temperature", "labels": {"room": "kitchen"}}
    got = {lim["rule"]: lim for lim in limits_for(rules, freezer)}
    assert sorted(got) == ["freezer-quiet", "freezer-warm", "kitchen-avg"]
    assert (got["freezer-warm"]["above"], got["freezer-warm"]["clear_below"], got["freezer-warm"]["for"]) == \
        (-15, -16, 300)
    assert got["freezer-quiet"] == {"rule": "freezer-quiet", "severity": "warning", "for": 0.0, "kind": "nodata",
                                    "after": 600.0}
    assert (got["kitchen-avg"]["fn"], got["kitchen-avg"]["window"]) == ("avg", 600)
    fridge = {"device": "fridge", "sensor": "t0", "metric": "temperature", "labels": {}}
    assert [(lim["above"], lim["below"]) for lim in limits_for(rules, fridge)] == [(8, 2)]
    # An edited file is read again; a broken one gives no limits instead of an error.
    path.write_text("rules: [{name: x, above: }\n")
    assert rule_limits(EngineRules(), path) == []


def test_the_site_time_zone_is_checked() -> None:
    assert DashboardSettings(timezone="Europe/Berlin").zone_name == "Europe/Berlin"
    assert DashboardSettings().zone_name  # the server's
    with pytest.raises(ValueError, match=r"unknown IANA time zone 'Berlin'; write e\.g\. Europe/Berlin"):
        DashboardSettings(timezone="Berlin")

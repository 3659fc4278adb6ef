"""Notifications write times in the site's time zone, named, and values at the sensor's precision."""

from __future__ import annotations

import logging
import random
import zoneinfo
from pathlib import Path

import pytest

from alerting.notify import RecordingSender
from alerting.notify.dispatcher import Dispatcher
from alerting.notify.message import Item, Kind, render
from alerting.transition import AlertState
from tests.support.dispatcher import START, Harness, config, transition
from vigil.core.clock import ManualClock

BERLIN = zoneinfo.ZoneInfo("Europe/Berlin")


def test_times_are_in_the_site_zone_with_its_name_and_values_are_rounded() -> None:
    t = transition(value=-11.913)
    m = render([Item(Kind.FIRING, t, START)], START + 30, BERLIN)
    # START is 2026-05-28 20:26:40 UTC: 22:26:40 in Berlin (summer time).
    assert m.body.splitlines()[1:] == ["Value: -11.9", "Firing since 2026-05-28 22:26:40 CEST (30s)."]
    precise = transition(value=-11.913, labels={"precision": "2"})
    assert "Value: -11.91" in render([Item(Kind.FIRING, precise, START)], START, BERLIN).body
    resolved = transition(state=AlertState.RESOLVED, at=START + 600)
    assert "from 2026-05-28 22:26:40 CEST to 2026-05-28 22:36:40 CEST." in \
        render([Item(Kind.RESOLVED, resolved, START)], START + 600, BERLIN).body


def test_the_silence_log_line_has_no_raw_epoch(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    d = Dispatcher(tmp_path / "notify.db", config(), sender=None, clock=ManualClock(START),  # type: ignore[arg-type]
                   zone=BERLIN)
    with caplog.at_level(logging.INFO, logger="alerting.notify.dispatcher"):
        d.add_silence({"device": "freezer-1"}, START + 3600, by="ana", comment="defrosting")
    line = next(r.getMessage() for r in caplog.records if r.getMessage().startswith("silence "))
    assert "until 2026-05-28 23:26:40 CEST: defrosting" in line
    assert str(int(START)) not in line


class BerlinHarness(Harness):
    def new_dispatcher(self) -> Dispatcher:
        return Dispatcher(self.path, self.config, self.sender, self.clock, env=self.env, rng=random.Random(7),
                          zone=BERLIN)


async def test_a_fallback_says_since_when_in_the_site_zone(tmp_path: Path) -> None:
    staff, manager = "json://127.0.0.1:9/staff", "json://127.0.0.1:9/manager"
    cfg = config(receivers={"staff": {"urls": [staff], "fallback": ["manager"], "after": "2m"}, "manager": [manager]})
    h = BerlinHarness(tmp_path / "a.db", cfg, sender=RecordingSender(failures={staff: 10**9}))
    try:
        h.enqueue(transition())
        for second in range(151):
            await h.at(second)
        [m] = h.sender.sent
        assert "has failed since 2026-05-28 22:27:10 CEST (2m, " in m.body.splitlines()[0]
        assert "Firing since 2026-05-28 22:26:40 CEST" in m.body
    finally:
        h.close()

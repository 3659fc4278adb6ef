"""Quiet hours in a time zone, across daylight-saving changes, on a ManualClock."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alerting.notify.config import MuteWindow
from alerting.notify.policy import mute_active, mute_end
from alerting.transition import AlertState, Severity
from tests.support.dispatcher import Harness, config, transition


def utc(text: str) -> float:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.timezone.utc).timestamp()


NIGHTS = {"name": "nights", "time_zone": "Europe/Berlin", "start": "22:00", "end": "07:00",
          "allow_severity": ["critical"]}


@pytest.mark.parametrize(("at", "muted"), [
    # spring forward, 2026-03-29 02:00 CET -> 03:00 CEST: the night is 8 hours long
    ("2026-03-28T20:59:59", False), ("2026-03-28T21:00:00", True),
    ("2026-03-29T04:59:59", True), ("2026-03-29T05:00:00", False),
    # fall back, 2026-10-25 03:00 CEST -> 02:00 CET: the night is 10 hours long
    ("2026-10-24T19:59:59", False), ("2026-10-24T20:00:00", True),
    ("2026-10-25T05:59:59", True), ("2026-10-25T06:00:00", False),
])
def test_window_follows_local_wall_time_across_dst(at: str, muted: bool) -> None:
    window = MuteWindow.model_validate(NIGHTS)
    assert mute_active(window, utc(at)) is muted


def test_window_end_is_the_local_end_time() -> None:
    window = MuteWindow.model_validate(NIGHTS)
    assert mute_end(window, utc("2026-03-29T01:00:00")) == utc("2026-03-29T05:00:00")
    assert mute_end(window, utc("2026-10-25T01:00:00")) == utc("2026-10-25T06:00:00")
    assert mute_end(window, utc("2026-10-25T12:00:00")) is None


def test_weekdays_limit_the_window() -> None:
    window = MuteWindow.model_validate({**NIGHTS, "weekdays": "mon-fri"})
    assert mute_active(window, utc("2026-11-26T23:00:00"))  # Thursday night
    assert mute_active(window, utc("2026-11-28T05:00:00"))  # early Saturday: Friday's night
    assert not mute_active(window, utc("2026-11-28T23:00:00"))  # Saturday night


def test_daytime_window_does_not_wrap() -> None:
    window = MuteWindow.model_validate({"name": "lunch", "start": "12:00", "end": "13:00"})
    assert mute_active(window, utc("2026-11-26T12:30:00"))
    assert not mute_active(window, utc("2026-11-26T13:00:00"))
    assert not mute_active(window, utc("2026-11-26T11:59:00"))


async def test_warning_waits_until_quiet_hours_end_across_spring_dst(tmp_path: Path) -> None:
    start = utc("2026-03-28T21:30:00")  # 22:30 CET
    h = Harness(tmp_path / "a.db", config(mute_windows=[NIGHTS]), start=start)
    try:
        h.enqueue(transition(severity=Severity.WARNING, at=start),
                  transition(rule="freezer-hot", severity=Severity.CRITICAL, at=start))
        await h.dispatcher.step()
        h.clock.advance(30)
        await h.dispatcher.step()
        assert h.titles() == ["[FIRING critical] freezer-hot freezer-1/t0/temperature"]  # critical gets through
        # 06:59 CEST: still quiet (a fixed +1h offset would have let it out an hour ago)
        h.clock.set(utc("2026-03-29T04:59:00"))
        await h.dispatcher.step()
        assert len(h.sender.sent) == 1
        h.clock.set(utc("2026-03-29T05:00:00"))  # 07:00 CEST
        await h.dispatcher.step()
        h.clock.advance(30)
        await h.dispatcher.step()
        [warning] = [m for m in h.sender.sent if m.severity is Severity.WARNING]
        assert warning.title == "[FIRING warning] freezer-warm freezer-1/t0/temperature"
        assert "Firing since 2026-03-28 21:30:00 UTC (7h30m30s)." in warning.body
    finally:
        h.close()


async def test_resolved_during_quiet_hours_is_told_when_they_end(tmp_path: Path) -> None:
    start = utc("2026-10-24T19:00:00")  # 21:00 CEST, before the window
    h = Harness(tmp_path / "a.db", config(mute_windows=[NIGHTS]), start=start)
    try:
        h.enqueue(transition(severity=Severity.WARNING, at=start))
        await h.dispatcher.step()
        h.clock.advance(30)
        await h.dispatcher.step()
        assert len(h.sender.sent) == 1
        h.clock.set(utc("2026-10-24T23:00:00"))
        h.enqueue(transition(state=AlertState.RESOLVED, severity=Severity.WARNING, at=h.clock.now()))
        await h.dispatcher.step()
        h.clock.set(utc("2026-10-25T05:59:00"))  # 06:59 CET, after falling back
        await h.dispatcher.step()
        assert len(h.sender.sent) == 1
        h.clock.set(utc("2026-10-25T06:00:00"))
        await h.dispatcher.step()
        assert h.titles()[1] == "[RESOLVED warning] freezer-warm freezer-1/t0/temperature"
    finally:
        h.close()


async def test_window_with_match_mutes_only_what_it_matches(tmp_path: Path) -> None:
    start = utc("2026-11-26T23:00:00")
    window = {"name": "lab", "start": "22:00", "end": "06:00", "match": {"device": "lab-*"}}
    h = Harness(tmp_path / "a.db", config(mute_windows=[window]), start=start)
    try:
        h.enqueue(transition(series="lab-1/t0/temperature", at=start), transition(rule="b", at=start))
        await h.dispatcher.step()
        h.clock.advance(30)
        await h.dispatcher.step()
        assert h.titles() == ["[FIRING critical] b freezer-1/t0/temperature"]
        [muted] = [a for a in h.dispatcher.status().alerts if a.rule == "freezer-warm"]
        assert muted.quiet == "mute lab"
    finally:
        h.close()


_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _reference(window: MuteWindow, now: float) -> bool:
    """Quiet hours by the local wall clock, the way a person reads them."""
    local = dt.datetime.fromtimestamp(now, window.zone)
    wall, today = local.time().replace(tzinfo=None), local.date()
    yesterday = today - dt.timedelta(days=1)
    on = {d: _DAYS[d.weekday()] in window.weekdays for d in (today, yesterday)}
    if window.start < window.end:
        return on[today] and window.start <= wall < window.end
    return (on[today] and wall >= window.start) or (on[yesterday] and wall < window.end)


@settings(max_examples=400, deadline=None)
@given(
    zone=st.sampled_from(["Europe/Berlin", "America/New_York", "Australia/Sydney", "Asia/Kolkata", "UTC"]),
    # boundaries away from 01:00-03:59, where these zones change their clocks
    start=st.tuples(st.sampled_from([0, *range(4, 24)]), st.sampled_from([0, 30])),
    end=st.tuples(st.sampled_from([0, *range(4, 24)]), st.sampled_from([0, 15])),
    days=st.sets(st.sampled_from(_DAYS), min_size=1),
    now=st.floats(min_value=utc("2026-01-01T00:00:00"), max_value=utc("2027-01-01T00:00:00")),
)
def test_window_agrees_with_the_wall_clock(zone: str, start: tuple[int, int], end: tuple[int, int],
                                           days: set[str], now: float) -> None:
    window = MuteWindow.model_validate({"name": "w", "time_zone": zone, "weekdays": sorted(days),
                                        "start": f"{start[0]:02d}:{start[1]:02d}",
                                        "end": f"{end[0]:02d}:{end[1]:02d}"})
    # to the millisecond: datetime rounds a float to the microsecond, so the reference read 18:59:59.9999998 as
    # 19:00:00 (a window ending at 19:00 over by a fifth of a microsecond), which the engine rightly does not
    now = round(now, 3)
    assert mute_active(window, now) is _reference(window, now)

"""Grouping never holds back the first word of a new alert: with the shipped settings, within group_wait."""

from __future__ import annotations

import random
import re
from pathlib import Path

from alerting.notify import NotifyConfig, SentMessage
from alerting.transition import AlertState
from tests.support.dispatcher import START, Harness, transition

STAFF = {"receivers": {"staff": ["json://127.0.0.1:9/staff"]}}


def named(h: Harness) -> dict[str, float]:
    """Each freezer and the clock time (from START) of the first message that named it as firing."""
    out: dict[str, float] = {}
    for at, m in h.sent_at:
        for device in re.findall(r"\[FIRING \w+\] freezer-warm (freezer-\d+)/", f"{m.title}\n{m.body}"):
            out.setdefault(device, at)
    return out


class Timed(Harness):
    """A harness that notes the clock time of each message sent."""

    def __init__(self, path: Path, cfg: NotifyConfig) -> None:
        super().__init__(path, cfg)
        self.sent_at: list[tuple[float, SentMessage]] = []

    async def at(self, seconds: float) -> None:
        before = len(self.sender.sent)
        await super().at(seconds)
        self.sent_at += [(seconds, m) for m in self.sender.sent[before:]]


async def test_shipped_defaults_tell_an_alert_of_a_group_already_told_within_group_wait(tmp_path: Path) -> None:
    cfg = NotifyConfig.model_validate(STAFF)
    assert (cfg.grouping.group_wait, cfg.grouping.group_interval) == (5, 60)
    h = Harness(tmp_path / "a.db", cfg)
    try:
        h.enqueue(transition(series="freezer-1/t0/temperature"))
        await h.at(0)
        await h.at(5)
        assert h.titles() == ["[FIRING critical] freezer-warm freezer-1/t0/temperature"]
        # a second freezer of the same rule (the same group) 15 s later: 5 s, not the 1m of group_interval
        h.enqueue(transition(series="freezer-2/t0/temperature", at=START + 20))
        await h.at(20)
        await h.at(24.9)
        assert len(h.titles()) == 1
        await h.at(25)
        assert h.titles()[1] == "[FIRING critical] freezer-warm freezer-2/t0/temperature"
    finally:
        h.close()


async def test_staggered_burst_of_twenty_freezers_with_the_shipped_settings(tmp_path: Path) -> None:
    """20 freezers on one rule turn warm at random moments over 30 s: each told within 5 s, in a handful."""
    h = Timed(tmp_path / "a.db", NotifyConfig.model_validate(STAFF))
    rng = random.Random(21)
    fired = sorted((rng.uniform(0, 30), f"freezer-{i}") for i in range(20))
    try:
        tick = 0.0
        pending = list(fired)
        while tick <= 40:
            while pending and pending[0][0] <= tick:
                at, device = pending.pop(0)
                h.enqueue(transition(series=f"{device}/t0/temperature", at=START + at))
            await h.at(tick)
            tick = round(tick + 0.25, 2)
        told = named(h)
        assert sorted(told) == sorted(d for _, d in fired)
        waits = [told[d] - at for at, d in fired]
        assert max(waits) <= 5.25, waits  # group_wait, and the 0.25 s step of this test's clock
        # at most one message per group_wait, each listing only what is new
        times = [at for at, _ in h.sent_at]
        assert all(b - a >= 5 for a, b in zip(times, times[1:])), times
        assert len(h.sent_at) <= 7, times
        listed = [line for _, m in h.sent_at for line in m.body.splitlines() if line.startswith("- ")]
        assert len(listed) == len(set(listed))
    finally:
        h.close()


async def test_resolutions_and_reminders_still_wait_for_group_interval(tmp_path: Path) -> None:
    h = Harness(tmp_path / "a.db", NotifyConfig.model_validate(STAFF))
    try:
        h.enqueue(transition(series="freezer-1/t0/temperature"), transition(series="freezer-2/t0/temperature"))
        await h.at(0)
        await h.at(5)
        assert h.titles() == ["[FIRING 2] freezer-warm (2 alerts)"]
        h.enqueue(transition(series="freezer-1/t0/temperature", state=AlertState.RESOLVED, at=START + 10))
        await h.at(10)
        await h.at(64)
        assert len(h.titles()) == 1  # the group's last message was at 5: the resolution waits until 65
        await h.at(65)
        assert h.titles()[1] == "[RESOLVED critical] freezer-warm freezer-1/t0/temperature"
    finally:
        h.close()


async def test_news_takes_a_waiting_resolution_along_in_one_message(tmp_path: Path) -> None:
    h = Harness(tmp_path / "a.db", NotifyConfig.model_validate(STAFF))
    try:
        h.enqueue(transition(series="freezer-1/t0/temperature"))
        await h.at(0)
        await h.at(5)
        h.enqueue(transition(series="freezer-1/t0/temperature", state=AlertState.RESOLVED, at=START + 10))
        await h.at(10)
        h.enqueue(transition(series="freezer-2/t0/temperature", at=START + 20))
        await h.at(20)
        await h.at(25)
        assert h.titles()[1] == "[RESOLVED 1, FIRING 1] freezer-warm (2 alerts)"
        await h.at(600)
        assert len(h.titles()) == 2
    finally:
        h.close()

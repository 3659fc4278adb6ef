"""Latched alerts that cleared, acknowledgement links and who was told in the ledger, on a ManualClock."""

from __future__ import annotations

import dataclasses
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Optional
from urllib.parse import parse_qs, urlsplit

import pytest

from alerting import ledger
from alerting.notify import Dispatcher, NotifyConfig
from alerting.transition import AlertState, Transition
from tests.support.dispatcher import START, Harness, config, transition
from vigil.core import acklink

SECRET = b"s" * 32
PUBLIC = "https://vigil.example.com/"
LINK = re.compile(r"^Acknowledge: https://vigil\.example\.com/ack/(\S+)$", re.M)


class LinkHarness(Harness):
    def __init__(self, path: Path, cfg: Optional[NotifyConfig] = None, public_url: Optional[str] = PUBLIC) -> None:
        self.public_url = public_url
        super().__init__(path, cfg)

    def new_dispatcher(self) -> Dispatcher:
        return Dispatcher(self.path, self.config, self.sender, self.clock, env=self.env,
                          public_url=self.public_url, link_secret=SECRET)

    def told(self) -> list[tuple[str, str]]:
        conn = sqlite3.connect(str(self.path))
        try:
            return [(e.body["receiver"], e.body["kind"]) for e in ledger.entries(conn, kinds=["told"])]
        finally:
            conn.close()


@pytest.fixture
def lh(tmp_path: Path) -> Iterator[LinkHarness]:
    h = LinkHarness(tmp_path / "alerts.db")
    yield h
    h.close()


def cleared(fired: Transition, *, ended: float, at: Optional[float] = None, peak: float = -9.1) -> Transition:
    return dataclasses.replace(fired, id=fired.id + "-c", state=AlertState.CLEARED, previous=AlertState.FIRING,
                               at=ended if at is None else at, ended=ended, peak=peak,
                               message="freezer-1 is back at -18 °C")


def resolved_after_clear(fired: Transition, at: float, ended: float) -> Transition:
    return dataclasses.replace(fired, id=fired.id + "-r", state=AlertState.RESOLVED, previous=AlertState.CLEARED,
                               at=at, ended=ended, peak=-9.1, message="freezer-1 acknowledged")


async def test_cleared_tells_the_told_with_end_duration_and_peak_and_keeps_repeating(lh: LinkHarness) -> None:
    fired = transition(at=START)
    lh.enqueue(fired)
    await lh.at(0)
    await lh.at(30)
    assert lh.titles() == ["[FIRING critical] freezer-warm freezer-1/t0/temperature"]
    lh.enqueue(cleared(fired, ended=START + 42 * 60))
    await lh.at(42 * 60)
    await lh.at(42 * 60 + 300)  # group_interval after the last message
    assert lh.titles()[1] == "[CLEARED critical] freezer-warm freezer-1/t0/temperature"
    body = lh.sender.sent[1].body.splitlines()
    assert body[:2] == ["freezer-1 is back at -18 °C",
                        "Back in range at 2026-05-28 21:08:40 UTC after 42m, peak -9.1; still needs acknowledgement."]
    assert not lh.sender.sent[1].resolved
    # still not acknowledged: reminded after repeat_interval (4h) from the last message, as a firing one is
    await lh.at(42 * 60 + 300 + 4 * 3600 - 1)
    assert len(lh.sender.sent) == 2
    await lh.at(42 * 60 + 300 + 4 * 3600)
    await lh.at(42 * 60 + 300 + 4 * 3600 + 300)
    assert lh.titles()[2] == "[FIRING critical] freezer-warm freezer-1/t0/temperature"
    assert "Reminder: nobody acknowledged it yet." in lh.sender.sent[2].body
    assert "still needs acknowledgement" in lh.sender.sent[2].body
    assert lh.told() == [("staff", "firing"), ("staff", "cleared"), ("staff", "repeat")]


async def test_resolved_after_cleared_says_it_is_over_and_who_acknowledged(lh: LinkHarness) -> None:
    fired = transition(at=START)
    lh.enqueue(fired)
    await lh.at(0)
    await lh.at(30)
    lh.enqueue(cleared(fired, ended=START + 600))
    await lh.at(600)
    await lh.at(900)
    lh.dispatcher.acknowledge(fired.key, "anna", "moved the stock")
    lh.enqueue(resolved_after_clear(fired, START + 1000, START + 600))
    await lh.at(1000)
    await lh.at(1300)
    last = lh.sender.sent[-1]
    assert last.title == "[RESOLVED critical] freezer-warm freezer-1/t0/temperature" and last.resolved
    assert last.body.splitlines()[-1] == (
        "It is over: back in range at 2026-05-28 20:36:40 UTC after 10m, peak -9.1; acknowledged by anna.")
    assert "Acknowledge:" not in last.body
    assert lh.told()[-1] == ("staff", "resolved")


async def test_who_acknowledged_comes_from_the_ledger_when_the_dispatcher_was_not_told(lh: LinkHarness) -> None:
    fired = transition(at=START)
    lh.enqueue(fired)
    await lh.at(0)
    await lh.at(30)
    lh.enqueue(cleared(fired, ended=START + 600))
    await lh.at(900)
    with lh.engine:  # the engine records the acknowledgement in its own transaction
        ledger.create(lh.engine)
        ledger.append(lh.engine, "acked", fired.key, {"by": "ben", "comment": "", "via": "link",
                                                      "episode": fired.since, "at": START + 950}, START + 950)
    lh.enqueue(resolved_after_clear(fired, START + 1000, START + 600))
    await lh.at(1000)
    await lh.at(1300)
    assert lh.sender.sent[-1].body.endswith("acknowledged by ben.")


async def test_cleared_before_anyone_was_told_still_reaches_them_as_cleared(lh: LinkHarness) -> None:
    fired = transition(at=START)
    lh.enqueue(fired)
    await lh.at(0)
    lh.enqueue(cleared(fired, ended=START + 10))  # within group_wait: the firing message never went out
    await lh.at(10)
    await lh.at(40)
    assert lh.titles() == ["[CLEARED critical] freezer-warm freezer-1/t0/temperature"]
    assert LINK.search(lh.sender.sent[0].body)


async def test_escalation_goes_on_while_cleared(tmp_path: Path) -> None:
    cfg = config(escalation=[{"after": "15m", "receivers": ["manager"]}])
    h = LinkHarness(tmp_path / "alerts.db", cfg)
    try:
        fired = transition(at=START)
        h.enqueue(fired)
        await h.at(0)
        await h.at(30)
        h.enqueue(cleared(fired, ended=START + 120))
        await h.at(120)
        await h.at(600)
        await h.at(15 * 60)
        await h.at(15 * 60 + 30)
        to_manager = [m for m in h.sender.sent if m.urls == ("json://127.0.0.1:9/manager",)]
        assert [m.title for m in to_manager] == ["[ESCALATED critical] freezer-warm freezer-1/t0/temperature"]
        assert "escalated to you" in to_manager[0].body and "still needs acknowledgement" in to_manager[0].body
        token = LINK.search(to_manager[0].body)
        assert token is not None
        assert acklink.verify(SECRET, token.group(1), START + 16 * 60).to == "manager"
    finally:
        h.close()


async def test_acknowledged_cleared_alert_is_not_repeated_nor_escalated(tmp_path: Path) -> None:
    cfg = config(escalation=[{"after": "15m", "receivers": ["manager"]}])
    h = LinkHarness(tmp_path / "alerts.db", cfg)
    try:
        fired = transition(at=START)
        h.enqueue(fired)
        await h.at(0)
        await h.at(30)
        h.enqueue(cleared(fired, ended=START + 120))
        await h.at(120)
        await h.at(600)
        h.dispatcher.acknowledge(fired.key, "anna")
        for minute in (15, 16, 60, 5 * 60):
            await h.at(minute * 60)
        assert h.titles() == ["[FIRING critical] freezer-warm freezer-1/t0/temperature",
                              "[CLEARED critical] freezer-warm freezer-1/t0/temperature"]
    finally:
        h.close()


async def test_firing_again_while_cleared_tells_the_told_at_once_with_a_new_episode_link(lh: LinkHarness) -> None:
    fired = transition(at=START)
    lh.enqueue(fired)
    await lh.at(0)
    await lh.at(30)
    lh.enqueue(cleared(fired, ended=START + 600))
    await lh.at(900)
    again = dataclasses.replace(transition(at=START + 1200), previous=AlertState.CLEARED)
    lh.enqueue(again)
    await lh.at(1200)
    await lh.at(1230)  # news: group_wait, not group_interval
    assert lh.titles()[-1] == "[FIRING critical] freezer-warm freezer-1/t0/temperature"
    token = LINK.search(lh.sender.sent[-1].body)
    assert token is not None
    assert acklink.verify(SECRET, token.group(1), START + 1300).episode == START + 1200


async def test_links_verify_for_the_alert_episode_and_receiver_and_expire_after_a_day(lh: LinkHarness) -> None:
    fired = dataclasses.replace(transition(at=START), since=START - 120)
    lh.enqueue(fired)
    await lh.at(0)
    await lh.at(30)
    [m] = lh.sender.sent
    token = LINK.search(m.body)
    assert token is not None, m.body
    grant = acklink.verify(SECRET, token.group(1), START + 60)
    assert (grant.key, grant.episode, grant.to) == (fired.key, START - 120, "staff")
    assert grant.expires == pytest.approx(START + 30 + 24 * 3600, abs=1)
    with pytest.raises(acklink.LinkRefused) as refused:
        acklink.verify(SECRET, token.group(1), START + 30 + 24 * 3600 + 1)
    assert refused.value.reason == "expired"
    with pytest.raises(acklink.LinkRefused) as altered:
        acklink.verify(b"another secret!!", token.group(1), START + 60)
    assert altered.value.reason == "altered"


async def test_no_link_without_a_public_url_and_none_on_a_resolution(tmp_path: Path) -> None:
    h = LinkHarness(tmp_path / "alerts.db", public_url=None)
    try:
        h.enqueue(transition(at=START))
        await h.at(0)
        await h.at(30)
        assert "Acknowledge" not in h.sender.sent[0].body
    finally:
        h.close()


def ntfy_config(**more: Any) -> NotifyConfig:
    return config(receivers={"staff": ["ntfys://ntfy.example.com/${VIGIL_NOTIFY_TOPIC}?priority=high",
                                       "json://127.0.0.1:9/staff"]}, **more)


async def test_ntfy_gets_an_acknowledge_action_and_a_click_url_per_message(tmp_path: Path) -> None:
    h = LinkHarness(tmp_path / "alerts.db", ntfy_config())
    h.env["VIGIL_NOTIFY_TOPIC"] = "freezers-secret-topic"
    try:
        h.enqueue(transition(at=START))
        await h.at(0)
        await h.at(30)
        by_scheme = {m.urls[0].split(":")[0]: m for m in h.sender.sent}
        assert set(by_scheme) == {"ntfys", "json"}
        assert by_scheme["json"].urls == ("json://127.0.0.1:9/staff",)  # other services get no parameters
        url = urlsplit(by_scheme["ntfys"].urls[0])
        query = parse_qs(url.query)
        token = LINK.search(by_scheme["ntfys"].body)
        assert token is not None
        link = PUBLIC + "ack/" + token.group(1)
        assert url.path == "/freezers-secret-topic" and query["priority"] == ["high"]
        assert query["actions"] == [f"http, Acknowledge, {link}, method=POST, clear=true; view, Open, {link}"]
        assert query["click"] == [link]
        # the URL as stored and logged is still the template, masked
        conn = sqlite3.connect(str(h.path))
        stored = conn.execute("SELECT url, url_masked FROM notify_deliveries WHERE url LIKE 'ntfys%'").fetchone()
        conn.close()
        assert stored == ("ntfys://ntfy.example.com/${VIGIL_NOTIFY_TOPIC}?priority=high", "ntfys://ntfy.example.com/***")
    finally:
        h.close()


async def test_ntfy_parameters_follow_a_reload_that_changes_the_receiver_url(tmp_path: Path) -> None:
    h = LinkHarness(tmp_path / "alerts.db", ntfy_config())  # VIGIL_NOTIFY_TOPIC unset: the ntfy copy fails
    try:
        h.enqueue(transition(at=START))
        await h.at(0)
        await h.at(30)
        assert [m.urls[0] for m in h.sender.sent] == ["json://127.0.0.1:9/staff"]
        h.dispatcher.reload(config(receivers={"staff": ["ntfy://ntfy.example.com/other", "json://127.0.0.1:9/staff"]}))
        await h.at(31)
        assert len(h.sender.sent) == 2
        moved = urlsplit(h.sender.sent[1].urls[0])
        assert (moved.scheme, moved.path) == ("ntfy", "/other")
        assert parse_qs(moved.query)["click"][0].startswith(PUBLIC + "ack/")
    finally:
        h.close()


async def test_firing_and_resolved_show_the_peak_when_the_transition_has_one(lh: LinkHarness) -> None:
    fired = dataclasses.replace(transition(at=START, value=-12.5), peak=-11.04)
    lh.enqueue(fired)
    await lh.at(0)
    await lh.at(30)
    assert "Value: -12.5\nPeak: -11.0\n" in lh.sender.sent[0].body
    lh.enqueue(dataclasses.replace(fired, id="r", state=AlertState.RESOLVED, previous=AlertState.FIRING,
                                   at=START + 600, ended=START + 600, peak=-9.46))
    await lh.at(600)
    await lh.at(630)
    assert lh.sender.sent[1].body.splitlines()[-1] == "Peak: -9.5"

"""Fallback receivers: a message whose receiver keeps failing goes to the fallback, once, saying since when."""

from __future__ import annotations

import logging
import sqlite3
import textwrap
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from alerting.notify import NotifyConfig, RecordingSender
from tests.support.dispatcher import START, Harness, config, transition
from vigil.app.cli import main
from vigil.core._yaml import load_yaml
from vigil.core.configerrors import describe_errors

STAFF = "json://127.0.0.1:9/staff"
MANAGER = "json://127.0.0.1:9/manager"
TITLE = "[FIRING critical] freezer-warm freezer-1/t0/temperature"
DOWN = 10**9


def fallback_config(**staff: Any) -> NotifyConfig:
    return config(receivers={"staff": {"urls": [STAFF], "fallback": ["manager"], **staff}, "manager": [MANAGER]})


def staff_down(tmp_path: Path, **staff: Any) -> Harness:
    """A harness whose staff receiver fails every attempt until the test says otherwise."""
    return Harness(tmp_path / "a.db", fallback_config(**staff), sender=RecordingSender(failures={STAFF: DOWN}))


def to(h: Harness, url: str) -> list[str]:
    return [m.title for m in h.sender.sent if m.urls == (url,)]


async def run_until(h: Harness, last: int, first: int = 0) -> None:
    for second in range(first, last + 1):
        await h.at(second)


async def test_a_failing_receiver_falls_back_after_the_bound_once_saying_since_when(tmp_path: Path) -> None:
    h = staff_down(tmp_path, after="2m")
    sender = h.sender
    try:
        h.enqueue(transition())
        await run_until(h, 149)  # group_wait 30s: the first attempt fails at 30, so the bound is 150
        assert h.sender.sent == []
        await h.at(150)
        [m] = h.sender.sent
        assert (m.urls, m.title) == ((MANAGER,), TITLE)
        first, *rest = m.body.splitlines()
        assert first.startswith("(Sent to you because staff (json://127.0.0.1:9/***) has failed since "
                                "2026-05-28 20:27:10 UTC (2m, ")
        assert "last error: HTTP 503 from the test receiver" in first
        assert rest[0] == "freezer-1 is at -12.5 °C"
        # the dashboard still lists staff as failing, with nothing waiting for it
        [failing] = h.dispatcher.status().failing
        assert (failing.receiver, failing.waiting) == ("staff", 0)
        # staff recovers: the message that went to the manager is not also sent to staff, nor again to the manager
        sender.failures[STAFF] = 0
        await run_until(h, 1200, 151)
        assert to(h, STAFF) == [] and to(h, MANAGER) == [TITLE]
        # and staff, working again, gets the next alert itself
        h.enqueue(transition(series="freezer-2/t0/temperature", at=START + 1201))
        await run_until(h, 1240, 1201)
        assert to(h, STAFF) == ["[FIRING critical] freezer-warm freezer-2/t0/temperature"]
        assert len(to(h, MANAGER)) == 1
        assert h.dispatcher.status().failing == ()  # failing until a message got through
    finally:
        h.close()


async def test_after_n_failed_attempts_it_falls_back_at_once(tmp_path: Path) -> None:
    h = staff_down(tmp_path, attempts=2, **{"keep_trying": False})
    sender = h.sender
    try:
        h.enqueue(transition())
        await run_until(h, 40)  # attempts at 30 and about 35 (retry_initial 5s, jittered)
        assert sender.attempts == 3  # two to staff, one to the manager, and no more to staff
        assert to(h, MANAGER) == [TITLE]
        assert "2 attempt(s) for this message" in h.sender.sent[0].body
        await run_until(h, 400, 41)
        assert sender.attempts == 3
    finally:
        h.close()


async def test_keep_trying_also_delivers_to_the_first_receiver_when_it_recovers(tmp_path: Path) -> None:
    sender = RecordingSender(failures={STAFF: 2})
    h = Harness(tmp_path / "a.db", fallback_config(attempts=1, keep_trying=True), sender=sender)
    try:
        h.enqueue(transition())
        await run_until(h, 200)
        assert to(h, MANAGER) == [TITLE] and to(h, STAFF) == [TITLE]
    finally:
        h.close()


async def test_a_restart_between_the_failures_and_the_fallback_falls_back_once(tmp_path: Path) -> None:
    h = staff_down(tmp_path, after="1m")
    sender = h.sender
    try:
        h.enqueue(transition())
        await run_until(h, 60)
        assert sender.attempts >= 2 and h.sender.sent == []
        h.restart()  # the bound runs from the first failure, kept in the state file, not from the restart
        await run_until(h, 90, 61)
        assert to(h, MANAGER) == [TITLE]
        h.restart()
        await run_until(h, 400, 91)
        assert to(h, MANAGER) == [TITLE]
    finally:
        h.close()


async def test_while_a_receiver_stays_down_the_next_message_falls_back_after_one_failure(tmp_path: Path) -> None:
    h = staff_down(tmp_path, after="1m")
    try:
        h.enqueue(transition())
        await run_until(h, 91)
        assert to(h, MANAGER) == [TITLE]
        h.enqueue(transition(series="freezer-2/t0/temperature", at=START + 300))
        # group_wait 30s, one failed attempt at 330: the receiver has failed since 30, so it falls back at once
        await run_until(h, 331, 300)
        assert to(h, MANAGER) == [TITLE, "[FIRING critical] freezer-warm freezer-2/t0/temperature"]
    finally:
        h.close()


async def test_no_fallback_when_another_url_of_the_receiver_delivered_it(tmp_path: Path) -> None:
    sender = RecordingSender(failures={STAFF: DOWN})
    other = "json://127.0.0.1:9/staff-mail"
    cfg = config(receivers={"staff": {"urls": [STAFF, other], "fallback": "manager", "attempts": 1},
                            "manager": [MANAGER]})
    h = Harness(tmp_path / "a.db", cfg, sender=sender)
    try:
        h.enqueue(transition())
        await run_until(h, 120)
        assert to(h, other) == [TITLE] and to(h, MANAGER) == []
    finally:
        h.close()


async def test_a_fallback_chain_passes_the_message_on_again(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    sms = "json://127.0.0.1:9/sms"
    sender = RecordingSender(failures={STAFF: DOWN, MANAGER: DOWN})
    cfg = config(receivers={"staff": {"urls": [STAFF], "fallback": "manager", "attempts": 1},
                            "manager": {"urls": [MANAGER], "fallback": "sms", "attempts": 1}, "sms": [sms]})
    h = Harness(tmp_path / "a.db", cfg, sender=sender)
    caplog.set_level(logging.WARNING)
    try:
        h.enqueue(transition())
        await run_until(h, 60)
        [m] = h.sender.sent
        assert m.urls == (sms,)
        first, second = m.body.splitlines()[:2]
        assert first.startswith("(Sent to you because manager (json://127.0.0.1:9/***) has failed since ")
        assert second.startswith("(Sent to you because staff (json://127.0.0.1:9/***) has failed since ")
        assert sum("goes to manager instead" in r.getMessage() for r in caplog.records) == 1
    finally:
        h.close()


def issues(text: str) -> list[str]:
    data, positions = load_yaml(textwrap.dedent(text), "rules.yaml")
    with pytest.raises(ValidationError) as info:
        NotifyConfig.model_validate(data)
    return [str(i) for i in describe_errors(info.value, NotifyConfig, positions, "rules.yaml")]


def test_an_unknown_fallback_and_a_cycle_are_refused_at_their_line() -> None:
    assert issues("""
        receivers:
          staff:
            urls: [json://h/x]
            fallback: [manger]
          manager: json://h/y
        """) == ["rules.yaml:5: receivers.staff.fallback: unknown receiver 'manger' (known: manager, staff)"]
    [cycle] = issues("""
        receivers:
          staff: {urls: [json://h/x], fallback: manager}
          manager: {urls: [json://h/y], fallback: [sms]}
          sms: {urls: [json://h/z], fallback: [staff]}
        """)
    assert cycle.startswith("rules.yaml:3: receivers.staff.fallback: fallback cycle staff -> manager -> sms -> staff")
    assert issues("""
        receivers:
          staff: {urls: [json://h/x], fallback: manager, after: soon, attempts: 0, retry: 3}
          manager: json://h/y
        """) == [
        "rules.yaml:3: receivers.staff.after: expected a duration such as 30s, 5m, 1h30m or 7d, got 'soon'",
        "rules.yaml:3: receivers.staff.attempts: expected greater than or equal to 1, got 0",
        "rules.yaml:3: receivers.staff.retry: unknown key 'retry' (a receiver's keys are urls, fallback, after, "
        "attempts, keep_trying)"]
    assert issues("receivers:\n  staff: {fallback: manager}\n  manager: json://h/y\n") == [
        "rules.yaml:2: receivers.staff: a receiver written as a mapping needs urls: [...], its apprise URLs, "
        "beside fallback:, after:, attempts: and keep_trying:"]


def test_rules_check_refuses_a_fallback_cycle(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "rules.yaml"
    f.write_text("receivers:\n  staff: {urls: [json://h/x], fallback: staff}\n"
                 "rules:\n  - {name: warm, above: 3, notify: staff}\n")
    assert main(["rules", "check", str(f)]) != 0
    err = capsys.readouterr().err
    assert f"{f}:2: receivers.staff.fallback: fallback cycle staff -> staff" in err


async def test_a_state_file_from_before_fallbacks_is_upgraded_and_its_waiting_message_falls_back(
        tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    with sqlite3.connect(path) as old:  # notify_deliveries as the release before fallbacks wrote it
        old.execute(
            "CREATE TABLE notify_deliveries (id INTEGER PRIMARY KEY AUTOINCREMENT, receiver TEXT NOT NULL,"
            " url TEXT NOT NULL, url_masked TEXT NOT NULL, title TEXT NOT NULL, body TEXT NOT NULL,"
            " severity TEXT NOT NULL, resolved INTEGER NOT NULL, keys TEXT NOT NULL, created REAL NOT NULL,"
            " attempts INTEGER NOT NULL DEFAULT 0, next_attempt REAL NOT NULL,"
            " state TEXT NOT NULL DEFAULT 'pending', last_error TEXT, sent_at REAL,"
            " in_doubt INTEGER NOT NULL DEFAULT 0)")
        old.execute("INSERT INTO notify_deliveries (receiver, url, url_masked, title, body, severity, resolved,"
                    " keys, created, next_attempt) VALUES ('staff', ?, 'json://127.0.0.1:9/***', ?, 'b', 'critical',"
                    " 0, '[]', ?, ?)", (STAFF, TITLE, START, START))
    old.close()
    h = Harness(path, fallback_config(attempts=1), sender=RecordingSender(failures={STAFF: DOWN}))
    try:
        await run_until(h, 2)
        assert to(h, MANAGER) == [TITLE]
    finally:
        h.close()

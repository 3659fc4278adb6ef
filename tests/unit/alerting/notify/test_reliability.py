"""Retries, restarts and the crash window: nothing lost, nothing sent twice."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import sqlite3
from pathlib import Path
from typing import Any, Callable, Optional

import pytest

from alerting.notify import Dispatcher, RecordingSender, SendResult
from alerting.notify.outbox import OUTBOX_TABLE
from alerting.transition import AlertState, Severity
from tests.support.dispatcher import START, Harness, config, transition

TITLE = "[FIRING critical] freezer-warm freezer-1/t0/temperature"
STAFF = "json://127.0.0.1:9/staff"


async def test_receiver_that_fails_three_times_gets_the_message_once_with_growing_backoff(tmp_path: Path) -> None:
    sender = RecordingSender(failures={STAFF: 3})
    h = Harness(tmp_path / "a.db", config(delivery={"retry_initial": "10s", "retry_max": "30s"}), sender=sender)
    try:
        h.enqueue(transition())
        await h.at(0)
        times = []
        for second in range(30, 200):
            before = sender.attempts
            await h.at(second)
            if sender.attempts > before:
                times.append(second)
        assert h.titles() == [TITLE]
        assert sender.attempts == 4
        gaps = [b - a for a, b in zip(times, times[1:])]
        # full jitter in [base/2, base]: 10s, 20s, then capped at 30s
        assert 5 <= gaps[0] <= 10 and 10 <= gaps[1] <= 20 and 15 <= gaps[2] <= 30
        assert h.dispatcher.status().failing == ()
    finally:
        h.close()


async def test_receiver_that_keeps_failing_is_reported_in_status_and_log(tmp_path: Path, caplog) -> None:  # type: ignore[no-untyped-def]
    sender = RecordingSender(failures={STAFF: 1000})
    h = Harness(tmp_path / "a.db", sender=sender)
    try:
        h.enqueue(transition())
        await h.at(0)
        for minute in range(1, 30):
            await h.at(minute * 60)
        [failing] = h.dispatcher.status().failing
        assert failing.receiver == "staff"
        assert failing.url == "json://127.0.0.1:9/***"
        assert failing.attempts >= 3
        assert failing.last_error == "HTTP 503 from the test receiver"
        errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
        assert any("receiver staff (json://127.0.0.1:9/***) failed 3 time(s)" in e for e in errors)
        # retries back off to retry_max (5m, jittered down to half): 13 attempts in 29 minutes, not 29
        assert sender.attempts <= 14
        # an error when it starts to count as failing, then only every tenth attempt
        assert len(errors) == 2
        assert h.sender.sent == []
    finally:
        h.close()


async def test_restart_sends_nothing_twice(h: Harness) -> None:
    h.enqueue(transition())
    await h.at(0)
    await h.at(30)
    h.restart()
    await h.at(31)
    await h.at(3600)
    h.restart()
    await h.at(3601)
    assert h.titles() == [TITLE]
    # and the alert's state came through: the repeat arrives after 4h, not sooner, not twice
    await h.at(30 + 4 * 3600)
    h.restart()
    await h.at(30 + 4 * 3600 + 1)
    await h.at(30 + 4 * 3600 + 301)
    assert h.titles() == [TITLE, TITLE]


async def test_restart_during_group_wait_keeps_the_pending_message(h: Harness) -> None:
    h.enqueue(transition())
    await h.at(0)
    h.restart()
    await h.at(30)
    assert h.titles() == [TITLE]


async def test_restart_with_unread_outbox_delivers_it(h: Harness) -> None:
    h.enqueue(transition())
    h.restart()
    await h.at(0)
    await h.at(30)
    assert h.titles() == [TITLE]


async def test_graceful_stop_during_a_send_finishes_and_records_it(h: Harness) -> None:
    h.sender.gate = asyncio.Event()
    h.enqueue(transition())
    await h.at(0)
    h.clock.set(START + 30)
    runner = asyncio.create_task(h.dispatcher.run())
    while h.sender.attempts == 0:
        await asyncio.sleep(0)
    runner.cancel()
    await asyncio.sleep(0)
    assert not runner.done()  # it waits for the send in flight
    h.sender.gate.set()
    with pytest.raises(asyncio.CancelledError):
        await runner
    assert h.titles() == [TITLE]
    h.sender.gate = None
    h.restart()
    await h.at(60)
    await h.at(4000)
    assert h.titles() == [TITLE]


def _crash_during_send(h: Harness) -> None:
    """What SIGKILL between 'sending' and 'sent' leaves in the state file."""
    conn = sqlite3.connect(str(h.path))
    conn.execute("UPDATE notify_deliveries SET state = 'sending', attempts = attempts + 1")
    conn.commit()
    conn.close()


async def test_send_cut_off_by_a_crash_is_resent_marked_as_possible_duplicate(h: Harness, caplog) -> None:  # type: ignore[no-untyped-def]
    h.sender.failures[STAFF] = 1
    h.enqueue(transition())
    await h.at(0)
    await h.at(30)  # fails once: the delivery row exists and waits
    _crash_during_send(h)
    h.restart()
    await h.at(31)
    [m] = h.sender.sent
    assert m.title == TITLE
    assert m.body.startswith("(Vigil stopped while sending this message; you may have received it already.)\n")
    assert "it may arrive twice" in caplog.text


async def test_send_cut_off_by_a_crash_is_skipped_when_configured(tmp_path: Path, caplog) -> None:  # type: ignore[no-untyped-def]
    h = Harness(tmp_path / "a.db", config(delivery={"in_doubt": "skip"}))
    try:
        h.sender.failures[STAFF] = 1
        h.enqueue(transition())
        await h.at(0)
        await h.at(30)
        _crash_during_send(h)
        h.restart()
        await h.at(31)
        await h.at(3600)
        assert h.sender.sent == []
        assert "may be lost" in caplog.text
    finally:
        h.close()


async def test_malformed_outbox_entry_is_logged_and_the_rest_delivered(h: Harness, caplog) -> None:  # type: ignore[no-untyped-def]
    h.engine.execute(f"INSERT INTO {OUTBOX_TABLE} (id, key, body, enqueued) VALUES ('x', 'k', '{{not json', {START})")
    h.engine.execute(f"INSERT INTO {OUTBOX_TABLE} (id, key, body, enqueued) VALUES ('y', 'k', '{{}}', {START})")
    h.enqueue(transition())
    await h.at(0)
    await h.at(30)
    assert h.titles() == [TITLE]
    assert caplog.text.count("is not a transition") == 2
    done = dict(h.engine.execute(f"SELECT id, done FROM {OUTBOX_TABLE}").fetchall())
    assert done["x"] == 2 and done["y"] == 2


async def test_huge_message_and_odd_names_are_sent_verbatim(h: Harness) -> None:
    message = "{{ 7*7 }} " + "x" * 100_000
    h.enqueue(transition(series="fr€ezer {{1}}/t0/temperature", message=message, value=float("nan")))
    await h.at(0)
    await h.at(30)
    [m] = h.sender.sent
    assert m.title == "[FIRING critical] freezer-warm fr€ezer {{1}}/t0/temperature"
    assert m.body.startswith(message + "\nValue: nan\n")


async def test_secret_comes_from_the_environment_and_never_reaches_the_log(tmp_path: Path, caplog) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.DEBUG)
    cfg = config(receivers={"staff": ["json://bot:${VIGIL_NOTIFY_BOT_TOKEN}@127.0.0.1:9/hook"]})
    h = Harness(tmp_path / "a.db", cfg)
    try:
        h.enqueue(transition())
        await h.at(0)
        await h.at(30)
        assert h.sender.sent == []
        assert "environment variable VIGIL_NOTIFY_BOT_TOKEN is not set (named in a receiver URL)" in caplog.text
        h.env["VIGIL_NOTIFY_BOT_TOKEN"] = "s3cr3t-t0ken"  # set, and the service restarted
        h.restart()
        await h.at(3600)
        assert h.sender.sent[0].urls == ("json://bot:s3cr3t-t0ken@127.0.0.1:9/hook",)
        assert "s3cr3t" not in caplog.text
        assert "json://127.0.0.1:9/***" in caplog.text
        assert "s3cr3t" not in repr(h.dispatcher.status()) + repr(cfg)
    finally:
        h.close()


async def test_run_wakes_on_new_outbox_entries_and_leaves_no_task(tmp_path: Path) -> None:
    h = Harness(tmp_path / "a.db", config(grouping={"group_wait": "0s"}))
    try:
        runner = asyncio.create_task(h.dispatcher.run())
        await asyncio.sleep(0.01)
        h.enqueue(transition())
        h.dispatcher.wake()
        for _ in range(200):
            if h.sender.sent:
                break
            await asyncio.sleep(0.005)
        assert h.titles() == [TITLE]
        runner.cancel()
        with pytest.raises(asyncio.CancelledError):
            await runner
    finally:
        h.close()


async def test_resolve_while_dispatcher_was_down_is_sent_once(h: Harness) -> None:
    h.enqueue(transition())
    await h.at(0)
    await h.at(30)
    h.dispatcher.close()
    h.enqueue(transition(state=AlertState.RESOLVED, at=START + 600))
    h.dispatcher = h.new_dispatcher()
    await h.at(700)
    await h.at(1000)
    h.restart()
    await h.at(2000)
    assert h.titles() == [TITLE, "[RESOLVED critical] freezer-warm freezer-1/t0/temperature"]


async def _settle() -> None:
    for _ in range(50):
        await asyncio.sleep(0)


async def test_run_fires_timers_on_the_clock_without_any_new_event(h: Harness) -> None:
    """Group wait, retries and the repeat come from the clock alone, as in production."""
    h.sender.failures[STAFF] = 1
    h.enqueue(transition())
    runner = asyncio.create_task(h.dispatcher.run())
    try:
        await _settle()
        h.clock.advance(29)
        await _settle()
        assert h.sender.attempts == 0
        h.clock.advance(1)  # group wait over: first attempt fails
        await _settle()
        assert h.sender.attempts == 1 and h.sender.sent == []
        for _ in range(10):  # the retry comes within retry_initial (5s)
            h.clock.advance(1)
            await _settle()
        assert h.titles() == [TITLE]
        h.clock.advance(4 * 3600 - 10)
        await _settle()
        h.clock.advance(300)
        await _settle()
        assert h.titles() == [TITLE, TITLE]
    finally:
        runner.cancel()
        with pytest.raises(asyncio.CancelledError):
            await runner


async def test_a_hanging_receiver_does_not_hold_up_the_others(tmp_path: Path) -> None:
    cfg = config(grouping={"group_wait": "0s"}, routes=[{"match": {}, "receivers": ["manager"]}])
    h = Harness(tmp_path / "a.db", cfg)
    h.sender.gates[STAFF] = asyncio.Event()
    runner = asyncio.create_task(h.dispatcher.run())
    try:
        h.enqueue(transition())
        h.dispatcher.wake()
        await _settle()
        assert [m.urls for m in h.sender.sent] == [("json://127.0.0.1:9/manager",)]
        h.enqueue(transition(rule="other", notify=("manager",)))
        h.dispatcher.wake()
        await _settle()
        assert len(h.sender.sent) == 2  # staff still hangs; the next alert went out anyway
        h.sender.gates[STAFF].set()
        await _settle()
        assert sorted(m.urls[0] for m in h.sender.sent) == [
            "json://127.0.0.1:9/manager", "json://127.0.0.1:9/manager", STAFF]
    finally:
        runner.cancel()
        with pytest.raises(asyncio.CancelledError):
            await runner
        h.close()


async def test_reload_with_a_fixed_url_sends_the_waiting_message_there_once(h: Harness, caplog) -> None:  # type: ignore[no-untyped-def]
    h.config = config(receivers={"staff": ["json://good/a", "json://broken/b"]})
    h.restart()
    h.sender.failures["json://broken/b"] = 1000
    h.enqueue(transition())
    await h.at(0)
    await h.at(30)
    assert [m.urls for m in h.sender.sent] == [("json://good/a",)]
    h.dispatcher.reload(config(receivers={"staff": ["json://good/a", "json://fixed/b"]}))
    await h.at(31)
    assert [m.urls for m in h.sender.sent] == [("json://good/a",), ("json://fixed/b",)]
    assert "receiver staff changed" in caplog.text
    h.dispatcher.reload(config(receivers={"other": ["json://x/y"]}))
    await h.at(5000)
    assert len(h.sender.sent) == 2


class _Raising(RecordingSender):
    async def send(self, urls: list[str], title: str, body: str, *, severity: Severity,
                   resolved: bool = False) -> SendResult:
        if self.attempts == 0:
            self.attempts += 1
            raise RuntimeError("token=abc123 leaked by a plugin")
        return await super().send(urls, title, body, severity=severity, resolved=resolved)


async def test_a_sender_that_raises_is_a_failed_attempt_not_a_crash(tmp_path: Path, caplog) -> None:  # type: ignore[no-untyped-def]
    h = Harness(tmp_path / "a.db", sender=_Raising())
    try:
        h.enqueue(transition())
        await h.at(0)
        await h.at(30)
        assert h.sender.sent == []
        assert "the sender raised RuntimeError" in caplog.text and "abc123" not in caplog.text
        await h.at(40)
        assert h.titles() == [TITLE]
    finally:
        h.close()


class _LosesAnswers(sqlite3.Connection):
    """A state connection whose database "goes away" once, as a PostgreSQL connection killed by a server stop does:
    ``before``: the next statement starting so fails without effect; ``after_sending``: the commit of the next
    'sending' mark takes effect but its answer is lost (the caller cannot know it committed)."""

    before: Optional[str] = None
    after_sending = False
    _cut_commit = False

    def execute(self, sql: str, params: Any = ()) -> sqlite3.Cursor:  # type: ignore[override]
        cls = type(self)
        if cls.before is not None and sql.startswith(cls.before):
            cls.before = None
            raise sqlite3.OperationalError("the connection is lost (test)")
        if cls.after_sending and sql.startswith("UPDATE notify_deliveries SET state = 'sending'"):
            cls.after_sending, cls._cut_commit = False, True
        cursor = super().execute(sql, params)
        if cls._cut_commit and sql == "COMMIT":
            cls._cut_commit = False
            raise sqlite3.OperationalError("the connection is lost (test)")
        return cursor


async def _run_until(h: Harness, done: Callable[[], bool], fresh: bool = True) -> None:
    """The dispatcher's own loop (run(): what catches a lost database), on the test's clock, until ``done``;
    ``fresh``: a new dispatcher on a connection that can lose answers (else the one there, run again)."""
    if fresh:
        h.dispatcher.close()
        h.dispatcher = Dispatcher(functools.partial(sqlite3.connect, str(h.path), isolation_level=None,
                                                    check_same_thread=False, factory=_LosesAnswers),
                                  h.config, h.sender, h.clock)
    runner = asyncio.create_task(h.dispatcher.run())
    try:
        for _ in range(400):
            if done():
                break
            h.clock.set(h.clock.now() + 1)
            h.dispatcher.wake()
            await asyncio.sleep(0.005)
    finally:
        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runner


def _delivery_states(h: Harness) -> list[str]:
    with contextlib.closing(sqlite3.connect(str(h.path))) as conn:
        return [str(r[0]) for r in conn.execute("SELECT state FROM notify_deliveries")]


async def test_a_send_whose_outcome_could_not_be_recorded_is_recorded_later_not_sent_again(
        h: Harness, caplog) -> None:  # type: ignore[no-untyped-def]
    h.enqueue(transition())
    _LosesAnswers.before = "UPDATE notify_deliveries SET state = 'sent'"
    await _run_until(h, lambda: bool(h.sender.sent) and _delivery_states(h) == ["sent"])
    assert _LosesAnswers.before is None  # the loss happened
    [m] = h.sender.sent
    assert m.title == TITLE and not m.body.startswith("(Vigil stopped")
    assert _delivery_states(h) == ["sent"]
    assert "recorded once the database answers" in caplog.text
    await _run_until(h, lambda: False)  # a while longer, and after a restart: nothing more
    assert len(h.sender.sent) == 1


async def test_a_sending_mark_whose_commit_answer_was_lost_is_sent_marked_not_left_unsent(
        h: Harness, caplog) -> None:  # type: ignore[no-untyped-def]
    h.enqueue(transition())
    _LosesAnswers.after_sending = True
    await _run_until(h, lambda: bool(h.sender.sent))
    assert not _LosesAnswers.after_sending and not _LosesAnswers._cut_commit  # the loss happened
    [m] = h.sender.sent  # committed 'sending' with no send started: in doubt, so sent (marked), never left out
    assert m.title == TITLE
    assert m.body.startswith("(Vigil stopped while sending this message; you may have received it already.)\n")
    assert "notification state not updated" in caplog.text
    await _run_until(h, lambda: False)
    assert len(h.sender.sent) == 1 and _delivery_states(h) == ["sent"]


async def test_a_dispatcher_run_again_recovers_a_send_another_left_in_doubt(h: Harness) -> None:
    """A process that holds partition 0 again (alerting/failover.py runs the same dispatcher again) recovers what the
    holder in between left 'sending', as a restart does."""
    h.sender.failures[STAFF] = 1
    h.enqueue(transition())
    await _run_until(h, lambda: h.sender.attempts == 1)  # failed once: the delivery row waits
    _crash_during_send(h)  # the other holder marked it 'sending' and died
    await _run_until(h, lambda: bool(h.sender.sent), fresh=False)
    [m] = h.sender.sent
    assert m.body.startswith("(Vigil stopped while sending this message; you may have received it already.)\n")

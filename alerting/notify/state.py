"""Delivery state in the engine's SQLite file: active alerts, who was told, queued and sent messages, silences."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Optional

from alerting import ledger
from alerting.state import immediate_transaction
from alerting.transition import Transition

from .config import Match, mask_apprise_url
from .message import Item, Kind
from .outbox import OUTBOX_TABLE, Outbox
from .policy import ActiveSilence

__all__ = ["AlertRow", "DeliveryRow", "FailedMessage", "NotifyState", "PendingRow", "ReceiverFailure"]

# columns added after the first release: a state file from before gets them on start
_ADDED_COLUMNS = {"message": "TEXT", "fell_back": "INTEGER NOT NULL DEFAULT 0", "params": "TEXT"}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS notify_alerts (
    key TEXT PRIMARY KEY, state TEXT NOT NULL, body TEXT NOT NULL, fired_at REAL NOT NULL,
    escalated TEXT NOT NULL DEFAULT '[]', acked_by TEXT, acked_at REAL, ack_comment TEXT, learned_at REAL
);
CREATE TABLE IF NOT EXISTS notify_told (
    key TEXT NOT NULL, receiver TEXT NOT NULL, told_at REAL NOT NULL, PRIMARY KEY (key, receiver)
);
CREATE TABLE IF NOT EXISTS notify_pending (
    id INTEGER PRIMARY KEY AUTOINCREMENT, receiver TEXT NOT NULL, group_key TEXT NOT NULL,
    key TEXT NOT NULL, kind TEXT NOT NULL, body TEXT NOT NULL, fired_at REAL NOT NULL, due REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS notify_pending_due ON notify_pending (due);
CREATE INDEX IF NOT EXISTS notify_pending_key ON notify_pending (key);
CREATE INDEX IF NOT EXISTS notify_pending_group ON notify_pending (receiver, group_key, due);
CREATE TABLE IF NOT EXISTS notify_groups (
    receiver TEXT NOT NULL, group_key TEXT NOT NULL, last_sent REAL NOT NULL, PRIMARY KEY (receiver, group_key)
);
CREATE TABLE IF NOT EXISTS notify_deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT, receiver TEXT NOT NULL, url TEXT NOT NULL, url_masked TEXT NOT NULL,
    title TEXT NOT NULL, body TEXT NOT NULL, severity TEXT NOT NULL, resolved INTEGER NOT NULL,
    keys TEXT NOT NULL, created REAL NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, next_attempt REAL NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending', last_error TEXT, sent_at REAL, in_doubt INTEGER NOT NULL DEFAULT 0,
    message TEXT, fell_back INTEGER NOT NULL DEFAULT 0, params TEXT
);
CREATE INDEX IF NOT EXISTS notify_deliveries_state ON notify_deliveries (state, next_attempt);
CREATE INDEX IF NOT EXISTS notify_deliveries_message ON notify_deliveries (message);
CREATE TABLE IF NOT EXISTS notify_channels (
    url TEXT PRIMARY KEY, failing_since REAL NOT NULL, last_error TEXT
);
CREATE TABLE IF NOT EXISTS notify_silences (
    id TEXT PRIMARY KEY, match TEXT NOT NULL, starts REAL NOT NULL, ends REAL NOT NULL,
    by TEXT NOT NULL, comment TEXT NOT NULL, static INTEGER NOT NULL DEFAULT 0
);
"""


@dataclass(frozen=True, slots=True)
class AlertRow:
    key: str
    state: str
    transition: Transition
    fired_at: float
    escalated: tuple[int, ...]
    acked_by: Optional[str]
    acked_at: Optional[float]
    ack_comment: Optional[str]
    # when Vigil learned that it fired: later than fired_at for an excursion it learned of late (an agent's
    # backlog after an outage); escalation counts from here, so the first person gets the policy's time to act
    learned_at: Optional[float] = None

    @property
    def escalate_from(self) -> float:
        return self.fired_at if self.learned_at is None else max(self.fired_at, self.learned_at)


@dataclass(frozen=True, slots=True)
class PendingRow:
    id: int
    receiver: str
    group_key: str
    item: Item
    due: float


@dataclass(frozen=True, slots=True)
class DeliveryRow:
    id: int
    receiver: str
    url: str
    url_masked: str
    title: str
    body: str
    severity: str
    resolved: bool
    attempts: int
    in_doubt: bool


@dataclass(frozen=True, slots=True)
class FailedMessage:
    """A message none of whose URLs delivered it yet, with at least one failed attempt: a fallback candidate."""

    message: str
    receiver: str
    url_masked: str
    title: str
    body: str
    severity: str
    resolved: bool
    keys: str
    attempts: int
    failing_since: float
    last_error: str


@dataclass(frozen=True, slots=True)
class ReceiverFailure:
    """A receiver URL whose messages keep failing: its last error and how many messages wait for it."""

    receiver: str
    url: str
    attempts: int
    last_error: str
    waiting: int


class NotifyState:
    """SQL for the Dispatcher; every write happens inside ``transaction()``."""

    def __init__(self, conn: sqlite3.Connection, *, create: bool = True) -> None:
        conn.isolation_level = None  # explicit BEGIN IMMEDIATE / COMMIT below
        conn.execute("PRAGMA busy_timeout = 10000")
        self.conn = conn
        if not create:  # a reader (vigil notify status) on a file the service owns
            return
        # the engine shares this file; WAL lets its commits and ours not wait on each other's readers
        conn.execute("PRAGMA journal_mode = WAL")
        # NORMAL survives a process crash; only the 'sending' mark is forced to disk (transaction(durable=True))
        conn.execute("PRAGMA synchronous = NORMAL")
        with self.transaction():
            Outbox(conn).create_tables()
            columns = {str(r[1]) for r in conn.execute("PRAGMA table_info(notify_deliveries)")}
            if columns:
                for name, kind in _ADDED_COLUMNS.items():
                    if name not in columns:
                        conn.execute(f"ALTER TABLE notify_deliveries ADD COLUMN {name} {kind}")
            alert_columns = {str(r[1]) for r in conn.execute("PRAGMA table_info(notify_alerts)")}
            if alert_columns and "learned_at" not in alert_columns:
                conn.execute("ALTER TABLE notify_alerts ADD COLUMN learned_at REAL")
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            ledger.create(conn)

    @contextmanager
    def transaction(self, durable: bool = False) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT; ``durable`` syncs the commit (and every one before it) to disk."""
        if durable:
            self.conn.execute("PRAGMA synchronous = FULL")
        try:
            with immediate_transaction(self.conn):
                yield self.conn
        finally:
            if durable:
                self.conn.execute("PRAGMA synchronous = NORMAL")

    # outbox
    def outbox_batch(self, after: int = 0, limit: int = 500) -> list[tuple[int, str]]:
        # seq is assigned under SQLite's write lock and commits are serial, so nothing new appears behind ``after``
        rows = self.conn.execute(
            f"SELECT seq, body FROM {OUTBOX_TABLE} WHERE seq > ? AND done = 0 ORDER BY seq LIMIT ?", (after, limit)
        ).fetchall()
        return [(int(r[0]), str(r[1])) for r in rows]

    def outbox_done(self, seq: int, done: int = 1) -> None:
        self.conn.execute(f"UPDATE {OUTBOX_TABLE} SET done = ? WHERE seq = ?", (done, seq))

    def outbox_prune(self, before: float) -> None:
        self.conn.execute(f"DELETE FROM {OUTBOX_TABLE} WHERE done != 0 AND enqueued < ?", (before,))

    # alerts
    def alert(self, key: str) -> Optional[AlertRow]:
        row = self.conn.execute("SELECT * FROM notify_alerts WHERE key = ?", (key,)).fetchone()
        return _alert(row) if row else None

    def alerts(self) -> list[AlertRow]:
        return [_alert(r) for r in self.conn.execute("SELECT * FROM notify_alerts ORDER BY fired_at, key")]

    def put_alert(self, t: Transition, fired_at: float, new_episode: bool) -> None:
        if new_episode:
            self.conn.execute(
                "INSERT OR REPLACE INTO notify_alerts (key, state, body, fired_at, learned_at) VALUES (?, ?, ?, ?, ?)",
                (t.key, t.state.value, _json(t), fired_at, t.reported),
            )
        else:
            self.conn.execute(
                "UPDATE notify_alerts SET state = ?, body = ? WHERE key = ?", (t.state.value, _json(t), t.key)
            )

    def delete_alert(self, key: str) -> None:
        self.conn.execute("DELETE FROM notify_alerts WHERE key = ?", (key,))
        self.conn.execute("DELETE FROM notify_told WHERE key = ?", (key,))

    def set_escalated(self, key: str, steps: list[int]) -> None:
        self.conn.execute("UPDATE notify_alerts SET escalated = ? WHERE key = ?", (json.dumps(steps), key))

    def acknowledge(self, key: str, by: str, comment: str, at: float) -> bool:
        cur = self.conn.execute(
            "UPDATE notify_alerts SET acked_by = ?, acked_at = ?, ack_comment = ? WHERE key = ?",
            (by, at, comment, key),
        )
        self.conn.execute("DELETE FROM notify_pending WHERE key = ? AND kind IN ('repeat', 'escalation')", (key,))
        return cur.rowcount > 0

    # who was told about the current episode
    def told(self, key: str) -> dict[str, float]:
        rows = self.conn.execute("SELECT receiver, told_at FROM notify_told WHERE key = ?", (key,))
        return {str(r[0]): float(r[1]) for r in rows}

    def set_told(self, key: str, receiver: str, at: float) -> None:
        self.conn.execute("INSERT OR REPLACE INTO notify_told (key, receiver, told_at) VALUES (?, ?, ?)",
                          (key, receiver, at))

    def record_told(self, key: str, receiver: str, kind: str, at: float) -> None:
        """The ledger's record that ``receiver`` was sent news of kind ``kind`` about alert ``key``."""
        ledger.append(self.conn, "told", key, {"receiver": receiver, "kind": kind, "at": at}, at)

    def acked_in_ledger(self, key: str) -> Optional[str]:
        """Who acknowledged alert ``key`` last, as the engine recorded it in the ledger (None: nobody)."""
        row = self.conn.execute("SELECT body FROM ledger WHERE key = ? AND kind = 'acked' ORDER BY seq DESC LIMIT 1",
                                (key,)).fetchone()
        by = json.loads(row[0]).get("by") if row else None
        return by if isinstance(by, str) else None

    def clear_told(self, key: str) -> None:
        self.conn.execute("DELETE FROM notify_told WHERE key = ?", (key,))

    # queued items, waiting for their group
    def add_pending(self, receiver: str, group_key: str, item: Item, due: float) -> None:
        self.conn.execute(
            "INSERT INTO notify_pending (receiver, group_key, key, kind, body, fired_at, due)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (receiver, group_key, item.transition.key, item.kind.value, _json(item.transition),
             item.fired_at, due),
        )

    def pending_receivers(self, key: str) -> set[str]:
        rows = self.conn.execute("SELECT receiver FROM notify_pending WHERE key = ? AND kind != 'resolved'", (key,))
        return {str(r[0]) for r in rows}

    def drop_pending(self, key: str, kinds: tuple[str, ...]) -> None:
        marks = ",".join("?" * len(kinds))
        self.conn.execute(f"DELETE FROM notify_pending WHERE key = ? AND kind IN ({marks})", (key, *kinds))

    def group_due(self, receiver: str, group_key: str) -> Optional[float]:
        row = self.conn.execute("SELECT MIN(due) FROM notify_pending WHERE receiver = ? AND group_key = ?",
                                (receiver, group_key)).fetchone()
        return None if row[0] is None else float(row[0])

    def last_sent(self, receiver: str, group_key: str) -> Optional[float]:
        row = self.conn.execute("SELECT last_sent FROM notify_groups WHERE receiver = ? AND group_key = ?",
                                (receiver, group_key)).fetchone()
        return None if row is None else float(row[0])

    def set_last_sent(self, receiver: str, group_key: str, at: float) -> None:
        self.conn.execute("INSERT OR REPLACE INTO notify_groups (receiver, group_key, last_sent) VALUES (?, ?, ?)",
                          (receiver, group_key, at))

    def due_groups(self, now: float) -> list[tuple[str, str]]:
        rows = self.conn.execute(
            "SELECT receiver, group_key FROM notify_pending GROUP BY receiver, group_key HAVING MIN(due) <= ?",
            (now,))
        return [(str(r[0]), str(r[1])) for r in rows]

    def group_items(self, receiver: str, group_key: str) -> list[PendingRow]:
        rows = self.conn.execute(
            "SELECT id, receiver, group_key, kind, body, fired_at, due FROM notify_pending"
            " WHERE receiver = ? AND group_key = ? ORDER BY id", (receiver, group_key))
        return [PendingRow(int(r[0]), str(r[1]), str(r[2]),
                           Item(Kind(r[3]), Transition.from_json(r[4]), float(r[5])), float(r[6])) for r in rows]

    def delete_pending(self, ids: list[int]) -> None:
        self.conn.executemany("DELETE FROM notify_pending WHERE id = ?", [(i,) for i in ids])

    def postpone(self, pending_id: int, due: float) -> None:
        self.conn.execute("UPDATE notify_pending SET due = ? WHERE id = ?", (due, pending_id))

    def next_pending_due(self) -> Optional[float]:
        row = self.conn.execute("SELECT MIN(due) FROM notify_pending").fetchone()
        return None if row[0] is None else float(row[0])

    # deliveries: one row per URL, sent at most once
    def add_delivery(self, receiver: str, url: str, url_masked: str, title: str, body: str, severity: str,
                     resolved: bool, keys: list[str], now: float, message: Optional[str] = None,
                     params: str = "") -> None:
        """One URL's copy of a message; the copies of one message share ``message`` (an id). ``params``: URL
        parameters of this message only (``actions=...&click=...`` for ntfy), added to the URL when sent."""
        self.conn.execute(
            "INSERT INTO notify_deliveries (receiver, url, url_masked, title, body, severity, resolved, keys,"
            " created, next_attempt, message, params) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (receiver, url, url_masked, title, body, severity, int(resolved), json.dumps(keys), now, now, message,
             params or None))

    def due_deliveries(self, now: float, limit: int = 100) -> list[DeliveryRow]:
        rows = self.conn.execute(
            "SELECT id, receiver, url, url_masked, title, body, severity, resolved, attempts, in_doubt, params"
            " FROM notify_deliveries WHERE state = 'pending' AND next_attempt <= ? ORDER BY id LIMIT ?",
            (now, limit))
        return [DeliveryRow(int(r[0]), r[1], with_params(r[2], r[10]), r[3], r[4], r[5], r[6], bool(r[7]), int(r[8]),
                            bool(r[9])) for r in rows]

    def next_delivery_after(self, now: float) -> Optional[float]:
        row = self.conn.execute("SELECT MIN(next_attempt) FROM notify_deliveries WHERE state = 'pending'"
                                " AND next_attempt > ?", (now,)).fetchone()
        return None if row[0] is None else float(row[0])

    def mark_sending(self, delivery_id: int) -> None:
        self.conn.execute("UPDATE notify_deliveries SET state = 'sending', attempts = attempts + 1 WHERE id = ?",
                          (delivery_id,))

    def mark_sent(self, delivery_id: int, at: float) -> None:
        self.conn.execute("UPDATE notify_deliveries SET state = 'sent', sent_at = ?, last_error = NULL WHERE id = ?",
                          (at, delivery_id))
        self.conn.execute("DELETE FROM notify_channels WHERE url = (SELECT url FROM notify_deliveries WHERE id = ?)",
                          (delivery_id,))

    def mark_failed(self, delivery_id: int, error: str, retry_at: float, attempts: int, now: float) -> None:
        """A failed attempt: retried at ``retry_at``; its URL counts as failing since its first failure."""
        self.conn.execute(
            "UPDATE notify_deliveries SET state = 'pending', last_error = ?, next_attempt = ?, attempts = ?"
            " WHERE id = ?", (error, retry_at, attempts, delivery_id))
        self.conn.execute(
            "INSERT INTO notify_channels (url, failing_since, last_error)"
            " SELECT url, ?, ? FROM notify_deliveries WHERE id = ?"
            " ON CONFLICT (url) DO UPDATE SET last_error = excluded.last_error", (now, error, delivery_id))

    def failed_messages(self, receivers: list[str]) -> list[FailedMessage]:
        """Messages to ``receivers`` that failed, are not being sent, and that no URL delivered nor passed on."""
        if not receivers:
            return []
        marks = ",".join("?" * len(receivers))
        rows = self.conn.execute(
            "SELECT COALESCE(d.message, 'id:' || d.id), d.receiver, d.url_masked, d.title, d.body, d.severity,"
            " d.resolved, d.keys, d.attempts, c.failing_since, COALESCE(c.last_error, d.last_error, '')"
            " FROM notify_deliveries d JOIN notify_channels c ON c.url = d.url"
            f" WHERE d.state = 'pending' AND d.attempts > 0 AND d.fell_back = 0 AND d.receiver IN ({marks})"
            " AND NOT EXISTS (SELECT 1 FROM notify_deliveries s WHERE s.message = d.message"
            "                 AND s.state IN ('sent', 'sending'))"
            " ORDER BY d.id", receivers).fetchall()
        out: dict[str, FailedMessage] = {}
        for r in rows:
            m = FailedMessage(str(r[0]), str(r[1]), str(r[2]), str(r[3]), str(r[4]), str(r[5]), bool(r[6]),
                              str(r[7]), int(r[8]), float(r[9]), str(r[10]))
            prior = out.get(m.message)
            # a message is passed on once; its failing URL that failed first says since when
            if prior is None or m.failing_since < prior.failing_since:
                out[m.message] = m
        return list(out.values())

    def mark_fell_back(self, message: str, keep_trying: bool) -> None:
        """The message went to the fallbacks: never again; its first receiver stops trying unless ``keep_trying``."""
        where = "id = ?" if message.startswith("id:") else "message = ?"
        key: Any = int(message[3:]) if message.startswith("id:") else message
        state = "state" if keep_trying else "CASE WHEN state = 'pending' THEN 'fallen_back' ELSE state END"
        self.conn.execute(f"UPDATE notify_deliveries SET fell_back = 1, state = {state} WHERE {where}", (key,))

    def retarget(self, receivers: dict[str, list[str]]) -> list[tuple[DeliveryRow, list[str]]]:
        """Waiting messages whose URL a reload removed go to the receiver's new URLs (or are dropped)."""
        moved = []
        rows = self.conn.execute(
            "SELECT id, receiver, url, url_masked, title, body, severity, resolved, attempts, in_doubt, created"
            " FROM notify_deliveries WHERE state = 'pending'").fetchall()
        for r in rows:
            d = DeliveryRow(int(r[0]), r[1], r[2], r[3], r[4], r[5], r[6], bool(r[7]), int(r[8]), bool(r[9]))
            urls = receivers.get(d.receiver, [])
            if d.url in urls:
                continue
            # URLs that already have this message (sent or waiting) kept theirs: only new URLs get a copy
            siblings = {str(x[0]) for x in self.conn.execute(
                "SELECT url FROM notify_deliveries WHERE receiver = ? AND created = ? AND title = ?",
                (d.receiver, r[10], d.title))}
            targets = [u for u in urls if u not in siblings]
            for url in targets:
                self.conn.execute(
                    "INSERT INTO notify_deliveries (receiver, url, url_masked, title, body, severity, resolved, keys,"
                    " created, next_attempt, message, params) SELECT receiver, ?, ?, title, body, severity, resolved,"
                    " keys, created, created, message, CASE WHEN ? THEN params END FROM notify_deliveries WHERE id = ?",
                    (url, mask_apprise_url(url), is_ntfy(url), d.id))
            self.conn.execute("UPDATE notify_deliveries SET state = 'dropped' WHERE id = ?", (d.id,))
            moved.append((d, targets))
        return moved

    def recover_in_doubt(self, resend: bool, now: float) -> list[tuple[int, str, str]]:
        """Sends a crash interrupted: queued again (flagged) or given up; returns (id, receiver, title)."""
        rows = self.conn.execute("SELECT id, url_masked, title FROM notify_deliveries WHERE state = 'sending'")
        found = [(int(r[0]), str(r[1]), str(r[2])) for r in rows]
        if resend:
            self.conn.execute("UPDATE notify_deliveries SET state = 'pending', in_doubt = 1, next_attempt = ?"
                              " WHERE state = 'sending'", (now,))
        else:
            self.conn.execute("UPDATE notify_deliveries SET state = 'in_doubt' WHERE state = 'sending'")
        return found

    def failing(self, at_least: int) -> list[ReceiverFailure]:
        # a message passed on to a fallback no longer waits, but its URL fails until it delivers something
        rows = self.conn.execute(
            "SELECT receiver, url_masked, MAX(attempts), last_error, SUM(state != 'fallen_back') FROM notify_deliveries"
            " WHERE (state IN ('pending', 'sending') OR (state = 'fallen_back' AND url IN"
            " (SELECT url FROM notify_channels))) AND attempts >= ? GROUP BY receiver, url_masked", (at_least,))
        return [ReceiverFailure(str(r[0]), str(r[1]), int(r[2]), str(r[3] or ""), int(r[4])) for r in rows]

    def waiting_deliveries(self) -> int:
        return int(self.conn.execute(
            "SELECT COUNT(*) FROM notify_deliveries WHERE state IN ('pending', 'sending')").fetchone()[0])

    def prune_sent(self, before: float) -> None:
        self.conn.execute("DELETE FROM notify_deliveries WHERE state IN ('sent', 'in_doubt', 'dropped', 'fallen_back')"
                          " AND created < ?", (before,))
        self.conn.execute("DELETE FROM notify_groups WHERE last_sent < ?", (before,))

    # silences
    def silences(self, now: float) -> list[ActiveSilence]:
        rows = self.conn.execute(
            "SELECT id, match, starts, ends, by, comment FROM notify_silences WHERE ends > ? ORDER BY starts, id",
            (now,))
        return [ActiveSilence(str(r[0]), Match.model_validate(json.loads(r[1])), float(r[2]), float(r[3]),
                              str(r[4]), str(r[5])) for r in rows]

    def put_silence(self, s: ActiveSilence, static: bool) -> None:
        self.conn.execute(
            "INSERT OR REPLACE INTO notify_silences (id, match, starts, ends, by, comment, static)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (s.id, json.dumps(s.match.model_dump()), s.starts, s.ends, s.by, s.comment, int(static)))

    def expire_silence(self, silence_id: str, now: float) -> bool:
        cur = self.conn.execute("UPDATE notify_silences SET ends = ? WHERE id = ? AND ends > ?",
                                (now, silence_id, now))
        return cur.rowcount > 0

    def replace_static_silences(self, silences: list[ActiveSilence]) -> None:
        self.conn.execute("DELETE FROM notify_silences WHERE static = 1")
        for s in silences:
            self.put_silence(s, static=True)


def is_ntfy(url: str) -> bool:
    """Whether an apprise URL goes to ntfy (which takes action buttons and a click URL)."""
    return url.lower().startswith(("ntfy://", "ntfys://"))


def with_params(url: str, params: Optional[str]) -> str:
    """``url`` with a message's own query parameters added (they are URL-encoded already)."""
    if not params:
        return url
    return f"{url}{'&' if '?' in url else '?'}{params}"


def _json(t: Transition) -> str:
    """The transition as JSON without dataclasses.asdict's deep copy, which costs most of a planning pass."""
    d: dict[str, Any] = {
        "id": t.id, "rule": t.rule, "series": t.series, "state": t.state.value, "previous": t.previous.value,
        "at": t.at, "severity": t.severity.value, "message": t.message, "since": t.since, "value": t.value,
        "labels": dict(t.labels), "notify": list(t.notify), "annotations": dict(t.annotations),
    }
    for name in ("peak", "ended", "reported"):
        if getattr(t, name) is not None:
            d[name] = getattr(t, name)
    if t.reason:
        d["reason"] = dict(t.reason)
    return json.dumps(d, ensure_ascii=False, separators=(",", ":"))


def _alert(row: Any) -> AlertRow:
    return AlertRow(str(row[0]), str(row[1]), Transition.from_json(row[2]), float(row[3]),
                    tuple(json.loads(row[4])), row[5], row[6], row[7], row[8])

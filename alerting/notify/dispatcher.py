"""The Dispatcher: reads the outbox and turns transitions into messages, at most once each.

A transition meets these stages, in order (in Alertmanager's words where they have one):

1. dedup at the door: the outbox holds each transition id once, and each entry is taken once (``_ingest``);
2. route: the rule's ``notify:`` receivers, then the matching routes (``policy.receivers_for``);
3. silence, inhibit, time windows (mute): ``policy.suppression``, checked when an alert is queued
   (``_reconcile``) and again when its group is due (``_flush_group``); a resolution held by a mute
   window waits until the window ends;
4. group wait and group interval: ``_queue`` puts it in its group's next message;
5. dedup and repeat: a receiver is told of a firing alert once, reminded after ``repeat_interval``
   until someone acknowledges it, and escalation adds receivers (``_reconcile``);
6. notify: one message per group and receiver, one delivery per URL, who was told recorded (``_flush_group``);
7. retry: the courier sends with backoff (:mod:`alerting.notify.courier`), then fallback receivers.

Each step is one SQLite transaction in the engine's state file: taking transitions from the
outbox; queueing items for their group; turning a group's items into one message per receiver
URL and recording who was told. A restart therefore loses nothing queued and repeats nothing
recorded; the send itself, and its crash window, belong to :mod:`alerting.notify.courier`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import math
import random
import sqlite3
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Union

from alerting.transition import AlertState, Transition
from vigil.core.clock import Clock
from vigil.core.sitetime import format_time

from .config import Match, NotifyConfig, matches
from .courier import Courier
from .fallback import fall_back
from .message import Item, Kind, render
from .policy import ActiveSilence, Quiet, Stage, alert_labels, group_key, mute_end, receivers_for, suppression
from .sender import Sender
from .state import AlertRow, NotifyState, ReceiverFailure

__all__ = ["AlertStatus", "Dispatcher", "NotifyStatus"]

log = logging.getLogger(__name__)

_KEEP_HISTORY = 7 * 86400.0
# what a receiver has not heard yet: sent within group_wait, whatever its group's last message was
_NEWS = (Kind.FIRING, Kind.ESCALATION)


@dataclass(frozen=True, slots=True)
class AlertStatus:
    key: str
    rule: str
    series: str
    state: str
    severity: str
    message: str
    fired_at: float
    told: tuple[str, ...]
    escalated: tuple[str, ...]
    acked_by: Optional[str]
    acked_at: Optional[float]
    ack_comment: Optional[str]
    quiet: Optional[str]


@dataclass(frozen=True, slots=True)
class NotifyStatus:
    """What the dashboard shows: active alerts, silences, receivers that keep failing, messages waiting."""

    alerts: tuple[AlertStatus, ...]
    silences: tuple[ActiveSilence, ...]
    failing: tuple[ReceiverFailure, ...]
    waiting: int


class Dispatcher:
    """Delivers the outbox's transitions: routes, groups, repeats, escalates, retries; see the module doc."""

    def __init__(
        self,
        state: Union[str, Path, Callable[[], sqlite3.Connection]],
        config: NotifyConfig,
        sender: Sender,
        clock: Clock,
        *,
        env: Optional[Mapping[str, str]] = None,
        rng: Optional[random.Random] = None,
        poll_interval: float = 0.25,
        max_concurrent: int = 8,
        zone: Optional[dt.tzinfo] = None,
    ) -> None:
        if callable(state):
            conn = state()
        else:
            Path(state).parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(str(state), check_same_thread=False)
        self._state = NotifyState(conn)
        self._config = config
        self._clock = clock
        self._zone = zone  # the site's time zone for the times in messages and logs (None: the server's)
        self._poll = poll_interval
        self._wake = asyncio.Event()
        self._courier = Courier(self._state, sender, clock, self._wake.set, env=env, rng=rng,
                                max_concurrent=max_concurrent)
        self._recovered = False
        # a full reconcile walks every firing alert: on start, after a reload or a silence, when a timer
        # is due; an ingested transition or an acknowledgement reconciles only its own alert
        self._full = True
        self._touched: set[str] = set()
        self._reconcile_at = 0.0
        # firing alerts that may inhibit others (match an inhibit source), by key: no scan per check
        self._sources: dict[str, dict[str, str]] = {}
        self._prune_at = 0.0
        self._outbox_seq = 0  # the last outbox entry taken: polling it is one primary-key range query
        self._fallback_at = math.inf  # when a failing message is next due to go to its receiver's fallbacks
        with self._state.transaction():
            self._sync_static_silences()

    # public API
    def wake(self) -> None:
        """Tell a running Dispatcher that the outbox has news (the engine calls it after each commit)."""
        self._wake.set()

    def _changed(self) -> None:
        self._full = True
        self._wake.set()

    def close(self) -> None:
        self._state.conn.close()

    def reload(self, config: NotifyConfig) -> None:
        """Use a new configuration from now on (receivers, routes, silences...)."""
        self._config = config
        with self._state.transaction():
            self._sync_static_silences()
            current = {name: [u.template for u in urls] for name, urls in config.receivers.items()}
            for d, targets in self._state.retarget(current):
                if targets:
                    log.warning("receiver %s changed: %r goes to its new URL(s) instead of %s",
                                d.receiver, d.title, d.url_masked)
                else:
                    log.warning("receiver %s is gone: %r will not be sent to %s", d.receiver, d.title, d.url_masked)
        self._changed()

    def acknowledge(self, key: str, by: str, comment: str = "") -> bool:
        """Stop repeats and escalation of alert ``key`` (``rule/series``) until it fires anew; False if unknown."""
        with self._state.transaction():
            found = self._state.acknowledge(key, by, comment, self._clock.now())
        self._touched.add(key)
        if found:
            log.info("alert %s acknowledged by %s", key, by)
        return found

    def add_silence(self, match: Union[Match, Mapping[str, Any]], until: float, *, by: str, comment: str = "") -> str:
        """Silence alerts matching ``match`` from now until ``until`` (epoch seconds); returns the silence's id."""
        m = match if isinstance(match, Match) else Match.model_validate(dict(match))
        now = self._clock.now()
        if not math.isfinite(until) or until <= now:
            raise ValueError("a silence must end after it starts")
        silence = ActiveSilence(uuid.uuid4().hex[:12], m, now, until, str(by)[:200], str(comment)[:1000])
        with self._state.transaction():
            self._state.put_silence(silence, static=False)
        log.info("silence %s by %s until %s: %s", silence.id, by, format_time(until, self._zone), comment)
        self._changed()
        return silence.id

    def expire_silence(self, silence_id: str) -> bool:
        """End a silence now; False when no active silence has that id."""
        with self._state.transaction():
            found = self._state.expire_silence(silence_id, self._clock.now())
        self._changed()
        return found

    def status(self) -> NotifyStatus:
        """Active alerts with who was told and who acknowledged, silences, failing receivers."""
        now = self._clock.now()
        silences = self._state.silences(now)
        rows = self._state.alerts()
        firing = [alert_labels(r.transition) for r in rows if r.state == AlertState.FIRING.value]
        alerts = []
        for r in rows:
            t = r.transition
            quiet = suppression(self._config, alert_labels(t), t.severity, now, silences, firing)
            alerts.append(AlertStatus(
                r.key, t.rule, t.series, r.state, t.severity.value, t.message, r.fired_at,
                tuple(sorted(self._state.told(r.key))), tuple(self._escalation_receivers(r)),
                r.acked_by, r.acked_at, r.ack_comment, quiet.reason if quiet else None))
        failing = self._state.failing(self._config.delivery.failing_after)
        return NotifyStatus(tuple(alerts), tuple(s for s in silences if s.starts <= now), tuple(failing),
                            self._state.waiting_deliveries())

    async def run(self) -> None:
        """Deliver until cancelled; sends in flight are finished and recorded first."""
        async with asyncio.TaskGroup() as tg:
            while True:
                try:
                    self._plan()
                    self._courier.start(tg, self._config.delivery)
                except sqlite3.OperationalError as exc:  # locked or full disk: nothing was committed, try again
                    log.error("notification state not updated: %s; trying again", exc)
                now = self._clock.now()
                await self._nap(max(0.0, self._next_due(now) - now))

    async def step(self) -> float:
        """One pass at the clock's current time, waiting for its sends; returns when the next pass is due."""
        self._plan()
        started = 1
        while started:
            async with asyncio.TaskGroup() as tg:
                started = self._courier.start(tg, self._config.delivery)
        return self._next_due(self._clock.now())

    # the passes
    def _plan(self) -> None:
        now = self._clock.now()
        if not self._recovered:
            self._courier.recover(self._config.delivery, now)
            self._recovered = True
        self._ingest(now)
        if self._full or now >= self._reconcile_at:
            self._full = False
            self._touched.clear()
            self._reconcile(now, None)
            self._reconcile_at = self._next_timer(now)
        elif self._touched:
            keys, self._touched = self._touched, set()
            self._reconcile(now, keys)
        self._flush(now)
        self._fallback_at = fall_back(self._state, self._config, now, self._zone)

    def _ingest(self, now: float) -> None:
        while batch := self._state.outbox_batch(self._outbox_seq):
            with self._state.transaction():
                for seq, body in batch:
                    try:
                        t = Transition.from_json(body)
                    except (ValueError, KeyError, TypeError) as exc:
                        log.error("outbox entry %d is not a transition (%s); skipped", seq, exc)
                        self._state.outbox_done(seq, done=2)
                        continue
                    self._apply(t, now)
                    self._state.outbox_done(seq)
            self._outbox_seq = batch[-1][0]
        if now >= self._prune_at:
            with self._state.transaction():
                self._state.outbox_prune(now - _KEEP_HISTORY)
                self._state.prune_sent(now - _KEEP_HISTORY)
            self._prune_at = now + 3600.0

    def _apply(self, t: Transition, now: float) -> None:
        self._touched.add(t.key)
        labels = alert_labels(t)
        if any(matches(rule.source, labels) for rule in self._config.inhibit):
            # a possible inhibitor changed: alerts it held back (or now holds) are elsewhere
            self._full = True
            if t.state is AlertState.FIRING:
                self._sources[t.key] = labels
            else:
                self._sources.pop(t.key, None)
        current = self._state.alert(t.key)
        if t.state is AlertState.FIRING:
            new = current is None or current.state != AlertState.FIRING.value
            self._state.put_alert(t, t.at if new or current is None else current.fired_at, new)
            if new:
                self._state.clear_told(t.key)
                if not receivers_for(self._config, labels, t.notify):
                    log.warning("alert %s fires but no receiver hears it: give the rule notify: or add a route",
                                t.key[:300])
        elif t.state is AlertState.FLAPPING:
            self._state.put_alert(t, current.fired_at if current else t.at, new_episode=current is None)
            self._state.drop_pending(t.key, ("firing", "repeat", "escalation"))
            for receiver in receivers_for(self._config, labels, t.notify):
                self._queue(receiver, labels, Item(Kind.FLAPPING, t, current.fired_at if current else t.at), now)
        elif current is not None:  # resolved, or back to ok / pending after firing or flapping
            told = set(self._state.told(t.key))
            self._state.drop_pending(t.key, ("firing", "repeat", "escalation", "flapping"))
            if t.reported is not None and current.state == AlertState.FIRING.value:
                # learned late (an edge agent's backlog): an excursion already over is still told, its
                # firing and its end together, to whoever has not heard of it yet
                for receiver in receivers_for(self._config, labels, t.notify):
                    if receiver not in told:
                        self._queue(receiver, labels, Item(Kind.FIRING, current.transition, current.fired_at), now)
                        told.add(receiver)
            for receiver in sorted(told):
                self._queue(receiver, labels, Item(Kind.RESOLVED, t, current.fired_at), now)
            self._state.delete_alert(t.key)

    def _queue(self, receiver: str, labels: Mapping[str, str], item: Item, now: float) -> None:
        """Put ``item`` in its group's next message: news within ``group_wait``, updates by ``group_interval``.

        An alert the receiver has not been told about (firing, escalated to it) never waits for
        ``group_interval``: it joins a message already due within ``group_wait``, or is due ``group_wait`` from
        now, so a burst in one group makes at most one message per ``group_wait``. Reminders, flapping and
        resolutions of alerts already told wait for ``group_interval`` after the group's last message (and
        ride along with any message the group sends before that).
        """
        gk = group_key(self._config, labels)
        g = self._config.grouping
        due = self._state.group_due(receiver, gk)
        if item.kind in _NEWS:
            if due is None or due > now + g.group_wait:
                due = now + g.group_wait
        elif due is None:
            last = self._state.last_sent(receiver, gk)
            due = now + g.group_wait if last is None or last + g.group_interval <= now else last + g.group_interval
        self._state.add_pending(receiver, gk, item, due)

    def _escalation_receivers(self, row: AlertRow) -> list[str]:
        steps = self._config.escalation
        return list(dict.fromkeys(r for i in row.escalated if i < len(steps) for r in steps[i].receivers))

    def _reconcile(self, now: float, keys: Optional[set[str]]) -> None:
        """Queue what firing alerts owe their receivers: all of them (``keys`` None) or those named."""
        if keys is None:
            rows = [r for r in self._state.alerts() if r.state == AlertState.FIRING.value]
            self._sources = {r.key: alert_labels(r.transition) for r in rows
                             if any(matches(i.source, alert_labels(r.transition)) for i in self._config.inhibit)}
        else:
            found = (self._state.alert(k) for k in sorted(keys))
            rows = [r for r in found if r is not None and r.state == AlertState.FIRING.value]
        if not rows:
            return
        silences = self._state.silences(now)
        firing = list(self._sources.values())
        repeat = self._config.grouping.repeat_interval
        with self._state.transaction():
            for row in rows:
                labels = alert_labels(row.transition)
                if keys is not None:
                    self._reconcile_at = min([self._reconcile_at, *self._timers(row, now)])
                t = row.transition
                routed = receivers_for(self._config, labels, t.notify)
                if row.acked_by is None:
                    reached = [i for i, s in enumerate(self._config.escalation)
                               if s.match(labels) and now >= row.fired_at + s.after]
                    if set(reached) - set(row.escalated):
                        steps = sorted(set(reached) | set(row.escalated))
                        self._state.set_escalated(row.key, steps)
                        row = AlertRow(row.key, row.state, t, row.fired_at, tuple(steps), None, None, None)
                extra = [r for r in self._escalation_receivers(row) if r not in routed]
                told = self._state.told(row.key)
                waiting = self._state.pending_receivers(row.key)
                quiet: Optional[Quiet] = None
                checked = False  # suppression only once per alert, and only when a receiver is owed something
                for receiver in routed + extra:
                    if receiver in waiting:
                        continue
                    told_at = told.get(receiver)
                    if told_at is not None and (row.acked_by is not None or now < told_at + repeat):
                        continue
                    if not checked:
                        quiet, checked = suppression(self._config, labels, t.severity, now, silences, firing), True
                    if quiet is not None:
                        continue
                    kind = Kind.REPEAT if told_at is not None else (
                        Kind.ESCALATION if receiver in extra else Kind.FIRING)
                    self._queue(receiver, labels, Item(kind, t, row.fired_at), now)

    def _flush(self, now: float) -> None:
        groups = self._state.due_groups(now)
        if not groups:
            return
        silences = self._state.silences(now)
        firing = list(self._sources.values())
        with self._state.transaction():
            for receiver, gk in groups:
                self._flush_group(receiver, gk, now, silences, firing)

    def _flush_group(self, receiver: str, gk: str, now: float, silences: list[ActiveSilence],
                     firing: list[dict[str, str]]) -> None:
        keep: list[Item] = []
        drop: list[int] = []
        for row in self._state.group_items(receiver, gk):
            t = row.item.transition
            quiet = suppression(self._config, alert_labels(t), t.severity, now, silences, firing)
            if quiet is None:
                keep.append(row.item)
                drop.append(row.id)
            elif row.item.kind is Kind.RESOLVED and quiet.stage is Stage.MUTE and quiet.until is not None:
                self._state.postpone(row.id, quiet.until)  # tell them it is over once quiet hours end
            else:
                log.info("not sending %s of %s to %s: %s", row.item.kind.value, t.key, receiver, quiet.reason)
                drop.append(row.id)
        self._state.delete_pending(drop)
        if not keep:
            return
        urls = self._config.receivers.get(receiver)
        if not urls:
            log.error("receiver %r is no longer configured; %d alert(s) not sent to it", receiver, len(keep))
            return
        message = render(keep, now, self._zone)
        keys = list(dict.fromkeys(i.transition.key for i in keep))
        message_id = uuid.uuid4().hex
        for url in urls:
            self._state.add_delivery(receiver, url.template, url.masked, message.title, message.body,
                                     message.severity.value, message.resolved, keys, now, message_id)
        for item in keep:
            if item.kind is not Kind.RESOLVED:
                self._state.set_told(item.transition.key, receiver, now)
                self._reconcile_at = min(self._reconcile_at, now + self._config.grouping.repeat_interval)
        self._state.set_last_sent(receiver, gk, now)

    def _next_due(self, now: float) -> float:
        candidates = [now + self._poll, self._reconcile_at, self._fallback_at]
        for value in (self._state.next_pending_due(), self._state.next_delivery_after(now)):
            if value is not None:
                candidates.append(value)
        return max(now, min(candidates))

    def _next_timer(self, now: float) -> float:
        """When reconcile must look again: a repeat, an escalation, a silence or a mute window changes."""
        candidates = [now + 60.0]  # and once a minute anyway, for what no timer covers (a changed time zone)
        for row in self._state.alerts():
            candidates.extend(self._timers(row, now))
        for s in self._state.silences(now):
            candidates.append(s.ends if s.starts <= now else s.starts)
        for window in self._config.mute_windows:
            end = mute_end(window, now)
            if end is not None:
                candidates.append(end)
        # a time already past is one that suppression holds back: its end is among the candidates
        return min(c for c in candidates if c > now)

    def _timers(self, row: AlertRow, now: float) -> list[float]:
        """When this alert is next owed something: a repeat or an escalation step (times after ``now``)."""
        if row.state != AlertState.FIRING.value or row.acked_by is not None:
            return []
        repeat = self._config.grouping.repeat_interval
        times = [told + repeat for told in self._state.told(row.key).values()]
        times += [row.fired_at + s.after for i, s in enumerate(self._config.escalation) if i not in row.escalated]
        return [t for t in times if t > now]

    async def _nap(self, seconds: float) -> None:
        if self._wake.is_set():
            self._wake.clear()
            return
        sleeper = asyncio.ensure_future(self._clock.sleep(seconds))
        waker = asyncio.ensure_future(self._wake.wait())
        try:
            await asyncio.wait({sleeper, waker}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (sleeper, waker):
                task.cancel()
            await asyncio.gather(sleeper, waker, return_exceptions=True)
        self._wake.clear()

    def _sync_static_silences(self) -> None:
        silences = [ActiveSilence(s.id or f"file-{i}", s.match, s.starts.timestamp() if s.starts else 0.0,
                                  s.until.timestamp(), s.by, s.comment)
                    for i, s in enumerate(self._config.silences)]
        self._state.replace_static_silences(silences)

"""The Dispatcher: reads the outbox and turns transitions into messages, at most once each.

A transition meets these stages, in order (in Alertmanager's words where they have one):

1. dedup at the door: the outbox holds each transition id once, and each entry is taken once (``_ingest``);
2. route: the rule's ``notify:`` receivers, then the matching routes (``policy.receivers_for``);
3. silence, inhibit, time windows (mute): ``policy.suppression``, checked when an alert is queued
   (``_reconcile``) and again when its group is due (``_flush_group``); a resolution held by a mute
   window waits until the window ends;
4. group wait and group interval: ``_queue`` puts it in its group's next message;
5. dedup and repeat: a receiver is told of a firing alert once, reminded after ``repeat_interval``
   until someone acknowledges it, and escalation adds receivers (``_reconcile``); a latched alert whose
   condition cleared (CLEARED) is told as such and reminded and escalated alike until acknowledged;
   schedules resolve to the person on call and policies to their steps (:mod:`alerting.notify.oncall`);
6. notify: one message per group and receiver, one delivery per URL, who was told recorded, in the ledger
   too (``_flush_group``); each item asking for action carries a signed acknowledgement link
   (:mod:`vigil.core.acklink`) when the dashboard's public URL is known, and ntfy gets action buttons;
7. retry: the courier sends with backoff (:mod:`alerting.notify.courier`), then fallback receivers.

Each pass is one transaction in the engine's state database (an SQLite file, or PostgreSQL shared by several
engines and their dispatchers: :mod:`alerting.notify.state`): taking transitions from the outbox, queueing items
for their group, turning due groups' items into one message per receiver URL and recording who was told, all or
nothing. A restart therefore loses nothing queued and repeats nothing recorded; the send itself, and its crash
window, belong to :mod:`alerting.notify.courier`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import functools
import logging
import math
import random
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Union

from alerting.transition import AlertState, Transition
from vigil.core import sqldb
from vigil.core.clock import Clock
from vigil.core.sitetime import format_time

from .config import Match, NotifyConfig, matches
from .courier import Courier
from .fallback import fall_back
from .links import ack_links, ntfy_params
from .message import Item, Kind, render
from .oncall import PolicyStep, expand, next_handover, policy_steps
from .policy import ActiveSilence, Quiet, Stage, alert_labels, group_key, mute_end, receivers_for, suppression
from .sender import Sender
from .state import OUTBOX_BATCH, AlertRow, NotifyState, ReceiverFailure, is_ntfy

__all__ = ["AlertStatus", "Dispatcher", "NotifyStatus"]

log = logging.getLogger(__name__)

_KEEP_HISTORY = 7 * 86400.0
# what a receiver has not heard yet: sent within group_wait, whatever its group's last message was
_NEWS = (Kind.FIRING, Kind.ESCALATION)
# alerts that are owed repeats and escalation until acknowledged
_ACTIVE = (AlertState.FIRING.value, AlertState.CLEARED.value)
_ACKED_BY = "_acknowledged_by"  # carried on a RESOLVED item's transition: who acknowledged, for its message


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
        state: Union[str, Path, Callable[[], sqldb.Connection]],
        config: NotifyConfig,
        sender: Sender,
        clock: Clock,
        *,
        env: Optional[Mapping[str, str]] = None,
        rng: Optional[random.Random] = None,
        poll_interval: float = 0.25,
        max_concurrent: int = 8,
        zone: Optional[dt.tzinfo] = None,
        public_url: Optional[str] = None,
        link_secret: Optional[bytes] = None,
        fence: Optional[Callable[[sqldb.Connection], None]] = None,
    ) -> None:
        if not callable(state):  # a file path or a postgresql:// URL
            if not sqldb.is_postgres(str(state)):
                Path(state).parent.mkdir(parents=True, exist_ok=True)
            state = functools.partial(sqldb.connect, str(state))
        self._connect: Callable[[], sqldb.Connection] = state
        self._state = NotifyState(state())
        # called inside the delivery loop's writes (taking outbox entries, queueing, marking 'sending'): raises when
        # this dispatcher may no longer deliver (alerting/failover.py: its process lost partition 0's lease). An
        # exception of it with ``final`` set (alerting.engine.PartitionLost) ends run(); the public calls
        # (acknowledge, silences, reload) are not fenced: every engine of the process makes them
        self._state.fence = fence
        self._config = config
        self._clock = clock
        self._zone = zone  # the site's time zone for the times in messages and logs (None: the server's)
        # acknowledgement links: <public_url>/ack/<token>, only when both are known (alerting/notify/links.py)
        self._ack_base = public_url.rstrip("/") + "/ack/" if public_url and link_secret else None
        self._secret = link_secret
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
        """Deliver until cancelled; sends in flight are finished and recorded first. A fence that stops delivery
        (``final``: the lease is gone) ends it the same way, then raises that exception (not wrapped in a group)."""
        stopped: Optional[Exception] = None
        # a new tenure (alerting/failover.py runs this again each time its process holds partition 0 anew): a send
        # another dispatcher, or this one before a lost connection, left marked 'sending' is in doubt
        self._recovered = False
        self._full = True  # and what another holder, or this one before a lost connection, took is reconciled
        async with asyncio.TaskGroup() as tg:
            while True:
                try:
                    self._plan()
                    self._courier.start(tg, self._config.delivery)
                except self._state.errors as exc:  # locked, full disk, lost: nothing was committed, try again
                    log.error("notification state not updated: %s; trying again", exc)
                    # a 'sending' mark whose commit was cut off may have committed with its send never started:
                    # recovered as in doubt on the next pass, not left 'sending' for ever
                    self._recovered = False
                    self._full = True
                    self._reconnect()
                except Exception as exc:
                    if not getattr(exc, "final", False):
                        raise
                    stopped = exc  # rolled back: nothing more is taken or sent; the sends in flight are recorded
                    break
                now = self._clock.now()
                try:
                    wait = max(0.0, self._next_due(now) - now)
                except self._state.errors:  # the database is away: try again in a second
                    wait = 1.0
                await self._nap(wait)
        if stopped is not None:
            raise stopped

    def _reconnect(self) -> None:
        """A PostgreSQL connection that was lost (the server restarted, the network failed) never comes back by
        itself: connect again (on the next pass if the database is still away). An SQLite file needs none."""
        old = self._state.conn
        if not isinstance(old, sqldb.PgConnection) or not old.closed:
            return
        try:
            self._state.conn = self._connect()
        except self._state.errors as exc:
            log.warning("notification state: cannot connect again yet (%s)", exc)
            return
        log.warning("notification state: connected to the database again")
        try:
            old.close()
        except Exception:  # a broken connection may fail to close; it is thrown away either way
            pass

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
        self._courier.record_late()
        if not self._recovered:
            self._courier.recover(self._config.delivery, now)
            self._recovered = True
        batch = self._state.outbox_batch(self._outbox_seq)
        if batch or self._full or now >= self._reconcile_at or self._touched or self._state.due_groups(now):
            # one transaction for the pass (taking from the outbox, queueing what is owed by the alerts touched or
            # all, turning due groups into messages): the marks and the outbox position move only once it committed,
            # or an alert taken from the outbox by a commit just before a lost connection would never be told
            with self._state.transaction(fenced=True):
                seq = self._ingest(batch, now)
                full = self._full or now >= self._reconcile_at  # taking may have changed an inhibitor
                keys = set(self._touched)
                silences = self._state.silences(now)
                self._reconcile(now, None if full else keys, silences)
                if full:
                    self._reconcile_at = self._next_timer(now)
                self._flush(now, silences)
            self._outbox_seq = seq
            self._touched -= keys
            if full:
                self._full = False
        if now >= self._prune_at:
            with self._state.transaction(fenced=True):
                self._state.outbox_prune(now - _KEEP_HISTORY)
                self._state.prune_sent(now - _KEEP_HISTORY)
            self._prune_at = now + 3600.0
        self._fallback_at = fall_back(self._state, self._config, now, self._zone)

    def _ingest(self, batch: list[tuple[int, str]], now: float) -> int:
        """Take ``batch`` and what follows it from the outbox, in the caller's transaction; the last entry taken."""
        seq = self._outbox_seq
        while batch:
            for seq, body in batch:
                try:
                    t = Transition.from_json(body)
                except (ValueError, KeyError, TypeError) as exc:
                    if self._state.outbox_take(seq, done=2):
                        log.error("outbox entry %d is not a transition (%s); skipped", seq, exc)
                    continue
                if self._state.outbox_take(seq):  # else another dispatcher on the database took it
                    self._apply(t, now)
            batch = self._state.outbox_batch(seq) if len(batch) >= OUTBOX_BATCH else []
        return seq

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
            if current is not None and current.state == AlertState.CLEARED.value:
                # a new excursion of a latched alert nobody acknowledged: whoever heard of the last one hears now
                self._state.drop_pending(t.key, ("firing", "repeat", "escalation", "cleared"))
                for receiver in sorted(self._state.told(t.key)):
                    self._queue(receiver, labels, Item(Kind.FIRING, t, t.at), now)
            self._state.put_alert(t, t.at if new or current is None else current.fired_at, new)
            if not new:
                log.info("alert %s fires again while firing (%s): nothing new to tell", t.key[:300], t.id)
            if new:
                self._state.clear_told(t.key)
                if not self._routed(labels, t.notify, now):
                    log.warning("alert %s fires but no receiver hears it: give the rule notify: or add a route",
                                t.key[:300])
        elif t.state is AlertState.FLAPPING:
            self._state.put_alert(t, current.fired_at if current else t.at, new_episode=current is None)
            self._state.drop_pending(t.key, ("firing", "repeat", "escalation"))
            for receiver in self._routed(labels, t.notify, now):
                self._queue(receiver, labels, Item(Kind.FLAPPING, t, current.fired_at if current else t.at), now)
        elif t.state is AlertState.CLEARED:
            fired_at = current.fired_at if current else t.since
            self._state.put_alert(t, fired_at, new_episode=current is None)
            self._state.drop_pending(t.key, ("firing", "repeat", "escalation", "cleared"))
            for receiver in sorted(self._state.told(t.key)):  # the rest hear of it from _reconcile
                self._queue(receiver, labels, Item(Kind.CLEARED, t, fired_at), now)
        elif current is not None:  # resolved, or back to ok / pending after firing or flapping
            told = set(self._state.told(t.key))
            self._state.drop_pending(t.key, ("firing", "repeat", "escalation", "flapping", "cleared"))
            if current.state == AlertState.CLEARED.value:
                who = current.acked_by or self._state.acked_in_ledger(t.key)
                if who:
                    t = dataclasses.replace(t, annotations=(*t.annotations, (_ACKED_BY, who)))
            if t.reported is not None and current.state == AlertState.FIRING.value:
                # learned late (an edge agent's backlog): an excursion already over is still told, its
                # firing and its end together, to whoever has not heard of it yet
                for receiver in self._routed(labels, t.notify, now):
                    if receiver not in told:
                        self._queue(receiver, labels, Item(Kind.FIRING, current.transition, current.fired_at), now)
                        told.add(receiver)
            for receiver in sorted(told):
                self._queue(receiver, labels, Item(Kind.RESOLVED, t, current.fired_at), now)
            if not told:
                log.info("alert %s is over before anyone was told of it (group_wait, a silence): nothing is sent",
                         t.key[:300])
            self._state.delete_alert(t.key)

    def _queue(self, receiver: str, labels: Mapping[str, str], item: Item, now: float,
               news: Optional[bool] = None) -> None:
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
        if item.kind in _NEWS if news is None else news:
            if due is None or due > now + g.group_wait:
                due = now + g.group_wait
        elif due is None:
            last = self._state.last_sent(receiver, gk)
            due = now + g.group_wait if last is None or last + g.group_interval <= now else last + g.group_interval
        self._state.add_pending(receiver, gk, item, due)

    def _routed(self, labels: Mapping[str, str], notify: Iterable[str], now: float) -> list[str]:
        """The receivers told at once: the rule's and the routes', schedules as the person on call at ``now``,
        a policy as its first step."""
        return expand(self._config, receivers_for(self._config, labels, notify), now, self._zone)

    def _escalation_receivers(self, row: AlertRow, now: Optional[float] = None) -> list[str]:
        """The receivers escalation added: the steps of ``escalation:`` reached, and the later steps of the
        alert's policies reached before it was acknowledged; schedules as the person on call."""
        now = self._clock.now() if now is None else now
        steps = self._config.escalation
        names = [r for i in row.escalated if i < len(steps) for r in steps[i].receivers]
        until = now if row.acked_at is None else min(now, row.acked_at)
        for step in self._policy_steps(row):
            if row.escalate_from + step.after <= until:
                names.extend(step.notify)
        return expand(self._config, dict.fromkeys(names), now, self._zone)

    def _policy_steps(self, row: AlertRow) -> list[PolicyStep]:
        if not self._config.escalation_policies:
            return []
        t = row.transition
        return policy_steps(self._config, receivers_for(self._config, alert_labels(t), t.notify))

    def _reconcile(self, now: float, keys: Optional[set[str]], silences: list[ActiveSilence]) -> None:
        """Queue what firing alerts owe their receivers: all of them (``keys`` None) or those named."""
        if keys is None:
            rows = [r for r in self._state.alerts() if r.state in _ACTIVE]
            self._sources = {r.key: alert_labels(r.transition) for r in rows if r.state == AlertState.FIRING.value
                             and any(matches(i.source, alert_labels(r.transition)) for i in self._config.inhibit)}
        else:
            found = (self._state.alert(k) for k in sorted(keys))
            rows = [r for r in found if r is not None and r.state in _ACTIVE]
        if not rows:
            return
        firing = list(self._sources.values())
        repeat = self._config.grouping.repeat_interval
        for row in rows:
            labels = alert_labels(row.transition)
            if keys is not None:
                self._reconcile_at = min([self._reconcile_at, *self._timers(row, now)])
            t = row.transition
            routed = self._routed(labels, t.notify, now)
            if row.acked_by is None:
                reached = [i for i, s in enumerate(self._config.escalation)
                           if s.match(labels) and now >= row.escalate_from + s.after]
                if set(reached) - set(row.escalated):
                    steps = sorted(set(reached) | set(row.escalated))
                    self._state.set_escalated(row.key, steps)
                    row = AlertRow(row.key, row.state, t, row.fired_at, tuple(steps), None, None, None,
                                   row.learned_at)
            extra = [r for r in self._escalation_receivers(row, now) if r not in routed]
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
                first = Kind.CLEARED if row.state == AlertState.CLEARED.value else Kind.FIRING
                kind = Kind.REPEAT if told_at is not None else (Kind.ESCALATION if receiver in extra else first)
                self._queue(receiver, labels, Item(kind, t, row.fired_at), now, news=told_at is None)

    def _flush(self, now: float, silences: list[ActiveSilence]) -> None:
        groups = self._state.due_groups(now)
        if not groups:
            return
        firing = list(self._sources.values())
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
        links = ack_links(keep, receiver, now, self._ack_base, self._secret)
        acked = {i.transition.key: str(dict(i.transition.annotations)[_ACKED_BY]) for i in keep
                 if _ACKED_BY in dict(i.transition.annotations)}
        message = render(keep, now, self._zone, links=links, acked=acked)
        keys = list(dict.fromkeys(i.transition.key for i in keep))
        message_id = uuid.uuid4().hex
        actions = ntfy_params(next(iter(links.values()))) if len(links) == 1 else ""
        for url in urls:
            self._state.add_delivery(receiver, url.template, url.masked, message.title, message.body,
                                     message.severity.value, message.resolved, keys, now, message_id,
                                     params=actions if is_ntfy(url.template) else "")
        for item in keep:
            self._state.record_told(item.transition.key, receiver, item.kind.value, now)
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
        rows = self._state.alerts()
        for row in rows:
            candidates.extend(self._timers(row, now))
        if any(r.state in _ACTIVE for r in rows):  # the person on call may change: the new one is told
            for sched in self._config.schedules.values():
                candidates.append(next_handover(sched, now, sched.zone(self._zone)))
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
        if row.state not in _ACTIVE or row.acked_by is not None:
            return []
        repeat = self._config.grouping.repeat_interval
        times = [told + repeat for told in self._state.told(row.key).values()]
        times += [row.escalate_from + s.after for i, s in enumerate(self._config.escalation) if i not in row.escalated]
        times += [row.escalate_from + s.after for s in self._policy_steps(row)]
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


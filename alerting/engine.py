"""The rule engine: one state machine per (rule, series), driven by events, status and timers.

States: ok -> pending (condition holds, ``for`` not yet over) -> firing -> resolved, plus flapping
(too many firing/resolved changes in a window: one notification, then quiet until it settles), and for
a ``latch: true`` rule cleared (it fired, its condition cleared, nobody acknowledged it yet: it stays
until :meth:`Engine.acknowledge`, and fires anew from there on a new excursion).
Every change becomes a :class:`~alerting.transition.Transition`; those worth a notification are
enqueued in the outbox, and the ledger's rows (alerting/ledger.py: fired, cleared, resolved, acked,
note) appended, in the same SQLite transaction that stores the new state.

Times are source times: a reading is evaluated at its own ``ts`` (never later than the engine
clock, so a device clock running ahead cannot freeze a series, and never before the alert's last
change), after every timer due before it; "last heard" is the latest such time. What a reading changes in
its series, and the readings a ``hold_out`` rule keeps out of the others, are alerting/intake.py's. A change caused by
a timer (``for`` elapsed, silence too long, ``keep_firing_for`` over) happens at the timer's due
time, also when the engine evaluates it later (after a restart or a catch-up), so a replay yields
the same transition ids. A change learned more than :data:`LATE_AFTER` seconds after it happened is
marked late (``reported``) and its message says so. After the engine could not hear its input (see
:meth:`Engine.resume`), silence is counted from when input came back, for one no-data period.
"""

from __future__ import annotations

import dataclasses
import heapq
import logging
import math
from collections.abc import Iterable
from typing import Any, Callable, Optional

from alerting import excursion, ledger
from alerting.acks import Acknowledging
from alerting.conditions import Ctx, SeriesData
from alerting.conditions.status import STATUS_METRIC, STATUS_SENSOR, status_series_id
from alerting.index import CompiledRule, RuleIndex, owns
from alerting.intake import Intake
from alerting.notify.message import alert_message
from alerting.rules import RuleSet
from alerting.settings import DEVICE_RECONNECT_GRACE
from alerting.state import AlertRecord, StateDB
from alerting.transition import AlertState, Transition, TransitionSink, notifiable, sensor_reason, transition_id
from vigil.core.clock import Clock, SystemClock
from vigil.core.event import Event

__all__ = ["LATE_AFTER", "Engine", "PartitionLost"]

log = logging.getLogger(__name__)

#: a change the engine learns of more than this many seconds after it happened is told as late
LATE_AFTER = 10.0
#: after the engine could not hear, silence counts from the first event that comes back (the bridge
#: publishes again), or from this many seconds after the reconnect if none comes
RESUME_WAIT = 60.0

OK, PENDING, FIRING, RESOLVED, FLAPPING, CLEARED = (
    AlertState.OK, AlertState.PENDING, AlertState.FIRING, AlertState.RESOLVED, AlertState.FLAPPING,
    AlertState.CLEARED)


class PartitionLost(Exception):
    """This engine no longer owns its partition of a shared state (alerting/failover.py): the commit that found
    it out was rolled back, and the engine must stop (another owns the partition now)."""

    final = True  # alerting/guard.py's supervised(): not started again; the engine's tasks end


class Engine(Acknowledging):
    """Evaluates rules; returns the transitions of each call after committing them."""

    def __init__(self, rules: RuleSet, *, state: Optional[StateDB] = None, sink: Optional[TransitionSink] = None,
                 clock: Optional[Clock] = None, partition: tuple[int, int] = (0, 1),
                 dashboard_url: Optional[str] = None, reconnect_grace: float = DEVICE_RECONNECT_GRACE,
                 fence: Optional[Callable[[Any], None]] = None) -> None:
        self.clock: Clock = clock or SystemClock()
        #: called inside every commit's transaction with its connection (engines sharing a PostgreSQL state:
        #: alerting/failover.py): raises when this engine no longer owns its partition, so nothing commits
        self.fence = fence
        self.reconnect_grace = reconnect_grace
        self.state = state
        self.sink = sink
        self.partition = partition
        self.dashboard_url = dashboard_url.rstrip("/") if dashboard_url else None
        self.ruleset = rules
        self.index = RuleIndex(rules)
        self.alerts: dict[str, AlertRecord] = {}
        self.scratch: dict[str, dict[str, object]] = {}
        self.intake = Intake(self.index, self.scratch)
        self.series: dict[str, SeriesData] = self.intake.series
        self._heap: list[tuple[float, str, str]] = []
        self._scheduled: dict[tuple[str, str], float] = {}
        self._dirty_alerts: dict[str, AlertRecord] = {}
        self._out: list[Transition] = []
        #: ledger rows (kind, key, body, at) to append in the next commit, in order
        self._rows: list[tuple[str, str, dict[str, object], float]] = []
        self._badness = {name: excursion.badness(c.rule.spec) for name, c in self.index.rules.items()}
        # what the start found, until the service takes it (take_start_news)
        self._removed_on_start: list[str] = []
        self._start_transitions: list[Transition] = []
        #: when input came back after the engine could not hear it (None: it always could)
        self.resumed: Optional[float] = None
        self._resume_by: Optional[float] = None  # waiting for the first event, at the latest until then
        if state is not None:
            self._restore(state)
        self._declare()
        self._start_transitions = self._commit(force=bool(self._removed_on_start))

    # -- inputs ---------------------------------------------------------------------------------

    def on_event(self, event: Event) -> list[Transition]:
        """Evaluate the rules that watch the event's series: those that hold readings out first."""
        sid, now = event.series_id, self.clock.now()
        at = min(event.ts, now)
        if self._resume_by is not None and not self.held:
            self._resumed_at(now)
        self._run_timers(at, inclusive=False)
        data, raw = self.intake.take(event, sid, at, now)
        rules = self.intake.rules_of(sid, data) if owns(sid, self.partition) else ()
        held = [c for c in rules if c.rule.spec.hold_out and self._evaluate(c, sid, at)] if raw is not None else []
        self.intake.admit(data, event, at, now, held, self._lookup)
        for c in rules:
            if raw is None or not c.rule.spec.hold_out:
                self._evaluate(c, sid, at)
        for c in self.index.by_ref.get(sid, ()):
            if owns(c.refs[0], self.partition):
                self._evaluate(c, c.refs[0], at)
        return self._commit()

    def on_status(self, device: str, online: bool) -> list[Transition]:
        """A device's status message: online (birth) or offline (last will)."""
        sid = status_series_id(device)
        at = self.clock.now()
        data = self.intake.series_for(sid, device, STATUS_SENSOR, STATUS_METRIC, {})
        data.online = online
        data.last_seen = at
        if owns(sid, self.partition):
            for c in self.index.status_for(device):
                self._evaluate(c, sid, at)
        return self._commit()

    def tick(self) -> list[Transition]:
        """Evaluate every timer due by now, each at its own due time."""
        if self._resume_by is not None and self.clock.now() >= self._resume_by:
            self._resumed_at(self._resume_by)
        self._run_timers(self.clock.now(), inclusive=True)
        return self._commit()

    def resume(self, at: float) -> None:
        """The engine could not hear its input until ``at`` (the broker was away, or kept nothing): silence
        of alerts not yet active counts from the first event after ``at``, or ``at + RESUME_WAIT`` if none
        comes; no no-data timer fires before. So a broker outage alerts no sensor. A :meth:`hold` stays."""
        if not self.held:
            self.resumed, self._resume_by = math.inf, at + RESUME_WAIT

    @property
    def held(self) -> bool:
        return self._resume_by == math.inf

    def hold(self) -> None:
        """The input is known missing (the watchdog: broker or bridge away): no-data waits, through
        reconnects and events alike, until :meth:`release` says from when silence counts again."""
        self.resumed, self._resume_by = math.inf, math.inf

    def release(self, at: float) -> None:
        if self.held:
            self._resumed_at(at)

    def _resumed_at(self, at: float) -> None:
        self.resumed, self._resume_by = at, None
        for (rule, sid), due in list(self._scheduled.items()):
            if due == math.inf:
                del self._scheduled[(rule, sid)]
                self._schedule(rule, sid, at)

    def _run_timers(self, until: float, inclusive: bool) -> None:
        """Evaluate the timers due before ``until`` (or at it, when ``inclusive``), each at its due time."""
        while self._heap and (self._heap[0][0] < until or (inclusive and self._heap[0][0] == until)):
            due, rule, sid = heapq.heappop(self._heap)
            if self._scheduled.get((rule, sid)) != due:
                continue  # superseded by an earlier check
            del self._scheduled[(rule, sid)]
            c = self.index.get(rule)
            if c is not None:
                self._evaluate(c, sid, due)

    def next_due(self) -> Optional[float]:
        """When the next timer is due (None: no timer)."""
        while self._heap and self._scheduled.get((self._heap[0][1], self._heap[0][2])) != self._heap[0][0]:
            heapq.heappop(self._heap)
        return self._heap[0][0] if self._heap else None

    def evaluate_series(self, c: CompiledRule, data: SeriesData, at: float) -> list[Transition]:
        """Evaluate ``c`` on series data built from elsewhere (the store trigger)."""
        # the snapshot is used for this evaluation only: the live series (and its windows) stay as they are
        self._evaluate(c, data.id, at, data)
        return self._commit()

    def reload(self, rules: RuleSet) -> tuple[list[str], list[Transition]]:
        """Use new rules; alerts of removed (or disabled) rules are dropped, a firing one resolved.

        Returns the dropped alerts' keys and the transitions (resolves) this caused.
        """
        old_index = self.index
        self.ruleset = rules
        self.index = self.intake.index = RuleIndex(rules)
        self._badness = {name: excursion.badness(c.rule.spec) for name, c in self.index.rules.items()}
        dropped = [k for k, rec in self.alerts.items() if rec.rule not in self.index.rules]
        for key in dropped:
            rec = self.alerts.pop(key)
            self.scratch.pop(key, None)
            old = old_index.get(rec.rule)
            data = self.series.get(rec.series)
            if old is not None and data is not None and rec.state in (FIRING, FLAPPING, CLEARED):
                # delivery would otherwise repeat it forever: tell people it is over
                rec.underlying = OK
                self._emit(old, rec, Ctx(self.clock.now(), data, self._lookup), RESOLVED, self.clock.now())
            rec.state, rec.underlying, rec.changes = OK, OK, []
            self._dirty_alerts[key] = rec
        self._heap.clear()
        self._scheduled.clear()
        self.intake.rekeep()
        if self.state is not None:
            self.state.keep_learned(self.index.rules)
        self._declare()
        for rec in self.alerts.values():
            c = self.index.get(rec.rule)
            if c is not None:
                self._evaluate(c, rec.series, self.clock.now())
        return dropped, self._commit(force=True)

    def prune(self, older_than: float = 86400.0) -> int:
        """Forget alerts resolved longer ago than ``older_than`` (their retained MQTT state stays)."""
        limit = self.clock.now() - older_than
        old = [k for k, r in self.alerts.items()
               if r.state == RESOLVED and r.underlying == OK and not r.changes and r.state_since < limit]
        for key in old:
            rec = self.alerts.pop(key)
            self.scratch.pop(key, None)
            rec.state = OK  # pristine: deleted from the state file on the next commit
            self._dirty_alerts[key] = rec
        if old:
            self._commit(force=True)
        return len(old)

    def flush(self, learned: bool = False) -> None:
        """Persist when series were last heard (the service calls this before acknowledging a batch), and
        what conditions learned when it is due (``learned``: now, at a clean stop)."""
        if self.intake.dirty or self.intake.learned_due(self.clock.now()) or self._dirty_alerts or self._out \
                or (learned and self.intake.learned_due(math.inf)):
            self._commit(force=True, learned=learned)

    def take_start_news(self) -> tuple[list[Transition], list[str]]:
        """What the start found, once: its transitions, and the alerts whose rule was gone (their
        retained MQTT states are to be cleared)."""
        news, gone = self._start_transitions, self._removed_on_start
        self._start_transitions, self._removed_on_start = [], []
        return news, gone

    def active(self) -> list[AlertRecord]:
        """Alerts not ok, for the dashboard and the startup republish."""
        return [r for r in self.alerts.values() if r.state != OK]

    # -- evaluation -----------------------------------------------------------------------------

    def _lookup(self, sid: str) -> Optional[SeriesData]:
        return self.series.get(sid)

    def _declare(self) -> None:
        """Series declared in rules (``series:``) are watched for nodata before they ever report."""
        now = self.clock.now()
        for c in self.index.rules.values():
            for sid in c.rule.spec.series or ():
                device, sensor, metric = sid.split("/")
                self.intake.series_for(sid, device, sensor, metric, {})
                key = f"{c.name}/{sid}"
                self.scratch.setdefault(key, {}).setdefault("declared_at", now)
                if owns(sid, self.partition):
                    self._evaluate(c, sid, now)
            if c.cross:
                for sid in c.refs:
                    device, sensor, metric = sid.split("/")
                    self.intake.series_for(sid, device, sensor, metric, {})

    def _evaluate(self, c: CompiledRule, sid: str, at: float, data: Optional[SeriesData] = None) -> bool:
        """Evaluate ``c`` on series ``sid`` at ``at``; True when its condition said it holds."""
        key = f"{c.name}/{sid}"
        if data is None and c.rule.spec.source == "store":
            return False  # a store rule is evaluated only on its schedule, with what the store holds
        data = data or self.intake.data_for(c, sid)
        if data is None:
            return False
        rec = self.alerts.get(key)
        if rec is not None:
            # a late reading cannot change the past: an alert's state moves forward in time only
            at = max(at, rec.state_since, rec.pending_since or at, rec.clear_since or at)
        scratch = self.scratch.setdefault(key, {})
        ctx = Ctx(at, data, self._lookup, scratch, self.resumed, self.reconnect_grace, self.series)
        spec = c.rule.spec
        was = rec is not None and rec.underlying in (PENDING, FIRING) and rec.clear_since is None
        verdict = c.condition.check(ctx, was)
        holds = was if verdict is None else verdict
        if rec is None:
            if not holds:
                # the usual reading: no alert, and none begins (a new record would stay ok and be dropped below)
                due = c.condition.next_change(ctx)
                if due is not None and spec.source != "store":
                    self._schedule(c.name, sid, max(due, at))
                return False
            rec = AlertRecord(c.name, sid, state_since=at)
        if verdict and spec.hold_out:
            scratch["held_ts"] = data.ts  # the reading is kept out of the other rules (alerting/intake.py)
        value = c.condition.value(ctx)
        if value is not None:
            # an aggregate or rate of extreme (finite) readings can overflow: no JSON may carry inf or NaN
            rec.value = value if math.isfinite(value) else None
        if holds and rec.underlying != OK and rec.value is not None:  # the excursion goes on: its worst value
            peak = excursion.worse(self._badness[c.name], rec.peak, rec.value)
            if peak != rec.peak:
                rec.peak = peak
                self._dirty_alerts[key] = rec
        before = (rec.state, rec.underlying, rec.pending_since, rec.clear_since)
        self._step(c, rec, ctx, holds, at)
        self._settle_flapping(c, rec, ctx, at)
        if (rec.state, rec.underlying, rec.pending_since, rec.clear_since) != before:
            self._dirty_alerts[key] = rec
        if rec.pristine:
            self.alerts.pop(key, None)
        else:
            self.alerts[key] = rec
        dues = [c.condition.next_change(ctx)]
        if rec.underlying == PENDING and rec.pending_since is not None:
            dues.append(rec.pending_since + spec.for_)
        if rec.underlying == FIRING and rec.clear_since is not None:
            dues.append(rec.clear_since + spec.keep_firing_for)
        flap = spec.flap
        if rec.state == FLAPPING and flap is not None and rec.changes:
            dues.append(rec.changes[-1] + flap.window)
        future = [d for d in dues if d is not None]
        # a store rule's timers are its schedule: the next run evaluates pending and clearing times
        if future and spec.source != "store":
            self._schedule(c.name, sid, max(min(future), at))
        return verdict is True

    def _step(self, c: CompiledRule, rec: AlertRecord, ctx: Ctx, holds: bool, at: float) -> None:
        spec = c.rule.spec
        u = rec.underlying
        if holds:
            rec.clear_since = None
            if u == OK:
                began = c.condition.began(ctx)
                if began is not None and not rec.pristine:
                    began = max(began, rec.state_since)  # never before the alert's last change
                rec.pending_since = at if began is None else min(at, began)
                if spec.for_ <= 0:
                    self._change(c, rec, ctx, FIRING, at)
                else:
                    self._change(c, rec, ctx, PENDING, at)
            if rec.underlying == PENDING and rec.pending_since is not None \
                    and at >= rec.pending_since + spec.for_:
                self._change(c, rec, ctx, FIRING, rec.pending_since + spec.for_)
            return
        if u == PENDING:
            self._change(c, rec, ctx, OK, at)
        elif u == FIRING:
            if spec.keep_firing_for <= 0:
                self._change(c, rec, ctx, OK, at)
                return
            if rec.clear_since is None:
                rec.clear_since = at
            if at >= rec.clear_since + spec.keep_firing_for:
                self._change(c, rec, ctx, OK, rec.clear_since + spec.keep_firing_for)

    def _change(self, c: CompiledRule, rec: AlertRecord, ctx: Ctx, new: AlertState, at: float) -> None:
        old = rec.underlying
        rec.underlying = new
        if old == OK:  # a new excursion: its worst value starts again; nobody acknowledged it yet
            rec.peak = rec.value
            if rec.state != FLAPPING:  # (an acknowledgement of a flapping alert holds until it settles)
                rec.acked_by = rec.ack_comment = rec.acked_at = None
        if new == FIRING:
            rec.firing_since = at
            rec.ended = None
        if new == OK:
            if old == FIRING:  # when the condition cleared (before keep_firing_for, if it had to wait)
                rec.ended = rec.clear_since if rec.clear_since is not None else at
            rec.clear_since = None
        flap = c.rule.spec.flap
        counted = new == FIRING or (new == OK and old == FIRING)
        if counted and flap is not None:
            rec.changes = [t for t in rec.changes if t + flap.window > at]
            rec.changes.append(at)
        if rec.state == FLAPPING:
            return  # quiet until it settles
        if counted and flap is not None and len(rec.changes) >= flap.changes:
            self._emit(c, rec, ctx, FLAPPING, at)
            return
        if rec.state == CLEARED and new != FIRING:
            pass  # quiet: the cleared excursion waits for its acknowledgement; a new one shows once it fires
        elif new == OK and old == FIRING:
            self._emit(c, rec, ctx, CLEARED if c.rule.spec.latch and rec.acked_by is None else RESOLVED, at)
        else:
            self._emit(c, rec, ctx, new, at)
        if new == OK:
            rec.pending_since = None
            rec.acked_by = rec.ack_comment = None

    def _settle_flapping(self, c: CompiledRule, rec: AlertRecord, ctx: Ctx, at: float) -> None:
        flap = c.rule.spec.flap
        if rec.state != FLAPPING:
            if flap is not None and rec.changes and rec.changes[-1] + flap.window <= at:
                rec.changes = []  # forget old changes so a calm alert row can be dropped
                self._dirty_alerts[rec.key] = rec
            return
        if flap is not None and rec.changes and at < rec.changes[-1] + flap.window:
            return
        settle_at = rec.changes[-1] + flap.window if (flap is not None and rec.changes) else at
        rec.changes = []
        if rec.underlying == FIRING:
            settled = FIRING
        else:
            settled = CLEARED if c.rule.spec.latch and rec.acked_by is None else RESOLVED
        self._emit(c, rec, ctx, settled, settle_at)
        if rec.underlying == OK:
            rec.pending_since = None
        if rec.underlying != FIRING:
            rec.acked_by = rec.ack_comment = rec.acked_at = None

    def _emit(self, c: CompiledRule, rec: AlertRecord, ctx: Ctx, state: AlertState, at: float) -> None:
        previous = rec.state
        rec.state = state
        rec.state_since = at
        spec, data = c.rule.spec, ctx.series
        since, peak, ended = excursion.span(rec, previous, state, at)
        if state in (FIRING, FLAPPING):
            # the excursion people are told of (what an acknowledgement names): quiet ones while flapping are not
            rec.episode = since
            if previous in (OK, RESOLVED, CLEARED):
                rec.acked_by = rec.ack_comment = rec.acked_at = None  # fired anew: acknowledged anew
        labels = {**dict(data.labels), "device": data.device, "sensor": data.sensor, "metric": data.metric,
                  **spec.labels}
        link = f"{self.dashboard_url}/alerts/{c.name}/{rec.series}" if self.dashboard_url else ""
        annotations = {**spec.annotations, **({"link": link} if link else {})}
        now = self.clock.now()
        t = Transition(
            id=transition_id(c.name, rec.series, state, at), rule=c.name, series=rec.series, state=state,
            previous=previous, at=at, severity=spec.severity, message="", since=since, value=rec.value,
            labels=tuple(sorted(labels.items())), notify=spec.receivers, annotations=tuple(sorted(annotations.items())),
            reported=now if now - at > LATE_AFTER else None,
            reason=sensor_reason(spec.kinds(), facts := self.intake.facts(c, ctx), rec.value, at, data.unit),
            peak=peak, ended=ended)
        # the engine says what changed; the words come from the rule's template (alerting.notify.message)
        t = dataclasses.replace(t, message=alert_message(
            c.rule.template, t, device=data.device, sensor=data.sensor, metric=data.metric, unit=data.unit,
            labels=labels, link=link, facts=facts))
        rec.last_transition = t.to_json()
        self._dirty_alerts[rec.key] = rec
        self._out.append(t)
        self._rows += excursion.ledger_rows(t, data.unit, spec.latch, rec.acked_by)

    def _schedule(self, rule: str, sid: str, due: float) -> None:
        current = self._scheduled.get((rule, sid))
        if current is not None and current <= due:
            return
        self._scheduled[(rule, sid)] = due
        heapq.heappush(self._heap, (due, rule, sid))

    # -- persistence ----------------------------------------------------------------------------

    def _commit(self, force: bool = False, learned: bool = False) -> list[Transition]:
        out, self._out = self._out, []
        if not out and not force:
            return out
        rows, self._rows = self._rows, []
        if self.state is not None:
            try:
                with self.state.transaction() as conn:
                    if self.fence is not None:
                        self.fence(conn)
                    for kind, key, body, at in rows:
                        ledger.append(conn, kind, key, body, at)
                    self.state.save_alerts(self._dirty_alerts.values())
                    self.state.save_series([self.series[sid] for sid in self._dirty_series() if sid in self.series])
                    self.state.save_learned(self.intake.export(self.clock.now(), learned))
                    for t in out:
                        if self.sink is not None and notifiable(t):
                            self.sink.enqueue(t)
            except Exception as exc:
                # nothing of this commit is in the database, but the memory (the alerts' states) is ahead of it: the
                # transitions and ledger rows go into the next commit with those states, so an alert is never saved
                # firing without its message and its ledger row. A next commit comes on one state file (locked, disk
                # full: the engine goes on); and on a shared state too, from the engine's last flush on its way out
                # when its lease is still (again) its own: that flush saved a firing alone before (issue 18)
                self._out, self._rows = out + self._out, rows + self._rows
                if self.fence is None or isinstance(exc, PartitionLost):
                    raise
                # a shared state that failed (the connection to PostgreSQL lost): what this engine holds in memory
                # is ahead of the database, so it stops; its partition's engine starts again from the database
                raise PartitionLost(f"the shared state failed: {type(exc).__name__}: {exc}") from exc
            self.intake.dirty.clear()
        elif self.sink is not None:
            for t in out:
                if notifiable(t):
                    self.sink.enqueue(t)
        self._dirty_alerts.clear()
        return out

    def _dirty_series(self) -> Iterable[str]:
        """The series whose "last heard" to save. A shared state's (fenced) engine saves only its partition's, in
        order: every partition's engine hears every event, and engines that upserted each other's rows in their own
        orders deadlocked under load (each commit then failed and the partition's engine started again)."""
        if self.fence is None:
            return self.intake.dirty
        return sorted(sid for sid in self.intake.dirty if owns(sid, self.partition))

    def _forget_removed(self, rec: AlertRecord) -> None:
        """An alert of a rule removed while the engine was down: resolve it if it fired, then drop it."""
        self._removed_on_start.append(rec.key)
        t = excursion.removed(rec, self.clock.now())
        if t is not None:
            self._out.append(t)
            self._rows += excursion.ledger_rows(t, "", False, rec.acked_by)
        rec.state, rec.underlying, rec.changes = OK, OK, []
        self._dirty_alerts[rec.key] = rec

    def _restore(self, state: StateDB) -> None:
        for sid, device, sensor, metric, labels, last_seen in state.load_series():
            data = self.intake.series_for(sid, device, sensor, metric, labels)
            data.last_seen = last_seen
            if sid in self.intake.raw:
                self.intake.raw[sid].last_seen = last_seen
        state.keep_learned(self.index.rules)
        for key, blob in state.load_learned():
            if owns(key.partition("/")[2], self.partition):  # a shared state holds the other partitions' too
                self.intake.restore(key, blob)
        for rec in state.load_alerts():
            if not owns(rec.series, self.partition):
                continue
            c = self.index.get(rec.rule)
            if c is None:
                self._forget_removed(rec)
                continue
            self.alerts[rec.key] = rec
            if rec.series not in self.series:
                device, sensor, metric = ([*rec.series.split("/"), "", "", ""])[:3]
                self.intake.series_for(rec.series, device, sensor, metric, {})
        # pending timers keep their original start; silence timers count from the last time heard
        now = self.clock.now()
        for rec in list(self.alerts.values()):
            c = self.index.get(rec.rule)
            if c is not None:
                self._schedule(rec.rule, rec.series, now)
        for sid, data in self.series.items():
            if data.last_seen is None or not owns(sid, self.partition):
                continue
            for c in self.index.for_series(sid, data.device, data.sensor, data.metric, dict(data.labels)):
                if f"{c.name}/{sid}" not in self.alerts:
                    # from the time last heard, so a silence that grew while the engine was down
                    # becomes an alert at the time it reached its limit
                    self._schedule(c.name, sid, min(now, data.last_seen))

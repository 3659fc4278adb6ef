"""``vigil alerting`` at run time: MQTT in, rules evaluated, alert states out, delivery started.

Subscribes (QoS 1, persistent session) to ``<root>/events/#``, ``<root>/status/+``, ``<root>/ack/#``,
``<root>/notes/#``, ``<root>/silences/+``, ``<root>/health/+/+`` and ``<root>/control/rules/reload``. A message is
acknowledged to the broker only after the engine committed what it caused, "last heard" included
(one commit per drained batch), so a crash loses no event and no time a series was heard. After a
connect, timers wait until the backlog the broker kept is taken in (``alerting.catchup``); while the
broker is away they do not fire at all. Every state change is published retained on
``<root>/alerts/<rule>/<series>``; rules with ``source: store`` run on their schedule against the store
(``alerting.storetrigger``). The connection itself (subscribe, consume, acknowledge, publish) is
``alerting.mqttloop``; delivery is behind ``alerting.delivery.AlertDispatcher``.

No single message can stop the engine: one that cannot be handled is refused (counted by reason,
logged once per topic and reason) and acknowledged, and the loop goes on; a task that fails is
started again (alerting/guard.py). The engine publishes its own health on
``<root>/health/alerting/<client id>`` and runs the pipeline watchdog (alerting/watchdog.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Any, Optional, Union

import aiomqtt

from alerting import metrics as alerting_metrics
from alerting.catchup import CatchUp
from alerting.delivery import AlertDispatcher, make_dispatcher, warm_apprise
from alerting.engine import Engine, PartitionLost
from alerting.guard import Guard, guard_parts, supervised
from alerting.inhand import InHand, in_hand_path
from alerting.mqttloop import keep_connected, publish_states, send_health
from alerting.notify.config import NotifyConfig
from alerting.notify.dispatcher import Dispatcher
from alerting.notify.outbox import Outbox
from alerting.notify.policy import receivers_for
from alerting.partition import parse_partition
from alerting.payloads import MAX_PAYLOAD, Ack, loads, parse_ack, parse_note, parse_status
from alerting.report.schedule import ReportScheduler
from alerting.rules import RulesError, RuleSet, load_rules_path
from alerting.settings import AlertingSettings
from alerting.state import AlertRecord, StateDB
from alerting.storetrigger import run_store_rules, seed_windows, wants_store
from alerting.transition import AlertState, Transition, notifiable
from alerting.watchdog import RULE as PIPELINE_RULE
from alerting.watchdog import SERIES as PIPELINE_SERIES
from alerting.watchdog import Watchdog
from vigil.core.clock import Clock, SystemClock
from vigil.core.event import Event, EventDecodeError
from vigil.core.health import HealthReporter, parse_health
from vigil.core.jsonlimits import too_deep
from vigil.core.settings import MqttSettings, StoreSettings
from vigil.core.sqldb import is_postgres, redact
from vigil.core.stores import Store, open_store
from vigil.core.topics import TopicError, Topics

__all__ = ["AlertService", "parse_status", "serve"]

log = logging.getLogger(__name__)

FLUSH_SECONDS = 5.0
TIMER_POLL = 1.0


class AlertService:
    """The engine behind MQTT: turns messages into engine calls, and transitions into publishes."""

    def __init__(self, settings: AlertingSettings, mqtt: MqttSettings, engine: Engine, *,
                 rules_path: Optional[str] = None, notify: Optional[NotifyConfig] = None,
                 dispatcher: Optional[AlertDispatcher] = None, in_hand: str | Path = ":memory:") -> None:
        self.settings = settings
        self.mqtt = mqtt
        self.topics: Topics = mqtt.topics
        self.engine = engine
        self.rules_path = rules_path
        self.notify_config = notify  # the rules' notification settings, for the pipeline alert's receivers
        self.dispatcher = dispatcher
        self.outgoing: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue(maxsize=100_000)
        self.rejected = 0
        self.transitions: Counter[str] = Counter()  # published, by the state entered (alerting/metrics.py)
        self.silences: dict[str, str] = {}  # MQTT silence id -> the dispatcher's id
        self.client: Optional[aiomqtt.Client] = None  # the broker connection while consuming (alerting/mqttloop.py)
        self.catchup = CatchUp(self.topics.root, settings.client_id, self._resumed)
        self.guard = Guard(engine.clock)
        self.in_hand = InHand(in_hand, self.guard.refuse, innocent=(PartitionLost,))
        self.health = HealthReporter(self.topics, "alerting", settings.client_id, self.guard.snapshot,
                                     every=settings.health_every)

    @property
    def watchdog(self) -> Optional[Watchdog]:
        return self.guard.watchdog

    def pipeline_receivers(self, names: list[str]) -> list[str]:
        """The pipeline alert's receivers: ``watchdog.notify``, or every receiver when no route names one."""
        cfg = self.notify_config
        if cfg is None or names:
            return names
        labels = {"rule": PIPELINE_RULE, "series": PIPELINE_SERIES, "severity": "critical", "device": "vigil",
                  "sensor": "watchdog", "metric": "pipeline"}
        return [] if receivers_for(cfg, labels, ()) else list(cfg.receivers)

    # -- messages --------------------------------------------------------------------------------

    def handle(self, topic: str, payload: bytes) -> None:
        """One message from the broker; never raises (a bad message is logged and skipped)."""
        try:
            self._handle(topic, payload)
        except PartitionLost:
            raise  # not the message's fault: this engine must stop (alerting/failover.py)
        except Exception as exc:  # one bad message must not stop the engine
            self.rejected += 1
            self.guard.refuse(topic, f"failed: {type(exc).__name__}", str(exc), exc)

    def judged_before(self, topic: str, payload: bytes) -> bool:
        """Whether an event message delivered again (DUP) is one this engine judged already: its series was heard
        at or after its time. (A reading never judged that comes again is newer than that: a series comes in order.
        A late reading that was in flight when a connection dropped is the one that would be skipped.)"""
        if not topic.startswith(self.topics.root + "/events/"):
            return False
        try:
            event = Event.from_json(payload)
        except Exception:  # judged (and refused) as any message
            return False
        sid = event.series_id
        at = min(event.ts, self.engine.clock.now())
        # a reading a hold_out rule kept out moved only the raw copy's last reading (alerting/intake.py)
        return any(data is not None and data.last_seen is not None and at <= data.last_seen
                   for data in (self.engine.intake.series.get(sid), self.engine.intake.raw.get(sid)))

    def _refuse(self, topic: str, reason: str, detail: str = "") -> None:
        self.rejected += 1
        self.guard.refuse(topic, reason, detail)

    def _handle(self, topic: str, payload: bytes) -> None:
        root = self.topics.root + "/"
        if not topic.startswith(root):
            return
        kind, _, rest = topic[len(root):].partition("/")
        if len(payload) > MAX_PAYLOAD:
            self._refuse(topic, "too large", f"{len(payload)} bytes, the limit is {MAX_PAYLOAD}")
            return
        if kind == "events":
            if too_deep(payload):
                self._refuse(topic, "nested too deeply")
                return
            try:
                event = Event.from_json(payload)
            except (EventDecodeError, ArithmeticError) as exc:
                self._refuse(topic, "not an event", str(exc))
                return
            self.guard.events += 1
            if self.watchdog is not None:
                self.watchdog.saw_event()
            self.publish(self.engine.on_event(event))
        elif kind == "status":
            online = parse_status(payload)
            if online is None or "/" in rest or not rest:
                self._refuse(topic, "not a status", "expected online or offline")
                return
            if self.watchdog is not None:
                self.watchdog.saw_status(rest, online)
            self.publish(self.engine.on_status(rest, online))
        elif kind == "health":
            self._health(topic, payload)
        elif kind == "ack":
            self._ack(topic, payload)
        elif kind == "notes":
            self._note(topic, payload)
        elif kind == "silences":
            self._silence(rest, payload)
        elif topic == self.topics.rules_reload:
            self.reload()

    def _health(self, topic: str, payload: bytes) -> None:
        part, _, instance = topic[len(self.topics.root) + len("/health/"):].partition("/")
        if not payload:
            if self.watchdog is not None:
                self.watchdog.forget_part(part, instance)
            return
        h = parse_health(self.topics, topic, payload)
        if h is None:
            self._refuse(topic, "not a health document")
        elif self.watchdog is not None:
            self.watchdog.saw_health(h)

    def _ack(self, topic: str, payload: bytes) -> None:
        """``{"by", "comment", "episode", "via", "note"}``; one that cannot be read, or of no such alert, or of
        another excursion than the alert's current one, is logged and ignored (like every control message)."""
        try:
            rule, series = self.topics.parse_alert_key(topic, "ack")
        except TopicError as exc:
            log.warning("ignoring an acknowledgement: %s", exc)
            return
        ack = parse_ack(payload)
        if not isinstance(ack, Ack):
            log.warning("ignoring an acknowledgement of %s/%s: %s", rule, series, ack)
            return
        done = self.engine.acknowledge(rule, series, ack.by, ack.comment, episode=ack.episode, via=ack.via,
                                       note=ack.note)
        if done is None:
            log.info("acknowledgement of %s/%s: no such alert to acknowledge", rule, series)
            return
        rec = done.record
        log.info("alert %s acknowledged by %s (%s)", rec.key, ack.by, ack.via)
        if self.dispatcher is not None:
            self.dispatcher.acknowledge(rec.key, ack.by, ack.comment)
        self.publish(done.transitions)
        if not done.transitions:
            self._publish_record(rec)

    def _note(self, topic: str, payload: bytes) -> None:
        """A corrective-action note ``{"id", "by", "text"}`` on an alert that exists or fired once; one that
        cannot be read is logged and ignored."""
        try:
            rule, series = self.topics.parse_notes(topic)
        except TopicError as exc:
            log.warning("ignoring a note: %s", exc)
            return
        note = parse_note(payload)
        if isinstance(note, str):
            log.warning("ignoring a note on %s/%s: %s", rule, series, note)
            return
        if not self.engine.note(rule, series, note.id, note.by, note.text):
            log.info("note %s on %s/%s not recorded: no such alert, or recorded already", note.id, rule, series)
            return
        log.info("note on %s/%s by %s recorded", rule, series, note.by)
        rec = self.engine.alerts.get(f"{rule}/{series}")
        if rec is not None:
            self._publish_record(rec)

    def _silence(self, mqtt_id: str, payload: bytes) -> None:
        """A retained silence from the dashboard: {"matchers": {...}, "until": ts, "by": ..., "comment": ...}."""
        d = self.dispatcher
        if d is None:
            return
        if not payload.strip():
            known = self.silences.pop(mqtt_id, None)
            if known is not None:
                d.expire_silence(known)
                log.info("silence %s expired", mqtt_id)
            return
        try:
            data = loads(payload)
            matchers = data["matchers"]
            until = float(data["until"])
            by = str(data.get("by") or "someone")[:100]
            comment = str(data.get("comment") or "")[:1000]
            if not isinstance(matchers, dict):
                raise TypeError("matchers must be a mapping")
        except (ValueError, KeyError, TypeError, ArithmeticError) as exc:
            log.warning("ignoring silence %s: expected {\"matchers\": {...}, \"until\": ts}: %s", mqtt_id[:100], exc)
            return
        if until <= self.engine.clock.now() or mqtt_id in self.silences:
            return
        # a retained silence comes again after each restart: reuse the one the dispatcher kept
        for active in d.status().silences:
            if active.ends == until and active.by == by and active.comment == comment:
                self.silences[mqtt_id] = active.id
                return
        try:
            self.silences[mqtt_id] = d.add_silence(matchers, until, by=by, comment=comment)
        except ValueError as exc:
            log.warning("ignoring silence %s: %s", mqtt_id[:100], exc)

    def reload(self) -> bool:
        """Read the rules files again; on errors keep the rules in force and log every problem."""
        if not self.rules_path:
            return False
        try:
            rules, warnings = load_rules_path(self.rules_path)
        except RulesError as exc:
            for issue in exc.issues:
                log.error("rules not reloaded: %s", issue)
            return False
        for w in warnings:
            log.warning("%s", w)
        dropped, transitions = self.engine.reload(rules)
        self.publish(transitions)
        for key in dropped:
            rule, _, series = key.partition("/")
            self._enqueue(self._alert_topic(rule, series), b"")
        self.notify_config = rules.notify
        if self.dispatcher is not None:
            self.dispatcher.reload(rules.notify)
        log.info("rules reloaded: %d rules", len(rules.rules))
        return True

    # -- publishing ------------------------------------------------------------------------------

    def publish(self, transitions: list[Transition]) -> None:
        """Publish what the engine changed (its states, retained) and wake delivery when someone hears of it."""
        if not transitions:  # nearly every reading
            return
        if self.dispatcher is not None and any(notifiable(t) for t in transitions):
            self.dispatcher.wake()
        for t in transitions:
            log.info("%s %s -> %s: %s", t.key, t.previous.value, t.state.value, t.message)
            self.transitions[t.state.value] += 1
            rec = self.engine.alerts.get(t.key)
            if rec is not None and rec.last_transition == t.to_json():
                self._publish_record(rec)
            else:
                self._enqueue(self._alert_topic(t.rule, t.series), t.to_json().encode())

    def _publish_record(self, rec: AlertRecord) -> None:
        if not rec.last_transition:
            return
        body = json.loads(rec.last_transition)
        body["acknowledged_by"] = rec.acked_by
        body["acknowledged_at"] = rec.acked_at
        body["ack_comment"] = rec.ack_comment
        body["latched"] = self.engine.latched(rec.rule)
        body["notes"] = self.engine.notes(rec)
        self._enqueue(self._alert_topic(rec.rule, rec.series), json.dumps(body, ensure_ascii=False).encode())

    def _alert_topic(self, rule: str, series: str) -> str:
        try:
            return self.topics.alerts(rule, series)
        except TopicError as exc:  # the state is kept; only its MQTT copy cannot be published
            log.warning("cannot publish the state of %s/%s: %s", rule[:100], series[:200], exc)
            return ""

    def republish_all(self) -> None:
        """Every known alert state again (on connect, so retained topics match the state file)."""
        news, gone = self.engine.take_start_news()
        if news:
            self.publish(news)
        for key in gone:
            rule, _, series = key.partition("/")
            self._enqueue(self._alert_topic(rule, series), b"")
        for rec in self.engine.active():
            self._publish_record(rec)
        retained = self.watchdog.retained() if self.watchdog is not None else None
        if retained is not None:
            self._enqueue(self._alert_topic(PIPELINE_RULE, PIPELINE_SERIES), retained)

    def firing_count(self) -> int:
        """Alerts firing now (the pipeline alert included), for the engine's health."""
        n = sum(1 for r in self.engine.alerts.values() if r.state in (AlertState.FIRING, AlertState.FLAPPING))
        return n + (1 if self.watchdog is not None and self.watchdog.firing else 0)

    def _enqueue(self, topic: str, payload: bytes) -> None:
        if not topic:
            return
        try:
            self.outgoing.put_nowait((topic, payload))
        except asyncio.QueueFull:
            # the retained state is republished in full on the next connect
            log.warning("publish queue full; dropping the state update on %s", topic)

    # -- loops -----------------------------------------------------------------------------------

    def _resumed(self) -> None:
        """Input is back after the engine could not hear it: silence counts from now."""
        self.engine.resume(self.engine.clock.now())

    def input_missing(self, missing: bool) -> None:
        """The watchdog knows the input is missing (broker or bridge away): hold no-data; when it no
        longer does (events came back), silence counts from then."""
        if missing:
            log.warning("the pipeline's input is missing: no-data conditions wait until events come back")
            self.engine.hold()
        else:
            self.engine.release(self.engine.clock.now())

    async def timers(self, clock: Clock) -> None:
        """Fire timers on time, also when no message arrives; never before the backlog is in."""
        while True:
            await self.catchup.ready()
            due = self.engine.next_due()
            now = clock.now()
            wait = TIMER_POLL if due is None else min(TIMER_POLL, max(0.0, due - now))
            await clock.sleep(wait)
            if self.catchup.live.is_set():  # not while the broker is away: judged once caught up again
                self.publish(self.engine.tick())

    async def flusher(self, clock: Clock) -> None:
        n = 0
        while True:
            await clock.sleep(FLUSH_SECONDS)
            self.engine.flush()
            n += 1
            if self.engine.state is not None and n % 2 == 0:
                await asyncio.to_thread(self.engine.state.checkpoint)
            if n % 60 == 0:
                self.engine.prune()


async def serve(settings: AlertingSettings, mqtt: MqttSettings, store: Union[Store, StoreSettings], *,
                public_url: Optional[str] = None, zone: Optional[dt.tzinfo] = None, clock: Optional[Clock] = None,
                ready: Optional[asyncio.Event] = None, data_dir: Optional[str] = None) -> None:
    """Run the rule engine until cancelled (for ``vigil alerting`` and ``vigil up``); leaves no task behind.

    ``store`` is the store's settings (opened only if the rules need it) or a store already open;
    ``public_url`` is the dashboard's address for links in messages; ``zone`` the site's time zone;
    ``data_dir`` the site's data directory (vigil.yaml's ``data_dir``): the link secret the dashboard checks
    links with, the bridge's calibration journal, and the scheduled reports' files (default: the state
    file's directory).

    A ``postgresql://`` state is shared by several engines that take over each other's partitions
    (alerting/failover.py); a file is this engine's own.
    """
    clock = clock or SystemClock()
    if is_postgres(settings.state):
        from alerting.failover import serve_shared

        await serve_shared(settings, mqtt, store, public_url=public_url, zone=zone, clock=clock, ready=ready,
                           data_dir=data_dir)
        return
    rules = _load_rules(settings.rules)
    with contextlib.ExitStack() as closing:  # closed in reverse: dispatcher, store
        history = open_history(store, rules, closing)
        async with engine_parts(settings, mqtt, rules, history, store, clock, public_url=public_url, zone=zone,
                                data_dir=data_dir, in_hand=in_hand_path(settings.state)) as (service, dispatcher,
                                                                                              reports):
            await run_engine(service, dispatcher, history, clock, ready, reports)


def open_history(store: Union[Store, StoreSettings], rules: RuleSet, closing: contextlib.ExitStack) -> Optional[Store]:
    """The store the rules read (opened here, closed by ``closing``), the one given, or None if no rule needs it."""
    if isinstance(store, Store):
        return store
    if wants_store(store, rules):
        history = open_store(store.store_url(), retention=store.retention)
        closing.callback(history.close)
        return history
    return None


@contextlib.asynccontextmanager
async def engine_parts(settings: AlertingSettings, mqtt: MqttSettings, rules: RuleSet, history: Optional[Store],
                       store: Union[Store, StoreSettings], clock: Clock, *, public_url: Optional[str],
                       zone: Optional[dt.tzinfo], data_dir: Optional[str], in_hand: Union[str, Path],
                       fence: Optional[Callable[[Any], None]] = None, dispatcher: Optional[Dispatcher] = None,
                       reports: bool = True) -> AsyncIterator[
                           tuple[AlertService, AlertDispatcher, Optional[ReportScheduler]]]:
    """One engine on its state, its service, its dispatcher (made here unless given) and, on partition 0,
    the scheduled reports; closed in reverse on the way out (in_hand, dispatcher, engine flushed, state)."""
    with contextlib.ExitStack() as closing:
        db = StateDB(settings.state)
        closing.callback(db.close)
        outbox = Outbox(db.conn)
        outbox.create_tables()
        engine = Engine(rules, state=db, sink=outbox, clock=clock, partition=parse_partition(settings.partition),
                        dashboard_url=public_url, reconnect_grace=settings.device_reconnect_grace, fence=fence)
        closing.callback(engine.flush, learned=True)  # what the conditions learned, too
        if dispatcher is None:
            dispatcher = make_dispatcher(settings.state, rules.notify, clock, zone=zone, public_url=public_url,
                                         secret_dir=data_dir)
            closing.callback(dispatcher.close)
            await asyncio.to_thread(warm_apprise)
        service = AlertService(settings, mqtt, engine, rules_path=settings.rules, notify=rules.notify,
                               dispatcher=dispatcher, in_hand=in_hand)
        closing.callback(service.in_hand.close)
        guard_parts(service, db, clock)
        # scheduled reports (rules' reports:), made once for all partitions: by partition 0
        # (on a shared PostgreSQL state, each run claimed under partition 0's fence: alerting/report/schedule.py)
        scheduler = ReportScheduler(lambda: service.notify_config, history if history is not None else store,
                                    settings.state, clock, zone=zone, rules_path=settings.rules, data_dir=data_dir,
                                    fence=fence) if reports and engine.partition[0] == 0 else None
        if scheduler is not None:
            closing.callback(scheduler.close)
        log.info("rule engine: %d rules from %s, state in %s, %d alerts not ok", len(rules.rules), settings.rules,
                 redact(settings.state), len(engine.active()))
        yield service, dispatcher, scheduler


async def run_engine(service: AlertService, dispatcher: AlertDispatcher, store: Optional[Store], clock: Clock,
                     ready: Optional[asyncio.Event], reports: Optional[ReportScheduler] = None, *,
                     deliver: bool = True, metrics: bool = True) -> None:
    """The engine's tasks, each started again if it fails (alerting/guard.py), until cancelled; without
    ``deliver`` and ``metrics``, the dispatcher's loop and the metrics are another's (alerting/failover.py)."""
    restarts = service.guard.restarts
    engine = service.engine
    async with asyncio.TaskGroup() as tg:
        def task(name: str, work: Callable[[], Awaitable[None]]) -> None:
            tg.create_task(supervised(name, work, restarts), name=name)

        task("alerting-mqtt", partial(keep_connected, service, ready))
        task("alerting-publish", partial(publish_states, service))
        if metrics:
            task("alerting-metrics", partial(alerting_metrics.run, service, service.settings.state,
                                             service.settings.metrics_listen))
        task("alerting-timers", partial(service.timers, clock))
        task("alerting-flush", partial(service.flusher, clock))
        task("alerting-health", partial(service.health.run, partial(send_health, service)))
        task("alerting-watch", partial(service.guard.watch, service.publish, service.firing_count,
                                       service.input_missing))
        if service.guard.heartbeat is not None:
            task("alerting-heartbeat", service.guard.heartbeat.run)
        if store is not None and engine.index.store_rules:
            task("alerting-store-rules", partial(run_store_rules, engine, store, clock, service.publish))
        if store is not None:
            tg.create_task(seed_windows(engine, store, clock), name="alerting-seed-windows")
        if deliver:
            task("alerting-dispatcher", dispatcher.run)
        if reports is not None:
            task("alerting-reports", reports.run)


def _load_rules(path: str) -> RuleSet:
    if not Path(path).exists():
        log.warning("no rules at %s yet: running with none (write them, then publish to the reload topic)", path)
        return RuleSet()
    rules, warnings = load_rules_path(path)
    for w in warnings:
        log.warning("%s", w)
    return rules

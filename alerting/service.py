"""``vigil alerting`` at run time: MQTT in, rules evaluated, alert states out, delivery started.

Subscribes (QoS 1, persistent session) to ``<root>/events/#``, ``<root>/status/+``, ``<root>/ack/#``,
``<root>/silences/+``, ``<root>/health/+/+`` and ``<root>/control/rules/reload``. A message is
acknowledged to the broker only after the engine committed what it caused, "last heard" included
(one commit per drained batch), so a crash loses no event and no time a series was heard. After a
connect, timers wait until the backlog the broker kept is taken in (``alerting.catchup``); while the
broker is away they do not fire at all. Every state change is published retained on
``<root>/alerts/<rule>/<series>``; rules with ``source: store`` run on their schedule against the store.

No single message can stop the engine: one that cannot be handled is refused (counted by reason,
logged once per topic and reason) and acknowledged, and the loop goes on; a task that fails is
started again (alerting/guard.py). The engine publishes its own health on
``<root>/health/alerting/<client id>`` and runs the pipeline watchdog (alerting/watchdog.py).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import Counter
from pathlib import Path
from typing import Any, Optional

import aiomqtt

from alerting import metrics as alerting_metrics
from alerting.catchup import CatchUp
from alerting.delivery import make_dispatcher, warm_apprise
from alerting.engine import Engine, notifiable
from alerting.guard import Guard, guard_parts, refusal, supervised
from alerting.inhand import InHand, in_hand_path
from alerting.notify.outbox import Outbox
from alerting.notify.policy import receivers_for
from alerting.partition import parse_partition
from alerting.payloads import MAX_PAYLOAD, loads, parse_status
from alerting.rules import RulesError, RuleSet, load_rules_path
from alerting.state import AlertRecord, StateDB
from alerting.storetrigger import store_snapshots, wants_store
from alerting.transition import AlertState, Transition
from alerting.watchdog import RULE as PIPELINE_RULE
from alerting.watchdog import SERIES as PIPELINE_SERIES
from alerting.watchdog import Watchdog
from vigil.app.config import VigilConfig
from vigil.core.clock import Clock, SystemClock
from vigil.core.event import Event, EventDecodeError, SeriesKey
from vigil.core.health import HealthReporter, offline_payload, parse_health
from vigil.core.jsonlimits import too_deep
from vigil.core.mqtt import Inbox, ack, backoff_delay, build_client, enable_manual_ack
from vigil.core.sitetime import site_zone
from vigil.core.stores import Store, StoreError, open_store
from vigil.core.topics import TopicError, Topics

__all__ = ["AlertService", "parse_status", "serve"]

log = logging.getLogger(__name__)

FLUSH_SECONDS = 5.0
TIMER_POLL = 1.0


class AlertService:
    """The engine behind MQTT: turns messages into engine calls, and transitions into publishes."""

    def __init__(self, config: VigilConfig, engine: Engine, *, rules_path: Optional[str] = None,
                 dispatcher: Any = None, in_hand: str | Path = ":memory:") -> None:
        self.config = config
        self.topics: Topics = config.mqtt.topics
        self.engine = engine
        self.rules_path = rules_path
        self.dispatcher = dispatcher
        self.outgoing: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue(maxsize=100_000)
        self.rejected = 0
        self.transitions: Counter[str] = Counter()  # published, by the state entered (alerting/metrics.py)
        self.silences: dict[str, str] = {}  # MQTT silence id -> the dispatcher's id
        self.client: Optional[aiomqtt.Client] = None
        self.catchup = CatchUp(self.topics.root, config.alerting.client_id, self._resumed)
        self.guard = Guard(engine.clock)
        self.in_hand = InHand(in_hand, self.guard.refuse)
        self.notify_config: Any = None  # the rules' NotifyConfig, for the pipeline alert's receivers
        self.health = HealthReporter(self.topics, "alerting", config.alerting.client_id, self.guard.snapshot,
                                     every=config.alerting.health_every)

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
        except Exception as exc:  # one bad message must not stop the engine
            self.rejected += 1
            self.guard.refuse(topic, f"failed: {type(exc).__name__}", str(exc), exc)

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
            self._publish(self.engine.on_event(event))
        elif kind == "status":
            online = parse_status(payload)
            if online is None or "/" in rest or not rest:
                self._refuse(topic, "not a status", "expected online or offline")
                return
            if self.watchdog is not None:
                self.watchdog.saw_status(rest, online)
            self._publish(self.engine.on_status(rest, online))
        elif kind == "health":
            self._health(topic, payload)
        elif kind == "ack":
            self._ack(rest, payload)
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

    def _ack(self, rest: str, payload: bytes) -> None:
        rule, _, series = rest.partition("/")
        try:
            data = loads(payload) if payload.strip() else {}
        except ValueError:
            data = None
        if not isinstance(data, dict):
            log.warning("ignoring an acknowledgement of %s: expected {\"by\": ..., \"comment\": ...}", rest[:200])
            return
        by = str(data.get("by") or "someone")[:100]
        comment = str(data.get("comment") or "")[:1000]
        rec = self.engine.acknowledge(rule, series, by, comment)
        if rec is None:
            log.info("acknowledgement of %s/%s: no such alert firing", rule[:100], series[:200])
            return
        log.info("alert %s acknowledged by %s", rec.key, by)
        if self.dispatcher is not None and hasattr(self.dispatcher, "acknowledge"):
            self.dispatcher.acknowledge(rec.key, by, comment)
        self._publish_record(rec)

    def _silence(self, mqtt_id: str, payload: bytes) -> None:
        """A retained silence from the dashboard: {"matchers": {...}, "until": ts, "by": ..., "comment": ...}."""
        d = self.dispatcher
        if d is None or not hasattr(d, "add_silence"):
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
        self._publish(transitions)
        for key in dropped:
            rule, _, series = key.partition("/")
            self._enqueue(self._alert_topic(rule, series), b"")
        self.notify_config = rules.notify
        if self.dispatcher is not None and hasattr(self.dispatcher, "reload"):
            self.dispatcher.reload(rules.notify)
        log.info("rules reloaded: %d rules", len(rules.rules))
        return True

    # -- publishing ------------------------------------------------------------------------------

    def _publish(self, transitions: list[Transition]) -> None:
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
        body["ack_comment"] = rec.ack_comment
        self._enqueue(self._alert_topic(rec.rule, rec.series), json.dumps(body, ensure_ascii=False).encode())

    def _alert_topic(self, rule: str, series: str) -> str:
        try:
            return self.topics.alerts(rule, series)
        except TopicError as exc:  # the state is kept; only its MQTT copy cannot be published
            log.warning("cannot publish the state of %s/%s: %s", rule[:100], series[:200], exc)
            return ""

    def republish_all(self) -> None:
        """Every known alert state again (on connect, so retained topics match the state file)."""
        if self.engine.start_transitions:
            self._publish(self.engine.start_transitions)
            self.engine.start_transitions = []
        for key in self.engine.removed_on_start:
            rule, _, series = key.partition("/")
            self._enqueue(self._alert_topic(rule, series), b"")
        self.engine.removed_on_start = []
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

    def _input_missing(self, missing: bool) -> None:
        """The watchdog knows the input is missing (broker or bridge away): hold no-data; when it no
        longer does (events came back), silence counts from then."""
        if missing:
            log.warning("the pipeline's input is missing: no-data conditions wait until events come back")
            self.engine.hold()
        else:
            self.engine.release(self.engine.clock.now())

    def _commit_then_ack(self, client: aiomqtt.Client, messages: list[aiomqtt.Message]) -> None:
        """Durable before acknowledged: what the batch changed (last heard too) is committed first."""
        self.engine.flush()
        for message in messages:
            ack(client, message)

    async def timers(self, clock: Clock) -> None:
        """Fire timers on time, also when no message arrives; never before the backlog is in."""
        while True:
            await self.catchup.ready()
            due = self.engine.next_due()
            now = clock.now()
            wait = TIMER_POLL if due is None else min(TIMER_POLL, max(0.0, due - now))
            await clock.sleep(wait)
            self._publish(self.engine.tick())

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

    async def store_rules(self, store: Store, clock: Clock) -> None:
        """Rules with ``source: store``: each on its own schedule, against stored history."""
        last: dict[str, float] = {}
        while True:
            now = clock.now()
            for c in list(self.engine.index.store_rules):
                if now - last.get(c.name, float("-inf")) < c.rule.spec.every:
                    continue
                last[c.name] = now
                try:
                    snapshots = await asyncio.to_thread(store_snapshots, store, c, now, self.engine.partition)
                except (StoreError, ValueError) as exc:
                    log.warning("rule %s: cannot read the store: %s", c.name, exc)
                    continue
                for data in snapshots:
                    self._publish(self.engine.evaluate_series(c, data, now))
            await clock.sleep(TIMER_POLL)

    async def seed_windows(self, store: Store, clock: Clock) -> None:
        """After a start, fill the windows of rate/aggregate/anomaly rules from the store."""
        now = clock.now()
        seeded = 0
        for data in list(self.engine.series.values()):
            if data.keep <= 0 or data.metric == "status":
                continue
            key = SeriesKey(data.metric, data.device, data.sensor)
            try:
                points = await asyncio.to_thread(store.query, key, now - data.keep, now + 0.001)
            except (StoreError, ValueError) as exc:
                log.warning("cannot read history from the store to fill rule windows: %s", exc)
                return
            data.seed([(p.ts, p.value) for p in points])
            seeded += 1
        if seeded:
            log.info("filled the rule windows of %d series from the store", seeded)

    async def mqtt(self, ready: Optional[asyncio.Event]) -> None:
        """Connect, subscribe, handle messages and publish states; reconnect with backoff."""
        settings = self.config.mqtt
        client_id = self.config.alerting.client_id
        will_topic, will_payload = self.health.will()
        attempt = 0
        while True:
            inbox = Inbox()
            client = build_client(settings, client_id, persistent=True, max_inflight=100, inbox=inbox,
                                  will=aiomqtt.Will(will_topic, will_payload, qos=1, retain=True))
            enable_manual_ack(client)
            self.catchup.watch_session(client)
            try:
                async with client:
                    attempt = 0
                    for flt in (self.topics.all_events, self.topics.all_status, self.topics.all_acks,
                                self.topics.all_silences, self.topics.all_health, self.topics.rules_reload):
                        # health is a state: its retained copy comes on every subscribe, so none need queue
                        qos = 0 if flt == self.topics.all_health else 1
                        self.guard.subscription(flt, refusal(await client.subscribe(flt, qos=qos)))
                    await self.catchup.begin(client)
                    self.republish_all()
                    log.info("connected to the broker; watching %s", self.topics.all_events)
                    if self.watchdog is not None:
                        self.watchdog.broker(True)
                    self.health.changed()
                    if ready is not None:
                        ready.set()
                    self.client = client
                    try:
                        await self._consume(client, inbox)
                    except asyncio.CancelledError:
                        await self._say_stopped(client)
                        raise
                    finally:
                        self.client = None
                        self.catchup.lost()
            except aiomqtt.MqttError as exc:
                if self.watchdog is not None:
                    self.watchdog.broker(False)
                attempt += 1
                delay = backoff_delay(attempt)
                log.warning("no connection to the broker (%s); retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)

    async def _consume(self, client: aiomqtt.Client, inbox: Inbox) -> None:
        def done(messages: list[aiomqtt.Message]) -> None:
            self._commit_then_ack(client, messages)  # handled or refused: never delivered again

        def handle(topic: str, payload: bytes) -> None:
            if not self.catchup.take(topic, payload):  # our own catch-up marker is not an event
                self.handle(topic, payload)

        async for first in client.messages:
            # what is already waiting is handled in one go, then delivery and timers
            # get their turn (a queue that is never empty would never make us wait);
            # marked in hand meanwhile, so that a message that kills the engine is refused
            # when it comes back (alerting/inhand.py)
            self.in_hand.consume([first, *inbox.drain(50)], handle, done)
            await asyncio.sleep(0)

    async def _say_stopped(self, client: aiomqtt.Client) -> None:
        """A clean stop sends no last will: say offline ourselves, briefly."""
        part, instance = "alerting", self.config.alerting.client_id
        try:
            await asyncio.wait_for(client.publish(self.health.topic, offline_payload(part, instance, "stopped"),
                                                  qos=1, retain=True), 2)
        except (aiomqtt.MqttError, TimeoutError):
            pass

    async def send_health(self, topic: str, payload: bytes) -> bool:
        """The health reporter's sender: retained, on the engine's own connection."""
        client = self.client
        if client is None:
            return False
        await client.publish(topic, payload, qos=1, retain=True, timeout=5)
        return True

    async def publisher(self) -> None:
        """Publish alert states (retained), in order; while the broker is away they wait."""
        while True:
            topic, payload = await self.outgoing.get()
            while True:
                client = self.client
                if client is None:
                    await asyncio.sleep(0.2)
                    continue
                try:
                    await client.publish(topic, payload, qos=1, retain=True)
                    break
                except aiomqtt.MqttError as exc:
                    log.warning("could not publish the state on %s (%s); trying again", topic, exc)
                    await asyncio.sleep(0.5)


async def serve(config: VigilConfig, *, store: Optional[Store] = None, clock: Optional[Clock] = None,
                ready: Optional[asyncio.Event] = None, rules_path: Optional[str] = None,
                state_path: Optional[str] = None, sender: Any = None) -> None:
    """Run the rule engine until cancelled (for ``vigil alerting`` and ``vigil up``); leaves no task behind."""
    clock = clock or SystemClock()
    settings = config.alerting
    rules_path = rules_path or settings.rules
    state_path = state_path or settings.state
    rules, warnings = _load_rules(rules_path)
    for w in warnings:
        log.warning("%s", w)
    db = StateDB(state_path)
    outbox = Outbox(db.conn)
    outbox.create_tables()
    own_store = False
    if store is None and wants_store(config, rules):
        store = open_store(config.store.store_url(), retention=config.store.retention)
        own_store = True
    try:
        engine = Engine(rules, state=db, sink=outbox, clock=clock, partition=parse_partition(settings.partition),
                        dashboard_url=config.dashboard.public_url)
        dispatcher = make_dispatcher(state_path, rules, clock, sender, site_zone(config.dashboard.timezone))
        if dispatcher is not None and sender is None:
            await asyncio.to_thread(warm_apprise)
        service = AlertService(config, engine, rules_path=rules_path, dispatcher=dispatcher,
                               in_hand=in_hand_path(state_path))
        guard_parts(service, db, rules, clock)
        log.info("rule engine: %d rules from %s, state in %s, %d alerts not ok", len(rules.rules), rules_path,
                 state_path, len(engine.active()))
        restarts = service.guard.restarts
        async with asyncio.TaskGroup() as tg:
            def task(name: str, work: Any) -> None:
                tg.create_task(supervised(name, work, restarts), name=name)

            task("alerting-mqtt", lambda: service.mqtt(ready))
            task("alerting-publish", service.publisher)
            task("alerting-metrics", lambda: alerting_metrics.run(service, state_path, settings.metrics_listen))
            task("alerting-timers", lambda: service.timers(clock))
            task("alerting-flush", lambda: service.flusher(clock))
            task("alerting-health", lambda: service.health.run(service.send_health))
            task("alerting-watch", lambda: service.guard.watch(service._publish, service.firing_count,
                                                               service._input_missing))
            if service.guard.heartbeat is not None:
                task("alerting-heartbeat", service.guard.heartbeat.run)
            if store is not None and engine.index.store_rules:
                task("alerting-store-rules", lambda: service.store_rules(store, clock))
            if store is not None:
                tg.create_task(service.seed_windows(store, clock), name="alerting-seed-windows")
            if dispatcher is not None:
                task("alerting-dispatcher", dispatcher.run)
    finally:
        try:
            if "engine" in locals():
                engine.flush()
            if "dispatcher" in locals() and dispatcher is not None:
                dispatcher.close()
            if "service" in locals():
                service.in_hand.close()
        finally:
            db.close()
            if own_store and store is not None:
                store.close()


def _load_rules(path: str) -> tuple[RuleSet, list[Any]]:
    if not Path(path).exists():
        log.warning("no rules at %s yet: running with none (write them, then publish to the reload topic)", path)
        return RuleSet(), []
    return load_rules_path(path)

"""Who watches the watcher: the built-in alert ``vigil-pipeline`` when Vigil's own pipeline stalls.

The rule engine feeds the :class:`Watchdog` what it sees anyway (events, device status, the parts'
health documents on ``<root>/health/+/+``, its own broker connection, receivers that keep failing)
and asks it once a second which problems there are. A problem counts once it has lasted its bound
(``alerting.watchdog`` in vigil.yaml)::

    broker            the engine cannot reach the broker                      broker_down
    no-events         no event from the bridge while a device reports online  no_events
    bridge/<id>       a bridge's health says offline, or stopped refreshing   bridge_offline
    store/<id>        a bridge reports its store unreachable                  store_down
    spool/<id>        a bridge's spool holds more than spool_events           at once
    lag/<id>          a bridge is more than ``lag`` behind the readings       lag
    notify/<r>        receiver r keeps failing (delivery.failing_after tries)  notify_failing
    consumer          the engine cannot consume (a subscription refused)      at once

While any problem counts, one alert (rule ``vigil-pipeline``, series ``vigil/watchdog/pipeline``,
severity critical) is firing; it fires once, and resolves once every problem has been gone for
``clear_after``. It goes through the outbox and the dispatcher like any rule's alert (routes,
grouping, silences), to ``watchdog.notify``, or to every receiver when nothing names one. Its state
lives in the engine's state file (table ``watchdog_state``), so a restart neither repeats nor loses it.

:meth:`Watchdog.input_stalled` says whether the engine's input is known to be missing (broker lost,
bridge silent), for conditions that must not take Vigil's silence for the sensors' (issue 19).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Optional

from alerting.notify.state import ReceiverFailure
from alerting.settings import WatchdogSettings
from alerting.state import StateDB
from alerting.templates import fmt_duration, fmt_time
from alerting.transition import AlertState, Severity, Transition, TransitionSink, transition_id
from vigil.core.clock import Clock
from vigil.core.health import STALE_AFTER, PartHealth

__all__ = ["RULE", "SERIES", "Problem", "Watchdog"]

log = logging.getLogger(__name__)

RULE = "vigil-pipeline"
SERIES = "vigil/watchdog/pipeline"
_SCHEMA = "CREATE TABLE IF NOT EXISTS watchdog_state (key TEXT PRIMARY KEY, state TEXT NOT NULL, " \
    "since DOUBLE PRECISION NOT NULL, last_transition TEXT)"  # SQLite's REAL; PostgreSQL's REAL is 4 bytes


def _input(key: str) -> bool:
    """Whether problem ``key`` means the engine's input is missing."""
    return key in ("broker", "no-events") or key.startswith("bridge/")


@dataclass(frozen=True, slots=True)
class Problem:
    """Something wrong with the pipeline since ``since``; it counts once it lasted ``bound`` seconds."""

    key: str
    since: float
    bound: float
    text: str
    advice: str

    def counts(self, now: float) -> bool:
        return now - self.since >= self.bound

    def sentence(self) -> str:
        return f"{self.text}: {self.advice}"


class Watchdog:
    """Pipeline problems from what the engine sees, and the one alert they raise (see the module doc)."""

    def __init__(self, settings: WatchdogSettings, clock: Clock, *, state: Optional[StateDB] = None,
                 sink: Optional[TransitionSink] = None,
                 receivers: Callable[[list[str]], list[str]] = lambda names: names) -> None:
        self.settings = settings
        self.clock = clock
        self.state = state
        self.sink = sink
        #: turns watchdog.notify into the receivers to name (all receivers when routes name none)
        self.receivers = receivers
        now = clock.now()
        self.last_event: Optional[float] = None
        self.devices: dict[str, bool] = {}
        self.online_since: Optional[float] = None
        self.bridges: dict[str, tuple[PartHealth, float]] = {}
        self.disconnected_since: Optional[float] = now  # not yet connected
        self.connected_at = now
        self.onsets: dict[str, float] = {}
        self.failing: dict[str, ReceiverFailure] = {}
        self.consumer: dict[str, str] = {}
        self.firing = False
        self.fired_at = 0.0
        self.clear_since: Optional[float] = None
        self.last: Optional[Transition] = None
        self.hold_until = float("-inf")
        self.input_lost = False
        if state is not None:
            self._restore(state)

    # -- what the engine sees ---------------------------------------------------------------------

    def saw_event(self) -> None:
        self.last_event = self.clock.now()
        self.input_lost = False  # input is back (a problem still counting says it again)

    def saw_status(self, device: str, online: bool) -> None:
        before = any(self.devices.values())
        if online:
            self.devices[device] = True
        else:
            self.devices.pop(device, None)
        if not before and online:
            self.online_since = self.clock.now()

    def saw_health(self, health: PartHealth) -> None:
        if health.part != "bridge":
            return
        now = self.clock.now()
        self.bridges[health.instance] = (health, now)
        up = health.state != "offline"
        self._onset(f"store/{health.instance}", up and health.details.get("store_ok") is False, now)
        spool = health.number("spool_events")
        self._onset(f"spool/{health.instance}", up and spool is not None and spool > self.settings.spool_events, now)
        lag = health.number("lag_seconds")
        self._onset(f"lag/{health.instance}", up and lag is not None and lag > self.settings.lag, now)

    def forget_part(self, part: str, instance: str) -> None:
        """A part's retained health was cleared (decommissioned): stop watching it."""
        if part == "bridge" and self.bridges.pop(instance, None) is not None:
            for kind in ("store", "spool", "lag"):
                self.onsets.pop(f"{kind}/{instance}", None)

    def broker(self, connected: bool) -> None:
        now = self.clock.now()
        if connected:
            self.disconnected_since = None
            self.connected_at = now
        elif self.disconnected_since is None:
            self.disconnected_since = now

    def receivers_failing(self, failures: Sequence[ReceiverFailure]) -> None:
        """Every receiver URL failing now (the notification state's rows)."""
        now = self.clock.now()
        current = {f"{f.receiver}|{f.url}": f for f in failures}
        for key in list(self.failing):
            if key not in current:
                self.onsets.pop(f"notify/{key}", None)
        for key in current:
            self.onsets.setdefault(f"notify/{key}", now)
        self.failing = current

    def cannot_consume(self, what: str, why: Optional[str]) -> None:
        """The engine's own consumer has a problem ``what`` (None: it is over)."""
        if why is None:
            self.consumer.pop(what, None)
        else:
            self.consumer[what] = why
        self._onset(f"consumer/{what}", why is not None, self.clock.now())

    def _onset(self, key: str, holds: bool, now: float) -> None:
        if holds:
            self.onsets.setdefault(key, now)
        else:
            self.onsets.pop(key, None)

    # -- judging ----------------------------------------------------------------------------------

    def problems(self) -> list[Problem]:
        """Every problem now, counting or not yet."""
        s = self.settings
        now = self.clock.now()
        out: list[Problem] = []
        for what, why in sorted(self.consumer.items()):
            out.append(Problem(f"consumer/{what}", self.onsets.get(f"consumer/{what}", now), 0.0,
                               f"the rule engine cannot consume {what} ({why})",
                               "grant its MQTT account read access to it (deploy/mosquitto/vigil.acl)"))
        if self.disconnected_since is not None:
            out.append(Problem("broker", self.disconnected_since, s.broker_down,
                               "the rule engine has not reached the MQTT broker since "
                               f"{fmt_time(self.disconnected_since)}",
                               "check that Mosquitto runs (systemctl status mosquitto) and the engine's mqtt settings"))
            return out + self._failing_problems()  # what the broker would have told is unknown now
        online = sorted(d for d, on in self.devices.items() if on)
        if online:
            ref = max(self.last_event or float("-inf"), self.online_since or float("-inf"), self.connected_at)
            shown = ", ".join(online[:3]) + (f" and {len(online) - 3} more" if len(online) > 3 else "")
            heard = f"since {fmt_time(self.last_event)}" if self.last_event is not None else "yet"
            out.append(Problem("no-events", ref, s.no_events,
                               f"no event from the bridge {heard} while {len(online)} device(s) report online "
                               f"({shown})",
                               "check that the bridge runs and can publish on the events topics (vigil status)"))
        for instance, (h, arrived) in sorted(self.bridges.items()):
            stale_at = arrived + STALE_AFTER * h.every
            if h.state == "offline":
                out.append(Problem(f"bridge/{instance}", arrived, s.bridge_offline,
                                   f"the bridge {instance} is offline since {fmt_time(arrived)}",
                                   "start it (systemctl start vigil-bridge) and read its log "
                                   "(journalctl -u vigil-bridge)"))
                continue
            if now >= stale_at:
                out.append(Problem(f"bridge/{instance}", stale_at, s.bridge_offline,
                                   f"the bridge {instance} has not reported its health since {fmt_time(arrived)}",
                                   "it may hang or have lost the broker: read its log, restart it"))
            spool = h.number("spool_events")
            if f"store/{instance}" in self.onsets:
                out.append(Problem(f"store/{instance}", self.onsets[f"store/{instance}"], s.store_down,
                                   f"the bridge {instance} cannot write to its store since "
                                   f"{fmt_time(self.onsets[f'store/{instance}'])} ({spool or 0:.0f} events wait in "
                                   "its spool)", "check the store (InfluxDB running, its URL, token or password); "
                                   "the spooled readings are written when it is back"))
            if f"spool/{instance}" in self.onsets:
                out.append(Problem(f"spool/{instance}", self.onsets[f"spool/{instance}"], 0.0,
                                   f"the spool of bridge {instance} holds {spool or 0:.0f} events "
                                   f"(watchdog.spool_events: {s.spool_events})",
                                   "the store is down or slower than the readings; beyond bridge.spool_max_events "
                                   "the oldest are dropped"))
            if f"lag/{instance}" in self.onsets:
                # as long as it is large: an edge agent's backlog replayed after an outage is late, not a stall
                out.append(Problem(f"lag/{instance}", self.onsets[f"lag/{instance}"], s.lag,
                                   f"the bridge {instance} is {h.number('lag_seconds') or 0:.0f} s behind the readings",
                                   "it cannot keep up (add a bridge: docs/scaling.md) or a device's clock is wrong"))
        return out + self._failing_problems()

    def _failing_problems(self) -> list[Problem]:
        now = self.clock.now()
        return [Problem(f"notify/{key}", self.onsets.get(f"notify/{key}", now), self.settings.notify_failing,
                        f"notifications to receiver {f.receiver} ({f.url}) keep failing: {f.last_error[:200]}; "
                        f"{f.waiting} message(s) wait", f"check the receiver (vigil notify test {f.receiver})")
                for key, f in sorted(self.failing.items())]

    def input_stalled(self) -> bool:
        """Whether the engine's input is known to be missing (the broker, or the bridge).

        Once known, it stays known until an event comes, or no such problem is left even uncounted: a
        reconnect, or the retained health and statuses it brings again, restart the bounds but do not
        tell that input is back."""
        now = self.clock.now()
        problems = [p for p in self.problems() if _input(p.key)]
        self.input_lost = any(p.counts(now) for p in problems) or (self.input_lost and bool(problems))
        return self.input_lost

    @property
    def healthy(self) -> bool:
        """No problem counts and the alert is not firing (the heartbeat pings only then)."""
        now = self.clock.now()
        return not self.firing and not any(p.counts(now) for p in self.problems())

    def evaluate(self) -> list[Transition]:
        """Fire or resolve the pipeline alert; the transitions are committed and enqueued for delivery."""
        if not self.settings.enabled:
            return []
        now = self.clock.now()
        counting = [p for p in self.problems() if p.counts(now)]
        if counting:
            self.clear_since = None
            if self.firing:
                return []
            self.firing = True
            self.fired_at = now
            lines = "\n".join(f"- {p.sentence()}" for p in counting)
            return [self._emit(AlertState.FIRING, now, f"Vigil's pipeline has stalled:\n{lines}\n"
                               "Run 'vigil status' for the health of every part.", counting)]
        if not self.firing or now < self.hold_until or self.input_stalled():
            return []  # input known lost: not 'works again' until it is back
        if self.clear_since is None:
            self.clear_since = now
        if now - self.clear_since < self.settings.clear_after:
            return []
        self.firing = False
        return [self._emit(AlertState.RESOLVED, now,
                           f"Vigil's pipeline works again (it had stalled since {fmt_time(self.fired_at)}, "
                           f"for {fmt_duration(self.clear_since - self.fired_at)}).", [])]

    def _emit(self, state: AlertState, at: float, message: str, problems: list[Problem]) -> Transition:
        previous = self.last.state if self.last is not None else AlertState.OK
        t = Transition(
            id=transition_id(RULE, SERIES, state, at), rule=RULE, series=SERIES, state=state, previous=previous,
            at=at, severity=Severity.CRITICAL, message=message, since=self.fired_at,
            labels=(("device", "vigil"), ("metric", "pipeline"), ("sensor", "watchdog")),
            notify=tuple(self.receivers(list(self.settings.notify))),
            annotations=(("problems", ", ".join(p.key for p in problems)),) if problems else ())
        self.last = t
        log.log(logging.ERROR if state == AlertState.FIRING else logging.INFO, "%s %s: %s", RULE, state.value,
                message.replace("\n", " "))
        if self.state is not None:
            with self.state.transaction() as conn:
                conn.execute("INSERT INTO watchdog_state (key, state, since, last_transition) VALUES (?, ?, ?, ?) "
                             "ON CONFLICT (key) DO UPDATE SET state = excluded.state, since = excluded.since, "
                             "last_transition = excluded.last_transition",
                             (RULE, state.value, self.fired_at, t.to_json()))
                if self.sink is not None:
                    self.sink.enqueue(t)
        elif self.sink is not None:
            self.sink.enqueue(t)
        return t

    def _restore(self, state: StateDB) -> None:
        state.conn.execute(_SCHEMA)
        row = state.conn.execute("SELECT state, since, last_transition FROM watchdog_state WHERE key = ?",
                                 (RULE,)).fetchone()
        if row is None or not row[2]:
            return
        try:
            self.last = Transition.from_json(row[2])
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("forgetting the watchdog's saved state, which cannot be read: %s", exc)
            return
        self.firing = row[0] == AlertState.FIRING.value
        self.fired_at = float(row[1])
        if self.firing:
            # what made it fire is seen anew after a restart and counts only after its bound again:
            # until then, the alert is neither resolved nor sent again
            s = self.settings
            self.hold_until = self.clock.now() + max(s.no_events, s.bridge_offline, s.store_down, s.notify_failing,
                                                     s.broker_down)
            # and an input known lost stays known (no-data waits from the start, not after the bounds)
            self.input_lost = any(_input(k) for k in dict(self.last.annotations).get("problems", "").split(", "))

    def retained(self) -> Optional[bytes]:
        """The alert's last state, as published on its alerts topic."""
        return self.last.to_json().encode() if self.last is not None else None


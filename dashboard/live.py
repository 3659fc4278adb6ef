"""What is true now, as the bus says it: latest values, device status, alerts, silences.

:class:`LiveState` is pure (fed topic + payload, no I/O) so it is tested without a broker;
:class:`dashboard.feed.LiveFeed` feeds it from MQTT. Browsers follow it through
:meth:`LiveState.subscribe` (server-sent events).
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import deque
from typing import Any, Optional

from vigil.core import jsonlimits
from vigil.core.event import Event, EventDecodeError
from vigil.core.topics import Topics

from .journal import AlertJournal

__all__ = ["ACTIVE", "TICK", "LiveState", "Subscription", "sse"]

log = logging.getLogger(__name__)

_MAX_JSON = 65_536
_MAX_TEXT = 500
# Topics whose bad messages were logged; one line per topic, not one per message.
_LOGGED_TOPICS = 1000
# "cleared": a latched alert whose condition cleared, waiting for an acknowledgement (alerting/transition.py).
_STATES = ("ok", "pending", "firing", "resolved", "flapping", "cleared")
# States that still need someone: shown under "Now" on the Alerts page, a colour on the tiles.
ACTIVE = ("firing", "flapping", "cleared", "pending")
_MAX_NOTES = 20
# Seconds between two updates of the latest values sent to browsers: a browser's cost follows this
# and the number of series that changed, not the rate of readings. Other changes go at once.
TICK = 0.25


class Subscription:
    """One browser's bounded queue of ready-to-send SSE text; a browser too slow to keep up gets a resync.

    The items are the same bytes objects for every subscriber: :class:`LiveState` encodes each
    message once, whatever the number of browsers.
    """

    def __init__(self, size: int = 1000) -> None:
        self.queue: asyncio.Queue[Optional[bytes]] = asyncio.Queue(maxsize=size)
        self.overflowed = False

    def put(self, item: Optional[bytes]) -> None:
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            self.overflowed = True


def sse(kind: str, data: Any) -> bytes:
    """One server-sent event, encoded (NaN and Infinity written as null)."""
    return f"event: {kind}\ndata: {jsonlimits.dumps(data)}\n\n".encode()


def _loads(payload: bytes) -> Any:
    return jsonlimits.loads(payload, _MAX_JSON)


def _finite(v: Any) -> Optional[float]:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return None
    return float(v)


# Why a sensor-health alert holds (alerting.transition.sensor_reason): its kind and the numbers the pages word.
_REASON_KINDS = ("stale", "stuck", "forecast", "jump", "noise", "drift", "restarts")
_REASON_NUMBERS = ("last", "interval", "limit", "since", "value", "threshold", "reach_at", "rate", "from", "to",
                   "elapsed", "spread", "usual", "ratio", "difference", "baseline",
                   "count")


def _notes(raw: Any) -> list[dict[str, Any]]:
    """The corrective-action notes of an alert payload: the last 20 ``{by, text, at}``, as text and finite times."""
    if not isinstance(raw, list):
        return []
    out = []
    for n in raw[-_MAX_NOTES:]:
        if isinstance(n, dict) and isinstance(n.get("text"), str):
            out.append({"by": str(n.get("by", ""))[:64], "text": n["text"][:2000], "at": _finite(n.get("at"))})
    return out


def _reason(raw: Any) -> Optional[dict[str, Any]]:
    """The ``reason`` of an alert payload, kept only as a known kind with finite numbers and a short unit."""
    if not isinstance(raw, dict) or raw.get("kind") not in _REASON_KINDS:
        return None
    out: dict[str, Any] = {"kind": raw["kind"]}
    for k in _REASON_NUMBERS:
        v = _finite(raw.get(k))
        if v is not None and abs(v) < 1e15:
            out[k] = v
    unit = raw.get("unit")
    if isinstance(unit, str) and unit:
        out["unit"] = unit[:16]
    return out


class LiveState:
    """The dashboard's picture of the present, with every change broadcast to subscribers."""

    def __init__(self, topics: Topics, history: int = 1000, journal: Optional[AlertJournal] = None,
                 tick: float = TICK) -> None:
        self.topics = topics
        self.journal = journal
        self.latest: dict[str, dict[str, Any]] = {}
        self.devices: dict[str, dict[str, Any]] = {}
        self.alerts: dict[str, dict[str, Any]] = {}
        self.silences: dict[str, dict[str, Any]] = {}
        self.history: deque[dict[str, Any]] = deque(maxlen=history)
        if journal is not None:
            self.history.extend(journal.query(limit=history))
        self.connected = False
        self.counters: dict[str, int] = {"messages": 0, "bad_messages": 0}
        self._logged: set[str] = set()
        self._subs: set[Subscription] = set()
        self._root = topics.root + "/"
        self.tick = tick
        # Latest values changed since the last tick, kept only while someone watches.
        self._changed: dict[str, dict[str, Any]] = {}
        self._ticker: Optional[asyncio.Task[None]] = None

    # Subscribers.
    def subscribe(self) -> Subscription:
        """A new browser's queue; the ticker runs while there is at least one."""
        sub = Subscription()
        self._subs.add(sub)
        if self._ticker is None or self._ticker.done():
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # no event loop (a test driving flush() itself)
                return sub
            self._ticker = loop.create_task(self._tick_loop(), name="dashboard-live-tick")
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self._subs.discard(sub)
        if not self._subs:
            self._changed.clear()

    def close_all(self) -> None:
        """End every subscriber's stream (the server is stopping)."""
        for sub in list(self._subs):
            sub.put(None)
        self._subs.clear()
        self._changed.clear()
        if self._ticker is not None:
            self._ticker.cancel()
            self._ticker = None

    @property
    def subscribers(self) -> int:
        return len(self._subs)

    async def _tick_loop(self) -> None:
        while self._subs:
            await asyncio.sleep(self.tick)
            self.flush()

    def flush(self) -> None:
        """Send the latest value of every series changed since the last flush: one message for all of them."""
        if self._changed:
            self._send(sse("events", list(self._changed.values())))
            self._changed.clear()

    def _send(self, chunk: bytes) -> None:
        for sub in list(self._subs):
            sub.put(chunk)

    def _emit(self, kind: str, data: Any) -> None:
        """A change that goes out at once (after the values it may follow from), encoded once for everyone."""
        if self._subs:
            self.flush()
            self._send(sse(kind, data))

    def set_connected(self, connected: bool) -> None:
        if connected != self.connected:
            self.connected = connected
            self._emit("broker", {"connected": connected})

    def snapshot(self) -> dict[str, Any]:
        return {
            "broker": {"connected": self.connected},
            "latest": list(self.latest.values()),
            "devices": self.devices,
            "alerts": list(self.alerts.values()),
            "silences": list(self.silences.values()),
        }

    # Feeding.
    def handle(self, topic: str, payload: bytes, received: float) -> None:
        """Apply one MQTT message; bad ones are counted and logged, never raised."""
        self.counters["messages"] += 1
        if not topic.startswith(self._root):
            return
        kind, _, rest = topic[len(self._root):].partition("/")
        try:
            if kind == "events":
                self._event(payload, received)
            elif kind == "status":
                self._status(rest, payload, received)
            elif kind == "alerts":
                self._alert(rest, payload, received)
            elif kind == "ack":
                self._ack(rest, payload, received)
            elif kind == "silences":
                self._silence(rest, payload, received)
        except Exception as exc:  # one message, whatever is wrong with it, never stops the feed
            self.refused(topic, exc)

    def refused(self, topic: str, exc: BaseException) -> None:
        """Count a message that could not be applied; log it once per topic."""
        self.counters["bad_messages"] += 1
        if topic in self._logged or len(self._logged) > _LOGGED_TOPICS:
            return
        self._logged.add(topic)
        if len(self._logged) > _LOGGED_TOPICS:  # a flood of topics: count them, stop logging
            log.warning("bad messages on more than %d topics; no longer logging them (see "
                        "vigil_dashboard_mqtt_bad_messages_total)", _LOGGED_TOPICS)
            return
        expected = isinstance(exc, (ValueError, TypeError, KeyError, OverflowError, EventDecodeError))
        log.log(logging.WARNING if expected else logging.ERROR, "ignored a bad message on %s: %s: %s%s",
                topic[:200], type(exc).__name__, str(exc)[:200],
                "" if expected else " (a defect: please report it)", exc_info=not expected)

    def _event(self, payload: bytes, received: float) -> None:
        # One parse: Event.from_json bounds the size and depth and checks the names, value and ts;
        # what it leaves unchecked and a page shows (received, seq) is checked here.
        event = Event.from_json(payload)
        if not (math.isfinite(event.received) and (event.seq is None or abs(event.seq) < 2**63)):
            raise ValueError("received must be a finite number and seq a 64-bit integer")
        d = event.to_dict()
        d["series"] = sid = event.series.id
        d["received"] = event.received or received
        old = self.latest.get(sid)
        if old is not None and old["ts"] > event.ts:
            return  # a late, older reading does not replace the current value
        self.latest[sid] = d
        if self._subs:  # browsers get it on the next tick, coalesced with the other changes
            self._changed[sid] = d

    def _status(self, device: str, payload: bytes, received: float) -> None:
        if "/" in device or not device:
            raise ValueError("expected status/<device>")
        if not payload:
            self.devices.pop(device, None)
            self._emit("status", {"device": device, "state": "unknown"})
            return
        state = "unknown"
        details: dict[str, Any] = {}
        text = payload.decode("utf-8", errors="replace").strip()
        if text in ("online", "offline"):
            state = text
        else:
            try:
                data = _loads(payload)
            except jsonlimits.JsonRefused:
                raise  # hostile, not merely unreadable: refused like any bad message
            except ValueError:  # lenient: a device we cannot read is still a device
                data = None
            if isinstance(data, dict):
                s = str(data.get("state", data.get("status", ""))).lower()
                state = s if s in ("online", "offline") else "unknown"
                details = {str(k)[:64]: v[:_MAX_TEXT] if isinstance(v, str) else v
                           for k, v in list(data.items())[:32]
                           if isinstance(v, (str, int, float, bool)) and k != "state"}
        entry = {"device": device, "state": state, "since": received, "details": details}
        self.devices[device] = entry
        self._emit("status", entry)

    def _alert(self, rest: str, payload: bytes, received: float) -> None:
        rule, _, series = rest.partition("/")
        key = f"{rule}/{series}"
        if not payload:
            if self.alerts.pop(key, None) is not None:
                self._emit("alert_cleared", {"key": key})
            return
        data = _loads(payload)
        if not isinstance(data, dict):
            raise ValueError("an alert payload must be a JSON object")
        state = str(data.get("state", ""))
        if state not in _STATES:
            raise ValueError(f"unknown alert state {state[:20]!r}")
        alert: dict[str, Any] = {
            "key": key,
            "rule": str(data.get("rule", rule)),
            "series": str(data.get("series", series)),
            "state": state,
            "previous": str(data.get("previous", ""))[:_MAX_TEXT],
            "severity": str(data.get("severity", "warning"))[:_MAX_TEXT],
            "message": str(data.get("message", ""))[:2000],
            "at": _finite(data.get("at")) or received,
            "since": _finite(data.get("since")) or received,
            "value": _finite(data.get("value")),
            "labels": {str(k): str(v) for k, v in (data.get("labels") or {}).items()}
            if isinstance(data.get("labels"), dict) else {},
            "received": received,
        }
        reason = _reason(data.get("reason"))
        if reason is not None:
            alert["reason"] = reason
        for extra in ("acknowledged_by", "ack_comment", "silenced_by", "escalated"):
            if extra in data and isinstance(data[extra], (str, int, float, bool)):
                alert[extra] = data[extra]
        if data.get("acknowledged_by") in (None, ""):  # the engine writes null until someone acknowledged
            alert.pop("acknowledged_by", None)
        # A latched alarm: the worst value and when the condition cleared (the excursion's duration).
        alert["latched"] = data.get("latched") is True
        for extra in ("peak", "ended", "acknowledged_at"):
            v = _finite(data.get(extra))
            if v is not None:
                alert[extra] = v
        if "ended" in alert:
            alert["duration"] = max(0.0, alert["ended"] - alert["since"])
        alert["notes"] = _notes(data.get("notes"))
        prior = self.alerts.get(key)
        if prior and prior.get("since") == alert["since"]:
            # An older engine publishes who acknowledged, not when: keep the time the dashboard saw it.
            for k in ("acknowledged_by", "acknowledged_at", "ack_comment"):
                if k in prior and k not in alert:
                    alert[k] = prior[k]
        if "acknowledged_by" in alert and "acknowledged_at" not in alert and self.journal is not None:
            known = self.journal.ack_of(key, alert["since"])  # after a restart of the dashboard
            if known is not None:
                alert["acknowledged_at"] = known["at"]
        self.alerts[key] = alert
        changed = prior is None or prior["state"] != state or prior.get("at") != alert["at"]
        # After a restart the retained states come again: the journal knows they are not new.
        if changed and (self.journal is None or self.journal.add(alert)):
            self.history.appendleft(dict(alert))
        self._emit("alert", alert)

    def _ack(self, rest: str, payload: bytes, received: float) -> None:
        data = _loads(payload) if payload else {}
        if not isinstance(data, dict):
            raise ValueError("an acknowledgement must be a JSON object")
        alert = self.alerts.get(rest)
        if alert is None:
            return
        episode = _finite(data.get("episode"))
        if episode is not None and abs(episode - alert["since"]) > 0.001 and alert["state"] != "flapping":
            return  # a link for an earlier excursion: the engine ignores it too
        alert["acknowledged_by"] = str(data.get("by", "?"))[:64]
        alert["acknowledged_at"] = _finite(data.get("at")) or received
        if data.get("comment"):
            alert["ack_comment"] = str(data["comment"])[:500]
        if self.journal is not None:
            self.journal.add_ack(rest, alert["since"], alert["acknowledged_by"], alert["acknowledged_at"],
                                 str(alert.get("ack_comment", "")))
        self._emit("alert", alert)

    def _silence(self, sid: str, payload: bytes, received: float) -> None:
        if not payload:
            if self.silences.pop(sid, None) is not None:
                self._emit("silence_cleared", {"id": sid})
            return
        data = _loads(payload)
        if not isinstance(data, dict) or not isinstance(data.get("matchers", {}), dict):
            raise ValueError("a silence must be a JSON object with a matchers object")
        entry = {
            "id": sid,
            "matchers": {str(k): str(v) for k, v in data.get("matchers", {}).items()},
            "until": _finite(data.get("until")),
            "by": str(data.get("by", ""))[:64],
            "comment": str(data.get("comment", ""))[:500],
            "created": _finite(data.get("created")) or received,
        }
        self.silences[sid] = entry
        self._emit("silence", entry)

    # Views.
    def series_state(self, series: str) -> str:
        """The worst alert state of a series: firing > cleared (not acknowledged) > pending > ok."""
        states = {a["state"] for a in self.alerts.values() if a["series"] == series}
        for s in ("firing", "flapping", "cleared", "pending"):
            if s in states:
                return s
        return "ok"

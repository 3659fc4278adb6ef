"""A server part's own health, published retained on ``<root>/health/<part>/<instance>``.

Each part (``bridge``, ``alerting``, ``dashboard``) publishes a small JSON document over its own
MQTT connection (a second connection would take the first one's session where the broker makes the
username the client id), and sets a retained last will ``{"state": "offline"}`` on that connection
where its client allows one::

    {"part": "bridge", "instance": "vigil-bridge", "state": "ok", "problems": [],
     "at": 1700000000.0, "started": 1699990000.0, "every": 10.0,
     "store_ok": true, "spool_events": 0, "lag_seconds": 0.4, "counters": {"received": 1203, ...}}

``state`` is ``ok``, ``degraded`` (running, with ``problems``: each a sentence saying what is wrong
and what to do) or ``offline`` (the last will, or a clean stop). A document is published when its
state or problems change and otherwise every ``every`` seconds, so a reader may call a part whose
document is older than :data:`STALE_AFTER` periods silent. The rule engine's watchdog and
``vigil status`` read these documents.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Optional

from vigil.core import jsonlimits
from vigil.core.topics import Topics

__all__ = ["HEALTH_EVERY", "MAX_HEALTH_BYTES", "STALE_AFTER", "HealthReporter", "PartHealth", "offline_payload",
           "parse_health"]

log = logging.getLogger(__name__)

HEALTH_EVERY = 10.0
#: a document older than this many periods means the part stopped reporting (hung, or gone without a will)
STALE_AFTER = 3
MAX_HEALTH_BYTES = 16 * 1024


@dataclass(frozen=True, slots=True)
class PartHealth:
    """One part's health document, as read back."""

    part: str
    instance: str
    state: str
    at: Optional[float] = None
    every: float = HEALTH_EVERY
    problems: tuple[str, ...] = ()
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.state == "ok"

    def number(self, key: str) -> Optional[float]:
        """A finite number from the details, or None."""
        v = self.details.get(key)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            return None
        return float(v)


def offline_payload(part: str, instance: str, why: str = "") -> bytes:
    """The retained last will (or clean-stop message) of a part."""
    body: dict[str, Any] = {"part": part, "instance": instance, "state": "offline"}
    if why:
        body["problems"] = [why]
        body["at"] = time.time()
    return json.dumps(body, separators=(",", ":")).encode()


def parse_health(topics: Topics, topic: str, payload: bytes) -> Optional[PartHealth]:
    """The document on a health topic; None when the topic or payload is not one (a cleared retained
    message, a stranger's text); never raises."""
    prefix = f"{topics.root}/health/"
    if not topic.startswith(prefix):
        return None
    part, _, instance = topic[len(prefix):].partition("/")
    if not part or not instance or "/" in instance or len(payload) > MAX_HEALTH_BYTES:
        return None
    text = payload.strip()
    if text.lower() in (b"offline", b'"offline"'):
        return PartHealth(part, instance, "offline")
    # a bound on brackets bounds the nesting too (a health document has two levels)
    if not text.startswith(b"{") or text.count(b"{") + text.count(b"[") > 200:
        return None
    try:
        data = jsonlimits.decode(text)
    except (ValueError, RecursionError):
        return None
    if not isinstance(data, dict):
        return None
    state = data.get("state")
    if state not in ("ok", "degraded", "offline"):
        return None
    at: Any = data.get("at")
    every: Any = data.get("every")
    problems = data.get("problems") or []
    details = {k: v for k, v in data.items() if k not in ("part", "instance", "state", "at", "every", "problems")}
    return PartHealth(
        part, instance, state,
        at=float(at) if _finite(at) else None,
        every=float(every) if _finite(every) and every > 0 else HEALTH_EVERY,
        problems=tuple(str(p)[:500] for p in problems[:20]) if isinstance(problems, list) else (),
        details=details)


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


Sender = Callable[[str, bytes], Awaitable[bool]]


class HealthReporter:
    """Publishes a part's health through ``send`` (the part's own connection): on change, and every
    ``every`` seconds. ``snapshot()`` returns ``{"problems": [...], ...details}``; no problem means ok.
    """

    def __init__(self, topics: Topics, part: str, instance: str, snapshot: Callable[[], dict[str, Any]], *,
                 every: float = HEALTH_EVERY, poll: float = 1.0) -> None:
        self.topic = topics.health(part, instance)
        self.part, self.instance = part, instance
        self.snapshot = snapshot
        self.every, self.poll = every, poll
        self.started = time.time()
        self._said: Optional[tuple[str, tuple[str, ...]]] = None
        self._sent_at = float("-inf")
        self._failed_snapshot = False

    def will(self) -> tuple[str, bytes]:
        """(topic, payload) of the retained last will to set on the part's connection."""
        return self.topic, offline_payload(self.part, self.instance)

    def document(self) -> tuple[str, tuple[str, ...], bytes]:
        """(state, problems, JSON payload) of the part now."""
        try:
            details = dict(self.snapshot())
            self._failed_snapshot = False
        except Exception as exc:  # the health of a part must never stop the part
            if not self._failed_snapshot:
                log.exception("could not take the health of %s %s", self.part, self.instance)
            self._failed_snapshot = True
            details = {"problems": [f"its health could not be taken ({type(exc).__name__}): see its log"]}
        problems = tuple(str(p) for p in details.pop("problems", ()) or ())
        state = "degraded" if problems else "ok"
        body = {"part": self.part, "instance": self.instance, "state": state, "problems": list(problems),
                "at": round(time.time(), 3), "started": round(self.started, 3), "every": self.every,
                **{k: _clean(v) for k, v in details.items()}}
        return state, problems, json.dumps(body, ensure_ascii=False, separators=(",", ":"),
                                           allow_nan=False).encode()

    async def step(self, send: Sender, *, force: bool = False) -> bool:
        """Publish if the state or problems changed, the period is over, or ``force``; True if sent."""
        state, problems, payload = self.document()
        now = time.monotonic()
        if not force and self._said == (state, problems) and now - self._sent_at < self.every:
            return False
        try:
            sent = await send(self.topic, payload)
        except Exception as exc:  # a send that fails is tried again at the next poll
            log.debug("health of %s not published: %s", self.part, exc)
            sent = False
        if sent:
            if self._said is not None and self._said[0] != state:
                log.log(logging.WARNING if problems else logging.INFO, "%s %s is %s%s", self.part, self.instance,
                        state, (": " + "; ".join(problems)) if problems else "")
            self._said, self._sent_at = (state, problems), now
        return sent

    def changed(self) -> None:
        """Publish at the next poll (after a reconnect: the broker may have lost the retained copy)."""
        self._said = None

    async def run(self, send: Sender) -> None:
        """Publish until cancelled."""
        while True:
            await self.step(send)
            await asyncio.sleep(self.poll)


def _clean(v: Any) -> Any:
    """JSON without NaN/Infinity (null instead), whatever a counter holds."""
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {str(k): _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    return v

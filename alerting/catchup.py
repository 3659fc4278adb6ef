"""Catch up before judging: after a start or a reconnect, timers wait until the backlog is in.

The broker keeps the engine's persistent session while it is away and hands the backlog over first
thing after a reconnect. The engine then publishes a marker to itself (QoS 1, on
``<root>/control/catchup/<client id>``): the broker queues it behind the backlog, so when it comes
back every reading kept for the engine has been taken in, and only then do timers fire (each at its
own due time, on the readings' source times). Should the marker not come back (an ACL without the
marker topic), the backlog counts as taken in once no message arrived for :data:`QUIET` seconds, or
after :data:`MAX_WAIT` at the latest.

When the engine could not hear its input (it lost the broker while running, or the broker no longer
had its session), the connect calls ``on_resumed`` (the service calls :meth:`Engine.resume`) before
the backlog is taken in: silence is counted from then on, so a broker outage raises no no-data alert
for every sensor.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from typing import Any, Callable, Optional

import aiomqtt

__all__ = ["MAX_WAIT", "QUIET", "CatchUp"]

log = logging.getLogger(__name__)

QUIET = 2.0
MAX_WAIT = 30.0


class CatchUp:
    """The engine's catch-up state for one MQTT client id; ``live`` is set when timers may fire."""

    def __init__(self, root: str, client_id: str, on_resumed: Callable[[], None]) -> None:
        self.topic = f"{root}/control/catchup/{client_id}"
        self.on_resumed = on_resumed
        self.live = asyncio.Event()
        self.token = ""
        self.blind = False  # input was lost while running: the broker kept nothing for us meanwhile
        self.session_present: Optional[bool] = None
        self._started = 0.0
        self._last_message = 0.0

    def watch_session(self, client: aiomqtt.Client) -> None:
        """Remember whether the broker still had our session (call before connecting)."""
        paho_client: Any = client._client
        inner = paho_client.on_connect

        def on_connect(c: Any, userdata: Any, flags: Any, *args: Any) -> None:
            self.session_present = bool(getattr(flags, "session_present", False))
            inner(c, userdata, flags, *args)

        paho_client.on_connect = on_connect

    async def begin(self, client: aiomqtt.Client) -> None:
        """Connected and subscribed: send the marker that comes back behind the backlog."""
        self.live.clear()
        self._started = self._last_message = time.monotonic()
        self.token = secrets.token_hex(8)
        if self.session_present is False:
            self.blind = True
        if self.blind:
            log.info("input was lost (broker away, or it kept no session for us): silence counts from now")
            self.on_resumed()
            self.blind = False
        try:
            await client.subscribe(self.topic, qos=1)
            await client.publish(self.topic, self.token.encode(), qos=1)
        except aiomqtt.MqttError as exc:
            log.warning("cannot send the catch-up marker on %s (%s): waiting for %.0fs without messages instead",
                        self.topic, exc, QUIET)

    def take(self, topic: str, payload: bytes) -> bool:
        """True when the message is a marker (ours or stale): the caller handles nothing else of it."""
        self._last_message = time.monotonic()
        if topic != self.topic:
            return False
        if payload.decode("ascii", "replace") == self.token and not self.live.is_set():
            self._caught_up("the marker came back")
        return True

    def lost(self) -> None:
        """The connection is gone: timers wait, and what happens meanwhile is not heard."""
        if self.token:  # connected before: until the next catch-up, nothing is heard
            self.blind = True
        self.token = ""  # no catch-up can end before the next connect
        self.live.clear()

    async def ready(self) -> None:
        """Return once caught up (by the marker, a quiet spell, or the longest wait)."""
        while not self.live.is_set():
            now = time.monotonic()
            if self.token and now - self._last_message >= QUIET:
                self._caught_up(f"no message for {QUIET:.0f}s")
            elif self.token and now - self._started >= MAX_WAIT:
                log.warning("the catch-up marker did not come back within %.0fs (is %s granted to this account?); "
                            "timers fire from now on", MAX_WAIT, self.topic)
                self._caught_up("the longest wait")
            else:
                # a plain sleep: asyncio.wait_for on Python 3.11 can swallow a cancellation
                await asyncio.sleep(0.05)

    def _caught_up(self, why: str) -> None:
        log.info("caught up with the backlog (%s, %.1fs); timers fire", why, time.monotonic() - self._started)
        self.live.set()

"""The dead man's switch: an HTTP GET to an outside URL on a schedule, while the pipeline is healthy.

Services such as healthchecks.io or Uptime Kuma (push monitors) alert when the pings stop, so a
Vigil that is down entirely (its machine, its power, its network) is noticed elsewhere. The ping
is skipped while the watchdog sees a problem, so a stalled pipeline is noticed there too.
"""

from __future__ import annotations

import asyncio
import logging
import urllib.error
import urllib.request
from typing import Callable
from urllib.parse import urlsplit

from alerting.settings import HeartbeatSettings
from vigil.core.clock import Clock

__all__ = ["Heartbeat"]

log = logging.getLogger(__name__)


class Heartbeat:
    """Pings ``settings.url`` every ``settings.every`` while ``healthy()``; counts what it did."""

    def __init__(self, settings: HeartbeatSettings, healthy: Callable[[], bool], clock: Clock) -> None:
        assert settings.url is not None
        self.url = settings.url
        self.settings = settings
        self.healthy = healthy
        self.clock = clock
        self.sent = self.failed = self.skipped = 0
        self.last_ok: float | None = None
        self._failing = False
        # the path and query of a push URL are its secret: logs show the host only
        self.shown = f"{urlsplit(self.url).scheme}://{urlsplit(self.url).hostname}/..."

    def _get(self) -> int:
        request = urllib.request.Request(self.url, headers={"User-Agent": "vigil-heartbeat"})
        with urllib.request.urlopen(request, timeout=self.settings.timeout) as response:
            response.read(1024)
            return int(response.status)

    async def ping(self) -> bool:
        """One ping now if the pipeline is healthy; True when the URL answered 2xx."""
        if not self.healthy():
            self.skipped += 1
            log.debug("heartbeat skipped: the pipeline is not healthy")
            return False
        try:
            status = await asyncio.to_thread(self._get)
            error = "" if 200 <= status < 300 else f"HTTP {status}"
        except urllib.error.HTTPError as exc:
            error = f"HTTP {exc.code}"
        except (OSError, ValueError) as exc:  # refused, timed out, DNS, TLS
            error = str(getattr(exc, "reason", exc)) or type(exc).__name__
        if error:
            self.failed += 1
            if not self._failing:
                log.warning("heartbeat to %s failed (%s); the service it reaches will report Vigil as down",
                            self.shown, error)
            self._failing = True
            return False
        self.sent += 1
        self.last_ok = self.clock.now()
        if self._failing:
            log.info("heartbeat to %s works again", self.shown)
        self._failing = False
        return True

    async def run(self) -> None:
        """Ping until cancelled (the first after one period: the watchdog needs a moment to see the parts)."""
        while True:
            await self.clock.sleep(self.settings.every)
            await self.ping()

"""Frequent reboots: a device whose ``uptime`` went down ``count`` times within ``within``.

``restarts: {count: 3, within: 1d}`` on the ``uptime`` metric (seconds since the device started, as
Tasmota, Shelly, ESPHome and an edge ``file`` sensor on /proc/uptime report it): a reading whose uptime
is lower than the reading before it is a reboot, at that reading's time. The reboots of the last
``within`` (up to the latest reading) are counted; the alert resolves with the first reading after the
oldest of them left that window. A late reading (older than the latest) is not judged.

Only the reboot times are kept (the alert's scratch state, a few floats), not the window's readings: a
fleet of devices that report every minute costs nothing. They and the latest reading are the learned
state the engine saves with the alert (:meth:`Restarts.export`), so after the rule engine restarts the
reboots before it still count. The value is the number of reboots; the default message says it
(``garage-pi rebooted 4 times in the last 24h``).
"""

from __future__ import annotations

from collections import deque
from typing import Any, Optional

from vigil.core.durations import format_duration

from ._base import Condition, Ctx, finite

__all__ = ["Restarts", "span"]

# More reboots than this within one window are not told apart (the count says "at least").
MAX_KEPT = 1000


def span(seconds: float) -> str:
    """``86400`` -> ``24h`` (whole hours up to 3 days read better so), else ``1w``, ``90m``..."""
    if seconds % 3600 == 0 and seconds <= 3 * 86400:
        return f"{int(seconds // 3600)}h"
    return format_duration(seconds)


class Restarts(Condition):
    """Holds while the series' value (an uptime) went down at least ``count`` times within ``within``."""

    def __init__(self, count: int, within: float) -> None:
        self.count, self.within = count, within

    def reboots(self, ctx: Ctx) -> Optional[deque[float]]:
        """The times of the reboots within the window ending at the latest reading; None before any reading."""
        s, st = ctx.series, ctx.scratch
        if s.ts is None or s.value is None:
            return None
        found: deque[float] = st.setdefault("restarts", deque(maxlen=MAX_KEPT))
        last = st.get("restarts_last")
        if last is None or s.ts > last[0]:
            if last is not None and s.value < last[1]:
                found.append(s.ts)
            st["restarts_last"] = (s.ts, s.value)
        while found and found[0] <= s.ts - self.within:
            found.popleft()
        return found

    state_version = 1

    def export(self, ctx: Ctx) -> Optional[dict[str, Any]]:
        """The latest reading (time, uptime) and the reboot times still within the window."""
        last = ctx.scratch.get("restarts_last")
        if last is None:
            return None
        return {"last": list(last), "reboots": list(ctx.scratch.get("restarts", ()))}

    def restore(self, ctx: Ctx, data: Any) -> None:
        last = (finite(data["last"][0]), finite(data["last"][1]))
        found = deque((finite(t) for t in data["reboots"][-MAX_KEPT:]), maxlen=MAX_KEPT)
        ctx.scratch.update(restarts_last=last, restarts=found)

    def check(self, ctx: Ctx, active: bool) -> Optional[bool]:
        found = self.reboots(ctx)
        return None if found is None else len(found) >= self.count

    def value(self, ctx: Ctx) -> Optional[float]:
        found = self.reboots(ctx)
        return None if found is None else float(len(found))

    def facts(self, ctx: Ctx) -> dict[str, Any]:
        """``reason`` (the default message), ``restarts`` (how many), ``last_restart`` (epoch s, or None)."""
        found = self.reboots(ctx)
        if found is None:
            return {}
        n, device, within = len(found), ctx.series.device, span(self.within)
        if not n:
            reason = f"{device} has not rebooted in the last {within}"
        else:
            reason = f"{device} rebooted {'once' if n == 1 else f'{n} times'} in the last {within}"
            reason += f" (fewer than {self.count})" if n < self.count else ""
        return {"reason": reason, "restarts": n, "last_restart": found[-1] if found else None}

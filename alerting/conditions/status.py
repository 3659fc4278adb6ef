"""The device's own status (``<root>/status/<device>``) says offline."""

from __future__ import annotations

from typing import Optional

from ._base import Condition, Ctx

__all__ = ["SETTLE", "STATUS_METRIC", "STATUS_SENSOR", "Offline", "status_series_id"]

# A device's status is tracked as the series <device>/device/status.
STATUS_SENSOR = "device"
STATUS_METRIC = "status"
#: an offline status counts once it has stood this long while the engine heard its input: Mosquitto
#: sends every client's last will as it stops, just before the engine's own connection drops, and
#: those wills are Vigil's outage, not the devices' (docs/rules.md, "When Vigil itself was away")
SETTLE = 5.0


def status_series_id(device: str) -> str:
    return f"{device}/{STATUS_SENSOR}/{STATUS_METRIC}"


class Offline(Condition):
    """Active while the device's last status message said offline, once that has stood for :data:`SETTLE`.

    The time counts from when the status arrived; after the engine could not hear its input
    (``ctx.resumed``), an alert not already active counts from ``ctx.grace`` (the setting
    ``alerting.device_reconnect_grace``) after input came back: a will the broker sent as it stopped
    is judged by the status the device has once it could reconnect, not by Vigil's own outage.
    """

    def value(self, ctx: Ctx) -> Optional[float]:
        online = ctx.series.online
        return None if online is None else (1.0 if online else 0.0)

    @staticmethod
    def _since(ctx: Ctx, active: bool) -> Optional[float]:
        seen = ctx.series.last_seen
        if seen is not None and ctx.resumed is not None and not active:
            seen = max(seen, ctx.resumed + ctx.grace)
        return seen

    def check(self, ctx: Ctx, active: bool) -> Optional[bool]:
        online = ctx.series.online
        if online is None:
            return None
        if online:
            return False
        since = self._since(ctx, active)
        return active or since is None or ctx.at - since >= SETTLE

    def began(self, ctx: Ctx) -> Optional[float]:
        return self._since(ctx, False) if ctx.series.online is False else None

    def next_change(self, ctx: Ctx) -> Optional[float]:
        if ctx.series.online is not False:
            return None
        since = self._since(ctx, False)
        if since is None:
            return None
        due = since + SETTLE
        return due if due > ctx.at else None

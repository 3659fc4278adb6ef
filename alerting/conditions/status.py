"""The device's own status (``<root>/status/<device>``) says offline."""

from __future__ import annotations

from typing import Optional

from ._base import Condition, Ctx

__all__ = ["STATUS_METRIC", "STATUS_SENSOR", "Offline", "status_series_id"]

# A device's status is tracked as the series <device>/device/status.
STATUS_SENSOR = "device"
STATUS_METRIC = "status"


def status_series_id(device: str) -> str:
    return f"{device}/{STATUS_SENSOR}/{STATUS_METRIC}"


class Offline(Condition):
    """Active while the device's last status message said offline."""

    def value(self, ctx: Ctx) -> Optional[float]:
        online = ctx.series.online
        return None if online is None else (1.0 if online else 0.0)

    def check(self, ctx: Ctx, active: bool) -> Optional[bool]:
        online = ctx.series.online
        return None if online is None else not online

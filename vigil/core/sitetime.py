"""The site's time zone and the one way times and values are written for people (dashboard, notifications, logs)."""

from __future__ import annotations

import datetime as dt
import math
import os
import time
import zoneinfo
from collections.abc import Mapping
from pathlib import Path
from typing import Optional

__all__ = ["check_zone", "format_time", "format_value", "precision_of", "server_zone_name", "site_zone"]


def check_zone(name: str) -> str:
    """``name`` if it is an IANA time zone this machine knows; ValueError that says what to write otherwise."""
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown IANA time zone {name!r}; write e.g. Europe/Berlin or UTC") from exc
    return name


def server_zone_name() -> str:
    """The IANA name of this machine's time zone (TZ, /etc/timezone, /etc/localtime); ``UTC`` when unknown."""
    candidates = [os.environ.get("TZ", "").lstrip(":")]
    try:
        candidates.append(Path("/etc/timezone").read_text("utf-8").strip())
    except OSError:
        pass
    try:
        target = str(Path("/etc/localtime").resolve())
        if "zoneinfo/" in target:
            candidates.append(target.split("zoneinfo/", 1)[1])
    except OSError:
        pass
    for name in candidates:
        if name and not name.startswith("/"):
            try:
                return check_zone(name)
            except ValueError:
                continue
    return "UTC"


# The server's zone as last found: (until when, TZ then, the zone). Finding it reads two files (165 µs, once per
# message the dispatcher renders); a change of the machine's zone is seen within SERVER_ZONE_TTL, of TZ at once.
_server: Optional[tuple[float, str, zoneinfo.ZoneInfo]] = None
SERVER_ZONE_TTL = 10.0


def site_zone(name: Optional[str] = None) -> zoneinfo.ZoneInfo:
    """The zone ``name`` (the ``dashboard.timezone`` setting), or the server's when it is not set."""
    global _server
    if name:
        return zoneinfo.ZoneInfo(name)
    now, tz = time.monotonic(), os.environ.get("TZ", "")
    if _server is None or _server[0] <= now or _server[1] != tz:
        _server = (now + SERVER_ZONE_TTL, tz, zoneinfo.ZoneInfo(server_zone_name()))
    return _server[2]


def format_time(ts: float, zone: Optional[dt.tzinfo] = None) -> str:
    """``2026-12-02 21:39:04 CET``: epoch seconds in ``zone`` (default: the server's), the zone named."""
    try:
        when = dt.datetime.fromtimestamp(float(ts), zone or site_zone())
    except (TypeError, ValueError, OverflowError, OSError):
        return str(ts)
    return when.strftime("%Y-%m-%d %H:%M:%S %Z")


def format_value(value: float, digits: int = 1) -> str:
    """``-11.913`` -> ``-11.9``: a reading rounded to ``digits`` decimals (whole numbers stay whole)."""
    if not math.isfinite(value):
        return str(value)
    if float(value).is_integer():
        return str(int(value))
    text = f"{value:.{max(0, digits)}f}"
    return text.lstrip("-") if float(text) == 0 else text


def precision_of(labels: Mapping[str, str]) -> int:
    """Decimals a reading is shown with: the series' ``precision`` label (0 to 6), else one."""
    text = str(labels.get("precision", ""))
    return int(text) if text.isdigit() and int(text) <= 6 else 1

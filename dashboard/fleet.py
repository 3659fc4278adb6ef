"""The fleet: every device's health (battery, signal, uptime and reboots, last seen) and the devices at
risk, each with its reasons in words ("battery 12 % and falling").

It reads the metrics the formats give every device the same names (docs/devices.md): ``battery`` %,
``rssi`` dBm, ``linkquality`` lqi, ``uptime`` s. The newest values come from one ``latest()`` of the
store (and the bus); history only where it is needed, bucketed by the store: a battery's trend from
its 6-hour means over ``fleet.battery_days`` (a robust slope, the median of the slopes between pairs
of buckets, so one odd reading does not make a trend), and reboots from the hourly minimum and maximum
of ``uptime`` over the last day (a bucket whose minimum is below the maximum of the bucket before holds
a reboot: several reboots within one hour count once; an uptime over a day needs no query). The
answer is kept ``fleet.cache`` seconds, and each series' trend or reboot count 5 to 15 minutes (spread
by name, so a large fleet's queries are spread over the computations): a first computation at 1,000
devices makes about a thousand small queries, the next ones a twentieth of that
(bench/dashboard/fleet.py measures it).
"""

from __future__ import annotations

import asyncio
import math
import zlib
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from vigil.core.event import SeriesKey
from vigil.core.stores import Store

from .api import latest_rows
from .context import Context, Reader, ctx_of
from .limits import SafeJSONResponse as JSONResponse
from .settings import FleetSettings

__all__ = ["HEALTH_METRICS", "FleetCache", "battery_trend", "fleet_view", "reboots_in", "router"]

router = APIRouter(prefix="/api/v1")

HEALTH_METRICS = ("battery", "voltage", "rssi", "wifi_quality", "linkquality", "uptime")
_TREND_BUCKET = 6 * 3600.0
_REBOOT_BUCKET = 3600.0
_DAY = 86400.0
# A series' trend or reboot count is read again after 5 to 15 minutes (spread by name); the latest values
# (battery level, signal, silence, status) are fresh on every computation.
HISTORY_TTL = 600.0
# The kinds of risk, in the order the summary counts them.
KINDS = ("low battery", "falling battery", "weak signal", "rebooting", "offline", "stale")


def battery_trend(points: list[tuple[float, float]]) -> Optional[float]:
    """Percent per day: the median of the slopes between every pair of (bucket time, mean); None with fewer
    than 4 buckets or less than 2 days between the first and the last."""
    if len(points) < 4 or points[-1][0] - points[0][0] < 2 * _DAY:
        return None
    arr = np.asarray(points, dtype=float)
    i, j = np.triu_indices(len(arr), k=1)
    slopes = (arr[j, 1] - arr[i, 1]) / (arr[j, 0] - arr[i, 0])
    return float(np.median(slopes)) * _DAY


def reboots_in(lows: list[tuple[float, float]], highs: list[tuple[float, float]]) -> int:
    """Buckets whose lowest uptime is below the highest of the bucket before (the one before that held
    readings): each held at least one reboot."""
    high_at = dict(highs)
    count, before = 0, None
    for ts, low in lows:
        if before is not None and low < before:
            count += 1
        before = high_at.get(ts, low)
    return count


@dataclass
class FleetCache:
    """The last answer and when it was computed (one per app, on ``app.state.fleet``), and each series'
    history figure (a trend, a reboot count) with when it expires."""

    at: float = -math.inf
    body: Optional[dict[str, Any]] = None
    lock: Optional[asyncio.Lock] = None
    history: dict[str, tuple[float, Any]] = field(default_factory=dict)


def _expiry(sid: str, now: float) -> float:
    """When a series' history figure is read again: 5 to 15 minutes on, spread by its name, so the
    queries of a large fleet are spread over the requests instead of all due at once."""
    return now + HISTORY_TTL * (0.5 + (zlib.crc32(sid.encode()) % 1000) / 1000)


def _history(store: Store, f: FleetSettings, now: float, tick: float, battery: list[SeriesKey],
             uptime: list[tuple[SeriesKey, float]], kept: dict[str, tuple[float, Any]]
             ) -> tuple[dict[str, Optional[float]], dict[str, int]]:
    """Battery trends (%/day) and reboots in the last day, by series id: bucketed queries one after
    another, for the series whose figure in ``kept`` expired. An uptime over a day means no reboot in it:
    no query. ``tick``: the clock's monotonic time, which the expiries count on."""

    def fresh(sid: str) -> bool:
        entry = kept.get(sid)
        return entry is not None and entry[0] > tick

    start = math.floor((now - f.battery_days) / _TREND_BUCKET) * _TREND_BUCKET
    for key in battery:
        if not fresh(key.id):
            pts = [(p.ts, p.value) for p in store.query(key, start, now, _TREND_BUCKET, "mean")
                   if math.isfinite(p.value)]
            kept[key.id] = (_expiry(key.id, tick), battery_trend(pts))
    d0 = math.floor((now - _DAY) / _REBOOT_BUCKET) * _REBOOT_BUCKET
    for key, up in uptime:
        if up >= now - d0:
            kept[key.id] = (_expiry(key.id, tick), 0)
        elif not fresh(key.id):
            lows = [(p.ts, p.value) for p in store.query(key, d0, now, _REBOOT_BUCKET, "min")]
            highs = [(p.ts, p.value) for p in store.query(key, d0, now, _REBOOT_BUCKET, "max")]
            kept[key.id] = (_expiry(key.id, tick), reboots_in(lows, highs))
    wanted = {k.id for k in battery} | {k.id for k, _ in uptime}
    for sid in [sid for sid in kept if sid not in wanted]:
        del kept[sid]
    return {k.id: kept[k.id][1] for k in battery}, {k.id: kept[k.id][1] for k, _ in uptime}


def _ago(seconds: float) -> str:
    for size, unit in ((_DAY, "d"), (3600.0, "h"), (60.0, "min")):
        if seconds >= size:
            return f"{seconds / size:.0f} {unit}"
    return f"{max(seconds, 0):.0f} s"


def _worst(values: list[float], low: bool = True) -> Optional[float]:
    return (min(values) if low else max(values)) if values else None


def _assess(d: dict[str, Any], f: FleetSettings, now: float) -> None:
    """Fill ``reasons`` (sentences) and ``kinds`` of one device."""
    reasons, kinds = [], []
    battery, trend = d["battery"], d["battery_trend"]
    falling = trend is not None and trend <= -f.battery_fall_per_day
    if battery is not None and battery < f.battery_low:
        reasons.append(f"battery {battery:.0f} %" + (f" and falling ({trend:+.1f} %/day)" if falling else ""))
        kinds.append("low battery")
    elif battery is not None and falling and trend is not None and battery / -trend <= f.battery_days_left:
        reasons.append(f"battery {battery:.0f} % and falling {trend:+.1f} %/day: empty in about "
                       f"{battery / -trend:.0f} days")
        kinds.append("falling battery")
    if d["rssi"] is not None and d["rssi"] < f.rssi_weak:
        reasons.append(f"weak signal ({d['rssi']:.0f} dBm)")
        kinds.append("weak signal")
    elif d["linkquality"] is not None and d["linkquality"] < f.linkquality_weak:
        reasons.append(f"weak link (linkquality {d['linkquality']:.0f})")
        kinds.append("weak signal")
    if d["reboots"] is not None and d["reboots"] >= f.reboots:
        reasons.append(f"rebooted {d['reboots']} times in the last 24h")
        kinds.append("rebooting")
    if d["state"] == "offline":
        reasons.append("offline (its status says so)")
        kinds.append("offline")
    elif d["last_seen"] and now - d["last_seen"] > f.stale_after:
        reasons.append(f"silent for {_ago(now - d['last_seen'])}")
        kinds.append("stale")
    d["reasons"], d["kinds"] = reasons, kinds


async def fleet_view(request: Request) -> dict[str, Any]:
    """Every device's health and the devices at risk (kept ``fleet.cache`` seconds)."""
    ctx = ctx_of(request)
    f = ctx.settings.fleet
    cache: Optional[FleetCache] = getattr(request.app.state, "fleet", None)
    if cache is None:
        cache = request.app.state.fleet = FleetCache(lock=asyncio.Lock())
    assert cache.lock is not None
    async with cache.lock:  # one computation at a time; the others wait for its answer
        if cache.body is not None and ctx.clock.monotonic() - cache.at < f.cache:
            return cache.body
        # without a cache (``cache: 0``) every computation reads the history too
        body = await _compute(ctx, f, cache.history if f.cache > 0 else {})
        cache.at, cache.body = ctx.clock.monotonic(), body
        return body


async def _compute(ctx: Context, f: FleetSettings, kept: dict[str, tuple[float, Any]]) -> dict[str, Any]:
    now = ctx.clock.now()
    devices: dict[str, dict[str, Any]] = {}
    seen: dict[str, list[tuple[str, float]]] = {}

    def device(name: str) -> dict[str, Any]:
        return devices.setdefault(name, {
            "device": name, "state": "unknown", "last_seen": None, "battery": None, "battery_trend": None,
            "voltage": None, "rssi": None, "linkquality": None, "uptime": None, "reboots": None, "series": 0})

    for row in await latest_rows(ctx):
        d = device(row["device"])
        d["series"] += 1
        d["last_seen"] = max(d["last_seen"] or 0.0, row["ts"])
        if row["metric"] in HEALTH_METRICS and isinstance(row["value"], (int, float)) and math.isfinite(row["value"]):
            seen.setdefault(row["device"], []).append((row["metric"], float(row["value"])))
            if row["metric"] in ("battery", "uptime"):
                key = SeriesKey(row["metric"], row["device"], row["sensor"])
                d.setdefault("_keys", []).append((key, float(row["value"])))
    for name, values in seen.items():
        d = devices[name]
        by: dict[str, list[float]] = {}
        for metric, value in values:
            by.setdefault(metric, []).append(value)
        d["battery"], d["voltage"] = _worst(by.get("battery", [])), _worst(by.get("voltage", []))
        d["rssi"], d["linkquality"] = _worst(by.get("rssi", [])), _worst(by.get("linkquality", []))
        d["uptime"] = _worst(by.get("uptime", []))
    for name, status in ctx.live.devices.items():
        d = device(name)
        d["state"] = status.get("state", "unknown")
        up = (status.get("details") or {}).get("uptime")  # an edge agent's status says it
        if d["uptime"] is None and isinstance(up, (int, float)) and not isinstance(up, bool) and 0 <= up < 1e12:
            d["uptime"] = float(up)
    keyed = [k for d in devices.values() for k in d.pop("_keys", [])]
    keys = [k for k, _ in keyed]
    trends, reboots = await asyncio.to_thread(
        _history, ctx.store, f, now, ctx.clock.monotonic(), [k for k in keys if k.metric == "battery"],
        [(k, v) for k, v in keyed if k.metric == "uptime"], kept)
    for key in keys:
        d = devices[key.device]
        if key.metric == "battery" and trends.get(key.id) is not None:
            t = trends[key.id]
            d["battery_trend"] = t if d["battery_trend"] is None else min(d["battery_trend"], t)
        elif key.metric == "uptime":
            d["reboots"] = max(d["reboots"] or 0, reboots.get(key.id, 0))
    for d in devices.values():
        _assess(d, f, now)
    rows = sorted(devices.values(), key=lambda d: (not d["reasons"], d["device"]))
    at_risk = [d for d in rows if d["reasons"]]
    counts = {k: sum(k in d["kinds"] for d in at_risk) for k in KINDS}
    summary = f"{len(at_risk)} of {len(rows)} devices at risk"
    parts = [f"{n} {k}" for k, n in counts.items() if n]
    return {"at": now, "summary": summary + (": " + ", ".join(parts) if parts else ""),
            "total": len(rows), "at_risk": len(at_risk), "counts": counts, "devices": rows,
            "thresholds": f.model_dump()}


@router.get("/fleet", tags=["readings"])
async def fleet(request: Request, _: Reader,
                risk: bool = Query(False, description="only the devices at risk"),
                device: Optional[str] = Query(None, max_length=128, description="only devices whose name holds this"),
                limit: int = Query(1000, ge=1, le=100_000)) -> Response:
    """Every device's battery, signal, uptime and reboots and last reading, and the devices at risk with
    their reasons (``low battery``, ``falling battery``, ``weak signal``, ``rebooting``, ``offline``, ``stale``)."""
    body = await fleet_view(request)
    rows = [d for d in body["devices"] if (not risk or d["reasons"]) and (device is None or device in d["device"])]
    return JSONResponse({**body, "devices": rows[:limit], "shown": min(len(rows), limit)})

"""The read side of ``/api/v1``: latest values, history, devices, alerts, silences, health, metrics."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from typing import Any, Optional

from fastapi import APIRouter, Query, Request
from fastapi.responses import PlainTextResponse, Response, StreamingResponse

from vigil.core import metrics as vigil_metrics
from vigil.core.durations import parse_duration
from vigil.core.errors import BadRequest
from vigil.core.event import Event, SeriesKey
from vigil.core.reading import parse_ts
from vigil.core.stores import AGGREGATES, Point, StoreError, check_query
from vigil.core.topics import TopicError, validate_segment

from .context import Context, Reader, ctx_of
from .limits import SafeJSONResponse as JSONResponse
from .live import ACTIVE, sse
from .openapi_schema import NAME_RULE, RFC3339, TOPIC_LEVEL

__all__ = ["choose_bucket", "router"]

router = APIRouter(prefix="/api/v1")

# Times a query may name: from the epoch to the end of year 9999 (stores and datetime stop there).
_LATEST_TS = 253_402_300_799.0
_MAX_BUCKET = 366 * 86400.0
# What the OpenAPI document states of the query (the checks below, and their messages, stay the code's own):
# epoch seconds of at most 11 digits (before the year 9999) or RFC 3339 (a day that exists in its month).
_TIME = rf"^\d{{1,11}}(\.\d{{1,9}})?$|{RFC3339}"
_DURATION = r"^([1-9]\d{0,5}(ms|s|m|h|d|w)){1,4}$"
_NICE = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 604800)


def choose_bucket(span: float, points: int) -> float:
    """The smallest round bucket that draws ``span`` seconds in at most ``points`` points."""
    want = span / max(1, points)
    return float(next((b for b in _NICE if b >= want), math.ceil(want / 86400) * 86400))


def _event_row(ctx: Context, e: Event) -> dict[str, Any]:
    d = e.to_dict()
    d["series"] = e.series.id
    d["state"] = ctx.live.series_state(e.series.id)
    return d


async def latest_rows(ctx: Context, metric: Optional[str] = None,
                      device: Optional[str] = None) -> list[dict[str, Any]]:
    """The newest value of every series: the store's, replaced by a newer one seen on the bus."""
    stored = await asyncio.to_thread(ctx.store.latest, metric, device)
    rows = {e.series.id: _event_row(ctx, e) for e in stored}
    for sid, live in ctx.live.latest.items():
        if (metric and live["metric"] != metric) or (device and live["device"] != device):
            continue
        if sid not in rows or rows[sid]["ts"] <= live["ts"]:
            rows[sid] = {**live, "state": ctx.live.series_state(sid)}
    return sorted(rows.values(), key=lambda r: (r["device"], r["sensor"], r["metric"]))


@router.get("/health", tags=["status"])
async def health(request: Request) -> JSONResponse:
    """Whether the dashboard reaches the broker and the store (no authentication)."""
    ctx = ctx_of(request)
    store_ok = True
    try:
        await asyncio.to_thread(ctx.store.ping)
    except StoreError:
        store_ok = False
    ok = store_ok and ctx.live.connected
    body = {"status": "ok" if ok else "degraded", "broker": ctx.live.connected, "store": store_ok}
    return JSONResponse(body, status_code=200 if ok else 503)


@router.get("/openapi.json", tags=["status"])
async def openapi(request: Request, _: Reader) -> JSONResponse:
    """This API's OpenAPI document."""
    return JSONResponse(request.app.openapi())


@router.get("/metrics", tags=["status"], response_class=PlainTextResponse)
@router.head("/metrics", include_in_schema=False)
async def metrics(request: Request, _: Reader) -> Response:
    """Prometheus metrics of this process: the dashboard's (``vigil_dashboard_*``), the process's, and under
    ``vigil up`` the bridge's and the rule engine's."""
    body, content_type = await asyncio.to_thread(vigil_metrics.exposition)  # a scrape is not the loop's work
    if request.method == "HEAD":
        return Response(b"", media_type=content_type, headers={"Content-Length": str(len(body))})
    return Response(body, media_type=content_type)


@router.get("/latest", tags=["readings"])
async def latest(request: Request, _: Reader, metric: Optional[str] = None,
                 device: Optional[str] = None) -> list[dict[str, Any]]:
    """The newest reading of every series, with its alert state."""
    return await latest_rows(ctx_of(request), metric, device)


@router.get("/devices", tags=["readings"])
async def devices(request: Request, _: Reader) -> list[dict[str, Any]]:
    """Every device: online/offline from its status topic, its sensors, its site and room."""
    ctx = ctx_of(request)
    out: dict[str, dict[str, Any]] = {}
    for row in await latest_rows(ctx):
        d = out.setdefault(row["device"], {"device": row["device"], "state": "unknown", "sensors": [],
                                           "last_seen": 0.0, "labels": {}})
        d["sensors"].append(row["series"])
        d["last_seen"] = max(d["last_seen"], row["ts"])
        d["labels"].update(row.get("labels") or {})
    for name, status in ctx.live.devices.items():
        d = out.setdefault(name, {"device": name, "sensors": [], "last_seen": 0.0, "labels": {}})
        d["state"] = status["state"]
        d["status"] = status
    return sorted(out.values(), key=lambda d: d["device"])


def _time_range(now: float, range_: Optional[str], start: Optional[str], end: Optional[str]) -> tuple[float, float]:
    def ts(text: str, what: str) -> float:
        try:
            value = parse_ts(float(text)) if text.replace(".", "", 1).isdigit() else parse_ts(text)
        except ValueError as exc:
            raise BadRequest(f"{what}: {exc}") from None
        if not value <= _LATEST_TS:
            raise BadRequest(f"{what}: {text[:40]!r} is after the year 9999")
        return value

    t1 = ts(end, "end") if end else now
    if start:
        t0 = ts(start, "start")
    else:
        try:
            t0 = t1 - parse_duration(range_ or "24h")
        except ValueError as exc:
            raise BadRequest(f"range: {exc}") from None
    if not t1 > t0:
        raise BadRequest("end must be after start")
    return max(t0, 0.0), t1


def _finite_points(points: list[Point]) -> list[list[float]]:
    # A store written by an older bridge may hold Infinity; such a point cannot be drawn or sent as JSON.
    return [[p.ts, p.value] for p in points if math.isfinite(p.value)]


@router.get("/history", tags=["readings"])
async def history(
    request: Request,
    _: Reader,
    device: str = Query(description=f"a topic level: {NAME_RULE}", json_schema_extra=TOPIC_LEVEL),
    sensor: str = Query(description=f"a topic level: {NAME_RULE}", json_schema_extra=TOPIC_LEVEL),
    metric: str = Query("temperature", description=f"a topic level: {NAME_RULE}", json_schema_extra=TOPIC_LEVEL),
    range: Optional[str] = Query(None, description="e.g. 1h, 24h, 7d, 30d (default 24h); above 0",
                                 json_schema_extra={"pattern": _DURATION}),
    start: Optional[str] = Query(None, description="epoch seconds or RFC 3339, before `end`",
                                 json_schema_extra={"pattern": _TIME}),
    end: Optional[str] = Query(None, description="epoch seconds or RFC 3339 (default now), after `start`",
                               json_schema_extra={"pattern": _TIME}),
    bucket: Optional[float] = Query(None, description="seconds; default: fits `points`; at most 1,000,000 buckets "
                                    "in the range", json_schema_extra={"exclusiveMinimum": 0, "maximum": _MAX_BUCKET}),
    points: int = Query(800, ge=10, le=10_000),
    aggregate: str = Query("mean", json_schema_extra={"enum": list(AGGREGATES)}),
) -> JSONResponse:
    """One series over a time range, downsampled by the store into time buckets, with min/max and alerts."""
    ctx = ctx_of(request)
    try:
        for value, what in ((device, "device"), (sensor, "sensor"), (metric, "metric")):
            validate_segment(value, what)
    except TopicError as exc:
        raise BadRequest(str(exc)) from None
    t0, t1 = _time_range(ctx.clock.now(), range, start, end)
    if bucket is not None and not (math.isfinite(bucket) and 0 < bucket <= _MAX_BUCKET):
        raise BadRequest(f"bucket: expected a number of seconds above 0 and at most {_MAX_BUCKET:.0f}, got {bucket}")
    b = bucket or choose_bucket(t1 - t0, points)
    key = SeriesKey(metric, device, sensor)

    def run(agg: str) -> list[Point]:
        return ctx.store.query(key, t0, t1, b, agg)  # type: ignore[arg-type]

    try:
        check_query(t0, t1, b, aggregate)
    except ValueError as exc:
        raise BadRequest(str(exc)) from None

    def run_all() -> list[list[Point]]:
        # One thread, one after another: the stores serialize reads anyway, and four threads
        # fighting over the GIL were slower than this.
        return [run(a) for a in (aggregate, "min", "max", "count")]

    main, lo, hi, count = await asyncio.to_thread(run_all)
    main = [p for p in main if math.isfinite(p.value)]
    counts = {p.ts: p.value for p in count}
    n = int(sum(counts.get(p.ts, 0) for p in main)) if aggregate == "mean" else int(sum(counts.values()))
    mean_total = None
    if n and aggregate == "mean":
        mean_total = sum(p.value * counts.get(p.ts, 0) for p in main) / n
    sid = key.id
    alerts = [a for a in [*ctx.live.history, *ctx.live.alerts.values()]
              if a["series"] == sid and t0 <= a["at"] <= t1]
    # A thousand points through FastAPI's generic encoder cost more than the store's query: dump directly.
    return JSONResponse({
        "series": sid, "device": device, "sensor": sensor, "metric": metric,
        "start": t0, "end": t1, "bucket": b, "aggregate": aggregate,
        "points": _finite_points(main),
        "min": _finite_points(lo),
        "max": _finite_points(hi),
        "stats": {"count": n, "min": min((p.value for p in lo if math.isfinite(p.value)), default=None),
                  "max": max((p.value for p in hi if math.isfinite(p.value)), default=None), "mean": mean_total},
        "alerts": sorted({(a["at"], a["state"], a["rule"]): {"at": a["at"], "state": a["state"], "rule": a["rule"]}
                          for a in alerts}.values(), key=lambda a: a["at"]),
    })


@router.get("/sparklines", tags=["readings"])
async def sparklines(request: Request, _: Reader, hours: float = Query(6, gt=0, le=168),
                     points: int = Query(60, ge=2, le=500)) -> JSONResponse:
    """A few dozen points of every series over the last hours, for the overview's tiles."""
    ctx = ctx_of(request)
    t1 = ctx.clock.now()
    t0 = t1 - hours * 3600
    b = choose_bucket(t1 - t0, points)
    rows = await latest_rows(ctx)

    def run() -> dict[str, list[list[float]]]:
        out = {}
        for r in rows:
            pts = ctx.store.query(SeriesKey(r["metric"], r["device"], r["sensor"]), t0, t1, b, "mean")
            out[r["series"]] = [[p.ts, round(p.value, 4)] for p in pts if math.isfinite(p.value)]
        return out

    return JSONResponse(await asyncio.to_thread(run))


@router.get("/alerts", tags=["alerts"])
async def alerts(request: Request, _: Reader, state: Optional[str] = None, rule: Optional[str] = None,
                 series: Optional[str] = None, severity: Optional[str] = None,
                 limit: int = Query(200, ge=1, le=10_000)) -> dict[str, Any]:
    """Alerts now (pending, firing, and cleared but not acknowledged) and the history of their changes, newest first.

    A latched alert whose condition cleared stays under ``current`` as ``cleared`` (``condition``: "cleared, not
    acknowledged") with its ``peak``, ``ended`` and ``duration`` until someone acknowledges it."""
    ctx = ctx_of(request)

    def keep(a: dict[str, Any]) -> bool:
        return ((state is None or a["state"] == state) and (rule is None or a["rule"] == rule)
                and (series is None or series in a["series"]) and (severity is None or a["severity"] == severity))

    def worded(a: dict[str, Any]) -> dict[str, Any]:
        waiting = a["state"] == "cleared" and not a.get("acknowledged_by")
        return {**a, "condition": "cleared, not acknowledged"} if waiting else a

    current = [worded(a) for a in ctx.live.alerts.values() if a["state"] in ACTIVE and keep(a)]
    order = {"firing": 0, "flapping": 1, "cleared": 2, "pending": 3}
    current.sort(key=lambda a: (order.get(a["state"], 3), -a["since"]))
    journal = ctx.live.journal
    if journal is not None:
        hist = await asyncio.to_thread(journal.query, state, rule, series, severity, limit)
    else:
        hist = [a for a in ctx.live.history if keep(a)][:limit]
    return {"current": current, "history": hist}


@router.get("/silences", tags=["alerts"])
async def silences(request: Request, _: Reader) -> list[dict[str, Any]]:
    """Silences as retained on the bus, soonest to expire first."""
    return sorted(ctx_of(request).live.silences.values(), key=lambda s: s["until"] or 0)


@router.get("/live", tags=["readings"])
async def live(request: Request, _: Reader) -> StreamingResponse:
    """Server-sent events: a snapshot, then the changed latest values once per tick (``events``, a list),
    and every other change (status, alert, silence, broker) at once."""
    ctx = ctx_of(request)
    sub = ctx.live.subscribe()

    async def stream() -> AsyncIterator[bytes]:
        try:
            yield sse("snapshot", ctx.live.snapshot())
            while True:
                if sub.overflowed:
                    yield b"event: resync\ndata: {}\n\n"
                    return
                try:
                    # asyncio.timeout, not wait_for: Python 3.11's wait_for drops a cancel (the browser gone) that
                    # comes with an item (vigil/core/mqtt.py says more)
                    async with asyncio.timeout(15):
                        item = await sub.queue.get()
                except TimeoutError:
                    yield b": keep-alive\n\n"
                    continue
                if item is None:
                    return
                # The same bytes every browser gets, encoded once; whatever else is queued goes in the same write.
                batch = [item]
                while not sub.queue.empty():
                    more = sub.queue.get_nowait()
                    if more is None:
                        return
                    batch.append(more)
                yield b"".join(batch)
        finally:
            ctx.live.unsubscribe(sub)

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

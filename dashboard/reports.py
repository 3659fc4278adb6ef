"""The Reports page: a temperature log of chosen series over a day, week or month, as PDF or CSV.

``GET /reports`` is the page; ``POST /api/v1/reports`` makes the file through the ``Reports`` port (the rule
engine's report, which seals it in its ledger) and answers it as a download. Periods are the site's
calendar: a day from midnight to midnight, a week from Monday, a month from its first day.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from vigil.core.durations import parse_duration
from vigil.core.errors import BadRequest
from vigil.core.sitetime import site_zone

from .api import latest_rows
from .context import ApiError, Reader, ctx_of
from .pages import page
from .ports import ReportRefused

__all__ = ["ReportBody", "install", "period_bounds", "router"]

router = APIRouter()
MAX_UNITS = 100
_INTERVALS = (60.0, 86400.0)


class ReportBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    units: list[str] = Field(min_length=1, max_length=MAX_UNITS)
    period: Literal["day", "week", "month"] = "day"
    date: str = Field(max_length=10, description="a day of the period: YYYY-MM-DD, in the site's calendar")
    interval: str = Field("4h", max_length=16, description="one row every: e.g. 15m, 1h, 4h")
    format: Literal["pdf", "csv"] = "pdf"
    title: str = Field("", max_length=200)


def period_bounds(period: str, day: dt.date, zone: dt.tzinfo) -> tuple[float, float]:
    """The epoch seconds where the site's day, week (Monday first) or month holding ``day`` begins and ends."""
    if period == "day":
        first, last = day, day + dt.timedelta(days=1)
    elif period == "week":
        first = day - dt.timedelta(days=day.weekday())
        last = first + dt.timedelta(days=7)
    else:
        first = day.replace(day=1)
        last = (first + dt.timedelta(days=32)).replace(day=1)

    def midnight(d: dt.date) -> float:
        return dt.datetime(d.year, d.month, d.day, tzinfo=zone).timestamp()

    return midnight(first), midnight(last)


def install(app: Any) -> None:
    """Serve the page and the API on ``app``; reports are made one at a time."""
    app.state.report_lock = asyncio.Lock()
    app.include_router(router)


@router.get("/reports", include_in_schema=False)
async def reports_page(request: Request) -> Response:
    return page(request, "reports", "Reports", available=ctx_of(request).reports is not None)


@router.post("/api/v1/reports", tags=["reports"], response_class=Response,
             responses={200: {"content": {"application/pdf": {}, "text/csv": {}}}})
async def make_report(request: Request, _: Reader, body: ReportBody) -> Response:
    """The report of ``units`` over the ``period`` holding ``date``, one row per ``interval``, as a download."""
    ctx = ctx_of(request)
    if ctx.reports is None:
        raise ApiError(503, "reports are not available in this dashboard: it runs without the rule engine's "
                            "report module")
    try:
        day = dt.date.fromisoformat(body.date)
    except ValueError:
        raise BadRequest(f"date: expected YYYY-MM-DD, got {body.date[:20]!r}") from None
    if not dt.date(1970, 1, 1) <= day <= dt.date(9998, 12, 31):
        raise BadRequest(f"date: {day.isoformat()} is out of range; a day from 1970 on")
    try:
        interval = parse_duration(body.interval)
    except ValueError as exc:
        raise BadRequest(f"interval: {exc}") from None
    if not _INTERVALS[0] <= interval <= _INTERVALS[1]:
        raise BadRequest("interval: between 1m and 1d")
    zone = site_zone(ctx.settings.zone_name)
    start, end = period_bounds(body.period, day, zone)
    if start > ctx.clock.now():
        raise BadRequest(f"the {body.period} of {day.isoformat()} has not begun yet")
    known = {r["series"] for r in await latest_rows(ctx)}
    unknown = [u for u in dict.fromkeys(body.units) if u not in known]
    if unknown:
        raise ApiError(422, f"no stored series {unknown[0][:200]!r}; choose among the series the store holds",
                       [{"where": "units", "error": f"unknown series {u[:200]!r}"} for u in unknown[:20]])
    lock: asyncio.Lock = request.app.state.report_lock
    async with lock:  # one report at a time: a month of many series takes seconds of a core
        try:
            made = await asyncio.to_thread(ctx.reports.make, ctx.store, list(dict.fromkeys(body.units)), start, end,
                                           interval, zone, body.format, body.title)
        except ReportRefused as exc:
            raise ApiError(422, str(exc)) from None
    ctx.counters["reports"] += 1
    return Response(made.data, media_type=made.media_type, headers={
        "Content-Disposition": f'attachment; filename="{made.name}"', "Cache-Control": "no-store"})

"""Calibration per series from the dashboard: read the history, set or clear a correction.

A change is published retained on ``<root>/calibration/<device>/<sensor>/<metric>`` with who (the
logged-in admin), when and a note; the bridge takes it, journals it and applies it to the next
readings (broker_bridge/calibration.py). The history shown here is the bridge's journal
(``<data_dir>/bridge-calibration.jsonl``): the dashboard reads it when it shares the bridge's data
directory (``vigil up``, or one vigil.yaml on one machine); elsewhere ``vigil calibration history``
on the bridge's machine shows it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Optional

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from vigil.core.calibration import (
    JOURNAL_NAME,
    CalibrationError,
    CalibrationJournal,
    Change,
    parse_correction,
    parse_series,
)
from vigil.core.errors import BadRequest

from .context import Admin, Reader, ctx_of

__all__ = ["install", "router"]

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/v1", tags=["calibration"])


class CalibrationBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    offset: Optional[float] = Field(None, description="Added to the raw value, in the metric's stored unit.")
    points: Optional[list[list[float]]] = Field(None, max_length=2,
                                                description="[[raw1, reference1], [raw2, reference2]]")
    note: str = Field("", max_length=500, description="What was done: reference thermometer, bath, certificate...")


class ClearBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    note: str = Field("", max_length=500)


def install(app: Any, data_dir: Path) -> None:
    """Serve the routes on ``app``, reading the journal in ``data_dir``."""
    app.state.calibration_journal = CalibrationJournal(Path(data_dir) / JOURNAL_NAME)
    app.include_router(router)


def _journal(request: Request) -> CalibrationJournal:
    journal: CalibrationJournal = request.app.state.calibration_journal
    return journal


def _series(device: str, sensor: str, metric: str) -> str:
    series = f"{device}/{sensor}/{metric}"
    try:
        parse_series(series)
    except CalibrationError as exc:
        raise BadRequest(str(exc)) from None
    return series


@router.get("/calibration")
async def calibration(request: Request, who: Reader, series: Optional[str] = Query(None, max_length=400),
                      at: Optional[float] = Query(None, description="the calibration in force at this time (epoch s)")
                      ) -> dict[str, Any]:
    """The calibrations in force (by series) and, for ``series``, its history (oldest first) and the change
    in force at ``at``."""
    if series is not None:
        try:
            parse_series(series)
        except CalibrationError as exc:
            raise BadRequest(str(exc)) from None
    journal = _journal(request)
    changes = journal.history(series)
    current = {s: c.to_dict() for s, c in CalibrationJournal.current(changes).items() if c.correction is not None}
    out: dict[str, Any] = {"journal": journal.path.exists(), "current": current}
    if series is not None:
        out["history"] = [c.to_dict() for c in changes]
    if at is not None and series is not None:
        in_force = journal.in_force(series, at)
        out["in_force"] = in_force.to_dict() if in_force else None
    return out


async def _publish(request: Request, change: Change) -> dict[str, Any]:
    ctx = ctx_of(request)
    device, sensor, metric = change.series.split("/")
    await ctx.publisher.publish(ctx.live.topics.calibration(device, sensor, metric), change.message(), retain=True)
    what = change.correction.describe() if change.correction else "cleared"
    log.info("%s set the calibration of %s: %s", change.by, change.series, what)
    return {**change.to_dict(), "published": True}


@router.put("/calibration/{device}/{sensor}/{metric}", status_code=202)
async def set_calibration(request: Request, who: Admin, device: str, sensor: str, metric: str,
                          body: CalibrationBody) -> dict[str, Any]:
    """Set a series' calibration: the bridge applies it to the readings it receives after it."""
    series = _series(device, sensor, metric)
    try:
        correction = parse_correction(body.model_dump(exclude_none=True, exclude={"note"}))
    except CalibrationError as exc:
        raise BadRequest(str(exc)) from None
    return await _publish(request, Change(series, correction, ctx_of(request).clock.now(), who.name, body.note))


@router.delete("/calibration/{device}/{sensor}/{metric}", status_code=202)
async def clear_calibration(request: Request, who: Admin, device: str, sensor: str, metric: str,
                            body: Optional[ClearBody] = None) -> dict[str, Any]:
    """Clear a series' calibration: its readings are stored as they come again."""
    series = _series(device, sensor, metric)
    note = body.note if body else ""
    return await _publish(request, Change(series, None, ctx_of(request).clock.now(), who.name, note))

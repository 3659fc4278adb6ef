"""Who is on call: ``GET /api/v1/oncall``, the schedules of the rules files resolved now (the Alerts page's panel)."""

from __future__ import annotations

import asyncio
from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Request

from vigil.core.sitetime import site_zone

from .context import Reader, ctx_of

__all__ = ["router"]

router = APIRouter(prefix="/api/v1")


@router.get("/oncall", tags=["alerts"])
async def on_call(request: Request, _: Reader) -> dict[str, Any]:
    """Each on-call schedule's person now and until when, and who comes next from when (epoch seconds; the
    schedules are in the site's zone unless they name their own)."""
    ctx = ctx_of(request)
    now = ctx.clock.now()
    zone = site_zone(ctx.settings.zone_name)
    # The rules files are read and parsed: off the event loop.
    entries = await asyncio.to_thread(ctx.rules.on_call, ctx.rules_path, now, zone)
    return {"at": now, "zone": ctx.settings.zone_name, "schedules": [asdict(e) for e in entries]}

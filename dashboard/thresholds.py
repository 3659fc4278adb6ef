"""What each series is held to: the thresholds and no-data limits of the rules that match it.

The overview says "limit > -15 °C" on a tile, the sensor page draws each threshold as a line, and a
tile says "stale" after a matching ``nodata`` rule's ``after`` (or ``dashboard.stale_after``).
Rules are read with the rule engine's own loader and matched with its own ``match`` semantics.
"""

from __future__ import annotations

import asyncio
import fnmatch
import threading
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request

from .api import latest_rows
from .context import Reader, ctx_of
from .ports import Limit, RuleReader
from .rules_view import rules_files

__all__ = ["Limit", "limits_for", "router", "rule_limits"]

router = APIRouter(prefix="/api/v1")

# The rules, parsed once per change of the files: the loader's time grows with the rules (docs/proof.md, YAML loading).
_CACHE: dict[Path, tuple[tuple[tuple[str, int, int], ...], list[tuple[dict[str, Any], Limit]]]] = {}
_LOCK = threading.Lock()


def _stamp(path: Path) -> tuple[tuple[str, int, int], ...]:
    out = []
    for name, f in rules_files(path).items():
        try:
            st = f.stat()
        except FileNotFoundError:
            continue
        out.append((name, st.st_mtime_ns, st.st_size))
    return tuple(out)


def rule_limits(rules: RuleReader, path: Path) -> list[tuple[dict[str, Any], Limit]]:
    """(match, limit) of every enabled rule with numbers; [] when the rules do not load (the Rules page says why)."""
    stamp = _stamp(path)
    with _LOCK:
        hit = _CACHE.get(path)
        if hit is not None and hit[0] == stamp:
            return hit[1]
        out = rules.limits(path)
        _CACHE[path] = (stamp, out)
        return out


def _matches(match: dict[str, Any], row: dict[str, Any]) -> bool:
    labels = dict(row.get("labels") or {})
    names = ("metric", "device", "sensor")
    if not all(fnmatch.fnmatchcase(str(row.get(k, "")), str(match.get(k, "*"))) for k in names):
        return False
    return all(k in labels and fnmatch.fnmatchcase(str(labels[k]), g) for k, g in (match.get("labels") or {}).items())


def limits_for(rules: list[tuple[dict[str, Any], Limit]], row: dict[str, Any]) -> list[Limit]:
    """The limits of the rules whose ``match`` selects this series (a row with device, sensor, metric, labels)."""
    return [limit for match, limit in rules if _matches(match, row)]


@router.get("/limits", tags=["rules"])
async def limits(request: Request, _: Reader) -> dict[str, Any]:
    """Per series: the thresholds and no-data limits of the rules that match it, and when it counts as stale."""
    ctx = ctx_of(request)
    rules = await asyncio.to_thread(rule_limits, ctx.rules, ctx.rules_path)
    default = ctx.settings.stale_after
    series: dict[str, Any] = {}
    for row in await latest_rows(ctx):
        found = limits_for(rules, row)
        nodata = [lim["after"] for lim in found if lim["kind"] == "nodata"]
        series[row["series"]] = {"limits": [lim for lim in found if lim["kind"] != "nodata"],
                                 "stale_after": min(nodata) if nodata else default}
    return {"timezone": ctx.settings.zone_name, "stale_after": default, "series": series}

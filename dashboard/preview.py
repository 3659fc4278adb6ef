"""Preview an edited rule before it is saved: ``vigil rules backtest``'s code over the stored history.

The rule is loaded from the edited (unsaved) text with the engine's own loader, alone, and replayed
by the engine's backtest (``RuleReplayer``) on a manual clock over the last 24 hours or 7 days of every
series it matches. Nothing is sent and nothing is written: the replay's engine has no state file
and no delivery, only a list that collects what it would have handed to delivery.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from vigil.core.errors import VigilError
from vigil.core.stores import Store

from .ports import RuleReplayer

__all__ = ["RANGES", "PreviewError", "preview_rule"]

RANGES = {"24h": 86400.0, "7d": 7 * 86400.0}
MAX_SERIES = 200  # a rule matching more series than this is previewed on none: narrow its match
# One replay at a time (7 days of one series is about a second of CPU): others wait their turn.
_REPLAYING = threading.Lock()


class PreviewError(VigilError):
    """The rule cannot be previewed (not in the text, disabled, or it matches too much)."""


def preview_rule(rules: RuleReplayer, text: str, file: str, rule: str, store: Store, start: float,
                 end: float) -> dict[str, Any]:
    """What ``rule`` of ``text`` would have done between ``start`` and ``end``: transitions and periods.

    RulesInvalid (with every issue) when the text does not load.
    """
    with _REPLAYING:
        t0 = time.perf_counter()
        result = rules.replay(text, file, rule, store, start, end, MAX_SERIES)
        elapsed = time.perf_counter() - t0
    if result.series > MAX_SERIES:
        raise PreviewError(f"rule {rule!r} matches {result.series} series; the preview draws at most "
                           f"{MAX_SERIES}: narrow its match (device, sensor, labels) to preview it")
    by_series: dict[str, list[dict[str, Any]]] = {}
    for t in result.steps:
        by_series.setdefault(t.series, []).append({
            "at": t.at, "state": t.state, "previous": t.previous, "value": t.value,
            "severity": t.severity, "message": t.message})
    notified: dict[str, int] = {}
    for t in result.notified:
        notified[t.series] = notified.get(t.series, 0) + 1
    series = [{"series": sid, "transitions": ts, "periods": periods(ts, end), "notifications": notified.get(sid, 0)}
              for sid, ts in sorted(by_series.items(), key=lambda kv: (-len(kv[1]), kv[0]))]
    return {"rule": rule, "start": start, "end": end, "points": result.points, "series_read": result.series,
            "notifications": len(result.notified),
            "firing": sum(1 for t in result.notified if t.state == "firing"),
            "series": series, "seconds": round(elapsed, 4), "sent": 0}


def periods(transitions: list[dict[str, Any]], end: float) -> list[dict[str, Any]]:
    """The pending and firing stretches of one series: ``{state, start, end, open}`` (open: still so at ``end``)."""
    out: list[dict[str, Any]] = []
    current: dict[str, Any] | None = None
    for t in transitions:
        if current is not None:
            current["end"] = t["at"]
            out.append(current)
            current = None
        if t["state"] in ("pending", "firing", "flapping"):
            current = {"state": t["state"], "start": t["at"], "end": end, "open": True}
    if current is not None:
        out.append(current)
    for p in out[:-1] if current is not None else out:
        p["open"] = False
    return out

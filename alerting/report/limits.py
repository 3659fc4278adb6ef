"""A unit's limits for the chart, from the threshold rules that watch it (the first to trip of each side)."""

from __future__ import annotations

from collections.abc import Iterable
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Optional

__all__ = ["limits_from_rules"]


def limits_from_rules(path: str | Path, units: Iterable[str]) -> dict[str, tuple[Optional[float], Optional[float]]]:
    """unit -> (low, high): the highest ``below`` and the lowest ``above`` of the enabled threshold rules
    whose match (metric, device, sensor, without labels) takes the unit. A rules file that does not load
    gives no limits (the report says nothing it cannot back)."""
    from alerting.rules import load_rules_path

    try:
        ruleset, _ = load_rules_path(path)
    except Exception:  # a broken or missing rules file: the chart just has no limit lines
        return {}
    out: dict[str, tuple[Optional[float], Optional[float]]] = {}
    for unit in units:
        device, sensor, metric = unit.split("/")
        lows: list[float] = []
        highs: list[float] = []
        for rule in ruleset.rules:
            spec = rule.spec
            m = spec.match
            if not spec.enabled or spec.series or spec.difference is not None or m.labels:
                continue
            if not (fnmatchcase(metric, m.metric) and fnmatchcase(device, m.device) and fnmatchcase(sensor, m.sensor)):
                continue
            if spec.below is not None:
                lows.append(float(spec.below))
            if spec.above is not None:
                highs.append(float(spec.above))
        if lows or highs:
            out[unit] = (max(lows) if lows else None, min(highs) if highs else None)
    return out

"""The reading payload the agent publishes (the contract's JSON, built without pydantic)."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any, Optional

__all__ = ["build_payload", "status_payload"]


def build_payload(value: float, ts: float, unit: str, metric: str, seq: Optional[int],
                  labels: Optional[Mapping[str, str]] = None) -> bytes:
    """JSON bytes of one reading; ValueError for a value the contract does not allow."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"a reading's value must be a finite number, got {value!r}")
    body: dict[str, Any] = {"value": value, "ts": round(ts, 3), "unit": unit, "metric": metric}
    if seq is not None:
        body["seq"] = seq
    if labels:
        body["labels"] = dict(labels)
    return json.dumps(body, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode("utf-8")


def status_payload(body: Mapping[str, Any]) -> bytes:
    """JSON bytes of a status message (birth, update or will)."""
    return json.dumps(body, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode("utf-8")

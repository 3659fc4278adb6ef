"""Payloads of the topics the rule engine consumes besides events: device status and control messages,
each parsed within a size and depth bound."""

from __future__ import annotations

from typing import Any, Optional

from vigil.core.jsonlimits import decode, too_deep

__all__ = ["MAX_PAYLOAD", "loads", "parse_status"]

# Bounds what one payload may cost to parse; real events are a few hundred bytes.
MAX_PAYLOAD = 64 * 1024


def parse_status(payload: bytes) -> Optional[bool]:
    """``online``/``offline`` as text or JSON ({"status": ...} or {"state": ...}); None if neither."""
    text = payload[:MAX_PAYLOAD].decode("utf-8", "replace").strip()
    word = text.lower()
    if text.startswith("{"):
        try:
            data = loads(payload[:MAX_PAYLOAD])
        except ValueError:
            return None
        if isinstance(data, dict):
            word = str(data.get("status", data.get("state", ""))).lower()
    if word in ("online", "on", "true", "1", "up"):
        return True
    if word in ("offline", "off", "false", "0", "down", "lost"):
        return False
    return None


def loads(payload: bytes) -> Any:
    """JSON of a control or status message, bounded in depth (and by MAX_PAYLOAD in size); ValueError if not."""
    if too_deep(payload):
        raise ValueError("nested too deeply")
    try:
        return decode(payload)
    except RecursionError as exc:  # too_deep's bound is far below the decoder's; kept as a second guard
        raise ValueError("nested too deeply") from exc


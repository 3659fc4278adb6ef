"""How deeply a JSON text nests, found without parsing it: the bound every JSON input is held to.

Python's decoder recurses once per level, so a payload of 100,000 ``[`` raises RecursionError
deep inside it (or, in a thread with a small stack, worse). Parsers of untrusted JSON (the bridge's
formats, the events topics) ask :func:`too_deep` first; it costs two byte counts for an ordinary
message and one pass over the brackets for a suspicious one.
"""

from __future__ import annotations

import re

__all__ = ["MAX_DEPTH", "too_deep"]

# Real payloads (readings, Tasmota, zigbee2mqtt, Home Assistant state) nest a handful of levels.
MAX_DEPTH = 32
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKETS = re.compile(rb"[\[\]{}]")


def too_deep(data: bytes, limit: int = MAX_DEPTH) -> bool:
    """Whether the arrays and objects of the JSON text ``data`` nest more than ``limit`` levels."""
    if data.count(b"[") + data.count(b"{") <= limit:
        return False
    depth = 0
    for bracket in _BRACKETS.findall(_STRING.sub(b"", data)):
        depth += 1 if bracket in b"[{" else -1
        if depth > limit:
            return True
    return False

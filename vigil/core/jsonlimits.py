"""How deeply a JSON text nests, found without parsing it: the bound every JSON input is held to.

Python's decoder recurses once per level, so a payload of 100,000 ``[`` raises RecursionError
deep inside it (or, in a thread with a small stack, worse). Parsers of untrusted JSON (the bridge's
formats, the events topics) ask :func:`too_deep` first; it costs two byte counts for an ordinary
message and one pass over the brackets for a suspicious one.

:func:`loads` is the one decoder that refuses ``NaN``, ``Infinity`` and ``-Infinity``, which
Python's ``json`` takes although JSON has no such numbers.
"""

from __future__ import annotations

import json
import re
from typing import Any, NoReturn

__all__ = ["MAX_DEPTH", "loads", "refuse_constant", "too_deep"]

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


def refuse_constant(name: str) -> NoReturn:
    """``parse_constant`` of a decoder: ``NaN``, ``Infinity`` and ``-Infinity`` are not JSON."""
    raise ValueError(f"{name} is not a number JSON allows")


# One decoder for all: json.loads with an argument builds a new one per call.
_DECODER = json.JSONDecoder(parse_constant=refuse_constant)


def loads(text: str | bytes) -> Any:
    """``json.loads`` without NaN and Infinity (ValueError, as for any JSON that is not)."""
    if not isinstance(text, str):
        text = text.decode(json.detect_encoding(text), "surrogatepass")
    return _DECODER.decode(text)

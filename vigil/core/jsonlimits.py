"""Bounded JSON: how deeply a text nests (found without parsing it), and a parser and writer held to bounds.

Python's decoder recurses once per level, so a payload of 100,000 ``[`` raises RecursionError
deep inside it (or, in a thread with a small stack, worse). Parsers of untrusted JSON (the bridge's
formats, the events topics) ask :func:`too_deep` first; it costs two byte counts for an ordinary
message and one pass over the brackets for a suspicious one.

:func:`loads` parses a text no larger than a bound, no deeper than :data:`MAX_DEPTH`, with finite
numbers only (the dashboard's HTTP bodies and MQTT messages); :func:`dumps` never writes NaN or
Infinity (a browser's ``JSON.parse`` refuses them).

:func:`decode` is the one plain decoder that refuses ``NaN``, ``Infinity`` and ``-Infinity``, which
Python's ``json`` takes although JSON has no such numbers (the contract's readings, health, formats).

Exceptions::

    JsonRefused          (ValueError) a JSON text is too large, too deep, or holds a number we refuse
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, Callable, NoReturn, Optional

from vigil.core.errors import VigilError

__all__ = ["MAX_DEPTH", "MAX_DIGITS", "JsonRefused", "decode", "dumps", "loads", "refuse_constant", "too_deep"]

# Real payloads (readings, Tasmota, zigbee2mqtt, Home Assistant state) nest a handful of levels.
MAX_DEPTH = 32
# 2**64 has 20 digits; a longer integer is no reading, and past ~309 digits float() overflows.
MAX_DIGITS = 40
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


class JsonRefused(VigilError, ValueError):
    """A JSON text we do not parse: larger than allowed, nested too deeply, or a number out of range."""


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise JsonRefused(f"the number {text[:20]} is out of range (not a finite double)")
    return value


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_DIGITS:
        raise JsonRefused(f"an integer of {len(text.lstrip('-'))} digits is out of range (at most {MAX_DIGITS})")
    return int(text)


def refuse_constant(name: str) -> NoReturn:
    """``parse_constant`` of a decoder: ``NaN``, ``Infinity`` and ``-Infinity`` are not JSON."""
    raise JsonRefused(f"{name} is not a number JSON allows")


# One plain decoder for all: json.loads with an argument builds a new one per call.
_DECODER = json.JSONDecoder(parse_constant=refuse_constant)


def decode(text: str | bytes) -> Any:
    """``json.loads`` without NaN and Infinity (a ValueError, as for any text that is not JSON)."""
    if not isinstance(text, str):
        text = text.decode(json.detect_encoding(text), "surrogatepass")
    return _DECODER.decode(text)


def loads(data: bytes | str, max_bytes: int, max_depth: int = MAX_DEPTH) -> Any:
    """Parse JSON no larger than ``max_bytes`` and no deeper than ``max_depth``, with finite numbers only."""
    raw = data.encode() if isinstance(data, str) else data
    if len(raw) > max_bytes:
        raise JsonRefused(f"the JSON is larger than {max_bytes:,} bytes")
    if too_deep(raw, max_depth):
        raise JsonRefused(f"the JSON nests arrays or objects more than {max_depth} levels deep")
    try:
        return json.loads(raw, parse_float=_finite_float, parse_int=_bounded_int, parse_constant=refuse_constant)
    except RecursionError:  # cannot happen after the depth check; kept so that it can never escape
        raise JsonRefused("the JSON is nested too deeply") from None


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def dumps(data: Any, default: Optional[Callable[[Any], Any]] = None) -> str:
    """JSON text of ``data`` in which NaN and ±Infinity are written as null (JSON has no such numbers)."""
    try:
        return json.dumps(data, ensure_ascii=False, allow_nan=False, separators=(",", ":"), default=default)
    except ValueError:
        return json.dumps(_finite(data), ensure_ascii=False, allow_nan=False, separators=(",", ":"),
                          default=default)

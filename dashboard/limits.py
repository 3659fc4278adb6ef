"""Bounds on what the dashboard takes in and gives out: JSON depth and size, body size, finite numbers.

Every JSON the dashboard parses (HTTP bodies, MQTT messages) goes through :func:`loads`, and every
JSON it sends (answers, server-sent events) through :func:`dumps`, which never writes NaN or
Infinity (a browser's ``JSON.parse`` refuses them). :class:`BodyLimit` refuses an oversized body
before any of it reaches a route, so before authentication and before parsing.

Exceptions::

    JsonRefused          (ValueError) a JSON text is too large, too deep, or holds a number we refuse
"""

from __future__ import annotations

import json
import logging
import math
from typing import Any, Callable, Optional

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from vigil.core.errors import VigilError
from vigil.core.jsonlimits import MAX_DEPTH, too_deep

__all__ = ["MAX_DEPTH", "MAX_DIGITS", "BodyLimit", "JsonRefused", "SafeJSONResponse", "dumps", "loads"]

log = logging.getLogger(__name__)

# A body over the limit but under this is read and thrown away before the 413, so that a client
# that writes its whole body before reading (most do) gets the answer instead of a reset connection.
DRAIN_BYTES = 16 * 1024 * 1024
# 2**64 has 20 digits; a longer integer is no reading, and past ~309 digits float() overflows.
MAX_DIGITS = 40


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


def _no_constant(name: str) -> Any:
    raise JsonRefused(f"{name} is not a number JSON allows")


def loads(data: bytes | str, max_bytes: int, max_depth: int = MAX_DEPTH) -> Any:
    """Parse JSON no larger than ``max_bytes`` and no deeper than ``max_depth``, with finite numbers only."""
    raw = data.encode() if isinstance(data, str) else data
    if len(raw) > max_bytes:
        raise JsonRefused(f"the JSON is larger than {max_bytes:,} bytes")
    if too_deep(raw, max_depth):
        raise JsonRefused(f"the JSON nests arrays or objects more than {max_depth} levels deep")
    try:
        return json.loads(raw, parse_float=_finite_float, parse_int=_bounded_int, parse_constant=_no_constant)
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


class SafeJSONResponse(JSONResponse):
    """The API's JSON answers, written by :func:`dumps`."""

    def render(self, content: Any) -> bytes:
        return dumps(content).encode("utf-8")


class BodyLimit:
    """ASGI middleware: a request body larger than its path's limit gets 413 before the app sees any of it.

    ``Content-Length`` is checked first; a body without it (chunked) is counted as it arrives, and
    nothing past the limit is kept (up to :data:`DRAIN_BYTES` is read and dropped first). A body
    that starts like JSON is also refused (400) when it nests deeper than :data:`MAX_DEPTH`, so no
    route parses one (FastAPI's own parser and the formats' parsers included).
    """

    def __init__(self, app: ASGIApp, limit_for: Callable[[str], int],
                 refused: Optional[Callable[[int], None]] = None) -> None:
        self.app = app
        self.limit_for = limit_for
        self.refused = refused or (lambda status: None)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and not length.isdigit():
            await self._refuse(send, 400, "Content-Length must be a number of bytes")
            return
        if length is not None and int(length) > limit:
            if int(length) <= DRAIN_BYTES:
                await _drain(receive, 0)
            await self._refuse(send, 413, _too_large(limit, scope))
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                if message.get("more_body", False):
                    await _drain(receive, size)
                await self._refuse(send, 413, _too_large(limit, scope))
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        # Not only bodies that start with "{": a byte-order mark or UTF-16 would hide one from json.loads.
        if too_deep(body):
            await self._refuse(send, 400, f"the body nests arrays or objects more than {MAX_DEPTH} levels deep")
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, send: Send, status: int, message: str) -> None:
        self.refused(status)
        response = SafeJSONResponse({"error": message}, status_code=status, headers={"Connection": "close"})
        await response({"type": "http"}, _nothing, send)


async def _drain(receive: Receive, size: int) -> None:
    """Read and forget the rest of a refused body, up to DRAIN_BYTES in all; nothing of it is kept."""
    while size <= DRAIN_BYTES:
        message = await receive()
        if message["type"] != "http.request":
            return
        size += len(message.get("body", b""))
        if not message.get("more_body", False):
            return


def _too_large(limit: int, scope: Scope) -> str:
    return f"the body is larger than {limit} bytes, the limit of {scope['path']}; send less"


async def _nothing() -> Message:
    return {"type": "http.disconnect"}

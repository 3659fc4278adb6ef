"""Bounds on the dashboard's HTTP: body size and depth, and JSON answers with finite numbers only.

Every JSON the dashboard parses (HTTP bodies, MQTT messages) goes through the core's bounded
``loads``, and every JSON it sends (answers, server-sent events) through its ``dumps``
(vigil/core/jsonlimits.py). :class:`BodyLimit` refuses an oversized body before any of it reaches a
route, so before authentication and before parsing.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Optional

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from vigil.core.jsonlimits import MAX_DEPTH, dumps, too_deep

__all__ = ["BodyLimit", "SafeJSONResponse"]

log = logging.getLogger(__name__)

# A body over the limit but under this is read and thrown away before the 413, so that a client
# that writes its whole body before reading (most do) gets the answer instead of a reset connection.
DRAIN_BYTES = 16 * 1024 * 1024


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

"""A minimal HTTP/1.1 client on asyncio streams: one kept-alive connection, one request at a time.

For the bridge's writes to InfluxDB (``Influx1Store.write_async``): a batch written through
urllib3 in a worker thread cost a thread hand-over and urllib3's per-request work, which at a
steady 1,000 readings/s (small batches) was much of the bridge's CPU (docs/proof.md, Issue 18, The
bridge). What it speaks: a request with a body and ``Content-Length``; a response with
``Content-Length``, chunked, or up to the close. Anything else from the server (a status line that
is not HTTP, an over-long header, a bad chunk size) is :class:`HttpError`, and the connection is
dropped; the caller decides what the error means for its store.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Optional

__all__ = ["AsyncHttp", "HttpError"]

_MAX_LINE = 8192  # a status or header line
_MAX_HEADERS = 100
_MAX_BODY = 1 << 20  # an answer to a write is short; more is read and dropped up to this, then refused


class HttpError(OSError):
    """The connection failed or the server's answer is not HTTP this client understands."""


class AsyncHttp:
    """Requests to one host over one kept-alive connection, made again when it was lost.

    Made on the running event loop, and used only on it (``loop``).
    """

    def __init__(self, host: str, port: int, *, tls: Optional[ssl.SSLContext] = None, timeout: float = 30.0) -> None:
        self.host, self.port, self.tls, self.timeout = host, port, tls, timeout
        self.loop = asyncio.get_running_loop()
        self._host_header = f"{host}:{port}" if ":" not in host else f"[{host}]:{port}"
        self._reader: Optional[asyncio.StreamReader] = None
        self._writer: Optional[asyncio.StreamWriter] = None
        self._lock = asyncio.Lock()

    async def request(self, method: str, target: str, body: bytes = b"",
                      headers: Optional[dict[str, str]] = None) -> tuple[int, bytes]:
        """(status, body) of the answer; HttpError (an OSError) when there is none, TimeoutError after ``timeout``.

        A kept-alive connection the server closed meanwhile is noticed on use and the request sent
        once more on a new one (only requests that may be repeated belong here: writes by series
        and time are).
        """
        head = [f"{method} {target} HTTP/1.1", f"Host: {self._host_header}", f"Content-Length: {len(body)}"]
        head += [f"{k}: {v}" for k, v in (headers or {}).items()]
        data = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body
        async with self._lock:
            for attempt in (1, 2):
                reused = self._writer is not None
                try:
                    async with asyncio.timeout(self.timeout):
                        reader, writer = await self._connection()
                        writer.write(data)
                        return await self._answer(reader)
                except (OSError, asyncio.IncompleteReadError, TimeoutError) as exc:
                    self.close()
                    if isinstance(exc, TimeoutError) or not reused or attempt == 2:
                        if isinstance(exc, (HttpError, TimeoutError)):
                            raise
                        raise HttpError(f"{type(exc).__name__}: {exc}") from exc
        raise AssertionError("unreachable")  # pragma: no cover

    async def _connection(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._reader is None or self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(
                self.host, self.port, ssl=self.tls, server_hostname=self.host if self.tls else None, limit=_MAX_LINE)
        return self._reader, self._writer

    async def _answer(self, reader: asyncio.StreamReader) -> tuple[int, bytes]:
        status_line = await _line(reader)
        parts = status_line.split(None, 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit() or len(parts[1]) != 3:
            raise HttpError(f"not an HTTP answer: {status_line[:80]!r}")
        status = int(parts[1])
        length: Optional[int] = None
        chunked = close = False
        for _ in range(_MAX_HEADERS + 1):
            line = await _line(reader)
            if not line:
                break
            name, sep, value = line.partition(b":")
            if not sep:
                raise HttpError(f"not an HTTP header: {line[:80]!r}")
            name, value = name.strip().lower(), value.strip().lower()
            if name == b"content-length":
                if not value.isdigit():
                    raise HttpError(f"Content-Length is not a number: {value[:40]!r}")
                length = int(value)
            elif name == b"transfer-encoding":
                chunked = value.endswith(b"chunked")
            elif name == b"connection":
                close = value == b"close"
        else:
            raise HttpError(f"more than {_MAX_HEADERS} header lines")
        if status in (204, 304) or 100 <= status < 200:
            body = b""
        elif chunked:
            body = await _chunks(reader)
        elif length is not None:
            if length > _MAX_BODY:
                raise HttpError(f"an answer of {length} bytes is more than this client reads")
            body = await reader.readexactly(length)
        else:
            body, close = await _to_close(reader), True
        if close:
            self.close()
        return status, body

    def close(self) -> None:
        """Drop the connection (the next request makes a new one)."""
        writer, self._reader, self._writer = self._writer, None, None
        if writer is not None and not self.loop.is_closed():  # with its loop, its socket was closed
            writer.close()


async def _line(reader: asyncio.StreamReader) -> bytes:
    try:
        line = await reader.readuntil(b"\n")
    except asyncio.LimitOverrunError:
        raise HttpError(f"a line of the answer is over {_MAX_LINE} bytes") from None
    return line.rstrip(b"\r\n")


async def _to_close(reader: asyncio.StreamReader) -> bytes:
    body = bytearray()
    while chunk := await reader.read(65536):
        body += chunk
        if len(body) > _MAX_BODY:
            raise HttpError(f"an answer of more than {_MAX_BODY} bytes is more than this client reads")
    return bytes(body)


async def _chunks(reader: asyncio.StreamReader) -> bytes:
    body = bytearray()
    while True:
        size_text = (await _line(reader)).split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise HttpError(f"not a chunk size: {size_text[:40]!r}") from None
        if size < 0 or len(body) + size > _MAX_BODY:
            raise HttpError(f"a chunk of {size} bytes is more than this client reads")
        if size == 0:
            while await _line(reader):  # trailers
                pass
            return bytes(body)
        body += await reader.readexactly(size)
        if await _line(reader):
            raise HttpError("a chunk is longer than its size")

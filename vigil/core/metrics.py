"""Prometheus metrics of a Vigil process: one registry, its standard process metrics, and the server.

:data:`REGISTRY` is prometheus-client's default registry, one per process, which already holds the
process metrics (``process_cpu_seconds_total``, ``process_resident_memory_bytes``,
``process_open_fds``, ...) and Python's (``python_gc_*``, ``python_info``). A part adds its own
collector while it runs (:func:`registered`), so under ``vigil up`` one scrape shows them all.

Serving: :func:`serve` runs prometheus-client's threaded WSGI server (the standard library's HTTP
parsing: HEAD, an over-long request line answered 414) on ``/metrics`` of its own port, for a part
without a web server; :func:`exposition` gives the body and content type for a route of one that
has (the dashboard).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, Callable, Optional
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import PROCESS_COLLECTOR, REGISTRY, ProcessCollector, generate_latest, make_wsgi_app
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, ThreadingWSGIServer
from prometheus_client.registry import Collector, CollectorRegistry

__all__ = ["REGISTRY", "exposition", "registered", "serve", "wsgi_app"]

log = logging.getLogger(__name__)



class BootClockProcessCollector(ProcessCollector):
    """prometheus-client's process metrics, with the boot time taken from the clocks, not /proc/stat.

    The systemd units set ProcSubset=pid, which hides /proc/stat: the stock collector then finds no
    boot time and gives no process metric at all. Everything else it reads is under /proc/self.
    """

    def _boot_time(self) -> float:
        return time.time() - time.clock_gettime(time.CLOCK_BOOTTIME)


# prometheus-client made its own at import (reading /proc/stat, which may be hidden): ours instead
REGISTRY.unregister(PROCESS_COLLECTOR)
BootClockProcessCollector(registry=REGISTRY)

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


@contextmanager
def registered(collector: Collector, registry: CollectorRegistry = REGISTRY) -> Iterator[None]:
    """Show ``collector``'s metrics in the process's registry while the block runs."""
    registry.register(collector)
    try:
        yield
    finally:
        registry.unregister(collector)


def exposition(registry: CollectorRegistry = REGISTRY) -> tuple[bytes, str]:
    """The Prometheus text of ``registry`` and its content type (text format 0.0.4, as :func:`serve` answers
    a scraper that asks for nothing else)."""
    return generate_latest(registry), CONTENT_TYPE_PLAIN_0_0_4


def wsgi_app(registry: CollectorRegistry = REGISTRY) -> WsgiApp:
    """prometheus-client's WSGI app on ``/metrics`` only, answering HEAD as GET without the body."""
    metrics = make_wsgi_app(registry)

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        method = environ["REQUEST_METHOD"]
        if environ.get("PATH_INFO") != "/metrics":
            return _answer(start_response, "404 Not Found", b"not found: try GET /metrics\n")
        if method not in ("GET", "HEAD"):
            return _answer(start_response, "405 Method Not Allowed", b"use GET or HEAD\n", [("Allow", "GET, HEAD")])
        said: list[Any] = []
        body = b"".join(metrics({**environ, "REQUEST_METHOD": "GET"}, lambda *args: said.extend(args[:2])))
        start_response(said[0], [*said[1], ("Content-Length", str(len(body)))])
        return [] if method == "HEAD" else [body]

    return app


def _answer(start_response: StartResponse, status: str, body: bytes,
            headers: Optional[list[tuple[str, str]]] = None) -> list[bytes]:
    start_response(status, [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body))),
                            *(headers or [])])
    return [body]


class _Handler(WSGIRequestHandler):
    """Requests are not logged one by one (a scrape every few seconds); a bad one is, at debug level."""

    timeout = 10  # seconds a connection may take to send its request: an idle one holds a thread

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("metrics server: %s: " + format, self.address_string(), *args)


async def serve(host: str, port: int, registry: CollectorRegistry = REGISTRY,
                started: Optional[asyncio.Event] = None) -> None:
    """Serve ``registry`` on ``http://host:port/metrics`` from a thread until cancelled."""
    family = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0][0]
    server_class = type("MetricsServer", (ThreadingWSGIServer,), {"address_family": family})
    httpd: WSGIServer = make_server(host, port, wsgi_app(registry), server_class, handler_class=_Handler)
    thread = threading.Thread(target=httpd.serve_forever, name=f"vigil-metrics-{port}", daemon=True)
    thread.start()
    log.info("metrics on http://%s:%d/metrics", host, httpd.server_port)
    if started is not None:
        started.set()
    try:
        await asyncio.Event().wait()
    finally:
        # off the event loop: shutdown() waits for serve_forever's poll (0.5 s)
        await asyncio.shield(asyncio.to_thread(_stop, httpd, thread))


def _stop(httpd: WSGIServer, thread: threading.Thread) -> None:
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)

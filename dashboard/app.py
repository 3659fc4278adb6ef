"""The FastAPI application: API, pages, live feed; and ``serve`` to run it inside an event loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Callable, Optional

import uvicorn
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from starlette.exceptions import HTTPException
from starlette.middleware.gzip import GZipMiddleware

from vigil.core import metrics as vigil_metrics
from vigil.core.clock import Clock, SystemClock
from vigil.core.errors import BadRequest
from vigil.core.health import HealthReporter
from vigil.core.settings import MqttSettings
from vigil.core.stores import Store, StoreRejected, StoreUnavailable

from . import acklinks, actions, api, calibration, fleet, oncall, pages, thresholds
from . import reports as report_pages
from .auth import Authenticator, AuthError
from .context import ApiError, Context
from .feed import BrokerUnavailable, LiveFeed, Publisher
from .journal import AlertJournal
from .limits import BodyLimit, SafeJSONResponse
from .live import LiveState
from .metrics import DashboardMetrics
from .ports import PayloadFormats, Reports, Rules
from .settings import DashboardSettings

__all__ = ["create_app", "serve"]

log = logging.getLogger(__name__)

# The Rules page sends a whole rules file (up to alerting.rules' size bound) as one JSON string.
_RULES_BODY = 4 * 1024 * 1024

_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")


def _error(status: int, message: str, problems: Optional[list[dict[str, Any]]] = None,
           headers: Optional[dict[str, str]] = None) -> SafeJSONResponse:
    body: dict[str, Any] = {"error": message}
    if problems:
        body["problems"] = problems
    return SafeJSONResponse(body, status_code=status, headers=headers)


def body_limit(settings: DashboardSettings) -> Callable[[str], int]:
    """The largest body each path takes: the Rules page's files, or ``max_body_bytes``."""

    def limit(path: str) -> int:
        if path.startswith("/api/v1/rules/"):
            return max(settings.max_body_bytes, _RULES_BODY)
        return settings.max_body_bytes

    return limit


def create_app(
    settings: DashboardSettings,
    mqtt: MqttSettings,
    *,
    store: Store,
    data_dir: Path,
    rules_path: Path,
    rules: Rules,
    formats: Optional[PayloadFormats] = None,
    reports: Optional[Reports] = None,
    publisher: Optional[Publisher] = None,
    live: Optional[LiveState] = None,
    clock: Optional[Clock] = None,
) -> FastAPI:
    """The dashboard app. Without ``publisher`` it follows and publishes on the broker of ``mqtt``.

    ``rules`` is the rule engine's reading of the files at ``rules_path`` (the Rules page, limits,
    preview, who is on call); ``formats`` the bridge's payload formats (for ingest with format=); ``reports`` the
    rule engine's report (the Reports page; without it the page says it is not available).
    """
    clock = clock or SystemClock()
    journal = None
    if live is None:
        journal = AlertJournal(data_dir / "dashboard-alerts.db", settings.alert_history_days / 86400)
        live = LiveState(mqtt.topics, history=settings.alert_history, journal=journal)
    feed: Optional[LiveFeed] = None
    if publisher is None:
        feed = LiveFeed(mqtt, live, settings.client_id)
        publisher = feed
    auth = Authenticator(settings, clock, data_dir / "dashboard-auth.db")
    ctx = Context(settings=settings, store=store, live=live, publisher=publisher, auth=auth, clock=clock,
                  rules_path=rules_path, rules=rules, formats=formats, reports=reports)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # the dashboard's metrics on the process's registry while the app runs (GET /api/v1/metrics)
        with vigil_metrics.registered(DashboardMetrics(ctx)):
            async with asyncio.TaskGroup() as tg:
                task = tg.create_task(feed.run(), name="dashboard-mqtt") if feed else None
                # its health (vigil/core/health.py), retained through the feed's own connection
                health = tg.create_task(HealthReporter(mqtt.topics, "dashboard", settings.client_id, lambda: {
                    "problems": [] if feed.connected.is_set() else ["not connected to the broker: see its log"]},
                    ).run(lambda t, p: _published(feed, t, p)),
                    name="dashboard-health") if feed else None
                try:
                    yield
                finally:
                    live.close_all()
                    for t in (task, health):
                        if t:
                            t.cancel()
        if journal is not None:
            journal.close()
        ctx.auth.close()
        links.used.close()

    # No Swagger UI (it loads from a CDN) and no anonymous schema: api.openapi serves it to callers.
    app = FastAPI(title="Vigil", version="1", lifespan=lifespan, docs_url=None, openapi_url=None, redoc_url=None,
                  default_response_class=SafeJSONResponse)
    app.state.ctx = ctx
    app.add_middleware(GZipMiddleware, minimum_size=1024, compresslevel=5)

    @app.middleware("http")
    async def headers(request: Request, call_next: Any) -> Response:
        response: Response = await call_next(request)
        response.headers.setdefault("Content-Security-Policy", _CSP)
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "same-origin"
        ctx.counters[f"http_{response.status_code}"] += 1
        return response

    @app.exception_handler(AuthError)
    async def on_auth(request: Request, exc: AuthError) -> Response:
        ctx.counters[f"auth_{exc.status}"] += 1
        if exc.status == 401 and not request.url.path.startswith("/api/") and request.method == "GET":
            return RedirectResponse(f"/login?next={request.url.path}", status_code=303)
        hdrs = {"Retry-After": str(int(exc.retry_after) + 1)} if exc.retry_after else None
        if exc.status == 401:
            hdrs = {**(hdrs or {}), "WWW-Authenticate": "Bearer"}
        return _error(exc.status, exc.message, headers=hdrs)

    @app.exception_handler(ApiError)
    async def on_api(request: Request, exc: ApiError) -> Response:
        return _error(exc.status, exc.message, exc.problems)

    @app.exception_handler(BrokerUnavailable)
    async def on_broker(request: Request, exc: BrokerUnavailable) -> Response:
        return _error(503, str(exc), headers={"Retry-After": "5"})

    @app.exception_handler(StoreUnavailable)
    async def on_store(request: Request, exc: StoreUnavailable) -> Response:
        return _error(503, f"the store is not available: {exc}", headers={"Retry-After": "5"})

    @app.exception_handler(StoreRejected)
    async def on_rejected(request: Request, exc: StoreRejected) -> Response:
        return _error(502, f"the store refused the query: {exc}")

    @app.exception_handler(BadRequest)
    async def on_bad_request(request: Request, exc: BadRequest) -> Response:
        return _error(exc.status, exc.detail)

    @app.exception_handler(Exception)
    async def on_defect(request: Request, exc: Exception) -> Response:
        ctx.counters["internal_errors"] += 1
        log.error("%s %s failed: %s: %s", request.method, request.url.path, type(exc).__name__, exc,
                  exc_info=(type(exc), exc, exc.__traceback__))
        return _error(500, "internal error in the dashboard (a defect: its log says more)")

    @app.exception_handler(HTTPException)
    async def on_http(request: Request, exc: HTTPException) -> Response:
        # Starlette's own 404/405: the same {"error": ...} shape as every other refusal.
        message = f"no such page or API route: {request.url.path[:200]}" if exc.status_code == 404 else str(exc.detail)
        return _error(exc.status_code, message, headers=dict(exc.headers) if exc.headers else None)

    @app.exception_handler(RequestValidationError)
    async def on_invalid(request: Request, exc: RequestValidationError) -> Response:
        problems = [{"where": ".".join(str(p) for p in e["loc"]), "error": e["msg"]} for e in exc.errors()]
        return _error(422, "the request is not valid", problems)

    app.include_router(api.router)
    app.include_router(fleet.router)
    app.include_router(actions.router)
    calibration.install(app, data_dir)
    links = acklinks.install(app, data_dir)
    app.include_router(oncall.router)
    report_pages.install(app)
    app.include_router(thresholds.router)
    app.include_router(pages.router)
    # Outermost: a body over the limit is refused before any route, parser or authentication sees it.
    app.add_middleware(BodyLimit, limit_for=body_limit(settings),
                       refused=lambda status: ctx.counters.update({f"http_{status}": 1}))
    return app


async def _published(feed: LiveFeed, topic: str, payload: bytes) -> bool:
    await feed.publish(topic, payload, qos=1, retain=True)
    return True


def _bind(listen: str) -> socket.socket:
    host, _, port = listen.rpartition(":")
    host = host.strip("[]")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, int(port)))
    except OSError:
        sock.close()
        raise
    sock.listen(128)
    sock.setblocking(False)
    return sock


class _Server(uvicorn.Server):
    """uvicorn without its own signal handlers: whoever runs ``serve`` stops it by cancelling."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def serve(settings: DashboardSettings, mqtt: MqttSettings, *, ready: Optional[asyncio.Event] = None,
                **app_options: Any) -> None:
    """Serve the dashboard on ``settings.listen`` until cancelled (``app_options``: create_app's); OSError
    when the address is taken."""
    sock = None
    try:
        sock = _bind(settings.listen)
        app = create_app(settings, mqtt, **app_options)
        server = _Server(uvicorn.Config(app, log_level="warning", lifespan="on", access_log=False,
                                               timeout_graceful_shutdown=2, proxy_headers=False))
        task = asyncio.create_task(server.serve(sockets=[sock]), name="dashboard-http")
        try:
            while not server.started and not task.done():
                await asyncio.sleep(0.01)
            if task.done():
                task.result()
                raise RuntimeError("the dashboard's HTTP server stopped while starting")
            log.info("dashboard listening on http://%s", settings.listen)
            if ready is not None:
                ready.set()
            await asyncio.shield(task)
        finally:
            if not task.done():
                server.should_exit = True
                await asyncio.wait({task})
    finally:
        if sock is not None:
            sock.close()

"""The HTML pages (server-rendered shells filled by ``app.js`` from the API), login and static files."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, Optional
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from .auth import SESSION_COOKIE, AuthError, Principal
from .context import authenticate, ctx_of, same_origin
from .fleet import fleet_view

__all__ = ["STATIC_FILES", "page", "render", "router"]

router = APIRouter(include_in_schema=False)
_HERE = Path(__file__).parent
_WEB = _HERE / "web"
_env = Environment(loader=FileSystemLoader(_HERE / "templates"), autoescape=select_autoescape(default=True))

# name -> (file, media type). Only these are served: no path from a request reaches the disk.
STATIC_FILES: dict[str, tuple[Path, str]] = {
    "app.js": (_WEB / "static" / "app.js", "text/javascript"),
    "sensor.js": (_WEB / "static" / "sensor.js", "text/javascript"),
    "alerts.js": (_WEB / "static" / "alerts.js", "text/javascript"),
    "flags.js": (_WEB / "static" / "flags.js", "text/javascript"),
    "app.css": (_WEB / "static" / "app.css", "text/css"),
    "rules.js": (_WEB / "static" / "rules.js", "text/javascript"),
    "rules.css": (_WEB / "static" / "rules.css", "text/css"),
    "calibration.js": (_WEB / "static" / "calibration.js", "text/javascript"),
    "reports.js": (_WEB / "static" / "reports.js", "text/javascript"),
    "icon.svg": (_WEB / "static" / "icon.svg", "image/svg+xml"),
    "uplot.js": (_WEB / "node_modules" / "uplot" / "dist" / "uPlot.iife.min.js", "text/javascript"),
    "uplot.css": (_WEB / "node_modules" / "uplot" / "dist" / "uPlot.min.css", "text/css"),
}


def render(name: str, status: int = 200, **values: Any) -> HTMLResponse:
    return HTMLResponse(_env.get_template(name).render(**values), status_code=status,
                        headers={"Cache-Control": "no-store"})


def page(request: Request, name: str, title: str, **values: Any) -> Response:
    who: Principal = authenticate(request)
    if not who.allows("read-only"):
        raise AuthError(403, f"{who.name} may not view pages")
    return render(f"{name}.html", page=name, title=title, user=who.name, admin=who.role == "admin",
                   csrf=who.csrf or "", vendor_ok=STATIC_FILES["uplot.js"][0].exists(),
                   timezone=ctx_of(request).settings.zone_name, **values)


@router.get("/static/{name}")
async def static(name: str) -> Response:
    entry = STATIC_FILES.get(name)
    if entry is None or not entry[0].exists():
        hint = " (run: npm ci --prefix dashboard/web)" if name.startswith("uplot") else ""
        return Response(f"not found{hint}\n", status_code=404, media_type="text/plain")
    return FileResponse(entry[0], media_type=entry[1], headers={"Cache-Control": "public, max-age=3600"})


@router.get("/")
async def overview(request: Request) -> Response:
    return page(request, "overview", "Overview")


@router.get("/sensor/{device}/{sensor}/{metric}")
async def sensor(request: Request, device: str, sensor: str, metric: str) -> Response:
    return page(request, "sensor", f"{device} / {sensor}", device=device, sensor=sensor, metric=metric)


@router.get("/alerts")
async def alerts(request: Request) -> Response:
    return page(request, "alerts", "Alerts")


@router.get("/rules")
async def rules(request: Request) -> Response:
    return page(request, "rules", "Rules")


@router.get("/fleet")
async def fleet(request: Request) -> Response:
    who: Principal = authenticate(request)  # before the store is read
    if not who.allows("read-only"):
        raise AuthError(403, f"{who.name} may not view pages")
    return page(request, "fleet", "Fleet", fleet=await fleet_view(request), now=ctx_of(request).clock.now())


@router.get("/silences")
async def silences(request: Request) -> Response:
    return page(request, "silences", "Silences")


def _safe_next(value: Optional[str]) -> str:
    # Only a path on this site: "//evil.example" or "https://..." would send people elsewhere.
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/"


@router.get("/login")
async def login_form(request: Request, next: str = "/") -> Response:
    return render("login.html", page="login", title="Log in", next=_safe_next(next), error="")


@router.post("/login")
async def login(request: Request) -> Response:
    ctx = ctx_of(request)
    body = await request.body()
    if len(body) > 4096:
        return render("login.html", status=413, page="login", title="Log in", next="/", error="request too large")
    form = parse_qs(body.decode("utf-8", errors="replace"))
    name = (form.get("username") or [""])[0][:64]
    password = (form.get("password") or [""])[0][:256]
    nxt = _safe_next((form.get("next") or ["/"])[0])
    client = ctx.auth.client_address(request.client.host if request.client else "?",
                                     request.headers.getlist("x-forwarded-for"))
    if not same_origin(request):
        return render("login.html", status=403, page="login", title="Log in", next="/",
                       error="log in from the dashboard's own page")
    try:
        # scrypt takes tens of milliseconds of CPU: keep it off the event loop.
        cookie = await asyncio.to_thread(ctx.auth.login, name, password, client)
    except AuthError as exc:
        ctx.counters["login_failed"] += 1
        headers = {"Retry-After": str(int(exc.retry_after) + 1)} if exc.retry_after else {}
        resp = render("login.html", status=exc.status, page="login", title="Log in", next=nxt,
                       error=exc.message)
        resp.headers.update(headers)
        return resp
    ok: Response = RedirectResponse(nxt, status_code=303)
    secure = ctx.settings.secure_cookies or request.url.scheme == "https"
    ok.set_cookie(SESSION_COOKIE, cookie, max_age=int(ctx.settings.session_lifetime), httponly=True,
                  samesite="strict", secure=secure, path="/")
    return ok


@router.post("/logout")
async def logout(request: Request) -> Response:
    # authenticate checks the CSRF token: a forged request cannot log someone out
    ctx_of(request).auth.logout(authenticate(request))
    resp = Response(status_code=204)
    resp.delete_cookie(SESSION_COOKIE, path="/")
    return resp

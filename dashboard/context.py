"""What every request handler needs, built once by ``create_app`` and kept on ``app.state.ctx``."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Optional

from fastapi import Depends, Request

from vigil.core.clock import Clock
from vigil.core.errors import VigilError
from vigil.core.stores import Store

from .auth import SESSION_COOKIE, Authenticator, AuthError, Principal
from .feed import Publisher
from .live import LiveState
from .ports import PayloadFormats, Reports, Rules
from .settings import DashboardSettings

__all__ = ["Admin", "ApiError", "Context", "Reader", "authenticate", "ctx_of", "require", "same_origin"]


class ApiError(VigilError):
    """A request the API refuses: ``status``, a sentence, and per-item ``problems``."""

    def __init__(self, status: int, message: str, problems: Optional[list[dict[str, Any]]] = None) -> None:
        self.status = status
        self.message = message
        self.problems = problems or []
        super().__init__(message)


@dataclass
class Context:
    settings: DashboardSettings
    store: Store
    live: LiveState
    publisher: Publisher
    auth: Authenticator
    clock: Clock
    rules_path: Path
    rules: Rules
    formats: Optional[PayloadFormats] = None
    reports: Optional[Reports] = None
    started: float = field(default_factory=time.time)
    counters: Counter[str] = field(default_factory=Counter)


def ctx_of(request: Request) -> Context:
    ctx: Context = request.app.state.ctx
    return ctx


def same_origin(request: Request) -> bool:
    origin = request.headers.get("origin")
    if origin is None:
        return True  # browsers send Origin on every cross-site POST; curl and old clients do not
    host = request.headers.get("host", "")
    return origin.split("://", 1)[-1] == host or (
        ctx_of(request).settings.public_url or "").rstrip("/") == origin.rstrip("/")


def authenticate(request: Request) -> Principal:
    """The caller of ``request`` from its bearer token or its session cookie; AuthError 401 without one."""
    ctx = ctx_of(request)
    header = request.headers.get("authorization", "")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise AuthError(401, "expected 'Authorization: Bearer <token>'")
        return ctx.auth.token(value.strip())
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        raise AuthError(401, "not logged in")
    principal = ctx.auth.session(cookie)
    if request.method not in ("GET", "HEAD", "OPTIONS"):
        # Cookies ride along on forged cross-site requests; the CSRF token does not.
        token = request.headers.get("x-csrf-token", "")
        if not token or not principal.csrf_matches(token) or not same_origin(request):
            raise AuthError(403, "missing or wrong CSRF token; reload the page and try again")
    return principal


def require(role: str) -> Any:
    """A FastAPI dependency: the authenticated caller, who must have ``role``."""

    def dependency(request: Request) -> Principal:
        principal = authenticate(request)
        if not principal.allows(role):
            raise AuthError(403, f"this needs the {role} role; {principal.name} has {principal.role}")
        return principal

    return dependency


# Parameter types for handlers: the caller, who must have that role.
Reader = Annotated[Principal, Depends(require("read-only"))]
Admin = Annotated[Principal, Depends(require("admin"))]

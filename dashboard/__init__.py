"""The web dashboard and HTTP API: live values, history, alerts, rules, and readings posted over HTTP.

Public names (imported lazily, so ``vigil.app.config`` can read ``dashboard.settings`` without FastAPI)::

    create_app(settings, mqtt, *, store, ...) -> FastAPI    the application (its ports: dashboard.ports)
    serve(settings, mqtt, *, ready=None, ...)               run it with uvicorn in the current event loop
    ensure_admin(settings, data_dir)                 an admin user, with a generated password once
"""

from __future__ import annotations

from typing import Any

__all__ = ["create_app", "ensure_admin", "serve"]


def __getattr__(name: str) -> Any:
    if name in ("create_app", "serve"):
        from . import app

        return getattr(app, name)
    if name == "ensure_admin":
        from .auth import ensure_admin

        return ensure_admin
    raise AttributeError(name)

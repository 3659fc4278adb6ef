"""The ``dashboard:`` section of vigil.yaml."""

from __future__ import annotations

from pydantic import BaseModel

from vigil.configtypes import STRICT, HostPort

__all__ = ["DashboardSettings"]


class DashboardSettings(BaseModel):
    model_config = STRICT

    listen: HostPort = "127.0.0.1:8080"

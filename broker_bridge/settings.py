"""The ``bridge:`` section of vigil.yaml."""

from __future__ import annotations

from typing import Optional

from pydantic import BaseModel, Field

from vigil.configtypes import STRICT, Duration, HostPort

__all__ = ["BridgeSettings"]


class BridgeSettings(BaseModel):
    model_config = STRICT

    client_id: str = "vigil-bridge"
    shared_group: Optional[str] = None
    batch_size: int = Field(500, ge=1, le=50_000)
    flush_interval: Duration = 0.2
    max_payload_bytes: int = Field(65_536, ge=64, le=16 * 1024 * 1024)
    metrics_listen: Optional[HostPort] = None

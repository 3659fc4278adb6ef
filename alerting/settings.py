"""The ``alerting:`` section of vigil.yaml."""

from __future__ import annotations

from pydantic import BaseModel

from vigil.configtypes import STRICT

__all__ = ["AlertingSettings"]


class AlertingSettings(BaseModel):
    model_config = STRICT

    client_id: str = "vigil-alerting"
    rules: str = "rules"
    state: str = "vigil-data/alerts.db"

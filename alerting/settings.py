"""The ``alerting:`` section of vigil.yaml."""

from __future__ import annotations

from pydantic import BaseModel, Field, field_validator

from vigil.configtypes import STRICT

__all__ = ["AlertingSettings"]


class AlertingSettings(BaseModel):
    model_config = STRICT

    client_id: str = "vigil-alerting"
    rules: str = "rules"
    state: str = "vigil-data/alerts.db"
    partition: str = Field(
        "0/1",
        description="I/N: this instance evaluates the series with crc32(series) % N == I (run N instances, "
        "each with its own client_id and state file, to spread the rule engine).",
    )

    @field_validator("partition")
    @classmethod
    def _partition(cls, v: str) -> str:
        from alerting.partition import parse_partition

        parse_partition(v)
        return v

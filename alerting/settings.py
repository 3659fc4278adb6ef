"""The ``alerting:`` section of vigil.yaml."""

from __future__ import annotations

from typing import Optional

from pydantic import BaseModel, Field, field_validator, model_validator

from vigil.core.configtypes import STRICT, Duration, HostPort, Linger

__all__ = ["AlertingSettings", "HeartbeatSettings", "WatchdogSettings"]


class WatchdogSettings(BaseModel):
    """When Vigil's own pipeline counts as stalled: the built-in alert `vigil-pipeline` (docs/production.md)."""

    model_config = STRICT

    enabled: bool = Field(True, description="Raise the pipeline alert (on partition 0 only when partitioned).")
    notify: list[str] = Field(default_factory=list, description=(
        "Receivers of the pipeline alert (routes matching `rule: vigil-pipeline` add more); with neither, it goes "
        "to every receiver: a pipeline alert nobody hears is the failure it exists to prevent."))
    no_events: Duration = Field(300.0, description="No event from the bridge this long while a device reports online.")
    bridge_offline: Duration = Field(60.0, description=(
        "A bridge's health says offline (its last will), or stopped refreshing, this long."))
    store_down: Duration = Field(120.0, description="A bridge reports its store unreachable this long.")
    spool_events: int = Field(10_000, ge=1, description="More events than this waiting in a bridge's disk spool.")
    lag: Duration = Field(300.0, description=(
        "A bridge further behind than this (receive time minus source time of its newest reading)."))
    notify_failing: Duration = Field(300.0, description=(
        "A receiver failing (`delivery.failing_after` attempts in a row) this long."))
    broker_down: Duration = Field(60.0, description="The rule engine cannot reach the broker this long.")
    clear_after: Duration = Field(60.0, description="Every problem gone this long before the alert resolves.")


class HeartbeatSettings(BaseModel):
    """A dead man's switch: an HTTP GET to `url` every `every` while the pipeline is healthy."""

    model_config = STRICT

    url: Optional[str] = Field(None, description="A push URL (healthchecks.io, Uptime Kuma, ...); none: no heartbeat.")
    every: Duration = Field(60.0, description="How often to ping while the pipeline is healthy.")
    timeout: Duration = Field(10.0, description="How long one ping may take.")

    @field_validator("url")
    @classmethod
    def _http(cls, v: Optional[str]) -> Optional[str]:
        if v is not None and not v.startswith(("http://", "https://")):
            raise ValueError("expected an http:// or https:// URL, such as https://hc-ping.com/<uuid>")
        return v

    @field_validator("every", "timeout")
    @classmethod
    def _positive(cls, v: float) -> float:
        if v <= 0:
            raise ValueError("expected a duration above 0s")
        return v


#: the default of ``device_reconnect_grace``: an edge agent tries its broker at least once a minute
DEVICE_RECONNECT_GRACE = 60.0


class AlertingSettings(BaseModel):
    model_config = STRICT

    client_id: str = "vigil-alerting"
    rules: str = "rules"
    state: str = "vigil-data/alerts.db"
    partition: str = Field(
        "0/1",
        description="I/N: this instance evaluates the series with crc32(series) % N == I (run N instances, "
        "each with its own client_id and state file, to spread the rule engine; with a postgresql:// state the "
        "engines share the partitions by themselves: see `partitions`).",
    )
    partitions: int = Field(4, ge=1, le=256, description=(
        "With a postgresql:// state shared by several engines: how many partitions the series are split into; "
        "each engine holds a fair share and takes over those of an engine that dies (docs/scaling.md). Every "
        "engine of a deployment must say the same."))
    device_reconnect_grace: Duration = Field(DEVICE_RECONNECT_GRACE, description=(
        "After the rule engine could not hear its input (its start, a broker outage), a device's offline status "
        "counts only this long after input came back: devices reconnect meanwhile (an edge agent within a minute), "
        "and Mosquitto sends every device's last will as it stops."))
    watchdog: WatchdogSettings = Field(default_factory=WatchdogSettings)
    heartbeat: HeartbeatSettings = Field(default_factory=HeartbeatSettings)
    batch_linger: Linger = Field(0.01, description=(
        "While events stream in (the batch before came less than twice this long ago), the engine waits until the "
        "first event of a batch has waited this long, so that more share one wake-up, one commit and one "
        "acknowledgement (at 1,000 events/s, 10 ms costs a fifth less CPU than 4 ms and adds about 4 ms to an "
        "alert); an event after a quiet spell is judged at once. 0 turns it off. See docs/proof.md, Issue 18, The "
        "lingers."))
    health_every: Duration = Field(10.0, description=(
        "How often the engine publishes its own health (on changes at once)."))
    metrics_listen: Optional[HostPort] = Field(None, description=(
        "Serve the rule engine's metrics (Prometheus text, vigil_alerting_*) on this address; none: not served "
        "on a port of its own (under `vigil up` the dashboard's /api/v1/metrics shows them)."))

    @field_validator("partition")
    @classmethod
    def _partition(cls, v: str) -> str:
        from alerting.partition import parse_partition

        parse_partition(v)
        return v

    @model_validator(mode="after")
    def _shared(self) -> AlertingSettings:
        from vigil.core.sqldb import is_postgres

        if is_postgres(self.state) and self.partition != "0/1":
            raise ValueError("partition: engines sharing a postgresql:// state share the partitions by themselves "
                             f"(alerting.partitions, now {self.partitions}); leave partition out")
        return self

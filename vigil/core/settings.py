"""The settings sections every server part shares: how to reach the broker (``mqtt:``) and the store
(``store:``). The assembled vigil.yaml is :class:`vigil.app.config.VigilConfig`."""

from __future__ import annotations

import os
import ssl
from typing import Literal, Optional

from pydantic import BaseModel, Field, SecretStr, model_validator

from vigil.core.configtypes import STRICT, BrokerUrlText, Duration, Port, StoreUrlText
from vigil.core.topics import Topics
from vigil.core.urls import BrokerUrl, StoreUrl, parse_broker_list, parse_broker_url, parse_store_url

__all__ = ["SESSION_EXPIRY", "MqttSettings", "StoreSettings", "ssl_context"]


SESSION_EXPIRY = 7 * 86400  # seconds the broker keeps a persistent session while the client is away


class MqttSettings(BaseModel):
    """How every server part reaches the broker."""

    model_config = STRICT

    url: Optional[BrokerUrlText] = None
    host: Optional[str] = None
    port: Optional[Port] = None
    tls: bool = False
    username: Optional[str] = None
    password: Optional[SecretStr] = None
    root: str = "vigil"
    ca_file: Optional[str] = None
    cert_file: Optional[str] = None
    key_file: Optional[str] = None
    tls_insecure: bool = False
    protocol: Literal["5", "3.1.1"] = "5"
    keepalive: int = Field(30, ge=5, le=3600)

    @model_validator(mode="after")
    def _one_address(self) -> MqttSettings:
        if self.url and (self.host or self.port):
            raise ValueError("give either url or host/port, not both")
        Topics(self.root)
        return self

    def broker(self, env: Optional[dict[str, str]] = None) -> BrokerUrl:
        """The first (or only) broker's address and credentials."""
        return self.brokers(env)[0]

    def brokers(self, env: Optional[dict[str, str]] = None) -> list[BrokerUrl]:
        """Every broker's address and credentials, in the order to try them (``url`` may name several)."""
        env = dict(os.environ) if env is None else env
        if self.url:
            found = parse_broker_list(self.url, env)
        else:
            scheme = "mqtts" if self.tls else "mqtt"
            port = f":{self.port}" if self.port else ""
            found = [parse_broker_url(f"{scheme}://{self.host or '127.0.0.1'}{port}", env)]
        password = self.password.get_secret_value() if self.password else None
        return [BrokerUrl(b.host, b.port, b.tls, self.username or b.username, password or b.password) for b in found]

    @property
    def topics(self) -> Topics:
        return Topics(self.root)


def ssl_context(settings: MqttSettings) -> ssl.SSLContext:
    """The TLS context of ``mqtts://`` (CA file, optional client certificate, ``tls_insecure``),
    for the aiomqtt clients (vigil/core/mqtt.py) and the bridge's gmqtt one (broker_bridge/link.py)."""
    context = ssl.create_default_context(cafile=settings.ca_file)
    if settings.cert_file:
        context.load_cert_chain(settings.cert_file, settings.key_file)
    if settings.tls_insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


class StoreSettings(BaseModel):
    """Where events are stored (the system of record)."""

    model_config = STRICT

    url: StoreUrlText = "sqlite:///vigil-data/vigil.db"
    token: Optional[SecretStr] = None
    password: Optional[SecretStr] = None
    retention: Duration = 30 * 86400.0
    labels: list[str] = Field(default_factory=list, description="labels stored as InfluxDB tags")

    def store_url(self, env: Optional[dict[str, str]] = None) -> StoreUrl:
        env = dict(os.environ) if env is None else env
        u = parse_store_url(self.url, env)
        token = self.token.get_secret_value() if self.token else u.token
        password = self.password.get_secret_value() if self.password else u.password
        return StoreUrl(**{**u.__dict__, "token": token, "password": password})

"""Field types shared by every part's configuration section (pydantic).

Each error they raise is a sentence a user can act on; :mod:`vigil.app.config` adds the file,
the line and the key.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator, ConfigDict, PlainSerializer

from vigil.core.durations import format_duration, parse_duration
from vigil.core.topics import validate_segment
from vigil.core.urls import broker_list_text, parse_broker_list, parse_store_url

__all__ = ["STRICT", "BrokerUrlText", "Duration", "HostPort", "Linger", "Port", "StoreUrlText", "TopicName"]

# Every section forbids unknown keys: a typo must be an error, not a silent default.
STRICT = ConfigDict(extra="forbid", frozen=True)


def _duration(value: Any) -> float:
    return parse_duration(value)


def _linger(value: Any) -> float:
    seconds = parse_duration(value)
    if seconds > 1.0:
        raise ValueError(f"expected a duration of at most 1s, such as 10ms, got {value!r}")
    return seconds


def _port(value: Any) -> int:
    if isinstance(value, bool) or not (
        isinstance(value, int) or (isinstance(value, str) and value.isdigit())
    ) or not 1 <= int(value) <= 65535:
        raise ValueError("expected an integer 1-65535")
    return int(value)


def _broker(value: Any) -> str:
    value = broker_list_text(value)  # a YAML list is kept as the comma form
    if not isinstance(value, str):
        raise ValueError("expected a broker URL such as mqtt://127.0.0.1:1883, or a list of them")
    parse_broker_list(value, env={})
    return value


def _store(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("expected a store URL such as sqlite:///vigil.db")
    parse_store_url(value, env={})
    return value


def _hostport(value: Any) -> str:
    if not isinstance(value, str) or ":" not in value:
        raise ValueError("expected HOST:PORT, such as 127.0.0.1:8080")
    host, _, port = value.rpartition(":")
    if not host:
        raise ValueError("expected HOST:PORT, such as 127.0.0.1:8080")
    _port(port)
    return value


def _topic_name(value: Any) -> str:
    return validate_segment(value)


Duration = Annotated[float, BeforeValidator(_duration), PlainSerializer(format_duration, return_type=str)]
#: how long a batch may wait to fill: 0 to 1 s
Linger = Annotated[float, BeforeValidator(_linger), PlainSerializer(format_duration, return_type=str)]
Port = Annotated[int, BeforeValidator(_port)]
BrokerUrlText = Annotated[str, BeforeValidator(_broker)]
StoreUrlText = Annotated[str, BeforeValidator(_store)]
HostPort = Annotated[str, BeforeValidator(_hostport)]
TopicName = Annotated[str, BeforeValidator(_topic_name)]

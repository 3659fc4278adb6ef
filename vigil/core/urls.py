"""Broker and store URLs, as given to ``--broker`` and ``--store`` (standard library only).

Broker: ``mqtt://[user[:pass]@]host[:port]`` (port 1883) or ``mqtts://...`` for TLS (port 8883).
Several brokers, tried in turn (failover): ``mqtt://a:1883,mqtt://b:1883`` or, in YAML, a list; all
of one scheme, each once, at most 16 (a comma inside a password is written ``%2C``).

Store:
- ``sqlite:///relative/or/absolute/path.db`` (``sqlite:////var/lib/vigil/vigil.db`` is absolute;
  ``sqlite:///vigil.db`` is relative to the working directory), or ``memory://`` for tests;
- ``influxdb1://[user[:pass]@]host[:port]/DATABASE``: InfluxDB 1.x over its v1 HTTP API;
- ``influxdb2://host[:port]/BUCKET?org=ORG``: InfluxDB 2.x / 3.x, token from ``VIGIL_INFLUXDB_TOKEN``.
Add ``s`` to the scheme (``influxdb1s://``, ``influxdb2s://``) for HTTPS; ``?ca=/path/ca.pem``
names a CA bundle and ``?verify=false`` turns certificate checks off (for testing only).
Passwords may instead come from ``VIGIL_MQTT_PASSWORD`` and ``VIGIL_INFLUXDB_PASSWORD``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Optional
from urllib.parse import parse_qs, unquote, urlsplit

from vigil.core.errors import VigilError

__all__ = ["MAX_BROKERS", "BrokerUrl", "StoreUrl", "UrlError", "broker_list_text", "mask_url", "parse_broker_list",
           "parse_broker_url", "parse_store_url"]

#: the most broker addresses one part takes (a list is for failover, not a directory of brokers)
MAX_BROKERS = 16
_LABEL = re.compile(r"[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?")


class UrlError(VigilError, ValueError):
    """A broker or store URL is malformed; the message says what a good one looks like."""


@dataclass(frozen=True)
class BrokerUrl:
    """A parsed ``--broker`` URL: where the broker is, whether over TLS, and the credentials."""

    host: str
    port: int
    tls: bool = False
    username: Optional[str] = None
    password: Optional[str] = None

    def __str__(self) -> str:
        scheme = "mqtts" if self.tls else "mqtt"
        auth = f"{self.username}:***@" if self.username and self.password else (
            f"{self.username}@" if self.username else "")
        return f"{scheme}://{auth}{self.address}"

    @property
    def address(self) -> str:
        """``host:port``, an IPv6 host in brackets."""
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True)
class StoreUrl:
    """A parsed ``--store`` URL: the kind of store and where it is."""

    kind: str  # "sqlite" | "memory" | "influxdb1" | "influxdb2"
    path: str = ""
    host: str = ""
    port: int = 0
    database: str = ""  # database (1.x) or bucket (2.x)
    org: str = ""
    username: Optional[str] = None
    password: Optional[str] = None
    token: Optional[str] = None
    tls: bool = False
    ca_file: Optional[str] = None
    verify: bool = True

    @property
    def http_base(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"

    def __str__(self) -> str:
        if self.kind == "sqlite":
            return f"sqlite:///{self.path}"
        if self.kind == "memory":
            return "memory://"
        scheme = self.kind + ("s" if self.tls else "")
        auth = f"{self.username}@" if self.username else ""
        query = f"?org={self.org}" if self.org else ""
        return f"{scheme}://{auth}{self.host}:{self.port}/{self.database}{query}"


def _port(text: str, url: str, default: int) -> int:
    if not text:
        return default
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise UrlError(f"{mask_url(url)}: port must be a number 1-65535, got {text!r}")
    return int(text)


def _split_netloc(url: str, netloc: str) -> tuple[Optional[str], Optional[str], str, str]:
    auth, _, hostport = netloc.rpartition("@")
    user = password = None
    if auth:
        user, sep, pw = auth.partition(":")
        user = unquote(user) or None
        password = unquote(pw) if sep else None
    if hostport.startswith("["):
        host, _, rest = hostport[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    else:
        host, _, port = hostport.partition(":")
    if not host:
        raise UrlError(f"{mask_url(url)}: no host name")
    _check_host(url, host, bracketed=hostport.startswith("["))
    return user, password, host, port


def _check_host(url: str, host: str, *, bracketed: bool) -> None:
    """A host name of dot-separated labels (letters, digits, '-', '_'), an IPv4 address, or an IPv6 one in []."""
    if bracketed:
        import ipaddress  # only for [IPv6]: the edge agent's footprint (docs/edge.md) stays as it was

        try:
            ipaddress.IPv6Address(host.partition("%")[0])
        except ValueError:
            raise UrlError(f"{mask_url(url)}: [{host}] is not an IPv6 address") from None
        return
    name = host[:-1] if host.endswith(".") else host
    if len(name) > 253 or not all(_LABEL.fullmatch(label) for label in name.split(".")):
        raise UrlError(f"{mask_url(url)}: {host!r} is not a valid host name (letters, digits, '-' and '.'; "
                       "an IPv6 address goes in [])")


def parse_broker_url(url: str, env: Optional[Mapping[str, str]] = None) -> BrokerUrl:
    """Parse ``mqtt://[user[:pass]@]host[:port]`` or ``mqtts://...``."""
    env = os.environ if env is None else env
    if not isinstance(url, str) or "://" not in url:
        raise UrlError(f"expected a broker URL like mqtt://host:1883 or mqtts://user@host:8883, got {url!r}")
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # e.g. an unbalanced or non-IPv6 [...]
        raise UrlError(f"{mask_url(url)}: {exc}") from None
    if parts.scheme not in ("mqtt", "mqtts"):
        raise UrlError(f"{mask_url(url)}: the scheme must be mqtt:// or mqtts:// (TLS), got {parts.scheme}://")
    if parts.path not in ("", "/") or parts.query:
        raise UrlError(f"{mask_url(url)}: a broker URL has no path or query; use mqtt://host:port")
    tls = parts.scheme == "mqtts"
    user, password, host, port = _split_netloc(url, parts.netloc)
    if password is None:
        password = env.get("VIGIL_MQTT_PASSWORD") or None
    return BrokerUrl(host, _port(port, url, 8883 if tls else 1883), tls, user, password)


def parse_broker_list(value: str | Sequence[str], env: Optional[Mapping[str, str]] = None) -> list[BrokerUrl]:
    """One broker URL, several separated by commas, or a list of them: the brokers in the order to try.

    All of one scheme (mqtt or mqtts), each broker once, at most :data:`MAX_BROKERS`."""
    texts = value.split(",") if isinstance(value, str) else value
    if not isinstance(texts, Sequence) or not texts:
        raise UrlError("expected a broker URL like mqtt://host:1883, or several: mqtt://a:1883,mqtt://b:1883")
    if len(texts) > MAX_BROKERS:
        raise UrlError(f"{len(texts)} brokers given; at most {MAX_BROKERS}")
    brokers: list[BrokerUrl] = []
    for i, text in enumerate(texts, 1):
        if not isinstance(text, str) or not text.strip():
            raise UrlError(f"broker {i} of {len(texts)} is empty: a stray comma? "
                           "expected mqtt://a:1883,mqtt://b:1883")
        text = text.strip()
        b = parse_broker_url(text, env)
        if brokers and b.tls != brokers[0].tls:
            raise UrlError(f"{mask_url(text)}: all brokers must use one scheme; the first is "
                           f"{'mqtts' if brokers[0].tls else 'mqtt'}://")
        if any(o.host.lower() == b.host.lower() and o.port == b.port for o in brokers):
            raise UrlError(f"{mask_url(text)}: {b.address} is given twice")
        brokers.append(b)
    return brokers


def broker_list_text(value: Any) -> Any:
    """A YAML list of broker URLs as the comma form (what the settings keep); anything else as it is."""
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return ",".join(v.strip() for v in value)
    return value


def parse_store_url(url: str, env: Optional[Mapping[str, str]] = None) -> StoreUrl:
    """Parse a ``--store`` URL (see the module docstring for the forms)."""
    env = os.environ if env is None else env
    examples = "sqlite:///vigil.db, influxdb1://host:8086/vigil or influxdb2://host:8086/BUCKET?org=ORG"
    if not isinstance(url, str) or "://" not in url:
        raise UrlError(f"expected a store URL like {examples}, got {url!r}")
    scheme, _, rest = url.partition("://")
    if scheme == "memory":
        return StoreUrl("memory")
    if scheme == "sqlite":
        if not rest.startswith("/") or rest == "/":
            raise UrlError(f"{url}: expected sqlite:///path/to/vigil.db (three slashes, then the file)")
        return StoreUrl("sqlite", path=rest[1:])
    if scheme not in ("influxdb1", "influxdb1s", "influxdb2", "influxdb2s"):
        raise UrlError(f"{mask_url(url)}: unknown store scheme {scheme}://; expected one of {examples}")
    parts = urlsplit(url)
    user, password, host, port = _split_netloc(url, parts.netloc)
    database = unquote(parts.path.strip("/"))
    if not database or "/" in database:
        what = "DATABASE" if scheme.startswith("influxdb1") else "BUCKET"
        raise UrlError(f"{mask_url(url)}: expected one path level naming the {what}, e.g. {scheme}://{host}:8086/vigil")
    query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
    unknown = set(query) - {"org", "ca", "verify"}
    if unknown:
        names = ", ".join(sorted(unknown))
        raise UrlError(f"{mask_url(url)}: unknown parameter(s) {names}; known: org, ca, verify")
    kind = scheme.rstrip("s") if scheme.endswith("s") else scheme
    org = query.get("org", "")
    if kind == "influxdb2" and not org:
        raise UrlError(f"{mask_url(url)}: InfluxDB 2.x needs ?org=ORG")
    if password is None:
        password = env.get("VIGIL_INFLUXDB_PASSWORD") or None
    return StoreUrl(
        kind=kind,
        host=host,
        port=_port(port, url, 8086),
        database=database,
        org=org,
        username=user,
        password=password,
        token=env.get("VIGIL_INFLUXDB_TOKEN") or None,
        tls=scheme.endswith("s"),
        ca_file=query.get("ca") or None,
        verify=query.get("verify", "true").lower() not in ("false", "0", "no"),
    )


def mask_url(url: str) -> str:
    """The URL with any password, and the value of a query parameter that names a secret, replaced by ``***``
    (each of a comma-separated list of URLs)."""
    if "," in url and all("://" in part for part in url.split(",")):
        return ",".join(mask_url(part) for part in url.split(","))
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    if parts.query:
        query = "&".join(_mask_param(p) for p in parts.query.split("&"))
        url = url.replace("?" + parts.query, "?" + query, 1)
    if parts.password is None:
        return url
    netloc = parts.netloc.rpartition("@")
    user = netloc[0].partition(":")[0]
    return url.replace(parts.netloc, f"{user}:***@{netloc[2]}", 1)


_SECRET_PARAMS = ("token", "pass", "secret", "key", "auth")


def _mask_param(param: str) -> str:
    name, sep, value = param.partition("=")
    return f"{name}=***" if sep and value and any(s in name.lower() for s in _SECRET_PARAMS) else param

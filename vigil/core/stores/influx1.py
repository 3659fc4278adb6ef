"""InfluxDB 1.x through its v1 HTTP API: /write with line protocol, /query with InfluxQL."""

from __future__ import annotations

import base64
import logging
from collections.abc import Sequence
from typing import Optional
from urllib.parse import urlencode

import urllib3

from vigil.core.event import Event, SeriesKey
from vigil.core.urls import StoreUrl

from ._base import Aggregate, Point, Store, StoredField, StoreRejected, StoreUnavailable, storable
from ._influxql import InfluxQLReader
from ._lineproto import lines

__all__ = ["Influx1Store", "http_pool"]

log = logging.getLogger(__name__)


def http_pool(url: StoreUrl) -> urllib3.PoolManager:
    """A connection pool with the URL's TLS settings."""
    kwargs: dict[str, object] = {"maxsize": 4}
    if url.tls:
        kwargs["cert_reqs"] = "CERT_REQUIRED" if url.verify else "CERT_NONE"
        if url.ca_file:
            kwargs["ca_certs"] = url.ca_file
    return urllib3.PoolManager(**kwargs)  # type: ignore[arg-type]


class Influx1Store(Store):
    """Events as points: measurement = metric, tags device/sensor/labels, field ``value`` (and ``raw``,
    the value before calibration, for a calibrated reading)."""

    def __init__(self, url: StoreUrl, timeout: float = 30.0) -> None:
        self.name = str(url)
        self._url = url
        self._http = http_pool(url)
        self._timeout = timeout
        headers = {}
        if url.username:
            token = base64.b64encode(f"{url.username}:{url.password or ''}".encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        self._headers = headers
        self._reader = InfluxQLReader(self.name, url.http_base, url.database, headers, self._http, timeout)

    def write(self, events: Sequence[Event]) -> None:
        with storable(self.name, events) as good:
            if good:
                self._write_batch(good)

    def _write_batch(self, events: Sequence[Event]) -> None:
        body = lines(events).encode("utf-8")
        try:
            resp = self._http.request(
                "POST",
                f"{self._url.http_base}/write?{urlencode({'db': self._url.database, 'precision': 'u'})}",
                body=body,
                headers={**self._headers, "Content-Type": "text/plain; charset=utf-8"},
                timeout=self._timeout,
                retries=False,
            )
        except urllib3.exceptions.HTTPError as exc:
            raise StoreUnavailable(self.name, f"cannot reach InfluxDB: {exc}") from exc
        if resp.status == 204:
            return
        text = resp.data[:500].decode("utf-8", "replace")
        if resp.status >= 500:
            raise StoreUnavailable(self.name, f"write failed ({resp.status}): {text}")
        if resp.status == 404 and "database not found" in text:
            raise StoreRejected(self.name, f"database {self._url.database!r} not found; create it with "
                                f"influx -execute 'CREATE DATABASE \"{self._url.database}\"'")
        raise StoreRejected(self.name, f"write refused ({resp.status}): {text}")

    def query(self, series: SeriesKey, start: float, end: float, bucket: Optional[float] = None,
              aggregate: Aggregate = "mean", field: StoredField = "value") -> list[Point]:
        return self._reader.query(series, start, end, bucket, aggregate, field)

    def latest(self, metric: Optional[str] = None, device: Optional[str] = None) -> list[Event]:
        return self._reader.latest(metric, device)

    def ping(self) -> None:
        try:
            resp = self._http.request("GET", f"{self._url.http_base}/ping", timeout=5.0, retries=False)
        except urllib3.exceptions.HTTPError as exc:
            raise StoreUnavailable(self.name, f"cannot reach InfluxDB: {exc}") from exc
        if resp.status != 204:
            raise StoreUnavailable(self.name, f"/ping answered {resp.status}")

    def create_database(self) -> None:
        """CREATE DATABASE (idempotent); for first start and the demo."""
        self._reader.run(f'CREATE DATABASE "{self._url.database}"')

    def close(self) -> None:
        self._http.clear()

"""InfluxDB 1.x through its v1 HTTP API: /write with line protocol, /query with InfluxQL."""

from __future__ import annotations

import asyncio
import base64
import logging
import ssl
from collections.abc import Sequence
from typing import Optional
from urllib.parse import urlencode

import urllib3

from vigil.core.event import Event, SeriesKey
from vigil.core.urls import StoreUrl

from ._asynchttp import AsyncHttp
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
        self._write_headers = {**headers, "Content-Type": "text/plain; charset=utf-8"}
        self._write_target = f"/write?{urlencode({'db': url.database, 'precision': 'u'})}"
        self._async: Optional[AsyncHttp] = None  # made on the first write_async, on the running loop

    def write(self, events: Sequence[Event]) -> None:
        with storable(self.name, events) as good:
            if good:
                body = lines(good).encode("utf-8")
                try:
                    resp = self._http.request("POST", f"{self._url.http_base}{self._write_target}", body=body,
                                              headers=self._write_headers,
                                              timeout=self._timeout, retries=False)
                except urllib3.exceptions.HTTPError as exc:
                    raise StoreUnavailable(self.name, f"cannot reach InfluxDB: {exc}") from exc
                self._check_write(resp.status, resp.data)

    async def write_async(self, events: Sequence[Event]) -> None:
        """:meth:`write` on the event loop: one kept-alive connection, no worker thread."""
        with storable(self.name, events) as good:
            if good:
                if self._async is None or self._async.loop is not asyncio.get_running_loop():
                    if self._async is not None:
                        self._async.close()
                    self._async = AsyncHttp(self._url.host, self._url.port, tls=self._tls(), timeout=self._timeout)
                body = lines(good).encode("utf-8")
                try:
                    status, answer = await self._async.request("POST", self._write_target, body, self._write_headers)
                except (OSError, TimeoutError) as exc:
                    raise StoreUnavailable(self.name, f"cannot reach InfluxDB: {exc or type(exc).__name__}") from exc
                self._check_write(status, answer)

    def _tls(self) -> Optional[ssl.SSLContext]:
        if not self._url.tls:
            return None
        context = ssl.create_default_context(cafile=self._url.ca_file)
        if not self._url.verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    def _check_write(self, status: int, answer: bytes) -> None:
        """A write's answer: nothing when stored, else the error it means."""
        if status == 204:
            return
        text = answer[:500].decode("utf-8", "replace")
        if status >= 500:
            raise StoreUnavailable(self.name, f"write failed ({status}): {text}")
        if status == 404 and "database not found" in text:
            raise StoreRejected(self.name, f"database {self._url.database!r} not found; create it with "
                                f"influx -execute 'CREATE DATABASE \"{self._url.database}\"'")
        raise StoreRejected(self.name, f"write refused ({status}): {text}")

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
        if self._async is not None:
            self._async.close()

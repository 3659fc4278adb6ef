"""InfluxDB 2.x / 3.x: writes through influxdb-client's v2 write API, reads by InfluxQL on /query.

2.x serves InfluxQL on its v1-compatible ``/query`` when the bucket has a DBRP mapping
(``influx v1 dbrp create --db BUCKET --rp autogen --bucket-id ID --default``); 3.x serves it
natively. Writes were tested against a real server that takes the v2 write API
(VictoriaMetrics), and the InfluxQL reads against a real influxd 1.x (see docs/stores.md).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Optional

import urllib3
from influxdb_client.client.influxdb_client import InfluxDBClient
from influxdb_client.client.write_api import SYNCHRONOUS
from influxdb_client.domain.write_precision import WritePrecision
from influxdb_client.rest import ApiException

from vigil.core.event import Event, SeriesKey
from vigil.core.urls import StoreUrl

from ._base import Aggregate, Point, Store, StoredField, StoreRejected, StoreUnavailable, storable
from ._influxql import InfluxQLReader
from ._lineproto import lines
from .influx1 import http_pool

__all__ = ["Influx2Store"]

log = logging.getLogger(__name__)


class Influx2Store(Store):
    """The same schema as 1.x (measurement = metric, tags, field ``value`` and maybe ``raw``) in a bucket."""

    def __init__(self, url: StoreUrl, timeout: float = 30.0) -> None:
        self.name = str(url)
        self._url = url
        token = url.token or ""
        self._client = InfluxDBClient(
            url=url.http_base,
            token=token,
            org=url.org,
            timeout=int(timeout * 1000),
            verify_ssl=url.verify,
            ssl_ca_cert=url.ca_file,
            retries=False,
        )
        self._write = self._client.write_api(write_options=SYNCHRONOUS)
        self._http = http_pool(url)
        headers = {"Authorization": f"Token {token}"} if token else {}
        self._reader = InfluxQLReader(self.name, url.http_base, url.database, headers, self._http, timeout)

    def write(self, events: Sequence[Event]) -> None:
        with storable(self.name, events) as good:
            if good:
                self._write_batch(good)

    def _write_batch(self, events: Sequence[Event]) -> None:
        try:
            self._write.write(bucket=self._url.database, org=self._url.org, record=lines(events),
                              write_precision=WritePrecision.US)  # type: ignore[arg-type]
        except ApiException as exc:
            status = exc.status or 0
            detail = (exc.body or exc.reason or "")[:500] if isinstance(exc.body or exc.reason, str) else exc.reason
            if status >= 500 or status in (429, 503):
                raise StoreUnavailable(self.name, f"write failed ({status}): {detail}") from exc
            raise StoreRejected(self.name, f"write refused ({status}): {detail}") from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise StoreUnavailable(self.name, f"cannot reach InfluxDB: {exc}") from exc

    def query(self, series: SeriesKey, start: float, end: float, bucket: Optional[float] = None,
              aggregate: Aggregate = "mean", field: StoredField = "value") -> list[Point]:
        return self._reader.query(series, start, end, bucket, aggregate, field)

    def latest(self, metric: Optional[str] = None, device: Optional[str] = None) -> list[Event]:
        return self._reader.latest(metric, device)

    def ping(self) -> None:
        try:
            ok = self._client.ping()
        except Exception as exc:  # influxdb-client raises various transport errors here
            raise StoreUnavailable(self.name, f"cannot reach InfluxDB: {exc}") from exc
        if not ok:
            raise StoreUnavailable(self.name, "/ping did not answer")

    def close(self) -> None:
        self._write.close()  # type: ignore[no-untyped-call]
        self._client.close()  # type: ignore[no-untyped-call]
        self._http.clear()

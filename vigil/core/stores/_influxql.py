"""Reading from InfluxDB with InfluxQL over the v1 /query endpoint (1.x, and 2.x/3.x compatibility)."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any, Optional

import urllib3

from vigil.core.event import METRIC_UNITS, Event, SeriesKey

from ._base import Aggregate, Point, StoredField, StoreRejected, StoreUnavailable, check_query
from ._lineproto import decode_name, quote_ident, quote_literal

__all__ = ["InfluxQLReader"]

log = logging.getLogger(__name__)


class InfluxQLReader:
    """Queries of the Store interface, as InfluxQL sent to ``/query`` with ``epoch=u``."""

    def __init__(self, name: str, base_url: str, database: str, headers: Mapping[str, str],
                 http: urllib3.PoolManager, timeout: float = 30.0) -> None:
        self.name = name
        self._base = base_url
        self._db = database
        self._headers = dict(headers)
        self._http = http
        self._timeout = timeout

    def run(self, q: str) -> list[dict[str, Any]]:
        """Run one statement; the series of its result, or an error turned into ours."""
        try:
            resp = self._http.request(
                "POST",
                f"{self._base}/query",
                fields={"db": self._db, "q": q, "epoch": "u"},
                encode_multipart=False,
                headers=self._headers,
                timeout=self._timeout,
                retries=False,
            )
        except urllib3.exceptions.HTTPError as exc:
            raise StoreUnavailable(self.name, f"cannot reach InfluxDB: {exc}") from exc
        if resp.status >= 500:
            raise StoreUnavailable(self.name, f"InfluxDB answered {resp.status}: {resp.data[:300]!r}")
        try:
            body = json.loads(resp.data)
        except ValueError as exc:
            raise StoreRejected(self.name, f"InfluxDB answered {resp.status} with no JSON") from exc
        if resp.status >= 400 or "error" in body:
            raise StoreRejected(self.name, f"query refused ({resp.status}): {body.get('error', body)}")
        results = body.get("results") or [{}]
        if "error" in results[0]:
            message = results[0]["error"]
            if "database not found" in message:
                raise StoreRejected(self.name, f"{message} (create it, or fix the store URL)")
            raise StoreRejected(self.name, f"query refused: {message}")
        series: list[dict[str, Any]] = results[0].get("series", [])
        return series

    def query(self, series: SeriesKey, start: float, end: float, bucket: Optional[float],
              aggregate: Aggregate, field: StoredField = "value") -> list[Point]:
        check_query(start, end, bucket, aggregate, field)
        where = (
            f"{quote_ident('device')}={quote_literal(series.device)} AND "
            f"{quote_ident('sensor')}={quote_literal(series.sensor)} AND "
            f"time >= {round(start * 1e6)}u AND time < {round(end * 1e6)}u"
        )
        if bucket is None:
            q = f'SELECT "{field}" FROM {quote_ident(series.metric)} WHERE {where}'
        else:
            q = (f'SELECT {aggregate}("{field}") FROM {quote_ident(series.metric)} WHERE {where} '
                 f"GROUP BY time({max(1, round(bucket * 1e6))}u) fill(none)")
        out: list[Point] = []
        for s in self.run(q):
            out.extend(Point(row[0] / 1e6, float(row[1])) for row in s.get("values", []) if row[1] is not None)
        out.sort(key=lambda p: p.ts)
        return out

    def latest(self, metric: Optional[str], device: Optional[str]) -> list[Event]:
        source = quote_ident(metric) if metric else "/.*/"
        where = f" WHERE {quote_ident('device')}={quote_literal(device)}" if device else ""
        q = f'SELECT last("value") FROM {source}{where} GROUP BY "device", "sensor"'
        events = []
        for s in self.run(q):
            name = decode_name(s["name"])
            tags = s.get("tags", {})
            for row in s.get("values", []):
                if row[1] is None or not tags.get("device") or not tags.get("sensor"):
                    continue
                events.append(Event(
                    device=decode_name(tags["device"]),
                    sensor=decode_name(tags["sensor"]),
                    metric=name,
                    value=float(row[1]),
                    ts=row[0] / 1e6,
                    unit=METRIC_UNITS.get(name, ""),
                    source="store",
                ))
        events.sort(key=lambda e: (e.metric, e.device, e.sensor))
        return events

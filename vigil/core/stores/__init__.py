"""Stores: where events are kept (the system of record). See ``_base`` for the interface."""

from __future__ import annotations

from pathlib import Path

from vigil.core.urls import StoreUrl, parse_store_url

from ._base import (
    AGGREGATES,
    Aggregate,
    EventsRefused,
    Point,
    Store,
    StoredField,
    StoreError,
    StoreRejected,
    StoreUnavailable,
    check_query,
    unstorable,
)
from .memory import MemoryStore

__all__ = [
    "AGGREGATES",
    "Aggregate",
    "EventsRefused",
    "MemoryStore",
    "Point",
    "Store",
    "StoreError",
    "StoreRejected",
    "StoreUnavailable",
    "StoredField",
    "check_query",
    "open_store",
    "unstorable",
]


def open_store(url: StoreUrl | str, *, retention: float = 30 * 86400.0, base_dir: str | Path = ".") -> Store:
    """The store a URL names; a relative SQLite path is taken from ``base_dir``."""
    if isinstance(url, str):
        url = parse_store_url(url)
    if url.kind == "memory":
        return MemoryStore()
    if url.kind == "sqlite":
        from .sqlite import SqliteStore

        path = Path(url.path)
        return SqliteStore(path if path.is_absolute() else Path(base_dir) / path, retention=retention)
    if url.kind == "influxdb1":
        from .influx1 import Influx1Store

        return Influx1Store(url)
    if url.kind == "influxdb2":
        from .influx2 import Influx2Store

        return Influx2Store(url)
    raise ValueError(f"unknown store kind {url.kind!r}")

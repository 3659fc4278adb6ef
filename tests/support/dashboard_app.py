"""The dashboard app over in-memory parts (MemoryStore, a recording publisher, a manual clock), and password hashes."""

from __future__ import annotations

import base64
import hashlib
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from dashboard.feed import BrokerUnavailable
from dashboard.live import LiveState
from dashboard.passwords import hash_password
from vigil.app.config import VigilConfig
from vigil.core.clock import ManualClock
from vigil.core.stores import MemoryStore, Store, open_store

NOW = 1_700_000_000.0
ADMIN_PW = "correct horse battery"
VIEWER_PW = "viewer password 1"
INGEST_TOKEN = "ingest-token-0123456789"
VIEWER_TOKEN = "viewer-token-0123456789"
HMAC_SECRET = "hmac-secret-0123456789"
_HASHES: dict[str, str] = {}
PW = "correct horse battery"


def _hash(pw: str) -> str:
    # Password hashing is slow on purpose; hash each test password once per session.
    if pw not in _HASHES:
        _HASHES[pw] = hash_password(pw)
    return _HASHES[pw]


@dataclass
class RecordingPublisher:
    """Our Publisher interface, in memory: keeps what would have gone to the broker."""

    sent: list[tuple[str, bytes, int, bool]] = field(default_factory=list)
    down: bool = False

    async def publish(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False) -> None:
        if self.down:
            raise BrokerUnavailable("not connected")
        self.sent.append((topic, payload, qos, retain))


def make_config(tmp_path: Path, **dashboard: Any) -> VigilConfig:
    rules = tmp_path / "rules.yaml"
    if not rules.exists():
        rules.write_text("rules: []\n")
    section = {
        "users": [{"name": "admin", "password_hash": _hash(ADMIN_PW), "role": "admin"},
                  {"name": "viewer", "password_hash": _hash(VIEWER_PW), "role": "read-only"}],
        "tokens": [{"name": "webhook", "token": INGEST_TOKEN, "role": "ingest"},
                   {"name": "grafana", "token": VIEWER_TOKEN, "role": "read-only"}],
        "hmac_keys": [{"id": "k1", "secret": HMAC_SECRET}],
        "session_secret": "session-secret-for-tests",
        "rules": str(rules),
        **dashboard,
    }
    return VigilConfig.model_validate({"data_dir": str(tmp_path / "vigil-data"), "dashboard": section})


@dataclass
class Harness:
    client: httpx.AsyncClient
    store: MemoryStore
    publisher: RecordingPublisher
    live: LiveState
    clock: ManualClock
    config: VigilConfig

    async def login(self, user: str = "admin", password: str = ADMIN_PW) -> str:
        r = await self.client.post("/login", content=f"username={user}&password={password}&next=/",
                                   headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert r.status_code == 303, r.text
        page = await self.client.get("/")
        token = page.text.split('name="csrf-token" content="', 1)[1].split('"', 1)[0]
        assert token
        return token


def old_sqlite_store(path: Path, values: list[float], start: float, step: float = 60.0,
                     device: str = "freezer", sensor: str = "t0") -> Store:
    """A SQLite store file as an older bridge left it: readings written with SQL, Infinity among them."""
    store = open_store(f"sqlite:///{path}")
    with sqlite3.connect(path) as db:
        db.executemany("INSERT INTO readings (metric, device, sensor, ts, value) VALUES ('temperature', ?, ?, ?, ?)",
                       [(device, sensor, round((start + i * step) * 1e6), v) for i, v in enumerate(values)])
        db.execute("INSERT OR REPLACE INTO latest VALUES ('temperature', ?, ?, ?, ?, '°C', '{}')",
                   (device, sensor, round((start + (len(values) - 1) * step) * 1e6), values[-1]))
    return store


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode().rstrip("=")


def scrypt_hash(password: str, log2_n: int = 14, r: int = 8, p: int = 1) -> str:
    """A hash in the form older versions wrote, made here with hashlib (not with the code under test)."""
    salt = b"sixteen byte slt"
    digest = hashlib.scrypt(password.encode(), salt=salt, n=2**log2_n, r=r, p=p, maxmem=2**31 - 1, dklen=32)
    return f"scrypt${log2_n}${r}${p}${_b64(salt)}${_b64(digest)}"

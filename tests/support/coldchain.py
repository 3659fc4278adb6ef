"""A cold-chain site for the end-to-end week (issue 17): a week of readings for freezers and a fridge, people
with their own notification receivers, and `vigil bridge`, `vigil alerting` and `vigil dashboard` as real
processes on one vigil.yaml (so they share the data directory, and with it the link secret).

The week is simulated: every reading's source time lies in the past week, the values are a function of time
(so the test knows every reading, each day's min and max, and each excursion's start, end and peak), and
they are published at once as a backlog, which the engine judges on source time.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import sqlite3
import subprocess
import threading
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Optional
from zoneinfo import ZoneInfo

import httpx
import paho.mqtt.client as mqtt
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from tests.support.bridge import BridgeProcess, reading
from tests.support.procs import VIGIL, VigilProcess
from tests.support.services import Influxd, Mosquitto, free_port, wait_until

__all__ = ["STEP", "ZONE", "Excursion", "People", "Site", "Unit", "Watch", "Week", "sql"]

ZONE = ZoneInfo("Europe/Berlin")
STEP = 300.0  # one reading every 5 minutes
ADMIN_TOKEN = "e2e-manager-token-0123456789abcdef"  # the manager's, on the dashboard


@dataclass(frozen=True)
class Excursion:
    """Readings ``values`` from local ``day`` (0: the week's first) at ``start`` (HH:MM), one every STEP."""

    day: int
    start: str
    values: tuple[float, ...]

    def begins(self, week_start: dt.datetime) -> float:
        h, m = map(int, self.start.split(":"))
        return (week_start + dt.timedelta(days=self.day)).replace(hour=h, minute=m).timestamp()

    @property
    def peak(self) -> float:
        return max(self.values)


@dataclass(frozen=True)
class Unit:
    """One probe: ``base`` °C with a daily swing and a deterministic wobble, plus its excursions."""

    series: str  # device/sensor/metric
    base: float
    excursions: tuple[Excursion, ...] = ()

    @property
    def device(self) -> str:
        return self.series.split("/")[0]

    def normal(self, ts: float, week_start: float) -> float:
        k = round((ts - week_start) / STEP)
        day = int((ts - week_start) // 86400)
        return round(self.base + 0.1 * day + 0.8 * math.sin(2 * math.pi * k / 288) + 0.1 * ((k * 7) % 5 - 2), 1)


@dataclass
class Week:
    """The last seven whole days in the site's zone, and every unit's readings over them."""

    units: tuple[Unit, ...]
    today: dt.date = field(default_factory=lambda: dt.datetime.now(ZONE).date())

    @property
    def start_dt(self) -> dt.datetime:
        first = self.today - dt.timedelta(days=7)
        return dt.datetime(first.year, first.month, first.day, tzinfo=ZONE)

    @property
    def start(self) -> float:
        return self.start_dt.timestamp()

    @property
    def end(self) -> float:
        return dt.datetime(self.today.year, self.today.month, self.today.day, tzinfo=ZONE).timestamp()

    def readings(self, unit: Unit) -> dict[float, float]:
        """Source time -> value, every STEP over the week."""
        out: dict[float, float] = {}
        ts = self.start
        while ts < self.end:
            out[ts] = unit.normal(ts, self.start)
            ts += STEP
        for exc in unit.excursions:
            t0 = exc.begins(self.start_dt)
            for i, v in enumerate(exc.values):
                out[t0 + i * STEP] = v
        return out

    def messages(self) -> list[tuple[str, bytes]]:
        """Every unit's readings as the edge publishes them, in source-time order."""
        rows = [(ts, u.device, v) for u in self.units for ts, v in self.readings(u).items()]
        rows.sort()
        return [(f"vigil/readings/{dev}/t0", reading(v, ts)) for ts, dev, v in rows]

    def days(self) -> list[dt.date]:
        return [self.start_dt.date() + dt.timedelta(days=i) for i in range(7)]

    def min_max(self, unit: Unit) -> dict[dt.date, tuple[float, float]]:
        per: dict[dt.date, list[float]] = {}
        for ts, v in self.readings(unit).items():
            per.setdefault(dt.datetime.fromtimestamp(ts, ZONE).date(), []).append(v)
        return {d: (min(vs), max(vs)) for d, vs in per.items()}

    def at_marks(self, unit: Unit, every: float) -> dict[float, float]:
        """The readings at the report's marks: the week's start and every ``every`` after it."""
        data = self.readings(unit)
        return {ts: data[ts] for ts in data if (ts - self.start) % every == 0}


class People:
    """One HTTP receiver for apprise json:// notifications; each person has a path of their own."""

    def __init__(self) -> None:
        self.port = free_port()
        self.got: dict[str, list[dict[str, Any]]] = {}
        self.lock = threading.Lock()
        people = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = {"raw": raw.decode("utf-8", "replace")}
                with people.lock:
                    people.got.setdefault(self.path.strip("/"), []).append(body)
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, name="e2e-people", daemon=True)
        self.thread.start()

    def url(self, person: str) -> str:
        return f"json://127.0.0.1:{self.port}/{person}"

    def messages(self, person: str, about: str = "") -> list[str]:
        """Title and text of each message ``person`` got that mentions ``about``."""
        with self.lock:
            bodies = list(self.got.get(person, []))
        texts = [f"{b.get('title', '')}\n{b.get('message', '')}" for b in bodies]
        return [t for t in texts if about in t]

    def links(self, person: str, about: str, base: str) -> list[str]:
        """The acknowledgement links in ``person``'s messages about ``about``."""
        pattern = re.compile(re.escape(base.rstrip("/")) + r"/ack/[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
        return [m for t in self.messages(person, about) for m in pattern.findall(t)]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


class Watch:
    """The retained alert states (vigil/alerts/#), the last payload of each alert."""

    def __init__(self, broker: Mosquitto) -> None:
        self.last: dict[str, dict[str, Any]] = {}
        self.lock = threading.Lock()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"watch-{free_port()}", protocol=mqtt.MQTTv5)
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", broker.port)
        self.client.subscribe("vigil/alerts/#", qos=1)
        self.client.loop_start()

    def _on_message(self, c: mqtt.Client, u: object, m: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.last[m.topic.removeprefix("vigil/alerts/")] = json.loads(m.payload) if m.payload else {}

    def alert(self, key: str) -> dict[str, Any]:
        with self.lock:
            return dict(self.last.get(key, {}))

    def state(self, key: str) -> str:
        return str(self.alert(key).get("state", ""))

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


class Site:
    """vigil.yaml and the rules file in ``root``; the bridge, the rule engine and the dashboard as processes."""

    def __init__(self, root: Path, broker: Mosquitto, rules: str, influx: Optional[tuple[Influxd, str]] = None) -> None:
        """The store: SQLite in ``root``, or ``influx`` (a server and a database of it)."""
        self.root = root
        self.broker = broker
        self.db = root / "vigil.db"
        self.influx = influx
        self.store_url = influx[0].url(influx[1]) if influx else f"sqlite:///{self.db}"
        self.state = root / "data" / "alerts.db"  # beside the link secret, as by default
        self.base = f"http://127.0.0.1:{free_port()}"
        (root / "rules.yaml").write_text(rules)
        self.config = root / "vigil.yaml"
        self.config.write_text(yaml.safe_dump({
            "data_dir": str(root / "data"),
            "mqtt": {"url": broker.url},
            "store": {"url": self.store_url},
            "alerting": {"rules": str(root / "rules.yaml"), "state": str(self.state)},
            "dashboard": {"listen": self.base.removeprefix("http://"), "public_url": self.base,
                          "timezone": ZONE.key,
                          "tokens": [{"name": "manager", "role": "admin", "token": ADMIN_TOKEN}]},
        }))
        self.procs: list[Any] = []

    def start(self) -> None:
        bridge = BridgeProcess(self.broker, self.store_url, self.root / "bridge")
        bridge.start()
        self.procs.append(bridge)
        engine = VigilProcess([VIGIL, "alerting", "-c", str(self.config)], self.root / "engine.log", cwd=self.root)
        self.procs.append(engine)
        self.engine = engine
        assert wait_until(lambda: "connected to the broker" in engine.output(), 30), engine.output()[-3000:]
        dash = VigilProcess([VIGIL, "dashboard", "-c", str(self.config)], self.root / "dashboard.log", cwd=self.root)
        self.procs.append(dash)
        self.dashboard = dash
        assert wait_until(self._healthy, 30), dash.output()[-3000:]

    def _healthy(self) -> bool:
        try:
            return httpx.get(f"{self.base}/api/v1/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.request(method, f"{self.base}{path}", timeout=15,
                             headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, **kwargs)

    def stored(self) -> int:
        """How many readings the store holds."""
        if self.influx:
            server, db = self.influx
            series = server.query('SELECT count("value") FROM "temperature"', db=db)["results"][0].get("series")
            return int(series[0]["values"][0][1]) if series else 0
        if not self.db.exists():
            return 0
        with sqlite3.connect(f"file:{self.db}?mode=ro", uri=True) as conn:
            try:
                return int(conn.execute("SELECT count(*) FROM readings").fetchone()[0])
            except sqlite3.Error:
                return 0

    def reading(self, device: str, ts: float) -> list[float]:
        """The stored values of ``device``/t0's temperature at ``ts`` (one, or none)."""
        if self.influx:
            server, db = self.influx
            q = f"SELECT \"value\" FROM \"temperature\" WHERE \"device\" = '{device}' AND time = {round(ts * 1e6)}u"
            series = server.query(q, db=db)["results"][0].get("series")
            return [float(v[1]) for v in series[0]["values"]] if series else []
        rows = sql(self.db, "SELECT value FROM readings WHERE metric = 'temperature' AND device = ? AND sensor = 't0' "
                   "AND ts = ?", device, round(ts * 1e6))
        return [float(r[0]) for r in rows]

    def change_reading(self, device: str, ts: float, value: float) -> None:
        """Overwrite a stored reading behind Vigil's back (SQL, or a point written again with the same series
        and time, which InfluxDB takes as a replacement)."""
        if self.influx:
            server, db = self.influx
            tags = server.query('SHOW TAG KEYS FROM "temperature"', db=db)["results"][0]["series"][0]["values"]
            assert sorted(t[0] for t in tags) == ["device", "sensor"], tags  # the point's whole tag set
            line = f"temperature,device={device},sensor=t0 value={value} {round(ts * 1e6)}"
            req = urllib.request.Request(f"http://127.0.0.1:{server.port}/write?db={db}&precision=u",
                                         data=line.encode(), method="POST")
            with urllib.request.urlopen(req, timeout=10) as r:
                assert r.status == 204
        else:
            sql(self.db, "UPDATE readings SET value = ? WHERE metric = 'temperature' AND device = ? AND sensor = 't0' "
                "AND ts = ?", value, device, round(ts * 1e6))

    def vigil(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """A `vigil` command on this site's vigil.yaml, as a process; its exit status and output."""
        return subprocess.run([VIGIL, *args], cwd=self.root, capture_output=True, text=True, timeout=timeout)

    def logs(self) -> str:
        return "\n".join(f"--- {p.log.name}\n{p.output()[-2500:]}" for p in self.procs)

    def stop(self) -> None:
        for p in reversed(self.procs):
            p.stop()


def sql(path: Path, statement: str, *args: object) -> list[tuple[Any, ...]]:
    """One statement on a SQLite file, committed; its rows."""
    conn = sqlite3.connect(path, timeout=30)
    try:
        with conn:
            return conn.execute(statement, args).fetchall()
    finally:
        conn.close()

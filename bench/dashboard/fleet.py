"""The Fleet page at 1,000 devices: the time to compute and serve ``GET /api/v1/fleet`` and ``GET /fleet``.

Fills a SQLite file and a private influxd 1.x with a week of hourly health readings of ``--devices``
devices (tests/support/fleet.py: battery and linkquality or battery, rssi and uptime; one in ten has a
problem), serves the dashboard with ``fleet.cache: 0`` (every request computes: one ``latest()``, one
bucketed battery query per battery and two bucketed uptime queries per uptime series under a day),
then ``1s`` with requests 1.1 s apart (each recomputes the answer, the trends and reboot counts are
kept: the steady state), then the default 30 s (the answer kept), and prints the median and p95.

    .venv/bin/python bench/dashboard/fleet.py
    .venv/bin/python bench/dashboard/fleet.py --devices 1000 --requests 10 --stores sqlite
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from bench.dashboard.run import PASSWORD, config  # noqa: E402
from tests.support.fleet import fleet_events  # noqa: E402
from tests.support.services import Influxd, Mosquitto  # noqa: E402
from vigil.app.config import VigilConfig  # noqa: E402
from vigil.app.dashboard_wiring import serve_dashboard as serve  # noqa: E402
from vigil.core.stores import Store, open_store  # noqa: E402


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def timed(client: httpx.AsyncClient, path: str, n: int, pause: float) -> tuple[list[float], int]:
    times, size = [], 0
    for _ in range(n):
        await asyncio.sleep(pause)
        t0 = time.perf_counter()
        r = await client.get(path)
        times.append((time.perf_counter() - t0) * 1000)
        assert r.status_code == 200, r.text[:300]
        size = len(r.content)
    return times, size


async def run_one(store: Store, broker: Mosquitto, tmp: Path, requests: int, cache: str,
                  pause: float) -> dict[str, tuple]:
    base = config(broker, tmp)
    data = base.model_dump(mode="json", by_alias=True, exclude_unset=True)
    data["dashboard"]["fleet"] = {"cache": cache}
    cfg = VigilConfig.model_validate(data)
    ready = asyncio.Event()
    task = asyncio.create_task(serve(cfg, store=store, ready=ready))
    out = {}
    try:
        await asyncio.wait_for(ready.wait(), 15)
        async with httpx.AsyncClient(base_url=f"http://{cfg.dashboard.listen}", timeout=120) as c:
            r = await c.post("/login", data={"username": "admin", "password": PASSWORD})
            assert r.status_code == 303, r.text
            body = (await c.get("/api/v1/fleet")).json()
            out["summary"] = (body["summary"],)
            for path in ("/api/v1/fleet", "/fleet"):
                out[path] = await timed(c, path, requests, pause)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    return out


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--devices", type=int, default=1000)
    ap.add_argument("--requests", type=int, default=10)
    ap.add_argument("--stores", default="sqlite,influxdb1")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        broker = Mosquitto(tmp / "mosquitto")
        broker.start()
        influxd = Influxd(tmp / "influxd") if "influxdb1" in args.stores else None
        try:
            now = time.time()
            events = fleet_events(now, args.devices)
            stores: dict[str, Store] = {}
            if "sqlite" in args.stores:
                stores["SQLite"] = open_store(f"sqlite:///{tmp}/vigil.db")
            if influxd is not None:
                influxd.start()
                stores["influxd 1.x"] = open_store(influxd.url(influxd.create_database("bench")))
            for name, store in stores.items():
                t0 = time.perf_counter()
                for i in range(0, len(events), 5000):
                    store.write(events[i:i + 5000])
                print(f"filled {name}: {len(events):,} readings of {args.devices} devices (7 d hourly) "
                      f"in {time.perf_counter() - t0:.1f} s")
            for name, store in stores.items():
                for cache, pause, what in (("0s", 0.0, "everything read each time"),
                                           ("1s", 1.1, "answer expired, trends and reboots kept"),
                                           ("30s", 0.0, "answer kept")):
                    got = await run_one(store, broker, tmp, args.requests, cache, pause)
                    print(f"{name}, fleet.cache {cache} ({what}): {got['summary'][0]}")
                    for path in ("/api/v1/fleet", "/fleet"):
                        times, size = got[path]
                        print(f"  GET {path}: median {statistics.median(times):.0f} ms, p95 {pct(times, 0.95):.0f} ms, "
                              f"first {times[0]:.0f} ms, {size / 1024:.0f} KB, over {len(times)} requests")
            for store in stores.values():
                store.close()
        finally:
            if influxd is not None:
                influxd.stop()
            broker.stop()


if __name__ == "__main__":
    asyncio.run(main())

"""Speed of ``vigil dashboard``: history of a week, the overview's weight, the live delay.

Prints, against a private influxd 1.x and a SQLite file (both filled with one sensor at 10 s for
7 days, 60,480 points, plus 20 other sensors for the overview):

- the time to serve ``GET /api/v1/history?range=7d`` (downsampled by the store), median and p95;
- the overview page's total transfer size in Chromium (HTML, CSS, JS, chart library, API calls);
- the delay from an MQTT publish to the tile's value changing in the browser, median and max.

    .venv/bin/python bench/dashboard/run.py
    .venv/bin/python bench/dashboard/run.py --requests 50 --publishes 50
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import aiomqtt  # noqa: E402
import httpx  # noqa: E402
from playwright.async_api import async_playwright  # noqa: E402

from dashboard.passwords import hash_password  # noqa: E402
from tests.support.services import Influxd, Mosquitto, free_port  # noqa: E402
from vigil.app.config import VigilConfig  # noqa: E402
from vigil.app.dashboard_wiring import serve_dashboard as serve  # noqa: E402
from vigil.core.event import Event  # noqa: E402
from vigil.core.stores import Store, open_store  # noqa: E402

PASSWORD = "bench password"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]


def fill(store: Store, now: float, others: int = 20) -> None:
    start = now - 7 * 86400
    batch: list[Event] = []
    for i in range(60_480):
        batch.append(Event("freezer", "t0", "temperature", -18 + 2 * math.sin(i / 500), start + i * 10, "°C",
                           labels=(("site", "kitchen"),)))
        if len(batch) == 5000:
            store.write(batch)
            batch = []
    for d in range(others // 2):
        for s, metric, unit in (("t", "temperature", "°C"), ("h", "humidity", "%")):
            batch += [Event(f"room-{d}", s, metric, 20 + d % 10 + math.sin(i / 30), now - 6 * 3600 + i * 60, unit,
                            labels=(("site", f"floor-{d % 3}"),)) for i in range(360)]
            if len(batch) > 20_000:
                store.write(batch)
                batch = []
    store.write(batch)


def config(broker: Mosquitto, tmp: Path) -> VigilConfig:
    return VigilConfig.model_validate({
        "data_dir": str(tmp / "vigil-data"),
        "mqtt": {"url": broker.url},
        "dashboard": {"listen": f"127.0.0.1:{free_port()}", "session_secret": "bench-session-secret",
                      "users": [{"name": "admin", "password_hash": hash_password(PASSWORD), "role": "admin"}],
                      "rules": str(tmp)},
    })


async def history_times(base: str, n: int) -> tuple[list[float], int]:
    async with httpx.AsyncClient(base_url=base, timeout=30) as c:
        await c.post("/login", data={"username": "admin", "password": PASSWORD})
        q = {"device": "freezer", "sensor": "t0", "metric": "temperature", "range": "7d", "points": 1200}
        r = await c.get("/api/v1/history", params=q)  # warm-up
        assert r.status_code == 200 and r.json()["stats"]["count"] >= 60_000, r.text[:200]
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            r = await c.get("/api/v1/history", params=q)
            r.raise_for_status()
            times.append((time.perf_counter() - t0) * 1000)
        return times, len(r.json()["points"])


async def browser_figures(base: str, broker: Mosquitto, publishes: int) -> tuple[int, list[float]]:
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        page = await browser.new_page(viewport={"width": 1280, "height": 900})
        await page.goto(base + "/login")
        await page.fill("input[name=username]", "admin")
        await page.fill("input[name=password]", PASSWORD)
        await page.click("button[type=submit]")
        t0 = time.perf_counter()
        await page.wait_for_selector("body[data-ready=yes]")
        print(f"overview ready (tiles drawn) {1000 * (time.perf_counter() - t0):.0f} ms after the login's redirect")
        await page.wait_for_selector("body[data-sparklines=yes]", timeout=60_000)
        print(f"overview sparklines drawn {1000 * (time.perf_counter() - t0):.0f} ms after the login's redirect")
        # encodedBodySize counts what crossed the wire even for files the login page had already cached,
        # so this is the cold-cache weight of the overview (HTML, CSS, JS, chart library, API calls).
        sizes = await page.evaluate("""() => [...performance.getEntriesByType('navigation'),
            ...performance.getEntriesByType('resource')].map(e => [e.name, e.encodedBodySize, e.decodedBodySize])""")
        size = sum(e[1] for e in sizes)
        print(f"overview resources: {len(sizes)}, {sum(e[2] for e in sizes) / 1024:.1f} KB before gzip")
        await page.evaluate("""() => {
            window.changes = [];
            const v = document.querySelector('a.tile[data-series="freezer/t0/temperature"] .value');
            new MutationObserver(() => window.changes.push(performance.timeOrigin + performance.now()))
                .observe(v, {childList: true, characterData: true, subtree: true});
        }""")
        delays = []
        async with aiomqtt.Client("127.0.0.1", broker.port) as c:
            for i in range(publishes):
                before = await page.evaluate("() => window.changes.length")
                ev = Event("freezer", "t0", "temperature", -10.0 - i / 100, time.time(), "°C",
                           labels=(("site", "kitchen"),))
                sent = time.time() * 1000
                await c.publish("vigil/events/freezer/temperature", ev.to_json(), qos=1)
                await page.wait_for_function(f"() => window.changes.length > {before}", timeout=5000)
                changed = await page.evaluate("() => window.changes[window.changes.length - 1]")
                delays.append(changed - sent)
                await asyncio.sleep(0.05)
        await browser.close()
        return int(size), delays


async def run_one(store: Store, broker: Mosquitto, tmp: Path, n: int, publishes: int,
                  browser: bool) -> tuple[list[float], int, int, list[float]]:
    ready = asyncio.Event()
    cfg = config(broker, tmp)
    task = asyncio.create_task(serve(cfg, store=store, ready=ready))
    try:
        await asyncio.wait_for(ready.wait(), 15)
        base = f"http://{cfg.dashboard.listen}"
        async with httpx.AsyncClient(base_url=base) as c:
            while (await c.get("/api/v1/health")).status_code != 200:
                await asyncio.sleep(0.05)
        times, points = await history_times(base, n)
        size, delays = await browser_figures(base, broker, publishes) if browser else (0, [])
        return times, points, size, delays
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def pct(values: list[float], q: float) -> float:
    return sorted(values)[min(len(values) - 1, int(q * len(values)))]


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=30)
    ap.add_argument("--publishes", type=int, default=30)
    ap.add_argument("--sensors", type=int, default=21, help="sensors on the overview (one is the 7-day one)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        broker, influxd = Mosquitto(tmp / "mosquitto"), Influxd(tmp / "influxd")
        broker.start()
        influxd.start()
        try:
            now = time.time()
            stores = {"influxd 1.x": open_store(influxd.url(influxd.create_database("bench"))),
                      "SQLite": open_store(f"sqlite:///{tmp}/vigil.db")}
            for name, store in stores.items():
                t0 = time.perf_counter()
                fill(store, now, args.sensors - 1)
                print(f"filled {name}: 60,480 points of freezer/t0 + {args.sensors - 1} sensors x 6 h at 1/min "
                      f"in {time.perf_counter() - t0:.1f} s")
            for i, (name, store) in enumerate(stores.items()):
                times, points, size, delays = await run_one(store, broker, tmp, args.requests, args.publishes,
                                                            browser=i == 0)
                print(f"history 7 d at 10 s from {name}: {points} points; median {statistics.median(times):.1f} ms, "
                      f"p95 {pct(times, 0.95):.1f} ms over {len(times)} requests (target < 200 ms)")
                if size:
                    print(f"overview page total transfer with {args.sensors} sensors: {size / 1024:.1f} KB "
                          "(target < 300 KB)")
                    print(f"live delay publish -> tile changed: median {statistics.median(delays):.0f} ms, "
                          f"p95 {pct(delays, 0.95):.0f} ms, max {max(delays):.0f} ms over {len(delays)} publishes "
                          "(target < 1 s)")
            for store in stores.values():
                store.close()
        finally:
            influxd.stop()
            broker.stop()
    print(json.dumps({"ok": True}))


if __name__ == "__main__":
    asyncio.run(main())

"""The overview of a large site in Chromium: 500 sensors on 100 devices (issue 14's speed targets).

Prints, for a cold page load after logging in: first contentful paint, the time until every tile is
drawn with its condition (``data-ready``), until the limits and the sparklines are in, and the bytes
transferred (HTML, CSS, JS, chart library, API calls). Then it publishes ``--rate`` readings a second
for ``--seconds`` and reports the browser's frame gaps (a gap over 50 ms is a dropped frame or more).

The readings go out through Debian's ``mosquitto_pub -l`` (mosquitto-clients), one process per device on
its own events topic, fed lines of ready JSON ten times a second: a Python MQTT client in the bench's
process reached only 322-425 readings/s. A ``mosquitto_sub`` counts what the broker delivered.

    .venv/bin/python bench/dashboard/overview.py
    .venv/bin/python bench/dashboard/overview.py --devices 100 --per-device 5 --rate 500 --seconds 10
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from playwright.async_api import async_playwright  # noqa: E402

from bench.dashboard.run import ARGS, PASSWORD, config  # noqa: E402
from tests.support.services import Mosquitto  # noqa: E402
from vigil.app.dashboard_wiring import serve_dashboard as serve  # noqa: E402
from vigil.core.event import Event  # noqa: E402
from vigil.core.stores import open_store  # noqa: E402

RULES = """\
rules:
  - {name: cold-chain, match: {metric: temperature}, above: 8, clear_below: 7, for: 5m, severity: critical}
  - {name: quiet, match: {metric: temperature}, nodata: 10m}
"""


def event(d: int, s: int, value: float, ts: float) -> Event:
    return Event(f"dev-{d:03}", f"t{s}", "temperature", value, ts, "°C",
                 labels=(("name", f"Fridge {d}.{s}"), ("room", f"Room {d % 12}"), ("site", f"Site {d % 4}")))


def publish(port: int, args: argparse.Namespace, n: int) -> tuple[int, float, int]:
    """``args.rate`` readings a second for ``args.seconds`` through mosquitto_pub: (sent, seconds, delivered)."""
    exe = shutil.which("mosquitto_pub")
    if exe is None:
        raise SystemExit("mosquitto_pub is not installed: apt-get install mosquitto-clients")
    expected = int(args.rate * 0.1) * math.ceil(args.seconds / 0.1)
    # -C/-W: it exits by itself (a killed mosquitto_sub loses what it had not written yet)
    counter = subprocess.Popen(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(port), "-t", "vigil/events/#",
                                "-C", str(expected), "-W", str(math.ceil(args.seconds + 5))], stdout=subprocess.PIPE)
    pubs = [subprocess.Popen([exe, "-h", "127.0.0.1", "-p", str(port), "-q", "0", "-l",
                              "-t", f"vigil/events/dev-{d:03}/temperature"], stdin=subprocess.PIPE)
            for d in range(args.devices)]
    time.sleep(1.0)  # every client connected
    sent, step = 0, 0.1
    t0 = time.perf_counter()
    try:
        while time.perf_counter() - t0 < args.seconds:
            touched = set()
            for _ in range(int(args.rate * step)):
                k = sent % n
                dv = k // args.per_device
                line = event(dv, k % args.per_device, 4 + (sent % 50) / 10, time.time()).to_json() + b"\n"
                stdin = pubs[dv].stdin
                assert stdin is not None
                stdin.write(line)
                touched.add(dv)
                sent += 1
            for dv in touched:
                stdin = pubs[dv].stdin
                assert stdin is not None
                stdin.flush()
            step_end = t0 + math.ceil((time.perf_counter() - t0) / step + 1e-9) * step
            time.sleep(max(0.0, step_end - time.perf_counter()))
        took = time.perf_counter() - t0
    finally:
        for p in pubs:
            if p.stdin is not None:
                p.stdin.close()
        for p in pubs:
            p.wait(10)
    out, _ = counter.communicate(timeout=args.seconds + 15)
    return sent, took, out.count(b"\n")


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--devices", type=int, default=100)
    ap.add_argument("--per-device", type=int, default=5)
    ap.add_argument("--rate", type=int, default=500, help="readings a second during the live phase")
    ap.add_argument("--seconds", type=float, default=10)
    args = ap.parse_args()
    n = args.devices * args.per_device
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        (tmp / "rules.yaml").write_text(RULES)
        broker = Mosquitto(tmp / "mosquitto")
        broker.start()
        store = open_store(f"sqlite:///{tmp}/vigil.db")
        now = time.time()
        store.write([event(dv, s, 4 + math.sin(i / 30 + dv), now - 6 * 3600 + i * 60)
                     for dv in range(args.devices) for s in range(args.per_device) for i in range(360)])
        print(f"filled: {n} sensors on {args.devices} devices, 6 h at 1/min ({n * 360:,} points)")
        cfg = config(broker, tmp)
        ready = asyncio.Event()
        task = asyncio.create_task(serve(cfg, store=store, ready=ready), name="bench-dashboard")
        try:
            await asyncio.wait_for(ready.wait(), 15)
            base = f"http://{cfg.dashboard.listen}"
            async with async_playwright() as p:
                browser = await p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
                ctx = await browser.new_context(viewport={"width": 1280, "height": 900})
                page = await ctx.new_page()
                await page.goto(base + "/login")
                await page.fill("input[name=username]", "admin")
                await page.fill("input[name=password]", PASSWORD)
                await page.click("button[type=submit]")
                await page.wait_for_selector("body[data-ready=yes]", timeout=60_000)
                # A second, cold-cache visit of the overview, timed from its navigation start.
                page2 = await browser.new_page(viewport={"width": 1280, "height": 900},
                                               storage_state=await ctx.storage_state())
                await page2.evaluate("() => 0")
                await page.context.close()
                cdp = await page2.context.new_cdp_session(page2)
                await cdp.send("Network.enable")
                await cdp.send("Network.setCacheDisabled", {"cacheDisabled": True})
                await page2.add_init_script("""(() => {
                  const mark = (name) => new MutationObserver((_, o) => {
                    if (document.body && document.body.dataset[name] === 'yes') {
                      window['t_' + name] = performance.now(); o.disconnect(); }
                  });
                  document.addEventListener('DOMContentLoaded', () => ['ready', 'limits', 'sparklines'].forEach((k) =>
                    mark(k).observe(document.body, { attributes: true })));
                })()""")
                await page2.goto(base + "/")
                await page2.wait_for_selector("body[data-sparklines=yes][data-limits=yes]", timeout=120_000)
                f = await page2.evaluate("""() => ({
                  fcp: (performance.getEntriesByName('first-contentful-paint')[0] || {}).startTime,
                  ready: window.t_ready, limits: window.t_limits, sparklines: window.t_sparklines,
                  tiles: document.querySelectorAll('a.tile').length,
                  bytes: [...performance.getEntriesByType('navigation'), ...performance.getEntriesByType('resource')]
                    .reduce((a, e) => a + e.encodedBodySize, 0),
                  raw: [...performance.getEntriesByType('navigation'), ...performance.getEntriesByType('resource')]
                    .reduce((a, e) => a + e.decodedBodySize, 0)})""")
                print(f"overview, {f['tiles']} tiles: first contentful paint {f['fcp']:.0f} ms, tiles drawn "
                      f"{f['ready']:.0f} ms, limits {f['limits']:.0f} ms, sparklines {f['sparklines']:.0f} ms after "
                      f"navigation start; {f['bytes'] / 1024:.1f} KB transferred ({f['raw'] / 1024:.1f} KB before "
                      "gzip); targets: first paint < 1 s, < 300 KB")
                # What reached the page: coalesced ticks, and the series updates in them.
                await page2.evaluate("""() => { window.seen = 0; window.ticks = 0; on('event', () => window.seen++);
                  live.source.addEventListener('events', () => window.ticks++); }""")
                await page2.evaluate("""() => { window.gaps = []; let last = performance.now();
                  const tick = (t) => {
                    window.gaps.push(t - last); last = t; if (!window.stopFrames) requestAnimationFrame(tick); };
                  requestAnimationFrame(tick); }""")
                sent, took, delivered = await asyncio.to_thread(publish, broker.port, args, n)
                await page2.wait_for_timeout(500)
                gaps = await page2.evaluate("() => { window.stopFrames = true; return window.gaps.slice(1); }")
                seen = await page2.evaluate("() => [window.ticks, window.seen]")
                long_gaps = [g for g in gaps if g > 50]
                print(f"live: {sent} readings in {took:.1f} s ({sent / took:.0f}/s; the broker delivered {delivered}); "
                      f"{len(gaps)} frames, median gap "
                      f"{statistics.median(gaps):.1f} ms, p99 {sorted(gaps)[int(0.99 * len(gaps))]:.1f} ms, "
                      f"max {max(gaps):.0f} ms; {len(long_gaps)} gaps over 50 ms; the page applied {seen[1]} series "
                      f"updates in {seen[0]} ticks")
                await browser.close()
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            store.close()
            broker.stop()
    print(json.dumps({"ok": True}))


if __name__ == "__main__":
    asyncio.run(main())

"""Prints delivery figures (for bench/; not a test): ``python -m tests.integration.alerting.notify.bench_notify``.

1. Latency from the engine's outbox commit (+ ``wake()``) to the JSON body arriving at a local HTTP
   receiver through real apprise, one alert at a time, p50 / p99.
2. Throughput of planning (outbox -> messages) and of recording sends, with an in-memory sender.
3. The cost of one new transition while thousands of alerts are already firing.
4. The dispatcher's CPU per notification (a new firing alert, told at once, in-memory sender).
5. The CPU of one apprise send (``AppriseSender.send`` to a ``json://`` receiver in another process).
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from alerting.notify import AppriseSender, Dispatcher, NotifyConfig, Outbox, RecordingSender
from alerting.transition import AlertState, Severity, Transition
from bench.rules.latency import RECEIVER
from tests.support.services import free_port, tcp_open, wait_until
from vigil.core.clock import SystemClock


def _t(i: int) -> Transition:
    now = time.time()
    return Transition(id=f"b-{i}", rule=f"rule-{i}", series=f"dev-{i}/t0/temperature", state=AlertState.FIRING,
                      previous=AlertState.PENDING, at=now, severity=Severity.CRITICAL, message=f"dev-{i} is warm",
                      since=now, value=1.0, notify=("hook",))


def _outbox_in(tmp: str, url: str) -> tuple[Path, sqlite3.Connection, Outbox, NotifyConfig]:
    """A state file in WAL mode with the outbox's tables, the engine's connection to it, and a config of one
    receiver ``hook`` at ``url`` told at once."""
    state = Path(tmp) / "alerts.db"
    engine = sqlite3.connect(str(state))
    engine.execute("PRAGMA journal_mode=WAL")
    outbox = Outbox(engine)
    outbox.create_tables()
    engine.commit()
    config = NotifyConfig.model_validate({"receivers": {"hook": [url]}, "grouping": {"group_wait": "0s"}})
    return state, engine, outbox, config


async def latency(n: int = 300) -> None:
    arrived: dict[str, float] = {}

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length"))
        body = json.loads(await reader.readexactly(length))
        arrived[body["title"].split()[2]] = time.perf_counter()
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    with tempfile.TemporaryDirectory() as tmp:
        state, engine, outbox, config = _outbox_in(tmp, f"json://127.0.0.1:{port}/hook")
        dispatcher = Dispatcher(state, config, AppriseSender(), SystemClock())
        runner = asyncio.create_task(dispatcher.run())
        samples = []
        for i in range(n):
            t = _t(i)
            start = time.perf_counter()
            outbox.enqueue(t)
            engine.commit()
            dispatcher.wake()
            while t.rule not in arrived:
                await asyncio.sleep(0.0005)
            samples.append((arrived[t.rule] - start) * 1000)
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
        dispatcher.close()
        engine.close()
    server.close()
    await server.wait_closed()
    samples.sort()
    print(f"load average {os.getloadavg()[0]:.1f}; outbox commit -> HTTP receiver via apprise json://, "
          f"{n} alerts one at a time: "
          f"p50 {statistics.median(samples):.1f} ms, p99 {samples[int(len(samples) * 0.99) - 1]:.1f} ms, "
          f"max {samples[-1]:.1f} ms")


async def throughput(n: int = 5000) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp) / "alerts.db"
        engine = sqlite3.connect(str(state))
        outbox = Outbox(engine)
        outbox.create_tables()
        for i in range(n):
            outbox.enqueue(_t(i))
        engine.commit()
        config = NotifyConfig.model_validate({"receivers": {"hook": ["json://127.0.0.1:9/hook"]},
                                              "grouping": {"group_wait": "0s"}})
        sender = RecordingSender()
        dispatcher = Dispatcher(state, config, sender, SystemClock())
        start = time.perf_counter()
        while len(sender.sent) < n:
            await dispatcher.step()
        elapsed = time.perf_counter() - start
        dispatcher.close()
        engine.close()
    print(f"{n} firing transitions, one group each, in-memory sender: planned, sent and recorded "
          f"in {elapsed:.2f} s ({n / elapsed:.0f} messages/s)")


async def per_alert(firing: int = 5000, n: int = 300) -> None:
    """The cost of one new transition when ``firing`` alerts are already firing (it must not grow with them)."""
    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp) / "alerts.db"
        engine = sqlite3.connect(str(state))
        outbox = Outbox(engine)
        outbox.create_tables()
        for i in range(firing):
            outbox.enqueue(_t(1_000_000 + i))
        engine.commit()
        config = NotifyConfig.model_validate({
            "receivers": {"hook": ["json://127.0.0.1:9/hook"]}, "grouping": {"group_wait": "0s"},
            "inhibit": [{"source": {"rule": "offline"}, "target": {"metric": "temperature"}, "equal": ["device"]}]})
        dispatcher = Dispatcher(state, config, RecordingSender(), SystemClock())
        await dispatcher.step()
        samples = []
        for i in range(n):
            outbox.enqueue(_t(i))
            engine.commit()
            start = time.perf_counter()
            await dispatcher.step()
            samples.append((time.perf_counter() - start) * 1000)
        dispatcher.close()
        engine.close()
    samples.sort()
    print(f"one new alert with {firing} already firing (ingest, reconcile, flush, send, record; in-memory sender): "
          f"p50 {statistics.median(samples):.2f} ms, p99 {samples[int(len(samples) * 0.99) - 1]:.2f} ms")


async def cpu_per_notification(n: int = 400) -> None:
    """CPU time of the dispatcher's passes (and the outbox commit before each) per new firing alert."""
    with tempfile.TemporaryDirectory() as tmp:
        state, engine, outbox, config = _outbox_in(tmp, "json://127.0.0.1:9/hook")
        sender = RecordingSender()
        dispatcher = Dispatcher(state, config, sender, SystemClock())
        await dispatcher.step()
        started = time.process_time()
        for i in range(n):
            outbox.enqueue(_t(i))
            engine.commit()
            while len(sender.sent) <= i:
                await dispatcher.step()
        cpu = (time.process_time() - started) / n
        dispatcher.close()
        engine.close()
    print(f"CPU per notification (outbox commit, passes, send recorded; in-memory sender): {cpu * 1e6:.0f} µs")


async def apprise_send_cpu(n: int = 1000) -> None:
    """CPU of this process per AppriseSender.send (apprise's objects, requests, its threads), the receiver apart
    (bench/rules/latency.py's, in another process)."""
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        receiver = subprocess.Popen([sys.executable, "-c", RECEIVER, str(port), str(Path(tmp) / "arrivals.txt")])
        try:
            assert wait_until(lambda: tcp_open(port)), "the receiver did not start"
            url = [f"json://127.0.0.1:{port}/hook"]
            sender = AppriseSender()
            for _ in range(20):  # apprise's plugins loaded, its thread pools started
                await sender.send(url, "warm-up", "b", severity=Severity.CRITICAL)
            started = time.process_time()
            for i in range(n):
                result = await sender.send(url, f"[FIRING critical] rule-{i}", "body", severity=Severity.CRITICAL)
                assert result.ok, result
            cpu = (time.process_time() - started) / n
        finally:
            receiver.kill()
            receiver.wait()
    print(f"CPU per apprise send ({n} to a json:// receiver in another process, one at a time): {cpu * 1e6:.0f} µs")


if __name__ == "__main__":
    asyncio.run(latency())
    asyncio.run(throughput())
    asyncio.run(per_alert())
    asyncio.run(cpu_per_notification())
    asyncio.run(apprise_send_cpu())
